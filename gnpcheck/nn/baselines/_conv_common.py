r"""What the three baseline convolutions share: arguments, padding, striding, export.

Every baseline computes ``conv(unshuffle_s(x))``: a pixel unshuffle by the stride ``s``
(an orthogonal permutation, ``(C, H, W) -> (C s^2, H/s, W/s)``) followed by a stride-1
convolution with ``kernel_size // s`` taps per axis on the downsampled grid, as in the
ablation of Li et al. (NeurIPS 2019). The permutation changes no norm, so the layer's
Lipschitz constant is that of the inner convolution on the ``(H/s, W/s)`` grid.

Padding (docs/baselines.rst, Note [baseline padding]): ``c = (K - 1) // 2`` before and
``K - 1 - c`` after each axis, circular (``"circular"``) or zeros (``"same"``), the split of
PyTorch's ``padding="same"``. The adjoint convolves the flipped, transposed kernel with the
split reversed (``K - 1 - c`` before, ``c`` after).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from gnpcheck.errors import InvalidArgumentError
from gnpcheck.nn._arguments import (
    Padding,
    boolean,
    check_input,
    equal_sizes,
    padding_mode,
    padding_widths,
    positive_int,
)
from gnpcheck.nn.base import Claim, ConstrainedConv
from gnpcheck.nn.circular import unshuffle_circular_pad

__all__ = ["BaselineConv2d", "InputSizedConv2d", "as_input_size"]


def _pair(value: object, name: str) -> tuple[int, int]:
    if isinstance(value, tuple | list):
        if len(value) != 2:
            raise InvalidArgumentError(f"{name}={value!r}, but it must be an int or 2 ints")
        return positive_int(value[0], name), positive_int(value[1], name)
    size = positive_int(value, name)
    return size, size


def as_input_size(
    value: object, stride: int, inner_kernel: tuple[int, int], name: str = "input_size"
) -> tuple[int, int]:
    """Validate a spatial input size ``(H, W)``: divisible by ``stride``, grid >= kernel."""
    size = _pair(value, name)
    for axis, (n, k) in enumerate(zip(size, inner_kernel, strict=True)):
        if n % stride != 0:
            raise InvalidArgumentError(
                f"{name}={size}, but axis {axis} must be divisible by stride={stride}"
            )
        if n // stride < k:
            raise InvalidArgumentError(
                f"{name}={size}, but axis {axis} gives a grid of {n // stride} after the "
                f"stride-{stride} unshuffle, smaller than the kernel ({k} taps)"
            )
    return size


class BaselineConv2d(ConstrainedConv):
    """Arguments, bias, striding, padding and export shared by the baselines.

    Every baseline claims ``"lipschitz"`` only. Subclasses implement ``weight`` (the inner
    stride-1 kernel, ``(out_channels, in_channels * stride**2, *kernel_size // stride)``),
    ``lipschitz_bound`` and ``forward`` (usually ``self._apply_conv(x, self.weight)``).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int],
        padding: Padding,
        bias: bool,
    ) -> None:
        super().__init__()
        self.in_channels = positive_int(in_channels, "in_channels")
        self.out_channels = positive_int(out_channels, "out_channels")
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.stride = equal_sizes(
            stride, "stride", 2, "the pixel unshuffle needs the same factor on both axes"
        )
        if any(k % self.stride for k in self.kernel_size):
            raise InvalidArgumentError(
                f"kernel_size={self.kernel_size}, but with stride={self.stride} each kernel size "
                "must be a multiple of the stride (the inner kernel has kernel_size // stride taps)"
            )
        self.padding: Padding = padding_mode(padding, "wraps around, same size", "zeros, same size")
        boolean(bias, "bias")
        self.inner_in_channels = self.in_channels * self.stride**2
        self.inner_kernel_size = (
            self.kernel_size[0] // self.stride,
            self.kernel_size[1] // self.stride,
        )
        self.bias: nn.Parameter | None = None
        if bias:
            fan_in = self.inner_in_channels * self.inner_kernel_size[0] * self.inner_kernel_size[1]
            bound = fan_in**-0.5
            self.bias = nn.Parameter(torch.empty(self.out_channels).uniform_(-bound, bound))

    @property
    def claims(self) -> frozenset[Claim]:
        """``"lipschitz"``, for every configuration (docs/baselines.rst)."""
        return frozenset({"lipschitz"})

    def _new_kernel(self) -> nn.Parameter:
        """A kernel of the inner shape with ``nn.Conv2d``'s default initialization."""
        shape = (self.out_channels, self.inner_in_channels, *self.inner_kernel_size)
        kernel = torch.empty(shape)
        nn.init.kaiming_uniform_(kernel, a=5**0.5)
        return nn.Parameter(kernel)

    def _check_input(self, x: torch.Tensor, weight: torch.Tensor) -> None:
        check_input(
            x, channels=self.in_channels, spatial_ndim=2, dtype=weight.dtype, device=weight.device
        )
        as_input_size(tuple(x.shape[-2:]), self.stride, self.inner_kernel_size, "x.shape[-2:]")

    def _unshuffle(self, x: torch.Tensor) -> torch.Tensor:
        return F.pixel_unshuffle(x, self.stride) if self.stride > 1 else x

    def _pad(self, x: torch.Tensor, adjoint: bool = False) -> torch.Tensor:
        widths = padding_widths(self.inner_kernel_size, 2, adjoint)
        if self.padding == "circular":
            return unshuffle_circular_pad(x, 1, widths)
        return F.pad(x, widths)

    def _linear(self, z: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """The inner convolution (no bias) on the downsampled grid."""
        return F.conv2d(self._pad(z), weight)

    def _linear_adjoint(self, y: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """The adjoint of :meth:`_linear`: flipped, transposed kernel, padding split reversed."""
        return F.conv2d(self._pad(y, adjoint=True), weight.flip(2, 3).transpose(0, 1))

    def _apply_conv(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        self._check_input(x, weight)
        y = self._linear(self._unshuffle(x), weight)
        return y if self.bias is None else y + self.bias.view(1, -1, 1, 1)

    def _evaluation_weight(self) -> torch.Tensor:
        """The kernel the layer applies in evaluation mode, whatever its mode now (what
        :meth:`export` copies); ``weight`` where the two modes apply the same kernel."""
        return self.weight

    def export(self) -> nn.Module:
        """Plain modules computing the layer's evaluation-mode function with the current
        kernel (also when called in training mode).

        Circular padding: ``nn.Conv2d(padding="same", padding_mode="circular")``, whose split
        is ``c`` before and ``K - 1 - c`` after for every kernel size. Zeros: ``nn.Conv2d``
        with ``padding=c`` for odd kernels, ``nn.ZeroPad2d`` then ``nn.Conv2d`` for even ones.
        ``nn.PixelUnshuffle(stride)`` comes first if ``stride > 1`` (in an ``nn.Sequential``).
        """
        weight = self._evaluation_weight().detach()
        odd = all(k % 2 == 1 for k in self.inner_kernel_size)
        circular = self.padding == "circular"
        padding: str | tuple[int, int] = "same" if circular else (0, 0)
        if not circular and odd:
            padding = ((self.inner_kernel_size[0] - 1) // 2, (self.inner_kernel_size[1] - 1) // 2)
        conv = nn.Conv2d(
            self.inner_in_channels,
            self.out_channels,
            self.inner_kernel_size,
            padding=padding,
            padding_mode="circular" if circular else "zeros",
            bias=self.bias is not None,
            device=weight.device,
            dtype=weight.dtype,
        )
        with torch.no_grad():
            conv.weight.copy_(weight)
            if self.bias is not None and conv.bias is not None:
                conv.bias.copy_(self.bias)
        modules: list[nn.Module] = [nn.PixelUnshuffle(self.stride)] if self.stride > 1 else []
        if not circular and not odd:
            left, right, top, bottom = padding_widths(self.inner_kernel_size, 2)
            modules.append(nn.ZeroPad2d((left, right, top, bottom)))
        modules.append(conv)
        return conv if len(modules) == 1 else nn.Sequential(*modules)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding!r}, bias={self.bias is not None}"
        )


class InputSizedConv2d(BaselineConv2d):
    """A baseline whose state is tied to one input size ``(H, W)``.

    The size is ``input_size`` if given, else the first forward input's; it is stored in the
    buffer ``input_hw`` (``(0, 0)`` while unknown) so that it travels with ``state_dict``. An
    input of another size is rejected: the layer's Lipschitz figure holds for this size only.
    """

    input_hw: torch.Tensor

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int],
        padding: Padding,
        bias: bool,
        input_size: int | tuple[int, int] | None,
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, bias)
        size = (0, 0)
        if input_size is not None:
            size = as_input_size(input_size, self.stride, self.inner_kernel_size)
        self.register_buffer("input_hw", torch.tensor(size, dtype=torch.long))

    @property
    def input_size(self) -> tuple[int, int] | None:
        """The input size ``(H, W)`` the layer is tied to, or ``None`` before the first forward."""
        height, width = (int(v) for v in self.input_hw.tolist())
        return None if height == 0 else (height, width)

    def _inner_grid(self) -> tuple[int, int]:
        """The grid ``(H / stride, W / stride)`` of the inner convolution."""
        size = self.input_size
        if size is None:
            raise InvalidArgumentError(
                "input_size=None, but this needs the input size: pass input_size=(H, W) at "
                "construction or run one forward pass first"
            )
        return size[0] // self.stride, size[1] // self.stride

    def _tie_input_size(self, x: torch.Tensor) -> bool:
        """Tie the layer to ``x``'s spatial size if untied (returns True then); reject others."""
        size = (int(x.shape[-2]), int(x.shape[-1]))
        current = self.input_size
        if current is None:
            self.input_hw.copy_(torch.tensor(size, dtype=torch.long))
            return True
        if size != current:
            raise InvalidArgumentError(
                f"x has spatial size {size}, but this layer is tied to input_size={current} "
                "(its Lipschitz figure holds for that size only)"
            )
        return False

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, input_size={self.input_size}"
