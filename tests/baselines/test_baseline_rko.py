"""RKO: the sqrt(T) bound (docs/baselines.rst, Note [RKO scaling]) and the layer's claim."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gnpcheck.nn.baselines import RKOConv2d, bjorck_semi_orthogonal
from gnpcheck.tolerances import matrix_orthogonality_tolerance, orthogonality_tolerance

from ._oracles import operator_matrix, sigma_max, spectrum

# (k1, k2, out, in, grid): square, tall, wide; odd, even and non-square kernels.
SHAPES = [
    (3, 3, 4, 4, (6, 6)),
    (2, 2, 5, 3, (5, 4)),
    (4, 4, 2, 6, (6, 7)),
    (3, 1, 3, 2, (5, 5)),
    (1, 1, 3, 3, (4, 4)),
]


@pytest.mark.parametrize("padding", ["circular", "same"])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_sqrt_taps_bound_on_any_kernel(shape: tuple[int, ...], padding: str) -> None:
    """||conv_W|| <= sqrt(T) ||W_mat||_2 for arbitrary kernels, against the dense operator SVD."""
    k1, k2, n_out, n_in, grid = shape
    rng = np.random.default_rng(7)
    for _ in range(5):
        weight = torch.from_numpy(rng.standard_normal((n_out, n_in, k1, k2)))
        dense_norm = float(np.linalg.norm(operator_matrix(weight, grid, padding), 2))
        matrix_norm = float(np.linalg.norm(weight.reshape(n_out, -1).numpy(), 2))
        size = n_out * grid[0] * grid[1]
        assert dense_norm <= (k1 * k2) ** 0.5 * matrix_norm * (
            1 + orthogonality_tolerance(np.float64, size)
        )


@pytest.mark.parametrize("kernel_size", [1, 2, 3, 4])
def test_sqrt_taps_scaling_is_attained(kernel_size: int) -> None:
    """One channel, equal taps: the RKO layer has sigma_max = 1 exactly, so 1/sqrt(T) is needed."""
    layer = RKOConv2d(1, 1, kernel_size, bias=False).double()
    with torch.no_grad():
        layer.raw_weight.fill_(0.3)
    measured = sigma_max(layer.weight, (6, 6))
    assert abs(measured - 1.0) <= orthogonality_tolerance(np.float64, 36)


CONFIGS = [(4, 4, 3, 1), (3, 6, 4, 1), (6, 2, 2, 1), (2, 3, 4, 2), (8, 8, 5, 1)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("padding", ["circular", "same"])
@pytest.mark.parametrize("config", CONFIGS, ids=str)
def test_layer_claim_holds(config: tuple[int, ...], padding: str, dtype: torch.dtype) -> None:
    """sigma_max(layer) <= lipschitz_bound() (1) + Björck's rounding, at several input sizes."""
    in_c, out_c, k, stride = config
    torch.manual_seed(3)
    layer = RKOConv2d(in_c, out_c, k, stride=stride, padding=padding).to(dtype)
    weight = layer.weight
    n = min(weight.shape[0], weight[0].numel())
    tolerance = matrix_orthogonality_tolerance(dtype, n)
    for size in (k // stride, 8 // stride):
        grid = (size, size)
        measured = sigma_max(weight, grid, padding)
        assert measured <= layer.lipschitz_bound() + tolerance, (grid, measured)


def test_layer_is_rescaled_semi_orthogonal_matrix() -> None:
    """With the default iterations the reshaped kernel is sqrt(T)^-1 times a semi-orthogonal Q."""
    torch.manual_seed(0)
    for in_c, out_c, k in [(4, 4, 3), (2, 30, 3), (16, 3, 2)]:
        layer = RKOConv2d(in_c, out_c, k).double()
        q = layer.weight.detach().reshape(out_c, -1) * (k * k) ** 0.5
        gram = q @ q.T if q.shape[0] <= q.shape[1] else q.T @ q
        gap = float(torch.linalg.matrix_norm(gram - torch.eye(gram.shape[0], dtype=gram.dtype), 2))
        assert gap <= matrix_orthogonality_tolerance(np.float64, gram.shape[0])


@pytest.mark.parametrize("iters", [1, 2, 5])
def test_bjorck_never_overshoots(iters: int) -> None:
    """From ||A_0||_2 = 1 Björck raises singular values toward 1 without passing it."""
    torch.manual_seed(1)
    matrix = torch.randn(6, 20, dtype=torch.float64) @ torch.diag(
        torch.logspace(-3, 0, 20, dtype=torch.float64)
    )
    q = bjorck_semi_orthogonal(matrix, iters)
    values = torch.linalg.svdvals(q)
    assert float(values.max()) <= 1 + matrix_orthogonality_tolerance(np.float64, 6)
    before = torch.linalg.svdvals(matrix) / torch.linalg.svdvals(matrix).max()
    assert bool(torch.all(values >= before - 1e-15))


def test_every_spectrum_value_below_one_at_several_sizes() -> None:
    """The whole spectrum (not only its max) lies in [0, 1]: RKO is contracting, not GNP."""
    torch.manual_seed(5)
    layer = RKOConv2d(4, 4, 3).double()
    values = spectrum(layer.weight, (9, 9))
    assert float(values.max()) <= 1 + orthogonality_tolerance(np.float64, 4 * 81)
    assert float(values.min()) < 0.9  # strictly contracting somewhere: not orthogonal
