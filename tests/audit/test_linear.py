"""What the audit establishes about a target: affinity, shift equivariance, its kernel or matrix.

Oracles: the reference kernel the target was built from, and the SVD of the reference's
explicit operator matrix.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gnpcheck.audit.linear import (
    check_affine,
    check_shift_equivariant,
    dense_matrix,
    extract_convolution,
)
from gnpcheck.audit.sampler import Sampler
from gnpcheck.reference import circular_conv, dense_operator, from_torch_layout

from ._targets import orthogonal_conv

CPU = torch.device("cpu")


def _map(module: nn.Module):  # type: ignore[no-untyped-def]
    def f(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return module(x)

    return f


def test_affine_and_not() -> None:
    sampler = Sampler(0, (4, 8, 8), torch.float64, CPU)
    conv = orthogonal_conv()
    check = check_affine(_map(conv), sampler)
    assert check.affine
    assert check.witness is None
    assert torch.allclose(check.offset, conv(torch.zeros(1, 4, 8, 8, dtype=torch.float64))[0])
    check = check_affine(_map(nn.Sequential(conv, nn.ReLU())), sampler)
    assert not check.affine
    assert check.residual > 1e-3
    assert check.witness is not None


def test_a_clamp_far_from_the_data_is_seen_at_the_large_scale() -> None:
    sampler = Sampler(0, (4, 8, 8), torch.float64, CPU)
    clamped = nn.Sequential(orthogonal_conv(), nn.Hardtanh(-100.0, 100.0))
    assert not check_affine(_map(clamped), sampler).affine


@pytest.mark.parametrize(
    ("padding", "expected"), [((1, 1, 1, 1), True), ((2, 0, 2, 0), True), ((0, 0, 0, 0), False)]
)
def test_shift_equivariance(padding: tuple[int, int, int, int], expected: bool) -> None:
    sampler = Sampler(1, (4, 8, 8), torch.float64, CPU)
    weight = orthogonal_conv().weight.detach()

    def g(x: torch.Tensor) -> torch.Tensor:
        padded = F.pad(x, padding, mode="circular") if any(padding) else F.pad(x, (1, 1, 1, 1))
        return F.conv2d(padded, weight)

    assert check_shift_equivariant(g, sampler) is expected


@pytest.mark.parametrize(
    ("padding", "shift"),
    [((1, 1, 1, 1), (0, 0)), ((2, 0, 2, 0), (1, 1)), ((0, 2, 1, 1), (0, 7))],
    ids=["centered", "causal", "anti-causal-width"],
)
def test_extracted_kernel_is_the_kernel(padding: tuple[int, ...], shift: tuple[int, int]) -> None:
    conv = orthogonal_conv(seed=3, bias=False)
    weight = conv.weight.detach()
    sampler = Sampler(2, (4, 8, 8), torch.float64, CPU)

    def g(x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.pad(x, padding, mode="circular"), weight)

    model = extract_convolution(g, sampler)
    assert model is not None
    assert model.shift == shift
    np.testing.assert_allclose(model.kernel, from_torch_layout(weight.numpy()), rtol=0, atol=1e-15)
    x = torch.randn(2, 4, 8, 8, dtype=torch.float64)
    rolled = np.roll(circular_conv(model.kernel, x.numpy()), shift, axis=(-2, -1))
    np.testing.assert_allclose(g(x).numpy(), rolled, rtol=0, atol=1e-12)


def test_extraction_with_more_output_channels_and_in_1d() -> None:
    torch.manual_seed(0)
    wide = nn.Conv2d(3, 5, 3, padding=1, padding_mode="circular", bias=False).double()
    model = extract_convolution(_map(wide), Sampler(0, (3, 7, 9), torch.float64, CPU))
    assert model is not None
    assert model.kernel.shape == (3, 3, 5, 3)
    np.testing.assert_allclose(
        model.kernel, from_torch_layout(wide.weight.detach().numpy()), rtol=0, atol=1e-15
    )
    line = nn.Conv1d(2, 2, 5, padding=2, padding_mode="circular", bias=False).double()
    model = extract_convolution(_map(line), Sampler(0, (2, 12), torch.float64, CPU))
    assert model is not None
    assert model.kernel.shape == (5, 2, 2)


def test_a_full_torus_kernel_is_extracted_too() -> None:
    # A 7x7 kernel on a 7x7 input: every tap is in the support.
    torch.manual_seed(1)
    conv = nn.Conv2d(2, 2, 7, padding=3, padding_mode="circular", bias=False).double()
    model = extract_convolution(_map(conv), Sampler(0, (2, 7, 7), torch.float64, CPU))
    assert model is not None
    assert model.kernel.shape[:2] == (7, 7)


def test_a_model_that_does_not_reproduce_the_target_is_refused() -> None:
    # Shift-equivariant on the test inputs is not enough: a position-dependent gain fails the
    # verification of the extracted kernel.
    weight = orthogonal_conv(bias=False).weight.detach()
    gain = torch.ones(8, 8, dtype=torch.float64)
    gain[5, 3] = 2.0

    def g(x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="circular"), weight) * gain

    assert extract_convolution(g, Sampler(0, (4, 8, 8), torch.float64, CPU)) is None


def test_dense_matrix_is_the_operator() -> None:
    conv = orthogonal_conv(seed=4, bias=False)
    matrix = dense_matrix(_map(conv), Sampler(0, (4, 6, 6), torch.float64, CPU))
    assert matrix is not None
    kernel = from_torch_layout(conv.weight.detach().numpy())
    np.testing.assert_allclose(matrix, dense_operator(kernel, (6, 6)), rtol=0, atol=1e-15)
