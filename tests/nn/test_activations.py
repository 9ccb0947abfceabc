"""MaxMin and GroupSort: definitions, gradient norm preservation, and composites with BCOP."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from gnpcheck.nn import BCOPConv2d, BjorckLinear, GroupSort, InvertibleDownsampling, MaxMin
from gnpcheck.tolerances import gnp_tolerance

from ._helpers import dense_jacobian


def _x(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(shape, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


def test_maxmin_definition() -> None:
    x = torch.tensor([[3.0, -1.0, 2.0, 5.0]])  # halves (3, -1) and (2, 5)
    assert torch.equal(MaxMin()(x), torch.tensor([[3.0, 5.0, 2.0, -1.0]]))


def test_groupsort_two_is_maxmin() -> None:
    x = _x(3, 8, 4, 4)
    assert torch.equal(GroupSort(2)(x), MaxMin()(x))


def test_groupsort_sorts_strided_groups_descending() -> None:
    x = _x(2, 6, 5)
    y = GroupSort(3)(x)
    groups = y.reshape(2, 3, 2, 5)  # group j: channels j, j + 2, j + 4
    assert torch.all(groups[:, :-1] >= groups[:, 1:])
    expected = x.reshape(2, 3, 2, 5).sort(dim=1, descending=True).values.reshape(2, 6, 5)
    assert torch.equal(y, expected)
    assert torch.equal(GroupSort(1)(x), x)


@pytest.mark.parametrize(
    "module", [MaxMin(), GroupSort(4), MaxMin(dim=-1)], ids=["maxmin", "groupsort4", "maxmin-last"]
)
def test_jacobian_is_a_permutation(module: nn.Module) -> None:
    x = _x(1, 8, 4)
    jacobian = dense_jacobian(module, x)
    assert set(np.unique(jacobian)) <= {0.0, 1.0}
    assert np.all(jacobian.sum(axis=0) == 1)
    assert np.all(jacobian.sum(axis=1) == 1)


def test_maxmin_jacobian_is_a_permutation_at_ties() -> None:
    """Ties (e.g. two ReLU-like zeros, or equal pixels) keep the permutation: the pair goes
    through unswapped, with its gradient, instead of each half getting half of both."""
    x = torch.tensor([[1.0, 0.0, 1.0, 0.0]], dtype=torch.float64)  # pairs (1, 1) and (0, 0)
    jacobian = dense_jacobian(MaxMin(), x)
    assert np.array_equal(jacobian, np.eye(4))
    g = torch.tensor([[1.0, 2.0, -3.0, 0.5]], dtype=torch.float64)
    (grad,) = torch.autograd.grad(MaxMin()(x.requires_grad_()), x, g)
    assert torch.equal(grad.norm(), g.norm())


def test_maxmin_backward_matches_finite_differences_away_from_ties() -> None:
    x = _x(2, 6, 4).requires_grad_()
    assert torch.autograd.gradcheck(MaxMin(), (x,))
    assert torch.autograd.gradcheck(MaxMin(dim=-1), (x,))


def _composite() -> nn.Sequential:
    generator = torch.Generator().manual_seed(0)
    options = {"dtype": torch.float64, "generator": generator}
    return nn.Sequential(
        BCOPConv2d(4, 4, 3, **options),
        MaxMin(),
        BCOPConv2d(4, 8, 2, stride=2, **options),  # 16 -> 8 channels after the unshuffle: GNP
        GroupSort(4),
        InvertibleDownsampling(2),
        BCOPConv2d(32, 32, 1, padding="same", **options),
        nn.Flatten(),
        BjorckLinear(32 * 4, 10, **options),
    )


def test_composite_is_gnp_by_autograd() -> None:
    model = _composite()
    for module in model:
        assert "gnp" in getattr(module, "claims", {"gnp"})
    x = _x(3, 4, 8, 8).requires_grad_()
    y = model(x)
    g = _x(*y.shape, seed=1)
    (grad,) = torch.autograd.grad(y, x, g)
    ratio = grad.flatten(1).norm(dim=1) / g.norm(dim=1)
    assert (ratio - 1).abs().max().item() <= gnp_tolerance(torch.float64, x[0].numel())


def test_relu_composite_is_not_gnp() -> None:
    """The same test fails when an activation is only 1-Lipschitz (it can fail)."""
    model = _composite()
    model[1] = nn.ReLU()
    x = _x(3, 4, 8, 8).requires_grad_()
    y = model(x)
    (grad,) = torch.autograd.grad(y, x, torch.ones_like(y))
    ratio = grad.flatten(1).norm(dim=1) / y[0].numel() ** 0.5
    assert (ratio - 1).abs().max().item() > 1e-3
