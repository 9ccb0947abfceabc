r"""What kind of map a target is, established by tests, and its matrix when it is linear.

- :func:`check_affine`: :math:`g(ax + by) = a g(x) + b g(y)` with :math:`g = f - f(0)`, for
  random inputs and coefficients at three scales. A target that passes is treated as
  affine; every model built from that is then verified on fresh inputs.
- :func:`check_shift_equivariant`: :math:`g(S x) = S g(x)` for circular shifts ``S`` along
  each spatial axis (output spatial shape equal to the input's).
- :func:`extract_convolution`: an affine, shift-equivariant map of ``(C, *N)`` inputs is a
  circular convolution (up to a circular shift of its output, which changes no singular
  value). Its kernel is read off impulse responses: the support from one probe, then many
  channels' impulses per probe, spaced so that their responses do not overlap. The kernel
  is returned taps first with the reference's centering and verified against the target.
- :func:`dense_matrix`: the matrix of a small affine map from the responses to the basis.

All comparisons are relative, within :func:`gnpcheck.audit.tolerance.network_tolerance`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import NDArray

from gnpcheck.audit.sampler import Sampler
from gnpcheck.audit.tolerance import network_tolerance

__all__ = [
    "DENSE_LIMIT",
    "KERNEL_ENTRY_LIMIT",
    "AffineCheck",
    "ConvolutionModel",
    "Map",
    "check_affine",
    "check_shift_equivariant",
    "dense_matrix",
    "extract_convolution",
    "relative_difference",
]

#: A batched map: ``(B, *input_shape) -> (B, *output_shape)``.
Map = Callable[[torch.Tensor], torch.Tensor]

#: Largest input or output size whose dense matrix is formed (an SVD of a matrix of this
#: size takes seconds on two cores).
DENSE_LIMIT = 1024
#: Largest kernel (taps x n_out x n_in entries) read off impulse responses (128 MB in float64).
KERNEL_ENTRY_LIMIT = 2**24
#: Inputs per call when many probes are sent through the target.
_CHUNK = 16


def relative_difference(a: torch.Tensor, b: torch.Tensor, scale: float = 0.0) -> float:
    """``||a - b|| / max(||a|| + ||b|| + scale, tiny)``; ``inf`` if anything is not finite."""
    a, b = a.detach(), b.detach()
    difference = float(torch.linalg.vector_norm((a - b).reshape(-1)))
    size = float(torch.linalg.vector_norm(a.reshape(-1)) + torch.linalg.vector_norm(b.reshape(-1)))
    if not (math.isfinite(difference) and math.isfinite(size)):
        return math.inf
    return difference / max(size + scale, torch.finfo(a.dtype).tiny)


def _norm(t: torch.Tensor) -> float:
    return float(torch.linalg.vector_norm(t.reshape(-1)))


@dataclass(frozen=True)
class AffineCheck:
    """The outcome of :func:`check_affine`.

    Attributes:
        affine: whether every identity held.
        residual: the largest relative residual found.
        tolerance: what was allowed.
        offset: ``f(0)`` (one output, no batch axis).
        witness: for a failure, ``(x, y, a, b)`` with the worst residual.
    """

    affine: bool
    residual: float
    tolerance: float
    offset: torch.Tensor
    witness: tuple[torch.Tensor, torch.Tensor, float, float] | None


def check_affine(f: Map, sampler: Sampler) -> AffineCheck:
    """Whether ``f`` is affine on random inputs: ``g(a x + b y) = a g(x) + b g(y)``.

    Three pairs of standard normal inputs, at scales 1, ``1e3`` and ``1e-3``, with
    coefficients ``a``, ``b`` drawn too.
    """
    x, y, coefficients = sampler.inputs(3), sampler.inputs(3), sampler.scalars(6)
    scales = torch.tensor([1.0, 1e3, 1e-3], dtype=x.dtype, device=x.device)
    scales = scales.reshape(-1, *([1] * (x.ndim - 1)))
    x, y = x * scales, y * scales
    a = torch.tensor(coefficients[0::2], dtype=x.dtype, device=x.device).reshape(scales.shape)
    b = torch.tensor(coefficients[1::2], dtype=x.dtype, device=x.device).reshape(scales.shape)
    zero = torch.zeros_like(x[:1])
    out = f(torch.cat([zero, x, y, a * x + b * y]))
    offset = out[0]
    fx, fy, fxy = (out[1:4] - offset), (out[4:7] - offset), (out[7:10] - offset)
    n, m = x[0].numel(), offset.numel()
    tolerance = network_tolerance(sampler.dtype, n, m)
    worst, residual = 0, -1.0
    for i in range(3):
        lhs, rhs = fxy[i], a[i] * fx[i] + b[i] * fy[i]
        scale = _norm(offset) * (1 + abs(float(a[i])) + abs(float(b[i])))
        r = relative_difference(lhs, rhs, scale) if torch.isfinite(offset).all() else math.inf
        if not r <= residual:
            worst, residual = i, r
    affine = residual <= tolerance
    witness = None if affine else (x[worst], y[worst], float(a[worst]), float(b[worst]))
    return AffineCheck(affine, residual, tolerance, offset, witness)


def _roll(t: torch.Tensor, shifts: tuple[int, ...]) -> torch.Tensor:
    dims = tuple(range(t.ndim - len(shifts), t.ndim))
    return torch.roll(t, shifts=shifts, dims=dims)


def check_shift_equivariant(g: Map, sampler: Sampler) -> bool:
    """Whether the linear part ``g`` commutes with circular shifts along every spatial axis.

    Needs the output to have the input's spatial shape (checked first).
    """
    spatial = sampler.input_shape[1:]
    if not spatial:
        return False
    x = sampler.inputs(1)
    gx = g(x)
    if tuple(gx.shape[2:]) != spatial:
        return False
    shifts = [
        tuple(1 if axis == k else 0 for axis in range(len(spatial))) for k in range(len(spatial))
    ]
    shifts.append(tuple(max(1, size // 2 - 1) for size in spatial))
    shifted = g(torch.cat([_roll(x, s) for s in shifts]))
    expected = torch.cat([_roll(gx, s) for s in shifts])
    tolerance = network_tolerance(sampler.dtype, x[0].numel(), gx[0].numel())
    return relative_difference(shifted, expected) <= tolerance


@dataclass(frozen=True)
class ConvolutionModel:
    r"""A circular convolution read off a target.

    ``g(x) = roll(circular_conv(kernel, x), shift)`` along the spatial axes, with
    :func:`gnpcheck.reference.circular_conv`'s convention (taps first, centering
    ``(K - 1) // 2``).

    Attributes:
        kernel: taps first, ``(K..., n_out, n_in)``, float64.
        shift: the circular output shift per spatial axis.
        spatial: the input's spatial shape.
    """

    kernel: NDArray[np.float64]
    shift: tuple[int, ...]
    spatial: tuple[int, ...]

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """The model's output for a batch ``x`` (float64, on ``x``'s device)."""
        d = len(self.spatial)
        taps = self.kernel.shape[:d]
        weight = torch.from_numpy(np.ascontiguousarray(np.moveaxis(self.kernel, (-2, -1), (0, 1))))
        weight = weight.to(device=x.device, dtype=torch.float64)
        widths: list[int] = []
        for k in reversed(taps):
            widths += [(k - 1) // 2, k - 1 - (k - 1) // 2]
        padded = F.pad(x.double(), widths, mode="circular")
        y = F.conv1d(padded, weight) if d == 1 else F.conv2d(padded, weight)
        return _roll(y, self.shift)


def _window(mask: NDArray[np.bool_]) -> tuple[int, int]:
    """The shortest circular window ``(start, length)`` holding every True of ``mask``."""
    size = len(mask)
    hits = np.flatnonzero(mask)
    if len(hits) == 0:
        return 0, 1
    if len(hits) == size:
        return 0, size
    following = np.roll(hits, -1)
    following[-1] += size
    gaps = following - hits - 1
    widest = int(np.argmax(gaps))
    return int(following[widest] % size), size - int(gaps[widest])


def extract_convolution(g: Map, sampler: Sampler) -> ConvolutionModel | None:
    """The circular convolution that the linear, shift-equivariant ``g`` is, or ``None`` when
    the model read off the impulse responses does not reproduce ``g`` (or would be too big).
    """
    n_in, spatial = sampler.input_shape[0], sampler.input_shape[1:]
    dtype, device = sampler.dtype, sampler.device
    d = len(spatial)
    weights = sampler.normal(n_in)
    probe = torch.zeros(1, n_in, *spatial, dtype=dtype, device=device)
    probe.reshape(n_in, -1)[:, 0] = weights  # every channel at spatial position 0
    response = g(probe)[0].double().cpu().numpy()
    n_out = response.shape[0]
    magnitude = np.abs(response)
    threshold = network_tolerance(dtype, n_in * math.prod(spatial), response.size) * magnitude.max()
    windows = []
    for axis in range(d):
        other = tuple(a for a in range(d + 1) if a != axis + 1)
        windows.append(_window(magnitude.max(axis=other) > threshold))
    taps = tuple(length for _, length in windows)
    if math.prod(taps) * n_out * n_in > KERNEL_ENTRY_LIMIT:
        return None
    ends = tuple(start + length - 1 for start, length in windows)  # c' per axis
    slots = [size // length for size, length in zip(spatial, taps, strict=True)]
    per_probe = math.prod(slots)
    positions = list(np.ndindex(*slots))
    kernel = np.zeros((*taps, n_out, n_in))
    tap_index = np.stack(np.meshgrid(*[np.arange(k) for k in taps], indexing="ij"), axis=-1)
    channels = list(range(n_in))
    batches = [channels[i : i + per_probe] for i in range(0, n_in, per_probe)]
    for start in range(0, len(batches), _CHUNK):
        group = batches[start : start + _CHUNK]
        probes = torch.zeros(len(group), n_in, *spatial, dtype=dtype, device=device)
        for b, members in enumerate(group):
            for slot, channel in zip(positions, members, strict=False):
                where = tuple(q * k for q, k in zip(slot, taps, strict=True))
                probes[(b, channel, *where)] = 1.0
        out = g(probes).double().cpu().numpy()
        for b, members in enumerate(group):
            for slot, channel in zip(positions, members, strict=False):
                rows = tuple(
                    (q * k + end - tap_index[..., axis]) % size
                    for axis, (q, k, end, size) in enumerate(
                        zip(slot, taps, ends, spatial, strict=True)
                    )
                )
                kernel[..., :, channel] = np.moveaxis(out[b][(slice(None), *rows)], 0, -1)
    shift = tuple(
        (end - (k - 1) // 2) % size for end, k, size in zip(ends, taps, spatial, strict=True)
    )
    model = ConvolutionModel(kernel, shift, spatial)
    x = sampler.inputs(2)
    expected = g(x)
    tolerance = network_tolerance(dtype, x[0].numel(), expected[0].numel())
    if relative_difference(model.apply(x), expected.double()) > tolerance:
        return None
    return model


def dense_matrix(g: Map, sampler: Sampler) -> NDArray[np.float64] | None:
    """The ``m x n`` matrix of the linear ``g`` from its responses to the basis, or ``None``
    if it does not reproduce ``g`` on random inputs."""
    input_shape, dtype, device = sampler.input_shape, sampler.dtype, sampler.device
    n = math.prod(input_shape)
    columns = []
    for start in range(0, n, _CHUNK * 4):
        count = min(_CHUNK * 4, n - start)
        basis = torch.zeros(count, n, dtype=dtype, device=device)
        basis[torch.arange(count), torch.arange(start, start + count)] = 1.0
        columns.append(g(basis.reshape(count, *input_shape)).reshape(count, -1).double().cpu())
    matrix = torch.cat(columns).T.contiguous()
    x = sampler.inputs(2)
    expected = g(x).reshape(2, -1).double().cpu()
    tolerance = network_tolerance(dtype, n, matrix.shape[0])
    if relative_difference(x.reshape(2, -1).double().cpu() @ matrix.T, expected) > tolerance:
        return None
    return matrix.numpy()
