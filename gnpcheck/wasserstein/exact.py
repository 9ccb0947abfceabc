r"""The exact Wasserstein-1 distance between two discrete distributions, by linear programming.

For :math:`p = \sum_i a_i \delta_{x_i}` and :math:`q = \sum_j b_j \delta_{y_j}`,

.. math:: W_1(p, q) = \min_{\pi \ge 0} \sum_{i,j} \pi_{ij} \|x_i - y_j\|_2
   \quad\text{s.t.}\quad \sum_j \pi_{ij} = a_i,\ \sum_i \pi_{ij} = b_j,

the optimal-transport linear program over couplings :math:`\pi`, solved by SciPy's HiGHS.
It is the oracle the estimates are validated against (small supports only: the program has
``m * n`` variables).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import linprog

from gnpcheck.errors import GnpcheckError, InvalidArgumentError

__all__ = ["exact_discrete_w1"]


def _points(values: ArrayLike, name: str) -> NDArray[np.float64]:
    points = np.asarray(values, dtype=np.float64)
    if points.ndim == 1:
        points = points[:, None]
    if points.ndim != 2 or points.shape[0] == 0 or not np.all(np.isfinite(points)):
        raise InvalidArgumentError(
            f"{name} has shape {np.shape(values)}, but it must be a non-empty (m, d) or (m,) "
            "array of finite support points"
        )
    return points


def _weights(values: ArrayLike | None, count: int, name: str) -> NDArray[np.float64]:
    if values is None:
        return np.full(count, 1.0 / count)
    weights = np.asarray(values, dtype=np.float64)
    if weights.shape != (count,) or not np.all(np.isfinite(weights)) or np.any(weights < 0):
        raise InvalidArgumentError(
            f"{name} has shape {weights.shape}, but it must hold {count} finite weights >= 0"
        )
    total = float(weights.sum())
    if total <= 0:
        raise InvalidArgumentError(f"{name} sums to {total}, but the weights must sum to > 0")
    return weights / total


def exact_discrete_w1(
    x: ArrayLike,
    y: ArrayLike,
    x_weights: ArrayLike | None = None,
    y_weights: ArrayLike | None = None,
) -> float:
    r""":math:`W_1` with Euclidean cost between two weighted point sets (float64).

    Args:
        x: support of :math:`p`, ``(m, d)`` (or ``(m,)`` for 1-D points).
        y: support of :math:`q`, ``(n, d)`` (or ``(n,)``).
        x_weights, y_weights: non-negative weights, normalized to sum to 1 (as
            ``scipy.stats.wasserstein_distance`` does); ``None`` for uniform weights.

    Returns:
        The optimal transport cost.

    Raises:
        InvalidArgumentError: empty or non-finite supports, supports of different dimensions,
            weights of the wrong length, negative, non-finite or summing to 0.
        GnpcheckError: the solver does not report an optimum.
    """
    xs, ys = _points(x, "x"), _points(y, "y")
    if xs.shape[1] != ys.shape[1]:
        raise InvalidArgumentError(
            f"x has points of dimension {xs.shape[1]} and y of {ys.shape[1]}, but they must match"
        )
    a = _weights(x_weights, xs.shape[0], "x_weights")
    b = _weights(y_weights, ys.shape[0], "y_weights")
    m, n = a.size, b.size
    cost = np.linalg.norm(xs[:, None, :] - ys[None, :, :], axis=-1)
    rows = np.kron(np.eye(m), np.ones((1, n)))
    columns = np.kron(np.ones((1, m)), np.eye(n))
    result = linprog(
        cost.ravel(),
        A_eq=np.vstack([rows, columns]),
        b_eq=np.concatenate([a, b]),
        bounds=(0, None),
        method="highs",
    )
    if result.status != 0 or result.fun is None:
        raise GnpcheckError(f"the transport program was not solved: {result.message}")
    return float(result.fun)
