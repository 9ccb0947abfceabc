"""The reference circular convolution against torch, the dense operator and its adjoint."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from gnpcheck.errors import InvalidArgumentError
from gnpcheck.reference import (
    block_conv,
    circular_conv,
    circular_conv_transpose,
    dense_operator,
    from_torch_layout,
    to_torch_layout,
)

# (taps, n_out, n_in, spatial): odd and even kernels, square, tall and wide channel counts.
CASES_2D = [
    ((3, 3), 4, 4, (5, 6)),
    ((2, 2), 3, 5, (4, 4)),
    ((4, 3), 5, 2, (7, 5)),
    ((1, 5), 2, 2, (3, 6)),
]
CASES_1D = [((3,), 4, 4, (6,)), ((2,), 3, 5, (4,)), ((4,), 5, 2, (7,)), ((1,), 2, 3, (2,))]
CASES = CASES_1D + CASES_2D


def _id(case: tuple[tuple[int, ...], int, int, tuple[int, ...]]) -> str:
    taps, n_out, n_in, spatial = case
    return f"k{'x'.join(map(str, taps))}-{n_out}from{n_in}-N{'x'.join(map(str, spatial))}"


def _torch_circular(kernel: np.ndarray, x: np.ndarray) -> np.ndarray:
    """torch.nn.functional.conv1d/2d after circular padding (K-1)//2 before, K-1-that after."""
    taps = kernel.shape[:-2]
    pad: list[int] = []
    for k in reversed(taps):  # F.pad lists the last axis first
        pad += [(k - 1) // 2, k - 1 - (k - 1) // 2]
    padded = F.pad(torch.from_numpy(x), pad, mode="circular")
    conv = F.conv1d if len(taps) == 1 else F.conv2d
    return conv(padded, torch.from_numpy(to_torch_layout(kernel))).numpy()


@pytest.mark.parametrize("case", CASES, ids=_id)
def test_circular_conv_matches_torch_in_float64(case: tuple) -> None:  # type: ignore[type-arg]
    taps, n_out, n_in, spatial = case
    rng = np.random.default_rng(0)
    kernel = rng.standard_normal((*taps, n_out, n_in))
    x = rng.standard_normal((3, n_in, *spatial))
    np.testing.assert_allclose(
        circular_conv(kernel, x), _torch_circular(kernel, x), rtol=0, atol=1e-12
    )


@pytest.mark.parametrize("case", CASES, ids=_id)
def test_dense_operator_matches_circular_conv_and_transpose_is_its_adjoint(case: tuple) -> None:  # type: ignore[type-arg]
    taps, n_out, n_in, spatial = case
    rng = np.random.default_rng(1)
    kernel = rng.standard_normal((*taps, n_out, n_in))
    matrix = dense_operator(kernel, spatial)
    x = rng.standard_normal((n_in, *spatial))
    y = rng.standard_normal((n_out, *spatial))
    np.testing.assert_allclose(
        matrix @ x.reshape(-1), circular_conv(kernel, x).reshape(-1), atol=1e-12
    )
    np.testing.assert_allclose(
        matrix.T @ y.reshape(-1), circular_conv_transpose(kernel, y).reshape(-1), atol=1e-12
    )


def test_layout_round_trip_and_no_flip() -> None:
    kernel = np.arange(2 * 3 * 4 * 5, dtype=float).reshape(2, 3, 4, 5)
    weight = to_torch_layout(kernel)
    assert weight.shape == (4, 5, 2, 3)
    assert weight[1, 2, 0, 1] == kernel[0, 1, 1, 2]
    np.testing.assert_array_equal(from_torch_layout(weight), kernel)


@pytest.mark.parametrize("spatial_ndim", [1, 2])
def test_block_conv_is_operator_composition_for_odd_kernels(spatial_ndim: int) -> None:
    rng = np.random.default_rng(2)
    x_kernel = rng.standard_normal((*(3,) * spatial_ndim, 4, 3))
    y_kernel = rng.standard_normal((*(5,) * spatial_ndim, 3, 2))
    signal = rng.standard_normal((2, *(9,) * spatial_ndim))
    composed = circular_conv(block_conv(x_kernel, y_kernel), signal)
    np.testing.assert_allclose(
        composed, circular_conv(x_kernel, circular_conv(y_kernel, signal)), atol=1e-11
    )


def test_block_conv_is_the_polynomial_product() -> None:
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((3, 2, 2)), rng.standard_normal((2, 2, 2))
    z = 0.7 - 0.2j
    evaluate = lambda k: sum(k[i] * z ** (-i) for i in range(k.shape[0]))  # noqa: E731
    np.testing.assert_allclose(evaluate(block_conv(x, y)), evaluate(x) @ evaluate(y), atol=1e-12)


BAD = [
    (
        "kernel-larger-than-input",
        lambda: circular_conv(np.ones((5, 2, 2)), np.ones((2, 4))),
        "kernel size 5",
    ),
    (
        "channels",
        lambda: circular_conv(np.ones((3, 2, 2)), np.ones((3, 6))),
        r"needs \(\.\.\., 2, N\)",
    ),
    ("kernel-ndim", lambda: circular_conv(np.ones((2, 2)), np.ones((2, 4))), "3 or 4 dimensions"),
    ("empty-kernel", lambda: circular_conv(np.ones((0, 2, 2)), np.ones((2, 4))), "at least 1"),
    (
        "dense-shape",
        lambda: dense_operator(np.ones((3, 3, 2, 2)), (16, 8, 8)),
        "spatial shape as 2 int",
    ),
    ("dense-small", lambda: dense_operator(np.ones((3, 3, 2, 2)), (2, 8)), "kernel size 3"),
    ("inf", lambda: circular_conv(np.full((1, 1, 1), np.inf), np.ones((1, 2))), "NaN or infinite"),
    (
        "mixed-ndim",
        lambda: block_conv(np.ones((2, 2, 2)), np.ones((2, 2, 2, 2))),
        "must be 1-D kernels",
    ),
    (
        "inner-channels",
        lambda: block_conv(np.ones((2, 2, 3)), np.ones((2, 2, 2))),
        "3 input channels",
    ),
]


@pytest.mark.parametrize(("call", "match"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_arguments_are_rejected_with_a_named_error(call: object, match: str) -> None:
    with pytest.raises(InvalidArgumentError, match=match):
        call()  # type: ignore[operator]
