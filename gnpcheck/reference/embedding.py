r"""The Theorem 2 embedding (docs, Note [embedding]).

Li et al. (NeurIPS 2019), Theorem 2: a BCOP convolution ``C`` with ``n`` channels and
projectors of any rank embeds in one, ``C'``, with ``2n`` channels and projectors of rank
exactly ``n``, with :math:`C'(x)_{1:n} = C(x_{1:n})`. Construction:

.. math:: H' = \begin{pmatrix} H & 0 \\ 0 & I \end{pmatrix},\quad
          P' = \begin{pmatrix} P & 0 \\ 0 & I - P \end{pmatrix},\quad
          Q' = \begin{pmatrix} Q & 0 \\ 0 & I - Q \end{pmatrix}.

:math:`\operatorname{rank} P' = \operatorname{rank} P + (n - \operatorname{rank} P) = n`, and
every factor is block diagonal, so :math:`C' = \operatorname{diag}(C, \tilde C)` where
:math:`\tilde C` is the BCOP convolution of :math:`(I, I - P_i, I - Q_i)`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray
from scipy.linalg import block_diag

from gnpcheck.errors import InvalidArgumentError
from gnpcheck.reference.bcop import BCOPFactors, _checked_orthogonal, _checked_projectors

__all__ = ["embed_doubled"]


def _doubled(p: NDArray[np.float64]) -> NDArray[np.float64]:
    return np.asarray(block_diag(p, np.eye(p.shape[0]) - p), dtype=np.float64)


def embed_doubled(
    H: object, Ps: Sequence[object], Qs: Sequence[object] | None = None
) -> BCOPFactors:
    """Factors of the ``2n``-channel BCOP with rank-``n`` projectors that embeds ``W(H, Ps, Qs)``.

    ``Qs=None`` for a 1-D kernel. The first ``n`` output channels of the result, on any input,
    depend only on the first ``n`` input channels, through the original convolution.
    """
    h = _checked_orthogonal(H)
    n = h.shape[0]
    ps = tuple(_doubled(p) for p in _checked_projectors(Ps, "Ps", n))
    qs = None if Qs is None else tuple(_doubled(q) for q in _checked_projectors(Qs, "Qs", n))
    if qs is not None and len(qs) != len(ps):
        raise InvalidArgumentError(
            f"len(Ps)={len(ps)} and len(Qs)={len(qs)}, but they must be equal (kernel size - 1)"
        )
    h2 = np.asarray(block_diag(h, np.eye(n)), dtype=np.float64)
    return BCOPFactors(h2, ps, qs)
