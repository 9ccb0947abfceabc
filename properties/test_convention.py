r"""The operator convention: the target applies its kernels as the reference does.

A target that brings its own operator (``KernelTarget.convolve``) and claims
``"convention"`` must compute the cross-correlation with circular padding
:math:`c = (K - 1) // 2` before and :math:`K - 1 - c` after each axis,
:math:`y[o, t] = \sum_a W_a[o, :]\, x[:, (t + a - c) \bmod N]` (docs, Note [centering]). The
oracle is :func:`~gnpcheck.reference.dense_operator`, built from Kronecker products of
shift matrices, independently of any convolution code. Odd and even kernel sizes, 1-D and
2-D, square and non-square inputs.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, target
from hypothesis import strategies as st

from gnpcheck.reference import dense_operator
from gnpcheck.strategies import gradients
from gnpcheck.targets import CONVENTION, KernelTarget
from properties._support import closeness, draw_input_shape, draw_target_kernel, rounding_allowance


@pytest.mark.claim(CONVENTION)
@given(data=st.data())
def test_target_operator_is_reference_cross_correlation(
    gnp_target: KernelTarget, data: st.DataObject
) -> None:
    assert gnp_target.convolve is not None, "a target claiming 'convention' has convolve"
    case = draw_target_kernel(data, gnp_target)
    shape = draw_input_shape(data, case.kernel)
    x = data.draw(gradients(channels=case.channels, input_shape=shape), label="inputs")
    y = np.asarray(gnp_target.convolve(case.kernel, x), dtype=np.float64)
    assert y.shape == x.shape, (
        f"convolve returned shape {y.shape}, but should be {x.shape} (batch, n_out, *N) "
        f"[{case.call}]"
    )
    matrix = dense_operator(case.kernel, shape)
    flat = x.reshape(x.shape[0], -1)
    expected = (flat @ matrix.T).reshape(y.shape)
    magnitude = (np.abs(flat) @ np.abs(matrix).T).reshape(y.shape)
    terms = int(np.prod(case.kernel.shape[:-2])) * case.channels
    result = closeness(
        CONVENTION,
        y,
        expected,
        rounding_allowance(terms, magnitude, gnp_target.dtype),
        figure="max |convolve(W, x) - dense_operator(W) x|",
        method="dense operator (Kronecker products of shifts)",
        subject=f"{case.call}, input {x.shape}",
    )
    target(result.measured, label="max |convolve - dense|")
    result.raise_if_failed()
