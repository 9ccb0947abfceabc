r"""The orthogonality defect :math:`\max |\sigma - 1|` of a circular convolution.

``method="bound"`` never forms the spectrum (docs, Note [defect bound]). With
:math:`\delta(f) = \|\hat W(f)^H \hat W(f) - I\|_2` and the autocorrelation :math:`A_d`,

.. math:: \delta(f) = \Big\| (A_0 - I) + \sum_{d \ne 0} A_d e^{2\pi i\langle d, f/N\rangle} \Big\|_2
          \le \|A_0 - I\|_2 + \sum_{d \ne 0} \|A_d\|_2 =: \delta,

for every input size ``N``, and since :math:`|\sigma^2 - 1| \le \delta` gives
:math:`\sigma \in [\sqrt{1-\delta}, \sqrt{1+\delta}]`,

.. math:: \max |\sigma - 1| \le \frac{\delta}{1 + \sqrt{1 - \delta}} \quad (\delta < 1).

Each :math:`\|\cdot\|_2` is bounded above by :math:`\min(\|X\|_F, \sqrt{\|X\|_1 \|X\|_\infty})`.
The cost is one symmetric product of the stacked taps, :math:`O(K^4 n^3)` in 2-D, and does
not depend on ``N``. With ``rigorous=True`` the floating-point error of evaluating the
:math:`A_d` is bounded too (Higham, Accuracy and Stability, eq. 3.5:
:math:`|\mathrm{fl}(x^T y) - x^T y| \le \gamma_m |x|^T |y|`), so the result bounds the exact
defect of the stored float64 kernel.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from numpy.typing import NDArray

from gnpcheck.errors import InvalidArgumentError
from gnpcheck.reference._validation import as_kernel, as_spatial_shape
from gnpcheck.reference.operator import check_kernel_fits
from gnpcheck.reference.spectrum import autocorrelation, circulant_spectrum

__all__ = ["DefectMethod", "gram_defect_bound", "orthogonality_defect"]

DefectMethod = Literal["bound", "exact"]
_EPS = float(np.finfo(np.float64).eps)


def _gamma(m: int) -> float:
    """Higham's gamma_m = m u / (1 - m u), u = eps / 2 the unit roundoff."""
    unit = _EPS / 2
    return m * unit / (1 - m * unit)


def _norm2_upper(matrix: NDArray[np.float64]) -> float:
    """An upper bound of the spectral norm: min(Frobenius, sqrt(||X||_1 ||X||_inf))."""
    frobenius = float(np.linalg.norm(matrix))
    columns = float(np.abs(matrix).sum(axis=0).max())
    rows = float(np.abs(matrix).sum(axis=1).max())
    return min(frobenius, float(np.sqrt(columns * rows)))


def gram_defect_bound(kernel: object, rigorous: bool = False) -> float:
    r"""The bound :math:`\delta \ge \max_f \|\hat W(f)^H \hat W(f) - I\|_2`, valid for every ``N``.

    The Gram is taken on the smaller side (``W^T W`` when ``n_out >= n_in``, else ``W W^T``).
    """
    w = as_kernel(kernel)
    if w.shape[-2] < w.shape[-1]:
        w = np.swapaxes(w, -1, -2)
    terms = autocorrelation(w)
    spatial_ndim = w.ndim - 2
    centre = tuple((size - 1) // 2 for size in terms.shape[:spatial_ndim])
    terms[centre] -= np.eye(terms.shape[-1])
    flat = terms.reshape(-1, terms.shape[-2], terms.shape[-1])
    delta = sum(_norm2_upper(term) for term in flat)
    if rigorous:
        summands = int(np.prod(w.shape[:spatial_ndim])) * w.shape[-2] + 2
        error = _gamma(summands) * autocorrelation(np.abs(w))
        error[centre] += _EPS * np.eye(error.shape[-1])  # the rounding of A_0 - I
        delta += sum(float(np.linalg.norm(term)) for term in error.reshape(flat.shape))
        delta *= 1 + _gamma(terms.shape[-1] ** 2 * len(flat) + 2)  # the norms and their sum
    return delta


def orthogonality_defect(
    kernel: object, input_shape: object, method: DefectMethod = "bound", rigorous: bool = False
) -> float:
    r""":math:`\max |\sigma - 1|` over the singular values of the circular convolution.

    Args:
        kernel: taps-first kernel, 1-D ``(K, n_out, n_in)`` or 2-D ``(K1, K2, n_out, n_in)``;
            the ``min(n_out, n_in) * prod(N)`` singular values are considered.
        input_shape: spatial size ``N``, ``(N,)`` or ``(N1, N2)``.
        method: ``"bound"`` (default): a rigorous upper bound from the autocorrelation,
            independent of ``N`` and much cheaper than the spectrum; tight to a factor of
            about ``(2K - 1)^d sqrt(n)`` for near-orthogonal kernels. ``"exact"``: the maximum
            over :func:`circulant_spectrum` (exact up to the rounding of the eigensolver).
        rigorous: with ``"bound"``, include the floating-point error of evaluating the bound.

    Raises:
        InvalidArgumentError: bad kernel or shape, input smaller than the kernel, bad method.
    """
    w = as_kernel(kernel)
    spatial = as_spatial_shape(input_shape, w.ndim - 2)
    check_kernel_fits(w, spatial)
    if method == "exact":
        return float(np.max(np.abs(circulant_spectrum(w, spatial) - 1.0)))
    if method != "bound":
        raise InvalidArgumentError(f"method={method!r}, but it must be 'bound' or 'exact'")
    delta = gram_defect_bound(w, rigorous=rigorous)
    if delta >= 1.0:
        return max(1.0, float(np.sqrt(1.0 + delta)) - 1.0)
    value = delta / (1.0 + float(np.sqrt(1.0 - delta)))
    return value * (1 + 4 * _EPS) if rigorous else value
