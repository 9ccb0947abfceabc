r"""Theorem 2 (Li et al., 2019): a BCOP convolution ``C`` with ``n`` channels and projectors of
any rank embeds in a BCOP convolution ``C'`` with ``2n`` channels and rank-``n`` projectors,
:math:`C'(x)_{1:n} = C(x_{1:n})`.

Checked on the construction :func:`~gnpcheck.reference.embed_doubled` (docs, Note
[embedding]) for reference BCOP factors of every rank, 1-D and 2-D: ``H'`` is orthogonal,
every projector of ``C'`` is a symmetric projector of rank ``n``, ``C'`` is orthogonal, and
its first ``n`` outputs are ``C`` applied to the first ``n`` inputs, on any ``2n``-channel input.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from numpy.typing import NDArray

from gnpcheck.checks import (
    assert_orthogonal,
    assert_orthonormal_columns,
    assert_symmetric_projector,
)
from gnpcheck.reference import (
    BCOPFactors,
    block_conv,
    circular_conv,
    column_factor,
    embed_doubled,
    row_factor,
)
from gnpcheck.strategies import bcop_factors, gradients
from properties._support import closeness, draw_input_shape, rounding_allowance


def _absolute_kernel(factors: BCOPFactors) -> NDArray[np.float64]:
    """The BCOP product taken on the absolute values of H and of every factor's taps."""
    d = factors.spatial_ndim
    kernel = np.abs(factors.H).reshape((1,) * d + factors.H.shape)
    for index, p in enumerate(factors.Ps):
        row = np.abs(row_factor(p))
        kernel = block_conv(kernel, row if d == 2 else row[0])
        if factors.Qs is not None:
            kernel = block_conv(kernel, np.abs(column_factor(factors.Qs[index])))
    return kernel


@given(factors=bcop_factors())
def test_embedding_has_rank_n_projectors_and_orthogonal_h(factors: BCOPFactors) -> None:
    n = factors.H.shape[0]
    embedded = embed_doubled(factors.H, factors.Ps, factors.Qs)
    assert embedded.H.shape == (2 * n, 2 * n), (
        f"H' has shape {embedded.H.shape}, but should be {(2 * n, 2 * n)}"
    )
    assert_orthonormal_columns(embedded.H)
    projectors = embedded.Ps + (embedded.Qs or ())
    assert len(projectors) == len(factors.Ps) + len(factors.Qs or ()), (
        "the embedding changed the kernel size"
    )
    for p in projectors:
        assert_symmetric_projector(p, rank=n)


@given(factors=bcop_factors(), data=st.data())
def test_embedding_is_orthogonal_and_restricts_to_original(
    factors: BCOPFactors, data: st.DataObject
) -> None:
    n = factors.H.shape[0]
    kernel = factors.kernel()
    embedded = embed_doubled(factors.H, factors.Ps, factors.Qs).kernel()
    shape = draw_input_shape(data, embedded)
    assert_orthogonal(embedded, shape)
    x = data.draw(
        gradients(channels=2 * n, input_shape=shape, count=1), label="input (2n channels)"
    )
    measured = circular_conv(embedded, x)[:, :n]
    expected = circular_conv(kernel, x[:, :n])
    # Rounding: each of the s factors of either kernel adds at most 2 (2n) + 1 operations per
    # entry (two overlapping taps of 2n products, and I - P), the convolution K^d (2n) more,
    # all bounded by the same computation on absolute values (Higham, eq. 3.5).
    steps = len(factors.Ps) + len(factors.Qs or ())
    terms = steps * (4 * n + 1) + int(np.prod(kernel.shape[:-2])) * 2 * n
    magnitude = circular_conv(_absolute_kernel(factors), np.abs(x[:, :n]))
    closeness(
        "embedding",
        measured,
        expected,
        rounding_allowance(terms, magnitude),
        figure="max |C'(x)[:n] - C(x[:n])|",
        method="circular_conv of both kernels",
        subject=f"n={n}, kernel {kernel.shape}, input {x.shape}",
    ).raise_if_failed()
