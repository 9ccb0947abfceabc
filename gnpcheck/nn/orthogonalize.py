r"""Differentiable orthonormalization in PyTorch: QR with a closed-form backward, and Björck.

Both map a batch of tall full-rank matrices :math:`A` (shape ``(..., n, k)``, ``n >= k``) to
matrices :math:`Q` with orthonormal columns spanning the same space (docs/layers.rst,
Note [orthogonalization]):

``"qr"``
    :math:`Q` of the thin QR factorization :math:`A = Q T` with :math:`\operatorname{diag}(T)
    > 0` (the reference's ``orthonormalize(method="qr")``): Householder QR, orthonormal to
    rounding for any conditioning of :math:`A` (computed in float64). Its backward is the
    closed form

    .. math:: \bar A = \big[(I - Q Q^T)\,\bar Q + Q\, \operatorname{tril}(B - B^T, -1)\big]
              \, T^{-T}, \qquad B = Q^T \bar Q,

    a few matrix products and one triangular solve (the formula of PyTorch's ``linalg.qr``
    backward, here in a function of its own that also fixes the column signs, so autograd
    records one node).

``"bjorck"``
    Björck–Bowie iterations (as :func:`gnpcheck.reference.bjorck`) from
    :math:`A / s`, where :math:`s = \min(\|A\|_F, \sqrt{\|A\|_1 \|A\|_\infty}) \ge \|A\|_2`
    is a cheap upper bound of the spectral norm; a fixed number of iterations, differentiated
    by autograd (in float64). It converges to the orthogonal polar factor of :math:`A`; how close it gets
    depends on the iteration count and on the conditioning of :math:`A`.

``"polar"`` (:func:`polar_orthonormalize`, for the linear layers)
    The orthogonal polar factor :math:`U V^T` of :math:`A = U S V^T`, the limit of Björck,
    in float64 (by ``eigh`` of :math:`A^T A`, or an SVD when :math:`A` is ill-conditioned)
    with a closed-form backward.

The float64 forward is what makes :math:`Q` orthonormal to the rounding of the layer's dtype;
the backward runs in the gradient's dtype (float32 for a float32 layer), which halves the
cost of its products and solve and loses nothing a float32 update could hold.

A symmetric projector is :math:`P = Q Q^T`; it depends only on the span of :math:`A`, so both
methods give the same :math:`P` up to rounding and convergence. With ``"qr"`` its gradient
has a closed form of its own (:func:`projectors`): from :math:`dP = (I - P)\,dA\,T^{-1} Q^T
+ (\cdot)^T`,

.. math:: \bar A = (I - P)\,(\bar P + \bar P^T)\, Q\, T^{-T},

three products and a triangular solve, with no column signs to fix (they cancel in
:math:`Q Q^T`).
"""

from __future__ import annotations

from collections.abc import Callable
from math import comb
from typing import Any, Literal, NamedTuple

import torch

from gnpcheck.errors import InvalidArgumentError, InvalidTypeError, UnsupportedOperationError
from gnpcheck.nn import native
from gnpcheck.nn.cache import transforming
from gnpcheck.nn.functions import apply_function, with_signature
from gnpcheck.reference import bjorck_coefficients

__all__ = [
    "DEFAULT_BJORCK_ITERS",
    "GRAM_POLAR_MAX_CONDITION",
    "ORTHOGONALIZERS",
    "Orthogonalizer",
    "bjorck",
    "bjorck_orthonormalize",
    "orthonormal_qr_gradient",
    "orthonormal_qr_tangent",
    "orthonormalize",
    "polar_orthonormalize",
    "positive_qr",
    "projector_of",
    "projector_qr",
    "projector_qr_gradient",
    "projector_qr_tangent",
    "projectors",
    "qr_orthonormalize",
    "spectral_norm_bound",
]

Orthogonalizer = Literal["qr", "bjorck"]
ORTHOGONALIZERS: tuple[Orthogonalizer, ...] = ("qr", "bjorck")

#: Björck iterations when none are given: see docs/layers.rst, Note [error budget], for the
#: float32 defect this count reaches, fresh and after training.
DEFAULT_BJORCK_ITERS = 20


def spectral_norm_bound(a: torch.Tensor) -> torch.Tensor:
    r""":math:`\min(\|A\|_F, \sqrt{\|A\|_1 \|A\|_\infty}) \ge \|A\|_2` per matrix, shape ``(...)``."""
    absolute = a.abs()
    frobenius = torch.linalg.matrix_norm(a)
    columns = absolute.sum(dim=-2).amax(dim=-1)
    rows = absolute.sum(dim=-1).amax(dim=-1)
    return torch.minimum(frobenius, torch.sqrt(columns * rows))


def _gram_polynomial(order: int) -> list[float]:
    r"""Coefficients :math:`d_i` of :math:`\sum_j c_j (I - G)^j = \sum_i d_i G^i`."""
    c = bjorck_coefficients(order)
    return [
        sum(c[j] * comb(j, i) * (-1.0) ** i for j in range(i, order + 1)) for i in range(order + 1)
    ]


def _check_tall(a: object, name: str) -> torch.Tensor:
    if not isinstance(a, torch.Tensor):
        raise InvalidTypeError(f"{name} is a {type(a).__name__}, but it must be a torch.Tensor")
    if a.ndim < 2 or a.shape[-2] < a.shape[-1]:
        raise InvalidArgumentError(
            f"{name} has shape {tuple(a.shape)}, but it must be a batch of tall matrices "
            "(..., n, k) with n >= k"
        )
    if not a.is_floating_point():
        raise InvalidTypeError(f"{name} has dtype {a.dtype}, but it must be floating point")
    return a


def _int_at_least(value: object, name: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidTypeError(f"{name}={value!r}, but it must be an int")
    if value < low:
        raise InvalidArgumentError(f"{name}={value}, but it must be >= {low}")
    return value


def bjorck(a: torch.Tensor, iters: int, order: int = 1) -> torch.Tensor:
    r"""``iters`` unscaled Björck–Bowie iterations of order ``order`` on a batch of tall matrices.

    :math:`A_{j+1} = A_j \sum_i d_i (A_j^T A_j)^i`, the order-``order`` Taylor polynomial of
    :math:`(A^T A)^{-1/2}` about :math:`I` (the reference's :func:`~gnpcheck.reference.bjorck`).
    Converges when every singular value of ``a`` lies in :math:`(0, \sqrt 3)` (order 1).

    Raises:
        InvalidArgumentError: ``a`` not a batch of tall matrices, ``iters < 0``, ``order < 1``.
        InvalidTypeError: ``a`` not a floating tensor, ``iters`` or ``order`` not an int.
    """
    a = _check_tall(a, "a")
    iters = _int_at_least(iters, "iters", 0)
    d = _gram_polynomial(_int_at_least(order, "order", 1))
    for _ in range(iters):
        gram = a.mT @ a
        inner = gram * d[-1]
        for coefficient in reversed(d[1:-1]):
            inner = gram @ (
                inner + coefficient * torch.eye(gram.shape[-1], dtype=a.dtype, device=a.device)
            )
        a = a * d[0] + a @ inner
    return a


def bjorck_orthonormalize(a: torch.Tensor, iters: int, order: int = 1) -> torch.Tensor:
    """Björck–Bowie from ``a / spectral_norm_bound(a)``: orthonormal columns after convergence.

    Raises:
        InvalidArgumentError, InvalidTypeError: as :func:`bjorck`.
    """
    a = _check_tall(a, "a")
    if a.shape[-1] == 0:
        return a.clone()
    scale = spectral_norm_bound(a)
    return bjorck(a / scale[..., None, None], iters, order)


def _check_dtype(dtype: object) -> torch.dtype:
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise InvalidTypeError(f"dtype={dtype!r}, but it must be a floating torch.dtype")
    return dtype


def positive_qr(a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Thin QR of ``a`` in float64 with ``diag(T) > 0`` (columns of ``Q``, rows of ``T``
    negated where Householder gave a negative diagonal)."""
    q, t = torch.linalg.qr(a.to(torch.float64))
    signs = torch.where(torch.diagonal(t, dim1=-2, dim2=-1) < 0, -1.0, 1.0)
    return q * signs.unsqueeze(-2), t * signs.unsqueeze(-1)


def orthonormal_qr_gradient(q: torch.Tensor, t: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    r""":math:`\bar A` of :math:`Q` from :math:`A = Q T` (``diag(T) > 0``) given :math:`\bar Q`:
    :math:`[(I - Q Q^T)\bar Q + Q \operatorname{tril}(B - B^T, -1)]\, T^{-T}`,
    :math:`B = Q^T \bar Q`, in the dtype of its arguments; by the native library where it
    applies (Note [native stages])."""
    q, t, grad = q.contiguous(), t.contiguous(), grad.contiguous()
    library = native.usable(q, t, grad)
    if library is not None:
        return library.orthonormal_qr_gradient(q, t, grad)
    b = q.mT @ grad
    m = grad - q @ b + q @ torch.tril(b - b.mT, -1)
    solved: torch.Tensor = torch.linalg.solve_triangular(t.mT, m, upper=False, left=False)
    return solved


def projector_qr_gradient(q: torch.Tensor, t: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    r""":math:`\bar A` of :math:`P = Q Q^T` from :math:`A = Q T` given :math:`\bar P`:
    :math:`(I - P)(\bar P + \bar P^T)\, Q\, T^{-T}`, in the dtype of its arguments; by the
    native library where it applies (Note [native stages])."""
    q, t, grad = q.contiguous(), t.contiguous(), grad.contiguous()
    library = native.usable(q, t, grad)
    if library is not None:
        return library.projector_qr_gradient(q, t, grad)
    m = (grad + grad.mT) @ q
    m = m - q @ (q.mT @ m)
    solved: torch.Tensor = torch.linalg.solve_triangular(t.mT, m, upper=False, left=False)
    return solved


def orthonormal_qr_tangent(q: torch.Tensor, t: torch.Tensor, tangent: torch.Tensor) -> torch.Tensor:
    r""":math:`dQ` of :math:`A = Q T` (``diag(T) > 0``) given :math:`dA`: with
    :math:`M = dA\, T^{-1}`, :math:`C = Q^T M` and :math:`L = \operatorname{tril}(C, -1)`,
    :math:`dQ = Q (L - L^T) + M - Q C` (:math:`Q^T dQ` skew, :math:`dT\, T^{-1}` upper
    triangular), in the dtype of its arguments."""
    m = torch.linalg.solve_triangular(t, tangent, upper=True, left=False)
    c = q.mT @ m
    lower = torch.tril(c, -1)
    result: torch.Tensor = q @ (lower - lower.mT - c) + m
    return result


def projector_qr_tangent(q: torch.Tensor, t: torch.Tensor, tangent: torch.Tensor) -> torch.Tensor:
    r""":math:`dP` of :math:`P = Q Q^T`, :math:`A = Q T`, given :math:`dA`:
    :math:`Y + Y^T` with :math:`Y = (I - P)\, dA\, T^{-1} Q^T`, in the dtype of its
    arguments."""
    m = torch.linalg.solve_triangular(t, tangent, upper=True, left=False)
    y = (m - q @ (q.mT @ m)) @ q.mT
    result: torch.Tensor = y + y.mT
    return result


def projector_qr(a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Thin QR of ``a`` in float64 (no sign fix: the signs cancel in ``Q Q^T``)."""
    q, t = torch.linalg.qr(a.to(torch.float64))
    return q, t


def _copy_of(q: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return q.to(dtype, copy=True)  # never the saved Q itself


def projector_of(q: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The projector ``Q Q^T`` onto the span of ``q``'s orthonormal columns, computed in
    ``q``'s dtype and returned in ``dtype``."""
    return (q @ q.mT).to(dtype)


class _QRMap(NamedTuple):
    """One map of ``A`` through its QR factorization: the factorization, the result from
    ``Q`` (in a dtype), and the closed-form gradient and tangent of the result."""

    factorize: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
    result: Callable[[torch.Tensor, torch.dtype], torch.Tensor]
    gradient: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
    tangent: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


_QR_MAPS = {
    "orthonormal": _QRMap(positive_qr, _copy_of, orthonormal_qr_gradient, orthonormal_qr_tangent),
    "projector": _QRMap(projector_qr, projector_of, projector_qr_gradient, projector_qr_tangent),
}


class _QRFunction(torch.autograd.Function):
    """``forward(a, dtype, kind)``: ``Q`` of the thin QR factorization with ``diag(T) > 0``
    (``kind="orthonormal"``) or the projector ``Q Q^T`` (``"projector"``), computed in
    float64 and returned in ``dtype``, then the float64 ``Q`` and ``T`` as non-differentiable
    extra outputs, kept for the closed-form backward (module docstring) and tangent, which
    run in the gradient's (tangent's) dtype. When the backward is itself differentiated
    (``create_graph=True``, ``torch.func.grad``), ``Q`` and ``T`` are recomputed from ``a``,
    so that second derivatives are exact."""

    generate_vmap_rule = True

    @staticmethod
    @with_signature
    def forward(a: torch.Tensor, dtype: torch.dtype, kind: str) -> tuple[torch.Tensor, ...]:
        qr_map = _QR_MAPS[kind]
        q, t = qr_map.factorize(a)
        return qr_map.result(q, dtype), q, t

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: tuple[torch.Tensor, ...]) -> None:
        a, dtype, kind = inputs
        _, q, t = output
        ctx.mark_non_differentiable(q, t)
        ctx.set_materialize_grads(False)  # no zero gradients for Q and T
        ctx.save_for_backward(a, q, t)
        ctx.save_for_forward(q, t)
        ctx.input_dtype, ctx.output_dtype, ctx.qr_map = a.dtype, dtype, _QR_MAPS[kind]

    @staticmethod
    def backward(
        ctx: Any, grad: torch.Tensor | None, *unused: Any
    ) -> tuple[torch.Tensor | None, None, None]:
        if grad is None:  # the result did not reach the loss
            return None, None, None
        a, q, t = ctx.saved_tensors
        if torch.is_grad_enabled():  # this backward is differentiated: recompute (class doc)
            q, t = ctx.qr_map.factorize(a)
        gradient = ctx.qr_map.gradient(q.to(grad.dtype), t.to(grad.dtype), grad)
        return gradient.to(ctx.input_dtype), None, None


class _QRFunctionWithJvp(_QRFunction):
    """:class:`_QRFunction` and its forward-mode rule (:mod:`gnpcheck.nn.functions`)."""

    @staticmethod
    def jvp(ctx: Any, tangent: torch.Tensor, *_: Any) -> tuple[torch.Tensor | None, ...]:
        q, t = (factor.to(tangent.dtype) for factor in ctx.saved_tensors)
        return ctx.qr_map.tangent(q, t, tangent).to(ctx.output_dtype), None, None


def qr_orthonormalize(a: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    """``Q`` of the thin QR factorization of ``a`` with a positive diagonal of ``T``.

    Householder QR (``torch.linalg.qr``) in float64 whatever ``a``'s dtype, so ``Q`` is
    orthonormal to the rounding of ``dtype`` (default: ``a``'s) for any conditioning of
    ``a``; differentiable by the closed form of the module docstring, with ``Q`` and ``T``
    of the positive-diagonal factorization (one product pair and a triangular solve),
    evaluated in ``dtype``: a gradient needs no more precision than the value it updates.

    Raises:
        InvalidArgumentError, InvalidTypeError: ``a`` not a floating batch of tall matrices;
            ``dtype`` not a floating dtype.
    """
    a = _check_tall(a, "a")
    target = a.dtype if dtype is None else _check_dtype(dtype)
    if a.shape[-1] == 0:
        return a.to(target).clone()
    orthonormal: torch.Tensor = apply_function(
        _QRFunction, _QRFunctionWithJvp, a, target, "orthonormal"
    )[0]
    return orthonormal


def orthonormalize(
    a: torch.Tensor,
    method: Orthogonalizer = "qr",
    iters: int = 0,
    order: int = 1,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Orthonormal columns spanning those of ``a`` by ``method``, returned in ``dtype``.

    ``"qr"``: :func:`qr_orthonormalize`. ``"bjorck"``: ``iters`` iterations of
    :func:`bjorck_orthonormalize` in float64, then converted to ``dtype`` (default: ``a``'s).

    Raises:
        InvalidArgumentError: unknown ``method``; see :func:`bjorck` and
            :func:`qr_orthonormalize`.
    """
    if method == "qr":
        return qr_orthonormalize(a, dtype)
    if method == "bjorck":
        target = a.dtype if dtype is None else _check_dtype(dtype)
        return bjorck_orthonormalize(a.to(torch.float64), iters, order).to(target)
    raise InvalidArgumentError(f"method={method!r}, but it must be 'qr' or 'bjorck'")


def projectors(
    a: torch.Tensor,
    method: Orthogonalizer = "qr",
    iters: int = 0,
    order: int = 1,
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """The symmetric projectors ``Q Q^T`` onto the column spans of a batch of tall ``a``,
    computed in float64 and returned in ``dtype`` (``Q`` by ``method`` as
    :func:`orthonormalize`; ``"qr"`` differentiates by the closed form of the module
    docstring, in the gradient's dtype).

    Raises:
        InvalidArgumentError, InvalidTypeError: as :func:`orthonormalize`.
    """
    dtype = _check_dtype(dtype)
    if method == "qr":
        a = _check_tall(a, "a")
        if a.shape[-1] == 0:
            return a.new_zeros((*a.shape[:-1], a.shape[-2]), dtype=dtype)
        projector: torch.Tensor = apply_function(
            _QRFunction, _QRFunctionWithJvp, a, dtype, "projector"
        )[0]
        return projector
    bases = orthonormalize(a, method, iters, order, dtype=torch.float64)
    return (bases @ bases.mT).to(dtype)


#: Largest condition number for which :func:`polar_orthonormalize` takes the Gram route:
#: its error is about ``eps64 * kappa**2`` (``2e-10`` here), far below float32 rounding.
GRAM_POLAR_MAX_CONDITION = 1e3


def _polar_by_gram(a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """``(Q, V, s)`` from the eigendecomposition ``A^T A = V S^2 V^T`` in float64, or ``None``
    when ``A`` is too ill-conditioned for it (or a ``torch.func`` transform is active, whose
    batched tensors cannot be branched on)."""
    if transforming():
        return None
    squares, v = torch.linalg.eigh(a.mT @ a)
    smallest, largest = squares[..., 0].min(), squares[..., -1].max()
    if not bool(smallest * GRAM_POLAR_MAX_CONDITION**2 > largest):
        return None
    sigma = squares.sqrt()
    return a @ ((v / sigma.unsqueeze(-2)) @ v.mT), v, sigma


class _PolarFactor(torch.autograd.Function):
    """The polar factor ``U V^T`` of a tall ``A = U S V^T`` in float64, with the closed-form
    backward of :func:`polar_orthonormalize` (``Q``, ``V``, ``S`` are extra outputs kept
    for it)."""

    generate_vmap_rule = True

    @staticmethod
    @with_signature
    def forward(a: torch.Tensor) -> tuple[torch.Tensor, ...]:
        wide = a.to(torch.float64)
        by_gram = _polar_by_gram(wide)
        if by_gram is None:
            u, sigma, vh = torch.linalg.svd(wide, full_matrices=False)
            q, v = u @ vh, vh.mT
        else:
            q, v, sigma = by_gram
        return q.to(a.dtype, copy=True), q, v, sigma

    @staticmethod
    def setup_context(
        ctx: Any, inputs: tuple[torch.Tensor], output: tuple[torch.Tensor, ...]
    ) -> None:
        _, q, v, sigma = output
        ctx.mark_non_differentiable(q, v, sigma)
        ctx.set_materialize_grads(False)  # no zero gradients for Q, V and the singular values
        ctx.save_for_backward(q, v, sigma)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor | None, *unused: Any) -> torch.Tensor | None:
        if grad is None:  # the factor did not reach the loss
            return None
        if torch.is_grad_enabled() and not transforming():
            raise UnsupportedOperationError(
                "create_graph=True through the polar factor, but its backward is not "
                "differentiable (it uses the saved decomposition, so second derivatives would "
                "miss terms); use orthogonalizer='bjorck', differentiated by autograd"
            )
        q, v, sigma = (t.to(grad.dtype) for t in ctx.saved_tensors)
        c = q.mT @ grad
        b = v.mT @ c @ v
        skew = (b - b.mT) / (sigma.unsqueeze(-1) + sigma.unsqueeze(-2))
        inverse_sqrt = (v / sigma.unsqueeze(-2)) @ v.mT
        result: torch.Tensor = q @ (v @ skew @ v.mT - c @ inverse_sqrt) + grad @ inverse_sqrt
        return result


def polar_orthonormalize(a: torch.Tensor) -> torch.Tensor:
    r"""The orthogonal polar factor :math:`Q = U V^T` of a batch of tall full-rank ``a = U S V^T``
    (the limit of Björck–Bowie, the closest matrix with orthonormal columns), computed in
    float64 and returned in ``a``'s dtype.

    Forward, in float64: from the eigendecomposition :math:`A^T A = V S^2 V^T`,
    :math:`Q = A\, V S^{-1} V^T` (two ``n x k`` by ``k x k`` products and a ``k x k``
    ``eigh``; its error is about :math:`\varepsilon_{64} \kappa^2`), when the condition
    number :math:`\kappa = s_{max} / s_{min}` is at most :data:`GRAM_POLAR_MAX_CONDITION`;
    otherwise, and under ``torch.func`` transforms (which cannot branch on values), the thin
    SVD, exact to float64 rounding for any conditioning. Backward, in the gradient's dtype,
    from :math:`A = Q P`, :math:`P = V S V^T`:

    .. math:: \bar A = Q\, V \big[(B - B^T) \oslash (s_i + s_j)\big] V^T
              + (I - Q Q^T)\, \bar Q\, V S^{-1} V^T, \qquad B = V^T Q^T \bar Q V,

    evaluated as :math:`Q\,(V \Omega V^T - C P^{-1}) + \bar Q P^{-1}` with
    :math:`C = Q^T \bar Q`, :math:`\Omega = (B - B^T) \oslash (s_i + s_j)`: three
    ``n x k`` products, where autograd through Björck pays two per iteration and through an
    SVD divides by :math:`s_i^2 - s_j^2` (infinite at repeated singular values, e.g. at an
    orthogonal initialization). The gradient is infinite where ``a`` loses rank, where the
    factor is not differentiable.

    Raises:
        InvalidArgumentError, InvalidTypeError: ``a`` not a floating batch of tall matrices.
    """
    a = _check_tall(a, "a")
    if a.shape[-1] == 0:
        return a.clone()
    factor: torch.Tensor = apply_function(_PolarFactor, _PolarFactor, a)[0]
    return factor
