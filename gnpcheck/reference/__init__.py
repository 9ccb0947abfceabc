"""The float64 reference of block convolution orthogonal parameterization (BCOP).

NumPy and SciPy only (SymPy in :mod:`gnpcheck.reference.symbolic`): slow, obvious, the ground
truth that the PyTorch layers and the audit are checked against. Never imports torch.
"""

from gnpcheck.reference.bcop import (
    BCOPFactors,
    bcop_kernel_1d,
    bcop_kernel_2d,
    column_factor,
    random_bcop_1d,
    random_bcop_2d,
    row_factor,
)
from gnpcheck.reference.defect import gram_defect_bound, orthogonality_defect
from gnpcheck.reference.embedding import embed_doubled
from gnpcheck.reference.invariants import (
    component_index,
    determinant_polynomial,
    kernel_component_index,
)
from gnpcheck.reference.operator import (
    centering,
    circular_conv,
    circular_conv_transpose,
    dense_operator,
)
from gnpcheck.reference.orthogonalize import (
    bjorck,
    bjorck_coefficients,
    is_symmetric_projector,
    orthogonality_gap,
    orthonormalize,
    projector,
    projector_defect,
    projector_rank,
    random_orthogonal,
)
from gnpcheck.reference.polynomial import (
    block_conv,
    from_torch_layout,
    identity_kernel,
    to_torch_layout,
)
from gnpcheck.reference.spectrum import autocorrelation, circulant_spectrum, circulant_symbol

__all__ = [
    "BCOPFactors",
    "autocorrelation",
    "bcop_kernel_1d",
    "bcop_kernel_2d",
    "bjorck",
    "bjorck_coefficients",
    "block_conv",
    "centering",
    "circulant_spectrum",
    "circulant_symbol",
    "circular_conv",
    "circular_conv_transpose",
    "column_factor",
    "component_index",
    "dense_operator",
    "determinant_polynomial",
    "embed_doubled",
    "from_torch_layout",
    "gram_defect_bound",
    "identity_kernel",
    "is_symmetric_projector",
    "kernel_component_index",
    "orthogonality_defect",
    "orthogonality_gap",
    "orthonormalize",
    "projector",
    "projector_defect",
    "projector_rank",
    "random_bcop_1d",
    "random_bcop_2d",
    "random_orthogonal",
    "row_factor",
    "to_torch_layout",
]
