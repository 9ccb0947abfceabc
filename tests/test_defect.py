"""The orthogonality defect: the cheap bound never undercuts the exact figure."""

from __future__ import annotations

import numpy as np
import pytest

from gnpcheck.errors import InvalidArgumentError
from gnpcheck.reference import (
    dense_operator,
    gram_defect_bound,
    orthogonality_defect,
    random_bcop_1d,
    random_bcop_2d,
)
from gnpcheck.tolerances import orthogonality_tolerance


def _dense_defect(kernel: np.ndarray, spatial: tuple[int, ...]) -> float:
    values = np.linalg.svd(dense_operator(kernel, spatial), compute_uv=False)
    return float(
        np.max(
            np.abs(values[: min(kernel.shape[-2], kernel.shape[-1]) * int(np.prod(spatial))] - 1)
        )
    )


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("scale", [1e-9, 1e-4, 1e-1, 1.0])
def test_bound_is_at_least_the_exact_defect(seed: int, scale: float) -> None:
    rng = np.random.default_rng(seed)
    kernel = random_bcop_2d(4, 3, rng).kernel() + scale * rng.standard_normal((3, 3, 4, 4))
    exact = _dense_defect(kernel, (5, 4))
    assert orthogonality_defect(kernel, (5, 4), method="exact") == pytest.approx(exact, abs=1e-12)
    assert orthogonality_defect(kernel, (5, 4)) >= exact - 1e-15
    assert orthogonality_defect(kernel, (5, 4), rigorous=True) >= orthogonality_defect(
        kernel, (5, 4)
    )


@pytest.mark.parametrize(("n_out", "n_in"), [(3, 5), (5, 3)])
def test_bound_on_semi_orthogonal_kernels_uses_the_smaller_side(n_out: int, n_in: int) -> None:
    full = random_bcop_1d(5, 3, np.random.default_rng(7)).kernel()
    kernel = full[:, :n_out, :n_in]
    assert orthogonality_defect(kernel, 6) <= orthogonality_tolerance(np.float64, n_out * 6)
    assert _dense_defect(kernel, (6,)) <= orthogonality_tolerance(np.float64, n_out * 6)


@pytest.mark.parametrize(
    ("n", "k", "spatial"), [(8, 3, (8, 8)), (16, 5, (9, 10)), (4, 7, (7, 7)), (6, 2, (4, 5))]
)
def test_random_bcop_defect_is_within_ten_n_eps(n: int, k: int, spatial: tuple[int, int]) -> None:
    kernel = random_bcop_2d(n, k, np.random.default_rng(8)).kernel()
    tolerance = orthogonality_tolerance(np.float64, n * int(np.prod(spatial)))
    assert orthogonality_defect(kernel, spatial) <= tolerance
    assert orthogonality_defect(kernel, spatial, method="exact") <= tolerance


def test_bound_does_not_depend_on_the_input_size_and_holds_for_small_inputs() -> None:
    rng = np.random.default_rng(9)
    kernel = random_bcop_2d(3, 3, rng).kernel() + 1e-3 * rng.standard_normal((3, 3, 3, 3))
    bounds = {orthogonality_defect(kernel, size) for size in [(3, 3), (4, 7), (16, 16)]}
    assert len(bounds) == 1
    (bound,) = bounds
    assert bound == gram_defect_bound(kernel) / (1 + np.sqrt(1 - gram_defect_bound(kernel)))
    for size in [(3, 3), (4, 5), (8, 8)]:
        assert _dense_defect(kernel, size) <= bound


def test_far_from_orthogonal_kernel_bound_exceeds_one() -> None:
    kernel = 3.0 * np.ones((3, 2, 2))
    assert orthogonality_defect(kernel, 5) >= _dense_defect(kernel, (5,))
    assert orthogonality_defect(kernel, 5) >= 1.0


def test_bad_method_is_rejected() -> None:
    with pytest.raises(InvalidArgumentError, match="method='fft'"):
        orthogonality_defect(np.ones((1, 2, 2)), 3, method="fft")  # type: ignore[arg-type]
