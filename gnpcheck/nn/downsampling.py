r"""Invertible downsampling: pixel unshuffle, an orthogonal permutation of the input.

A factor ``s`` moves each ``s x s`` block of pixels (``s`` samples in 1-D) into channels:
``(C, H, W) -> (C s^2, H / s, W / s)`` with output channel ``c s^2 + r_1 s + r_2`` holding
``x[c, s h + r_1, s w + r_2]`` (PyTorch's ``pixel_unshuffle``), and in 1-D
``(C, L) -> (C s, L / s)`` with channel ``c s + r`` holding ``x[c, s t + r]``. Every input
value lands in exactly one output position, so the map is a permutation: orthogonal,
gradient norm preserving, 1-Lipschitz. BCOP layers with ``stride > 1`` apply it before a
stride-1 orthogonal convolution (Jacobsen et al., i-RevNet, ICLR 2018; Li et al. 2019).
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from gnpcheck.errors import InvalidArgumentError
from gnpcheck.nn._arguments import positive_int

__all__ = [
    "InvertibleDownsampling",
    "InvertibleDownsampling1d",
    "pixel_unshuffle_1d",
    "unshuffle",
]


def pixel_unshuffle_1d(x: torch.Tensor, factor: int) -> torch.Tensor:
    """``(B, C, L) -> (B, C * factor, L / factor)``, channel ``c * factor + r`` <- ``x[c, factor t + r]``."""
    batch, channels, length = x.shape
    blocks = x.reshape(batch, channels, length // factor, factor)
    return blocks.transpose(2, 3).reshape(batch, channels * factor, length // factor)


def unshuffle(x: torch.Tensor, factor: int, spatial_ndim: int) -> torch.Tensor:
    """Pixel unshuffle by ``factor`` in 1-D or 2-D (the identity for ``factor = 1``)."""
    if factor == 1:
        return x
    if spatial_ndim == 1:
        return pixel_unshuffle_1d(x, factor)
    return F.pixel_unshuffle(x, factor)


class _InvertibleDownsamplingNd(nn.Module):
    spatial_ndim: ClassVar[int]

    def __init__(self, factor: int) -> None:
        super().__init__()
        self.factor = positive_int(factor, "factor")

    @property
    def claims(self) -> frozenset[str]:
        """``"lipschitz"``, ``"orthogonal"`` and ``"gnp"``: the map is a permutation."""
        return frozenset({"lipschitz", "orthogonal", "gnp"})

    def _check(self, x: torch.Tensor) -> None:
        if x.ndim != self.spatial_ndim + 2:
            raise InvalidArgumentError(
                f"input has shape {tuple(x.shape)}, but it must have {self.spatial_ndim + 2} "
                "dimensions (batch, channels, spatial...)"
            )
        spatial = tuple(x.shape[2:])
        if any(size % self.factor for size in spatial):
            raise InvalidArgumentError(
                f"factor={self.factor}, but it must divide the input's spatial size {spatial}"
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pixel unshuffle of ``x``."""
        self._check(x)
        return unshuffle(x, self.factor, self.spatial_ndim)

    def lipschitz_bound(self) -> float:
        """1: a permutation preserves every norm."""
        return 1.0

    def extra_repr(self) -> str:
        return f"factor={self.factor}"


class InvertibleDownsampling(_InvertibleDownsamplingNd):
    """2-D pixel unshuffle by ``factor``: ``(B, C, H, W) -> (B, C factor^2, H/factor, W/factor)``.

    Raises:
        InvalidArgumentError: at construction, ``factor < 1``; at forward, an input that is
            not 4-D or whose height or width ``factor`` does not divide.
    """

    spatial_ndim = 2

    def export(self) -> nn.Module:
        """``nn.PixelUnshuffle(factor)``."""
        return nn.PixelUnshuffle(self.factor)


class InvertibleDownsampling1d(_InvertibleDownsamplingNd):
    """1-D pixel unshuffle by ``factor``: ``(B, C, L) -> (B, C factor, L / factor)``.

    Raises:
        InvalidArgumentError: at construction, ``factor < 1``; at forward, an input that is
            not 3-D or whose length ``factor`` does not divide.
    """

    spatial_ndim = 1

    def export(
        self,
        channels: int,
        *,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> nn.Module:
        """The same permutation as a plain ``nn.Conv1d(channels, channels * factor, factor,
        stride=factor, bias=False)`` whose kernel holds one 1 per output channel (exact), in
        ``dtype`` on ``device`` (PyTorch's defaults when ``None``)."""
        channels = positive_int(channels, "channels")
        conv = nn.Conv1d(
            channels,
            channels * self.factor,
            self.factor,
            self.factor,
            bias=False,
            dtype=dtype,
            device=device,
        )
        with torch.no_grad():
            conv.weight.zero_()
            for c in range(channels):
                for r in range(self.factor):
                    conv.weight[c * self.factor + r, c, r] = 1.0
        return conv
