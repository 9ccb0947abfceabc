r"""Singular value clipping and masking (SVCM) of the circulant symbol.

Sedghi, Gupta and Long (ICLR 2019): the circular convolution on an ``N1 x N2`` grid has the
singular values of its symbol :math:`\hat W(f) = \sum_a W_a e^{2\pi i\langle a - c, f/N\rangle}`
over the ``N1 N2`` frequencies. The projection step (docs/baselines.rst, Note [SVCM]):

1. FFT the kernel at the grid size: ``out x in`` matrices :math:`\hat W(f)`;
2. clip: :math:`\hat W(f) = U S V^H \mapsto U \min(S, 1) V^H` (the nearest operator of norm
   :math:`\le 1` in Frobenius norm, a full-grid kernel);
3. inverse FFT and mask: keep the ``K1 x K2`` taps of the original support.

Step 2 gives a 1-Lipschitz operator; step 3 leaves the set again (alternating projections),
so :meth:`SVCMConv2d.lipschitz_bound` does not assume 1: it *measures* the norm of the current
kernel from its symbol in float64. One projection costs an FFT and :math:`N_1 N_2 / 2` SVDs of
``out x in`` complex matrices, :math:`O(N_1 N_2\, c^3)` for ``c`` channels; so does measuring.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.hooks import RemovableHandle

from gnpcheck.errors import InvalidArgumentError
from gnpcheck.nn._arguments import Padding, positive_int
from gnpcheck.nn.baselines._conv_common import InputSizedConv2d

__all__ = [
    "SVCMConv2d",
    "clip_operator",
    "kernel_symbol",
    "operator_norm",
    "restrict_support",
]


def _check_fits(kernel_size: tuple[int, ...], grid: tuple[int, ...], name: str) -> None:
    if len(grid) != 2 or any(k > n for k, n in zip(kernel_size, grid, strict=True)):
        raise InvalidArgumentError(
            f"{name}={tuple(grid)}, but it must be 2 sizes, each at least the kernel size "
            f"{tuple(kernel_size)}"
        )


def _on_grid(kernel: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """``Y[o, i, d mod N] = W[o, i, c + d]``: tap offsets ``d = a - c`` as grid positions."""
    k1, k2 = kernel.shape[-2:]
    _check_fits((k1, k2), grid, "grid")
    padded = torch.nn.functional.pad(kernel, (0, grid[1] - k2, 0, grid[0] - k1))
    shifts = (-((k1 - 1) // 2), -((k2 - 1) // 2))
    return torch.roll(padded, shifts=shifts, dims=(-2, -1))


def kernel_symbol(kernel: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    r"""``rfft2`` of the kernel on the grid: :math:`\overline{\hat W(f)}` for ``f2 <= N2 / 2``.

    Shape ``(N1, N2 // 2 + 1, out, in)``. A real kernel has :math:`\hat W(-f) =
    \overline{\hat W(f)}`, so these matrices carry every singular value of the operator.
    """
    symbol: torch.Tensor = torch.fft.rfft2(_on_grid(kernel, grid), s=grid)
    return symbol.permute(2, 3, 0, 1)


def operator_norm(kernel: torch.Tensor, grid: tuple[int, int]) -> float:
    """Largest singular value of the circular convolution of ``kernel`` on ``grid``, in float64."""
    symbol = kernel_symbol(kernel.detach().to(torch.float64), grid)
    return float(torch.linalg.svdvals(symbol).max())


def clip_operator(kernel: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    r"""The operator with every singular value of the symbol clipped to 1, as a full-grid kernel.

    Returns a kernel of shape ``(out, in, N1, N2)`` (torch layout, centering
    ``c = (N - 1) // 2``) whose circular convolution on ``grid`` has symbol
    :math:`U \min(S, 1) V^H`; computed in float64.
    """
    symbol = kernel_symbol(kernel.detach().to(torch.float64), grid)
    u, s, vh = torch.linalg.svd(symbol, full_matrices=False)
    clipped = (u * s.clamp_max(1.0).to(u.dtype).unsqueeze(-2)) @ vh
    positions = torch.fft.irfft2(clipped.permute(2, 3, 0, 1), s=grid)
    shifts = ((grid[0] - 1) // 2, (grid[1] - 1) // 2)
    return torch.roll(positions, shifts=shifts, dims=(-2, -1))


def restrict_support(full: torch.Tensor, kernel_size: tuple[int, int]) -> torch.Tensor:
    """Keep the taps of a full-grid kernel (centering ``(N - 1) // 2``) at offsets
    ``a - c``, ``a < K``, ``c = (K - 1) // 2``: the mask step of SVCM."""
    _check_fits(tuple(kernel_size), tuple(full.shape[-2:]), "full.shape[-2:]")
    starts = [
        (n - 1) // 2 - (k - 1) // 2 for n, k in zip(full.shape[-2:], kernel_size, strict=True)
    ]
    return full[..., starts[0] : starts[0] + kernel_size[0], starts[1] : starts[1] + kernel_size[1]]


class SVCMConv2d(InputSizedConv2d):
    r"""A 2-D convolution kept near the 1-Lipschitz set by clipping its circulant symbol.

    Call :meth:`project_` after each optimizer step (or :meth:`register_projection_hook`).
    The forward pass applies ``raw_weight`` as it is; ``weight`` is ``raw_weight``.

    Args:
        in_channels, out_channels: channel counts (any, ``in != out`` allowed).
        kernel_size: int or pair; a multiple of ``stride``.
        stride: pixel-unshuffle factor before a stride-1 convolution (default 1; an int or
            a pair of equal ints).
        padding: ``"circular"`` (default): the symbol lives on the ``(H/s, W/s)`` grid and
            :meth:`lipschitz_bound` is exact. ``"same"`` (zeros): the zero-padded operator is
            a compression of the circular one on the grid enlarged by ``K - 1``, which is the
            grid used; the bound is then an upper bound, not exact.
        bias: whether to add a learnable bias (default True).
        input_size: the input's spatial size ``(H, W)``; ``None`` (default): the first
            forward's size. Clipping and the bound hold for this size only.

    Raises:
        InvalidArgumentError, InvalidTypeError: an argument out of range or of the wrong type.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: Padding = "circular",
        bias: bool = True,
        input_size: int | tuple[int, int] | None = None,
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, bias, input_size)
        self.raw_weight = self._new_kernel()

    @property
    def weight(self) -> torch.Tensor:
        """The kernel applied: ``raw_weight`` itself (the projection changes it in place)."""
        return self.raw_weight

    def spectral_grid(self) -> tuple[int, int]:
        """The grid of the circulant symbol: the inner grid, enlarged by ``K - 1`` for zeros."""
        grid = self._inner_grid()
        if self.padding == "circular":
            return grid
        k1, k2 = self.inner_kernel_size
        return grid[0] + k1 - 1, grid[1] + k2 - 1

    def lipschitz_bound(self) -> float:
        r"""The measured :math:`\sigma_{\max}` of the current kernel's operator (float64 FFT and
        SVD, relative rounding of a few ``eps``): exact for circular padding, an upper bound
        for zeros. Costs as much as a projection.

        Raises:
            InvalidArgumentError: no input size known yet.
        """
        return operator_norm(self.raw_weight, self.spectral_grid())

    def project_(self, iterations: int = 1) -> float:
        """Clip the symbol and mask to the kernel support ``iterations`` times, in place.

        Returns:
            The measured :meth:`lipschitz_bound` afterwards (not 1 in general: the mask step
            leaves the set of 1-Lipschitz operators).

        Raises:
            InvalidArgumentError: ``iterations < 1``, or no input size known yet.
        """
        self._clip_and_mask(positive_int(iterations, "iterations"))
        return self.lipschitz_bound()

    @torch.no_grad()
    def _clip_and_mask(self, iterations: int) -> None:
        grid = self.spectral_grid()
        for _ in range(iterations):
            full = clip_operator(self.raw_weight, grid)
            self.raw_weight.copy_(restrict_support(full, self.inner_kernel_size))

    def register_projection_hook(self, optimizer: torch.optim.Optimizer) -> RemovableHandle:
        """Run one projection (unmeasured) after every ``optimizer.step()``; remove the hook
        with the returned handle's ``.remove()``."""

        def hook(_optimizer: Any, _args: Any, _kwargs: Any) -> None:
            self._clip_and_mask(1)

        return optimizer.register_step_post_hook(hook)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input(x, self.raw_weight)
        self._tie_input_size(x)
        return self._apply_conv(x, self.raw_weight)
