"""SVCM: the symbol, the clipping step, the mask step and the measured bound."""

from __future__ import annotations

import copy
import itertools

import numpy as np
import pytest
import torch

from gnpcheck.errors import InvalidArgumentError
from gnpcheck.nn.baselines import (
    SVCMConv2d,
    clip_operator,
    kernel_symbol,
    operator_norm,
    restrict_support,
)
from gnpcheck.reference import circulant_symbol
from gnpcheck.tolerances import orthogonality_tolerance

from ._oracles import sigma_max, spectrum, taps_first

# (out, in, k1, k2, grid): square, tall, wide; odd, even, non-square kernels and grids.
SHAPES = [
    (4, 4, 3, 3, (6, 6)),
    (5, 3, 2, 2, (5, 4)),
    (2, 6, 4, 4, (7, 6)),
    (3, 3, 3, 1, (4, 5)),
]


def _kernel(shape: tuple[int, ...], scale: float = 1.0, seed: int = 0) -> torch.Tensor:
    n_out, n_in, k1, k2, _ = shape
    generator = torch.Generator().manual_seed(seed)
    return scale * torch.randn(n_out, n_in, k1, k2, dtype=torch.float64, generator=generator)


def _tol(shape: tuple[int, ...]) -> float:
    grid = shape[-1]
    return orthogonality_tolerance(np.float64, shape[0] * grid[0] * grid[1])


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_symbol_matches_reference(shape: tuple[int, ...]) -> None:
    """rfft2 of the kernel on the grid is the conjugate of the reference symbol (direct sum)."""
    kernel, grid = _kernel(shape), shape[-1]
    ours = kernel_symbol(kernel, grid).numpy()
    reference = circulant_symbol(taps_first(kernel), grid)[:, : grid[1] // 2 + 1]
    np.testing.assert_allclose(ours, np.conj(reference), rtol=0, atol=_tol(shape) * 10)


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_operator_norm_is_exact(shape: tuple[int, ...]) -> None:
    kernel, grid = _kernel(shape), shape[-1]
    exact = float(spectrum(kernel, grid).max())
    assert abs(operator_norm(kernel, grid) - exact) <= _tol(shape) * exact


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_clipping_is_min_of_spectrum_and_one(shape: tuple[int, ...]) -> None:
    """Before the mask, the clipped operator has exactly the singular values min(sigma, 1)."""
    kernel, grid = _kernel(shape, scale=2.0), shape[-1]
    full = clip_operator(kernel, grid)
    assert full.shape == (*kernel.shape[:2], *grid)
    before = spectrum(kernel, grid)
    after = spectrum(full, grid)
    assert float(before.max()) > 1.5  # the clipping has work to do
    assert float(after.max()) <= 1 + _tol(shape)
    np.testing.assert_allclose(
        after, np.minimum(before, 1.0), rtol=0, atol=_tol(shape) * before.max()
    )


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_one_lipschitz_kernel_is_a_fixed_point(shape: tuple[int, ...]) -> None:
    """Clip then mask leaves a kernel that is already 1-Lipschitz unchanged (centering check)."""
    kernel, grid = _kernel(shape), shape[-1]
    kernel = kernel / (2 * float(spectrum(kernel, grid).max()))
    full = clip_operator(kernel, grid)
    restored = restrict_support(full, tuple(kernel.shape[-2:]))
    torch.testing.assert_close(restored, kernel, rtol=0, atol=_tol(shape))
    outside = full.clone()
    starts = [(n - 1) // 2 - (k - 1) // 2 for n, k in zip(grid, kernel.shape[-2:], strict=True)]
    outside[
        ..., starts[0] : starts[0] + kernel.shape[-2], starts[1] : starts[1] + kernel.shape[-1]
    ] = 0
    assert float(outside.abs().max()) <= _tol(shape)


def _distance_to_ball(weight: torch.Tensor, grid: tuple[int, int]) -> float:
    """Hilbert-Schmidt distance of the operator to {||A|| <= 1}: sqrt(sum (sigma - 1)_+^2)."""
    values = spectrum(weight, grid)
    return float(np.sqrt(np.sum(np.clip(values - 1.0, 0.0, None) ** 2)))


@pytest.mark.parametrize("padding", ["circular", "same"])
def test_projection_alternates_toward_the_ball(padding: str) -> None:
    """Clip and mask are orthogonal projections (Hilbert-Schmidt) onto convex sets: the distance
    to the 1-Lipschitz ball never increases; the measured bound after a projection is exact
    and, in general, still above 1 (the mask leaves the ball)."""
    torch.manual_seed(0)
    layer = SVCMConv2d(4, 4, 3, padding=padding, input_size=8).double()
    with torch.no_grad():
        layer.raw_weight.mul_(3)
    grid = layer.spectral_grid()
    assert grid == ((8, 8) if padding == "circular" else (10, 10))
    distances = [_distance_to_ball(layer.weight, grid)]
    bounds = [layer.lipschitz_bound()]
    for _ in range(6):
        bounds.append(layer.project_())
        distances.append(_distance_to_ball(layer.weight, grid))
        exact = sigma_max(layer.weight, grid)
        assert (
            abs(bounds[-1] - exact)
            <= orthogonality_tolerance(np.float64, 4 * grid[0] * grid[1]) * exact
        )
    assert all(b <= a * (1 + 1e-12) for a, b in itertools.pairwise(distances)), distances
    assert bounds[0] > 2
    assert bounds[-1] > 1  # the mask step leaves the ball: the bound is measured, not assumed


def test_zero_padding_bound_covers_the_zero_padded_operator() -> None:
    torch.manual_seed(1)
    for k in (2, 3, 4):
        layer = SVCMConv2d(3, 2, k, padding="same", input_size=6).double()
        with torch.no_grad():
            layer.raw_weight.mul_(2)
        layer.project_()
        dense = sigma_max(layer.weight, (6, 6), "same")
        assert dense <= layer.lipschitz_bound() * (1 + orthogonality_tolerance(np.float64, 2 * 81))


def test_strided_bound_is_on_the_downsampled_grid() -> None:
    torch.manual_seed(2)
    layer = SVCMConv2d(2, 3, 4, stride=2, input_size=(8, 12)).double()
    assert layer.spectral_grid() == (4, 6)
    exact = sigma_max(layer.weight, (4, 6))
    assert (
        abs(layer.lipschitz_bound() - exact) <= orthogonality_tolerance(np.float64, 3 * 24) * exact
    )


def test_float32_layer_is_projected_in_float64() -> None:
    torch.manual_seed(3)
    layer = SVCMConv2d(4, 6, 3, input_size=8)
    with torch.no_grad():
        layer.raw_weight.mul_(3)
    reference = copy.deepcopy(layer).double()
    bound = layer.project_()
    reference.project_()
    assert layer.raw_weight.dtype == torch.float32
    torch.testing.assert_close(layer.raw_weight.double(), reference.raw_weight, rtol=0, atol=1e-6)
    assert (
        abs(bound - sigma_max(layer.weight, (8, 8)))
        <= orthogonality_tolerance(np.float64, 6 * 64) * bound
    )


def test_hook_projects_after_each_step() -> None:
    torch.manual_seed(4)
    layer = SVCMConv2d(3, 3, 3, input_size=6).double()
    optimizer = torch.optim.SGD(layer.parameters(), lr=1.0)
    handle = layer.register_projection_hook(optimizer)
    x = torch.randn(2, 3, 6, 6, dtype=torch.float64)
    layer(x).square().sum().backward()
    stepped = copy.deepcopy(layer)
    with torch.no_grad():
        stepped.raw_weight.sub_(layer.raw_weight.grad)
    stepped.project_()
    optimizer.step()
    torch.testing.assert_close(layer.raw_weight, stepped.raw_weight, rtol=0, atol=1e-14)
    handle.remove()
    before = layer.raw_weight.detach().clone()
    optimizer.step()  # the same gradient again, now without projection
    torch.testing.assert_close(
        layer.raw_weight.detach(), before - layer.raw_weight.grad, rtol=0, atol=0
    )


def test_project_arguments() -> None:
    layer = SVCMConv2d(2, 2, 3)
    with pytest.raises(
        InvalidArgumentError, match=r"input_size=None, but this needs the input size"
    ):
        layer.project_()
    layer = SVCMConv2d(2, 2, 3, input_size=6)
    with pytest.raises(InvalidArgumentError, match=r"iterations=0, but it must be at least 1"):
        layer.project_(0)


def test_function_arguments() -> None:
    kernel = torch.zeros(2, 2, 3, 3, dtype=torch.float64)
    with pytest.raises(InvalidArgumentError, match=r"grid=\(2, 5\), but it must be 2 sizes"):
        operator_norm(kernel, (2, 5))
    with pytest.raises(InvalidArgumentError, match=r"grid=\(4, 4, 4\), but it must be 2 sizes"):
        clip_operator(kernel, (4, 4, 4))  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match=r"full\.shape\[-2:\]=\(4, 4\), but"):
        restrict_support(torch.zeros(2, 2, 4, 4), (5, 5))
