"""Orthogonality: every singular value of the target's circular convolution is 1.

Beside the claim, the two facts the verdict rests on, for any kernel: the spectrum from the
per-frequency symbols equals the SVD of the dense operator, and the cheap autocorrelation
bound is never below the exact defect. Kernels are square, or sliced tall or wide.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, target
from hypothesis import strategies as st
from numpy.typing import NDArray

from gnpcheck.checks import check_orthogonal
from gnpcheck.reference import circulant_spectrum, dense_operator, orthogonality_defect
from gnpcheck.strategies import kernels
from gnpcheck.targets import ORTHOGONAL, KernelTarget
from gnpcheck.tolerances import orthogonality_tolerance
from properties._support import (
    closeness,
    draw_input_shape,
    draw_sliced,
    draw_target_kernel,
)


def _operator_size(kernel: NDArray[np.float64], shape: tuple[int, ...]) -> int:
    return int(max(kernel.shape[-2:])) * int(np.prod(shape))


def _assert_spectrum_is_dense_svd(kernel: NDArray[np.float64], shape: tuple[int, ...]) -> None:
    """Sorted squared singular values agree within ``2 * 10 N eps * sigma_max^2``.

    Squares, because the Gram route of :func:`circulant_spectrum` computes ``sigma^2`` to
    ``O(N eps sigma_max^2)`` (Hermitian eigenvalues), as the SVD does; ``sigma`` itself loses
    accuracy where it is small.
    """
    __tracebackhide__ = True
    dense = np.sort(np.linalg.svd(dense_operator(kernel, shape), compute_uv=False))
    allowed = 2 * orthogonality_tolerance(np.float64, _operator_size(kernel, shape))
    allowed *= max(1.0, float(dense[-1]) ** 2)
    for method in ("gram", "svd"):
        fft = np.sort(circulant_spectrum(kernel, shape, method=method).ravel())
        closeness(
            "spectrum",
            fft**2,
            dense**2,
            allowed,
            figure="max |sigma_fft^2 - sigma_dense^2|",
            method=f"circulant_spectrum(method={method!r}) against the SVD of dense_operator",
            subject=f"kernel {kernel.shape} on input {shape}",
        ).raise_if_failed()


@given(data=st.data())
def test_spectrum_is_dense_svd_for_target_kernels(
    gnp_target: KernelTarget, data: st.DataObject
) -> None:
    case = draw_target_kernel(data, gnp_target)
    kernel = draw_sliced(data, case.kernel)
    _assert_spectrum_is_dense_svd(kernel, draw_input_shape(data, kernel))


@given(kernel=kernels(), data=st.data())
def test_spectrum_is_dense_svd_for_any_kernel(
    kernel: NDArray[np.float64], data: st.DataObject
) -> None:
    _assert_spectrum_is_dense_svd(kernel, draw_input_shape(data, kernel))


@pytest.mark.claim(ORTHOGONAL)
@given(data=st.data())
def test_target_is_orthogonal(gnp_target: KernelTarget, data: st.DataObject) -> None:
    case = draw_target_kernel(data, gnp_target)
    shape = draw_input_shape(data, case.kernel)
    result = check_orthogonal(case.kernel, shape, dtype=gnp_target.dtype)
    target(result.measured, label="max |sigma - 1|")
    result.raise_if_failed()


@pytest.mark.claim(ORTHOGONAL)
@given(data=st.data())
def test_tall_and_wide_slices_of_target_are_orthogonal(
    gnp_target: KernelTarget, data: st.DataObject
) -> None:
    kernel = draw_sliced(data, draw_target_kernel(data, gnp_target).kernel)
    shape = draw_input_shape(data, kernel)
    result = check_orthogonal(kernel, shape, dtype=gnp_target.dtype)
    target(result.measured, label="max |sigma - 1|")
    result.raise_if_failed()


def _assert_bound_dominates(kernel: NDArray[np.float64], shape: tuple[int, ...]) -> None:
    """The rigorous bound is at least the defect of the dense SVD, up to that SVD's rounding."""
    __tracebackhide__ = True
    singular_values = np.linalg.svd(dense_operator(kernel, shape), compute_uv=False)
    exact = float(np.max(np.abs(singular_values - 1.0)))
    bound = orthogonality_defect(kernel, shape, method="bound", rigorous=True)
    svd_rounding = orthogonality_tolerance(np.float64, _operator_size(kernel, shape))
    svd_rounding *= max(1.0, float(singular_values[0]))
    target(exact - bound, label="exact defect - bound")
    assert exact <= bound + svd_rounding, (
        f"max |sigma - 1|={exact:.6g} (dense SVD), but should be <= bound {bound:.6g} "
        f"+ {svd_rounding:.3g} (SVD rounding) [kernel {kernel.shape} on input {shape}]"
    )


@given(data=st.data())
def test_bound_is_at_least_exact_defect_for_target_kernels(
    gnp_target: KernelTarget, data: st.DataObject
) -> None:
    kernel = draw_sliced(data, draw_target_kernel(data, gnp_target).kernel)
    _assert_bound_dominates(kernel, draw_input_shape(data, kernel))


@given(kernel=kernels(), data=st.data())
def test_bound_is_at_least_exact_defect_for_any_kernel(
    kernel: NDArray[np.float64], data: st.DataObject
) -> None:
    _assert_bound_dominates(kernel, draw_input_shape(data, kernel))
