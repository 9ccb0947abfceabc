"""Argument and input checks shared by the layers of :mod:`gnpcheck.nn`.

Every message names the argument, the value and what is allowed (``"name=value, but ..."``),
as :mod:`gnpcheck.errors` asks.
"""

from __future__ import annotations

from typing import Literal

import torch

from gnpcheck.errors import InvalidArgumentError, InvalidTypeError

__all__ = [
    "PADDINGS",
    "Padding",
    "boolean",
    "check_input",
    "equal_sizes",
    "must_be_one",
    "padding_mode",
    "padding_widths",
    "positive_int",
]

#: ``"circular"``: circular padding (the orthogonal operator); ``"same"``: zeros, same size.
Padding = Literal["circular", "same"]
PADDINGS: tuple[Padding, ...] = ("circular", "same")


def positive_int(value: object, name: str) -> int:
    """``value`` if it is an int ``>= 1``; otherwise an error naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidTypeError(f"{name}={value!r}, but it must be an int")
    if value < 1:
        raise InvalidArgumentError(f"{name}={value}, but it must be at least 1")
    return value


def equal_sizes(
    value: object,
    name: str,
    spatial_ndim: int,
    reason: str = "the sizes must be equal along every axis",
) -> int:
    """An int, or a tuple/list of ``spatial_ndim`` equal ints (BCOP kernels are square);
    ``reason`` says in the message why unequal sizes are refused."""
    if isinstance(value, tuple | list):
        if len(value) != spatial_ndim:
            raise InvalidArgumentError(
                f"{name}={value!r}, but it must be an int or {spatial_ndim} equal ints"
            )
        sizes = [positive_int(item, name) for item in value]
        if len(set(sizes)) != 1:
            raise InvalidArgumentError(f"{name}={value!r}, but {reason}")
        return sizes[0]
    return positive_int(value, name)


def padding_mode(
    value: object, circular: str = "orthogonal", same: str = "zeros, 1-Lipschitz"
) -> Padding:
    """``"circular"`` or ``"same"``; numeric padding and other modes cannot be honoured.

    ``circular`` and ``same`` say in the message what each mode gives the layer.
    """
    if value not in PADDINGS:
        raise InvalidArgumentError(
            f"padding={value!r}, but it must be 'circular' ({circular}) or 'same' ({same}); "
            "numeric padding and other modes (reflect, replicate) would change the operator "
            "the constraint is about"
        )
    return "circular" if value == "circular" else "same"


def must_be_one(value: object, name: str, reason: str) -> None:
    """Accept only ``1`` (``groups``, ``dilation``), with the reason in the message."""
    if isinstance(value, tuple | list) and all(item == 1 for item in value):
        return
    if value != 1 or isinstance(value, bool):
        raise InvalidArgumentError(f"{name}={value!r}, but only {name}=1 is supported: {reason}")


def boolean(value: object, name: str) -> bool:
    """``value`` if it is a bool."""
    if not isinstance(value, bool):
        raise InvalidTypeError(f"{name}={value!r}, but it must be a bool")
    return value


def padding_widths(
    kernel_size: int | tuple[int, ...], spatial_ndim: int, adjoint: bool = False
) -> tuple[int, ...]:
    """``F.pad`` widths (last axis first): ``c = (K - 1) // 2`` before and ``K - 1 - c`` after
    each axis, ``K`` the kernel size along it (an int: the same along every axis, a tuple: one
    per axis, first axis first). ``adjoint``: the split reversed (``K - 1 - c`` before, ``c``
    after), the padding of the adjoint convolution (flipped, transposed kernel)."""
    sizes = (kernel_size,) * spatial_ndim if isinstance(kernel_size, int) else kernel_size
    widths: tuple[int, ...] = ()
    for size in reversed(sizes):
        before, after = (size - 1) // 2, size - 1 - (size - 1) // 2
        widths += (after, before) if adjoint else (before, after)
    return widths


def check_input(
    x: object,
    *,
    channels: int,
    spatial_ndim: int,
    dtype: torch.dtype,
    device: torch.device,
    stride: int = 1,
    min_size: int = 1,
) -> torch.Tensor:
    """Check a layer input ``(batch, channels, *spatial)`` against the layer.

    Raises:
        InvalidTypeError: ``x`` not a tensor.
        InvalidArgumentError: wrong rank or channel count, dtype or device other than the
            layer's, a spatial size not divisible by ``stride``, or below ``min_size`` after
            the stride.
    """
    if not isinstance(x, torch.Tensor):
        raise InvalidTypeError(f"input is a {type(x).__name__}, but it must be a torch.Tensor")
    axes = ", ".join("HW"[2 - spatial_ndim :])
    if x.ndim != spatial_ndim + 2 or x.shape[1] != channels:
        raise InvalidArgumentError(
            f"input has shape {tuple(x.shape)}, but it must be (batch, {channels}, {axes})"
        )
    if x.dtype != dtype:
        raise InvalidArgumentError(
            f"input has dtype {x.dtype}, but the layer's parameters are {dtype}; convert one "
            "of them with .to(dtype)"
        )
    if x.device != device:
        raise InvalidArgumentError(
            f"input is on {x.device}, but the layer's parameters are on {device}; move one "
            "of them with .to(device)"
        )
    spatial = tuple(x.shape[2:])
    if any(size % stride for size in spatial):
        raise InvalidArgumentError(
            f"stride={stride}, but it must divide the input's spatial size {spatial} "
            "(the stride is an invertible downsampling by pixel unshuffle)"
        )
    if any(size // stride < min_size for size in spatial):
        raise InvalidArgumentError(
            f"input has spatial size {spatial}, but with circular padding each side divided by "
            f"stride={stride} must be at least the kernel size {min_size}"
        )
    return x
