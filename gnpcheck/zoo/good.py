"""Layers that are what they claim: the zoo's controls. The audit must find no violation.

- :class:`OrthogonalConv2d`: a 3x3 BCOP convolution with circular padding, its kernel
  rebuilt from the parameters on every call (orthogonal, hence 1-Lipschitz and GNP).
- :class:`OrthogonalLinear`: ``exp(A - A^T)`` applied to the flattened input (orthogonal).
- :class:`GNPNetwork`: orthogonal convolution, MaxMin, orthogonal convolution, GroupSort,
  orthogonal linear layer: a small third-party-style network, 1-Lipschitz and GNP.

Every layer states its claims in ``claims`` and its constant in ``lipschitz_bound()``.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from gnpcheck.zoo._parts import (
    bcop_kernel,
    circular_conv2d,
    group_sort,
    max_min,
    orthogonal,
    projector,
    random_tensor,
)

__all__ = ["GNPNetwork", "OrthogonalConv2d", "OrthogonalLinear"]


class OrthogonalConv2d(nn.Module):
    """A 3x3 BCOP convolution on ``channels`` channels (even), circular padding, with bias.

    Parameters: ``h`` (``n x n``, orthogonalized by QR), ``rows`` and ``columns``
    (``2 x n x n/2`` each: the row and column projectors of rank ``n/2``), ``bias``.
    """

    claims: ClassVar[frozenset[str]] = frozenset({"lipschitz", "orthogonal", "gnp"})

    def __init__(self, channels: int = 4, seed: int = 0) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        n = channels
        self.h = nn.Parameter(random_tensor(generator, n, n))
        self.rows = nn.Parameter(random_tensor(generator, 2, n, n // 2))
        self.columns = nn.Parameter(random_tensor(generator, 2, n, n // 2))
        self.bias = nn.Parameter(random_tensor(generator, n, scale=0.1))

    def lipschitz_bound(self) -> float:
        """1: the operator is orthogonal."""
        return 1.0

    def kernel(self) -> torch.Tensor:
        """The taps-first ``(3, 3, n, n)`` kernel built from the current parameters."""
        rows = [projector(r) for r in self.rows]
        columns = [projector(c) for c in self.columns]
        return bcop_kernel(orthogonal(self.h), rows, columns)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Circular cross-correlation with :meth:`kernel`, plus the bias."""
        return circular_conv2d(x, self.kernel()) + self.bias.reshape(1, -1, 1, 1)

    def export(self) -> nn.Module:
        """A plain ``nn.Conv2d`` (circular padding 1) with the current kernel and bias."""
        return self._plain(self.kernel().detach())

    def _plain(self, kernel: torch.Tensor) -> nn.Conv2d:
        """``nn.Conv2d`` applying the taps-first ``kernel`` as :meth:`forward` does."""
        n = kernel.shape[-1]
        conv = nn.Conv2d(
            n, n, 3, padding=1, padding_mode="circular", dtype=kernel.dtype, device=kernel.device
        )
        with torch.no_grad():
            conv.weight.copy_(kernel.permute(2, 3, 0, 1))
            conv.bias = nn.Parameter(self.bias.detach().clone())
        return conv


class OrthogonalLinear(nn.Module):
    """``x.flatten(1) @ exp(A - A^T)^T + b`` on ``features`` features: an orthogonal matrix."""

    claims: ClassVar[frozenset[str]] = frozenset({"lipschitz", "orthogonal", "gnp"})

    def __init__(self, features: int, seed: int = 0) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.a = nn.Parameter(random_tensor(generator, features, features, scale=0.1))
        self.bias = nn.Parameter(random_tensor(generator, features, scale=0.1))

    def lipschitz_bound(self) -> float:
        """1: the matrix is orthogonal."""
        return 1.0

    def weight(self) -> torch.Tensor:
        """The orthogonal matrix ``exp(A - A^T)``."""
        matrix: torch.Tensor = torch.linalg.matrix_exp(self.a - self.a.T)
        return matrix

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The affine map on the flattened input."""
        return x.flatten(1) @ self.weight().T + self.bias


class GNPNetwork(nn.Module):
    """Orthogonal conv, MaxMin, orthogonal conv, GroupSort(4), orthogonal linear, on inputs
    ``(channels, size, size)``: 1-Lipschitz and gradient-norm-preserving everywhere."""

    claims: ClassVar[frozenset[str]] = frozenset({"lipschitz", "gnp"})

    def __init__(self, channels: int = 4, size: int = 6, seed: int = 0) -> None:
        super().__init__()
        self.first = OrthogonalConv2d(channels, seed)
        self.second = OrthogonalConv2d(channels, seed + 1)
        self.head = OrthogonalLinear(channels * size * size, seed + 2)

    def lipschitz_bound(self) -> float:
        """1: a composition of orthogonal maps and sorting permutations."""
        return 1.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The composition."""
        z = self.second(max_min(self.first(x)))
        out: torch.Tensor = self.head(group_sort(z, 4))
        return out
