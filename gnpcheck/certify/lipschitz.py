r"""The Lipschitz bound of a network, claimed and measured, and the certificate guard.

A network that is a chain :math:`f = f_m \circ \cdots \circ f_1` (an ``nn.Sequential``,
nested ones flattened) has :math:`\mathrm{Lip}(f) \le \prod_i \mathrm{Lip}(f_i)`. Two
products are formed (docs/training.rst, Note [measured bounds]):

- **claimed**: each layer's own ``lipschitz_bound()`` (1 for the GNP layers);
- **measured**: each layer's operator norm measured here in float64, independently of the
  layer's claim (:mod:`gnpcheck.certify.operators`): the circulant spectrum of a
  convolution's kernel (an upper bound on the enlarged grid for zero padding), the spectral
  norm of a linear layer's matrix. Before measuring, the layer's output on a random input is
  compared with what its measured kernel computes, so the figure is about the map the layer
  applies.

Certificates use the *larger* product. Parameter-free layers known to be 1-Lipschitz
(MaxMin, GroupSort, ReLU, flatten, identity, pixel unshuffle) count 1. Any other layer,
or a model that is not a chain, is refused (:class:`UncertifiableModelError`): gnpcheck
never assumes a bound it neither knows nor measured.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from gnpcheck.certify.operators import (
    NotMeasurableError,
    conv_operator,
    operator_norm_bound,
    reconstruct,
)
from gnpcheck.errors import GnpcheckError, InvalidArgumentError
from gnpcheck.nn import BjorckLinear, GroupSort, InvertibleDownsampling, MaxMin
from gnpcheck.nn.base import ConstrainedConv
from gnpcheck.nn.precision import parameter_dtypes, require_certifiable_arithmetic
from gnpcheck.tolerances import reconstruction_tolerance

__all__ = [
    "KNOWN_ONE_LIPSCHITZ",
    "LayerBound",
    "ModelBound",
    "UncertifiableModelError",
    "chain_layers",
    "model_lipschitz",
    "spectral_norm",
]

#: Parameter-free layers whose Lipschitz constant is 1 by construction: sorting activations
#: and pixel unshuffle permute their input (piecewise), ReLU is a projection, flatten and
#: identity change nothing. Matched by exact type: a subclass may change ``forward``.
KNOWN_ONE_LIPSCHITZ: tuple[type[nn.Module], ...] = (
    MaxMin,
    GroupSort,
    InvertibleDownsampling,
    nn.ReLU,
    nn.Flatten,
    nn.Identity,
    nn.PixelUnshuffle,
)


class UncertifiableModelError(GnpcheckError):
    """The model has a layer whose Lipschitz bound gnpcheck neither knows nor can measure."""


@dataclass(frozen=True)
class LayerBound:
    """One layer of the chain and its bounds.

    Attributes:
        name: the layer's qualified name in the model (``"conv1"``).
        kind: the layer's class name.
        claimed: its own ``lipschitz_bound()``; ``None`` for a layer that claims nothing.
        measured: the bound measured here.
        method: how ``measured`` was obtained.
    """

    name: str
    kind: str
    claimed: float | None
    measured: float
    method: str


@dataclass(frozen=True)
class ModelBound:
    """The Lipschitz bounds of a chain and the one a certificate uses.

    Attributes:
        layers: the bound of each layer, in order.
        claimed: product of the claims (a layer that claims nothing contributes its measured
            bound).
        measured: product of the measured bounds.
    """

    layers: tuple[LayerBound, ...]
    claimed: float
    measured: float

    @property
    def certified_with(self) -> float:
        """The bound certificates use: ``max(claimed, measured)``."""
        return max(self.claimed, self.measured)

    @property
    def source(self) -> Literal["claimed", "measured"]:
        """Which product is the larger (``"measured"`` on a tie)."""
        return "claimed" if self.claimed > self.measured else "measured"

    def describe(self) -> str:
        """One line: both products and which one certificates use."""
        return (
            f"Lipschitz bound: claimed {self.claimed:.6f}, measured {self.measured:.6f}; "
            f"certifying with the larger, {self.source} = {self.certified_with:.6f}"
        )

    def to_text(self) -> str:
        """A table of the layers, then :meth:`describe`."""
        rows = [f"{'layer':<10} {'kind':<22} {'claimed':>10} {'measured':>10}  method"]
        for layer in self.layers:
            claimed = "-" if layer.claimed is None else f"{layer.claimed:.6f}"
            rows.append(
                f"{layer.name:<10} {layer.kind:<22} {claimed:>10} {layer.measured:>10.6f}  "
                f"{layer.method}"
            )
        return "\n".join([*rows, self.describe()])


def chain_layers(model: nn.Module, prefix: str = "") -> list[tuple[str, nn.Module]]:
    """The layers of a chain in order: ``nn.Sequential`` flattened, any other module a leaf.

    Raises:
        UncertifiableModelError: a module with submodules that is not an ``nn.Sequential``
            (its ``forward`` may combine them in any way: residuals, branches, scalings).
    """
    if type(model) is nn.Sequential:
        layers: list[tuple[str, nn.Module]] = []
        for name, child in model.named_children():
            layers += chain_layers(child, f"{prefix}{name}")
        return layers
    if any(True for _ in model.children()):
        raise UncertifiableModelError(
            f"layer {prefix or 'model'!r} ({type(model).__name__}) has submodules but is not an "
            "nn.Sequential: gnpcheck cannot tell how they compose, so it certifies nothing"
        )
    return [(prefix or type(model).__name__, model)]


def spectral_norm(matrix: torch.Tensor) -> float:
    r""":math:`\|W\|_2` in float64, as :math:`\sqrt{\lambda_{\max}}` of the smaller Gram matrix.

    The Gram's rounding is ``O(eps ||W||^2)``, so :math:`\sigma_{\max}` keeps a relative
    accuracy of ``O(eps)`` at a fraction of the cost of an SVD.
    """
    w = matrix.detach().double()
    gram = w @ w.mT if w.shape[0] <= w.shape[1] else w.mT @ w
    return math.sqrt(max(float(torch.linalg.eigvalsh(gram).max()), 0.0))


def _tensor_attribute(name: str, layer: nn.Module, attribute: str) -> torch.Tensor:
    value = getattr(layer, attribute, None)
    if not isinstance(value, torch.Tensor):
        raise UncertifiableModelError(
            f"layer {name!r} ({type(layer).__name__}) has no tensor {attribute!r} to measure"
        )
    return value.detach()


def _check_reconstruction(name: str, layer: nn.Module, x: torch.Tensor) -> None:
    """Refuse a layer whose output is not what its ``weight`` and ``bias`` compute.

    Runs the layer (in evaluation mode, without gradients: nothing is stored) on a random
    input of ``x``'s shape, dtype and device.
    """
    generator = torch.Generator().manual_seed(0)
    probe = torch.randn(x.shape, dtype=x.dtype, generator=generator).to(x.device)
    output = layer(probe)
    weight = _tensor_attribute(name, layer, "weight")
    bias = getattr(layer, "bias", None)
    bias = bias.detach() if isinstance(bias, torch.Tensor) else None
    rebuilt = reconstruct(layer, probe, weight, bias)
    scale = reconstruct(layer, probe.abs(), weight.abs(), None if bias is None else bias.abs())
    allowed = reconstruction_tolerance(x.dtype, weight[0].numel()) * scale
    if output.shape != rebuilt.shape or bool(((output - rebuilt).abs() > allowed).any()):
        raise UncertifiableModelError(
            f"layer {name!r} ({type(layer).__name__}) does not compute the map its weight and "
            "bias define, so measuring its weight bounds nothing; certify refuses it"
        )


def _bound(name: str, layer: nn.Module, x: torch.Tensor) -> LayerBound:
    kind = type(layer).__name__
    if type(layer) in KNOWN_ONE_LIPSCHITZ:
        return LayerBound(name, kind, 1.0, 1.0, "known 1-Lipschitz (no parameters)")
    if isinstance(layer, ConstrainedConv | BjorckLinear):
        claimed: float | None = float(layer.lipschitz_bound())
        _check_reconstruction(name, layer, x)
    elif type(layer) in (nn.Linear, nn.Conv2d):
        claimed = None
    else:
        raise UncertifiableModelError(
            f"layer {name!r} ({kind}) has a Lipschitz bound that gnpcheck neither knows nor can "
            "measure; certify refuses it rather than assume 1"
        )
    if isinstance(layer, BjorckLinear | nn.Linear):
        method = "spectral norm of the weight (float64 Gram eigenvalues)"
        weight = _tensor_attribute(name, layer, "weight")
        return LayerBound(name, kind, claimed, spectral_norm(weight), method)
    try:
        operator = conv_operator(layer, (int(x.shape[-2]), int(x.shape[-1])))
        measured = operator_norm_bound(operator)
    except NotMeasurableError as error:
        raise UncertifiableModelError(f"layer {name!r} ({kind}): {error}") from None
    grid = operator.grid
    method = (
        f"circulant spectrum, {grid[0]}x{grid[1]} grid (exact)"
        if operator.exact
        else f"circulant spectrum on the {grid[0]}x{grid[1]} grid enlarged by K-1 (upper bound)"
    )
    return LayerBound(name, kind, claimed, measured, method)


def model_lipschitz(model: nn.Module, input_shape: tuple[int, ...]) -> ModelBound:
    """Claimed and measured Lipschitz bounds of a chain for inputs of shape ``input_shape``.

    The model is run once in evaluation mode on a zero input of shape ``(1, *input_shape)``
    to learn each layer's input size; its mode is restored afterwards.

    Raises:
        UncertifiableModelError: see :func:`chain_layers`; a layer neither known nor
            measurable; a layer whose output does not match its measured weight.
        InvalidArgumentError: a non-finite claimed or measured bound.
        UnsupportedOperationError: float16 or bfloat16 parameters or an active autocast; a
            float32 model whose device PyTorch's settings run in reduced precision
            (docs/layers.rst, Note [float32 products]).
    """
    layers = chain_layers(model)
    parameter = next(model.parameters(), None)
    dtype = parameter.dtype if parameter is not None else torch.float32
    device = parameter.device if parameter is not None else torch.device("cpu")
    require_certifiable_arithmetic(parameter_dtypes(model), device, "a measured Lipschitz bound")
    x = torch.zeros((1, *input_shape), dtype=dtype, device=device)
    training = model.training
    model.eval()
    bounds: list[LayerBound] = []
    try:
        with torch.no_grad():
            for name, layer in layers:
                bounds.append(_bound(name, layer, x))
                x = layer(x)
    finally:
        model.train(training)
    claimed = math.prod(b.measured if b.claimed is None else b.claimed for b in bounds)
    measured = math.prod(b.measured for b in bounds)
    if not (math.isfinite(claimed) and math.isfinite(measured)):
        raise InvalidArgumentError(
            f"claimed={claimed}, measured={measured}, but a Lipschitz bound must be finite"
        )
    return ModelBound(tuple(bounds), claimed, measured)
