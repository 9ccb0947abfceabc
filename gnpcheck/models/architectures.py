"""The seed's MNIST architectures (Li et al., NeurIPS 2019), as ``nn.Sequential`` chains.

- **Small**: conv 16 (4x4, stride 2) -> conv 32 (4x4, stride 2) -> FC 100 -> FC 10.
- **Large**: conv 32 (3x3) -> conv 32 (4x4, stride 2) -> conv 64 (3x3) -> conv 64 (4x4,
  stride 2) -> FC 512 -> FC 512 -> FC 10.
- **FC-3**: flatten -> FC 1024 -> FC 1024 -> FC 1024 -> FC 10 (three hidden layers, as the
  seed's ``fc/3-layers`` runs).

An activation follows every layer but the last. Each model is a flat ``nn.Sequential``
whose children are named ``conv1, act1, ..., flatten, linear1, ...``: a chain, so its
Lipschitz constant is at most the product of its layers' (:mod:`gnpcheck.certify.lipschitz`),
and ``--layer N`` of ``gnpcheck spectrum`` is the child named ``convN``.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable
from functools import partial
from typing import Literal, get_args

from torch import nn

from gnpcheck.errors import InvalidArgumentError
from gnpcheck.models.components import LayerOptions, make_activation, make_conv, make_linear

__all__ = [
    "MODELS",
    "SMALL_CONVS",
    "ModelKind",
    "build_model",
    "fc3",
    "large",
    "layer_chain",
    "small",
]

ModelKind = Literal["small", "large", "fc3"]
MODELS: tuple[str, ...] = get_args(ModelKind)

#: (out_channels, kernel_size, stride) of each convolution.
SMALL_CONVS = ((16, 4, 2), (32, 4, 2))
_LARGE_CONVS = ((32, 3, 1), (32, 4, 2), (64, 3, 1), (64, 4, 2))


def layer_chain(
    convs: tuple[tuple[int, int, int], ...],
    hidden: tuple[int, ...],
    conv: str,
    activation: Callable[[], nn.Module],
    options: LayerOptions,
    input_shape: tuple[int, ...],
    outputs: int,
) -> nn.Sequential:
    """The chain ``conv1, act1, ..., flatten, linear1, ...``: a convolution of kind ``conv`` per
    ``(out_channels, kernel_size, stride)`` of ``convs`` (``input_shape`` is then
    ``(C, H, W)``; without convolutions any shape, flattened), Björck linear layers of widths
    ``hidden`` and then ``outputs``, and a new ``activation()`` after every layer but the last.

    Raises:
        InvalidArgumentError: strides that do not divide the input size; see
            :func:`~gnpcheck.models.components.make_conv`.
    """
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    count = 0
    if convs:
        channels, height, width = input_shape
        for index, (out, kernel, stride) in enumerate(convs, start=1):
            if height % stride or width % stride:
                raise InvalidArgumentError(
                    f"input_shape={input_shape}, but conv{index} has stride {stride}, which must "
                    f"divide its input size {(height, width)}"
                )
            layers[f"conv{index}"] = make_conv(
                conv, channels, out, kernel, stride, (height, width), options
            )
            count += 1
            layers[f"act{count}"] = activation()
            channels, height, width = out, height // stride, width // stride
        features = channels * height * width
    else:
        features = math.prod(input_shape)
    layers["flatten"] = nn.Flatten()
    sizes = (*hidden, outputs)
    for index, size in enumerate(sizes, start=1):
        layers[f"linear{index}"] = make_linear(features, size, options)
        if index < len(sizes):
            count += 1
            layers[f"act{count}"] = activation()
        features = size
    return nn.Sequential(layers)


def _conv_net(
    convs: tuple[tuple[int, int, int], ...],
    hidden: tuple[int, ...],
    conv: str,
    act: str,
    options: LayerOptions,
    input_shape: tuple[int, int, int],
    classes: int,
) -> nn.Sequential:
    return layer_chain(
        convs, hidden, conv, partial(make_activation, act), options, input_shape, classes
    )


def small(
    conv: str = "bcop",
    act: str = "maxmin",
    options: LayerOptions | None = None,
    input_shape: tuple[int, int, int] = (1, 28, 28),
    classes: int = 10,
) -> nn.Sequential:
    """The Small network: two strided convolutions, FC 100, FC ``classes``."""
    return _conv_net(
        SMALL_CONVS, (100,), conv, act, options or LayerOptions(), input_shape, classes
    )


def large(
    conv: str = "bcop",
    act: str = "maxmin",
    options: LayerOptions | None = None,
    input_shape: tuple[int, int, int] = (1, 28, 28),
    classes: int = 10,
) -> nn.Sequential:
    """The Large network: four convolutions (two strided), FC 512, FC 512, FC ``classes``."""
    return _conv_net(
        _LARGE_CONVS, (512, 512), conv, act, options or LayerOptions(), input_shape, classes
    )


def fc3(
    conv: str = "bcop",
    act: str = "maxmin",
    options: LayerOptions | None = None,
    input_shape: tuple[int, int, int] = (1, 28, 28),
    classes: int = 10,
) -> nn.Sequential:
    """FC-3: three hidden Björck layers of 1024 units (``conv`` is unused: no convolutions)."""
    return _conv_net(
        (), (1024, 1024, 1024), conv, act, options or LayerOptions(), input_shape, classes
    )


_BUILDERS: dict[str, Callable[..., nn.Sequential]] = {"small": small, "large": large, "fc3": fc3}


def build_model(
    model: str,
    conv: str = "bcop",
    act: str = "maxmin",
    options: LayerOptions | None = None,
    input_shape: tuple[int, int, int] = (1, 28, 28),
    classes: int = 10,
) -> nn.Sequential:
    """The architecture named ``model`` (one of :data:`MODELS`) with the given layers.

    Raises:
        InvalidArgumentError: an unknown ``model``, ``conv`` or ``act``; strides that do not
            divide the input size.
    """
    if model not in _BUILDERS:
        raise InvalidArgumentError(f"model={model!r}, but it must be one of {', '.join(MODELS)}")
    return _BUILDERS[model](conv, act, options, input_shape, classes)
