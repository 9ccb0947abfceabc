"""Invertible downsampling: PyTorch's pixel unshuffle in 2-D, its 1-D analogue, exports."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from gnpcheck.nn import InvertibleDownsampling, InvertibleDownsampling1d

from ._helpers import dense_jacobian


def test_2d_is_pixel_unshuffle_and_exports_to_it() -> None:
    x = torch.randn(2, 3, 6, 4)
    layer = InvertibleDownsampling(2)
    assert torch.equal(layer(x), F.pixel_unshuffle(x, 2))
    assert torch.equal(layer.export()(x), layer(x))
    assert layer.claims == {"lipschitz", "orthogonal", "gnp"}
    assert layer.lipschitz_bound() == 1.0


def test_1d_definition() -> None:
    x = torch.arange(12.0).reshape(1, 2, 6)
    y = InvertibleDownsampling1d(3)(x)
    for c in range(2):
        for r in range(3):
            assert torch.equal(y[0, c * 3 + r], x[0, c, r::3])


def test_1d_export_is_an_exact_strided_conv() -> None:
    x = torch.randn(2, 3, 8, dtype=torch.float64)
    layer = InvertibleDownsampling1d(4)
    assert torch.equal(layer.export(3).double()(x), layer(x))
    exported = layer.export(3, dtype=torch.float64, device="cpu")
    assert exported.weight.dtype == torch.float64
    assert torch.equal(exported(x), layer(x))


def test_jacobians_are_permutations() -> None:
    for layer, x in (
        (InvertibleDownsampling(2), torch.randn(1, 2, 4, 4)),
        (InvertibleDownsampling1d(2), torch.randn(1, 2, 6)),
    ):
        jacobian = dense_jacobian(layer, x)
        assert np.array_equal(jacobian @ jacobian.T, np.eye(x.numel()))
