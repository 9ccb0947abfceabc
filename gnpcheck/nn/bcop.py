r"""BCOP convolutions in PyTorch: :class:`BCOPConv2d` and :class:`BCOPConv1d`.

Li, Haque, Anil, Lucas, Grosse and Jacobsen, "Preventing Gradient Attenuation in Lipschitz
Constrained Convolutional Networks" (NeurIPS 2019). The layer holds unconstrained
parameters, orthonormalizes them on every differentiable forward pass, and builds the
kernel (docs/layers.rst):

- ``h_tilde`` (``n x n``) -> orthogonal :math:`H`;
- ``r_tilde`` (``d (K - 1) x n x floor(n/2)``) -> symmetric projectors
  :math:`P_i = R_i R_i^T` of rank ``floor(n/2)`` (the paper's :math:`\mathcal P(2m, m)`);
- :math:`W = H \square [P_1, I - P_1] \square [Q_1; I - Q_1] \square \cdots`
  (:func:`gnpcheck.nn.kernel.bcop_kernel`, the reference's factor order and taps).

``n = max(in_channels * stride**d, out_channels)``: the kernel is built square and sliced
(rows of :math:`H`, or input columns of :math:`W`), which keeps it semi-orthogonal. A
stride ``s`` is a pixel unshuffle by ``s`` (orthogonal) followed by a stride-1 convolution
with ``kernel_size / s`` taps per axis on ``s^d in_channels`` channels. The convolution is a
cross-correlation with padding ``c = (K - 1) // 2`` before and ``K - 1 - c`` after each
axis: circular (the operator is orthogonal) or zeros (``"same"``: 1-Lipschitz only).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from gnpcheck.errors import InvalidArgumentError, InvalidTypeError
from gnpcheck.nn._arguments import (
    Padding,
    boolean,
    check_input,
    equal_sizes,
    must_be_one,
    padding_mode,
    padding_widths,
    positive_int,
)
from gnpcheck.nn.base import Claim, ConstrainedConv
from gnpcheck.nn.cache import KernelCache, differentiating
from gnpcheck.nn.circular import unshuffle_circular_pad
from gnpcheck.nn.downsampling import unshuffle
from gnpcheck.nn.export import plain_conv
from gnpcheck.nn.kernel import bcop_kernel
from gnpcheck.nn.orthogonalize import (
    DEFAULT_BJORCK_ITERS,
    ORTHOGONALIZERS,
    Orthogonalizer,
    orthonormalize,
    projectors,
)
from gnpcheck.nn.precision import require_ieee_float32_products
from gnpcheck.nn.qr_kernel import qr_bcop_kernel
from gnpcheck.nn.reference_bridge import ReferenceBCOP, reference_bcop
from gnpcheck.reference import from_torch_layout
from gnpcheck.reference import orthogonality_defect as reference_defect
from gnpcheck.reference.defect import DefectMethod

__all__ = ["BCOPConv1d", "BCOPConv2d"]


def _random_orthonormal(shape: tuple[int, ...], generator: torch.Generator | None) -> torch.Tensor:
    """Orthonormal columns from the QR of a Gaussian (signs fixed: Haar), float64 on the CPU."""
    gaussian = torch.randn(shape, dtype=torch.float64, generator=generator)
    q, t = torch.linalg.qr(gaussian)
    signs: torch.Tensor = torch.where(torch.diagonal(t, dim1=-2, dim2=-1) < 0, -1.0, 1.0)
    orthonormal: torch.Tensor = q * signs.unsqueeze(-2)
    return orthonormal


class _BCOPConvNd(ConstrainedConv):
    spatial_ndim: ClassVar[int]

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, ...],
        stride: int | tuple[int, ...] = 1,
        padding: Padding = "circular",
        dilation: int | tuple[int, ...] = 1,
        groups: int = 1,
        bias: bool = True,
        *,
        orthogonalizer: Orthogonalizer = "qr",
        bjorck_iters: int | None = None,
        build_dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        d = self.spatial_ndim
        self.in_channels = positive_int(in_channels, "in_channels")
        self.out_channels = positive_int(out_channels, "out_channels")
        size = equal_sizes(kernel_size, "kernel_size", d)
        self.stride = equal_sizes(stride, "stride", d)
        if size % self.stride:
            raise InvalidArgumentError(
                f"kernel_size={kernel_size!r}, but with stride={self.stride} it must be a "
                "multiple of the stride (after the pixel unshuffle the kernel has "
                "kernel_size / stride taps per axis)"
            )
        self.kernel_size: tuple[int, ...] = (size,) * d
        self.inner_kernel_size: tuple[int, ...] = (size // self.stride,) * d
        self.padding: Padding = padding_mode(padding)
        must_be_one(dilation, "dilation", "a dilated BCOP kernel is not implemented")
        must_be_one(
            groups, "groups", "a grouped convolution is block diagonal; use one layer per group"
        )
        boolean(bias, "bias")
        if orthogonalizer not in ORTHOGONALIZERS:
            raise InvalidArgumentError(
                f"orthogonalizer={orthogonalizer!r}, but it must be 'qr' or 'bjorck'"
            )
        self.orthogonalizer: Orthogonalizer = orthogonalizer
        self.bjorck_iters = self._checked_iterations(bjorck_iters)
        if build_dtype is not None and (
            not isinstance(build_dtype, torch.dtype) or not build_dtype.is_floating_point
        ):
            raise InvalidTypeError(
                f"build_dtype={build_dtype!r}, but it must be None or a floating torch.dtype"
            )
        self.build_dtype = build_dtype
        self.inner_in_channels = self.in_channels * self.stride**d
        self.channels = max(self.inner_in_channels, self.out_channels)
        n, taps = self.channels, self.inner_kernel_size[0]
        factory: dict[str, Any] = {"device": device, "dtype": dtype}
        self.h_tilde = nn.Parameter(torch.empty(n, n, **factory))
        self.r_tilde = nn.Parameter(torch.empty(d * (taps - 1), n, n // 2, **factory))
        self.bias: nn.Parameter | None
        if bias:
            self.bias = nn.Parameter(torch.empty(self.out_channels, **factory))
        else:
            self.register_parameter("bias", None)
        self._cache = KernelCache()
        self.reset_parameters(generator)

    def _checked_iterations(self, bjorck_iters: object) -> int:
        if self.orthogonalizer == "qr":
            if bjorck_iters is not None:
                raise InvalidArgumentError(
                    f"bjorck_iters={bjorck_iters!r}, but orthogonalizer='qr' has no iterations; "
                    "pass orthogonalizer='bjorck' to use it"
                )
            return 0
        if bjorck_iters is None:
            return DEFAULT_BJORCK_ITERS
        return positive_int(bjorck_iters, "bjorck_iters")

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Haar-random ``h_tilde`` and orthonormal ``r_tilde`` (a random BCOP kernel), bias 0.

        ``generator`` (a CPU ``torch.Generator``) makes the draw reproducible without
        touching the global random state.
        """
        with torch.no_grad():
            self.h_tilde.copy_(_random_orthonormal(tuple(self.h_tilde.shape), generator))
            if self.r_tilde.numel():
                self.r_tilde.copy_(_random_orthonormal(tuple(self.r_tilde.shape), generator))
            if self.bias is not None:
                self.bias.zero_()

    def factors(self, dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
        """The orthogonal ``H`` (``n x n``) and the projectors ``R_i R_i^T`` (``d (K-1) x n x n``),
        differentiable, computed in float64 whatever the parameters' dtype (Note [error budget])
        and returned in ``dtype``; their backward runs in ``dtype``.

        In 2-D the projectors are ``P_1..P_{K-1}`` (row factors) then ``Q_1..Q_{K-1}``.
        """
        method, iters = self.orthogonalizer, self.bjorck_iters
        h = orthonormalize(self.h_tilde, method, iters, dtype=dtype)
        return h, projectors(self.r_tilde, method, iters, dtype=dtype)

    def _build_kernel(self) -> torch.Tensor:
        build_dtype = self.build_dtype or self.h_tilde.dtype
        require_ieee_float32_products(
            build_dtype,
            self.h_tilde.device,
            f"{type(self).__name__}'s kernel",
            "pass build_dtype=torch.float64 to the layer",
        )
        if self.orthogonalizer == "qr":  # one autograd node (Note [kernel build])
            return qr_bcop_kernel(
                self.h_tilde,
                self.r_tilde,
                self.spatial_ndim,
                self.out_channels,
                self.inner_in_channels,
                build_dtype,
            )
        h, p = self.factors(build_dtype)
        narrow = self.inner_in_channels if self.inner_in_channels < self.channels else None
        kernel = bcop_kernel(h[: self.out_channels], p, self.spatial_ndim, narrow)
        return kernel.to(self.h_tilde.dtype)

    def _kernel(self) -> torch.Tensor:
        key = (self.orthogonalizer, self.bjorck_iters, self.build_dtype)
        return self._cache.get((self.h_tilde, self.r_tilde), self._build_kernel, key)

    @property
    def weight(self) -> torch.Tensor:
        """The kernel applied after the unshuffle: ``(out, in * stride**d, K...)`` (a copy when
        served from the evaluation cache, so that editing it cannot corrupt the cache)."""
        kernel = self._kernel()
        return kernel if differentiating((self.h_tilde, self.r_tilde)) else kernel.clone()

    @property
    def claims(self) -> frozenset[Claim]:
        """What the layer claims, exactly (docs/layers.rst, Note [claims]).

        ``"lipschitz"`` always. With circular padding (or a one-tap kernel, which pads
        nothing): ``"orthogonal"`` and ``"gnp"`` when ``in * stride**d == out``; ``"gnp"`` alone
        when ``in * stride**d > out`` (orthonormal rows: ``J J^T = I``); neither when
        ``in * stride**d < out`` (orthonormal columns: ``J^T`` has a null space).
        """
        if self.padding == "same" and self.inner_kernel_size[0] > 1:
            return frozenset({"lipschitz"})
        if self.inner_in_channels == self.out_channels:
            return frozenset({"lipschitz", "orthogonal", "gnp"})
        if self.inner_in_channels > self.out_channels:
            return frozenset({"lipschitz", "gnp"})
        return frozenset({"lipschitz"})

    def lipschitz_bound(self) -> float:
        """1, for every configuration (Note [claims])."""
        return 1.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Unshuffle by ``stride``, pad, convolve with :attr:`weight`, add the bias.

        Raises:
            InvalidArgumentError: wrong shape, channels, dtype or device; a spatial size the
                stride does not divide; with circular padding, a side smaller than the kernel
                after the stride.
            UnsupportedOperationError: a float32 kernel to build while PyTorch's settings run
                float32 matrix products in reduced precision (docs/layers.rst, Note [float32
                products]).
        """
        d, size = self.spatial_ndim, self.inner_kernel_size[0]
        check_input(
            x,
            channels=self.in_channels,
            spatial_ndim=d,
            dtype=self.h_tilde.dtype,
            device=self.h_tilde.device,
            stride=self.stride,
            min_size=size if self.padding == "circular" else 1,
        )
        weight = self._kernel()
        conv = F.conv1d if d == 1 else F.conv2d
        widths = padding_widths(size, d)
        if self.padding == "circular":
            return conv(unshuffle_circular_pad(x, self.stride, widths), weight, self.bias)
        z = unshuffle(x, self.stride, d)
        if size % 2:
            return conv(z, weight, self.bias, padding=(size - 1) // 2)
        return conv(F.pad(z, widths), weight, self.bias)

    def export(self) -> nn.Module:
        """A plain ``nn.Conv1d`` / ``nn.Conv2d`` with the current kernel (strided when
        ``stride > 1``; behind a padding module when the kernel size is even), see
        :mod:`gnpcheck.nn.export`."""
        return plain_conv(
            self.weight.detach(),
            None if self.bias is None else self.bias.detach(),
            stride=self.stride,
            padding=self.padding,
            spatial_ndim=self.spatial_ndim,
        )

    def to_reference(self) -> ReferenceBCOP:
        """The float64 reference of this layer: the same parameters, orthogonalized and built by
        :mod:`gnpcheck.reference` (QR, or Björck run to convergence)."""
        return reference_bcop(
            self.h_tilde.detach().double().cpu().numpy(),
            self.r_tilde.detach().double().cpu().numpy(),
            spatial_ndim=self.spatial_ndim,
            method=self.orthogonalizer,
            out_channels=self.out_channels,
            in_channels=self.inner_in_channels,
            stride=self.stride,
            padding=self.padding,
        )

    def orthogonality_defect(
        self, input_shape: int | tuple[int, ...], method: DefectMethod = "exact"
    ) -> float:
        r""":math:`\max |\sigma - 1|` of the circular convolution with the current kernel.

        Measured by :func:`gnpcheck.reference.orthogonality_defect` on the float64 copy of
        :attr:`weight` (in the layer's dtype, so float32 rounding counts), over the
        ``min(out, in * stride**d)`` singular values per frequency. ``input_shape`` is the
        layer's spatial input size; the kernel acts on it divided by ``stride``. With zero
        padding this is still the defect of the kernel's circular convolution (the error
        budget of the orthogonalization), not of the zero-padded operator.

        Raises:
            InvalidArgumentError: a size the stride does not divide, or smaller than the
                kernel after the stride; see the reference.
        """
        sizes = (input_shape,) * self.spatial_ndim if isinstance(input_shape, int) else input_shape
        spatial = tuple(positive_int(side, "input_shape") for side in sizes)
        if len(spatial) != self.spatial_ndim or any(side % self.stride for side in spatial):
            raise InvalidArgumentError(
                f"input_shape={input_shape!r}, but it must be {self.spatial_ndim} sizes that "
                f"stride={self.stride} divides"
            )
        kernel = from_torch_layout(self.weight.detach().double().cpu().numpy())
        inner = tuple(side // self.stride for side in spatial)
        return reference_defect(np.asarray(kernel), inner, method=method)

    def extra_repr(self) -> str:
        text = (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding!r}, bias={self.bias is not None}, "
            f"orthogonalizer={self.orthogonalizer!r}, build_dtype={self.build_dtype}"
        )
        return text + (
            f", bjorck_iters={self.bjorck_iters}" if self.orthogonalizer == "bjorck" else ""
        )


class BCOPConv2d(_BCOPConvNd):
    r"""An orthogonal 2-D convolution by block convolution orthogonal parameterization.

    Args:
        in_channels, out_channels: channel counts (any; ``in * stride**2 != out`` gives a
            semi-orthogonal kernel).
        kernel_size: ``K`` (int, or two equal ints), any size ``>= 1``; a multiple of
            ``stride``.
        stride: pixel-unshuffle factor before a stride-1 convolution with ``K / stride`` taps
            per axis (default 1); it must divide the input's height and width.
        padding: ``"circular"`` (default; orthogonal operator) or ``"same"`` (zeros;
            1-Lipschitz). ``c = (K - 1) // 2`` before, ``K - 1 - c`` after each axis.
        dilation, groups: accepted for ``nn.Conv2d`` compatibility; only 1.
        bias: learnable bias, initialized to 0 (default True).
        orthogonalizer: ``"qr"`` (default: float64 Householder QR, closed-form backward) or
            ``"bjorck"`` (Björck–Bowie, a fixed number of iterations).
        bjorck_iters: Björck iterations (``"bjorck"`` only; default
            :data:`~gnpcheck.nn.orthogonalize.DEFAULT_BJORCK_ITERS`).
        build_dtype: the dtype of the kernel's block convolutions (``H`` and the projectors
            are always computed in float64, then rounded to it); the kernel is rounded to the
            parameters' dtype at the end. ``None`` (default): the parameters' dtype;
            ``torch.float64``: a float32 kernel is the exact kernel rounded once, at a float64
            cost (docs/layers.rst, Note [error budget]).
        device, dtype: of the parameters, as in ``nn.Conv2d``.
        generator: CPU generator for the initialization (default: the global one).

    Raises:
        InvalidArgumentError, InvalidTypeError: any argument outside what is stated above,
            naming it (``padding=1``, ``padding="reflect"``, ``groups=2``, ``kernel_size=0``,
            ``kernel_size=(3, 5)``, a kernel size that is not a multiple of the stride, ...).

    Examples:
        >>> import torch
        >>> layer = BCOPConv2d(8, 8, 3, generator=torch.Generator().manual_seed(0))
        >>> sorted(layer.claims)
        ['gnp', 'lipschitz', 'orthogonal']
        >>> layer(torch.randn(2, 8, 16, 16)).shape
        torch.Size([2, 8, 16, 16])
    """

    spatial_ndim = 2


class BCOPConv1d(_BCOPConvNd):
    r"""An orthogonal 1-D convolution by BCOP: :math:`W = H \square [P_1, I - P_1] \square \cdots`.

    Arguments as :class:`BCOPConv2d`, with one spatial axis: ``kernel_size`` ``K`` gives
    ``K / stride - 1`` projectors, ``stride`` unshuffles ``(C, L) -> (C stride, L / stride)``.

    Examples:
        >>> import torch
        >>> layer = BCOPConv1d(4, 6, 4, stride=2, generator=torch.Generator().manual_seed(0))
        >>> sorted(layer.claims), tuple(layer.weight.shape)
        (['gnp', 'lipschitz'], (6, 8, 2))
    """

    spatial_ndim = 1
