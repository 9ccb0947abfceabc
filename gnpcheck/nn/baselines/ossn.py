r"""One-sided spectral normalization of the convolution operator (OSSN).

The layer applies :math:`W = V / \max(1, \hat\sigma)`, where :math:`V` is the unconstrained
kernel (``raw_weight``) and :math:`\hat\sigma = \|A_V u\|` estimates the largest singular
value of the convolution *operator* :math:`A_V` (not of the reshaped kernel matrix) by power
iteration on :math:`A_V^T A_V`: ``u <- A^T A u / ||A^T A u||``, with ``A`` the layer's
convolution (conv) and ``A^T`` its adjoint (conv transpose) on a persistent input-sized
vector ``u`` (docs/baselines.rst, Note [OSSN]). Spectral normalization: Miyato et al.
(ICLR 2018); on the operator: Gouk et al. (2018); one-sided, as in the ablation of Li et al.
(NeurIPS 2019).

Power iteration gives :math:`\hat\sigma \le \sigma_{\max}(A_V)`, a *lower* estimate; the
operator the layer applies has norm :math:`\sigma_{\max}(A_V) / \max(1, \hat\sigma) \ge 1`
when :math:`\sigma_{\max}(A_V) > 1`. The claimed bound 1 is only as good as the convergence.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from gnpcheck.nn._arguments import Padding, positive_int
from gnpcheck.nn.baselines._conv_common import InputSizedConv2d

__all__ = ["OSSNConv2d"]

#: Guards the normalization of u against a zero kernel (then u, and the estimate, stay 0).
_NORM_FLOOR = 1e-30


class OSSNConv2d(InputSizedConv2d):
    r"""A 2-D convolution divided by a power-iteration estimate of its operator norm.

    Args:
        in_channels, out_channels: channel counts (any, ``in != out`` allowed).
        kernel_size: int or pair; a multiple of ``stride``.
        stride: pixel-unshuffle factor before a stride-1 convolution (default 1; an int or
            a pair of equal ints).
        padding: ``"circular"`` (default) or ``"same"`` (zeros); the power iteration runs on
            the operator with that padding.
        bias: whether to add a learnable bias (default True).
        power_iterations: iterations per training forward pass, advancing the stored ``u``
            (default 2).
        eval_power_iterations: iterations run in evaluation mode from the stored ``u`` on a
            copy that is not stored, each time the kernel is built (default 10): evaluation
            stays a pure function of the ``state_dict``.
        input_size: the input's spatial size ``(H, W)``; ``u`` lives on the
            ``(H / stride, W / stride)`` grid. ``None`` (default): the first forward's size.
            The estimate, and the claim, hold for this input size only.

    Raises:
        InvalidArgumentError, InvalidTypeError: an argument out of range or of the wrong type.
    """

    power_vector: torch.Tensor

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: Padding = "circular",
        bias: bool = True,
        power_iterations: int = 2,
        eval_power_iterations: int = 10,
        input_size: int | tuple[int, int] | None = None,
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, bias, input_size)
        self.power_iterations = positive_int(power_iterations, "power_iterations")
        self.eval_power_iterations = positive_int(eval_power_iterations, "eval_power_iterations")
        self.raw_weight = self._new_kernel()
        self.register_buffer("power_vector", torch.empty(0))
        if self.input_size is not None:
            self._init_power_vector()

    def _init_power_vector(self) -> None:
        grid = self._inner_grid()
        u = torch.randn(
            1,
            self.inner_in_channels,
            *grid,
            dtype=self.raw_weight.dtype,
            device=self.raw_weight.device,
        )
        self.power_vector = u / u.norm()

    @torch.no_grad()
    def _iterate(self, u: torch.Tensor, iterations: int) -> torch.Tensor:
        """``iterations`` normalized steps ``u <- A^T A u`` with the current (detached) kernel."""
        weight = self.raw_weight.detach()
        for _ in range(iterations):
            u = self._linear_adjoint(self._linear(u, weight), weight)
            u = u / u.norm().clamp_min(_NORM_FLOOR)
        return u

    @torch.no_grad()
    def power_iteration_(self, iterations: int) -> float:
        r"""Run ``iterations`` steps of power iteration on :math:`A_V^T A_V`, updating ``u``.

        Returns:
            The new estimate :math:`\hat\sigma = \|A_V u\| \le \sigma_{\max}(A_V)` (a lower
            bound that increases to :math:`\sigma_{\max}` as the iteration converges).

        Raises:
            InvalidArgumentError: ``iterations < 1``, or no input size known yet.
        """
        positive_int(iterations, "iterations")
        self._inner_grid()
        self.power_vector.copy_(self._iterate(self.power_vector, iterations))
        return float(self._linear(self.power_vector, self.raw_weight.detach()).norm())

    @property
    def weight(self) -> torch.Tensor:
        r""":math:`V / \max(1, \|A_V u\|)`, differentiable in ``V``: ``u`` the stored vector in
        training mode, refined by ``eval_power_iterations`` (not stored) in evaluation mode."""
        return self._normalized(refined=not self.training)

    def _evaluation_weight(self) -> torch.Tensor:
        return self._normalized(refined=True)

    def _normalized(self, refined: bool) -> torch.Tensor:
        """``weight`` with ``u`` refined by ``eval_power_iterations`` or as stored."""
        self._inner_grid()
        u = self.power_vector.clone()
        if refined:
            u = self._iterate(u, self.eval_power_iterations)
        sigma: torch.Tensor = self._linear(u, self.raw_weight).norm()
        return self.raw_weight / sigma.clamp_min(1.0)

    def lipschitz_bound(self) -> float:
        r"""The claimed bound 1, valid only as far as the power iteration has converged.

        Power iteration estimates :math:`\sigma_{\max}(A_V)` from below, so the layer's true
        operator norm :math:`\sigma_{\max}(A_V) / \max(1, \hat\sigma)` can exceed 1 by the
        relative convergence error of :math:`\hat\sigma`. It is a claim to verify (the
        circulant spectrum of ``weight`` at ``input_size``), not a certificate; run
        :meth:`power_iteration_` to tighten it.
        """
        return 1.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input(x, self.raw_weight)
        if self._tie_input_size(x):
            self._init_power_vector()
        if self.training:
            self.power_iteration_(self.power_iterations)
        return self._apply_conv(x, self.weight)

    def _load_from_state_dict(
        self,
        state_dict: Mapping[str, Any],
        prefix: str,
        local_metadata: dict[str, Any],
        strict: bool,
        missing_keys: list[str],
        unexpected_keys: list[str],
        error_msgs: list[str],
    ) -> None:
        """Give a layer not yet tied to an input size the incoming ``power_vector`` shape."""
        incoming = state_dict.get(prefix + "power_vector")
        if isinstance(incoming, torch.Tensor) and self.power_vector.numel() == 0:
            self.power_vector = torch.empty(
                incoming.shape, dtype=self.power_vector.dtype, device=self.power_vector.device
            )
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, power_iterations={self.power_iterations}, "
            f"eval_power_iterations={self.eval_power_iterations}"
        )
