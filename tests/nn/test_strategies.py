"""The layer strategies draw valid layers, and the layers they draw keep their claims."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, note
from hypothesis import strategies as st

from gnpcheck.errors import InvalidArgumentError, InvalidTypeError
from gnpcheck.nn import BCOPConv1d, BCOPConv2d, BjorckLinear, GroupSort, MaxMin
from gnpcheck.nn.strategies import bcop_layers, bjorck_linear_layers, gnp_activations, layer_inputs
from gnpcheck.tolerances import FLOAT64_KERNEL_AGREEMENT, gnp_tolerance, orthogonality_tolerance

from ._helpers import reference_forward


@given(st.data())
def test_drawn_layers_match_the_reference_and_keep_their_claims(data: st.DataObject) -> None:
    layer = data.draw(bcop_layers(orthogonalizer=data.draw(st.sampled_from(("qr", "bjorck")))))
    x = data.draw(layer_inputs(layer)).requires_grad_()
    note(f"{layer} on input {tuple(x.shape)}")
    y = layer(x)
    assert (
        np.abs(y.detach().numpy() - reference_forward(layer, x)).max() <= FLOAT64_KERNEL_AGREEMENT
    )
    assert (
        np.abs(layer.weight.detach().numpy() - layer.to_reference().torch_weight()).max()
        <= FLOAT64_KERNEL_AGREEMENT
    )
    smallest = layer.kernel_size[0]  # the circular spectrum needs the kernel to fit
    grid = tuple(max(side, smallest) for side in x.shape[2:])
    size = layer.channels * int(np.prod(grid))
    assert layer.orthogonality_defect(grid) <= orthogonality_tolerance(np.float64, size)
    if "gnp" in layer.claims:
        g = torch.randn(y.shape, dtype=torch.float64)
        (grad,) = torch.autograd.grad(y, x, g)
        ratio = grad.flatten(1).norm(dim=1) / g.flatten(1).norm(dim=1)
        assert (ratio - 1).abs().max().item() <= gnp_tolerance(np.float64, y[0].numel())


@given(bcop_layers(spatial_ndim=2, in_channels=3, out_channels=2, taps=2, stride=2, padding="same"))
def test_fixed_arguments_are_honoured(layer: BCOPConv2d) -> None:
    assert isinstance(layer, BCOPConv2d)
    assert (
        layer.in_channels,
        layer.out_channels,
        layer.kernel_size,
        layer.stride,
        layer.padding,
    ) == (
        3,
        2,
        (4, 4),
        2,
        "same",
    )


@given(bcop_layers(spatial_ndim=1, dtype=torch.float32))
def test_dtype_is_honoured(layer: BCOPConv1d) -> None:
    assert isinstance(layer, BCOPConv1d)
    assert layer.h_tilde.dtype == torch.float32


@given(bjorck_linear_layers())
def test_linear_layers_are_orthonormal(layer: BjorckLinear) -> None:
    assert layer.orthogonality_defect() <= orthogonality_tolerance(
        np.float64, max(layer.weight.shape)
    )


@given(st.integers(1, 12).flatmap(lambda c: st.tuples(st.just(c), gnp_activations(channels=c))))
def test_activations_fit_the_channels(drawn: tuple[int, MaxMin | GroupSort]) -> None:
    channels, activation = drawn
    x = torch.randn(2, channels, 3)
    assert activation(x).shape == x.shape


@pytest.mark.parametrize(
    ("build", "error", "match"),
    [
        (lambda: bcop_layers(spatial_ndim=3), InvalidArgumentError, "spatial_ndim=3"),
        (lambda: bcop_layers(in_channels=0), InvalidArgumentError, "in_channels=0"),
        (lambda: bcop_layers(taps=2.5), InvalidTypeError, "taps=2.5"),
        (lambda: bcop_layers(padding="reflect"), InvalidArgumentError, "padding='reflect'"),
        (lambda: bcop_layers(orthogonalizer="svd"), InvalidArgumentError, "orthogonalizer='svd'"),
        (lambda: gnp_activations(channels=0), InvalidArgumentError, "channels=0"),
        (lambda: layer_inputs(torch.nn.Linear(2, 2)), InvalidTypeError, "BCOP layer"),
    ],
    ids=[
        "spatial-ndim",
        "channels",
        "taps-type",
        "padding",
        "orthogonalizer",
        "activation-channels",
        "inputs-layer",
    ],
)
def test_bad_arguments_are_rejected_when_the_strategy_is_built(
    build: object, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        build()  # type: ignore[operator]
