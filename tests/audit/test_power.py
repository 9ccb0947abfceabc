"""Power iteration and its probabilistic certificate (docs/audit.rst, Note [power certificate])."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from gnpcheck.audit.deadline import Deadline
from gnpcheck.audit.power import certified_upper, failure_probability, power_iteration
from gnpcheck.errors import InvalidArgumentError


def test_failure_probability_limits_and_monotonicity() -> None:
    assert failure_probability(4, 0.0, 100) == 1.0
    assert failure_probability(4, 1.0, 100) == 0.0
    assert failure_probability(4, 0.3, 1) == 0.0
    values = [failure_probability(10, eps, 1000) for eps in (0.01, 0.05, 0.1, 0.3, 0.6)]
    assert all(a >= b for a, b in itertools.pairwise(values))
    more_steps = [failure_probability(p, 0.1, 1000) for p in (2, 20, 200)]
    assert more_steps[0] > more_steps[1] > more_steps[2]
    with pytest.raises(InvalidArgumentError, match="p=-1"):
        failure_probability(-1, 0.1, 10)


def test_failure_probability_bounds_the_observed_failure_rate() -> None:
    # The worst spectrum for the derivation: lambda_1 = 1, the rest at the maximizer
    # t* = p (1 - eps) / (p + 1) of t^p (1 - eps - t). Monte Carlo over Gaussian starts.
    n, p, eps, trials = 50, 6, 0.1, 20000
    rng = np.random.default_rng(0)
    lam = np.full(n, p * (1 - eps) / (p + 1))
    lam[0] = 1.0
    z2 = rng.standard_normal((trials, n)) ** 2
    xi = (z2 * lam ** (p + 1)).sum(axis=1) / (z2 * lam**p).sum(axis=1)
    observed = float(np.mean(xi < (1 - eps)))
    bound = failure_probability(p, eps, n)
    assert observed > 0.01  # the spectrum is hard enough for the check to mean something
    assert observed <= bound + 3 * math.sqrt(bound * (1 - bound) / trials)


def test_certified_upper_is_above_the_quotient_and_shrinks_with_steps() -> None:
    few = certified_upper(0.9, 4, 10_000, 1e-6)
    many = certified_upper(0.9, 400, 10_000, 1e-6)
    assert few > many > 0.9
    assert failure_probability(400, 1 - 0.9 / many, 10_000) <= 1e-6 * (1 + 1e-9)
    assert certified_upper(0.9, 0, 10_000, 1e-6) == math.inf
    with pytest.raises(InvalidArgumentError, match="delta=0"):
        certified_upper(0.9, 4, 10, 0)


def _symmetric(eigenvalues: list[float], seed: int) -> torch.Tensor:
    q, _ = torch.linalg.qr(
        torch.randn(
            len(eigenvalues),
            len(eigenvalues),
            dtype=torch.float64,
            generator=torch.Generator().manual_seed(seed),
        )
    )
    return q @ torch.diag(torch.tensor(eigenvalues, dtype=torch.float64)) @ q.T


def test_power_iteration_lower_bound_and_certificate() -> None:
    a = _symmetric([0.25] + [0.1] * 63, seed=1)
    start = torch.randn(64, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    run = power_iteration(lambda v: a @ v, start, threshold=1.0, delta=1e-6)
    assert run.stopped == "certified"
    assert run.lower <= 0.25 * (1 + 1e-12)
    assert 0.25 <= run.upper <= 1.0
    assert abs(float(run.vector @ a @ run.vector) - run.lower) < 1e-12


def test_power_iteration_exceeds_and_converges() -> None:
    a = _symmetric([2.0, 1.0, 0.5, 0.25], seed=3)
    start = torch.randn(4, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    run = power_iteration(lambda v: a @ v, start, threshold=1.5)
    assert run.stopped == "exceeded"
    assert run.lower > 1.5
    run = power_iteration(lambda v: a @ v, start, max_iterations=500)
    assert run.stopped == "converged"
    assert abs(run.lower - 2.0) < 1e-8


def test_power_iteration_on_a_square() -> None:
    # A = M^2 for the indefinite M: the largest |eigenvalue| of M is 3.
    m = _symmetric([-3.0, 1.0, 0.5, -0.2], seed=5)
    start = torch.randn(4, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    run = power_iteration(lambda v: m @ v, start, squared=True, max_iterations=500)
    assert abs(math.sqrt(run.lower) - 3.0) < 1e-7


def test_power_iteration_stops_at_the_deadline() -> None:
    deadline = Deadline(1e-9)
    start = torch.ones(3, dtype=torch.float64)
    run = power_iteration(lambda v: v, start, deadline=deadline)
    assert run.stopped == "time budget"
    assert run.iterations == 0
