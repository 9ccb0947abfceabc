"""OSSN: power iteration on the operator, a lower estimate that converges to sigma_max."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gnpcheck.errors import InvalidArgumentError
from gnpcheck.nn.baselines import OSSNConv2d
from gnpcheck.tolerances import orthogonality_tolerance

from ._oracles import operator_matrix, sigma_max, spectrum

#: Relative error |sigma_hat - sigma_max| / sigma_max allowed after convergence, beyond the
#: width of the top cluster. Power iteration on A^T A from a vector at angle theta_0 to the
#: top singular space gives 1 - sigma_hat^2 / sigma_max^2 <= (1 - rho_c^2) + tan^2(theta_0)
#: rho^(4 n): rho_c the smallest ratio sigma_i / sigma_max inside the top cluster (values within
#: _CLUSTER of sigma_max), rho the largest ratio outside it. _converge runs n steps with
#: dim * rho^(4 n) <= CONVERGED_RTOL (tan^2 theta_0 ~ dim for a random start) and allows
#: (1 - rho_c) + CONVERGED_RTOL. A wrong adjoint or padding gives errors of O(1e-2) or more.
CONVERGED_RTOL = 1e-9
#: Singular values within this relative distance of sigma_max form the top cluster: power
#: iteration does not separate them in a reasonable number of steps (one kernel below has a
#: relative gap of 1.7e-5, which would need 4e5 steps), but they barely change the estimate.
_CLUSTER = 1e-3

CONFIGS = [(4, 4, 3, 1), (3, 5, 4, 1), (5, 2, 2, 1), (2, 3, 4, 2)]
SIZE = 8


def _layer(config: tuple[int, ...], padding: str, scale: float = 3.0) -> OSSNConv2d:
    in_c, out_c, k, stride = config
    torch.manual_seed(0)
    layer = OSSNConv2d(in_c, out_c, k, stride=stride, padding=padding, input_size=SIZE).double()
    with torch.no_grad():
        layer.raw_weight.mul_(scale)  # sigma_max(A_V) > 1: the normalization is active
    return layer


def _grid(layer: OSSNConv2d) -> tuple[int, int]:
    return SIZE // layer.stride, SIZE // layer.stride


def _singular_values(layer: OSSNConv2d, padding: str) -> np.ndarray:
    if padding == "circular":
        return spectrum(layer.raw_weight, _grid(layer)).ravel()
    return np.linalg.svd(operator_matrix(layer.raw_weight, _grid(layer), padding), compute_uv=False)


def _converge(layer: OSSNConv2d, padding: str) -> tuple[float, float, float]:
    """Run enough power iterations; return (estimate, exact sigma_max, allowed relative error)."""
    values = _singular_values(layer, padding)
    top = float(values.max())
    cluster = values[values >= top * (1 - _CLUSTER)]
    rho = float(values[values < top * (1 - _CLUSTER)].max()) / top
    dim = layer.power_vector.numel()
    steps = math.ceil(math.log(CONVERGED_RTOL / dim) / (4 * math.log(rho)))
    estimate = layer.power_iteration_(steps)
    return estimate, top, 1 - float(cluster.min()) / top + CONVERGED_RTOL


def _rounding(layer: OSSNConv2d) -> float:
    grid = _grid(layer)
    return orthogonality_tolerance(np.float64, layer.out_channels * grid[0] * grid[1])


@pytest.mark.parametrize("padding", ["circular", "same"])
@pytest.mark.parametrize("config", CONFIGS, ids=str)
def test_estimate_is_lower_and_converges(config: tuple[int, ...], padding: str) -> None:
    layer = _layer(config, padding)
    exact = sigma_max(layer.raw_weight, _grid(layer), padding)
    estimates = [layer.power_iteration_(1) for _ in range(5)]
    converged, exact_from_values, rtol = _converge(layer, padding)
    assert abs(exact_from_values - exact) <= _rounding(layer) * exact
    for estimate in [*estimates, converged]:
        assert estimate <= exact * (1 + _rounding(layer))
    assert abs(converged - exact) <= rtol * exact


@pytest.mark.parametrize("padding", ["circular", "same"])
@pytest.mark.parametrize("config", CONFIGS, ids=str)
def test_claim_holds_after_convergence(config: tuple[int, ...], padding: str) -> None:
    layer = _layer(config, padding)
    _, _, rtol = _converge(layer, padding)
    measured = sigma_max(layer.weight, _grid(layer), padding)
    assert measured <= layer.lipschitz_bound() * (1 + rtol)
    assert measured >= 1 - _rounding(layer)  # a lower estimate never divides below 1


@pytest.mark.parametrize("config", CONFIGS, ids=str)
def test_claim_is_only_as_good_as_convergence(config: tuple[int, ...]) -> None:
    """Unconverged, the lower estimate leaves the layer's norm at or above 1 (never below)."""
    layer = _layer(config, "circular")
    layer.power_iteration_(1)
    measured = sigma_max(layer.weight, _grid(layer))
    assert measured >= 1 - _rounding(layer)


def test_float32_claim_after_convergence() -> None:
    torch.manual_seed(2)
    layer = OSSNConv2d(8, 8, 3, input_size=SIZE)
    with torch.no_grad():
        layer.raw_weight.mul_(3)
    _, _, rtol = _converge(layer, "circular")
    tolerance = rtol + orthogonality_tolerance(torch.float32, 8 * SIZE * SIZE)
    assert sigma_max(layer.weight, (SIZE, SIZE)) <= layer.lipschitz_bound() + tolerance


def test_small_kernel_is_left_unchanged() -> None:
    """One-sided: a kernel with sigma_max < 1 is not scaled up."""
    layer = _layer((3, 3, 3, 1), "circular", scale=0.05)
    layer.power_iteration_(50)
    torch.testing.assert_close(layer.weight, layer.raw_weight, rtol=0, atol=0)


def test_training_forward_advances_the_vector_and_eval_does_not() -> None:
    layer = _layer((3, 3, 3, 1), "circular")
    x = torch.randn(2, 3, SIZE, SIZE, dtype=torch.float64)
    before = layer.power_vector.clone()
    layer(x)
    assert float((layer.power_vector - before).abs().max()) > 0
    layer.eval()
    stored = layer.power_vector.clone()
    first = layer(x)
    torch.testing.assert_close(layer(x), first, rtol=0, atol=0)
    torch.testing.assert_close(layer.power_vector, stored, rtol=0, atol=0)


def test_eval_runs_more_iterations_than_training() -> None:
    """Evaluation refines a copy of u by eval_power_iterations: closer to sigma_max."""
    layer = _layer((4, 4, 3, 1), "circular")
    exact = sigma_max(layer.raw_weight, _grid(layer))
    train_sigma = float((layer.raw_weight / layer.weight).detach().max())
    layer.eval()
    eval_sigma = float((layer.raw_weight / layer.weight).detach().max())
    assert train_sigma < eval_sigma <= exact * (1 + _rounding(layer))


def test_adjoint_is_the_transpose() -> None:
    """<A x, y> = <x, A^T y> for both paddings, odd/even and non-square kernels (power
    iteration needs it)."""
    generator = torch.Generator().manual_seed(0)
    for padding in ("circular", "same"):
        for k in (1, 2, 3, 4, (2, 3), (3, 2)):
            layer = OSSNConv2d(3, 2, k, padding=padding, input_size=6).double()
            x = torch.randn(1, 3, 6, 6, dtype=torch.float64, generator=generator)
            y = torch.randn(1, 2, 6, 6, dtype=torch.float64, generator=generator)
            w = layer.raw_weight.detach()
            left = float((layer._linear(x, w) * y).sum())
            right = float((x * layer._linear_adjoint(y, w)).sum())
            assert abs(left - right) <= 1e-12 * (abs(left) + 1)


def test_load_into_unsized_layer_takes_the_vector_shape() -> None:
    source = _layer((2, 3, 4, 2), "circular")
    source.power_iteration_(3)
    target = OSSNConv2d(2, 3, 4, stride=2).double()
    assert target.input_size is None
    target.load_state_dict(source.state_dict())
    assert target.input_size == (SIZE, SIZE)
    torch.testing.assert_close(target.power_vector, source.power_vector, rtol=0, atol=0)


def test_load_of_another_size_is_rejected() -> None:
    source = _layer((2, 2, 3, 1), "circular")
    target = OSSNConv2d(2, 2, 3, input_size=6).double()
    with pytest.raises(RuntimeError, match="power_vector"):
        target.load_state_dict(source.state_dict())


def test_power_iteration_arguments() -> None:
    layer = OSSNConv2d(2, 2, 3)
    with pytest.raises(
        InvalidArgumentError, match=r"input_size=None, but this needs the input size"
    ):
        layer.power_iteration_(3)
    layer = OSSNConv2d(2, 2, 3, input_size=6)
    with pytest.raises(InvalidArgumentError, match=r"iterations=0, but it must be at least 1"):
        layer.power_iteration_(0)
