r"""Kernels as polynomial matrices: block convolution and the taps-first layout.

A 1-D kernel with ``K`` taps, ``n_out`` outputs and ``n_in`` inputs is stored **taps first**,
shape ``(K, n_out, n_in)``, and stands for the polynomial matrix
:math:`W(z) = \sum_i W_i z^{-i}`; a 2-D kernel has shape ``(K1, K2, n_out, n_in)`` and
:math:`W(z_1, z_2) = \sum_{i,j} W_{ij} z_1^{-i} z_2^{-j}` (axis 0 is height, axis 1 width).
PyTorch stores the same numbers as ``(n_out, n_in, K)`` / ``(n_out, n_in, K1, K2)``, with no
flip: tap ``i`` of the reference is index ``i`` of the PyTorch weight (docs, Note [layout]).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from gnpcheck.errors import InvalidArgumentError
from gnpcheck.reference._validation import as_kernel, as_real_array, describe_shape

__all__ = ["block_conv", "from_torch_layout", "identity_kernel", "to_torch_layout"]


def block_conv(x: object, y: object) -> NDArray[np.float64]:
    r"""Block convolution :math:`[X \,\square\, Y]_i = \sum_{i'} X_{i'} Y_{i - i'}`.

    The product of polynomial matrices :math:`X(z) Y(z)`: 1-D ``(K, a, b) x (L, b, c) ->
    (K + L - 1, a, c)``, 2-D ``(K1, K2, a, b) x (L1, L2, b, c) ->
    (K1 + L1 - 1, K2 + L2 - 1, a, c)``. The circular convolution of ``X □ Y`` is the
    composition of those of ``X`` and ``Y``, up to a circular shift by one position along each
    axis where both kernel sizes are even (docs, Note [centering]).

    Raises:
        InvalidArgumentError: not both 1-D or both 2-D kernels, or inner channels that differ.
    """
    left = as_kernel(x, "x")
    right = as_kernel(y, "y")
    if left.ndim != right.ndim:
        raise InvalidArgumentError(
            f"x is an {describe_shape(left)} and y an {describe_shape(right)}, but both must be "
            "1-D kernels (3 dims) or both 2-D kernels (4 dims)"
        )
    if left.shape[-1] != right.shape[-2]:
        raise InvalidArgumentError(
            f"x has {left.shape[-1]} input channels and y {right.shape[-2]} output channels, "
            "but they must be equal"
        )
    taps = left.ndim - 2
    out_taps = tuple(left.shape[d] + right.shape[d] - 1 for d in range(taps))
    result = np.zeros((*out_taps, left.shape[-2], right.shape[-1]))
    for index in np.ndindex(*left.shape[:taps]):
        window = tuple(slice(i, i + right.shape[d]) for d, i in enumerate(index))
        result[window] += np.matmul(left[index], right)
    return result


def to_torch_layout(kernel: object) -> NDArray[np.float64]:
    """Taps-first ``(K..., n_out, n_in)`` to PyTorch's ``(n_out, n_in, K...)`` (no flip)."""
    array = as_kernel(kernel)
    return np.ascontiguousarray(np.moveaxis(array, (-2, -1), (0, 1)))


def from_torch_layout(weight: object) -> NDArray[np.float64]:
    """PyTorch's ``(n_out, n_in, K...)`` to taps-first ``(K..., n_out, n_in)`` (no flip)."""
    array = as_real_array(weight, "weight", ndim=(3, 4))
    if 0 in array.shape:
        raise InvalidArgumentError(
            f"weight is an {describe_shape(array)}, but every dimension must be at least 1"
        )
    return np.ascontiguousarray(np.moveaxis(array, (0, 1), (-2, -1)))


def identity_kernel(n: int, spatial_ndim: int) -> NDArray[np.float64]:
    """The one-tap kernel of the identity map on ``n`` channels, 1-D or 2-D."""
    if spatial_ndim not in (1, 2):
        raise InvalidArgumentError(f"spatial_ndim={spatial_ndim!r}, but it must be 1 or 2")
    return np.eye(n).reshape((1,) * spatial_ndim + (n, n))
