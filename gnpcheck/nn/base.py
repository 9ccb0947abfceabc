"""The interface every constrained convolution of :mod:`gnpcheck.nn` shares.

A constrained layer states its claims (``claims``, a property: they may depend on the
configuration), its claimed Lipschitz bound (:meth:`lipschitz_bound`), exposes the kernel it
applies (``weight``, PyTorch layout), and exports itself to plain PyTorch modules
(:meth:`export`). The audit and the certificates check these claims instead of trusting them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import nn

__all__ = ["Claim", "ConstrainedConv"]

#: The claims a layer may make: ``"lipschitz"`` (operator norm <= lipschitz_bound()),
#: ``"orthogonal"`` (every singular value of the operator is 1), ``"gnp"`` (||J^T g|| = ||g||).
Claim = str


class ConstrainedConv(nn.Module, ABC):
    """Base class of the constrained convolutions (BCOP and the baselines).

    Subclasses implement ``claims``, ``weight``, :meth:`lipschitz_bound`, :meth:`export` and
    ``forward``.
    """

    @property
    @abstractmethod
    def claims(self) -> frozenset[Claim]:
        """What the layer claims in its current configuration (padding, channels, stride)."""

    @property
    @abstractmethod
    def weight(self) -> torch.Tensor:
        """The kernel the layer applies now, PyTorch layout ``(out, in, *kernel_size)``."""

    @abstractmethod
    def lipschitz_bound(self) -> float:
        """The Lipschitz constant the layer claims for its input-to-output map (L2 norms)."""

    @abstractmethod
    def export(self) -> nn.Module:
        """A plain PyTorch module (``nn.Conv1d/2d``, or a ``nn.Sequential`` of plain modules)
        computing the same function with the current parameters."""
