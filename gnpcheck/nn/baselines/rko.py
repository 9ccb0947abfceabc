r"""Reshaped kernel orthogonalization (RKO): Björck on the kernel matrix, scaled by 1/sqrt(T).

The kernel :math:`W` with :math:`T = K_1 K_2` taps is reshaped to the matrix
:math:`W_{\text{mat}} = [W_1 \cdots W_T]` of shape ``out x (in * T)`` (Parseval networks,
Cisse et al. 2017; the RKO baseline of Li et al., NeurIPS 2019). Björck–Bowie iterations make
it (semi-)orthogonal, :math:`\|Q\|_2 \le 1`, and the layer applies :math:`Q / \sqrt{T}`. For
*any* kernel and either padding (docs/baselines.rst, Note [RKO scaling]),

.. math:: \|\mathrm{conv}_W\| \le \sqrt{T}\, \|W_{\text{mat}}\|_2,

so the layer is 1-Lipschitz. The bound is attained for some kernels (e.g. one channel, all
taps equal), so the scaling cannot be relaxed; for most kernels the layer is strictly
contracting, which is the weakness of RKO the BCOP paper points out.
"""

from __future__ import annotations

import math

import torch

from gnpcheck.nn._arguments import Padding, positive_int
from gnpcheck.nn.baselines._conv_common import BaselineConv2d

__all__ = ["RKOConv2d", "bjorck_semi_orthogonal"]

#: Guards the scaling of a zero matrix (it stays zero, which is 1-Lipschitz).
_SCALE_FLOOR = 1e-30


def bjorck_semi_orthogonal(matrix: torch.Tensor, iters: int) -> torch.Tensor:
    r"""``iters`` order-1 Björck–Bowie steps from ``matrix / ||matrix||_2``, on its smaller side.

    A tall ``A`` iterates :math:`A \leftarrow \tfrac32 A - \tfrac12 A (A^T A)` (a wide one its
    transpose). From :math:`\|A_0\|_2 \le 1` each singular value follows
    :math:`s \mapsto s (3 - s^2)/2 \le 1`: it rises to 1 and never overshoots, so
    :math:`\|Q\|_2 \le 1` (up to rounding) after *any* number of steps. The scale is the exact
    spectral norm, detached (the polar factor does not depend on it).
    """
    wide = matrix.shape[0] < matrix.shape[1]
    a: torch.Tensor = matrix.mT if wide else matrix
    scale = torch.linalg.matrix_norm(a.detach(), ord=2).clamp_min(_SCALE_FLOOR)
    a = a / scale
    for _ in range(iters):
        a = 1.5 * a - 0.5 * a @ (a.mT @ a)
    result: torch.Tensor = a.mT if wide else a
    return result


class RKOConv2d(BaselineConv2d):
    r"""A 2-D convolution whose reshaped kernel is orthogonalized, scaled to be 1-Lipschitz.

    Args:
        in_channels, out_channels: channel counts (any, ``in != out`` allowed).
        kernel_size: int or pair; a multiple of ``stride``.
        stride: pixel-unshuffle factor before a stride-1 convolution (default 1; an int or
            a pair of equal ints).
        padding: ``"circular"`` (default) or ``"same"`` (zeros); the claim holds for both.
        bias: whether to add a learnable bias (default True).
        bjorck_iters: Björck–Bowie steps per kernel construction (default 20); convergence
            needs about :math:`\log_{1.5}(\sigma_{\max}/\sigma_{\min}) + 5` steps for the
            reshaped matrix, the claim holds for any count.

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
        bjorck_iters: int = 20,
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, bias)
        self.bjorck_iters = positive_int(bjorck_iters, "bjorck_iters")
        self.raw_weight = self._new_kernel()

    @property
    def taps(self) -> int:
        """The number of taps ``T`` of the inner kernel (``K1 * K2`` after striding)."""
        return self.inner_kernel_size[0] * self.inner_kernel_size[1]

    @property
    def weight(self) -> torch.Tensor:
        r""":math:`Q / \sqrt{T}`, ``Q`` the Björck factor of ``raw_weight`` reshaped to
        ``out x (in * T)``, reshaped back (torch layout)."""
        matrix = self.raw_weight.reshape(self.out_channels, -1)
        q = bjorck_semi_orthogonal(matrix, self.bjorck_iters)
        return (q / math.sqrt(self.taps)).reshape(self.raw_weight.shape)

    def lipschitz_bound(self) -> float:
        r"""1: :math:`\|\mathrm{conv}\| \le \sqrt{T} \|Q / \sqrt{T}\|_2 = \|Q\|_2 \le 1`,
        for every input size and either padding (rounding adds a few ``n * eps``)."""
        return 1.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._apply_conv(x, self.weight)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, bjorck_iters={self.bjorck_iters}"
