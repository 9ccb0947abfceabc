r"""Symmetric projectors :math:`\mathcal P(n, k) = \{P : P = P^T = P^2,\ \operatorname{rank} P = k\}`.

For every ``n`` and every rank ``0 <= k <= n``: ``P`` is a symmetric projector of rank ``k``
(rank from the trace and, independently, from the SVD), its eigenvalues are ``k`` ones and
``n - k`` zeros, ``I - P`` is a symmetric projector of rank ``n - k`` with
``P (I - P) = 0``. Orthonormalizing a tall or square matrix by Björck, QR or polar gives
orthonormal columns spanning the same space, hence the same projector (to the accuracy the
matrix's condition number allows).
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, note
from hypothesis import strategies as st
from numpy.typing import NDArray

from gnpcheck.checks import assert_orthonormal_columns, assert_symmetric_projector
from gnpcheck.reference import orthonormalize
from gnpcheck.strategies import channel_counts, projectors, seeds
from gnpcheck.tolerances import projector_tolerance
from properties._support import closeness


@st.composite
def _sized_projectors(draw: st.DrawFn) -> tuple[int, int, NDArray[np.float64]]:
    n = draw(channel_counts(), label="n")
    k = draw(st.integers(0, n), label="rank")
    return n, k, draw(projectors(n=n, rank=k))


@given(case=_sized_projectors())
def test_projector_is_symmetric_idempotent_of_its_rank(
    case: tuple[int, int, NDArray[np.float64]],
) -> None:
    n, k, p = case
    assert_symmetric_projector(p, rank=k)
    svd_rank = int(np.linalg.matrix_rank(p))
    assert svd_rank == k, f"rank (SVD)={svd_rank}, but should be {k} [projector {n} x {n}]"
    eigenvalues = np.linalg.eigvalsh(p).astype(np.float64)
    expected = np.concatenate([np.zeros(n - k), np.ones(k)])
    closeness(
        "projector",
        eigenvalues,
        expected,
        projector_tolerance(np.float64, n),
        figure="max |eigenvalue - {0, 1}|",
        method="eigvalsh",
        subject=f"projector {n} x {n} of rank {k}",
    ).raise_if_failed()


@given(case=_sized_projectors())
def test_complement_is_projector_of_complementary_rank(
    case: tuple[int, int, NDArray[np.float64]],
) -> None:
    n, k, p = case
    complement = np.eye(n) - p
    assert_symmetric_projector(complement, rank=n - k)
    closeness(
        "projector",
        p @ complement,
        np.zeros((n, n)),
        projector_tolerance(np.float64, n),
        figure="max |P (I - P)|",
        method="dense product",
        subject=f"projector {n} x {n} of rank {k}",
    ).raise_if_failed()


@given(data=st.data())
def test_orthonormalization_methods_agree_on_tall_and_square(data: st.DataObject) -> None:
    columns = data.draw(channel_counts(), label="columns")
    rows = data.draw(st.integers(columns, 2 * columns), label="rows")
    note(f"{'square' if rows == columns else 'tall'} {rows} x {columns}")
    matrix = np.random.default_rng(data.draw(seeds(), label="seed")).standard_normal(
        (rows, columns)
    )
    bases = {method: orthonormalize(matrix, method) for method in ("bjorck", "qr", "polar")}
    for basis in bases.values():
        assert_orthonormal_columns(basis)
    reference = bases["polar"] @ bases["polar"].T
    # Each basis spans the range of a matrix within O(eps ||A||) of A: by Wedin's theorem the
    # subspaces, hence the projectors, agree to O(eps cond(A)).
    allowed = projector_tolerance(np.float64, rows) * float(np.linalg.cond(matrix))
    for method in ("bjorck", "qr"):
        closeness(
            "projector",
            bases[method] @ bases[method].T,
            reference,
            allowed,
            figure="max |R R^T - R_polar R_polar^T|",
            method=f"orthonormalize(method={method!r}) against 'polar'",
            subject=f"matrix {rows} x {columns}",
        ).raise_if_failed()
