"""The torch kernel build equals the reference's ``bcop_kernel_1d/2d`` for the same factors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, note

from gnpcheck.errors import InvalidArgumentError
from gnpcheck.nn.kernel import bcop_kernel
from gnpcheck.reference import BCOPFactors, random_bcop_1d, random_bcop_2d, to_torch_layout
from gnpcheck.strategies import bcop_factors
from gnpcheck.tolerances import FLOAT64_KERNEL_AGREEMENT


def _torch_kernel(
    factors: BCOPFactors, rows: int | None = None, columns: int | None = None
) -> np.ndarray:
    projectors = list(factors.Ps) + list(factors.Qs or ())
    n = factors.H.shape[0]
    stacked = torch.tensor(np.array(projectors)).reshape(-1, n, n)
    h = torch.tensor(factors.H)[:rows]
    return bcop_kernel(h, stacked, factors.spatial_ndim, columns).numpy()


@given(bcop_factors())
def test_kernel_equals_reference_for_any_ranks(factors: BCOPFactors) -> None:
    note(f"n={factors.H.shape[0]}, K={factors.kernel_size}, d={factors.spatial_ndim}")
    expected = to_torch_layout(factors.kernel())
    assert np.abs(_torch_kernel(factors) - expected).max() <= FLOAT64_KERNEL_AGREEMENT


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5, 6])
@pytest.mark.parametrize("n", [1, 3, 8])
def test_kernel_equals_reference_2d(n: int, k: int) -> None:
    factors = random_bcop_2d(n, k, np.random.default_rng(n * 10 + k))
    expected = to_torch_layout(factors.kernel())
    assert np.abs(_torch_kernel(factors) - expected).max() <= FLOAT64_KERNEL_AGREEMENT


@pytest.mark.parametrize("k", [1, 2, 5])
def test_kernel_equals_reference_1d(k: int) -> None:
    factors = random_bcop_1d(6, k, np.random.default_rng(k))
    expected = to_torch_layout(factors.kernel())
    assert np.abs(_torch_kernel(factors) - expected).max() <= FLOAT64_KERNEL_AGREEMENT


def test_rows_and_columns_are_slices_of_the_square_kernel() -> None:
    factors = random_bcop_2d(6, 3, np.random.default_rng(0))
    full = to_torch_layout(factors.kernel())
    assert np.abs(_torch_kernel(factors, rows=4) - full[:4]).max() <= FLOAT64_KERNEL_AGREEMENT
    narrow = _torch_kernel(factors, columns=2)
    assert narrow.shape == (6, 2, 3, 3)
    assert narrow.flags["C_CONTIGUOUS"]
    assert np.abs(narrow - full[:, :2]).max() <= FLOAT64_KERNEL_AGREEMENT


@pytest.mark.parametrize(
    ("d", "k", "rows", "columns"), [(1, 3, 4, None), (2, 2, 4, None), (2, 3, 3, 2), (2, 4, 4, 4)]
)
def test_hand_written_backward_matches_finite_differences(
    d: int, k: int, rows: int, columns: int | None
) -> None:
    """The kernel's hand-written backward against central differences (any matrices: the
    backward is the product rule, it needs neither orthogonality nor projectors)."""
    generator = torch.Generator().manual_seed(d * 10 + k)
    h = torch.randn(rows, 4, dtype=torch.float64, generator=generator, requires_grad=True)
    p = torch.randn(d * (k - 1), 4, 4, dtype=torch.float64, generator=generator)
    p.requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: bcop_kernel(a, b, d, columns), (h, p))


def test_kernel_is_contiguous_torch_layout() -> None:
    h = torch.eye(4)
    w = bcop_kernel(h, torch.zeros(4, 4, 4), 2)
    assert w.shape == (4, 4, 3, 3)
    assert w.is_contiguous()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_projector_order_matters(seed: int) -> None:
    """Swapping a row projector with a column projector changes the kernel (order is pinned)."""
    factors = random_bcop_2d(4, 3, np.random.default_rng(seed))
    projectors = torch.tensor(np.array(list(factors.Ps) + list(factors.Qs or ())))
    swapped = projectors[[2, 1, 0, 3]]
    h = torch.tensor(factors.H)
    assert np.abs((bcop_kernel(h, projectors, 2) - bcop_kernel(h, swapped, 2)).numpy()).max() > 1e-3


@pytest.mark.parametrize(
    ("h", "p", "d", "match"),
    [
        (torch.eye(3), torch.zeros(2, 4, 4), 2, "must be"),
        (torch.eye(3), torch.zeros(3, 3, 3), 2, "must be"),
        (torch.eye(3), torch.zeros(2, 3, 3), 3, "spatial_ndim=3"),
    ],
    ids=["channels", "odd-count-2d", "spatial-ndim"],
)
def test_bad_shapes(h: torch.Tensor, p: torch.Tensor, d: int, match: str) -> None:
    with pytest.raises(InvalidArgumentError, match=match):
        bcop_kernel(h, p, d)
