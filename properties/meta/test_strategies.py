"""The strategies draw what they promise, within the profile's size limits, and reject bad
arguments when the strategy is built (or, for a strategy argument, when the value is drawn)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import find, given
from hypothesis import strategies as st
from numpy.typing import NDArray

from gnpcheck.checks import check_orthonormal_columns, check_symmetric_projector
from gnpcheck.errors import InvalidArgumentError, InvalidTypeError
from gnpcheck.hypothesis_profiles import size_limits
from gnpcheck.reference import BCOPFactors, projector_rank
from gnpcheck.strategies import (
    bcop_factors,
    bcop_kernels,
    channel_counts,
    gradients,
    input_shapes,
    kernel_sizes,
    kernels,
    orthogonal_matrices,
    projectors,
)

LIMITS = size_limits()


@given(data=st.data())
def test_projectors_have_the_requested_rank(data: st.DataObject) -> None:
    n = data.draw(channel_counts(), label="n")
    rank = data.draw(st.integers(0, n), label="rank")
    p = data.draw(projectors(n=n, rank=rank), label="P")
    result = check_symmetric_projector(p, rank=rank)
    assert result.passed, result.message()
    assert p.shape == (n, n)


def test_projectors_reach_ranks_zero_and_full() -> None:
    assert np.allclose(find(projectors(n=3), lambda p: np.trace(p) < 0.5), 0.0)
    assert np.allclose(find(projectors(n=3), lambda p: np.trace(p) > 2.5), np.eye(3))


@given(q=orthogonal_matrices(n=st.integers(1, 5), det=-1))
def test_orthogonal_matrices_are_orthogonal_of_given_det(q: NDArray[np.float64]) -> None:
    assert check_orthonormal_columns(q).passed
    assert np.linalg.det(q) == pytest.approx(-1.0)


@given(factors=bcop_factors(spatial_ndim=2, channels=4, kernel_size=3, ranks=[1, 4], det=1))
def test_bcop_factors_follow_ranks_det_and_dimension(factors: BCOPFactors) -> None:
    assert factors.Qs is not None
    assert [projector_rank(p) for p in factors.Ps] == [1, 4]
    assert [projector_rank(q) for q in factors.Qs] == [1, 4]
    assert np.linalg.det(factors.H) == pytest.approx(1.0)
    assert factors.kernel().shape == (3, 3, 4, 4)


@given(factors=bcop_factors(spatial_ndim=1))
def test_one_dimensional_factors_have_no_column_projectors(factors: BCOPFactors) -> None:
    assert factors.Qs is None
    assert factors.kernel().ndim == 3


@given(kernel=bcop_kernels())
def test_default_bcop_kernels_respect_the_size_limits(kernel: NDArray[np.float64]) -> None:
    spatial_ndim = kernel.ndim - 2
    assert spatial_ndim in (1, 2)
    assert kernel.shape[-1] == kernel.shape[-2] <= LIMITS.max_channels
    assert all(k <= LIMITS.max_kernel_size for k in kernel.shape[:spatial_ndim])


@given(kernel=kernels())
def test_default_kernels_respect_the_size_limits(kernel: NDArray[np.float64]) -> None:
    assert max(kernel.shape[-2:]) <= LIMITS.max_channels
    assert max(kernel.shape[:-2]) <= LIMITS.max_kernel_size
    assert np.all(np.abs(kernel) <= 1.0)


@given(data=st.data())
def test_input_shapes_hold_the_kernel_and_respect_the_limit(data: st.DataObject) -> None:
    spatial_ndim = data.draw(st.sampled_from((1, 2)))
    size = data.draw(kernel_sizes())
    shape = data.draw(input_shapes(kernel_size=size, spatial_ndim=spatial_ndim))
    assert len(shape) == spatial_ndim
    assert all(size <= side <= LIMITS.max_spatial for side in shape)


def test_input_shapes_are_square_and_non_square() -> None:
    strategy = input_shapes(kernel_size=(1, 2), spatial_ndim=2)
    assert find(strategy, lambda s: s[0] == s[1])[0] >= 2
    assert find(strategy, lambda s: s[0] != s[1]) is not None


@given(g=gradients(channels=3, input_shape=(4, 5), count=st.integers(1, 3)))
def test_gradients_have_the_shape_and_none_is_zero(g: NDArray[np.float64]) -> None:
    assert g.shape[1:] == (3, 4, 5)
    assert 1 <= g.shape[0] <= 3
    assert np.all(np.linalg.norm(g.reshape(g.shape[0], -1), axis=1) > 0)


BAD_ARGUMENTS: list[tuple[Callable[..., Any], dict[str, Any], type[Exception], str]] = [
    (projectors, {"n": 0}, InvalidArgumentError, "n=0, but it must be >= 1"),
    (projectors, {"n": 3, "rank": 4}, InvalidArgumentError, "rank=4, but it must be in [0, 3]"),
    (projectors, {"n": 3, "rank": -1}, InvalidArgumentError, "rank=-1, but it must be in [0, 3]"),
    (projectors, {"n": 2.5}, InvalidTypeError, "n=2.5, but it must be an int or a strategy"),
    (projectors, {"n": True}, InvalidTypeError, "n=True, but it must be an int or a strategy"),
    (
        orthogonal_matrices,
        {"n": 3, "det": 2},
        InvalidArgumentError,
        "det=2, but it must be None, 1 or -1",
    ),
    (
        bcop_factors,
        {"spatial_ndim": 3},
        InvalidArgumentError,
        "spatial_ndim=3, but it must be in [1, 2]",
    ),
    (bcop_factors, {"kernel_size": 0}, InvalidArgumentError, "kernel_size=0, but it must be >= 1"),
    (
        bcop_factors,
        {"channels": 3, "ranks": 5},
        InvalidArgumentError,
        "ranks=5, but it must be in [0, 3]",
    ),
    (
        bcop_factors,
        {"kernel_size": 3, "ranks": [1]},
        InvalidArgumentError,
        "ranks has 1 entries, but kernel_size=3 needs 2",
    ),
    (bcop_kernels, {"det": 0}, InvalidArgumentError, "det=0, but it must be None, 1 or -1"),
    (kernels, {"out_channels": 0}, InvalidArgumentError, "out_channels=0, but it must be >= 1"),
    (
        input_shapes,
        {"kernel_size": 5, "spatial_ndim": 2, "max_side": 4},
        InvalidArgumentError,
        "max_side=4, but it must be >= 5",
    ),
    (
        input_shapes,
        {"kernel_size": (3,), "spatial_ndim": 2},
        InvalidArgumentError,
        "kernel_size=(3,), but spatial_ndim=2 needs 2 sizes",
    ),
    (
        input_shapes,
        {"kernel_size": 3, "spatial_ndim": 3},
        InvalidArgumentError,
        "spatial_ndim=3, but it must be in [1, 2]",
    ),
    (
        gradients,
        {"channels": 0, "input_shape": (4,)},
        InvalidArgumentError,
        "channels=0, but it must be >= 1",
    ),
    (
        gradients,
        {"channels": 2, "input_shape": [4]},
        InvalidArgumentError,
        "input_shape=[4], but it must be a tuple",
    ),
    (
        channel_counts,
        {"min_value": 3, "max_value": 2},
        InvalidArgumentError,
        "max_value=2, but it must be >= 3",
    ),
]


@pytest.mark.parametrize(
    ("strategy", "kwargs", "error", "message"),
    BAD_ARGUMENTS,
    ids=[
        f"{s.__name__}-{'-'.join(f'{k}={v}' for k, v in kw.items())}"
        for s, kw, _, _ in BAD_ARGUMENTS
    ],
)
def test_bad_argument_is_rejected_when_built(
    strategy: Callable[..., Any], kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error) as caught:
        strategy(**kwargs)  # building alone raises: nothing is drawn
    assert message in str(caught.value)


def test_bad_value_from_a_strategy_argument_is_rejected_when_drawn() -> None:
    strategy = projectors(n=st.just(0))  # building is fine: the value is not known yet

    @given(strategy)
    def draw(p: NDArray[np.float64]) -> None:
        raise AssertionError("a projector of size 0 was drawn")

    with pytest.raises(InvalidArgumentError, match=r"n \(drawn\)=0, but it must be >= 1"):
        draw()


def test_ranks_longer_than_a_drawn_kernel_size_are_rejected_when_drawn() -> None:
    @given(bcop_factors(kernel_size=st.just(2), ranks=[1, 1]))
    def draw(factors: BCOPFactors) -> None:
        raise AssertionError("factors were drawn")

    with pytest.raises(
        InvalidArgumentError, match="ranks has 2 entries, but the drawn kernel_size=2 needs 1"
    ):
        draw()
