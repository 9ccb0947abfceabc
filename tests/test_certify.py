"""Margin certificates, the hinge loss and the PGD attack on tiny exact models."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from gnpcheck.certify import (
    certified,
    certified_radius,
    logit_margin,
    max_margin_hinge_loss,
    multiclass_hinge_loss,
    pgd_l2,
)
from gnpcheck.errors import InvalidArgumentError


def test_margin_excludes_the_true_class() -> None:
    logits = torch.tensor([[3.0, 1.0, 2.0], [0.0, 5.0, 5.5]])
    labels = torch.tensor([0, 1])
    torch.testing.assert_close(logit_margin(logits, labels), torch.tensor([1.0, -0.5]))


def test_certificate_threshold_is_sqrt2_l_eps() -> None:
    logits = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    labels = torch.tensor([0, 0])
    epsilon = 1 / math.sqrt(2) - 1e-6
    assert certified(logits, labels, epsilon, 1.0).tolist() == [True, True]
    assert certified(logits, labels, 1 / math.sqrt(2) + 1e-6, 1.0).tolist() == [False, False]
    torch.testing.assert_close(
        certified_radius(logits, labels, 2.0), torch.full((2,), 1 / (2 * math.sqrt(2)))
    )


def test_certified_radius_is_sound_for_a_linear_classifier() -> None:
    """For f(x) = Wx with ||W|| = 1 the true radius is the margin over ||w_y - w_j||."""
    weight = torch.linalg.qr(torch.randn(4, 4, generator=torch.Generator().manual_seed(0)))[0][:3]
    x = torch.randn(1, 4, generator=torch.Generator().manual_seed(1))
    logits = x @ weight.T
    label = logits.argmax(dim=1)
    radius = float(certified_radius(logits, label, 1.0))
    margins = logits[0, label] - logits[0]
    exact = min(
        float(margins[j] / (weight[label[0]] - weight[j]).norm())
        for j in range(3)
        if j != int(label)
    )
    assert radius <= exact + 1e-6
    assert radius >= exact / math.sqrt(2) - 1e-6


def test_hinge_loss_is_torchs_multi_margin_loss_and_zero_beyond_margin() -> None:
    logits = torch.tensor([[3.0, 0.0, 0.5], [0.0, 1.0, 0.9]])
    labels = torch.tensor([0, 1])
    expected = ((0 + 0) + (max(0, 1 - 1) + max(0, 1 - 0.1))) / 3 / 2
    assert float(multiclass_hinge_loss(logits, labels, 1.0)) == pytest.approx(expected)
    assert float(multiclass_hinge_loss(logits[:1], labels[:1], 2.4)) == 0.0


def test_max_margin_hinge_is_the_hinge_of_the_certified_margin() -> None:
    logits = torch.tensor([[3.0, 0.0, 2.5], [0.0, 1.0, 0.9], [0.0, 4.0, 1.0]])
    labels = torch.tensor([0, 1, 1])
    # margins to the strongest competitor: 0.5, 0.1, 3.0
    expected = (max(0, 1 - 0.5) + max(0, 1 - 0.1) + 0) / 3
    assert float(max_margin_hinge_loss(logits, labels, 1.0)) == pytest.approx(expected)
    assert float(max_margin_hinge_loss(logits, labels, 0.0)) == 0.0


def test_max_margin_hinge_pushes_only_the_strongest_competitor() -> None:
    logits = torch.tensor([[1.0, 0.8, 0.7, -5.0]], requires_grad=True)
    max_margin_hinge_loss(logits, torch.tensor([0]), 1.0).backward()
    assert logits.grad is not None
    assert logits.grad.tolist() == [[-1.0, 1.0, 0.0, 0.0]]
    spread = logits.detach().clone().requires_grad_()
    multiclass_hinge_loss(spread, torch.tensor([0]), 1.0).backward()
    assert spread.grad is not None
    assert spread.grad[0, 2] > 0  # the seed's hinge also pushes the second competitor


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (
            lambda: logit_margin(torch.zeros(3), torch.zeros(3, dtype=torch.long)),
            "logits has shape",
        ),
        (
            lambda: logit_margin(torch.zeros(3, 2), torch.zeros(2, dtype=torch.long)),
            "labels has shape",
        ),
        (
            lambda: certified(torch.zeros(1, 2), torch.zeros(1, dtype=torch.long), 1.0, 0.0),
            "lipschitz=0.0",
        ),
        (
            lambda: multiclass_hinge_loss(
                torch.zeros(1, 2), torch.zeros(1, dtype=torch.long), -1.0
            ),
            "margin=-1.0",
        ),
        (
            lambda: max_margin_hinge_loss(
                torch.zeros(1, 2), torch.zeros(1, dtype=torch.long), -2.0
            ),
            "margin=-2.0",
        ),
        (
            lambda: pgd_l2(
                nn.Identity(), torch.zeros(1, 2), torch.zeros(1, dtype=torch.long), 1.0, steps=0
            ),
            "steps=0",
        ),
    ],
    ids=["logits-ndim", "labels-shape", "lipschitz", "margin", "max-margin", "steps"],
)
def test_bad_arguments(call: object, match: str) -> None:
    with pytest.raises(InvalidArgumentError, match=match):
        call()  # type: ignore[operator]


def test_pgd_finds_the_boundary_of_a_linear_classifier() -> None:
    """f(x) = (x1, -x1): the margin is 2 x1, the boundary at distance x1 along e1."""
    model = nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, 0.0], [-1.0, 0.0]]))
    inputs = torch.tensor([[0.3, 0.5], [0.6, 0.5]])
    labels = torch.tensor([0, 0])
    robust = pgd_l2(
        model,
        inputs,
        labels,
        epsilon=0.45,
        steps=50,
        restarts=2,
        generator=torch.Generator().manual_seed(0),
    )
    assert robust.tolist() == [False, True]
    logits = model(inputs)
    # ||f||_Lip = sqrt(2): certified at 0.45 needs margin > 2 * 0.45 -> only the second.
    assert certified(logits, labels, 0.45, math.sqrt(2)).tolist() == [False, True]
