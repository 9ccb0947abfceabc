"""The baselines of the BCOP ablation, behind the :class:`~gnpcheck.nn.base.ConstrainedConv`
interface: operator spectral normalization (:class:`OSSNConv2d`), reshaped kernel
orthogonalization (:class:`RKOConv2d`) and singular value clipping and masking
(:class:`SVCMConv2d`). Each claims ``"lipschitz"`` only (docs/baselines.rst).
"""

from gnpcheck.nn.baselines.ossn import OSSNConv2d
from gnpcheck.nn.baselines.rko import RKOConv2d, bjorck_semi_orthogonal
from gnpcheck.nn.baselines.svcm import (
    SVCMConv2d,
    clip_operator,
    kernel_symbol,
    operator_norm,
    restrict_support,
)

__all__ = [
    "OSSNConv2d",
    "RKOConv2d",
    "SVCMConv2d",
    "bjorck_semi_orthogonal",
    "clip_operator",
    "kernel_symbol",
    "operator_norm",
    "restrict_support",
]
