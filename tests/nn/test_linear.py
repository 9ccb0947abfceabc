"""BjorckLinear: orthogonality against the reference, claims, GNP, export, gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gnpcheck.nn import BjorckLinear
from gnpcheck.tolerances import (
    FLOAT64_KERNEL_AGREEMENT,
    gnp_tolerance,
    matrix_orthogonality_tolerance,
)

SHAPES = [(4, 4), (6, 3), (3, 6), (1, 5)]


def _layer(in_features: int, out_features: int, **kwargs: object) -> BjorckLinear:
    kwargs.setdefault("dtype", torch.float64)
    return BjorckLinear(
        in_features, out_features, generator=torch.Generator().manual_seed(0), **kwargs
    )  # type: ignore[arg-type]


def _perturb(layer: BjorckLinear) -> None:
    """Move the parameters away from orthogonality (as training does)."""
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        layer.weight_tilde.add_(
            0.3 * torch.randn(layer.weight_tilde.shape, generator=generator, dtype=torch.float64)
        )


ORTHOGONALIZERS = [{"bjorck_iters": 40}, {"orthogonalizer": "polar"}]


@pytest.mark.parametrize("options", ORTHOGONALIZERS, ids=["bjorck", "polar"])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_weight_equals_the_reference_polar_factor(
    shape: tuple[int, int], options: dict[str, object]
) -> None:
    layer = _layer(*shape, **options)
    _perturb(layer)
    assert (
        np.abs(layer.weight.detach().numpy() - layer.to_reference()).max()
        <= FLOAT64_KERNEL_AGREEMENT
    )
    tolerance = matrix_orthogonality_tolerance(np.float64, min(shape))
    assert layer.orthogonality_defect() <= tolerance


@pytest.mark.parametrize("options", ORTHOGONALIZERS, ids=["bjorck", "polar"])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_claims_and_gnp(shape: tuple[int, int], options: dict[str, object]) -> None:
    in_features, out_features = shape
    layer = _layer(in_features, out_features, **options)
    _perturb(layer)
    expected = {"lipschitz"} | ({"gnp"} if out_features <= in_features else set())
    expected |= {"orthogonal"} if out_features == in_features else set()
    assert layer.claims == expected
    x = torch.randn(5, in_features, dtype=torch.float64, requires_grad=True)
    y = layer(x)
    g = torch.randn(y.shape, dtype=torch.float64)
    (grad,) = torch.autograd.grad(y, x, g)
    ratio = grad.norm(dim=1) / g.norm(dim=1)
    if "gnp" in layer.claims:
        assert (ratio - 1).abs().max().item() <= gnp_tolerance(torch.float64, out_features)
    else:
        assert ratio.max().item() <= 1 + gnp_tolerance(torch.float64, out_features)
        assert ratio.min().item() < 1 - 1e-3


def test_export_and_gradients() -> None:
    layer = _layer(5, 3)
    with torch.no_grad():
        layer.bias.normal_()  # type: ignore[union-attr]
    x = torch.randn(4, 5, dtype=torch.float64)
    assert isinstance(layer.export(), torch.nn.Linear)
    assert (layer.export()(x) - layer(x)).abs().max().item() <= FLOAT64_KERNEL_AGREEMENT
    (layer(x) * torch.randn(4, 3, dtype=torch.float64)).sum().backward()
    assert layer.weight_tilde.grad is not None
    assert layer.weight_tilde.grad.abs().max() > 0
    assert layer.bias is not None
    assert layer.bias.grad is not None


def test_float32_default_is_orthonormal_after_perturbation() -> None:
    layer = _layer(16, 16, dtype=torch.float32)
    with torch.no_grad():
        layer.weight_tilde.add_(
            0.1 * torch.randn(16, 16, generator=torch.Generator().manual_seed(2))
        )
    assert layer.orthogonality_defect() <= matrix_orthogonality_tolerance(np.float32, 16)
