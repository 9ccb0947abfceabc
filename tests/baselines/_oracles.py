"""Float64 oracles for the baseline tests, independent of the layers' torch code.

Circular padding: the reference (:mod:`gnpcheck.reference`), exact spectrum from the symbol.
Zero padding: an explicit matrix built from partial shifts, here, with NumPy only.
"""

from __future__ import annotations

import numpy as np
import torch
from numpy.typing import NDArray

from gnpcheck.reference import circulant_spectrum, dense_operator, from_torch_layout

__all__ = ["dense_zero_padded", "operator_matrix", "sigma_max", "spectrum", "taps_first"]


def taps_first(weight: torch.Tensor) -> NDArray[np.float64]:
    """A torch-layout kernel as the reference's float64 taps-first array."""
    return from_torch_layout(weight.detach().double().cpu().numpy())


def spectrum(weight: torch.Tensor, grid: tuple[int, int]) -> NDArray[np.float64]:
    """Every singular value of the circular convolution of ``weight`` on ``grid``."""
    return circulant_spectrum(taps_first(weight), grid)


def dense_zero_padded(weight: torch.Tensor, grid: tuple[int, int]) -> NDArray[np.float64]:
    """The zero-padded ("same") convolution as a matrix: sum_a W_a (x) Z_{a1-c1} (x) Z_{a2-c2},
    ``Z_d[t, s] = 1`` iff ``s = t + d`` inside the grid (rows/columns in C order)."""
    kernel = taps_first(weight)
    k1, k2, n_out, n_in = kernel.shape
    matrix = np.zeros((n_out * grid[0] * grid[1], n_in * grid[0] * grid[1]))
    for a1 in range(k1):
        for a2 in range(k2):
            shift1 = np.eye(grid[0], k=a1 - (k1 - 1) // 2)
            shift2 = np.eye(grid[1], k=a2 - (k2 - 1) // 2)
            matrix += np.kron(kernel[a1, a2], np.kron(shift1, shift2))
    return matrix


def operator_matrix(
    weight: torch.Tensor, grid: tuple[int, int], padding: str
) -> NDArray[np.float64]:
    """The inner convolution of a baseline as a dense float64 matrix."""
    if padding == "circular":
        return dense_operator(taps_first(weight), grid)
    return dense_zero_padded(weight, grid)


def sigma_max(weight: torch.Tensor, grid: tuple[int, int], padding: str = "circular") -> float:
    """The exact operator norm: circulant spectrum (circular) or dense SVD (zeros)."""
    if padding == "circular":
        return float(spectrum(weight, grid).max())
    return float(np.linalg.norm(dense_zero_padded(weight, grid), 2))
