"""The evaluation kernel cache is used, and is never stale (docs/layers.rst, Note [kernel cache]).

Oracle: a new layer of the same configuration loaded with the same ``state_dict`` (its cache
is empty, so it builds the kernel from scratch).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from gnpcheck.nn import BCOPConv2d, BjorckLinear
from gnpcheck.nn.bcop import _BCOPConvNd
from gnpcheck.tolerances import FLOAT64_KERNEL_AGREEMENT

from ._helpers import BCOP_CLASSES, layer_input, make_bcop, same_config

SIZE = 6


def _fresh_output(layer: _BCOPConvNd, x: torch.Tensor) -> torch.Tensor:
    oracle = same_config(layer, seed=99)
    oracle.load_state_dict(layer.state_dict())
    with torch.no_grad():
        return oracle(x)


def _cached_output(layer: _BCOPConvNd, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return layer(x)


def _train_step(layer: torch.nn.Module, x: torch.Tensor) -> None:
    optimizer = torch.optim.Adam(layer.parameters(), lr=1e-2)
    optimizer.zero_grad()
    layer(x).square().mean().backward()
    optimizer.step()


@pytest.fixture
def build_count(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the kernel builds of BCOP layers."""
    calls = [0]
    original = _BCOPConvNd._build_kernel

    def counting(self: _BCOPConvNd) -> torch.Tensor:
        calls[0] += 1
        return original(self)

    monkeypatch.setattr(_BCOPConvNd, "_build_kernel", counting)
    return calls


@pytest.mark.parametrize("cls", BCOP_CLASSES)
def test_cache_is_used_without_grad_and_bypassed_with_grad(
    cls: type[_BCOPConvNd], build_count: list[int]
) -> None:
    layer = make_bcop(cls, 4, 4, 3).eval()
    x = layer_input(layer, SIZE)
    for _ in range(3):
        _cached_output(layer, x)
    assert build_count[0] == 1
    with torch.inference_mode():
        layer(x)
    assert build_count[0] == 1
    layer(x)  # grad enabled, parameters require grad: always a fresh differentiable build
    layer(x)
    assert build_count[0] == 3


def _load(layer: _BCOPConvNd, x: torch.Tensor) -> None:
    layer.load_state_dict(same_config(layer, seed=5).state_dict())


def _data_write(layer: _BCOPConvNd, x: torch.Tensor) -> None:
    layer.r_tilde.data.mul_(-1.5).add_(0.25)  # bypasses the version counter


def _in_place_under_no_grad(layer: _BCOPConvNd, x: torch.Tensor) -> None:
    with torch.no_grad():
        layer.h_tilde.add_(0.1)


def _swap_data(layer: _BCOPConvNd, x: torch.Tensor) -> None:
    layer.h_tilde.data = same_config(layer, seed=6).h_tilde.data.clone()


def _modes(layer: _BCOPConvNd, x: torch.Tensor) -> None:
    layer.train()
    _train_step(layer, x)
    layer.eval()


EVENTS: dict[str, Callable[[_BCOPConvNd, torch.Tensor], None]] = {
    "optimizer-step": _train_step,
    "load_state_dict": _load,
    "data-write": _data_write,
    "in-place-no-grad": _in_place_under_no_grad,
    "data-assignment": _swap_data,
    "train-eval-switch-with-step": _modes,
}


@pytest.mark.parametrize("event", EVENTS.values(), ids=EVENTS.keys())
@pytest.mark.parametrize("cls", BCOP_CLASSES)
def test_cache_is_fresh_after(cls: type[_BCOPConvNd], event: Callable[..., None]) -> None:
    layer = make_bcop(cls, 4, 4, 3).eval()
    x = layer_input(layer, SIZE)
    before = _cached_output(layer, x)
    event(layer, x)
    after = _cached_output(layer, x)
    assert torch.equal(after, _fresh_output(layer, x))
    assert (after - before).abs().max() > 1e-3  # the event did change the layer


def test_mode_switch_alone_keeps_the_same_function() -> None:
    layer = make_bcop(BCOPConv2d, 4, 4, 3)
    x = layer_input(layer, SIZE)
    outputs = []
    for mode in (True, False, True, False):
        layer.train(mode)
        outputs.append(_cached_output(layer, x))
        outputs.append(layer(x).detach())
    assert all(torch.equal(outputs[0], y) for y in outputs)


@pytest.mark.parametrize("cls", BCOP_CLASSES)
def test_cache_is_fresh_after_dtype_round_trip(cls: type[_BCOPConvNd]) -> None:
    layer = make_bcop(cls, 4, 4, 3)
    x = layer_input(layer, SIZE)
    _cached_output(layer, x)
    layer.float()
    y32 = _cached_output(layer, x.float())
    assert y32.dtype == torch.float32
    assert torch.equal(y32, _fresh_output(layer, x.float()))
    with torch.no_grad():
        layer.h_tilde.mul_(-1)
    layer.double()
    assert torch.equal(_cached_output(layer, x), _fresh_output(layer, x))


def test_no_grad_kernel_never_reaches_the_differentiable_path() -> None:
    layer = make_bcop(BCOPConv2d, 4, 4, 3)
    x = layer_input(layer, SIZE)
    _cached_output(layer, x)
    layer(x).square().sum().backward()
    assert layer.h_tilde.grad is not None
    assert layer.h_tilde.grad.abs().max() > 0


def test_inference_mode_kernel_is_not_reused_for_input_gradients() -> None:
    """A frozen layer: parameters without grad, input with grad, after an inference-mode call."""
    layer = make_bcop(BCOPConv2d, 4, 4, 3).requires_grad_(False)
    x = layer_input(layer, SIZE)
    with torch.inference_mode():
        layer(x)
    z = x.clone().requires_grad_()
    (grad,) = torch.autograd.grad(layer(z).sum(), z)
    assert grad.shape == z.shape


def test_editing_the_returned_weight_does_not_corrupt_the_cache() -> None:
    layer = make_bcop(BCOPConv2d, 4, 4, 3).eval()
    x = layer_input(layer, SIZE)
    with torch.no_grad():
        before = layer(x)
        layer.weight.mul_(0)
        assert torch.equal(layer(x), before)


def test_changed_configuration_is_a_cache_miss() -> None:
    layer = make_bcop(BCOPConv2d, 4, 4, 3, orthogonalizer="bjorck", bjorck_iters=30)
    with torch.no_grad():
        layer.h_tilde.mul_(torch.linspace(0.5, 2.0, 4))  # not orthogonal any more
    x = layer_input(layer, SIZE)
    converged = _cached_output(layer, x)
    layer.bjorck_iters = 1
    assert not torch.equal(_cached_output(layer, x), converged)


def test_bjorck_linear_cache_is_fresh_after_a_step() -> None:
    layer = BjorckLinear(5, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    x = torch.randn(4, 5, dtype=torch.float64)
    with torch.no_grad():
        before = layer(x)
    _train_step(layer, x)
    with torch.no_grad():
        after = layer(x)
        expected = torch.nn.functional.linear(x, layer._build_weight(), layer.bias)
    assert torch.equal(after, expected)
    assert not torch.equal(after, before)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cache_is_fresh_after_moving_to_cuda_and_back() -> None:
    layer = make_bcop(BCOPConv2d, 4, 4, 3)
    x = layer_input(layer, SIZE)
    on_cpu = _cached_output(layer, x)
    layer.cuda()
    on_gpu = _cached_output(layer, x.cuda())
    assert on_gpu.device.type == "cuda"
    assert (on_gpu.cpu() - on_cpu).abs().max() <= FLOAT64_KERNEL_AGREEMENT
    with torch.no_grad():
        layer.h_tilde.mul_(-1)
    layer.cpu()
    assert torch.equal(_cached_output(layer, x), _fresh_output(layer, x))


def test_torch_func_transforms_bypass_the_cache() -> None:
    """vmap over stacked parameters (an ensemble) under no_grad, then the plain layer again."""
    layer = make_bcop(BCOPConv2d, 3, 3, 3)
    x = layer_input(layer, SIZE)
    plain = _cached_output(layer, x)
    stacked = {k: torch.stack([v.detach(), -v.detach()]) for k, v in layer.named_parameters()}
    with torch.no_grad():
        ensemble = torch.func.vmap(lambda p: torch.func.functional_call(layer, p, (x,)))(stacked)
    assert (ensemble[0] - plain).abs().max().item() <= FLOAT64_KERNEL_AGREEMENT
    assert torch.equal(_cached_output(layer, x), plain)
    jacobian = torch.func.jacrev(lambda z: layer(z[None])[0])(x[0])
    assert jacobian.shape == (3, SIZE, SIZE, 3, SIZE, SIZE)
