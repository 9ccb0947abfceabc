"""Second derivatives through the hand-written backwards are exact, or refused.

The BCOP Functions save intermediates (QR factors, stage inputs) as non-differentiable
outputs; a backward that used them under ``create_graph=True`` would miss the terms through
them. Oracles: ``gradgradcheck`` (central differences of the first derivatives), and central
differences of the layer's gradient for a Hessian-vector product.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from gnpcheck.errors import UnsupportedOperationError
from gnpcheck.nn import BCOPConv1d, BCOPConv2d, BjorckLinear, MaxMin
from gnpcheck.nn.bcop import _BCOPConvNd
from gnpcheck.nn.qr_kernel import qr_bcop_kernel

from ._helpers import HAND_DIFFERENTIATED, gaussian_leaf

FUNCTIONS = [*HAND_DIFFERENTIATED, ("maxmin", MaxMin(), (gaussian_leaf(2, 4, 3),))]


@pytest.mark.parametrize(
    ("function", "inputs"), [f[1:] for f in FUNCTIONS], ids=[f[0] for f in FUNCTIONS]
)
def test_gradgradcheck(
    function: Callable[..., torch.Tensor], inputs: tuple[torch.Tensor, ...]
) -> None:
    assert torch.autograd.gradgradcheck(function, inputs)


def _loss(layer: torch.nn.Module, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    return (layer(x) * weights).sum()


@pytest.mark.parametrize(
    "layer",
    [
        BCOPConv2d(3, 3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0)),
        BCOPConv1d(2, 4, 4, stride=2, dtype=torch.float64),
        BCOPConv2d(3, 3, 2, orthogonalizer="bjorck", bjorck_iters=30, dtype=torch.float64),
    ],
    ids=["2d-qr", "1d-strided", "2d-bjorck"],
)
def test_hessian_vector_product_matches_differences_of_gradients(layer: _BCOPConvNd) -> None:
    """``d/dt grad L(theta + t v)`` by central differences against the double backward."""
    x = torch.randn(2, layer.in_channels, *(6,) * layer.spatial_ndim, dtype=torch.float64)
    weights = torch.randn_like(layer(x))
    parameters = [layer.h_tilde, layer.r_tilde]
    directions = [torch.randn_like(p) for p in parameters]
    gradients = torch.autograd.grad(_loss(layer, x, weights), parameters, create_graph=True)
    inner = sum((g * v).sum() for g, v in zip(gradients, directions, strict=True))
    product = torch.autograd.grad(inner, parameters)

    def gradient_at(step: float) -> list[torch.Tensor]:
        with torch.no_grad():
            for p, v in zip(parameters, directions, strict=True):
                p.add_(step * v)
        result = torch.autograd.grad(_loss(layer, x, weights), parameters)
        with torch.no_grad():
            for p, v in zip(parameters, directions, strict=True):
                p.sub_(step * v)
        return list(result)

    step = 1e-5
    plus, minus = gradient_at(step), gradient_at(-step)
    for exact, high, low in zip(product, plus, minus, strict=True):
        difference = (high - low) / (2 * step)
        scale = max(difference.abs().max().item(), 1.0)
        assert (exact - difference).abs().max().item() <= 1e-6 * scale


def test_torch_func_hessian_of_the_qr_kernel_is_symmetric_and_matches_autograd() -> None:
    """``jacrev(jacrev)``: the backward runs under a transform, recomputing its intermediates."""
    h, r = gaussian_leaf(3, 3), gaussian_leaf(2, 3, 1, seed=1)
    weights = torch.randn(3, 3, 3, dtype=torch.float64)

    def loss(h_tilde: torch.Tensor) -> torch.Tensor:
        return (qr_bcop_kernel(h_tilde, r.detach(), 1, 3, 3, torch.float64) * weights).sum()

    hessian = torch.func.jacrev(torch.func.jacrev(loss))(h.detach()).reshape(9, 9)
    torch.testing.assert_close(hessian, hessian.mT, rtol=0, atol=1e-10)
    (gradient,) = torch.autograd.grad(loss(h), h, create_graph=True)
    rows = [torch.autograd.grad(gradient.flatten()[i], h, retain_graph=True)[0] for i in range(9)]
    torch.testing.assert_close(hessian, torch.stack(rows).reshape(9, 9), rtol=1e-9, atol=1e-10)


def test_torch_func_hessian_of_a_layer_equals_jacrev_twice() -> None:
    """Forward over reverse: the backward's recomputation is differentiated in forward mode."""
    layer = BCOPConv2d(2, 2, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    x = torch.randn(1, 2, 4, 4, dtype=torch.float64)
    parameters = {name: value.detach() for name, value in layer.named_parameters()}

    def loss(h_tilde: torch.Tensor) -> torch.Tensor:
        output = torch.func.functional_call(layer, {**parameters, "h_tilde": h_tilde}, (x,))
        return output.sin().sum()

    hessian = torch.func.hessian(loss)(parameters["h_tilde"])
    twice = torch.func.jacrev(torch.func.jacrev(loss))(parameters["h_tilde"])
    torch.testing.assert_close(hessian, twice, rtol=1e-9, atol=1e-10)


def test_polar_linear_layer_refuses_second_derivatives() -> None:
    layer = BjorckLinear(4, 3, orthogonalizer="polar", dtype=torch.float64)
    loss = layer(torch.randn(2, 4, dtype=torch.float64)).square().sum()
    with pytest.raises(UnsupportedOperationError, match="orthogonalizer='bjorck'"):
        torch.autograd.grad(loss, layer.weight_tilde, create_graph=True)


def test_bjorck_linear_layer_has_second_derivatives() -> None:
    layer = BjorckLinear(4, 3, dtype=torch.float64)
    loss = layer(torch.randn(2, 4, dtype=torch.float64)).square().sum()
    (gradient,) = torch.autograd.grad(loss, layer.weight_tilde, create_graph=True)
    (second,) = torch.autograd.grad(gradient.square().sum(), layer.weight_tilde)
    assert second.abs().max() > 0


def test_polar_linear_layer_has_no_forward_mode_so_no_torch_func_hessian() -> None:
    """Its backward could not be differentiated in forward mode exactly: an error, not a
    wrong Hessian."""
    layer = BjorckLinear(4, 3, orthogonalizer="polar", dtype=torch.float64)
    x = torch.randn(2, 4, dtype=torch.float64)
    parameters = {name: value.detach() for name, value in layer.named_parameters()}

    def loss(weight: torch.Tensor) -> torch.Tensor:
        output = torch.func.functional_call(layer, {**parameters, "weight_tilde": weight}, (x,))
        return output.sin().sum()

    with pytest.raises(NotImplementedError, match="jvp"):
        torch.func.hessian(loss)(parameters["weight_tilde"])
