r"""A whole network with its constrained layers replaced by plain PyTorch modules, checked
layer by layer (docs/layers.rst, Note [export]).

:func:`export_model` deep-copies a network and replaces each of gnpcheck's parameterized or
exportable layers (:class:`~gnpcheck.nn.base.ConstrainedConv`: BCOP and the baselines;
:class:`~gnpcheck.nn.BjorckLinear`; :class:`~gnpcheck.nn.InvertibleDownsampling` and its
1-D form) by what its ``export()`` returns: ``nn.Conv2d``, ``nn.Linear``, padding modules,
``nn.PixelUnshuffle``, with copies of the current kernels. The copy needs no kernel build
and no cache, and what is left of gnpcheck in it is the parameter-free activations
(:class:`~gnpcheck.nn.MaxMin`, :class:`~gnpcheck.nn.GroupSort`).

Every replacement is checked on the input the layer receives when the network runs on the
caller's example (in evaluation mode, without gradients): the layer and its export sum the
same ``fan_in`` products in other orders, so on input :math:`x` each output may differ by

.. math:: 10 \cdot \mathrm{fan\_in} \cdot \varepsilon \cdot (|W| * |x| + |b|)

(:func:`~gnpcheck.tolerances.reconstruction_tolerance`; :math:`|W| * |x| + |b|` is the export
with its parameters replaced by their absolute values, applied to :math:`|x|`), and a wrong
export differs by far more. A layer outside this bound is named in an
:class:`ExportMismatchError`; the network's own outputs are compared as well and their
largest difference reported.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from gnpcheck.errors import GnpcheckError, InvalidArgumentError, InvalidTypeError
from gnpcheck.nn.base import ConstrainedConv
from gnpcheck.nn.downsampling import InvertibleDownsampling, InvertibleDownsampling1d
from gnpcheck.nn.linear import BjorckLinear
from gnpcheck.tolerances import reconstruction_tolerance

__all__ = ["EXPORTED_TYPES", "ExportMismatchError", "ExportedModel", "export_model"]

#: The layer types :func:`export_model` replaces by their ``export()``.
EXPORTED_TYPES: tuple[type[nn.Module], ...] = (
    ConstrainedConv,
    BjorckLinear,
    InvertibleDownsampling,
    InvertibleDownsampling1d,
)


class ExportMismatchError(GnpcheckError):
    """A layer's plain export does not compute what the layer computes."""


@dataclass(frozen=True)
class ExportedModel:
    """The plain copy of a network (evaluation mode), the names of the layers replaced in
    it, the network's own outputs on the example (evaluation mode), and the largest absolute
    difference between the copy's outputs and those."""

    module: nn.Module
    replaced: tuple[str, ...]
    outputs: torch.Tensor
    max_difference: float


def _export(layer: nn.Module, x: torch.Tensor) -> nn.Module:
    """``layer.export()``; the 1-D unshuffle's export takes its input's channel count, dtype
    and device."""
    if isinstance(layer, InvertibleDownsampling1d):
        return layer.export(int(x.shape[1]), dtype=x.dtype, device=x.device)
    plain: nn.Module = layer.export()  # type: ignore[operator]
    return plain


def _absolute(plain: nn.Module) -> nn.Module:
    """A copy of ``plain`` whose parameters are their absolute values."""
    absolute = copy.deepcopy(plain)
    for parameter in absolute.parameters():
        parameter.abs_()
    return absolute


def _check(name: str, layer: nn.Module, plain: nn.Module, x: torch.Tensor) -> None:
    """Raise :class:`ExportMismatchError` unless ``plain`` computes ``layer`` on ``x``
    within the reconstruction bound (module docstring)."""
    expected, got = layer(x), plain(x)
    fan_in = max((p[0].numel() for p in plain.parameters() if p.ndim >= 2), default=1)
    scale = _absolute(plain)(x.abs())
    allowed = reconstruction_tolerance(x.dtype, fan_in) * scale
    where = f"layer {name!r} ({type(layer).__name__}): its export {type(plain).__name__}"
    if got.shape != expected.shape:
        raise ExportMismatchError(
            f"{where} returns shape {tuple(got.shape)}, but the layer {tuple(expected.shape)}"
        )
    excess = (got - expected).abs() - allowed
    if bool((excess > 0).any()):
        raise ExportMismatchError(
            f"{where} differs from it by up to {(got - expected).abs().max().item():.3g}, "
            f"more than the reconstruction bound allows (by up to {excess.max().item():.3g})"
        )


def _parent_and_key(root: nn.Module, name: str) -> tuple[nn.Module, str]:
    path, _, key = name.rpartition(".")
    return (root.get_submodule(path) if path else root), key


def _targets(root: nn.Module) -> dict[int, tuple[nn.Module, list[str]]]:
    """The layers to replace, by identity, with every name each is reachable by; layers
    inside another such layer are left to that layer's export."""
    found: dict[int, tuple[nn.Module, list[str]]] = {}
    for name, module in root.named_modules(remove_duplicate=False):
        if isinstance(module, EXPORTED_TYPES) and not any(
            name.startswith(f"{outer}.") for _, names in found.values() for outer in names
        ):
            found.setdefault(id(module), (module, []))[1].append(name)
    return found


def export_model(model: nn.Module, example: torch.Tensor) -> ExportedModel:
    """A copy of ``model`` with every layer of :data:`EXPORTED_TYPES` replaced by its
    ``export()``, each replacement checked on the inputs it receives from ``example``
    (module docstring). ``model`` itself is not changed (its mode included).

    Args:
        model: the network, returning a tensor; its layers may be nested in containers at
            any depth, and a layer used at several places is replaced at each (by one plain
            module, shared as the layer was).
        example: a batch of inputs of the network's shape, dtype and device.

    Raises:
        InvalidTypeError: ``model`` not an ``nn.Module``, ``example`` or the network's
            output not a tensor.
        InvalidArgumentError: a layer to replace that ``example`` does not reach (its
            export could not be checked).
        ExportMismatchError: a layer whose export does not compute what it does, named.
    """
    if not isinstance(model, nn.Module):
        raise InvalidTypeError(f"model is a {type(model).__name__}, but it must be an nn.Module")
    if not isinstance(example, torch.Tensor):
        raise InvalidTypeError(
            f"example is a {type(example).__name__}, but it must be a torch.Tensor"
        )
    copied = copy.deepcopy(model).eval()
    targets = _targets(copied)
    calls: dict[int, list[torch.Tensor]] = {layer_id: [] for layer_id in targets}
    handles = [
        layer.register_forward_pre_hook(lambda _, args, into=calls[layer_id]: into.append(args[0]))
        for layer_id, (layer, _) in targets.items()
    ]
    with torch.no_grad():
        try:
            expected = copied(example)
        finally:
            for handle in handles:
                handle.remove()
        if not isinstance(expected, torch.Tensor):
            raise InvalidTypeError(
                f"model returned a {type(expected).__name__}, but it must return a tensor"
            )
        for layer_id, (layer, names) in targets.items():
            label = " / ".join(names)
            if not calls[layer_id]:
                raise InvalidArgumentError(
                    f"layer {label!r} ({type(layer).__name__}) does not run on example, but "
                    "every replaced layer's export must be checked on its inputs"
                )
            plain = _export(layer, calls[layer_id][0])
            for x in calls[layer_id]:
                _check(label, layer, plain, x)
            for name in names:
                parent, key = _parent_and_key(copied, name)
                parent._modules[key] = plain
        got = copied.eval()(example)
    difference = float((got - expected).abs().max()) if got.numel() else 0.0
    replaced = tuple(name for _, names in targets.values() for name in names)
    return ExportedModel(copied, replaced, expected, difference)
