r"""Critics for Wasserstein-1 estimation: Lipschitz networks with one output.

Two kinds (:data:`CRITIC_KINDS`), each an ``nn.Sequential`` chain of named layers, so
:func:`gnpcheck.certify.lipschitz.model_lipschitz` measures its Lipschitz bound layer by
layer:

- ``"conv"``: the Small layout of :mod:`gnpcheck.models.architectures` with one output:
  conv 16 (4x4, stride 2) -> conv 32 (4x4, stride 2) -> flatten -> Björck FC ``hidden`` ->
  Björck FC 1, an activation after every layer but the last. The convolution is one of
  :data:`gnpcheck.models.CONVS` (BCOP, RKO, OSSN, SVCM).
- ``"fc"``: flatten -> Björck FC ``hidden`` -> Björck FC 1 (Anil et al. 2019), for inputs of
  any shape.

Activations (:data:`CRITIC_ACTIVATIONS`): ``"maxmin"`` (GroupSort with groups of 2),
``"groupsort"`` (:class:`~gnpcheck.nn.GroupSort` with ``group_size`` channels per group) and
``"relu"`` (1-Lipschitz, not gradient norm preserving). A critic's output has shape
``(N, 1)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Literal, get_args

import torch
from torch import nn

from gnpcheck.errors import InvalidArgumentError, InvalidTypeError
from gnpcheck.models.architectures import SMALL_CONVS, layer_chain
from gnpcheck.models.components import CONVS, LayerOptions
from gnpcheck.nn import GroupSort, MaxMin
from gnpcheck.wasserstein._arguments import seed_value

__all__ = [
    "CONV_LAYOUT",
    "CRITIC_ACTIVATIONS",
    "CRITIC_KINDS",
    "CriticActivation",
    "CriticKind",
    "build_critic",
    "default_hidden",
]

CriticKind = Literal["conv", "fc"]
CriticActivation = Literal["maxmin", "relu", "groupsort"]
CRITIC_KINDS: tuple[str, ...] = get_args(CriticKind)
CRITIC_ACTIVATIONS: tuple[str, ...] = get_args(CriticActivation)

#: (out_channels, kernel_size, stride) of the conv critic's convolutions (the Small network).
CONV_LAYOUT: tuple[tuple[int, int, int], ...] = SMALL_CONVS

_DEFAULT_HIDDEN: dict[str, tuple[int, ...]] = {"conv": (100,), "fc": (128, 128)}


def default_hidden(kind: str) -> tuple[int, ...]:
    """The hidden widths used when ``hidden`` is not given: ``(100,)`` for ``"conv"`` (the
    Small network's FC 100), ``(128, 128)`` for ``"fc"``."""
    return _DEFAULT_HIDDEN[_choice(kind, "kind", CRITIC_KINDS)]


def _choice(value: object, name: str, allowed: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise InvalidArgumentError(f"{name}={value!r}, but it must be one of {', '.join(allowed)}")
    return value


def _shape(input_shape: object) -> tuple[int, ...]:
    if not isinstance(input_shape, tuple | list) or not input_shape:
        raise InvalidTypeError(
            f"input_shape={input_shape!r}, but it must be a non-empty tuple of ints (the shape "
            "of one sample)"
        )
    for size in input_shape:
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise InvalidArgumentError(
                f"input_shape={tuple(input_shape)!r}, but every size must be an int >= 1"
            )
    return tuple(input_shape)


def _widths(hidden: object) -> tuple[int, ...]:
    if not isinstance(hidden, Sequence) or isinstance(hidden, str):
        raise InvalidTypeError(f"hidden={hidden!r}, but it must be a tuple of ints")
    for width in hidden:
        if isinstance(width, bool) or not isinstance(width, int) or width < 1:
            raise InvalidArgumentError(f"hidden={tuple(hidden)!r}, but every width must be >= 1")
    return tuple(hidden)


def _group(act: str, group_size: object) -> int:
    if isinstance(group_size, bool) or not isinstance(group_size, int) or group_size < 1:
        raise InvalidArgumentError(f"group_size={group_size!r}, but it must be an int >= 1")
    if act != "groupsort" and group_size != 2:
        raise InvalidArgumentError(
            f"group_size={group_size}, but it applies to act='groupsort' only (act={act!r}); "
            "'maxmin' is GroupSort with groups of 2"
        )
    return 1 if act == "relu" else group_size


def _activation(act: str, group_size: int) -> nn.Module:
    if act == "relu":
        return nn.ReLU()
    if act == "maxmin":
        return MaxMin(dim=1)
    return GroupSort(group_size, dim=1)


def build_critic(
    kind: str = "conv",
    input_shape: tuple[int, ...] = (1, 28, 28),
    conv: str | None = None,
    act: str = "maxmin",
    hidden: Sequence[int] | None = None,
    group_size: int = 2,
    *,
    options: LayerOptions | None = None,
    seed: int | None = None,
) -> nn.Sequential:
    r"""A Lipschitz critic :math:`f: \mathbb{R}^{\text{input\_shape}} \to \mathbb{R}`.

    Args:
        kind: ``"conv"`` or ``"fc"`` (see the module docstring).
        input_shape: the shape of one sample: ``(C, H, W)`` for ``"conv"`` (``H`` and ``W``
            divisible by 4), any shape for ``"fc"`` (flattened).
        conv: the convolution of a conv critic, one of ``bcop``, ``rko``, ``ossn``, ``svcm``
            (``None``: ``"bcop"``); must be ``None`` for ``"fc"``.
        act: ``"maxmin"``, ``"groupsort"`` or ``"relu"``.
        hidden: widths of the hidden Björck layers (``None``: :func:`default_hidden`).
        group_size: channels per group of ``act="groupsort"``; must divide every activation's
            width. Any other ``act`` accepts only the default, 2.
        options: padding, orthogonalizer and initialization of the layers (default
            :class:`~gnpcheck.models.LayerOptions`: circular padding, QR, fan-in scale).
        seed: if given, the parameters are initialized from this seed (the global random
            state is left as it was); ``None`` draws from the global state.

    Returns:
        An ``nn.Sequential`` chain named ``conv1, act1, ..., flatten, linear1, ...`` (float32,
        training mode) whose output has shape ``(N, 1)``.

    Raises:
        InvalidArgumentError: an unknown ``kind``, ``conv`` or ``act``; ``conv`` given for an
            ``"fc"`` critic; a conv ``input_shape`` that is not ``(C, H, W)`` with ``H, W``
            divisible by 4; a width that ``act``'s groups do not divide; ``group_size`` other
            than 2 without ``act="groupsort"``; ``seed`` outside ``[0, 2**64)``.
        InvalidTypeError: ``input_shape``, ``hidden``, ``options`` or ``seed`` of the wrong
            type.
    """
    kind = _choice(kind, "kind", CRITIC_KINDS)
    act = _choice(act, "act", CRITIC_ACTIVATIONS)
    shape = _shape(input_shape)
    widths = default_hidden(kind) if hidden is None else _widths(hidden)
    groups = _group(act, group_size)
    if options is None:
        options = LayerOptions()
    elif not isinstance(options, LayerOptions):
        raise InvalidTypeError(f"options={options!r}, but it must be a LayerOptions")
    if kind == "fc" and conv is not None:
        raise InvalidArgumentError(f"conv={conv!r}, but an 'fc' critic has no convolutions")
    conv = _choice("bcop" if conv is None else conv, "conv", CONVS)
    if kind == "conv" and len(shape) != 3:
        raise InvalidArgumentError(
            f"input_shape={shape}, but a conv critic needs (channels, height, width)"
        )
    conv_widths = tuple(out for out, _, _ in CONV_LAYOUT) if kind == "conv" else ()
    if any(width % groups for width in (*conv_widths, *widths)):
        raise InvalidArgumentError(
            f"hidden={widths}, but act={act!r} sorts groups of {groups}, which must divide "
            f"every activation's width {(*conv_widths, *widths)}"
        )
    seed = None if seed is None else seed_value(seed)
    with torch.random.fork_rng(devices=[], enabled=seed is not None):
        if seed is not None:
            torch.manual_seed(seed)
        convs = CONV_LAYOUT if kind == "conv" else ()
        return layer_chain(
            convs, widths, conv, partial(_activation, act, groups), options, shape, 1
        )
