r"""The circular convolution a kernel defines, applied and as an explicit matrix.

Convention (docs, Note [centering]): cross-correlation, as ``torch.nn.functional.conv1d/2d``
computes it, with circular padding of ``c = (K - 1) // 2`` before and ``K - 1 - c`` after
each spatial axis (PyTorch's ``padding="same"`` split):

.. math:: y[o, t] = \sum_{a} \sum_{i} W_a[o, i]\; x[i, (t + a - c) \bmod N].

Inputs are ``(n_in, N)`` / ``(n_in, N1, N2)`` arrays, optionally with leading batch axes.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from gnpcheck.errors import InvalidArgumentError
from gnpcheck.reference._validation import (
    as_kernel,
    as_real_array,
    as_spatial_shape,
    describe_shape,
)

__all__ = [
    "centering",
    "check_kernel_fits",
    "circular_conv",
    "circular_conv_transpose",
    "dense_operator",
]


def centering(kernel_size: int) -> int:
    """Offset ``c = (K - 1) // 2`` of the output position within the kernel window."""
    return (kernel_size - 1) // 2


def check_kernel_fits(
    kernel: NDArray[np.float64], spatial: tuple[int, ...], name: str = "input_shape"
) -> None:
    """Reject an input smaller than the kernel along some axis (circular padding cannot wrap)."""
    taps = kernel.shape[: kernel.ndim - 2]
    for axis, (k, n) in enumerate(zip(taps, spatial, strict=True)):
        if k > n:
            raise InvalidArgumentError(
                f"{name}={spatial}, but spatial axis {axis} has size {n} < kernel size {k}; "
                "the input must be at least as large as the kernel"
            )


def _split_input(
    kernel: NDArray[np.float64], x: object, name: str, channels: int
) -> NDArray[np.float64]:
    spatial_ndim = kernel.ndim - 2
    array = as_real_array(x, name)
    if array.ndim < spatial_ndim + 1 or array.shape[-spatial_ndim - 1] != channels:
        raise InvalidArgumentError(
            f"{name} is an {describe_shape(array)}, but a kernel of shape {kernel.shape} needs "
            f"(..., {channels}, " + ", ".join(["N"] * spatial_ndim) + ")"
        )
    check_kernel_fits(kernel, tuple(array.shape[-spatial_ndim:]), name=f"{name}.shape")
    return array


def circular_conv(kernel: object, x: object) -> NDArray[np.float64]:
    """Apply the circular convolution of ``kernel`` (taps first) to ``x`` of shape ``(..., n_in, *N)``."""
    w = as_kernel(kernel)
    spatial_ndim = w.ndim - 2
    array = _split_input(w, x, "x", w.shape[-1])
    spatial_axes = tuple(range(-spatial_ndim, 0))
    out = np.zeros((*array.shape[: -spatial_ndim - 1], w.shape[-2], *array.shape[-spatial_ndim:]))
    offsets = [centering(k) for k in w.shape[:spatial_ndim]]
    for tap in np.ndindex(*w.shape[:spatial_ndim]):
        shift = tuple(c - a for a, c in zip(tap, offsets, strict=True))
        shifted = np.roll(array, shift, axis=spatial_axes)
        out += np.einsum(
            "oi,...i" + "xy"[:spatial_ndim] + "->...o" + "xy"[:spatial_ndim], w[tap], shifted
        )
    return out


def circular_conv_transpose(kernel: object, y: object) -> NDArray[np.float64]:
    """Apply the adjoint of :func:`circular_conv` to ``y`` of shape ``(..., n_out, *N)``.

    :math:`x[i, s] = \\sum_a \\sum_o W_a[o, i]\\, y[o, (s - a + c) \\bmod N]`, so that
    ``<circular_conv(W, x), y> = <x, circular_conv_transpose(W, y)>``.
    """
    w = as_kernel(kernel)
    spatial_ndim = w.ndim - 2
    array = _split_input(w, y, "y", w.shape[-2])
    spatial_axes = tuple(range(-spatial_ndim, 0))
    out = np.zeros((*array.shape[: -spatial_ndim - 1], w.shape[-1], *array.shape[-spatial_ndim:]))
    offsets = [centering(k) for k in w.shape[:spatial_ndim]]
    for tap in np.ndindex(*w.shape[:spatial_ndim]):
        shift = tuple(a - c for a, c in zip(tap, offsets, strict=True))
        shifted = np.roll(array, shift, axis=spatial_axes)
        out += np.einsum(
            "oi,...o" + "xy"[:spatial_ndim] + "->...i" + "xy"[:spatial_ndim], w[tap], shifted
        )
    return out


def _shift_matrix(size: int, offset: int) -> NDArray[np.float64]:
    """``S[t, s] = 1`` when ``s = (t + offset) mod size``."""
    return np.roll(np.eye(size), offset, axis=1)


def dense_operator(kernel: object, input_shape: object) -> NDArray[np.float64]:
    r"""The circular convolution as an explicit ``(n_out * prod N) x (n_in * prod N)`` matrix.

    Built from Kronecker products :math:`\sum_a W_a \otimes S_{a_1 - c_1} \otimes S_{a_2 - c_2}`
    of cyclic shift matrices, independently of :func:`circular_conv` (an oracle for it).
    Rows and columns index ``(channel, *position)`` in C order, i.e. ``x.reshape(-1)``.
    """
    w = as_kernel(kernel)
    spatial_ndim = w.ndim - 2
    spatial = as_spatial_shape(input_shape, spatial_ndim)
    check_kernel_fits(w, spatial)
    size = int(np.prod(spatial))
    matrix = np.zeros((w.shape[-2] * size, w.shape[-1] * size))
    for tap in np.ndindex(*w.shape[:spatial_ndim]):
        shift: NDArray[np.float64] = np.ones((1, 1))
        for a, k, n in zip(tap, w.shape[:spatial_ndim], spatial, strict=True):
            shift = np.asarray(np.kron(shift, _shift_matrix(n, a - centering(k))), np.float64)
        matrix += np.kron(w[tap], shift)
    return matrix
