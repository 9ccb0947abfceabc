"""Exact proofs of the BCOP identities in rational arithmetic (docs, Note [symbolic proofs]).

Paraunitarity and ``det W = det H * w**r`` are decided exactly, with no tolerance; the float
conversion is compared with the float64 reference built from the rounded factors.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import numpy as np
import pytest
import sympy

from gnpcheck.checks import check_orthogonal
from gnpcheck.errors import InvalidArgumentError, InvalidTypeError
from gnpcheck.reference import bcop_kernel_1d, bcop_kernel_2d
from gnpcheck.reference.symbolic import (
    Z1_INV,
    Z2_INV,
    Z_INV,
    PolynomialMatrix,
    is_paraunitary,
    monomial_index,
    rational_orthogonal,
    rational_projector,
    symbolic_bcop_1d,
    symbolic_bcop_2d,
    symbolic_determinant,
    to_float_kernel,
)
from gnpcheck.tolerances import matrix_orthogonality_tolerance

SIZES = [(n, k) for n in range(1, 5) for k in range(1, 5)]


def _float(matrix: Any) -> np.ndarray:
    return np.array(matrix.tolist(), dtype=np.float64)


def _ranks(n: int, count: int, offset: int) -> list[int]:
    """Ranks that sweep 0..n across the cases (each case gets ``count`` of them)."""
    return [(offset + i) % (n + 1) for i in range(count)]


def _product_tolerance(n: int, factors: int) -> float:
    # A product of `factors` matrices of norm <= 1, each rounded entrywise (relative eps):
    # forward error <= factors * n * eps to first order; the orthogonality budget 10 n' eps
    # with n' = n * factors is that bound with the usual headroom of 10.
    return matrix_orthogonality_tolerance(np.float64, n * factors)


@pytest.mark.parametrize("det", [1, -1])
@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_rational_orthogonal_is_exactly_orthogonal(n: int, det: int) -> None:
    h = rational_orthogonal(n, seed=n, det=det)
    assert h.T * h == sympy.eye(n)
    assert h.det() == det
    assert all(entry.is_Rational for entry in h)


@pytest.mark.parametrize(("n", "k"), [(n, k) for n in range(1, 5) for k in range(n + 1)])
def test_rational_projector_is_exact_symmetric_projector_of_rank_k(n: int, k: int) -> None:
    p = rational_projector(n, k, seed=10 * n + k)
    assert p == p.T
    assert p * p == p
    assert p.rank() == k


@pytest.mark.parametrize("det", [1, -1])
@pytest.mark.parametrize(("n", "k"), SIZES)
def test_bcop_1d_is_paraunitary_with_monomial_determinant(n: int, k: int, det: int) -> None:
    h = rational_orthogonal(n, seed=k, det=det)
    ranks = _ranks(n, k - 1, offset=k + det)
    ps = [rational_projector(n, rank, seed=i) for i, rank in enumerate(ranks)]
    w = symbolic_bcop_1d(h, ps)
    r = sum(n - rank for rank in ranks)

    assert is_paraunitary(w)
    assert sympy.expand(symbolic_determinant(w) - det * Z_INV**r) == 0
    assert monomial_index(w) == (det, (r,))

    reference = bcop_kernel_1d(_float(h), [_float(p) for p in ps])
    exact = to_float_kernel(w)
    assert exact.shape == (k, n, n)
    assert np.max(np.abs(exact - reference)) <= _product_tolerance(n, k)


@pytest.mark.parametrize("det", [1, -1])
@pytest.mark.parametrize(("n", "k"), SIZES)
def test_bcop_2d_is_paraunitary_with_monomial_determinant(n: int, k: int, det: int) -> None:
    h = rational_orthogonal(n, seed=n + k, det=det)
    row_ranks = _ranks(n, k - 1, offset=k)
    column_ranks = _ranks(n, k - 1, offset=n + k + 1)
    ps = [rational_projector(n, rank, seed=i) for i, rank in enumerate(row_ranks)]
    qs = [rational_projector(n, rank, seed=50 + i) for i, rank in enumerate(column_ranks)]
    w = symbolic_bcop_2d(h, ps, qs)
    # Column factors delay along the height (w1), row factors along the width (w2).
    r_height = sum(n - rank for rank in column_ranks)
    r_width = sum(n - rank for rank in row_ranks)

    assert is_paraunitary(w)
    expected = det * Z1_INV**r_height * Z2_INV**r_width
    assert sympy.expand(symbolic_determinant(w) - expected) == 0
    assert monomial_index(w) == (det, (r_height, r_width))

    reference = bcop_kernel_2d(_float(h), [_float(p) for p in ps], [_float(q) for q in qs])
    exact = to_float_kernel(w)
    assert exact.shape == (k, k, n, n)
    assert np.max(np.abs(exact - reference)) <= _product_tolerance(n, 2 * k - 1)


def test_2d_taps_follow_the_reference_axes() -> None:
    # H = I, one row factor [P, I - P] (width axis) and Q = I (a column factor that is 1):
    # the taps are W[0, 0] = P, W[0, 1] = I - P and zero on the second row (height 1).
    p = sympy.diag(1, 0)
    w = symbolic_bcop_2d(sympy.eye(2), [p], [sympy.eye(2)])
    kernel = to_float_kernel(w)
    np.testing.assert_array_equal(kernel[0, 0], np.diag([1.0, 0.0]))
    np.testing.assert_array_equal(kernel[0, 1], np.diag([0.0, 1.0]))
    np.testing.assert_array_equal(kernel[1], np.zeros((2, 2, 2)))
    assert w.matrix == sympy.Matrix([[1, 0], [0, Z2_INV]])


def test_fraction_and_int_inputs_give_the_same_kernel() -> None:
    h = rational_orthogonal(3, seed=4)
    p = rational_projector(3, 1, seed=5)
    as_fractions = [[Fraction(int(e.p), int(e.q)) for e in row] for row in h.tolist()]
    p_fractions = [[Fraction(int(e.p), int(e.q)) for e in row] for row in p.tolist()]
    assert symbolic_bcop_1d(as_fractions, [p_fractions]) == symbolic_bcop_1d(h, [p])
    assert symbolic_bcop_1d([[1, 0], [0, -1]], []).matrix == sympy.diag(1, -1)


def test_composition_adds_the_degrees() -> None:
    first = symbolic_bcop_1d(rational_orthogonal(3, 1, det=-1), [rational_projector(3, 1, 2)])
    second_ps = [rational_projector(3, 0, 3), rational_projector(3, 2, 4)]
    second = symbolic_bcop_1d(rational_orthogonal(3, 5, det=-1), second_ps)
    composite = PolynomialMatrix(first.matrix * second.matrix, (Z_INV,), (4,))
    assert is_paraunitary(composite)
    assert monomial_index(first) == (-1, (2,))
    assert monomial_index(second) == (-1, (4,))
    assert monomial_index(composite) == (1, (6,))


# Negative cases: what is not orthogonal must be detected.


@pytest.mark.parametrize("n", [2, 3])
def test_perturbed_h_is_rejected_and_not_paraunitary(n: int) -> None:
    h = rational_orthogonal(n, seed=7) * sympy.Rational(101, 100)
    p = rational_projector(n, 1, seed=8)
    with pytest.raises(InvalidArgumentError, match=r"H has H\^T H - I with an entry"):
        symbolic_bcop_1d(h, [p])
    w = PolynomialMatrix(h * (p + (sympy.eye(n) - p) * Z_INV), (Z_INV,), (2,))
    assert not is_paraunitary(w)
    with pytest.raises(InvalidArgumentError, match=r"det W = .*, but it must be a signed monomial"):
        monomial_index(w)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (sympy.diag(sympy.Rational(1, 2), 0), r"Ps\[1\] has P\^2 - P with an entry of size 1/4"),
        (sympy.Matrix([[1, 1], [0, 0]]), r"Ps\[1\] has P - P\^T with an entry of size 1"),
    ],
    ids=["not-idempotent", "not-symmetric"],
)
def test_non_projector_is_rejected(bad: Any, message: str) -> None:
    h = rational_orthogonal(2, seed=1)
    with pytest.raises(InvalidArgumentError, match=message):
        symbolic_bcop_1d(h, [rational_projector(2, 1, seed=2), bad])
    with pytest.raises(InvalidArgumentError, match=message.replace("Ps", "Qs")):
        symbolic_bcop_2d(h, [sympy.eye(2), sympy.eye(2)], [sympy.zeros(2, 2), bad])


@pytest.mark.parametrize(("n", "rank"), [(2, 1), (3, 1), (3, 2), (4, 2)])
def test_mismatched_complement_breaks_paraunitarity(n: int, rank: int) -> None:
    # [P, I - P'] with P' != P of the same rank: each tap is fine, the pair is not.
    h = rational_orthogonal(n, seed=3)
    p = rational_projector(n, rank, seed=11)
    other = rational_projector(n, rank, seed=12)
    assert p != other
    identity = sympy.eye(n)
    w = PolynomialMatrix(h * (p + (identity - other) * Z_INV), (Z_INV,), (2,))
    assert not is_paraunitary(w)
    # Independent confirmation in floating point: the float64 check fails too.
    assert not check_orthogonal(to_float_kernel(w), 8).passed
    # The same mistake inside a 2-D kernel, and a projector reused in the next factor.
    q = rational_projector(n, n - rank, seed=13)
    bad_2d = h * (p + (identity - other) * Z2_INV) * (q + (identity - q) * Z1_INV)
    assert not is_paraunitary(PolynomialMatrix(bad_2d, (Z1_INV, Z2_INV), (2, 2)))
    reused = h * (p + (identity - p) * Z_INV) * (p + (identity - other) * Z_INV)
    assert not is_paraunitary(PolynomialMatrix(reused, (Z_INV,), (3,)))


def test_monomial_determinant_does_not_imply_paraunitary() -> None:
    # det [[1, w], [0, 1]] = 1, yet W(z)^T W(1/z) != I: the index alone proves nothing.
    w = PolynomialMatrix(sympy.Matrix([[1, Z_INV], [0, 1]]), (Z_INV,), (2,))
    assert monomial_index(w) == (1, (0,))
    assert not is_paraunitary(w)


def test_non_monomial_determinant_is_reported() -> None:
    w = PolynomialMatrix(sympy.eye(2) * (1 + Z_INV / 2), (Z_INV,), (2,))
    with pytest.raises(InvalidArgumentError, match=r"det W = w\*\*2/4 \+ w \+ 1, but"):
        monomial_index(w)
    w2 = PolynomialMatrix(sympy.Matrix([[Z1_INV + Z2_INV]]), (Z1_INV, Z2_INV), (2, 2))
    with pytest.raises(InvalidArgumentError, match=r"signed monomial ±w1\^r1\*w2\^r2"):
        monomial_index(w2)


# Argument validation.


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (
            lambda: symbolic_bcop_1d([[0.6, 0.8], [-0.8, 0.6]], []),
            InvalidTypeError,
            r"H\[0, 0\]=0.6 \(float\), but entries must be exact rationals",
        ),
        (
            lambda: symbolic_bcop_1d([[1, 0, 0], [0, 1, 0]], []),
            InvalidArgumentError,
            r"H has shape \(2, 3\), but it must be a square n x n matrix",
        ),
        (lambda: symbolic_bcop_1d("I", []), InvalidTypeError, r"H='I', but it must be a matrix"),
        (
            lambda: symbolic_bcop_1d(sympy.eye(2), [sympy.eye(3)]),
            InvalidArgumentError,
            r"Ps\[0\] is 3 x 3, but H has 2 channels",
        ),
        (
            lambda: symbolic_bcop_1d(sympy.eye(2), sympy.eye(2)),
            InvalidTypeError,
            r"Ps has type MutableDenseMatrix, but it must be a sequence of matrices",
        ),
        (
            lambda: symbolic_bcop_2d(sympy.eye(2), [sympy.eye(2)], []),
            InvalidArgumentError,
            r"len\(Ps\)=1 and len\(Qs\)=0, but they must be equal",
        ),
        (
            lambda: symbolic_bcop_1d([[sympy.sqrt(2)]], []),
            InvalidTypeError,
            r"H\[0, 0\]=sqrt\(2\) \(Pow\), but entries must be exact rationals",
        ),
        (lambda: rational_orthogonal(0, 1), InvalidArgumentError, r"n=0, but it must be >= 1"),
        (lambda: rational_orthogonal(2, -1), InvalidArgumentError, r"seed=-1, but it must be >= 0"),
        (
            lambda: rational_orthogonal(2, 1, det=2),
            InvalidArgumentError,
            r"det=2, but it must be 1 or -1",
        ),
        (
            lambda: rational_orthogonal(2.0, 1),  # type: ignore[arg-type]
            InvalidTypeError,
            r"n=2.0, but it must be an int",
        ),
        (
            lambda: rational_projector(3, 4, 0),
            InvalidArgumentError,
            r"k=4, but it must be in \[0, 3\]",
        ),
        (
            lambda: PolynomialMatrix(sympy.Matrix([[1 / Z_INV]]), (Z_INV,), (2,)),
            InvalidArgumentError,
            r"matrix\[0, 0\]=1/w, but it must be a polynomial in w",
        ),
        (
            lambda: PolynomialMatrix(sympy.Matrix([[0.5 * Z_INV]]), (Z_INV,), (2,)),
            InvalidTypeError,
            r"matrix\[0, 0\]=0.5\*w, but coefficients must be exact",
        ),
        (
            lambda: PolynomialMatrix(sympy.Matrix([[Z_INV**2]]), (Z_INV,), (2,)),
            InvalidArgumentError,
            r"degree 2 in w, but kernel_size=\(2,\) allows at most 1",
        ),
        (
            lambda: PolynomialMatrix(sympy.Matrix([[Z1_INV]]), (Z_INV,), (2,)),
            InvalidArgumentError,
            r"matrix\[0, 0\]=w1, but it must be a polynomial in w ",
        ),
        (
            lambda: PolynomialMatrix(sympy.Matrix([[1, 0]]), (Z_INV,), (1,)),
            InvalidArgumentError,
            r"matrix is 1 x 2, but it must be square",
        ),
        (
            lambda: PolynomialMatrix(sympy.eye(2), (Z_INV,), [2]),  # type: ignore[arg-type]
            InvalidArgumentError,
            r"kernel_size=\[2\], but it must be 1 int\(s\) >= 1",
        ),
        (
            lambda: PolynomialMatrix(sympy.eye(2), (Z2_INV,), (2,)),
            InvalidArgumentError,
            r"variables=\(w2,\), but it must be \(Z_INV,\) or \(Z1_INV, Z2_INV\)",
        ),
        (
            lambda: is_paraunitary(np.eye(2)),  # type: ignore[arg-type]
            InvalidTypeError,
            r"W has type ndarray, but it must be a PolynomialMatrix",
        ),
    ],
    ids=[
        "float-entry",
        "non-square",
        "string",
        "projector-size",
        "single-projector",
        "row-column-count",
        "irrational-entry",
        "n-zero",
        "negative-seed",
        "det-two",
        "float-n",
        "rank-too-large",
        "laurent-entry",
        "float-coefficient",
        "degree-too-high",
        "foreign-variable",
        "non-square-polynomial",
        "kernel-size-list",
        "variables",
        "not-a-polynomial-matrix",
    ],
)
def test_bad_arguments_are_named(call: Any, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        call()
