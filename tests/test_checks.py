"""check_* never raise on a failed property; assert_* raise with the figure in the message."""

from __future__ import annotations

import numpy as np
import pytest

from gnpcheck.checks import (
    assert_gnp,
    assert_orthogonal,
    check_gnp,
    check_orthogonal,
    check_symmetric_projector,
)
from gnpcheck.reference import random_bcop_1d, random_bcop_2d


def test_orthogonal_kernel_passes_on_the_cheap_bound() -> None:
    kernel = random_bcop_2d(5, 3, np.random.default_rng(0)).kernel()
    result = check_orthogonal(kernel, (6, 6))
    assert result.passed
    assert result.method == "autocorrelation bound"
    assert not result.exact
    assert result.measured <= result.tolerance


def test_perturbed_kernel_fails_with_figure_frequency_and_subject() -> None:
    kernel = random_bcop_2d(5, 3, np.random.default_rng(1)).kernel()
    kernel[1, 1] *= 1.001
    result = check_orthogonal(kernel, (6, 6))
    assert not result.passed
    assert result.method == "circulant spectrum"
    assert result.exact
    assert 1e-5 < result.measured < 1e-2
    assert result.counterexample is not None
    assert len(result.counterexample["frequency"]) == 2
    with pytest.raises(
        AssertionError,
        match=r"max \|sigma - 1\|=[0-9.e-]+, but should be <= [0-9.e-]+ \[kernel \(3, 3, 5, 5\) on input \(6, 6\)\]",
    ):
        assert_orthogonal(kernel, (6, 6))


def test_explicit_tolerance_is_honoured() -> None:
    kernel = random_bcop_1d(3, 2, np.random.default_rng(2)).kernel() * (1 + 1e-8)
    assert not check_orthogonal(kernel, 5).passed
    assert check_orthogonal(kernel, 5, tol=1e-6).passed
    assert check_orthogonal(kernel, 5, dtype=np.float32).passed  # 10 * 15 * 1.2e-7


def test_gnp_exact_and_sampled() -> None:
    rng = np.random.default_rng(3)
    kernel = random_bcop_2d(4, 2, rng).kernel()
    gradients = rng.standard_normal((5, 4, 5, 5))
    assert check_gnp(kernel, (5, 5)).passed
    assert check_gnp(kernel, (5, 5), gradients).passed
    bad = kernel * 0.99
    sampled = check_gnp(bad, (5, 5), gradients)
    assert not sampled.passed
    assert sampled.measured == pytest.approx(0.01, rel=1e-9)
    with pytest.raises(AssertionError, match=r"\|\|J\^T g\|\| / \|\|g\|\| - 1 \|=0.01"):
        assert_gnp(bad, (5, 5), gradients)


def test_gnp_fails_for_more_outputs_than_inputs() -> None:
    kernel = random_bcop_1d(4, 2, np.random.default_rng(4)).kernel()[:, :, :2]
    result = check_gnp(kernel, 6)
    assert not result.passed
    assert "null space" in result.detail
    assert check_gnp(np.swapaxes(kernel, 1, 2), 6).passed


def test_projector_rank_side_condition() -> None:
    p = np.diag([1.0, 1.0, 0.0])
    assert check_symmetric_projector(p, rank=2).passed
    result = check_symmetric_projector(p, rank=1)
    assert not result.passed
    assert "rank (trace)=2, but should be 1" in result.message()
