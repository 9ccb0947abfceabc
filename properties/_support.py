"""Shared pieces of the property suite: drawing target kernels, slicing them, rounding bounds."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from hypothesis import note
from hypothesis import strategies as st
from numpy.typing import NDArray

from gnpcheck.checks import CheckResult
from gnpcheck.strategies import channel_counts, input_shapes, kernel_sizes, seeds
from gnpcheck.targets import KernelTarget
from gnpcheck.tolerances import machine_epsilon, smallest_subnormal

__all__ = [
    "TargetCase",
    "closeness",
    "draw_input_shape",
    "draw_sliced",
    "draw_target_kernel",
    "rounding_allowance",
    "rounding_bound",
]


@dataclass(frozen=True)
class TargetCase:
    """A kernel the target produced, and the call that produced it."""

    kernel: NDArray[np.float64]
    spatial_ndim: int
    channels: int
    kernel_size: int
    seed: int
    call: str


def draw_target_kernel(
    data: st.DataObject,
    target: KernelTarget,
    *,
    min_channels: int = 1,
    max_kernel_size: int | None = None,
    label: str = "",
) -> TargetCase:
    """Draw a dimension, channels, kernel size and seed; call the target's factory on them."""
    spatial_ndim = data.draw(st.sampled_from(target.spatial_ndims), label=f"{label}spatial_ndim")
    channels = data.draw(channel_counts(min_value=min_channels), label=f"{label}channels")
    kernel_size = data.draw(kernel_sizes(max_value=max_kernel_size), label=f"{label}kernel_size")
    seed = data.draw(seeds(), label=f"{label}seed")
    kernel = target.kernel(
        channels=channels, kernel_size=kernel_size, spatial_ndim=spatial_ndim, seed=seed
    )
    call = (
        f"{target.name}: factory(channels={channels}, kernel_size={kernel_size}, "
        f"spatial_ndim={spatial_ndim}, seed={seed})"
    )
    note(f"{label}kernel = {call}")
    return TargetCase(kernel, spatial_ndim, channels, kernel_size, seed, call)


def draw_input_shape(data: st.DataObject, kernel: NDArray[np.float64]) -> tuple[int, ...]:
    """A spatial input size at least as large as ``kernel`` along every axis."""
    spatial_ndim = kernel.ndim - 2
    sides = tuple(int(k) for k in kernel.shape[:spatial_ndim])
    return data.draw(
        input_shapes(kernel_size=sides, spatial_ndim=spatial_ndim), label="input_shape"
    )


def draw_sliced(data: st.DataObject, kernel: NDArray[np.float64]) -> NDArray[np.float64]:
    """Keep the first ``m`` output channels (wide) or input channels (tall), ``m`` drawn.

    Either slice of an orthogonal operator keeps every singular value at 1 (a subset of
    orthonormal rows, or of orthonormal columns); ``m = n`` keeps it square.
    """
    n_out, n_in = kernel.shape[-2:]
    side = data.draw(st.sampled_from(("outputs", "inputs")), label="sliced side")
    if side == "outputs":
        m = data.draw(st.integers(1, n_out), label="output channels kept")
        sliced = kernel[..., :m, :]
    else:
        m = data.draw(st.integers(1, n_in), label="input channels kept")
        sliced = kernel[..., :, :m]
    note(f"sliced kernel shape {sliced.shape} ({side} 1..{m} kept)")
    return np.ascontiguousarray(sliced)


def rounding_bound(terms: int, dtype: Any = np.float64) -> float:
    r"""Higham's :math:`\gamma_m = m u / (1 - m u)`, ``u = eps / 2``: a sum of ``m`` products
    computed in ``dtype`` differs from the exact sum by at most :math:`\gamma_m` times the sum
    of their absolute values (Higham, Accuracy and Stability, eq. 3.5), in any order."""
    unit = machine_epsilon(dtype) / 2
    return terms * unit / (1 - terms * unit)


def rounding_allowance(
    terms: int, magnitude: NDArray[np.float64], dtype: Any = np.float64
) -> NDArray[np.float64]:
    r"""Twice the worst-case error of two evaluations of sums of ``terms`` products each:
    :math:`2 \gamma_m |\cdot|` plus, for underflow, ``2 * terms`` smallest subnormals
    (Higham, Accuracy and Stability, eq. 2.2: ``fl(x op y) = (x op y)(1 + d) + e``)."""
    return 2 * rounding_bound(terms, dtype) * magnitude + 2 * terms * smallest_subnormal(dtype)


def closeness(
    claim: str,
    measured: NDArray[np.float64],
    expected: NDArray[np.float64],
    allowed: NDArray[np.float64] | float,
    *,
    figure: str,
    method: str,
    subject: str,
) -> CheckResult:
    """Compare two arrays entrywise against ``allowed`` (an array or a number).

    Figure and tolerance are read at the entry where ``|measured - expected| - allowed`` is
    largest, which a failure names as its counterexample.
    """
    difference = np.abs(measured - expected)
    bound = np.broadcast_to(np.asarray(allowed, dtype=np.float64), difference.shape)
    excess = difference - bound
    worst = np.unravel_index(int(np.argmax(excess)), excess.shape)
    passed = bool(np.all(excess <= 0))
    index = tuple(int(i) for i in worst)
    return CheckResult(
        claim,
        passed,
        float(difference[worst]),
        float(bound[worst]),
        figure,
        method,
        True,
        subject,
        None
        if passed
        else {
            "index": index,
            "measured": float(measured[worst]),
            "expected": float(expected[worst]),
        },
    )
