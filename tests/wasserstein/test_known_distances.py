"""Estimates against known Wasserstein-1 distances (docs/wasserstein.rst, Validation).

The lower bound is an estimate with a standard error, so each upper check allows
``Z_UPPER`` standard errors: a correct estimator fails it with probability about 0.13 % (a
one-sided normal tail), and the seeds are fixed, so a pass is not luck re-drawn each run.
Where the comparison is with the *empirical* distance of the held-out samples the estimate
was computed on, duality makes it exact: for any critic, the held-out gap divided by a true
Lipschitz bound is at most the held-out samples' W1, with no statistical slack.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from gnpcheck.errors import InvalidArgumentError
from gnpcheck.wasserstein import WassersteinEstimate, build_critic, estimate, exact_discrete_w1
from gnpcheck.wasserstein.samples import split_pair

#: Standard errors allowed above a known distance (one-sided: 0.13 % false failures).
Z_UPPER = 3.0
#: Rounding allowed between two float64 evaluations of one distance by different algorithms
#: (a simplex vertex and a CDF integral, sums of a few thousand terms): sqrt(eps) is far above
#: their O(n eps) rounding and far below any modelling error (>= 1e-3 here).
FLOAT64_AGREEMENT = math.sqrt(np.finfo(np.float64).eps)


def _heldout(p: torch.Tensor, q: torch.Tensor, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The held-out samples of ``estimate(p, q, ..., holdout=0.5, seed=seed)``."""
    (_, p_held), (_, q_held) = split_pair(p, q, 0.5, torch.Generator().manual_seed(seed))
    return p_held, q_held


def _is_below(result: WassersteinEstimate, exact: float) -> bool:
    return result.lower_bound <= exact + Z_UPPER * result.lower_bound_error


# --- the oracle: exact W1 of discrete distributions -------------------------------------


@pytest.mark.parametrize(
    ("x", "y", "x_weights", "y_weights", "expected"),
    [
        ([[0.0, 0.0]], [[3.0, 4.0]], None, None, 5.0),
        ([0.0, 1.0], [2.0, 3.0], None, None, 2.0),
        ([[0.0, 0.0]], [[-1.0, 0.0], [1.0, 0.0]], None, None, 1.0),
        ([0.0], [1.0, 3.0], None, [0.25, 0.75], 0.25 * 1 + 0.75 * 3),
        ([0.0, 5.0], [0.0, 5.0], [2.0, 2.0], [1.0, 1.0], 0.0),
        ([[0.0, 0.0], [1.0, 1.0]], [[1.0, 0.0], [0.0, 1.0]], None, None, 1.0),
        ([[0.0, 0.0], [4.0, 0.0]], [[0.0, 3.0]], [0.5, 0.5], None, 0.5 * 3 + 0.5 * 5),
    ],
)
def test_exact_w1_of_hand_computed_cases(
    x: list[float], y: list[float], x_weights: object, y_weights: object, expected: float
) -> None:
    value = exact_discrete_w1(x, y, x_weights, y_weights)  # type: ignore[arg-type]
    assert value == pytest.approx(expected, rel=FLOAT64_AGREEMENT, abs=FLOAT64_AGREEMENT)
    swapped = exact_discrete_w1(y, x, y_weights, x_weights)  # type: ignore[arg-type]
    assert swapped == pytest.approx(value, abs=FLOAT64_AGREEMENT)


_points = st.lists(st.floats(-10, 10), min_size=1, max_size=6)


@given(
    x=_points,
    y=_points,
    data=st.data(),
)
def test_exact_w1_in_one_dimension_is_scipys(
    x: list[float], y: list[float], data: st.DataObject
) -> None:
    weights = st.floats(0.01, 1.0)
    a = data.draw(st.lists(weights, min_size=len(x), max_size=len(x)))
    b = data.draw(st.lists(weights, min_size=len(y), max_size=len(y)))
    expected = scipy.stats.wasserstein_distance(x, y, a, b)
    value = exact_discrete_w1(x, y, a, b)
    assert value == pytest.approx(expected, rel=FLOAT64_AGREEMENT, abs=FLOAT64_AGREEMENT)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (([[0.0, 0.0]], [[1.0]]), "x has points of dimension 2 and y of 1"),
        (([], [1.0]), "x has shape (0,), but it must be a non-empty"),
        (([1.0], [np.inf]), "y has shape (1,), but it must be a non-empty"),
        (([0.0, 1.0], [1.0], [1.0]), "x_weights has shape (1,), but it must hold 2"),
        (([0.0], [1.0], None, [-1.0]), "y_weights has shape (1,), but it must hold 1 finite"),
        (([0.0], [1.0], [0.0]), "x_weights sums to 0.0, but the weights must sum to > 0"),
    ],
)
def test_exact_w1_rejects_bad_input(arguments: tuple[object, ...], message: str) -> None:
    with pytest.raises(InvalidArgumentError) as raised:
        exact_discrete_w1(*arguments)  # type: ignore[arg-type]
    assert message in str(raised.value)


# --- translations: W1(p, p + v) = ||v|| -------------------------------------------------


def _translated(
    shape: tuple[int, ...], v: torch.Tensor, count: int = 4000
) -> tuple[torch.Tensor, torch.Tensor]:
    """Independent samples of N(0, I) and of N(0, I) + v."""
    generator = torch.Generator().manual_seed(0)
    p = torch.randn((count, *shape), generator=generator)
    return p, torch.randn((count, *shape), generator=generator) + v


@pytest.mark.parametrize("dim", [2, 16])
def test_translation_fc_critic_reaches_the_norm_of_the_shift(dim: int) -> None:
    # ||v|| = 10 with unit-variance samples: the held-out standard error, sqrt(2 / 2000)
    # = 0.03, is 0.3 % of ||v||, so 0.99 ||v|| is 3 standard errors below the exact value.
    v = torch.randn(dim, generator=torch.Generator().manual_seed(dim))
    v = 10 * v / v.norm()
    p, q = _translated((dim,), v)
    critic = build_critic("fc", (dim,), act="groupsort", hidden=(32, 32), group_size=4, seed=0)
    result = estimate(p, q, critic, steps=100, batch_size=256, lr=0.01, eval_every=50, threads=1)
    assert result.lower_bound >= 0.99 * 10, result.describe()
    assert _is_below(result, 10.0), result.describe()


def test_translation_bcop_conv_critic_reaches_the_norm_of_a_constant_offset() -> None:
    # The MNIST-plus-offset case in miniature: 8x8 images, v = 1.25 in every pixel, ||v|| = 10.
    p, q = _translated((1, 8, 8), torch.full((1, 8, 8), 1.25))
    critic = build_critic("conv", (1, 8, 8), "bcop", "maxmin", hidden=(32,), seed=0)
    result = estimate(p, q, critic, steps=100, batch_size=128, lr=0.01, eval_every=50, threads=1)
    assert result.lower_bound >= 0.99 * 10, result.describe()
    assert _is_below(result, 10.0), result.describe()


# --- small discrete distributions: the transport linear program --------------------------

_X = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]])
_A = np.array([0.5, 0.3, 0.2])
_Y = np.array([[2.0, 1.0], [1.0, 1.0], [3.0, 0.0], [0.0, 1.0]])
_B = np.array([0.25, 0.25, 0.3, 0.2])


def _discrete_samples(count: int = 4000) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    x = torch.from_numpy(_X).float()[
        torch.multinomial(torch.from_numpy(_A), count, True, generator=generator)
    ]
    y = torch.from_numpy(_Y).float()[
        torch.multinomial(torch.from_numpy(_B), count, True, generator=generator)
    ]
    return x, y


def _empirical_w1(p: torch.Tensor, q: torch.Tensor) -> float:
    """Exact W1 of the empirical measures of two sample sets on a few support points."""
    xs, x_counts = torch.unique(p.double(), dim=0, return_counts=True)
    ys, y_counts = torch.unique(q.double(), dim=0, return_counts=True)
    return exact_discrete_w1(xs.numpy(), ys.numpy(), x_counts.numpy(), y_counts.numpy())


def test_discrete_distributions_against_the_transport_program() -> None:
    exact = exact_discrete_w1(_X, _Y, _A, _B)
    p, q = _discrete_samples()
    critic = build_critic("fc", (2,), act="groupsort", hidden=(32, 32), group_size=4, seed=0)
    result = estimate(p, q, critic, steps=200, batch_size=256, lr=0.01, eval_every=100, threads=1)
    assert 0.9 * exact <= result.lower_bound, result.describe()
    assert _is_below(result, exact), result.describe()
    # Duality on the held-out samples themselves: no statistical slack.
    assert result.lower_bound <= _empirical_w1(*_heldout(p, q)) * (1 + FLOAT64_AGREEMENT)


# --- one dimension: scipy.stats.wasserstein_distance -------------------------------------


def _normal_pair(count: int = 4000) -> tuple[torch.Tensor, torch.Tensor]:
    """N(0, 1) and N(1, 2^2) in float64."""
    generator = torch.Generator().manual_seed(0)
    p = torch.randn(count, 1, generator=generator, dtype=torch.float64)
    return p, 1 + 2 * torch.randn(count, 1, generator=generator, dtype=torch.float64)


def _normal_pair_w1() -> float:
    """W1(N(0, 1), N(1, 4)) = E|Z - (1 + 2Z)| = E|Z + 1| = 2 phi(1) + 2 Phi(1) - 1 (quantile
    coupling: in 1-D the monotone map is optimal)."""
    return float(2 * scipy.stats.norm.pdf(1.0) + 2 * scipy.stats.norm.cdf(1.0) - 1)


def test_one_dimension_against_scipy() -> None:
    p, q = _normal_pair()
    critic = build_critic("fc", (1,), act="groupsort", hidden=(16, 16), group_size=4, seed=0)
    result = estimate(p, q, critic.double(), steps=150, lr=0.01, eval_every=50, threads=1)
    p_held, q_held = _heldout(p, q)
    empirical = scipy.stats.wasserstein_distance(p_held[:, 0].numpy(), q_held[:, 0].numpy())
    assert result.lower_bound <= empirical * (1 + FLOAT64_AGREEMENT)
    assert result.lower_bound >= 0.97 * empirical, (result.describe(), empirical)
    exact = _normal_pair_w1()
    assert abs(result.lower_bound - exact) <= Z_UPPER * result.lower_bound_error


# --- a critic that is not 1-Lipschitz -----------------------------------------------------


def test_a_critic_that_is_not_1_lipschitz_is_divided_by_its_measured_bound() -> None:
    """Designed behaviour: plain layers claim nothing, are measured (spectral norms), and the
    gap is divided by the product. Unconstrained training inflates the raw gap far above W1;
    the lower bound stays below the held-out samples' W1, as duality requires."""
    p, q = _normal_pair()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        first, last = nn.Linear(1, 16).double(), nn.Linear(16, 1).double()
    with torch.no_grad():
        first.weight.mul_(3)
    critic = nn.Sequential(first, nn.ReLU(), last)
    result = estimate(p, q, critic, steps=150, lr=0.01, eval_every=50, threads=1)
    p_held, q_held = _heldout(p, q)
    empirical = scipy.stats.wasserstein_distance(p_held[:, 0].numpy(), q_held[:, 0].numpy())
    assert result.lipschitz.measured > 1
    assert result.lipschitz.certified_with == result.lipschitz.measured
    assert result.gap > empirical
    assert result.lower_bound <= empirical * (1 + FLOAT64_AGREEMENT)
