"""The tolerance policy: every tolerance gnpcheck uses is written here once, with its reason.

Tolerances scale with the dtype's machine epsilon and the size of the problem, never with a
dtype-blind constant. Against the identity (orthogonality, projector idempotence) the
relative tolerance is 0: the absolute tolerance below is the whole budget.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gnpcheck.errors import InvalidArgumentError

__all__ = [
    "FLOAT64_KERNEL_AGREEMENT",
    "GNP_FACTOR",
    "MATRIX_ORTHOGONALITY_FACTOR",
    "ORTHOGONALITY_FACTOR",
    "PROJECTOR_FACTOR",
    "RECONSTRUCTION_FACTOR",
    "gnp_tolerance",
    "machine_epsilon",
    "matrix_orthogonality_tolerance",
    "orthogonality_tolerance",
    "projector_tolerance",
    "reconstruction_tolerance",
    "smallest_subnormal",
]

#: Orthogonality of a convolution operator with N rows. The float64 reference meets
#: ``max |sigma - 1| <= 10 * N * eps``. Backward-stable SVD and products of K factors each add
#: O(N eps); 10 is headroom for the constants, and the budget stays far below any defect a
#: construction bug causes (those are O(1) or at least O(sqrt(eps))).
ORTHOGONALITY_FACTOR = 10.0

#: An n x n matrix with orthonormal columns from Björck, QR or polar has ``||Q^T Q - I||_2``
#: of a few n eps in floating point (Higham, Accuracy and Stability, ch. 19); 10 n eps allows it.
MATRIX_ORTHOGONALITY_FACTOR = 10.0

#: A symmetric projector ``P = R R^T`` has ``||P^2 - P||`` and ``||P - P^T||`` of order
#: ``n eps ||R||^2``.
PROJECTOR_FACTOR = 10.0

#: A layer and a reconstruction of it (from its measured weight and bias, or its plain
#: export) sum the same ``fan_in`` products in possibly different orders, so each output
#: differs by at most ``fan_in * eps * (|W| |x| + |b|)`` in the layer's dtype (Higham,
#: Accuracy and Stability, eq. 3.5); 10 is headroom. A layer that applies anything else
#: differs by O(1).
RECONSTRUCTION_FACTOR = 10.0

#: Gradient norm preservation of a linear map with m outputs. The relative change
#: ``| ||J^T g|| - ||g|| | / ||g||`` is bounded by the orthogonality defect, so the same
#: ``10 * m * eps`` budget applies.
GNP_FACTOR = 10.0

#: Absolute agreement of two float64 constructions of the same kernel from the same factors
#: by different routes (the layers' torch code and the NumPy reference, a cached kernel and a
#: fresh one, CPU and GPU, a layer and its export), and of the outputs they give on O(1)
#: inputs. Each entry sums about ``n * K^2`` rounded products of O(1) factors (n channels, K
#: taps per axis), so two routes agree to about ``n * K^2 * eps`` (2e-13 at n = 16, K = 7);
#: 1e-12 leaves headroom and stays far below the O(1) or O(sqrt(eps)) errors of a wrong
#: construction.
FLOAT64_KERNEL_AGREEMENT = 1e-12


def _float_info(dtype: Any) -> Any:
    """``np.finfo`` of a NumPy or PyTorch floating dtype, or of its name."""
    try:
        resolved = np.dtype(
            str(dtype).removeprefix("torch.") if not isinstance(dtype, type) else dtype
        )
        return np.finfo(resolved)
    except (TypeError, ValueError):
        raise InvalidArgumentError(
            f"dtype={dtype!r}, but it must be float16, float32 or float64, the floating dtypes "
            "that NumPy (the reference and its tolerances) represents"
        ) from None


def machine_epsilon(dtype: Any) -> float:
    """Machine epsilon of a NumPy or PyTorch floating dtype (by name), e.g. 2.2e-16 for float64."""
    return float(_float_info(dtype).eps)


def smallest_subnormal(dtype: Any) -> float:
    """The absolute error an underflowing operation may add (Higham, eq. 2.2), e.g. 4.9e-324."""
    return float(_float_info(dtype).smallest_subnormal)


def orthogonality_tolerance(dtype: Any, operator_size: int) -> float:
    """Allowed ``max |sigma - 1|`` of a convolution operator with ``operator_size`` rows."""
    return ORTHOGONALITY_FACTOR * operator_size * machine_epsilon(dtype)


def matrix_orthogonality_tolerance(dtype: Any, n: int) -> float:
    """Allowed ``||Q^T Q - I||_2`` for an n-column matrix with orthonormal columns."""
    return MATRIX_ORTHOGONALITY_FACTOR * n * machine_epsilon(dtype)


def projector_tolerance(dtype: Any, n: int) -> float:
    """Allowed ``max(||P - P^T||_2, ||P^2 - P||_2)`` for an n x n symmetric projector."""
    return PROJECTOR_FACTOR * n * machine_epsilon(dtype)


def reconstruction_tolerance(dtype: Any, fan_in: int) -> float:
    """Allowed difference between a layer's output and its reconstruction, per unit of
    ``|W| |x| + |b|`` (the same layer with absolute weights on the absolute input)."""
    return RECONSTRUCTION_FACTOR * fan_in * machine_epsilon(dtype)


def gnp_tolerance(dtype: Any, output_size: int) -> float:
    """Allowed ``| ||J^T g|| - ||g|| | / ||g||`` for a map with ``output_size`` outputs."""
    return GNP_FACTOR * output_size * machine_epsilon(dtype)
