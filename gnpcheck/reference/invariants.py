r"""The Theorem 1 invariant of 1-D orthogonal convolutions (docs, Note [component index]).

A paraunitary :math:`W(z) = \sum_{i=0}^{K-1} W_i z^{-i}` (``n x n``) has
:math:`\det W(z) = \pm z^{-r}` with :math:`0 \le r \le (K-1) n`: the determinant is a
polynomial in :math:`z^{-1}` whose modulus is 1 on the unit circle, hence a monomial. The
pair ``(sign, r)`` is constant along continuous paths of orthogonal convolutions (the sign
is continuous and in :math:`\{\pm 1\}`; ``r`` is the winding number of
:math:`\det W(e^{i\theta})`), and there are :math:`2((K-1)n + 1) = 2(K-1)n + 2` values:
Theorem 1 of Li et al. (NeurIPS 2019) counts that many connected components. For BCOP,
:math:`\det [P + (I-P) z^{-1}] = z^{-\operatorname{rank}(I - P)}`, so
:math:`\text{sign} = \det H` and :math:`r = \sum_i (n - \operatorname{rank} P_i)`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from gnpcheck.errors import InvalidArgumentError
from gnpcheck.reference._validation import as_kernel, describe_shape
from gnpcheck.reference.bcop import _checked_orthogonal, _checked_projectors

__all__ = ["component_index", "determinant_polynomial", "kernel_component_index"]


def component_index(H: object, Ps: Sequence[object]) -> tuple[int, int]:
    """``(sign, r)`` with ``det W(z) = sign * z**-r`` for the 1-D BCOP kernel ``W(H, Ps)``.

    ``sign = det H`` and ``r = sum_i (n - rank P_i)``, read off the factors.
    """
    h = _checked_orthogonal(H)
    projectors = _checked_projectors(Ps, "Ps", h.shape[0])
    sign = 1 if np.linalg.det(h) > 0 else -1
    degree = sum(h.shape[0] - round(float(np.trace(p))) for p in projectors)
    return sign, degree


def determinant_polynomial(kernel: object) -> NDArray[np.float64]:
    r"""Coefficients ``c`` of :math:`\det W(z) = \sum_j c_j z^{-j}` for a square 1-D kernel.

    Exact interpolation: :math:`\det W` has degree at most :math:`(K-1)n` in :math:`z^{-1}`;
    it is evaluated at :math:`M = (K-1)n + 1` roots of unity and inverted by a DFT.
    """
    w = as_kernel(kernel)
    if w.ndim != 3 or w.shape[1] != w.shape[2]:
        raise InvalidArgumentError(
            f"kernel is an {describe_shape(w)}, but it must be a square 1-D kernel (K, n, n)"
        )
    taps, n = w.shape[0], w.shape[1]
    points = (taps - 1) * n + 1
    z_inverse = np.exp(-2j * np.pi * np.arange(points) / points)
    powers = z_inverse[:, np.newaxis] ** np.arange(taps)[np.newaxis, :]
    values = np.linalg.det(np.tensordot(powers, w, axes=(1, 0)))
    coefficients = np.fft.ifft(values)  # values[m] = sum_j c_j exp(-2 pi i j m / M)
    return np.asarray(coefficients.real, dtype=np.float64)


def kernel_component_index(kernel: object, tol: float = 1e-8) -> tuple[int, int]:
    """``(sign, r)`` of any square 1-D orthogonal kernel, from :func:`determinant_polynomial`.

    Raises:
        InvalidArgumentError: the determinant is not a monomial ``±z**-r`` within ``tol``
            (the kernel is not orthogonal).
    """
    coefficients = determinant_polynomial(kernel)
    degree = int(np.argmax(np.abs(coefficients)))
    lead = coefficients[degree]
    rest = np.delete(coefficients, degree)
    worst = max(abs(abs(lead) - 1.0), float(np.max(np.abs(rest), initial=0.0)))
    if worst > tol:
        raise InvalidArgumentError(
            f"det W(z) is not ±z^-r: it differs from a unit monomial by {worst:.3g} (allowed "
            f"{tol:.3g}); the kernel is not orthogonal"
        )
    return (1 if lead > 0 else -1), degree
