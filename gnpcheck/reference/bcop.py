r"""Block Convolution Orthogonal Parameterization (BCOP), Li et al., NeurIPS 2019.

1-D: :math:`W = H \,\square\, [P_1, I - P_1] \,\square \cdots \square\, [P_{K-1}, I - P_{K-1}]`
with :math:`H \in O(n)` and symmetric projectors :math:`P_i`; every factor
:math:`P + (I - P) z^{-1}` is paraunitary, so :math:`W(z)^T W(z^{-1}) = I`.

2-D: :math:`W = H \,\square\, R_1 \,\square\, C_1 \,\square \cdots \square\, R_{K-1}
\,\square\, C_{K-1}`, the row factor :math:`R_i = [P_i, I - P_i]` a ``1 x 2`` kernel (taps
along the width axis) and the column factor :math:`C_i = [Q_i; I - Q_i]` a ``2 x 1`` kernel
(taps along the height axis). Kernel size ``K x K``, ``K >= 1``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from gnpcheck.errors import InvalidArgumentError, InvalidTypeError
from gnpcheck.reference._validation import as_square_matrix
from gnpcheck.reference.orthogonalize import (
    orthogonality_gap,
    projector,
    projector_rank,
    random_orthogonal,
)
from gnpcheck.reference.polynomial import block_conv
from gnpcheck.tolerances import matrix_orthogonality_tolerance

__all__ = [
    "BCOPFactors",
    "bcop_kernel_1d",
    "bcop_kernel_2d",
    "column_factor",
    "random_bcop_1d",
    "random_bcop_2d",
    "row_factor",
]


@dataclass(frozen=True)
class BCOPFactors:
    """The parameters of a BCOP kernel: ``H`` and the projectors (``Qs`` is ``None`` in 1-D)."""

    H: NDArray[np.float64]
    Ps: tuple[NDArray[np.float64], ...]
    Qs: tuple[NDArray[np.float64], ...] | None = None

    @property
    def spatial_ndim(self) -> int:
        """1 for a 1-D kernel, 2 for a 2-D kernel."""
        return 1 if self.Qs is None else 2

    @property
    def kernel_size(self) -> int:
        """Number of taps along each spatial axis, ``len(Ps) + 1``."""
        return len(self.Ps) + 1

    def kernel(self) -> NDArray[np.float64]:
        """The taps-first kernel these factors build."""
        if self.Qs is None:
            return bcop_kernel_1d(self.H, self.Ps)
        return bcop_kernel_2d(self.H, self.Ps, self.Qs)


def _checked_orthogonal(h: object) -> NDArray[np.float64]:
    matrix = as_square_matrix(h, "H")
    gap = orthogonality_gap(matrix)
    tolerance = matrix_orthogonality_tolerance(np.float64, matrix.shape[0])
    if gap > tolerance:
        raise InvalidArgumentError(
            f"H has ||H^T H - I||_2 = {gap:.3g}, but it must be orthogonal (<= {tolerance:.3g})"
        )
    return matrix


def _checked_projectors(values: Sequence[object], name: str, n: int) -> list[NDArray[np.float64]]:
    if isinstance(values, np.ndarray) and values.ndim == 2:
        raise InvalidTypeError(f"{name} is a single matrix, but it must be a sequence of matrices")
    matrices = []
    for index, value in enumerate(values):
        label = f"{name}[{index}]"
        matrix = as_square_matrix(value, label)
        if matrix.shape[0] != n:
            raise InvalidArgumentError(
                f"{label} is {matrix.shape[0]} x {matrix.shape[0]}, but H has {n} channels"
            )
        projector_rank(matrix, label)
        matrices.append(matrix)
    return matrices


def row_factor(p: NDArray[np.float64]) -> NDArray[np.float64]:
    """The ``1 x 2`` kernel ``[P, I - P]`` (taps along the width axis)."""
    return np.stack([p, np.eye(p.shape[0]) - p])[np.newaxis]


def column_factor(q: NDArray[np.float64]) -> NDArray[np.float64]:
    """The ``2 x 1`` kernel ``[Q; I - Q]`` (taps along the height axis)."""
    return np.stack([q, np.eye(q.shape[0]) - q])[:, np.newaxis]


def bcop_kernel_1d(H: object, Ps: Sequence[object]) -> NDArray[np.float64]:
    r"""The 1-D BCOP kernel :math:`H \square [P_1, I-P_1] \square \cdots`, shape ``(K, n, n)``.

    Raises:
        InvalidArgumentError: ``H`` not orthogonal, a ``P`` not an ``n x n`` symmetric projector.
    """
    h = _checked_orthogonal(H)
    kernel = h[np.newaxis]
    for p in _checked_projectors(Ps, "Ps", h.shape[0]):
        kernel = block_conv(kernel, np.stack([p, np.eye(p.shape[0]) - p]))
    return kernel


def bcop_kernel_2d(H: object, Ps: Sequence[object], Qs: Sequence[object]) -> NDArray[np.float64]:
    r"""The 2-D BCOP kernel, shape ``(K, K, n, n)`` with ``K = len(Ps) + 1 = len(Qs) + 1``.

    Raises:
        InvalidArgumentError: ``len(Ps) != len(Qs)``, ``H`` not orthogonal, a projector not an
            ``n x n`` symmetric projector.
    """
    h = _checked_orthogonal(H)
    n = h.shape[0]
    ps = _checked_projectors(Ps, "Ps", n)
    qs = _checked_projectors(Qs, "Qs", n)
    if len(ps) != len(qs):
        raise InvalidArgumentError(
            f"len(Ps)={len(ps)} and len(Qs)={len(qs)}, but they must be equal (kernel size - 1)"
        )
    kernel = h[np.newaxis, np.newaxis]
    for p, q in zip(ps, qs, strict=True):
        kernel = block_conv(block_conv(kernel, row_factor(p)), column_factor(q))
    return kernel


def _draw_projectors(
    n: int, count: int, rng: np.random.Generator, ranks: Sequence[int] | None, name: str
) -> tuple[NDArray[np.float64], ...]:
    if ranks is None:
        ranks = [n // 2] * count
    if len(ranks) != count:
        raise InvalidArgumentError(
            f"{name} has {len(ranks)} entries, but kernel size {count + 1} needs {count}"
        )
    for rank in ranks:
        if isinstance(rank, bool) or not isinstance(rank, (int, np.integer)) or not 0 <= rank <= n:
            raise InvalidArgumentError(
                f"{name}={list(ranks)!r}, but every rank must be an int in [0, {n}]"
            )
    return tuple(projector(rng.standard_normal((n, int(rank)))) for rank in ranks)


def _check_size(n: int, k: int) -> None:
    for name, value in (("n", n), ("k", k)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidTypeError(f"{name}={value!r}, but it must be an int")
        if value < 1:
            raise InvalidArgumentError(f"{name}={value}, but it must be at least 1")


def random_bcop_1d(
    n: int,
    k: int,
    rng: np.random.Generator,
    ranks: Sequence[int] | None = None,
    det: int | None = None,
) -> BCOPFactors:
    """Random 1-D BCOP factors: Haar ``H`` (of determinant ``det`` if given), ``k - 1`` projectors.

    ``ranks`` gives each projector's rank (default ``n // 2``, the rank BCOP layers use).
    """
    _check_size(n, k)
    h = random_orthogonal(n, rng, det)
    return BCOPFactors(h, _draw_projectors(n, k - 1, rng, ranks, "ranks"))


def random_bcop_2d(
    n: int,
    k: int,
    rng: np.random.Generator,
    ranks: Sequence[int] | None = None,
    column_ranks: Sequence[int] | None = None,
) -> BCOPFactors:
    """Random 2-D BCOP factors: Haar ``H``, ``k - 1`` row projectors ``Ps`` (ranks ``ranks``)
    and ``k - 1`` column projectors ``Qs`` (ranks ``column_ranks``, default ``ranks``)."""
    _check_size(n, k)
    h = random_orthogonal(n, rng)
    ps = _draw_projectors(n, k - 1, rng, ranks, "ranks")
    qs = _draw_projectors(
        n, k - 1, rng, ranks if column_ranks is None else column_ranks, "column_ranks"
    )
    return BCOPFactors(h, ps, qs)
