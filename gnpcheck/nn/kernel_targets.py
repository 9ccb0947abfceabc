"""The PyTorch BCOP layers as targets of the property suite (:mod:`gnpcheck.targets`).

``--gnp-target=gnpcheck.nn.kernel_targets:bcop_float64`` (or ``GNPCHECK_TARGET``) runs the
suite on the kernels :class:`~gnpcheck.nn.BCOPConv1d` / :class:`~gnpcheck.nn.BCOPConv2d`
build, applied by the layers' own padding and convolution; ``bcop_float32`` does the same
for float32 layers (tolerances scale with float32's epsilon).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import NDArray

from gnpcheck import __version__
from gnpcheck.nn._arguments import padding_widths
from gnpcheck.nn.bcop import BCOPConv1d, BCOPConv2d
from gnpcheck.reference import from_torch_layout, to_torch_layout
from gnpcheck.targets import CONVENTION, GNP, ORTHOGONAL, KernelFactory, KernelTarget

__all__ = ["bcop_float32", "bcop_float64", "layer_convolve"]


def _factory(dtype: torch.dtype) -> KernelFactory:
    def factory(
        *, channels: int, kernel_size: int, spatial_ndim: int, seed: int
    ) -> NDArray[np.float64]:
        cls = BCOPConv1d if spatial_ndim == 1 else BCOPConv2d
        generator = torch.Generator().manual_seed(seed)
        layer = cls(channels, channels, kernel_size, dtype=dtype, generator=generator)
        return from_torch_layout(layer.weight.detach().double().numpy())

    return factory


def layer_convolve(kernel: NDArray[np.float64], x: NDArray[np.float64]) -> NDArray[np.float64]:
    """Apply a taps-first kernel as the layers do: circular ``F.pad``, then ``conv1d/conv2d``."""
    spatial_ndim = kernel.ndim - 2
    weight = torch.from_numpy(to_torch_layout(kernel))
    padded = F.pad(
        torch.from_numpy(np.asarray(x, dtype=np.float64)),
        padding_widths(kernel.shape[0], spatial_ndim),
        mode="circular",
    )
    conv = F.conv1d if spatial_ndim == 1 else F.conv2d
    return np.asarray(conv(padded, weight).numpy())


bcop_float64 = KernelTarget(
    name="gnpcheck.nn BCOP layer (float64)",
    version=__version__,
    factory=_factory(torch.float64),
    claims=frozenset({ORTHOGONAL, GNP, CONVENTION}),
    convolve=layer_convolve,
)

bcop_float32 = KernelTarget(
    name="gnpcheck.nn BCOP layer (float32)",
    version=__version__,
    factory=_factory(torch.float32),
    claims=frozenset({ORTHOGONAL, GNP, CONVENTION}),
    dtype="float32",
    convolve=layer_convolve,
)
