"""Bad arguments and inputs: each rejected with a named error whose message names the value."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch

from gnpcheck.errors import InvalidArgumentError, InvalidTypeError
from gnpcheck.nn import (
    BCOPConv1d,
    BCOPConv2d,
    BjorckLinear,
    GroupSort,
    InvertibleDownsampling,
    InvertibleDownsampling1d,
    MaxMin,
)


def _conv(*args: Any, **kwargs: Any) -> Callable[[], object]:
    return lambda: BCOPConv2d(*args, **kwargs)


def _forward(layer: torch.nn.Module, x: object) -> Callable[[], object]:
    return lambda: layer(x)


_LAYER = BCOPConv2d(2, 2, 4, stride=2, dtype=torch.float64)
_LINEAR = BjorckLinear(3, 2, dtype=torch.float64)

CASES: list[tuple[str, Callable[[], object], type[Exception], str]] = [
    (
        "kernel-size-0",
        _conv(2, 2, 0),
        InvalidArgumentError,
        r"kernel_size=0, but it must be at least 1",
    ),
    (
        "kernel-size-unequal",
        _conv(2, 2, (3, 5)),
        InvalidArgumentError,
        r"kernel_size=\(3, 5\), but the sizes must be equal",
    ),
    (
        "kernel-size-three-axes",
        _conv(2, 2, (3, 3, 3)),
        InvalidArgumentError,
        r"kernel_size=\(3, 3, 3\), but it must be an int or 2",
    ),
    (
        "kernel-size-str",
        _conv(2, 2, "3"),
        InvalidTypeError,
        r"kernel_size='3', but it must be an int",
    ),
    ("in-channels-0", _conv(0, 2, 3), InvalidArgumentError, r"in_channels=0"),
    (
        "stride-0",
        _conv(2, 2, 3, stride=0),
        InvalidArgumentError,
        r"stride=0, but it must be at least 1",
    ),
    (
        "stride-not-dividing-kernel",
        _conv(2, 2, 3, stride=2),
        InvalidArgumentError,
        r"kernel_size=3, but with stride=2 it must be a multiple",
    ),
    (
        "groups",
        _conv(4, 4, 3, groups=2),
        InvalidArgumentError,
        r"groups=2, but only groups=1 is supported",
    ),
    (
        "dilation",
        _conv(2, 2, 3, dilation=2),
        InvalidArgumentError,
        r"dilation=2, but only dilation=1",
    ),
    (
        "padding-int",
        _conv(2, 2, 3, padding=1),
        InvalidArgumentError,
        r"padding=1, but it must be 'circular'",
    ),
    (
        "padding-reflect",
        _conv(2, 2, 3, padding="reflect"),
        InvalidArgumentError,
        r"padding='reflect', but",
    ),
    (
        "padding-valid",
        _conv(2, 2, 3, padding="valid"),
        InvalidArgumentError,
        r"padding='valid', but",
    ),
    ("padding-mode-kwarg", _conv(2, 2, 3, padding_mode="circular"), TypeError, r"padding_mode"),
    (
        "bias-str",
        _conv(2, 2, 3, bias="yes"),
        InvalidTypeError,
        r"bias='yes', but it must be a bool",
    ),
    (
        "orthogonalizer",
        _conv(2, 2, 3, orthogonalizer="svd"),
        InvalidArgumentError,
        r"orthogonalizer='svd'",
    ),
    (
        "iters-with-qr",
        _conv(2, 2, 3, bjorck_iters=5),
        InvalidArgumentError,
        r"bjorck_iters=5, but orthogonalizer='qr'",
    ),
    (
        "iters-0",
        _conv(2, 2, 3, orthogonalizer="bjorck", bjorck_iters=0),
        InvalidArgumentError,
        r"bjorck_iters=0",
    ),
    (
        "iters-float",
        _conv(2, 2, 3, orthogonalizer="bjorck", bjorck_iters=2.0),
        InvalidTypeError,
        r"bjorck_iters=2.0",
    ),
    (
        "build-dtype",
        _conv(2, 2, 3, build_dtype="float64"),
        InvalidTypeError,
        r"build_dtype='float64'",
    ),
    (
        "build-dtype-int",
        _conv(2, 2, 3, build_dtype=torch.int64),
        InvalidTypeError,
        r"build_dtype=torch.int64",
    ),
    (
        "1d-kernel-pair",
        lambda: BCOPConv1d(2, 2, (3, 3)),
        InvalidArgumentError,
        r"it must be an int or 1 equal",
    ),
    (
        "input-stride-not-dividing",
        _forward(_LAYER, torch.zeros(1, 2, 6, 7, dtype=torch.float64)),
        InvalidArgumentError,
        r"stride=2, but it must divide the input's spatial size \(6, 7\)",
    ),
    (
        "input-dtype",
        _forward(_LAYER, torch.zeros(1, 2, 8, 8)),
        InvalidArgumentError,
        r"input has dtype torch.float32, but the layer's parameters are torch.float64",
    ),
    (
        "input-channels",
        _forward(_LAYER, torch.zeros(1, 3, 8, 8, dtype=torch.float64)),
        InvalidArgumentError,
        r"input has shape \(1, 3, 8, 8\), but it must be \(batch, 2, H, W\)",
    ),
    (
        "input-rank",
        _forward(_LAYER, torch.zeros(2, 8, 8, dtype=torch.float64)),
        InvalidArgumentError,
        r"must be \(batch, 2, H, W\)",
    ),
    (
        "input-smaller-than-kernel",
        _forward(_LAYER, torch.zeros(1, 2, 2, 2, dtype=torch.float64)),
        InvalidArgumentError,
        r"at least the kernel size 2",
    ),
    ("input-not-tensor", _forward(_LAYER, [[1.0]]), InvalidTypeError, r"input is a list"),
    (
        "defect-shape",
        lambda: _LAYER.orthogonality_defect((8, 7)),
        InvalidArgumentError,
        r"input_shape=\(8, 7\)",
    ),
    ("linear-features", lambda: BjorckLinear(0, 2), InvalidArgumentError, r"in_features=0"),
    (
        "linear-iters",
        lambda: BjorckLinear(2, 2, bjorck_iters=0),
        InvalidArgumentError,
        r"bjorck_iters=0",
    ),
    (
        "linear-orthogonalizer",
        lambda: BjorckLinear(2, 2, orthogonalizer="qr"),  # type: ignore[arg-type]
        InvalidArgumentError,
        r"orthogonalizer='qr', but it must be one of bjorck, polar",
    ),
    (
        "linear-polar-iters",
        lambda: BjorckLinear(2, 2, bjorck_iters=5, orthogonalizer="polar"),
        InvalidArgumentError,
        r"bjorck_iters=5, but orthogonalizer='polar' has no iterations",
    ),
    (
        "linear-input",
        _forward(_LINEAR, torch.zeros(4, 2, dtype=torch.float64)),
        InvalidArgumentError,
        r"in_features=3",
    ),
    (
        "linear-dtype",
        _forward(_LINEAR, torch.zeros(4, 3)),
        InvalidArgumentError,
        r"dtype torch.float32",
    ),
    ("groupsort-size", lambda: GroupSort(0), InvalidArgumentError, r"group_size=0"),
    (
        "groupsort-divides",
        _forward(GroupSort(3), torch.zeros(2, 4)),
        InvalidArgumentError,
        r"group_size=3 must divide",
    ),
    (
        "maxmin-odd",
        _forward(MaxMin(), torch.zeros(2, 5, 3)),
        InvalidArgumentError,
        r"5 channels along dim=1",
    ),
    ("maxmin-dim", _forward(MaxMin(dim=3), torch.zeros(2, 4)), InvalidArgumentError, r"dim=3"),
    ("downsampling-factor", lambda: InvertibleDownsampling(0), InvalidArgumentError, r"factor=0"),
    (
        "downsampling-divides",
        _forward(InvertibleDownsampling(2), torch.zeros(1, 1, 4, 5)),
        InvalidArgumentError,
        r"factor=2, but it must divide",
    ),
    (
        "downsampling-1d-rank",
        _forward(InvertibleDownsampling1d(2), torch.zeros(1, 4, 4, 4)),
        InvalidArgumentError,
        r"must have 3 dimensions",
    ),
]


@pytest.mark.parametrize(
    ("call", "error", "match"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_rejected_with_a_named_error(
    call: Callable[[], object], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        call()
