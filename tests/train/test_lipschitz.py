"""Claimed and measured Lipschitz bounds, checked against Jacobians from autograd; the guard."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from gnpcheck.certify.lipschitz import UncertifiableModelError, chain_layers, model_lipschitz
from gnpcheck.certify.operators import conv_operator, jacobian_singular_values
from gnpcheck.models import build_model
from gnpcheck.nn import BCOPConv2d, MaxMin
from gnpcheck.nn.baselines import RKOConv2d


def _jacobian_singular_values(layer: nn.Module, shape: tuple[int, ...]) -> np.ndarray:
    """The oracle: singular values of the layer's Jacobian, autograd in float64."""
    layer = layer.double().eval()
    x = torch.randn(shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    jacobian = torch.autograd.functional.jacobian(lambda v: layer(v[None])[0], x)
    matrix = jacobian.reshape(math.prod(jacobian.shape[: -len(shape)]), -1)
    return np.sort(torch.linalg.svdvals(matrix).numpy())[::-1]


def _bcop(padding: str) -> BCOPConv2d:
    return BCOPConv2d(
        2, 8, 4, stride=2, padding=padding, generator=torch.Generator().manual_seed(0)
    )


class _ScaledRKO(RKOConv2d):
    """Applies 2.5 times the RKO kernel but still claims 1: a false claim."""

    @property
    def weight(self) -> torch.Tensor:
        return 2.5 * super().weight


class _LyingForward(BCOPConv2d):
    """Its output is not what its weight computes."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 3 * super().forward(x)


def test_circular_spectrum_is_the_jacobians_exactly() -> None:
    layer = _bcop("circular").double()
    values, method = jacobian_singular_values(conv_operator(layer, (8, 8)))
    assert "exact" in method
    np.testing.assert_allclose(values, _jacobian_singular_values(layer, (2, 8, 8)), atol=1e-12)
    bound = model_lipschitz(nn.Sequential(layer), (2, 8, 8))
    assert bound.layers[0].measured == pytest.approx(values[0], abs=1e-12)
    assert bound.claimed == 1.0


@pytest.mark.parametrize("make", [lambda: _bcop("same"), lambda: RKOConv2d(2, 3, 3, 1, "same")])
def test_zero_padding_bound_is_above_the_jacobians_norm(make: object) -> None:
    torch.manual_seed(0)
    layer = make().double()  # type: ignore[operator]
    oracle = _jacobian_singular_values(layer, (2, 8, 8))
    values, method = jacobian_singular_values(conv_operator(layer, (8, 8)))
    assert "dense" in method
    np.testing.assert_allclose(values, oracle[: values.size], atol=1e-12)
    measured = model_lipschitz(nn.Sequential(layer), (2, 8, 8)).measured
    assert oracle[0] - 1e-12 <= measured
    assert "upper bound" in model_lipschitz(nn.Sequential(layer), (2, 8, 8)).layers[0].method


def test_plain_layers_are_measured_and_claim_nothing() -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(1, 3, 3, stride=2, padding=1).double()
    linear = nn.Linear(3 * 4 * 4, 5).double()
    model = nn.Sequential(conv, nn.Flatten(), linear)
    bound = model_lipschitz(model, (1, 8, 8))
    conv_bound, _, linear_bound = bound.layers
    assert conv_bound.claimed is None
    assert linear_bound.claimed is None
    assert conv_bound.measured >= _jacobian_singular_values(conv, (1, 8, 8))[0] - 1e-12
    exact = float(torch.linalg.svdvals(linear.weight.detach())[0])
    assert linear_bound.measured == pytest.approx(exact, rel=1e-12)
    assert bound.claimed == bound.measured == pytest.approx(conv_bound.measured * exact)


def test_a_false_claim_is_caught_and_the_measured_bound_certifies() -> None:
    torch.manual_seed(0)
    layer = _ScaledRKO(2, 2, 3).double()
    bound = model_lipschitz(nn.Sequential(layer, MaxMin()), (2, 6, 6))
    true_norm = _jacobian_singular_values(layer, (2, 6, 6))[0]
    assert bound.claimed == 1.0
    assert bound.measured == pytest.approx(true_norm, rel=1e-10)
    assert true_norm > 1
    assert (bound.source, bound.certified_with) == ("measured", bound.measured)
    assert "certifying with the larger, measured" in bound.describe()


def test_a_contracting_layer_is_certified_with_its_claim() -> None:
    bound = model_lipschitz(build_model("small", "rko"), (1, 28, 28))
    assert bound.measured < 1.0
    assert (bound.source, bound.certified_with) == ("claimed", 1.0)


def test_small_bcop_bounds_and_the_mode_is_restored() -> None:
    model = build_model("small")
    model.train()
    bound = model_lipschitz(model, (1, 28, 28))
    assert model.training
    assert [b.name for b in bound.layers] == [name for name, _ in chain_layers(model)]
    assert bound.claimed == 1.0
    # float32 kernels: every measured factor is 1 up to float32 rounding of the kernel.
    assert abs(bound.measured - 1.0) < 1e-5
    text = bound.to_text()
    assert "conv1" in text
    assert "circulant spectrum, 14x14 grid (exact)" in text


class _Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = BCOPConv2d(1, 1, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x)


@pytest.mark.parametrize(
    ("model", "match"),
    [
        (
            nn.Sequential(BCOPConv2d(1, 2, 3), nn.BatchNorm2d(2)),
            r"'1' \(BatchNorm2d\) has a Lipschitz",
        ),
        (
            nn.Sequential(nn.Flatten(), nn.Tanh()),
            r"'1' \(Tanh\) has a Lipschitz bound that gnpcheck",
        ),
        (
            nn.Sequential(_Residual()),
            r"'0' \(_Residual\) has submodules but is not an nn.Sequential",
        ),
        (nn.Sequential(_LyingForward(1, 2, 3)), r"does not compute the map its weight"),
    ],
    ids=["batchnorm", "tanh", "residual", "lying-forward"],
)
def test_the_guard_refuses_what_it_cannot_bound(model: nn.Module, match: str) -> None:
    with pytest.raises(UncertifiableModelError, match=match):
        model_lipschitz(model, (1, 6, 6))
