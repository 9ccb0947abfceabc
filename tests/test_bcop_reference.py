"""The float64 BCOP kernels: shapes, orthogonality by the dense SVD, rejected input."""

from __future__ import annotations

import numpy as np
import pytest

from gnpcheck.errors import InvalidArgumentError, InvalidTypeError
from gnpcheck.reference import (
    bcop_kernel_1d,
    bcop_kernel_2d,
    block_conv,
    column_factor,
    dense_operator,
    embed_doubled,
    projector,
    random_bcop_1d,
    random_bcop_2d,
    row_factor,
)
from gnpcheck.tolerances import orthogonality_tolerance


@pytest.mark.parametrize("k", [1, 2, 3, 4])
@pytest.mark.parametrize("n", [1, 3, 4])
def test_2d_kernel_is_orthogonal_by_dense_svd(n: int, k: int) -> None:
    factors = random_bcop_2d(n, k, np.random.default_rng(n * 10 + k))
    kernel = factors.kernel()
    assert kernel.shape == (k, k, n, n)
    spatial = (max(k, 3), max(k, 3) + 1)
    values = np.linalg.svd(dense_operator(kernel, spatial), compute_uv=False)
    assert np.max(np.abs(values - 1)) <= orthogonality_tolerance(np.float64, values.size)


@pytest.mark.parametrize("ranks", [[0, 0], [3, 3], [1, 2], [2, 0]])
def test_1d_kernel_is_orthogonal_for_any_ranks(ranks: list[int]) -> None:
    kernel = random_bcop_1d(3, 3, np.random.default_rng(1), ranks=ranks).kernel()
    values = np.linalg.svd(dense_operator(kernel, 5), compute_uv=False)
    assert np.max(np.abs(values - 1)) <= orthogonality_tolerance(np.float64, values.size)


def test_2d_factor_order_and_two_by_two_block() -> None:
    """One row factor then one column factor: [[PQ, (I-P)Q], [P(I-Q), (I-P)(I-Q)]] (height, width)."""
    rng = np.random.default_rng(2)
    p = projector(rng.standard_normal((4, 2)))
    q = projector(rng.standard_normal((4, 1)))
    block = block_conv(row_factor(p), column_factor(q))
    eye = np.eye(4)
    np.testing.assert_allclose(block[0, 0], p @ q, atol=1e-15)
    np.testing.assert_allclose(block[0, 1], (eye - p) @ q, atol=1e-15)
    np.testing.assert_allclose(block[1, 0], p @ (eye - q), atol=1e-15)
    np.testing.assert_allclose(block[1, 1], (eye - p) @ (eye - q), atol=1e-15)
    np.testing.assert_allclose(bcop_kernel_2d(eye, [p], [q]), block, atol=1e-15)


def test_every_projector_shapes_the_kernel() -> None:
    """Swapping two projectors changes the kernel: each enters at its own place."""
    factors = random_bcop_2d(4, 3, np.random.default_rng(3))
    p1, p2 = factors.Ps
    swapped = bcop_kernel_2d(factors.H, [p2, p1], list(factors.Qs or ()))
    assert np.max(np.abs(swapped - factors.kernel())) > 1e-3


def _h_and_p(n: int = 3) -> tuple[np.ndarray, np.ndarray]:
    factors = random_bcop_1d(n, 2, np.random.default_rng(4))
    return factors.H, factors.Ps[0]


BAD = [
    (
        "H-not-orthogonal",
        lambda: bcop_kernel_1d(2 * np.eye(3), []),
        InvalidArgumentError,
        r"H has \|\|H\^T H - I\|\|_2 = 3",
    ),
    (
        "H-not-square",
        lambda: bcop_kernel_1d(np.ones((3, 2)), []),
        InvalidArgumentError,
        "H is an array of shape",
    ),
    (
        "P-not-projector",
        lambda: bcop_kernel_1d(_h_and_p()[0], [np.ones((3, 3))]),
        InvalidArgumentError,
        r"Ps\[0\] has max",
    ),
    (
        "P-size",
        lambda: bcop_kernel_1d(_h_and_p()[0], [np.eye(2)]),
        InvalidArgumentError,
        r"Ps\[0\] is 2 x 2, but H has 3",
    ),
    (
        "P-nan",
        lambda: bcop_kernel_1d(_h_and_p()[0], [np.full((3, 3), np.nan)]),
        InvalidArgumentError,
        "NaN",
    ),
    (
        "single-matrix",
        lambda: bcop_kernel_1d(*_h_and_p()),
        InvalidTypeError,
        "sequence of matrices",
    ),
    (
        "len-mismatch",
        lambda: bcop_kernel_2d(_h_and_p()[0], [_h_and_p()[1]], []),
        InvalidArgumentError,
        r"len\(Ps\)=1 and len\(Qs\)=0",
    ),
    ("n-zero", lambda: random_bcop_1d(0, 2, np.random.default_rng()), InvalidArgumentError, "n=0"),
    ("k-type", lambda: random_bcop_2d(2, 2.0, np.random.default_rng()), InvalidTypeError, "k=2.0"),  # type: ignore[arg-type]
    (
        "ranks-count",
        lambda: random_bcop_1d(3, 3, np.random.default_rng(), ranks=[1]),
        InvalidArgumentError,
        "ranks has 1 entries",
    ),
    (
        "ranks-range",
        lambda: random_bcop_1d(3, 2, np.random.default_rng(), ranks=[4]),
        InvalidArgumentError,
        r"in \[0, 3\]",
    ),
]


@pytest.mark.parametrize(("call", "error", "match"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_arguments_are_rejected_with_a_named_error(
    call: object, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        call()  # type: ignore[operator]


def test_embedding_rejects_mismatched_projector_counts() -> None:
    h, p = _h_and_p()
    with pytest.raises(InvalidArgumentError, match=r"len\(Ps\)=1 and len\(Qs\)=2"):
        embed_doubled(h, [p], [p, p])
