"""Argument checks shared by the reference: every public function validates at its boundary."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from gnpcheck.errors import InvalidArgumentError, InvalidTypeError

__all__ = [
    "as_kernel",
    "as_real_array",
    "as_spatial_shape",
    "as_square_matrix",
    "describe_shape",
]

Float64Array = NDArray[np.float64]


def describe_shape(array: NDArray[Any]) -> str:
    """A short description of an array for messages: never its full contents."""
    return f"array of shape {tuple(array.shape)} and dtype {array.dtype}"


def as_real_array(
    value: object, name: str, ndim: int | Sequence[int] | None = None
) -> Float64Array:
    """Convert ``value`` to a finite float64 array, rejecting complex, NaN, inf and wrong ndim."""
    if isinstance(value, (str, bytes)) or value is None:
        raise InvalidTypeError(f"{name}={value!r}, but it must be a real array")
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as error:
        raise InvalidTypeError(f"{name} could not be converted to an array: {error}") from None
    if array.dtype == object or not (
        np.issubdtype(array.dtype, np.floating)
        or np.issubdtype(array.dtype, np.integer)
        or np.issubdtype(array.dtype, np.bool_)
    ):
        raise InvalidTypeError(
            f"{name} has dtype {array.dtype}, but it must be real (float or int)"
        )
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if array.ndim not in allowed:
            wanted = " or ".join(str(d) for d in allowed)
            raise InvalidArgumentError(
                f"{name} is an {describe_shape(array)}, but it must have {wanted} dimensions"
            )
    result = np.asarray(array, dtype=np.float64)
    if not np.all(np.isfinite(result)):
        bad = int(np.count_nonzero(~np.isfinite(result)))
        raise InvalidArgumentError(
            f"{name} holds {bad} NaN or infinite entries, but every entry must be finite"
        )
    return result


def as_square_matrix(value: object, name: str) -> Float64Array:
    """A finite float64 square matrix."""
    matrix = as_real_array(value, name, ndim=2)
    if matrix.shape[0] != matrix.shape[1]:
        raise InvalidArgumentError(f"{name} is an {describe_shape(matrix)}, but it must be square")
    return matrix


def as_kernel(value: object, name: str = "kernel") -> Float64Array:
    """A taps-first kernel: shape ``(K, n_out, n_in)`` (1-D) or ``(K1, K2, n_out, n_in)`` (2-D)."""
    kernel = as_real_array(value, name, ndim=(3, 4))
    if 0 in kernel.shape:
        raise InvalidArgumentError(
            f"{name} is an {describe_shape(kernel)}, but every dimension must be at least 1"
        )
    return kernel


def as_spatial_shape(
    value: object, spatial_ndim: int, name: str = "input_shape"
) -> tuple[int, ...]:
    """The spatial input size of a circular convolution: ``(N,)`` in 1-D, ``(N1, N2)`` in 2-D.

    A bare int ``N`` means ``N`` along every spatial axis.
    """
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        shape: tuple[object, ...] = (value,) * spatial_ndim
    elif isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        shape = tuple(value)
    else:
        raise InvalidTypeError(
            f"{name}={value!r}, but it must be an int or a tuple of {spatial_ndim} ints"
        )
    if len(shape) != spatial_ndim:
        raise InvalidArgumentError(
            f"{name}={value!r}, but a {spatial_ndim}-D kernel needs the spatial shape as "
            f"{spatial_ndim} int(s) (channels come from the kernel)"
        )
    sizes: list[int] = []
    for size in shape:
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)):
            raise InvalidTypeError(f"{name}={value!r}, but every size must be an int")
        if size < 1:
            raise InvalidArgumentError(f"{name}={value!r}, but every size must be at least 1")
        sizes.append(int(size))
    return tuple(sizes)
