r"""An orthogonal linear layer by Björck–Bowie orthonormalization (Anil, Lucas and Grosse, 2019).

The layer holds an unconstrained ``weight_tilde`` of shape ``(out, in)`` and applies
:math:`y = W x + b` with :math:`W` the Björck–Bowie orthonormalization of ``weight_tilde``
(of its transpose when ``out < in``): orthonormal columns when ``out >= in`` (an isometry,
1-Lipschitz), orthonormal rows when ``out <= in`` (:math:`W W^T = I`, gradient norm
preserving). :math:`W` converges to the orthogonal polar factor of ``weight_tilde``, the
closest (semi-)orthogonal matrix to it; ``orthogonalizer="polar"`` computes that limit
directly (:func:`gnpcheck.nn.orthogonalize.polar_orthonormalize`: an SVD in float64 and a
closed-form backward), exact to rounding and, at the seed's 1568 x 100 layer, several
times cheaper than 20 iterations forward and backward (docs/layers.rst).
"""

from __future__ import annotations

from typing import Any, Literal, get_args

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import NDArray
from torch import nn

from gnpcheck.errors import InvalidArgumentError, InvalidTypeError
from gnpcheck.nn._arguments import boolean, positive_int
from gnpcheck.nn.cache import KernelCache, differentiating
from gnpcheck.nn.orthogonalize import (
    DEFAULT_BJORCK_ITERS,
    bjorck_orthonormalize,
    polar_orthonormalize,
)
from gnpcheck.nn.precision import require_ieee_float32_products
from gnpcheck.reference import orthonormalize

__all__ = ["LINEAR_ORTHOGONALIZERS", "BjorckLinear", "LinearOrthogonalizer"]

LinearOrthogonalizer = Literal["bjorck", "polar"]
LINEAR_ORTHOGONALIZERS: tuple[str, ...] = get_args(LinearOrthogonalizer)


class BjorckLinear(nn.Module):
    r"""A (semi-)orthogonal ``nn.Linear``: the weight is Björck–Bowie of ``weight_tilde``.

    Args:
        in_features, out_features: sizes, as ``nn.Linear``.
        bias: learnable bias, initialized to 0 (default True).
        bjorck_iters: Björck iterations from ``weight_tilde`` scaled by a spectral-norm upper
            bound (default :data:`~gnpcheck.nn.orthogonalize.DEFAULT_BJORCK_ITERS`).
        orthogonalizer: ``"bjorck"`` (``bjorck_iters`` iterations) or ``"polar"`` (their limit,
            the polar factor, in float64, with a closed-form backward that has no second
            derivatives: ``create_graph=True`` through it raises
            :class:`~gnpcheck.errors.UnsupportedOperationError`; ``bjorck_iters`` must then
            be left out).
        device, dtype: of the parameters.
        generator: CPU generator for the initialization (default: the global one).

    Raises:
        InvalidArgumentError, InvalidTypeError: a size below 1, ``bjorck_iters < 1``, a
            non-bool ``bias``, an unknown ``orthogonalizer`` or iterations given with
            ``"polar"``; at forward, an input whose last axis, dtype or device differ.
        UnsupportedOperationError: at forward, ``"bjorck"`` in float32 while PyTorch's
            settings run float32 matrix products in reduced precision (docs/layers.rst,
            Note [float32 products]).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        *,
        bjorck_iters: int | None = None,
        orthogonalizer: LinearOrthogonalizer = "bjorck",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.in_features = positive_int(in_features, "in_features")
        self.out_features = positive_int(out_features, "out_features")
        if orthogonalizer not in LINEAR_ORTHOGONALIZERS:
            raise InvalidArgumentError(
                f"orthogonalizer={orthogonalizer!r}, but it must be one of "
                f"{', '.join(LINEAR_ORTHOGONALIZERS)}"
            )
        if orthogonalizer == "polar" and bjorck_iters is not None:
            raise InvalidArgumentError(
                f"bjorck_iters={bjorck_iters!r}, but orthogonalizer='polar' has no iterations"
            )
        self.orthogonalizer: LinearOrthogonalizer = orthogonalizer
        self.bjorck_iters: int | None = (
            None
            if orthogonalizer == "polar"
            else positive_int(
                DEFAULT_BJORCK_ITERS if bjorck_iters is None else bjorck_iters, "bjorck_iters"
            )
        )
        factory: dict[str, Any] = {"device": device, "dtype": dtype}
        self.weight_tilde = nn.Parameter(torch.empty(out_features, in_features, **factory))
        self.bias: nn.Parameter | None
        if boolean(bias, "bias"):
            self.bias = nn.Parameter(torch.empty(out_features, **factory))
        else:
            self.register_parameter("bias", None)
        self._cache = KernelCache()
        self.reset_parameters(generator)

    @property
    def _tall(self) -> bool:
        return self.out_features >= self.in_features

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """A Haar-random (semi-)orthogonal ``weight_tilde``; bias 0."""
        rows, cols = max(self.weight_tilde.shape), min(self.weight_tilde.shape)
        gaussian = torch.randn(rows, cols, dtype=torch.float64, generator=generator)
        q, t = torch.linalg.qr(gaussian)
        q = q * torch.where(torch.diagonal(t) < 0, -1.0, 1.0)
        with torch.no_grad():
            self.weight_tilde.copy_(q if self._tall else q.T)
            if self.bias is not None:
                self.bias.zero_()

    def _orthonormalize(self, tall: torch.Tensor) -> torch.Tensor:
        if self.bjorck_iters is None:
            return polar_orthonormalize(tall)
        return bjorck_orthonormalize(tall, self.bjorck_iters)

    def _build_weight(self) -> torch.Tensor:
        if self.bjorck_iters is not None:  # the polar factor is computed in float64
            require_ieee_float32_products(
                self.weight_tilde.dtype,
                self.weight_tilde.device,
                "BjorckLinear's weight",
                "use orthogonalizer='polar' (float64)",
            )
        if self._tall:
            return self._orthonormalize(self.weight_tilde)
        return self._orthonormalize(self.weight_tilde.mT).mT.contiguous()

    def _weight(self) -> torch.Tensor:
        key = (self.orthogonalizer, self.bjorck_iters)
        return self._cache.get((self.weight_tilde,), self._build_weight, key)

    @property
    def weight(self) -> torch.Tensor:
        """The (semi-)orthogonal ``(out, in)`` matrix applied now (a copy from the cache)."""
        weight = self._weight()
        return weight if differentiating((self.weight_tilde,)) else weight.clone()

    @property
    def claims(self) -> frozenset[str]:
        """``"lipschitz"``; ``"gnp"`` when ``out <= in``; ``"orthogonal"`` when ``out == in``."""
        if self.out_features == self.in_features:
            return frozenset({"lipschitz", "orthogonal", "gnp"})
        if self.out_features < self.in_features:
            return frozenset({"lipschitz", "gnp"})
        return frozenset({"lipschitz"})

    def lipschitz_bound(self) -> float:
        """1: every singular value of the weight is 1."""
        return 1.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x @ weight.T + bias`` over the last axis of ``x``."""
        if not isinstance(x, torch.Tensor):
            raise InvalidTypeError(f"input is a {type(x).__name__}, but it must be a torch.Tensor")
        if x.ndim < 1 or x.shape[-1] != self.in_features:
            raise InvalidArgumentError(
                f"input has shape {tuple(x.shape)}, but its last axis must be "
                f"in_features={self.in_features}"
            )
        if x.dtype != self.weight_tilde.dtype or x.device != self.weight_tilde.device:
            raise InvalidArgumentError(
                f"input has dtype {x.dtype} on {x.device}, but the layer's parameters are "
                f"{self.weight_tilde.dtype} on {self.weight_tilde.device}; convert one with .to()"
            )
        return F.linear(x, self._weight(), self.bias)

    def export(self) -> nn.Linear:
        """A plain ``nn.Linear`` holding copies of the current weight and bias."""
        weight = self.weight.detach()
        linear = nn.Linear(
            self.in_features,
            self.out_features,
            bias=self.bias is not None,
            device=weight.device,
            dtype=weight.dtype,
        )
        with torch.no_grad():
            linear.weight.copy_(weight)
            if self.bias is not None:
                linear.bias.copy_(self.bias.detach())
        return linear

    def to_reference(self) -> NDArray[np.float64]:
        """The float64 weight the parameters define: the reference's Björck to convergence."""
        tilde = self.weight_tilde.detach().double().cpu().numpy()
        if self._tall:
            return orthonormalize(tilde, method="bjorck")
        return orthonormalize(tilde.T, method="bjorck").T

    def orthogonality_defect(self) -> float:
        r""":math:`\max |\sigma - 1|` over the ``min(in, out)`` singular values of the current
        weight (float64 SVD of its copy, so the layer's rounding counts)."""
        weight = self.weight.detach().double().cpu().numpy()
        return float(np.max(np.abs(np.linalg.svd(weight, compute_uv=False) - 1.0)))

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias is not None}, orthogonalizer={self.orthogonalizer!r}, "
            f"bjorck_iters={self.bjorck_iters}"
        )
