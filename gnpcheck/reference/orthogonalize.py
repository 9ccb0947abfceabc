r"""Matrices with orthonormal columns and symmetric projectors, in float64.

Björck–Bowie orthogonalization (Björck and Bowie, "An iterative algorithm for computing the
best estimate of an orthogonal matrix", SIAM J. Numer. Anal. 8(2), 1971) iterates

.. math:: A_{k+1} = A_k \sum_{j=0}^{p} \binom{-1/2}{j} (-Q_k)^j,
          \qquad Q_k = I - A_k^T A_k,

the order-``p`` Taylor polynomial of :math:`(A_k^T A_k)^{-1/2}` about :math:`I`
(coefficients :math:`1, 1/2, 3/8, 5/16, \ldots`). Started from :math:`A_0` with
:math:`\|A_0\|_2 \le 1` and full column rank it converges to the orthogonal polar factor
:math:`U` of :math:`A_0 = U S` (the closest matrix with orthonormal columns).
"""

from __future__ import annotations

from math import comb
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from gnpcheck.errors import InvalidArgumentError, InvalidTypeError
from gnpcheck.reference._validation import as_real_array, as_square_matrix, describe_shape
from gnpcheck.tolerances import matrix_orthogonality_tolerance, projector_tolerance

__all__ = [
    "OrthonormalizeMethod",
    "bjorck",
    "bjorck_coefficients",
    "is_symmetric_projector",
    "orthogonality_gap",
    "orthonormalize",
    "projector",
    "projector_defect",
    "projector_rank",
    "random_orthogonal",
]

OrthonormalizeMethod = Literal["bjorck", "qr", "polar"]
_BJORCK_MAX_ITERS = 200


def bjorck_coefficients(order: int) -> list[float]:
    r"""Coefficients :math:`c_j = \binom{2j}{j} / 4^j` of :math:`(I - Q)^{-1/2} = \sum_j c_j Q^j`."""
    if isinstance(order, bool) or not isinstance(order, int):
        raise InvalidTypeError(f"order={order!r}, but it must be an int")
    if order < 1:
        raise InvalidArgumentError(f"order={order}, but it must be at least 1")
    return [comb(2 * j, j) / 4.0**j for j in range(order + 1)]


def bjorck(matrix: object, iters: int, order: int = 1) -> NDArray[np.float64]:
    r"""Run ``iters`` Björck–Bowie iterations of order ``order`` on a tall matrix, unscaled.

    Args:
        matrix: array of shape ``(m, n)`` with ``m >= n``; it converges when every singular
            value lies in :math:`(0, \sqrt{3})` for ``order=1`` (use :func:`orthonormalize`
            for scaling and a stopping rule).
        iters: number of iterations, ``>= 0``.
        order: number of Taylor terms after the first, ``>= 1``.

    Returns:
        The iterate :math:`A_{\text{iters}}` (float64).

    Raises:
        InvalidArgumentError: wide matrix, non-finite entries, negative ``iters``, ``order < 1``.
    """
    a = as_real_array(matrix, "matrix", ndim=2)
    if a.shape[0] < a.shape[1]:
        raise InvalidArgumentError(
            f"matrix is an {describe_shape(a)}, but it must be tall or square (rows >= columns)"
        )
    if isinstance(iters, bool) or not isinstance(iters, int):
        raise InvalidTypeError(f"iters={iters!r}, but it must be an int")
    if iters < 0:
        raise InvalidArgumentError(f"iters={iters}, but it must be >= 0")
    coefficients = bjorck_coefficients(order)
    identity = np.eye(a.shape[1])
    for _ in range(iters):
        a = a @ _taylor_inverse_sqrt(identity - a.T @ a, coefficients)
    return a


def _taylor_inverse_sqrt(q: NDArray[np.float64], coefficients: list[float]) -> NDArray[np.float64]:
    """Horner evaluation of sum_j c_j Q^j."""
    result = coefficients[-1] * np.eye(q.shape[0])
    for c in reversed(coefficients[:-1]):
        result = c * np.eye(q.shape[0]) + q @ result
    return result


def orthogonality_gap(matrix: NDArray[np.float64]) -> float:
    """``||A^T A - I||_2`` for a tall ``A``: 0 exactly when the columns are orthonormal."""
    gram = matrix.T @ matrix
    return float(np.linalg.norm(gram - np.eye(gram.shape[0]), 2))


def orthonormalize(
    r_tilde: object, method: OrthonormalizeMethod = "bjorck", order: int = 1
) -> NDArray[np.float64]:
    r"""The matrix with orthonormal columns that a tall full-rank ``r_tilde`` parameterizes.

    Args:
        r_tilde: array of shape ``(m, n)``, ``m >= n``, of full column rank.
        method: one of

            - ``"bjorck"`` (default): Björck–Bowie iterations from
              :math:`\tilde R / \|\tilde R\|_2` until
              :math:`\|A^T A - I\|_2 \le 10\, n\, \varepsilon`, and one more (to rounding
              level); they converge to the polar factor;
            - ``"polar"``: the orthogonal polar factor :math:`U V^T` of the SVD
              :math:`\tilde R = U \Sigma V^T`, the closest matrix with orthonormal columns;
            - ``"qr"``: the Q of the thin QR factorization with the signs fixed so that
              :math:`\operatorname{diag}(R) > 0` (unique for full column rank).

        order: the Björck order (see :func:`bjorck`), used by ``"bjorck"`` only.

    Returns:
        An ``(m, n)`` float64 matrix with orthonormal columns.

    Raises:
        InvalidArgumentError: ``r_tilde`` not 2-D, wide, non-finite, or not of full column rank
            (its smallest singular value below :math:`n\varepsilon\|\tilde R\|_2`).
    """
    r = as_real_array(r_tilde, "r_tilde", ndim=2)
    rows, cols = r.shape
    if rows < cols or cols == 0:
        raise InvalidArgumentError(
            f"r_tilde is an {describe_shape(r)}, but it must be tall (rows >= columns >= 1)"
        )
    singular_values = np.linalg.svd(r, compute_uv=False)
    if singular_values[-1] <= cols * np.finfo(np.float64).eps * singular_values[0]:
        raise InvalidArgumentError(
            f"r_tilde has rank below {cols} (sigma_min/sigma_max = "
            f"{singular_values[-1] / max(singular_values[0], 1e-300):.3g}), but it must have full "
            "column rank to define orthonormal columns"
        )
    if method == "polar":
        u, _, vt = np.linalg.svd(r, full_matrices=False)
        return np.asarray(u @ vt, dtype=np.float64)
    if method == "qr":
        q, upper = np.linalg.qr(r)
        signs = np.where(np.diag(upper) < 0, -1.0, 1.0)
        return q * signs
    if method == "bjorck":
        return _bjorck_to_convergence(r / singular_values[0], order)
    raise InvalidArgumentError(f"method={method!r}, but it must be 'bjorck', 'qr' or 'polar'")


def _bjorck_to_convergence(a: NDArray[np.float64], order: int) -> NDArray[np.float64]:
    """Björck until the gap is within tolerance, then one iteration more: the convergence is
    quadratic, so that step takes the gap from just under the tolerance to rounding level
    (stopping at the threshold left products such as ``A A^T`` just over the projector
    tolerance for some draws)."""
    tolerance = matrix_orthogonality_tolerance(np.float64, a.shape[1])
    for _ in range(_BJORCK_MAX_ITERS):
        if orthogonality_gap(a) <= tolerance:
            return bjorck(a, 1, order)
        a = bjorck(a, 1, order)
    raise InvalidArgumentError(  # pragma: no cover - full rank was checked above
        f"Björck did not reach ||A^T A - I|| <= {tolerance:.2g} in {_BJORCK_MAX_ITERS} iterations"
    )


def projector(r_tilde: object, method: OrthonormalizeMethod = "bjorck") -> NDArray[np.float64]:
    r"""The symmetric projector :math:`P = R R^T` with :math:`R = \psi(\tilde R)` orthonormal.

    ``r_tilde`` of shape ``(n, k)`` gives :math:`P \in \mathcal{P}(n, k)`: :math:`P = P^T = P^2`,
    rank ``k``. ``k = 0`` (shape ``(n, 0)``) gives the zero projector.
    """
    r = as_real_array(r_tilde, "r_tilde", ndim=2)
    if r.shape[1] == 0:
        return np.zeros((r.shape[0], r.shape[0]))
    basis = orthonormalize(r, method)
    return basis @ basis.T


def projector_defect(matrix: NDArray[np.float64]) -> float:
    """``max(||P - P^T||_2, ||P^2 - P||_2)``: 0 exactly for a symmetric projector."""
    asymmetry = float(np.linalg.norm(matrix - matrix.T, 2))
    idempotence = float(np.linalg.norm(matrix @ matrix - matrix, 2))
    return max(asymmetry, idempotence)


def is_symmetric_projector(matrix: object, tol: float | None = None) -> bool:
    """Whether ``matrix`` is a symmetric projector up to ``tol`` (default 10 n eps, see tolerances)."""
    p = as_square_matrix(matrix, "matrix")
    if tol is None:
        tol = projector_tolerance(np.float64, p.shape[0])
    return projector_defect(p) <= tol


def projector_rank(matrix: object, name: str = "projector", tol: float | None = None) -> int:
    """The rank of a symmetric projector, ``round(trace P)``; rejects a matrix that is not one."""
    p = as_square_matrix(matrix, name)
    if tol is None:
        tol = projector_tolerance(np.float64, p.shape[0])
    defect = projector_defect(p)
    if defect > tol:
        raise InvalidArgumentError(
            f"{name} has max(||P - P^T||, ||P^2 - P||) = {defect:.3g}, but a symmetric projector "
            f"needs <= {tol:.3g}"
        )
    return round(float(np.trace(p)))


def random_orthogonal(
    n: int, rng: np.random.Generator, det: int | None = None
) -> NDArray[np.float64]:
    """A Haar-random ``n x n`` orthogonal matrix (QR of a Gaussian, signs fixed), optionally of given det."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise InvalidArgumentError(f"n={n!r}, but it must be an int >= 1")
    if det not in (None, 1, -1):
        raise InvalidArgumentError(f"det={det!r}, but it must be None, 1 or -1")
    q, upper = np.linalg.qr(rng.standard_normal((n, n)))
    q = q * np.where(np.diag(upper) < 0, -1.0, 1.0)
    if det is not None and np.sign(np.linalg.det(q)) != det:
        q[:, 0] = -q[:, 0]
    return q
