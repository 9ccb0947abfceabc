"""The hand-off from a PyTorch layer to the float64 reference: the same kernel, built there.

:func:`reference_bcop` takes a BCOP layer's unconstrained parameters (as float64 NumPy
arrays), orthogonalizes them with :mod:`gnpcheck.reference` (QR, or Björck run to
convergence: the polar factor), and builds the kernel with
:func:`gnpcheck.reference.bcop_kernel_1d` / :func:`~gnpcheck.reference.bcop_kernel_2d`.
What the layer computes in float32 with a fixed number of iterations can then be compared
with what its parameters define.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from gnpcheck.errors import InvalidArgumentError
from gnpcheck.reference import BCOPFactors, orthonormalize, projector, to_torch_layout
from gnpcheck.reference.orthogonalize import OrthonormalizeMethod

__all__ = ["ReferenceBCOP", "reference_bcop", "reference_factors"]


@dataclass(frozen=True)
class ReferenceBCOP:
    """A BCOP layer as the float64 reference sees it.

    Attributes:
        factors: ``H`` and the projectors, ``n x n`` with ``n = max(in, out)``.
        out_channels: output channels kept (rows of the kernel).
        in_channels: input channels of the kernel, ``in * stride**spatial_ndim``.
        stride: the pixel-unshuffle factor applied before the convolution.
        padding: ``"circular"`` or ``"same"`` (zeros).
    """

    factors: BCOPFactors
    out_channels: int
    in_channels: int
    stride: int
    padding: str

    def kernel(self) -> NDArray[np.float64]:
        """The taps-first kernel ``(K..., out_channels, in_channels)``."""
        return self.factors.kernel()[..., : self.out_channels, : self.in_channels]

    def torch_weight(self) -> NDArray[np.float64]:
        """The same kernel in PyTorch layout ``(out_channels, in_channels, K...)``."""
        return to_torch_layout(self.kernel())


def reference_factors(
    h_tilde: NDArray[np.float64], r_tilde: NDArray[np.float64], spatial_ndim: int, method: str
) -> BCOPFactors:
    """``H = orthonormalize(h_tilde)`` and ``P_i = projector(r_tilde[i])`` by ``method``.

    ``r_tilde`` has shape ``(spatial_ndim * (K - 1), n, k)``; in 2-D its first ``K - 1``
    entries give the row projectors ``Ps``, the rest the column projectors ``Qs``.

    Raises:
        InvalidArgumentError: ``method`` not ``"qr"`` or ``"bjorck"``, ``spatial_ndim`` not
            1 or 2, or shapes that do not fit.
    """
    if method not in ("qr", "bjorck"):
        raise InvalidArgumentError(f"method={method!r}, but it must be 'qr' or 'bjorck'")
    if spatial_ndim not in (1, 2) or r_tilde.ndim != 3 or len(r_tilde) % spatial_ndim:
        raise InvalidArgumentError(
            f"r_tilde has shape {r_tilde.shape} and spatial_ndim={spatial_ndim}, but it must "
            "be (spatial_ndim * (K - 1), n, k) with spatial_ndim 1 or 2"
        )
    chosen: OrthonormalizeMethod = "qr" if method == "qr" else "bjorck"
    h = orthonormalize(h_tilde, method=chosen)
    ps = tuple(projector(r, method=chosen) for r in r_tilde)
    if spatial_ndim == 1:
        return BCOPFactors(h, ps)
    half = len(ps) // 2
    return BCOPFactors(h, ps[:half], ps[half:])


def reference_bcop(
    h_tilde: NDArray[np.float64],
    r_tilde: NDArray[np.float64],
    *,
    spatial_ndim: int,
    method: str,
    out_channels: int,
    in_channels: int,
    stride: int,
    padding: str,
) -> ReferenceBCOP:
    """The :class:`ReferenceBCOP` of a layer with these parameters and this configuration."""
    factors = reference_factors(h_tilde, r_tilde, spatial_ndim, method)
    return ReferenceBCOP(factors, out_channels, in_channels, stride, padding)
