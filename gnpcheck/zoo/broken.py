r"""Layers broken on purpose, each in a way found in real Lipschitz-layer code.

Each one states the claims its authors meant to make; the audit must find the claim it
breaks (``BROKEN`` in :mod:`gnpcheck.zoo` names it):

- :class:`StaleEvalCacheConv2d` (``fresh_after_step``): caches its kernel on the first
  evaluation call and never refreshes it: after training steps, evaluation still uses the
  kernel of the first call.
- :class:`StaleExportConv2d` (``export_faithful``): its ``export()`` copies the kernel its
  last forward pass computed: right after ``load_state_dict`` (or an optimizer step) with no
  forward in between, the exported convolution is the old layer's.
- :class:`ReusedProjectorConv2d` (``parameter_coverage``): the loop that builds the kernel
  uses the first row projector twice and the second never; the kernel is still a BCOP
  kernel, hence orthogonal, so no spectral check can see it.
- :class:`CancelledRescalingLinear` (``parameter_coverage``): the AOL rescaling
  :math:`t_i = \sum_j |W^T W|_{ij}\, q_j / q_i` with both :math:`q` factors broadcast along
  the same axis, so that they cancel: the learnable :math:`\log q` never influences the
  output, while the layer stays 1-Lipschitz (found in orthogonium 0.0.4's AOL and SLL
  layers, docs/public_layers.rst).
- :class:`FewIterationsBjorckLinear` (``lipschitz``): two Björck–Bowie iterations (order 2)
  from an unscaled, nearly orthogonal weight: :math:`\sigma_{\max}` stays slightly above 1.
- :class:`TruncatedExpConv2d` (``lipschitz``): :math:`\exp(L)` of a skew-symmetric
  convolution ``L`` by its Taylor series truncated after a few terms, as in skew orthogonal
  convolutions; exact for small :math:`\|L\|`, above 1 in norm for large weights.
- :class:`ReshapedNormConv2d` (``lipschitz``): the kernel divided by the spectral norm of
  its reshaped ``out x (in k k)`` matrix (what ``torch.nn.utils.spectral_norm`` normalizes
  for a convolution), which does not bound the convolution operator.
- :class:`FirstSizeNormConv2d` (``input_size_independent``): normalized by the exact operator
  norm at the first input size it sees; at another size the operator norm differs.
- :class:`NaNRenormalizedMaxMin` (``lipschitz``): MaxMin followed by a "renormalization"
  ``v * ||z|| / ||v||`` per pixel, without an epsilon: 0/0 on any all-zero pixel.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from torch import nn

from gnpcheck.zoo._parts import (
    bcop_kernel,
    circular_conv2d,
    max_min,
    orthogonal,
    projector,
    random_tensor,
)
from gnpcheck.zoo.good import OrthogonalConv2d

__all__ = [
    "CancelledRescalingLinear",
    "FewIterationsBjorckLinear",
    "FirstSizeNormConv2d",
    "NaNRenormalizedMaxMin",
    "ReshapedNormConv2d",
    "ReusedProjectorConv2d",
    "StaleEvalCacheConv2d",
    "StaleExportConv2d",
    "TruncatedExpConv2d",
]


class StaleEvalCacheConv2d(OrthogonalConv2d):
    """:class:`~gnpcheck.zoo.good.OrthogonalConv2d` with an evaluation cache that is filled
    once and never invalidated (not by ``train()``, an optimizer step or ``load_state_dict``).
    """

    def __init__(self, channels: int = 4, seed: int = 0) -> None:
        super().__init__(channels, seed)
        self._eval_kernel: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Training: the kernel from the parameters. Evaluation: the cached kernel."""
        if self.training:
            kernel = self.kernel()
        else:
            if self._eval_kernel is None:
                self._eval_kernel = self.kernel().detach()
            kernel = self._eval_kernel
        return circular_conv2d(x, kernel) + self.bias.reshape(1, -1, 1, 1)


class StaleExportConv2d(OrthogonalConv2d):
    """:class:`~gnpcheck.zoo.good.OrthogonalConv2d` with an ``export()`` that reuses the
    kernel of the last forward pass instead of building one from the current parameters."""

    def __init__(self, channels: int = 4, seed: int = 0) -> None:
        super().__init__(channels, seed)
        self._last_kernel: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """As :class:`~gnpcheck.zoo.good.OrthogonalConv2d`, keeping the kernel it used."""
        kernel = self.kernel()
        self._last_kernel = kernel.detach()
        return circular_conv2d(x, kernel) + self.bias.reshape(1, -1, 1, 1)

    def export(self) -> nn.Module:
        """An ``nn.Conv2d`` with the last forward's kernel and the current bias."""
        kernel = self.kernel().detach() if self._last_kernel is None else self._last_kernel
        return self._plain(kernel)


class ReusedProjectorConv2d(OrthogonalConv2d):
    """:class:`~gnpcheck.zoo.good.OrthogonalConv2d` whose kernel loop indexes the row
    projectors with ``rows[0]`` where ``rows[i]`` belongs: ``rows[1]`` is never used."""

    def kernel(self) -> torch.Tensor:
        """The kernel, with the first row projector in both row factors."""
        rows = [projector(self.rows[0]) for _ in self.rows]
        columns = [projector(c) for c in self.columns]
        return bcop_kernel(orthogonal(self.h), rows, columns)


def _bjorck_order2(a: torch.Tensor, iterations: int) -> torch.Tensor:
    """Björck–Bowie of order 2: ``A <- A (15 I - 10 A^T A + 3 (A^T A)^2) / 8``."""
    eye = torch.eye(a.shape[1], dtype=a.dtype, device=a.device)
    for _ in range(iterations):
        gram = a.T @ a
        a = a @ (15 * eye - 10 * gram + 3 * gram @ gram) / 8
    return a


class FewIterationsBjorckLinear(nn.Module):
    """An "orthogonal" linear layer on the flattened input: two Björck iterations of a weight
    initialized as an orthogonal matrix plus 20% noise, with no scaling first.

    Each iteration maps a singular value ``s`` to ``s (15 - 10 s^2 + 3 s^4) / 8``, which is
    increasing, so values above 1 approach 1 from above: after two iterations the largest
    is ``1 + O(1e-3)``; converging to rounding would take a third.
    """

    claims: ClassVar[frozenset[str]] = frozenset({"lipschitz", "orthogonal", "gnp"})

    def __init__(self, features: int = 64, seed: int = 0, iterations: int = 2) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        start = orthogonal(random_tensor(generator, features, features))
        noise = random_tensor(generator, features, features, scale=0.2 / math.sqrt(features))
        self.weight_tilde = nn.Parameter(start + noise)
        self.bias = nn.Parameter(torch.zeros(features, dtype=torch.float64))
        self.iterations = iterations

    def lipschitz_bound(self) -> float:
        """1, as claimed."""
        return 1.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x.flatten(1) @ bjorck(W)^T + b``."""
        return x.flatten(1) @ _bjorck_order2(self.weight_tilde, self.iterations).T + self.bias


class CancelledRescalingLinear(nn.Module):
    r"""A 1-Lipschitz linear layer on the flattened input by AOL rescaling (Prach and Lampert,
    2022): :math:`W \operatorname{diag}(t)^{-1/2}` with
    :math:`t_i = \sum_j |W^T W|_{ij}\, q_j / q_i` and a learnable :math:`q = \exp(s)`, written
    as ``exp(-s) * |W^T W| * exp(s)`` with ``s`` of shape ``(n, 1)``: both factors run along
    the rows, so their product is 1 and :math:`s` never matters. Still 1-Lipschitz (it is
    AOL with :math:`q = 1`); its gradient with respect to :math:`s` is rounding noise.
    """

    claims: ClassVar[frozenset[str]] = frozenset({"lipschitz"})

    def __init__(self, features: int = 64, seed: int = 0) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        scale = 1 / math.sqrt(features)
        self.weight = nn.Parameter(random_tensor(generator, features, features, scale=scale))
        self.log_q = nn.Parameter(random_tensor(generator, features, 1, scale=0.5))

    def lipschitz_bound(self) -> float:
        """1, as claimed."""
        return 1.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x.flatten(1) @ (W diag(t)^{-1/2})^T``, ``t`` with the cancelling rescaling."""
        gram = (self.weight.T @ self.weight).abs()
        t = (torch.exp(-self.log_q) * gram * torch.exp(self.log_q)).sum(dim=1)
        return x.flatten(1) @ (self.weight * t.rsqrt()).T


class TruncatedExpConv2d(nn.Module):
    """``sum_{j <= terms} L^j x / j!`` for the skew-symmetric circular convolution
    ``L = C_K - C_K^T`` (kernel minus its flipped transpose), weights of norm about 3.

    ``exp(L)`` is orthogonal; its truncation is not once ``||L||`` is large.
    """

    claims: ClassVar[frozenset[str]] = frozenset({"lipschitz", "orthogonal", "gnp"})

    def __init__(self, channels: int = 4, seed: int = 0, terms: int = 5) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.weight = nn.Parameter(random_tensor(generator, 3, 3, channels, channels, scale=0.15))
        self.terms = terms

    def lipschitz_bound(self) -> float:
        """1, as claimed."""
        return 1.0

    def skew_kernel(self) -> torch.Tensor:
        """Taps first: ``W_a - W_{-a}^T``, the kernel of ``C_W - C_W^T``."""
        return self.weight - self.weight.flip(0, 1).transpose(2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The truncated exponential series applied to ``x``."""
        kernel = self.skew_kernel()
        term, total = x, x
        for j in range(1, self.terms + 1):
            term = circular_conv2d(term, kernel) / j
            total = total + term
        return total


class ReshapedNormConv2d(nn.Module):
    """A circular 3x3 convolution with kernel ``V / ||V.reshape(out, -1)||_2``."""

    claims: ClassVar[frozenset[str]] = frozenset({"lipschitz"})

    def __init__(self, channels: int = 4, seed: int = 0) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.weight = nn.Parameter(random_tensor(generator, 3, 3, channels, channels))

    def lipschitz_bound(self) -> float:
        """1, as (wrongly) claimed."""
        return 1.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Convolve with the normalized kernel."""
        matrix = self.weight.permute(2, 3, 0, 1).reshape(self.weight.shape[2], -1)
        return circular_conv2d(x, self.weight / torch.linalg.matrix_norm(matrix, ord=2))


def _peaked_taps() -> torch.Tensor:
    """Taps ``(1, -2, -1/2)``: ``|u(theta)|^2 = 21/4 - 2 cos(theta) - cos(2 theta)`` peaks at
    ``theta = 2 pi / 3``, a frequency of every grid whose size 3 divides, of no other."""
    return torch.tensor([1.0, -2.0, -0.5], dtype=torch.float64)


class FirstSizeNormConv2d(nn.Module):
    """A circular 3x3 convolution normalized by its exact operator norm (the largest singular
    value over the FFT grid) at the first input size it sees, then at every size.

    The kernel starts as ``u u^T (x) Q`` (``u`` from :func:`_peaked_taps`, ``Q`` orthogonal):
    its norm peaks at frequency ``2 pi / 3``, on a 12 x 12 grid but not an 8 x 8 one.
    """

    claims: ClassVar[frozenset[str]] = frozenset({"lipschitz"})

    def __init__(self, channels: int = 4, seed: int = 0) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        u = _peaked_taps()
        q = orthogonal(random_tensor(generator, channels, channels))
        self.weight = nn.Parameter(torch.einsum("a,b,ij->abij", u, u, q))
        self.normalized_size: tuple[int, int] | None = None

    def lipschitz_bound(self) -> float:
        """1, as claimed."""
        return 1.0

    def operator_norm(self, size: tuple[int, int]) -> torch.Tensor:
        """The largest singular value of the circular convolution on ``size`` inputs."""
        padded = self.weight.new_zeros(*size, *self.weight.shape[2:])
        padded[:3, :3] = self.weight
        symbol = torch.fft.fft2(padded, dim=(0, 1))
        norm: torch.Tensor = torch.linalg.matrix_norm(symbol, ord=2).max()
        return norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalize at the first size seen, convolve."""
        if self.normalized_size is None:
            self.normalized_size = (int(x.shape[-2]), int(x.shape[-1]))
        kernel = self.weight / self.operator_norm(self.normalized_size)
        return circular_conv2d(x, kernel)


class NaNRenormalizedMaxMin(nn.Module):
    """An orthogonal convolution, MaxMin, and a per-pixel "renormalization"
    ``v * (||z|| / ||v||)`` (``z`` before, ``v`` after MaxMin) meant to undo rounding drift:
    a no-op where defined, 0/0 = NaN on every pixel where ``z`` is zero."""

    claims: ClassVar[frozenset[str]] = frozenset({"lipschitz", "gnp"})

    def __init__(self, channels: int = 4, seed: int = 0) -> None:
        super().__init__()
        self.conv = OrthogonalConv2d(channels, seed)
        with torch.no_grad():
            self.conv.bias.zero_()

    def lipschitz_bound(self) -> float:
        """1, as claimed."""
        return 1.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Convolve, MaxMin, renormalize."""
        z: torch.Tensor = self.conv(x)
        v = max_min(z)
        renormalized: torch.Tensor = v * (z.norm(dim=1, keepdim=True) / v.norm(dim=1, keepdim=True))
        return renormalized
