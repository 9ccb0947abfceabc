r"""The BCOP kernel from its factors, in PyTorch, with the reference's conventions.

Given the first ``o`` rows of an orthogonal :math:`H` and symmetric projectors, the kernel is
the product of polynomial matrices (:mod:`gnpcheck.reference.bcop`)

.. math:: W = H \,\square\, [P_1, I - P_1] \,\square\, [Q_1; I - Q_1] \,\square \cdots
          \square\, [P_{K-1}, I - P_{K-1}] \,\square\, [Q_{K-1}; I - Q_{K-1}]

in 2-D (row factors along the width axis, column factors along the height axis) and
:math:`W = H \square [P_1, I - P_1] \square \cdots` in 1-D. Each factor is one stage
(docs/layers.rst, Note [kernel build]): for :math:`X` with taps :math:`X_0 .. X_{b-1}`
along the factor's axis,

.. math:: (X \square [P, I - P])_j = X_j P + X_{j-1} (I - P) = D_j + E_{j-1},
          \qquad D = X P, \quad E = X - D,

one matrix product of all taps with :math:`P` (a single GEMM), a difference and a shifted
sum, so a ``K x K`` kernel costs :math:`\sum` (taps so far) products of ``o x n`` by
``n x n`` matrices instead of a product per pair of taps.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import torch

from gnpcheck.errors import InvalidArgumentError
from gnpcheck.nn import native
from gnpcheck.nn.functions import apply_function, with_signature

__all__ = [
    "bcop_kernel",
    "native_stages",
    "stages_backward",
    "stages_forward",
    "stages_tangent",
    "to_taps_first",
    "to_torch_layout",
]


def _assemble(d: torch.Tensor, e: torch.Tensor, axis: int) -> torch.Tensor:
    """``[D_0, D_1 + E_0, ..., D_{b-1} + E_{b-2}, E_{b-1}]`` along tap axis ``axis``: ``E``
    one tap later (a zero tap first), then ``D`` added onto the first ``b`` taps (two
    operations: each one costs microseconds of dispatch, more than the arithmetic at small
    sizes)."""
    out = torch.constant_pad_nd(e, [0, 0] * (e.dim() - 1 - axis) + [1, 0])
    out.narrow(axis, 0, d.shape[axis]).add_(d)
    return out


def _stage(x: torch.Tensor, p: torch.Tensor, axis: int) -> torch.Tensor:
    """``X □ [P, I - P]`` along tap axis ``axis`` of a taps-first ``X``:
    :func:`_assemble` of ``D = X P`` and ``E = X - D``."""
    d = x @ p
    return _assemble(d, x - d, axis)


def _stage_tangent(
    x: torch.Tensor, p: torch.Tensor, dx: torch.Tensor, dp: torch.Tensor | None, axis: int
) -> torch.Tensor:
    """Forward-mode derivative of :func:`_stage` (it is bilinear in ``X`` and ``P``):
    :func:`_assemble` of ``dD = dX P + X dP`` and ``dE = dX - dD``."""
    dd = dx @ p if dp is None else dx @ p + x @ dp
    return _assemble(dd, dx - dd, axis)


def _stage_backward(
    x: torch.Tensor, p: torch.Tensor, grad: torch.Tensor, axis: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradients of :func:`_stage` with respect to ``X`` and ``P`` given ``grad`` (``b + 1`` taps).

    Output tap ``j`` is ``D_j + E_{j-1}``, so with ``G_j`` its gradient and
    ``Delta_j = G_j - G_{j+1}``: ``X_bar_j = G_{j+1} + Delta_j P^T`` and
    ``P_bar = sum_j X_j^T Delta_j`` (over every tap and row: one GEMM).
    """
    b = x.shape[axis]
    later = grad.narrow(axis, 1, b)
    delta = grad.narrow(axis, 0, b) - later
    n = x.shape[-1]
    return torch.matmul(delta, p.mT).add_(later), x.reshape(-1, n).mT @ delta.reshape(-1, n)


def _one_tap(matrix: torch.Tensor, spatial_ndim: int) -> torch.Tensor:
    """``(o, n)`` as a taps-first kernel with one tap per spatial axis."""
    return matrix.reshape((1,) * spatial_ndim + tuple(matrix.shape))


def _axes(spatial_ndim: int, taps: int) -> list[tuple[int, int]]:
    """(projector index, tap axis) of each stage, in the order they are applied."""
    if spatial_ndim == 1:
        return [(i, 0) for i in range(taps)]
    return [stage for i in range(taps) for stage in ((i, 1), (taps + i, 0))]


@cache
def native_stages(spatial_ndim: int, taps: int) -> tuple[tuple[int, int], ...]:
    """(projector index, tap axis) of each stage on the native library's 2-D grid of taps (a
    1-D kernel is one row)."""
    return tuple((index, axis + 2 - spatial_ndim) for index, axis in _axes(spatial_ndim, taps))


def stages_forward(
    h: torch.Tensor, projectors: torch.Tensor, spatial_ndim: int
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The kernel taps first, ``(K, ..., o, n)``, and the input of every stage (what
    :func:`stages_backward` needs); by the native library where it applies
    (:func:`gnpcheck.nn.native.usable`, Note [native stages]), else by PyTorch operations,
    with the same results."""
    taps = projectors.shape[0] // spatial_ndim
    if taps and h.ndim == 2:
        h = h.contiguous()  # H from a QR is column-major; the stages' first input is h itself
    stages_library = native.usable(h, projectors) if taps else None
    if stages_library is not None:
        kernel, inputs = stages_library.forward(h, projectors, native_stages(spatial_ndim, taps))
        if spatial_ndim == 1:
            return kernel[0], [x[0] for x in inputs]
        return kernel, inputs
    x = _one_tap(h, spatial_ndim)
    inputs = []
    for index, axis in _axes(spatial_ndim, taps):
        inputs.append(x)
        x = _stage(x, projectors[index], axis)
    return x, inputs


def stages_backward(
    projectors: torch.Tensor, inputs: list[torch.Tensor], grad: torch.Tensor, spatial_ndim: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradients with respect to ``h`` (``(o, n)``) and the projectors, given the gradient of
    the taps-first kernel (contiguous) and the stage inputs of :func:`stages_forward`."""
    taps = projectors.shape[0] // spatial_ndim
    if not taps:
        return grad.reshape(grad.shape[spatial_ndim:]), torch.zeros_like(projectors)
    stages_library = native.usable(projectors, grad, *inputs)
    if stages_library is not None:
        if spatial_ndim == 1:
            grad, inputs = grad.unsqueeze(0), [x.unsqueeze(0) for x in inputs]
        return stages_library.backward(projectors, inputs, grad, native_stages(spatial_ndim, taps))
    grad_projectors: dict[int, torch.Tensor] = {}
    stages = _axes(spatial_ndim, taps)
    for (index, axis), x in zip(reversed(stages), reversed(inputs), strict=True):
        grad, grad_projectors[index] = _stage_backward(x, projectors[index], grad, axis)
    # stacked, not written into a buffer: the backward stays functional, so that torch.func
    # can transform it (per-example gradients by vmap over grad)
    stacked = torch.stack([grad_projectors[index] for index in range(len(stages))])
    return grad.reshape(grad.shape[spatial_ndim:]), stacked


def stages_tangent(
    projectors: torch.Tensor,
    inputs: list[torch.Tensor],
    tangent_h: torch.Tensor,
    tangent_projectors: torch.Tensor | None,
    spatial_ndim: int,
) -> torch.Tensor:
    """Forward-mode derivative of :func:`stages_forward` (taps first) given the tangents of
    ``h`` and of the projectors (``None``: zero) and the stage inputs it saved."""
    taps = projectors.shape[0] // spatial_ndim
    dx = _one_tap(tangent_h, spatial_ndim)
    for (index, axis), x in zip(_axes(spatial_ndim, taps), inputs, strict=True):
        dp = None if tangent_projectors is None else tangent_projectors[index]
        dx = _stage_tangent(x, projectors[index], dx, dp, axis)
    return dx


def to_torch_layout(taps_first: torch.Tensor, spatial_ndim: int) -> torch.Tensor:
    """``(K, ..., o, i)`` to PyTorch's contiguous ``(o, i, K, ...)``."""
    order = (spatial_ndim, spatial_ndim + 1, *range(spatial_ndim))
    return taps_first.permute(order).contiguous()


def to_taps_first(kernel: torch.Tensor, spatial_ndim: int) -> torch.Tensor:
    """``(o, i, K, ...)`` to a contiguous ``(K, ..., o, i)``: the inverse of
    :func:`to_torch_layout`."""
    order = (*range(2, 2 + spatial_ndim), 0, 1)
    return kernel.permute(order).contiguous()


class _KernelProduct(torch.autograd.Function):
    """The stages of :func:`bcop_kernel` with a hand-written backward (Note [kernel build]):
    autograd would record every narrow and concatenation, whose backward allocates and
    zero-fills a full-size gradient per slice. The stage inputs are extra outputs, marked
    non-differentiable, so that backward reuses them (``setup_context`` style, which
    ``torch.func`` transforms and ``torch.compile`` accept). When the backward is itself
    differentiated (``create_graph=True``, ``torch.func.grad``) it recomputes them from
    ``h`` and the projectors, so that second derivatives are exact. Forward mode is
    :class:`_KernelProductWithJvp`."""

    generate_vmap_rule = True

    @staticmethod
    @with_signature
    def forward(
        h: torch.Tensor, projectors: torch.Tensor, spatial_ndim: int
    ) -> tuple[torch.Tensor, ...]:
        x, inputs = stages_forward(h, projectors, spatial_ndim)
        return (x, *inputs)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: tuple[torch.Tensor, ...]) -> None:
        h, projectors, spatial_ndim = inputs
        ctx.mark_non_differentiable(*output[1:])
        ctx.set_materialize_grads(False)  # no zero gradients for the stage inputs
        ctx.save_for_backward(h, projectors, *output[1:])
        ctx.save_for_forward(projectors, *output[1:])
        ctx.spatial_ndim = spatial_ndim

    @staticmethod
    def backward(
        ctx: Any, grad: torch.Tensor | None, *unused: Any
    ) -> tuple[torch.Tensor | None, torch.Tensor | None, None]:
        if grad is None:  # the kernel did not reach the loss
            return None, None, None
        h, projectors, *inputs = ctx.saved_tensors
        if torch.is_grad_enabled():  # this backward is differentiated: recompute (class doc)
            inputs = stages_forward(h, projectors, ctx.spatial_ndim)[1]
        grad = grad.contiguous()  # arrives permuted from the (out, in, K...) layout
        grad_h, grad_projectors = stages_backward(projectors, inputs, grad, ctx.spatial_ndim)
        return grad_h, grad_projectors, None


class _KernelProductWithJvp(_KernelProduct):
    """:class:`_KernelProduct` and its forward-mode rule (:mod:`gnpcheck.nn.functions`),
    :func:`stages_tangent`."""

    @staticmethod
    def jvp(
        ctx: Any, tangent_h: torch.Tensor | None, tangent_projectors: torch.Tensor | None, _: Any
    ) -> tuple[torch.Tensor | None, ...]:
        projectors, *inputs = ctx.saved_tensors
        if tangent_h is None:
            tangent_h = torch.zeros_like(inputs[0].reshape(inputs[0].shape[ctx.spatial_ndim :]))
        tangent = stages_tangent(
            projectors, inputs, tangent_h, tangent_projectors, ctx.spatial_ndim
        )
        return (tangent, *(None for _ in inputs))


def bcop_kernel(
    h: torch.Tensor, projectors: torch.Tensor, spatial_ndim: int, in_channels: int | None = None
) -> torch.Tensor:
    r"""The BCOP kernel in PyTorch layout ``(o, in_channels, K, ...)``, contiguous.

    Args:
        h: the first ``o`` rows of an orthogonal ``n x n`` matrix, shape ``(o, n)``.
        projectors: ``(spatial_ndim * (K - 1), n, n)`` symmetric projectors: in 2-D the row
            projectors ``P_1..P_{K-1}`` then the column projectors ``Q_1..Q_{K-1}``; in 1-D
            ``P_1..P_{K-1}``.
        spatial_ndim: 1 or 2.
        in_channels: keep the first ``in_channels`` input channels (default ``n``): the
            semi-orthogonal kernel of a layer with fewer inputs than outputs.

    Raises:
        InvalidArgumentError: shapes that do not fit together.
    """
    if spatial_ndim not in (1, 2):
        raise InvalidArgumentError(f"spatial_ndim={spatial_ndim!r}, but it must be 1 or 2")
    n = h.shape[-1]
    count = projectors.shape[0]
    if h.ndim != 2 or projectors.shape[1:] != (n, n) or count % spatial_ndim:
        raise InvalidArgumentError(
            f"h has shape {tuple(h.shape)} and projectors {tuple(projectors.shape)}, but they "
            f"must be (o, n) and ({spatial_ndim} * (K - 1), n, n)"
        )
    x = _one_tap(h, spatial_ndim)
    if count:
        x = apply_function(_KernelProduct, _KernelProductWithJvp, h, projectors, spatial_ndim)[0]
    if in_channels is not None:
        x = x[..., :in_channels]
    return to_torch_layout(x, spatial_ndim)
