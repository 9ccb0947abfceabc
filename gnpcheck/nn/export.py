r"""Plain PyTorch modules that compute what a stride-via-unshuffle convolution computes.

A layer that applies pixel unshuffle by ``s`` and then a stride-1 convolution with kernel
``W`` of shape ``(o, i s^d, K...)`` (padding ``c = (K - 1) // 2`` before and ``K - 1 - c``
after, circular or zeros) equals one strided convolution on the original grid
(docs/layers.rst, Note [export]): with output position ``t`` and input position
``s t + b - s c``,

.. math:: y[o, t] = \sum_{b=0}^{sK - 1} V_b[o, i]\, x[i, s t + b - s c],
          \qquad V_{s a + r}[o, i] = W_a[o, i s + r]

(per axis in 2-D), padded by ``s c`` before and ``s (K - 1 - c)`` after. For odd ``K`` the
padding is symmetric and the module is a single ``nn.Conv1d`` / ``nn.Conv2d``; for even ``K``
it is an ``nn.Sequential`` of a padding module and the convolution.
"""

from __future__ import annotations

import torch
from torch import nn

from gnpcheck.errors import InvalidArgumentError

__all__ = ["plain_conv", "strided_kernel"]


def strided_kernel(weight: torch.Tensor, stride: int, spatial_ndim: int) -> torch.Tensor:
    """``W`` ``(o, i s^d, K...)`` -> ``V`` ``(o, i, sK...)`` as in the module note."""
    if stride == 1:
        return weight
    o, channels = weight.shape[:2]
    size = weight.shape[-1]
    i = channels // stride**spatial_ndim
    if spatial_ndim == 1:
        blocks = weight.reshape(o, i, stride, size).permute(0, 1, 3, 2)
        return blocks.reshape(o, i, size * stride)
    blocks = weight.reshape(o, i, stride, stride, size, size).permute(0, 1, 4, 2, 5, 3)
    return blocks.reshape(o, i, size * stride, size * stride)


def plain_conv(
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    *,
    stride: int,
    padding: str,
    spatial_ndim: int,
) -> nn.Module:
    """The plain module for the stride-1 kernel ``weight`` applied after unshuffle by ``stride``.

    Args:
        weight: ``(o, i * stride**spatial_ndim, K...)``, the kernel after the unshuffle.
        bias: ``(o,)`` or ``None``.
        stride: the unshuffle factor.
        padding: ``"circular"`` or ``"same"`` (zeros).
        spatial_ndim: 1 or 2.

    Returns:
        A module holding copies of ``weight`` and ``bias`` (trainable, unconstrained).
    """
    if spatial_ndim not in (1, 2) or padding not in ("circular", "same"):
        raise InvalidArgumentError(
            f"spatial_ndim={spatial_ndim!r} and padding={padding!r}, but they must be 1 or 2 "
            "and 'circular' or 'same'"
        )
    kernel = strided_kernel(weight.detach(), stride, spatial_ndim)
    size = weight.shape[-1]
    before = stride * ((size - 1) // 2)
    after = stride * (size - 1) - before
    symmetric = before == after
    conv_type = nn.Conv1d if spatial_ndim == 1 else nn.Conv2d
    conv = conv_type(
        kernel.shape[1],
        kernel.shape[0],
        kernel.shape[-1],
        stride=stride,
        padding=before if symmetric else 0,
        padding_mode="circular" if padding == "circular" and symmetric and before else "zeros",
        bias=bias is not None,
        device=weight.device,
        dtype=weight.dtype,
    )
    with torch.no_grad():
        conv.weight.copy_(kernel)
        if bias is not None and conv.bias is not None:
            conv.bias.copy_(bias.detach())
    if symmetric:
        return conv
    pad: nn.Module
    if spatial_ndim == 1:
        widths_1d = (before, after)
        pad = nn.CircularPad1d(widths_1d) if padding == "circular" else nn.ZeroPad1d(widths_1d)
    else:
        widths_2d = (before, after, before, after)
        pad = nn.CircularPad2d(widths_2d) if padding == "circular" else nn.ZeroPad2d(widths_2d)
    return nn.Sequential(pad, conv)
