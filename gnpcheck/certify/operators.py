r"""The linear operator of a convolution or linear layer, measured in float64.

A constrained convolution of :mod:`gnpcheck.nn` computes ``conv(unshuffle_s(x)) + b``: a
pixel unshuffle by its stride ``s`` (a permutation), then a stride-1 cross-correlation with
its ``weight`` on the ``(H/s, W/s)`` grid, padded circularly or with zeros. Its Jacobian is
the convolution operator (times a permutation), whatever the bias, so (docs/training.rst,
Note [measured bounds]):

- **circular padding**: the singular values are exactly those of the circulant symbol on the
  grid (:func:`gnpcheck.reference.circulant_spectrum`, Sedghi et al. 2019);
- **zero padding**: the operator is a compression :math:`R\,C\,E` of the circular convolution
  :math:`C` on the grid enlarged by ``K - 1`` per axis (:math:`E` embeds the input among
  zeros, :math:`R` keeps the output window; both have norm 1), so
  :math:`\|\text{op}\|_2 \le \|C\|_2`: an upper bound. Its exact singular values come from
  the dense matrix of impulse responses (small layers only).

A plain ``nn.Conv2d`` (zero padding, any stride: its rows are rows of the full correlation)
and ``nn.Linear`` are measured the same way. The kernel is the layer's own, in its own
dtype, converted to float64 for the measurement.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import NDArray
from torch import nn

from gnpcheck.errors import GnpcheckError
from gnpcheck.nn.base import ConstrainedConv
from gnpcheck.reference import circulant_spectrum, from_torch_layout

__all__ = [
    "DENSE_COLUMNS_LIMIT",
    "ConvOperator",
    "NotMeasurableError",
    "conv_operator",
    "jacobian_singular_values",
    "operator_norm_bound",
    "reconstruct",
]

#: Largest input dimension for which the exact singular values of a zero-padded convolution
#: are computed from the dense matrix (its SVD costs O(rows * columns^2)).
DENSE_COLUMNS_LIMIT = 8192


class NotMeasurableError(GnpcheckError):
    """A layer's operator cannot be measured by gnpcheck; the message says why."""


@dataclass(frozen=True)
class ConvOperator:
    """The linear part of a convolution layer, as measured.

    Attributes:
        kernel: the stride-1 kernel applied, float64, taps first ``(K1, K2, out, in)``.
        grid: the spatial size ``(N1, N2)`` the kernel acts on (after any unshuffle).
        padding: ``"circular"`` or ``"zeros"``.
        unshuffle: the pixel-unshuffle factor applied before the kernel (1 for none).
        subsampled: whether the layer keeps only some outputs (a strided ``nn.Conv2d``).
    """

    kernel: NDArray[np.float64]
    grid: tuple[int, int]
    padding: Literal["circular", "zeros"]
    unshuffle: int
    subsampled: bool

    @property
    def exact(self) -> bool:
        """Whether the circulant spectrum on :attr:`grid` is exactly the layer's spectrum."""
        return self.padding == "circular" and not self.subsampled


def _constrained_operator(layer: ConstrainedConv, input_size: tuple[int, int]) -> ConvOperator:
    stride, padding = getattr(layer, "stride", None), getattr(layer, "padding", None)
    if isinstance(stride, bool) or not isinstance(stride, int) or stride < 1:
        raise NotMeasurableError(f"{type(layer).__name__} has stride={stride!r}, not an int >= 1")
    if padding not in ("circular", "same"):
        raise NotMeasurableError(
            f"{type(layer).__name__} has padding={padding!r}, not 'circular' or 'same'"
        )
    weight = layer.weight.detach()
    if weight.ndim != 4 or input_size[0] % stride or input_size[1] % stride:
        raise NotMeasurableError(
            f"{type(layer).__name__} has a weight of shape {tuple(weight.shape)} and stride "
            f"{stride} on input {input_size}: not a 2-D convolution after an unshuffle"
        )
    grid = (input_size[0] // stride, input_size[1] // stride)
    return ConvOperator(
        from_torch_layout(weight.double().cpu().numpy()),
        grid,
        "circular" if padding == "circular" else "zeros",
        stride,
        subsampled=False,
    )


def _plain_operator(layer: nn.Conv2d, input_size: tuple[int, int]) -> ConvOperator:
    name = f"nn.Conv2d{tuple(layer.weight.shape)}"
    if layer.groups != 1 or tuple(layer.dilation) != (1, 1):
        raise NotMeasurableError(f"{name} has groups or dilation != 1")
    kernel = from_torch_layout(layer.weight.detach().double().cpu().numpy())
    if layer.padding_mode == "zeros":
        return ConvOperator(kernel, input_size, "zeros", 1, tuple(layer.stride) != (1, 1))
    padding = layer.padding
    same = padding == "same" or (
        not isinstance(padding, str)
        and all(2 * int(p) == k - 1 for p, k in zip(padding, layer.kernel_size, strict=True))
    )
    if layer.padding_mode == "circular" and same and tuple(layer.stride) == (1, 1):
        return ConvOperator(kernel, input_size, "circular", 1, subsampled=False)
    raise NotMeasurableError(
        f"{name} has padding_mode={layer.padding_mode!r}, padding={layer.padding!r}, "
        f"stride={layer.stride}: only zeros, or circular 'same' with stride 1, are measured"
    )


def conv_operator(layer: nn.Module, input_size: tuple[int, int]) -> ConvOperator:
    """The operator of a constrained convolution or plain ``nn.Conv2d`` on ``(H, W)`` inputs.

    Raises:
        NotMeasurableError: another kind of layer, or a configuration gnpcheck cannot measure
            (grouped, dilated, reflect padding, ...).
    """
    if isinstance(layer, ConstrainedConv):
        return _constrained_operator(layer, input_size)
    if type(layer) is nn.Conv2d:
        return _plain_operator(layer, input_size)
    raise NotMeasurableError(f"{type(layer).__name__} is not a convolution gnpcheck measures")


def _spectral_grid(operator: ConvOperator) -> tuple[int, int]:
    if operator.padding == "circular":
        return operator.grid
    k1, k2 = operator.kernel.shape[:2]
    return operator.grid[0] + k1 - 1, operator.grid[1] + k2 - 1


def operator_norm_bound(operator: ConvOperator) -> float:
    """:math:`\\sigma_{\\max}` of the circulant on the grid (exact for circular padding) or on the
    grid enlarged by ``K - 1`` (an upper bound for zeros), from the float64 symbol."""
    grid = _spectral_grid(operator)
    kernel = operator.kernel
    if kernel.shape[0] > grid[0] or kernel.shape[1] > grid[1]:
        raise NotMeasurableError(f"kernel {kernel.shape[:2]} larger than its grid {grid}")
    return float(np.max(circulant_spectrum(kernel, grid)))


def _dense_zero_padded(operator: ConvOperator) -> NDArray[np.float64]:
    """The matrix of the zero-padded stride-1 convolution, from its impulse responses."""
    k1, k2, _, n_in = operator.kernel.shape
    n1, n2 = operator.grid
    columns = n_in * n1 * n2
    if columns > DENSE_COLUMNS_LIMIT:
        raise NotMeasurableError(
            f"the zero-padded convolution has {columns} inputs, more than the "
            f"{DENSE_COLUMNS_LIMIT} for which its dense SVD is computed; use circular padding"
        )
    weight = torch.from_numpy(np.ascontiguousarray(np.moveaxis(operator.kernel, (0, 1), (2, 3))))
    basis = torch.eye(columns, dtype=torch.float64).reshape(columns, n_in, n1, n2)
    widths = ((k2 - 1) // 2, k2 - 1 - (k2 - 1) // 2, (k1 - 1) // 2, k1 - 1 - (k1 - 1) // 2)
    responses = F.conv2d(F.pad(basis, widths), weight)
    return np.asarray(responses.reshape(columns, -1).T.numpy(), dtype=np.float64)


def jacobian_singular_values(operator: ConvOperator) -> tuple[NDArray[np.float64], str]:
    """All singular values of the layer's Jacobian, descending, and how they were computed.

    Circular padding: the circulant spectrum (``min(out, in) * N1 * N2`` values). Zero
    padding: the SVD of the dense matrix (``min(rows, columns)`` values).

    Raises:
        NotMeasurableError: a subsampled ``nn.Conv2d``, or a zero-padded layer too large for a
            dense SVD (:data:`DENSE_COLUMNS_LIMIT`).
    """
    if operator.subsampled:
        raise NotMeasurableError("the spectrum of a strided plain convolution is not computed")
    values: NDArray[np.float64]
    if operator.padding == "circular":
        values = circulant_spectrum(operator.kernel, operator.grid).ravel()
        method = f"circulant spectrum on the {operator.grid[0]}x{operator.grid[1]} grid (exact)"
    else:
        values = np.asarray(
            np.linalg.svd(_dense_zero_padded(operator), compute_uv=False), dtype=np.float64
        )
        method = "SVD of the dense zero-padded operator (impulse responses)"
    return np.sort(values)[::-1], method


def reconstruct(
    layer: nn.Module, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None
) -> torch.Tensor:
    """What ``layer`` computes on ``x`` if it applies ``weight`` and ``bias`` as measured.

    A linear layer: ``x W^T + b``. A constrained convolution: unshuffle by its stride, pad
    (circular or zeros, ``c = (K - 1) // 2`` before), stride-1 cross-correlation, plus ``b``.
    """
    if weight.ndim == 2:
        return F.linear(x, weight, bias)
    stride = int(getattr(layer, "stride", 1))
    z = F.pixel_unshuffle(x, stride) if stride > 1 else x
    k1, k2 = weight.shape[-2:]
    widths = ((k2 - 1) // 2, k2 - 1 - (k2 - 1) // 2, (k1 - 1) // 2, k1 - 1 - (k1 - 1) // 2)
    mode = "circular" if getattr(layer, "padding", None) == "circular" else "constant"
    return F.conv2d(F.pad(z, widths, mode=mode), weight, bias)
