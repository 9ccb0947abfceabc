"""The Theorem 1 invariant and the Theorem 2 embedding in float64.

docs, Note [component index] and Note [embedding]. The expected values come from the
construction (the ranks and determinant asked for), never from the function under test.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest

from gnpcheck.checks import check_orthogonal, check_orthonormal_columns, check_symmetric_projector
from gnpcheck.errors import InvalidArgumentError, InvalidTypeError
from gnpcheck.reference import (
    bcop_kernel_1d,
    bcop_kernel_2d,
    block_conv,
    circular_conv,
    component_index,
    determinant_polynomial,
    embed_doubled,
    kernel_component_index,
    projector,
    random_bcop_1d,
    random_bcop_2d,
    random_orthogonal,
)
from gnpcheck.tolerances import orthogonality_tolerance

SIZES = [(n, k) for n in range(1, 5) for k in range(1, 5)]


def _ranks(n: int, count: int, offset: int) -> list[int]:
    """Ranks that sweep 0..n across the cases."""
    return [(offset + i) % (n + 1) for i in range(count)]


@pytest.mark.parametrize("det", [1, -1])
@pytest.mark.parametrize(("n", "k"), SIZES)
def test_component_index_matches_the_kernel_determinant(n: int, k: int, det: int) -> None:
    rng = np.random.default_rng(100 * n + 10 * k + det)
    ranks = _ranks(n, k - 1, offset=k + det)
    factors = random_bcop_1d(n, k, rng, ranks=ranks, det=det)
    expected = (det, sum(n - rank for rank in ranks))

    assert component_index(factors.H, factors.Ps) == expected
    assert kernel_component_index(factors.kernel()) == expected

    coefficients = determinant_polynomial(factors.kernel())
    assert coefficients.shape == ((k - 1) * n + 1,)
    monomial = np.zeros_like(coefficients)
    monomial[expected[1]] = det
    # M = (K-1)n + 1 determinants of n x n unitary matrices, each within O(n eps), then an
    # inverse DFT over M points: the orthogonality budget for n * M rows covers it.
    tolerance = orthogonality_tolerance(np.float64, n * coefficients.size)
    assert np.max(np.abs(coefficients - monomial)) <= tolerance


@pytest.mark.parametrize(("n", "k1", "k2"), [(1, 2, 3), (2, 3, 2), (3, 2, 4), (4, 3, 3)])
def test_index_is_additive_under_composition(n: int, k1: int, k2: int) -> None:
    rng = np.random.default_rng(7 * n + k1)
    first = random_bcop_1d(n, k1, rng, ranks=_ranks(n, k1 - 1, 1), det=-1)
    second = random_bcop_1d(n, k2, rng, ranks=_ranks(n, k2 - 1, 2), det=-1 if n % 2 else 1)
    sign1, r1 = component_index(first.H, first.Ps)
    sign2, r2 = component_index(second.H, second.Ps)
    composite = block_conv(first.kernel(), second.kernel())
    assert kernel_component_index(composite) == (sign1 * sign2, r1 + r2)


@pytest.mark.parametrize(("n", "k"), [(1, 2), (1, 3), (2, 2), (2, 3), (3, 2), (3, 3)])
def test_index_takes_every_theorem_1_value(n: int, k: int) -> None:
    # Over all rank choices and both determinants the index covers 2(K-1)n + 2 distinct
    # values: the number of connected components in Li et al. (2019), Theorem 1.
    rng = np.random.default_rng(n * k)
    found = set()
    for det in (1, -1):
        for ranks in itertools.product(range(n + 1), repeat=k - 1):
            factors = random_bcop_1d(n, k, rng, ranks=list(ranks), det=det)
            found.add(kernel_component_index(factors.kernel()))
    assert len(found) == 2 * (k - 1) * n + 2
    assert found == {(s, r) for s in (1, -1) for r in range((k - 1) * n + 1)}


def test_kernel_component_index_rejects_non_orthogonal_kernels() -> None:
    rng = np.random.default_rng(3)
    kernel = random_bcop_1d(3, 3, rng).kernel()
    with pytest.raises(InvalidArgumentError, match=r"det W\(z\) is not ±z\^-r: it differs from"):
        kernel_component_index(1.01 * kernel)
    # [P, I - P'] with P' != P of the same rank: each tap is a projector, the pair is not.
    p, other = projector(rng.standard_normal((3, 1))), projector(rng.standard_normal((3, 1)))
    mismatched = np.stack([p, np.eye(3) - other])
    with pytest.raises(InvalidArgumentError, match=r"the kernel is not orthogonal"):
        kernel_component_index(mismatched)
    with pytest.raises(InvalidArgumentError, match=r"but it must be a square 1-D kernel"):
        kernel_component_index(random_bcop_2d(2, 2, rng).kernel())


@pytest.mark.parametrize(
    ("h", "ps", "error", "message"),
    [
        (1.01 * np.eye(2), [np.eye(2)], InvalidArgumentError, r"H has \|\|H\^T H - I\|\|_2 = "),
        (np.eye(2), [np.eye(3)], InvalidArgumentError, r"Ps\[0\] is 3 x 3, but H has 2 channels"),
        (
            np.eye(2),
            [np.diag([0.5, 0.0])],
            InvalidArgumentError,
            r"Ps\[0\] has max\(\|\|P - P\^T\|\|, \|\|P\^2 - P\|\|\) = ",
        ),
        (np.eye(2), np.eye(2), InvalidTypeError, r"Ps is a single matrix, but it must be a sequ"),
    ],
    ids=["h-not-orthogonal", "projector-size", "not-a-projector", "single-matrix"],
)
def test_bad_factors_are_named(h: Any, ps: Any, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        component_index(h, ps)
    with pytest.raises(error, match=message):
        embed_doubled(h, ps)


@pytest.mark.parametrize("spatial_ndim", [1, 2])
@pytest.mark.parametrize(("n", "k"), [(1, 2), (2, 2), (2, 3), (3, 3), (3, 4)])
def test_embed_doubled_has_rank_n_projectors_and_orthogonal_h(
    n: int, k: int, spatial_ndim: int
) -> None:
    rng = np.random.default_rng(n + 10 * k)
    ranks = _ranks(n, k - 1, offset=k)
    if spatial_ndim == 1:
        factors = random_bcop_1d(n, k, rng, ranks=ranks)
        doubled = embed_doubled(factors.H, factors.Ps)
        assert doubled.Qs is None
    else:
        factors = random_bcop_2d(n, k, rng, ranks=ranks, column_ranks=_ranks(n, k - 1, n))
        doubled = embed_doubled(factors.H, factors.Ps, factors.Qs)
        assert doubled.Qs is not None
        for q in doubled.Qs:
            result = check_symmetric_projector(q, rank=n)
            assert result.passed, result.message()
    assert doubled.H.shape == (2 * n, 2 * n)
    assert check_orthonormal_columns(doubled.H).passed
    assert np.linalg.det(doubled.H) == pytest.approx(np.linalg.det(factors.H))
    assert len(doubled.Ps) == k - 1
    for p in doubled.Ps:
        result = check_symmetric_projector(p, rank=n)
        assert result.passed, result.message()


@pytest.mark.parametrize("spatial_ndim", [1, 2])
@pytest.mark.parametrize(("n", "k"), [(1, 2), (2, 2), (2, 3), (3, 3), (3, 4)])
def test_embedding_restricts_to_the_original_convolution(n: int, k: int, spatial_ndim: int) -> None:
    rng = np.random.default_rng(31 * n + k + spatial_ndim)
    rows = _ranks(n, k - 1, offset=k)
    columns = _ranks(n, k - 1, offset=k + 2)
    size = (7,) * spatial_ndim
    if spatial_ndim == 1:
        factors = random_bcop_1d(n, k, rng, ranks=rows)
        doubled = embed_doubled(factors.H, factors.Ps)
        complement = bcop_kernel_1d(np.eye(n), [np.eye(n) - p for p in factors.Ps])
    else:
        factors = random_bcop_2d(n, k, rng, ranks=rows, column_ranks=columns)
        assert factors.Qs is not None
        doubled = embed_doubled(factors.H, factors.Ps, factors.Qs)
        complement = bcop_kernel_2d(
            np.eye(n), [np.eye(n) - p for p in factors.Ps], [np.eye(n) - q for q in factors.Qs]
        )
    original, embedded = factors.kernel(), doubled.kernel()
    assert embedded.shape == (*original.shape[:-2], 2 * n, 2 * n)
    operator_rows = 2 * n * int(np.prod(size))
    tolerance = orthogonality_tolerance(np.float64, operator_rows)
    assert check_orthogonal(embedded, size).passed

    # Any input, including one whose second half is nonzero: the first n outputs are C(x_1:n).
    x = rng.standard_normal((3, 2 * n, *size))
    y = circular_conv(embedded, x)
    difference = y[:, :n] - circular_conv(original, x[:, :n])
    assert np.linalg.norm(difference) <= tolerance * np.linalg.norm(x)
    # The other block is the BCOP of (I, I - P_i, I - Q_i) acting on x_n+1:2n alone.
    difference = y[:, n:] - circular_conv(complement, x[:, n:])
    assert np.linalg.norm(difference) <= tolerance * np.linalg.norm(x)


@pytest.mark.parametrize(("n", "k"), [(1, 3), (2, 2), (2, 4), (3, 3)])
def test_embedding_lands_in_the_middle_component(n: int, k: int) -> None:
    # Rank-n projectors in 2n channels: r = (K-1)(2n - n) whatever the ranks of C.
    rng = np.random.default_rng(5 * n + k)
    for det in (1, -1):
        for ranks in ([0] * (k - 1), [n] * (k - 1), _ranks(n, k - 1, 1)):
            factors = random_bcop_1d(n, k, rng, ranks=ranks, det=det)
            doubled = embed_doubled(factors.H, factors.Ps)
            assert component_index(doubled.H, doubled.Ps) == (det, (k - 1) * n)
            assert kernel_component_index(doubled.kernel()) == (det, (k - 1) * n)


def test_embed_doubled_rejects_mismatched_column_projectors() -> None:
    h = random_orthogonal(2, np.random.default_rng(0))
    with pytest.raises(InvalidArgumentError, match=r"Qs\[0\] is 3 x 3, but H has 2 channels"):
        embed_doubled(h, [np.eye(2)], [np.eye(3)])
