r"""Composition: orthogonal convolutions compose, and block convolution is their product.

- The block convolution :math:`X \square Y` of two target kernels is orthogonal.
- :func:`~gnpcheck.reference.block_conv` is associative (on square, tall and wide kernels).
- The circular convolution of :math:`X \square Y` is that of ``Y`` followed by that of
  ``X``: exactly when both kernel sizes are odd, and in general up to the circular shift
  :math:`c_X + c_Y - c_{X \square Y}` per axis, with :math:`c = (K - 1) // 2` (docs, Note
  [centering]).

Rounding allowances are Higham's :math:`\gamma_m` times the same computation on absolute
values: a rigorous bound, not a tuned tolerance.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, note, target
from hypothesis import strategies as st
from numpy.typing import NDArray

from gnpcheck.checks import check_orthogonal
from gnpcheck.reference import block_conv, centering, circular_conv
from gnpcheck.strategies import channel_counts, gradients, kernel_sizes, kernels, spatial_ndims
from gnpcheck.targets import ORTHOGONAL, KernelTarget
from properties._support import closeness, draw_input_shape, draw_target_kernel, rounding_allowance


@pytest.mark.claim(ORTHOGONAL)
@given(data=st.data())
def test_composite_of_target_kernels_is_orthogonal(
    gnp_target: KernelTarget, data: st.DataObject
) -> None:
    first = draw_target_kernel(data, gnp_target, label="X: ")
    second = gnp_target.kernel(
        channels=first.channels,
        kernel_size=data.draw(kernel_sizes(), label="Y: kernel_size"),
        spatial_ndim=first.spatial_ndim,
        seed=data.draw(st.integers(0, 2**32 - 1), label="Y: seed"),
    )
    composite = block_conv(first.kernel, second)
    shape = draw_input_shape(data, composite)
    result = check_orthogonal(composite, shape, dtype=gnp_target.dtype)
    target(result.measured, label="max |sigma - 1| of X □ Y")
    result.raise_if_failed()


def _taps(kernel: NDArray[np.float64]) -> int:
    return int(np.prod(kernel.shape[: kernel.ndim - 2]))


@given(data=st.data())
def test_block_conv_is_associative(data: st.DataObject) -> None:
    d = data.draw(spatial_ndims(), label="spatial_ndim")
    a, b, c, e = (data.draw(channel_counts(), label=f"channels {name}") for name in "abce")
    x = data.draw(kernels(spatial_ndim=d, out_channels=a, in_channels=b), label="X")
    y = data.draw(kernels(spatial_ndim=d, out_channels=b, in_channels=c), label="Y")
    z = data.draw(kernels(spatial_ndim=d, out_channels=c, in_channels=e), label="Z")
    left = block_conv(block_conv(x, y), z)
    right = block_conv(x, block_conv(y, z))
    magnitude = block_conv(block_conv(np.abs(x), np.abs(y)), np.abs(z))
    # (X □ Y) □ Z sums taps(X) b products, then taps(X □ Y) c; the other order fewer.
    terms = _taps(x) * b + _taps(block_conv(x, y)) * c
    closeness(
        "associativity",
        left,
        right,
        rounding_allowance(terms, magnitude),
        figure="max |(X □ Y) □ Z - X □ (Y □ Z)|",
        method="block_conv",
        subject=f"X {x.shape}, Y {y.shape}, Z {z.shape}",
    ).raise_if_failed()


def _composition_case(
    data: st.DataObject, odd: bool
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Kernels X (a x b), Y (b x c) and an input x with c channels, sizes odd if ``odd``."""
    d = data.draw(spatial_ndims(), label="spatial_ndim")
    a, b, c = (data.draw(channel_counts(), label=f"channels {name}") for name in "abc")
    sizes = kernel_sizes().filter(lambda k: k % 2 == 1) if odd else kernel_sizes()
    x_kernel = data.draw(
        kernels(spatial_ndim=d, kernel_size=sizes, out_channels=a, in_channels=b), label="X"
    )
    y_kernel = data.draw(
        kernels(spatial_ndim=d, kernel_size=sizes, out_channels=b, in_channels=c), label="Y"
    )
    shape = draw_input_shape(data, block_conv(x_kernel, y_kernel))
    x = data.draw(gradients(channels=c, input_shape=shape, count=1), label="input")
    return x_kernel, y_kernel, x


def _composite_shift(
    x_kernel: NDArray[np.float64], y_kernel: NDArray[np.float64]
) -> tuple[int, ...]:
    """Per axis ``c_(X □ Y) - c_X - c_Y``: zero when both sizes are odd."""
    d = x_kernel.ndim - 2
    return tuple(
        centering(kx + ky - 1) - centering(kx) - centering(ky)
        for kx, ky in zip(x_kernel.shape[:d], y_kernel.shape[:d], strict=True)
    )


def _assert_composes(
    x_kernel: NDArray[np.float64],
    y_kernel: NDArray[np.float64],
    x: NDArray[np.float64],
    shift: tuple[int, ...],
) -> None:
    """``circular_conv(X, circular_conv(Y, x))[t] == circular_conv(X □ Y, x)[t + shift]``."""
    __tracebackhide__ = True
    d = x.ndim - 2
    composite = block_conv(x_kernel, y_kernel)
    expected = np.roll(
        circular_conv(composite, x), tuple(-s for s in shift), axis=tuple(range(-d, 0))
    )
    measured = circular_conv(x_kernel, circular_conv(y_kernel, x))
    magnitude = circular_conv(np.abs(x_kernel), circular_conv(np.abs(y_kernel), np.abs(x)))
    # X □ Y sums taps(X) b products per entry, its convolution taps(X □ Y) c more.
    terms = _taps(x_kernel) * x_kernel.shape[-1] + _taps(composite) * y_kernel.shape[-1]
    closeness(
        "composition",
        measured,
        expected,
        rounding_allowance(terms, magnitude),
        figure="max |conv_X(conv_Y(x)) - conv_(X □ Y)(x)|",
        method=f"circular_conv, composite shifted by {shift}",
        subject=f"X {x_kernel.shape}, Y {y_kernel.shape}, input {x.shape}",
    ).raise_if_failed()


@given(data=st.data())
def test_conv_of_composite_is_composition_for_odd_kernels(data: st.DataObject) -> None:
    x_kernel, y_kernel, x = _composition_case(data, odd=True)
    _assert_composes(x_kernel, y_kernel, x, shift=(0,) * (x.ndim - 2))


@given(data=st.data())
def test_conv_of_composite_is_shifted_composition_for_any_kernels(data: st.DataObject) -> None:
    x_kernel, y_kernel, x = _composition_case(data, odd=False)
    shift = _composite_shift(x_kernel, y_kernel)
    note(f"shift c_(X □ Y) - c_X - c_Y = {shift}")
    _assert_composes(x_kernel, y_kernel, x, shift)
