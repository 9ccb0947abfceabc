"""Builders and float64 oracles for the layer tests, independent of the layers' torch code."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from gnpcheck.nn import BCOPConv1d, BCOPConv2d
from gnpcheck.nn.bcop import _BCOPConvNd
from gnpcheck.nn.kernel import bcop_kernel
from gnpcheck.nn.orthogonalize import projectors, qr_orthonormalize
from gnpcheck.nn.qr_kernel import qr_bcop_kernel
from gnpcheck.reference import circular_conv, from_torch_layout

__all__ = [
    "BCOP_CLASSES",
    "HAND_DIFFERENTIATED",
    "dense_jacobian",
    "gaussian_leaf",
    "layer_input",
    "make_bcop",
    "reference_forward",
    "same_config",
    "taps_first",
]

BCOP_CLASSES: list[type[_BCOPConvNd]] = [BCOPConv1d, BCOPConv2d]

#: ``set(name, value)``, the ``float32_settings`` fixture of tests/conftest.py.
Settings = Callable[[str, str], None]


def make_bcop(
    cls: type[_BCOPConvNd],
    in_channels: int,
    out_channels: int,
    kernel_size: int,
    *,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
    **kwargs: Any,
) -> _BCOPConvNd:
    """A layer initialized from ``seed`` without touching the global random state."""
    generator = torch.Generator().manual_seed(seed)
    return cls(in_channels, out_channels, kernel_size, dtype=dtype, generator=generator, **kwargs)


def same_config(layer: _BCOPConvNd, seed: int = 1) -> _BCOPConvNd:
    """A new layer with ``layer``'s configuration and different (``seed``) parameters."""
    return make_bcop(
        type(layer),
        layer.in_channels,
        layer.out_channels,
        layer.kernel_size[0],
        seed=seed,
        dtype=layer.h_tilde.dtype,
        stride=layer.stride,
        padding=layer.padding,
        bias=layer.bias is not None,
        orthogonalizer=layer.orthogonalizer,
        bjorck_iters=layer.bjorck_iters if layer.orthogonalizer == "bjorck" else None,
        build_dtype=layer.build_dtype,
        device=layer.h_tilde.device,
    )


def layer_input(
    layer: _BCOPConvNd, size: int, *, batch: int = 2, seed: int = 2, requires_grad: bool = False
) -> torch.Tensor:
    """A Gaussian input ``(batch, in_channels, size, ...)`` in the layer's dtype and device."""
    generator = torch.Generator().manual_seed(seed)
    shape = (batch, layer.in_channels) + (size,) * layer.spatial_ndim
    x = torch.randn(shape, dtype=torch.float64, generator=generator)
    x = x.to(dtype=layer.h_tilde.dtype, device=layer.h_tilde.device)
    return x.requires_grad_(requires_grad)


def taps_first(weight: torch.Tensor) -> NDArray[np.float64]:
    """A torch-layout kernel as the reference's float64 taps-first array."""
    return from_torch_layout(weight.detach().double().cpu().numpy())


def _unshuffle(x: NDArray[np.float64], s: int) -> NDArray[np.float64]:
    """Pixel unshuffle written from its definition: channel ``c s^d + r`` <- ``x[c, s t + r]``."""
    if x.ndim == 3:
        b, c, n = x.shape
        return x.reshape(b, c, n // s, s).transpose(0, 1, 3, 2).reshape(b, c * s, n // s)
    b, c, h, w = x.shape
    blocks = x.reshape(b, c, h // s, s, w // s, s).transpose(0, 1, 3, 5, 2, 4)
    return blocks.reshape(b, c * s * s, h // s, w // s)


def reference_forward(layer: _BCOPConvNd, x: torch.Tensor) -> NDArray[np.float64]:
    """The layer's map computed by the reference from its ``weight``.

    Circular: :func:`gnpcheck.reference.circular_conv` after the unshuffle. Zeros: embed the
    input in a grid ``K - 1`` larger (zeros around it), convolve circularly, crop: for
    outputs inside the original grid no tap wraps around, so this is zero padding.
    """
    kernel = taps_first(layer.weight)
    z = _unshuffle(x.detach().double().cpu().numpy(), layer.stride)
    size = layer.inner_kernel_size[0]
    if layer.padding == "circular":
        y = circular_conv(kernel, z)
    else:
        c = (size - 1) // 2
        d = layer.spatial_ndim
        padded = np.pad(z, [(0, 0), (0, 0)] + [(c, size - 1 - c)] * d)
        full = circular_conv(kernel, padded)
        crop = (slice(None), slice(None), *tuple(slice(c, c + n) for n in z.shape[2:]))
        y = full[crop]
    if layer.bias is not None:
        y = y + layer.bias.detach().double().cpu().numpy().reshape(
            (-1,) + (1,) * layer.spatial_ndim
        )
    return np.asarray(y)


def dense_jacobian(module: torch.nn.Module, x: torch.Tensor) -> NDArray[np.float64]:
    """The Jacobian of ``module`` at one input ``x`` (batch 1) as an ``(out, in)`` matrix."""
    jacobian = torch.autograd.functional.jacobian(module, x)
    out_size = int(np.prod(jacobian.shape[: jacobian.ndim - x.ndim]))
    return np.asarray(jacobian.reshape(out_size, x.numel()).double().cpu().numpy())


def gaussian_leaf(*shape: int, seed: int = 0) -> torch.Tensor:
    """A float64 Gaussian tensor that requires grad, drawn from its own generator."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(shape, dtype=torch.float64, generator=generator).requires_grad_()


#: (id, function, inputs) of the functions with hand-written derivatives, for the
#: derivative tests: the one-node QR kernel (2-D square, 1-D narrowed, one channel), the
#: kernel stages, the QR factor and the projectors.
HAND_DIFFERENTIATED: list[tuple[str, Callable[..., torch.Tensor], tuple[torch.Tensor, ...]]] = [
    (
        "qr-kernel-2d",
        lambda h, r: qr_bcop_kernel(h, r, 2, 4, 4, torch.float64),
        (gaussian_leaf(4, 4), gaussian_leaf(4, 4, 2, seed=1)),
    ),
    (
        "qr-kernel-1d-narrowed",
        lambda h, r: qr_bcop_kernel(h, r, 1, 3, 4, torch.float64),
        (gaussian_leaf(5, 5), gaussian_leaf(2, 5, 2, seed=1)),
    ),
    (
        "qr-kernel-one-channel",
        lambda h, r: qr_bcop_kernel(h, r, 2, 1, 1, torch.float64),
        (gaussian_leaf(1, 1), gaussian_leaf(4, 1, 0, seed=1)),
    ),
    (
        "stages",
        lambda h, p: bcop_kernel(h, p, 2),
        (gaussian_leaf(3, 4), gaussian_leaf(4, 4, 4, seed=1)),
    ),
    ("qr", qr_orthonormalize, (gaussian_leaf(5, 3),)),
    ("projectors", projectors, (gaussian_leaf(2, 5, 2),)),
]
