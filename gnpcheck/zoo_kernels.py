r"""Kernel targets for the property suite: the reference BCOP and deliberately broken kernels.

:data:`reference_bcop` is the suite's default target. The others are broken on purpose, each
in a way found in real code, so that the suite can show it fails on them with the measured
figure (``properties/meta``):

- :func:`bcop_reused_projector`: ``P_1`` used again where ``P_2`` belongs. The kernel is
  still a BCOP kernel, hence orthogonal: no property of the kernel alone can see this bug
  (it takes a parameter-coverage check of the layer that builds it).
- :func:`bcop_scaled`: ``H`` scaled by ``1 + 1e-6``: every singular value is ``1 + 1e-6``.
- :func:`bcop_perturbed_tap`: one entry of one tap moved by ``1e-6``.
- :func:`random_kernel`: a Gaussian kernel, not orthogonal at all.
- :func:`torch_layout_bcop`: a BCOP kernel returned in PyTorch's ``(n, n, K...)`` layout.
- :data:`causal_bcop`: correct kernels, applied with all ``K - 1`` padding before each
  axis instead of ``(K - 1) // 2`` (a wrong centering claim).
- :data:`half_lipschitz`: ``W / 2``, a contraction that makes no claim the suite checks.

Every factory has the signature of :class:`gnpcheck.targets.KernelFactory` and is a
deterministic function of its arguments.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from gnpcheck import __version__
from gnpcheck.reference import (
    BCOPFactors,
    bcop_kernel_1d,
    bcop_kernel_2d,
    circular_conv,
    projector,
    random_orthogonal,
    to_torch_layout,
)
from gnpcheck.targets import CONVENTION, GNP, ORTHOGONAL, KernelTarget

__all__ = [
    "PERTURBATION",
    "bcop_perturbed_tap",
    "bcop_reused_projector",
    "bcop_scaled",
    "causal_bcop",
    "causal_conv",
    "half_lipschitz",
    "random_kernel",
    "reference_bcop",
    "reference_bcop_kernel",
    "torch_layout_bcop",
]

#: The size of the defects planted in :func:`bcop_scaled` and :func:`bcop_perturbed_tap`:
#: far above float64 rounding (about 1e-13 for these sizes), far below what a plot would show.
PERTURBATION = 1e-6


def _random_factors(channels: int, kernel_size: int, spatial_ndim: int, seed: int) -> BCOPFactors:
    """Haar ``H`` and projectors of uniformly random ranks in ``[0, channels]``."""
    rng = np.random.default_rng(seed)
    h = random_orthogonal(channels, rng)
    count = (kernel_size - 1) * spatial_ndim
    matrices = tuple(
        projector(rng.standard_normal((channels, int(rank))))
        for rank in rng.integers(0, channels + 1, size=count)
    )
    if spatial_ndim == 1:
        return BCOPFactors(h, matrices)
    return BCOPFactors(h, matrices[: kernel_size - 1], matrices[kernel_size - 1 :])


def reference_bcop_kernel(
    *, channels: int, kernel_size: int, spatial_ndim: int, seed: int
) -> NDArray[np.float64]:
    """A random BCOP kernel built by the float64 reference (projector ranks drawn in 0..n)."""
    return _random_factors(channels, kernel_size, spatial_ndim, seed).kernel()


#: gnpcheck's own float64 reference BCOP: the default target of the property suite.
reference_bcop = KernelTarget(
    name="gnpcheck reference BCOP (float64)",
    version=__version__,
    factory=reference_bcop_kernel,
    claims=frozenset({ORTHOGONAL, GNP, CONVENTION}),
    convolve=circular_conv,
)


def bcop_reused_projector(
    *, channels: int, kernel_size: int, spatial_ndim: int, seed: int
) -> NDArray[np.float64]:
    """BCOP with ``P_1`` in place of ``P_2`` (for ``kernel_size >= 3``): still orthogonal."""
    factors = _random_factors(channels, kernel_size, spatial_ndim, seed)
    ps = factors.Ps[:1] + factors.Ps[:1] + factors.Ps[2:] if len(factors.Ps) >= 2 else factors.Ps
    if factors.Qs is None:
        return bcop_kernel_1d(factors.H, ps)
    return bcop_kernel_2d(factors.H, ps, factors.Qs)


def bcop_scaled(
    *, channels: int, kernel_size: int, spatial_ndim: int, seed: int
) -> NDArray[np.float64]:
    """BCOP with ``H`` scaled by ``1 + PERTURBATION`` (the kernel is linear in ``H``)."""
    kernel = reference_bcop_kernel(
        channels=channels, kernel_size=kernel_size, spatial_ndim=spatial_ndim, seed=seed
    )
    return kernel * (1.0 + PERTURBATION)


def bcop_perturbed_tap(
    *, channels: int, kernel_size: int, spatial_ndim: int, seed: int
) -> NDArray[np.float64]:
    """BCOP with entry ``[0, 0]`` of the last tap moved by ``PERTURBATION``."""
    kernel = reference_bcop_kernel(
        channels=channels, kernel_size=kernel_size, spatial_ndim=spatial_ndim, seed=seed
    )
    kernel[(-1,) * spatial_ndim + (0, 0)] += PERTURBATION
    return kernel


def random_kernel(
    *, channels: int, kernel_size: int, spatial_ndim: int, seed: int
) -> NDArray[np.float64]:
    """A Gaussian kernel with entries of variance ``1 / (channels * kernel_size**spatial_ndim)``."""
    rng = np.random.default_rng(seed)
    shape = (kernel_size,) * spatial_ndim + (channels, channels)
    kernel: NDArray[np.float64] = rng.standard_normal(shape)
    kernel *= 1.0 / math.sqrt(channels * kernel_size**spatial_ndim)
    return kernel


def torch_layout_bcop(
    *, channels: int, kernel_size: int, spatial_ndim: int, seed: int
) -> NDArray[np.float64]:
    """A BCOP kernel in PyTorch's ``(n_out, n_in, K...)`` layout instead of taps first."""
    return to_torch_layout(
        reference_bcop_kernel(
            channels=channels, kernel_size=kernel_size, spatial_ndim=spatial_ndim, seed=seed
        )
    )


def causal_conv(kernel: NDArray[np.float64], x: NDArray[np.float64]) -> NDArray[np.float64]:
    """Cross-correlation with circular padding ``K - 1`` before each axis and none after.

    :math:`y[o, t] = \\sum_a W_a[o, i]\\, x[i, (t + a - (K - 1)) \\bmod N]`: the same
    operator as :func:`gnpcheck.reference.circular_conv` up to a circular shift, which is
    zero only for ``K = 1``.
    """
    spatial_ndim = kernel.ndim - 2
    axes = tuple(range(-spatial_ndim, 0))
    out = np.zeros((*x.shape[: -spatial_ndim - 1], kernel.shape[-2], *x.shape[-spatial_ndim:]))
    letters = "xy"[:spatial_ndim]
    for tap in np.ndindex(*kernel.shape[:spatial_ndim]):
        shift = tuple(k - 1 - a for a, k in zip(tap, kernel.shape[:spatial_ndim], strict=True))
        shifted = np.roll(x, shift, axis=axes)
        out += np.einsum(f"oi,...i{letters}->...o{letters}", kernel[tap], shifted)
    return out


#: Reference BCOP kernels with an operator that pads causally: the centering claim is wrong.
causal_bcop = KernelTarget(
    name="reference BCOP with causal padding",
    version=__version__,
    factory=reference_bcop_kernel,
    claims=frozenset({ORTHOGONAL, GNP, CONVENTION}),
    convolve=causal_conv,
)


def _half_bcop(
    *, channels: int, kernel_size: int, spatial_ndim: int, seed: int
) -> NDArray[np.float64]:
    kernel = reference_bcop_kernel(
        channels=channels, kernel_size=kernel_size, spatial_ndim=spatial_ndim, seed=seed
    )
    return 0.5 * kernel


#: ``W / 2`` for a BCOP kernel ``W``: 1/2-Lipschitz, neither orthogonal nor GNP, and it
#: says so (no claims): the suite skips those properties, with the reason.
half_lipschitz = KernelTarget(
    name="half of a reference BCOP kernel",
    version=__version__,
    factory=_half_bcop,
    claims=frozenset(),
)
