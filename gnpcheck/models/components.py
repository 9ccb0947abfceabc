"""The layers a model is built from, chosen by name: convolution, activation, linear.

Convolutions (``conv``): ``"bcop"`` (:class:`~gnpcheck.nn.BCOPConv2d`, orthogonal),
``"rko"``, ``"ossn"``, ``"svcm"`` (the baselines of :mod:`gnpcheck.nn.baselines`). A strided
convolution is a pixel unshuffle by the stride followed by a stride-1 convolution with
``kernel_size / stride`` taps, inside each layer. Activations (``act``): ``"maxmin"``
(:class:`~gnpcheck.nn.MaxMin`, gradient norm preserving) or ``"relu"`` (1-Lipschitz only).
Linear layers are always :class:`~gnpcheck.nn.BjorckLinear` (orthogonal rows or columns).

Note [init scale]: BCOP and Björck layers are scale invariant in their unconstrained
matrices (QR and scaled Björck depend on the span or the polar factor only), so multiplying
``h_tilde``, ``r_tilde`` or ``weight_tilde`` by ``s > 0`` leaves the function unchanged but
divides Adam's relative step, about ``lr / ||theta||``, by ``s``. With ``init_scale="fan_in"``
(the seed's initialization: orthogonal matrices times ``1 / sqrt(n)``) these matrices are
divided by ``sqrt(n)``, ``n`` the BCOP channel count or the linear layer's input size, which
trains markedly faster than unit scale (docs/results.rst). Baseline layers are left as they
initialize themselves.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, get_args

import torch
from torch import nn

from gnpcheck.errors import InvalidArgumentError
from gnpcheck.nn import BCOPConv2d, BjorckLinear, MaxMin
from gnpcheck.nn.baselines import OSSNConv2d, RKOConv2d, SVCMConv2d

__all__ = [
    "ACTIVATIONS",
    "CONVS",
    "INIT_SCALES",
    "ActivationKind",
    "ConvKind",
    "LayerOptions",
    "make_activation",
    "make_conv",
    "make_linear",
]

ConvKind = Literal["bcop", "rko", "ossn", "svcm"]
ActivationKind = Literal["maxmin", "relu"]
CONVS: tuple[str, ...] = get_args(ConvKind)
INIT_SCALES = ("fan_in", "unit")
ACTIVATIONS: tuple[str, ...] = get_args(ActivationKind)


@dataclass(frozen=True)
class LayerOptions:
    """How the layers are configured (the constructor arguments they share).

    Attributes:
        padding: ``"circular"`` (orthogonal convolutions) or ``"same"`` (zeros).
        orthogonalizer: BCOP's ``"qr"`` or ``"bjorck"``.
        bjorck_iters: BCOP's Björck iterations (``None``: the layer's default; ``"qr"`` only
            accepts ``None``).
        linear_orthogonalizer: the linear layers' ``"polar"`` factor (Björck's limit, by an
            SVD) or ``"bjorck"`` iterations.
        linear_bjorck_iters: their Björck iterations (``"bjorck"`` only; ``None``: the
            layer's default).
        init_scale: ``"fan_in"`` (the seed's: BCOP and Björck matrices divided by
            ``sqrt(n)``) or ``"unit"`` (the layers' own orthonormal initialization); see
            Note [init scale].
    """

    padding: Literal["circular", "same"] = "circular"
    orthogonalizer: Literal["qr", "bjorck"] = "qr"
    bjorck_iters: int | None = None
    linear_orthogonalizer: Literal["polar", "bjorck"] = "polar"
    linear_bjorck_iters: int | None = None
    init_scale: Literal["fan_in", "unit"] = "fan_in"

    def __post_init__(self) -> None:
        if self.init_scale not in INIT_SCALES:
            raise InvalidArgumentError(
                f"init_scale={self.init_scale!r}, but it must be one of {', '.join(INIT_SCALES)}"
            )


def make_conv(
    kind: str,
    in_channels: int,
    out_channels: int,
    kernel_size: int,
    stride: int,
    input_size: tuple[int, int],
    options: LayerOptions,
) -> nn.Module:
    """A constrained 2-D convolution of kind ``kind`` acting on ``input_size`` inputs.

    Raises:
        InvalidArgumentError: ``kind`` is not one of :data:`CONVS`; layer arguments out of
            range (from the layer).
    """
    if kind == "bcop":
        layer = BCOPConv2d(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=options.padding,
            orthogonalizer=options.orthogonalizer,
            bjorck_iters=options.bjorck_iters,
        )
        if options.init_scale == "fan_in":
            with torch.no_grad():
                layer.h_tilde.div_(math.sqrt(layer.channels))
                layer.r_tilde.div_(math.sqrt(layer.channels))
        return layer
    if kind == "rko":
        return RKOConv2d(in_channels, out_channels, kernel_size, stride, options.padding)
    if kind == "ossn":
        return OSSNConv2d(
            in_channels, out_channels, kernel_size, stride, options.padding, input_size=input_size
        )
    if kind == "svcm":
        return SVCMConv2d(
            in_channels, out_channels, kernel_size, stride, options.padding, input_size=input_size
        )
    raise InvalidArgumentError(f"conv={kind!r}, but it must be one of {', '.join(CONVS)}")


def make_activation(kind: str) -> nn.Module:
    """``MaxMin()`` over channels for ``"maxmin"``, ``nn.ReLU()`` for ``"relu"``.

    Raises:
        InvalidArgumentError: ``kind`` is not one of :data:`ACTIVATIONS`.
    """
    if kind == "maxmin":
        return MaxMin(dim=1)
    if kind == "relu":
        return nn.ReLU()
    raise InvalidArgumentError(f"act={kind!r}, but it must be one of {', '.join(ACTIVATIONS)}")


def make_linear(in_features: int, out_features: int, options: LayerOptions) -> BjorckLinear:
    """A Björck-orthogonal linear layer, orthonormalized as ``options`` say."""
    layer = BjorckLinear(
        in_features,
        out_features,
        bjorck_iters=options.linear_bjorck_iters,
        orthogonalizer=options.linear_orthogonalizer,
    )
    if options.init_scale == "fan_in":
        with torch.no_grad():
            layer.weight_tilde.div_(math.sqrt(in_features))
    return layer
