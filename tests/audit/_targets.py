"""Small targets the audit tests point the auditor at, each with a known answer."""

from __future__ import annotations

import time

import numpy as np
import torch
from torch import nn

from gnpcheck.reference import random_bcop_2d, to_torch_layout

__all__ = [
    "DropsBatch",
    "Hangs",
    "MutatesOriginal",
    "NeedsCuda",
    "Raises",
    "ReturnsTuple",
    "SometimesExpanding",
    "bcop_weight",
    "make_orthogonal_conv",
    "orthogonal_conv",
]


def bcop_weight(channels: int, seed: int, scale: float = 1.0) -> torch.Tensor:
    """A float64 BCOP kernel from the reference, in torch layout, times ``scale``."""
    factors = random_bcop_2d(channels, 3, np.random.default_rng(seed))
    return scale * torch.from_numpy(to_torch_layout(factors.kernel()))


def orthogonal_conv(
    channels: int = 4,
    seed: int = 0,
    scale: float = 1.0,
    bias: bool = True,
    padding_mode: str = "circular",
) -> nn.Conv2d:
    """``nn.Conv2d`` with circular padding and a reference BCOP kernel (times ``scale``)."""
    conv = nn.Conv2d(channels, channels, 3, padding=1, padding_mode=padding_mode, bias=bias)
    conv = conv.double()
    with torch.no_grad():
        conv.weight.copy_(bcop_weight(channels, seed, scale))
        if bias:
            conv.bias.copy_(torch.linspace(-1, 1, channels, dtype=torch.float64))
    return conv


def make_orthogonal_conv() -> nn.Conv2d:
    """A zero-argument factory (for ``module:factory`` specs)."""
    return orthogonal_conv()


class SometimesExpanding(nn.Module):
    """The identity on 4 features times ``1 + 0.1 (u - 1/2)``, ``u`` uniform from the global
    generator when built: 1-Lipschitz exactly when ``u <= 1/2``, so the verdict depends on
    the seed an audit builds it with."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = 1 + 0.1 * (float(torch.rand(())) - 0.5)
        self.weight = nn.Parameter(torch.eye(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.weight.T * self.scale


class Schedule:
    """A plain object kept in a state dict: picklable, but not loadable with weights_only."""

    def __init__(self, step: int) -> None:
        self.step = step


class Hangs(nn.Module):
    """Never returns from forward (sleeps in short steps until the process ends)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        while True:
            time.sleep(0.05)


class Raises(nn.Module):
    """Raises on every call."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("boom from the target")


class ReturnsTuple(nn.Module):
    """Returns ``(x, x)`` instead of a tensor."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x, x


class DropsBatch(nn.Module):
    """Sums over the batch axis: the output has the wrong shape."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.sum(dim=0)


class NeedsCuda(nn.Module):
    """Moves its input to CUDA, as a layer hard-wired to a GPU does."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.cuda()


class MutatesOriginal(nn.Module):
    """Scales a tensor of the module it was built from on every call (a hook through a
    closure: deep copies keep writing to the original)."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1, dtype=torch.float64))
        original = self.scale

        def hook(module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
            with torch.no_grad():
                original.mul_(1.5)

        self.register_forward_pre_hook(hook)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 1.0
