"""PyTorch layers whose claims gnpcheck can check: BCOP convolutions and their companions.

- :class:`BCOPConv2d`, :class:`BCOPConv1d`: orthogonal convolutions (block convolution
  orthogonal parameterization), cross-checked against :mod:`gnpcheck.reference`.
- :class:`BjorckLinear`: an orthogonal (or semi-orthogonal) linear layer.
- :class:`MaxMin`, :class:`GroupSort`: gradient-norm-preserving activations.
- :class:`InvertibleDownsampling`, :class:`InvertibleDownsampling1d`: pixel unshuffle.
- :func:`export_model`: a network with these layers replaced by plain PyTorch modules,
  each replacement checked.

The baselines of the BCOP ablation live in :mod:`gnpcheck.nn.baselines`.
"""

from gnpcheck.nn.activations import GroupSort, MaxMin
from gnpcheck.nn.bcop import BCOPConv1d, BCOPConv2d
from gnpcheck.nn.downsampling import InvertibleDownsampling, InvertibleDownsampling1d
from gnpcheck.nn.linear import BjorckLinear
from gnpcheck.nn.model_export import export_model
from gnpcheck.nn.reference_bridge import ReferenceBCOP

__all__ = [
    "BCOPConv1d",
    "BCOPConv2d",
    "BjorckLinear",
    "GroupSort",
    "InvertibleDownsampling",
    "InvertibleDownsampling1d",
    "MaxMin",
    "ReferenceBCOP",
    "export_model",
]
