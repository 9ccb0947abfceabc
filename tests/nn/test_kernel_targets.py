"""The layers as property-suite targets: loadable by name, kernels and operator as the layers'."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gnpcheck.nn import BCOPConv2d
from gnpcheck.reference import circular_conv, from_torch_layout
from gnpcheck.targets import load_target
from gnpcheck.tolerances import FLOAT64_KERNEL_AGREEMENT


@pytest.mark.parametrize("name", ["bcop_float64", "bcop_float32"])
def test_targets_load_and_give_the_layers_kernels(name: str) -> None:
    target = load_target(f"gnpcheck.nn.kernel_targets:{name}")
    kernel = target.kernel(channels=4, kernel_size=3, spatial_ndim=2, seed=5)
    dtype = torch.float64 if target.dtype == "float64" else torch.float32
    layer = BCOPConv2d(4, 4, 3, dtype=dtype, generator=torch.Generator().manual_seed(5))
    assert np.array_equal(kernel, from_torch_layout(layer.weight.detach().double().numpy()))
    assert target.claims == {"orthogonal", "gnp", "convention"}


@pytest.mark.parametrize("spatial_ndim", [1, 2])
def test_convolve_is_the_reference_operator(spatial_ndim: int) -> None:
    target = load_target("gnpcheck.nn.kernel_targets:bcop_float64")
    rng = np.random.default_rng(0)
    kernel = rng.standard_normal((4,) * spatial_ndim + (3, 2))  # even taps: the split matters
    x = rng.standard_normal((2, 2) + (7,) * spatial_ndim)
    assert target.convolve is not None
    y = np.asarray(target.convolve(kernel, x))
    assert np.abs(y - circular_conv(kernel, x)).max() <= FLOAT64_KERNEL_AGREEMENT
