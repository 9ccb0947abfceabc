r"""The audit's tolerances, each with its reason; they build on :mod:`gnpcheck.tolerances`.

A target is a black box: the audit knows its input size ``n`` and output size ``m``, not
how deep it is. Each output of a network evaluated in floating point carries a relative
forward error of order ``(n + m) eps`` for the size of the problem it solves (a chain of
dot products of those lengths: Higham, Accuracy and Stability, eq. 3.5, ``gamma_k``), and
the audit allows ten times that, as the orthogonality tolerance of
:mod:`gnpcheck.tolerances` does for its ``N eps``.

- Exact spectral checks of a linear target (its kernel or dense matrix, then an SVD) use
  :func:`gnpcheck.tolerances.orthogonality_tolerance` and
  :func:`gnpcheck.tolerances.gnp_tolerance` with ``N = m``.
- A sampled ratio ``||f(x) - f(y)|| / ||x - y||`` is computed from two outputs whose errors
  are of order ``(n + m) eps (||f(x)|| + ||f(y)||)``: relative to the claimed
  ``L ||x - y||`` this is amplified by ``(||f(x)|| + ||f(y)||) / (L ||x - y||)``, which
  :func:`pair_tolerance` includes, so that nearby pairs cannot raise false alarms. The
  outputs' norms, not the inputs': a bias makes ``||f(x)||`` exceed ``L ||x||`` (an
  orthogonal convolution with a bias, after MaxMin and another, was flagged at
  ``1 + 8.6e-13`` against ``1 + 6.4e-13`` from the inputs' norms).
- Identities that hold exactly in real arithmetic (linearity, shift equivariance, the same
  output from two evaluation paths) are compared relative to the size of what is compared,
  with :func:`network_tolerance`.
"""

from __future__ import annotations

from typing import Any

from gnpcheck.errors import InvalidArgumentError
from gnpcheck.tolerances import machine_epsilon

__all__ = [
    "NETWORK_FACTOR",
    "NETWORK_REASON",
    "PAIR_REASON",
    "network_tolerance",
    "pair_tolerance",
]

#: Relative forward error allowed per unit of ``(n + m) eps``: ten times the first-order
#: bound of a dot-product chain of that length (the headroom of ORTHOGONALITY_FACTOR).
NETWORK_FACTOR = 10.0

#: Why :func:`network_tolerance` is what it is, for reports.
NETWORK_REASON = "10 (n + m) eps: forward rounding of a map with n inputs and m outputs"
#: Why :func:`pair_tolerance` is what it is, for reports.
PAIR_REASON = (
    "10 (n + m) eps (||f(x)|| + ||f(y)||) / (L ||x - y||): rounding of f(x) - f(y), "
    "amplified by the pair's distance"
)


def network_tolerance(dtype: Any, n_in: int, n_out: int) -> float:
    """Relative tolerance ``10 (n + m) eps`` of an identity computed through the target.

    Raises:
        InvalidArgumentError: a size below 1 or a non-floating dtype.
    """
    if n_in < 1 or n_out < 1:
        raise InvalidArgumentError(f"n_in={n_in}, n_out={n_out}, but both must be at least 1")
    return NETWORK_FACTOR * (n_in + n_out) * machine_epsilon(dtype)


def pair_tolerance(
    dtype: Any, n_in: int, n_out: int, output_norms: float, scaled_distance: float
) -> float:
    """Relative excess allowed in ``||f(x) - f(y)|| / ||x - y||`` over the claimed constant.

    ``output_norms = ||f(x)|| + ||f(y)||`` and ``scaled_distance = L ||x - y|| > 0``.

    Raises:
        InvalidArgumentError: ``scaled_distance`` not positive.
    """
    if not scaled_distance > 0:
        raise InvalidArgumentError(f"scaled_distance={scaled_distance}, but it must be positive")
    return network_tolerance(dtype, n_in, n_out) * max(1.0, output_norms / scaled_distance)
