"""Hypothesis strategies that build the layers of :mod:`gnpcheck.nn` and inputs for them.

Conventions of :mod:`gnpcheck.strategies`: nouns, keyword-only arguments, each size a value
or a strategy, arguments checked when the strategy is built (a drawn value when drawn),
sizes capped by the active Hypothesis profile (:func:`gnpcheck.hypothesis_profiles.size_limits`).
Parameters are initialized from a drawn seed through a private ``torch.Generator``: the
global random state is never touched, and a failing example shrinks to seed 0.
"""

from __future__ import annotations

from typing import TypeVar

import torch
from hypothesis import strategies as st

from gnpcheck.errors import InvalidArgumentError, InvalidTypeError
from gnpcheck.hypothesis_profiles import size_limits
from gnpcheck.nn._arguments import PADDINGS, Padding
from gnpcheck.nn.activations import GroupSort, MaxMin
from gnpcheck.nn.bcop import BCOPConv1d, BCOPConv2d, _BCOPConvNd
from gnpcheck.nn.linear import BjorckLinear
from gnpcheck.nn.orthogonalize import ORTHOGONALIZERS, Orthogonalizer
from gnpcheck.strategies import channel_counts, kernel_sizes, seeds

__all__ = [
    "bcop_layers",
    "bjorck_linear_layers",
    "gnp_activations",
    "layer_inputs",
]

T = TypeVar("T")


def _strategy(
    value: T | st.SearchStrategy[T], name: str, allowed: tuple[T, ...] | None = None
) -> st.SearchStrategy[T]:
    """A strategy for ``value``; a fixed value is checked against ``allowed`` now."""
    if isinstance(value, st.SearchStrategy):
        return value
    if allowed is not None and value not in allowed:
        raise InvalidArgumentError(f"{name}={value!r}, but it must be one of {allowed!r}")
    return st.just(value)


def _sizes(
    value: int | st.SearchStrategy[int] | None, name: str, default: st.SearchStrategy[int]
) -> st.SearchStrategy[int]:
    if value is None:
        return default
    if isinstance(value, st.SearchStrategy):
        return value
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidTypeError(f"{name}={value!r}, but it must be an int or a strategy of ints")
    if value < 1:
        raise InvalidArgumentError(f"{name}={value}, but it must be at least 1")
    return st.just(value)


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def bcop_layers(
    *,
    spatial_ndim: int | st.SearchStrategy[int] | None = None,
    in_channels: int | st.SearchStrategy[int] | None = None,
    out_channels: int | st.SearchStrategy[int] | None = None,
    taps: int | st.SearchStrategy[int] | None = None,
    stride: int | st.SearchStrategy[int] | None = None,
    padding: Padding | st.SearchStrategy[Padding] | None = None,
    orthogonalizer: Orthogonalizer = "qr",
    dtype: torch.dtype = torch.float64,
) -> st.SearchStrategy[_BCOPConvNd]:
    """:class:`~gnpcheck.nn.BCOPConv1d` / :class:`~gnpcheck.nn.BCOPConv2d` layers.

    Args:
        spatial_ndim: 1 or 2 (default: both).
        in_channels, out_channels: default ``1..max_channels`` of the profile.
        taps: kernel taps per axis after the stride (``kernel_size = taps * stride``);
            default ``1..max_kernel_size``.
        stride: default 1 or 2.
        padding: ``"circular"`` or ``"same"`` (default: both).
        orthogonalizer: ``"qr"`` or ``"bjorck"`` (Björck with 40 iterations: converged for
            the well-conditioned parameters drawn here).
        dtype: of the parameters.

    Raises:
        InvalidArgumentError, InvalidTypeError: a fixed argument that no layer accepts.
    """
    ndims = (
        _strategy(spatial_ndim, "spatial_ndim", (1, 2))
        if spatial_ndim is not None
        else st.sampled_from((1, 2))
    )
    ins = _sizes(in_channels, "in_channels", channel_counts())
    outs = _sizes(out_channels, "out_channels", channel_counts())
    tap_counts = _sizes(taps, "taps", kernel_sizes())
    strides = _sizes(stride, "stride", st.sampled_from((1, 2)))
    paddings = (
        _strategy(padding, "padding", PADDINGS)
        if padding is not None
        else st.sampled_from(PADDINGS)
    )
    if orthogonalizer not in ORTHOGONALIZERS:
        raise InvalidArgumentError(
            f"orthogonalizer={orthogonalizer!r}, but it must be 'qr' or 'bjorck'"
        )
    iters = 40 if orthogonalizer == "bjorck" else None

    @st.composite
    def draw_layer(draw: st.DrawFn) -> _BCOPConvNd:
        cls = BCOPConv1d if draw(ndims) == 1 else BCOPConv2d
        s = draw(strides)
        return cls(
            draw(ins),
            draw(outs),
            draw(tap_counts) * s,
            stride=s,
            padding=draw(paddings),
            orthogonalizer=orthogonalizer,
            bjorck_iters=iters,
            dtype=dtype,
            generator=_generator(draw(seeds())),
        )

    return draw_layer()


def bjorck_linear_layers(
    *,
    in_features: int | st.SearchStrategy[int] | None = None,
    out_features: int | st.SearchStrategy[int] | None = None,
    dtype: torch.dtype = torch.float64,
) -> st.SearchStrategy[BjorckLinear]:
    """:class:`~gnpcheck.nn.BjorckLinear` layers (square, tall and wide) with 40 iterations."""
    ins = _sizes(in_features, "in_features", channel_counts())
    outs = _sizes(out_features, "out_features", channel_counts())

    @st.composite
    def draw_layer(draw: st.DrawFn) -> BjorckLinear:
        return BjorckLinear(
            draw(ins), draw(outs), bjorck_iters=40, dtype=dtype, generator=_generator(draw(seeds()))
        )

    return draw_layer()


def gnp_activations(*, channels: int) -> st.SearchStrategy[MaxMin | GroupSort]:
    """``MaxMin`` (if ``channels`` is even) or ``GroupSort(g)`` for a ``g`` dividing ``channels``."""
    if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
        raise InvalidArgumentError(f"channels={channels!r}, but it must be an int >= 1")
    divisors = [g for g in range(1, channels + 1) if channels % g == 0]
    sorts: st.SearchStrategy[MaxMin | GroupSort] = st.sampled_from(divisors).map(GroupSort)
    return st.one_of(st.just(MaxMin()), sorts) if channels % 2 == 0 else sorts


def layer_inputs(
    layer: _BCOPConvNd, *, batch: int = 2, max_side: int | None = None
) -> st.SearchStrategy[torch.Tensor]:
    """Gaussian inputs for ``layer``: each side a multiple of its stride and, with circular
    padding, at least its kernel after the stride; at most ``max_side`` strides (default:
    the profile's ``max_spatial``, raised to the kernel size)."""
    if not isinstance(layer, _BCOPConvNd):
        raise InvalidTypeError(f"layer is a {type(layer).__name__}, but it must be a BCOP layer")
    low = layer.inner_kernel_size[0] if layer.padding == "circular" else 1
    top = max(low, size_limits().max_spatial if max_side is None else max_side)
    sides = st.lists(
        st.integers(low, top), min_size=layer.spatial_ndim, max_size=layer.spatial_ndim
    )

    @st.composite
    def draw_input(draw: st.DrawFn) -> torch.Tensor:
        shape = (batch, layer.in_channels, *(side * layer.stride for side in draw(sides)))
        x = torch.randn(shape, dtype=torch.float64, generator=_generator(draw(seeds())))
        return x.to(dtype=layer.h_tilde.dtype, device=layer.h_tilde.device)

    return draw_input()
