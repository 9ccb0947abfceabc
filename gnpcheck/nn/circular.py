r"""Pixel unshuffle and circular padding as one gather (docs/layers.rst, Note [circular gather]).

Both maps only move values: output position ``j`` of each ``(sample, channel)`` holds input
position ``source[j]``, for an index ``source`` that depends on the spatial shape, the
stride and the padding widths alone. One ``index_select`` on the ``(B C, prod(spatial))``
view therefore computes ``F.pad(unshuffle(x, s), widths, mode="circular")``, and autograd
differentiates it by one ``index_add`` (the adjoint: each input position sums the gradients
of the positions that copied it). PyTorch's own ``pixel_unshuffle`` and circular ``F.pad``
run as strided copies and a chain of slice copies; on CPU their backward costs several
times more. Without a stride and without a gradient to the input, ``F.pad``'s forward alone
is as fast or faster, and is used; so is the composition under ``torch.compile``, whose
compiler fuses the copies.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from gnpcheck.errors import InvalidArgumentError
from gnpcheck.nn import native
from gnpcheck.nn.downsampling import unshuffle

__all__ = ["circular_source_positions", "unshuffle_circular_pad"]


@lru_cache(maxsize=128)
def circular_source_positions(
    spatial_shape: tuple[int, ...], stride: int, widths: tuple[int, ...]
) -> np.ndarray:
    """The flat input position each output position copies: shape ``(stride**d, *padded)``
    for ``d = len(spatial_shape)`` (unshuffled channel, then padded position), ``widths`` in
    ``F.pad``'s order (last axis first, ``(before, after)`` per axis, on the sides after the
    stride).

    Raises:
        InvalidArgumentError: ``widths`` not two per spatial axis; a stride that does not
            divide every side.
    """
    d = len(spatial_shape)
    if len(widths) != 2 * d:
        raise InvalidArgumentError(
            f"widths={widths}, but it must hold two widths per spatial axis ({2 * d})"
        )
    if any(size % stride for size in spatial_shape):
        raise InvalidArgumentError(
            f"spatial shape {spatial_shape}, but stride={stride} must divide every side"
        )
    positions = np.arange(int(np.prod(spatial_shape))).reshape(
        [part for size in spatial_shape for part in (size // stride, stride)]
    )
    # (n_1, s, n_2, s, ...) -> (s, s, ..., n_1, n_2, ...): pixel unshuffle's channel order.
    positions = positions.transpose([*range(1, 2 * d, 2), *range(0, 2 * d, 2)])
    pads = [(0, 0)] * d + [
        (widths[2 * (d - 1 - axis)], widths[2 * (d - 1 - axis) + 1]) for axis in range(d)
    ]
    padded = np.pad(positions, pads, mode="wrap")
    return padded.reshape(stride**d, *padded.shape[d:])


@lru_cache(maxsize=128)
def _index(
    spatial_shape: tuple[int, ...], stride: int, widths: tuple[int, ...], device: torch.device
) -> tuple[torch.Tensor, tuple[int, ...]]:
    """The flat gather index on ``device`` and the padded spatial shape (cached)."""
    source = circular_source_positions(spatial_shape, stride, widths)
    return torch.from_numpy(source.reshape(-1)).to(device), source.shape[1:]


def unshuffle_circular_pad(x: torch.Tensor, stride: int, widths: tuple[int, ...]) -> torch.Tensor:
    """``F.pad(unshuffle(x, stride), widths, mode="circular")`` for ``x`` of shape
    ``(B, C, *spatial)`` (1-D or 2-D), by one gather in eager mode; by that composition itself
    when ``stride`` is 1 and no gradient flows to ``x``, and while ``torch.compile`` traces
    (which fuses the copies and would otherwise trace the NumPy behind the index, failing
    on dynamic shapes).

    Raises:
        InvalidArgumentError: ``widths`` not two per spatial axis; a stride that does not
            divide the spatial sizes.
    """
    no_backward = stride == 1 and not (torch.is_grad_enabled() and x.requires_grad)
    if no_backward and (library := native.usable(x)) is not None:  # Note [native stages]
        return library.circular_pad(x, widths)
    if no_backward or torch.compiler.is_compiling():  # no backward to pay for, or fused
        return F.pad(unshuffle(x, stride, x.ndim - 2), widths, mode="circular")
    batch, channels, *spatial = x.shape
    spatial_shape = tuple(spatial)
    index, padded = _index(spatial_shape, stride, widths, x.device)
    flat = x.reshape(batch * channels, -1).index_select(1, index)
    return flat.view(batch, channels * stride ** len(spatial), *padded)
