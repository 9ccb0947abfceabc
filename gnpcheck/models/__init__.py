"""The seed's architectures (Small, Large, FC-3) with any constrained convolution and activation.

``build_model("small", conv="bcop", act="maxmin")`` returns an ``nn.Sequential`` chain of
named layers; see :mod:`gnpcheck.models.architectures` and :mod:`gnpcheck.models.components`.
"""

from gnpcheck.models.architectures import MODELS, ModelKind, build_model, fc3, large, small
from gnpcheck.models.components import (
    ACTIVATIONS,
    CONVS,
    INIT_SCALES,
    ActivationKind,
    ConvKind,
    LayerOptions,
    make_activation,
    make_conv,
    make_linear,
)

__all__ = [
    "ACTIVATIONS",
    "CONVS",
    "INIT_SCALES",
    "MODELS",
    "ActivationKind",
    "ConvKind",
    "LayerOptions",
    "ModelKind",
    "build_model",
    "fc3",
    "large",
    "make_activation",
    "make_conv",
    "make_linear",
    "small",
]
