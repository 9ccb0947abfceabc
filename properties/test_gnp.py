r"""Gradient norm preservation: :math:`\|J^T g\| = \|g\|` for the target's convolution.

The convolution is linear, so ``J`` is its operator. Checked on drawn gradients through two
independent routes (the adjoint :func:`~gnpcheck.reference.circular_conv_transpose` and the
explicit :func:`~gnpcheck.reference.dense_operator`), and exactly, from the spectrum, on
wide slices (fewer outputs: still GNP). A tall slice (fewer inputs) is an isometry but not
GNP: ``J^T`` has a null space.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, target
from hypothesis import strategies as st

from gnpcheck.checks import check_gnp
from gnpcheck.reference import circular_conv, dense_operator
from gnpcheck.strategies import gradients
from gnpcheck.targets import GNP, KernelTarget
from gnpcheck.tolerances import gnp_tolerance
from properties._support import closeness, draw_input_shape, draw_target_kernel

_FIGURE = "max | ||J^T g|| / ||g|| - 1 |"


@pytest.mark.claim(GNP)
@given(data=st.data())
def test_gradient_norms_preserved_through_adjoint(
    gnp_target: KernelTarget, data: st.DataObject
) -> None:
    case = draw_target_kernel(data, gnp_target)
    shape = draw_input_shape(data, case.kernel)
    g = data.draw(gradients(channels=case.channels, input_shape=shape), label="gradients")
    result = check_gnp(case.kernel, shape, gradients=g, dtype=gnp_target.dtype)
    target(result.measured, label=_FIGURE)
    result.raise_if_failed()


@pytest.mark.claim(GNP)
@given(data=st.data())
def test_gradient_norms_preserved_through_dense_operator(
    gnp_target: KernelTarget, data: st.DataObject
) -> None:
    case = draw_target_kernel(data, gnp_target)
    shape = draw_input_shape(data, case.kernel)
    g = data.draw(gradients(channels=case.channels, input_shape=shape), label="gradients")
    flat = g.reshape(g.shape[0], -1)
    jacobian = dense_operator(case.kernel, shape)
    ratios = np.linalg.norm(flat @ jacobian, axis=1) / np.linalg.norm(flat, axis=1)
    result = closeness(
        GNP,
        ratios,
        np.ones_like(ratios),
        gnp_tolerance(gnp_target.dtype, jacobian.shape[0]),
        figure=_FIGURE,
        method="J^T g with J = dense_operator",
        subject=f"kernel {case.kernel.shape} on input {shape}",
    )
    target(result.measured, label=_FIGURE)
    result.raise_if_failed()


@pytest.mark.claim(GNP)
@given(data=st.data())
def test_wide_slices_of_target_preserve_all_gradient_norms(
    gnp_target: KernelTarget, data: st.DataObject
) -> None:
    case = draw_target_kernel(data, gnp_target)
    kept = data.draw(st.integers(1, case.channels), label="output channels kept")
    kernel = np.ascontiguousarray(case.kernel[..., :kept, :])
    shape = draw_input_shape(data, kernel)
    result = check_gnp(kernel, shape, dtype=gnp_target.dtype)
    target(result.measured, label=_FIGURE)
    result.raise_if_failed()


@pytest.mark.claim(GNP)
@given(data=st.data())
def test_tall_slices_of_target_are_isometries_but_not_gnp(
    gnp_target: KernelTarget, data: st.DataObject
) -> None:
    case = draw_target_kernel(data, gnp_target, min_channels=2)
    kept = data.draw(st.integers(1, case.channels - 1), label="input channels kept")
    kernel = np.ascontiguousarray(case.kernel[..., :kept])
    shape = draw_input_shape(data, kernel)
    x = data.draw(gradients(channels=kept, input_shape=shape), label="inputs")
    axes = tuple(range(1, x.ndim))
    ratios = np.sqrt(np.sum(circular_conv(kernel, x) ** 2, axis=axes) / np.sum(x**2, axis=axes))
    closeness(
        "isometry",
        ratios,
        np.ones_like(ratios),
        gnp_tolerance(gnp_target.dtype, case.channels * int(np.prod(shape))),
        figure="max | ||J x|| / ||x|| - 1 |",
        method="circular_conv on drawn inputs",
        subject=f"kernel {kernel.shape} on input {shape}",
    ).raise_if_failed()
    verdict = check_gnp(kernel, shape)
    assert not verdict.passed, (
        f"a tall kernel cannot be GNP, but check_gnp passed: {verdict.message()}"
    )
