"""The seed's architectures: layers, shapes, and every parameter trained."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from gnpcheck.errors import InvalidArgumentError
from gnpcheck.models import ACTIVATIONS, CONVS, LayerOptions, build_model
from gnpcheck.nn import BCOPConv2d, BjorckLinear, MaxMin
from gnpcheck.nn.baselines import OSSNConv2d, RKOConv2d, SVCMConv2d

_CONV_CLASSES = {"bcop": BCOPConv2d, "rko": RKOConv2d, "ossn": OSSNConv2d, "svcm": SVCMConv2d}


def _shapes(model: nn.Sequential) -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {}
    x = torch.rand(2, 1, 28, 28)
    for name, layer in model.named_children():
        x = layer(x)
        shapes[name] = tuple(x.shape[1:])
    return shapes


def test_small_is_the_seeds_small_network() -> None:
    model = build_model("small")
    assert list(dict(model.named_children())) == [
        "conv1", "act1", "conv2", "act2", "flatten", "linear1", "act3", "linear2",
    ]  # fmt: skip
    assert _shapes(model) == {
        "conv1": (16, 14, 14),
        "act1": (16, 14, 14),
        "conv2": (32, 7, 7),
        "act2": (32, 7, 7),
        "flatten": (1568,),
        "linear1": (100,),
        "act3": (100,),
        "linear2": (10,),
    }
    conv1, conv2 = model.conv1, model.conv2
    assert isinstance(conv1, BCOPConv2d)
    assert isinstance(conv2, BCOPConv2d)
    assert (conv1.kernel_size, conv1.stride) == ((4, 4), 2)
    assert (conv2.kernel_size, conv2.stride) == ((4, 4), 2)


def test_large_and_fc3_have_the_seeds_widths() -> None:
    large = _shapes(
        build_model(
            "large", options=LayerOptions(linear_orthogonalizer="bjorck", linear_bjorck_iters=1)
        )
    )
    assert [large[f"conv{i}"] for i in range(1, 5)] == [
        (32, 28, 28), (32, 14, 14), (64, 14, 14), (64, 7, 7),
    ]  # fmt: skip
    assert [large[f"linear{i}"] for i in range(1, 4)] == [(512,), (512,), (10,)]
    fc3 = build_model("fc3")
    linears = [m for m in fc3 if isinstance(m, BjorckLinear)]
    assert [(m.in_features, m.out_features) for m in linears] == [
        (784, 1024), (1024, 1024), (1024, 1024), (1024, 10),
    ]  # fmt: skip
    assert not any(isinstance(m, BCOPConv2d) for m in fc3)


@pytest.mark.parametrize("conv", CONVS)
@pytest.mark.parametrize("act", ACTIVATIONS)
def test_each_conv_and_activation_is_used_and_every_parameter_learns(conv: str, act: str) -> None:
    torch.manual_seed(0)
    model = build_model("small", conv, act, LayerOptions(padding="same"))
    assert all(isinstance(m, _CONV_CLASSES[conv]) for m in (model.conv1, model.conv2))
    assert all(m.padding == "same" for m in (model.conv1, model.conv2))
    activation = MaxMin if act == "maxmin" else nn.ReLU
    assert sum(isinstance(m, activation) for m in model) == 3
    logits = model(torch.rand(8, 1, 28, 28))
    logits.square().sum().backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None, name
        assert float(parameter.grad.abs().sum()) > 0, name


def test_layer_options_reach_the_layers() -> None:
    options = LayerOptions(
        orthogonalizer="bjorck",
        bjorck_iters=7,
        linear_orthogonalizer="bjorck",
        linear_bjorck_iters=5,
    )
    model = build_model("small", options=options)
    assert model.conv1.orthogonalizer == "bjorck"
    assert model.conv1.bjorck_iters == 7
    assert model.linear1.bjorck_iters == 5
    default = build_model("small")
    assert default.linear1.orthogonalizer == "polar"
    assert default.linear1.bjorck_iters is None


@pytest.mark.parametrize(
    ("arguments", "match"),
    [
        ({"model": "medium"}, "model='medium', but it must be one of small, large, fc3"),
        ({"model": "small", "conv": "lot"}, "conv='lot', but it must be one of bcop"),
        ({"model": "small", "act": "tanh"}, "act='tanh', but it must be one of maxmin, relu"),
        ({"model": "small", "input_shape": (1, 30, 30)}, r"conv2 has stride 2, which must divide"),
    ],
    ids=["model", "conv", "act", "stride"],
)
def test_bad_names_are_errors(arguments: dict[str, object], match: str) -> None:
    with pytest.raises(InvalidArgumentError, match=match):
        build_model(**arguments)  # type: ignore[arg-type]


def test_init_scale_changes_the_parameters_not_the_function() -> None:
    """Note [init scale]: BCOP and Björck layers are scale invariant in their matrices."""
    x = torch.rand(4, 1, 28, 28)
    models = {}
    for scale in ("fan_in", "unit"):
        torch.manual_seed(0)
        models[scale] = build_model("small", options=LayerOptions(init_scale=scale))  # type: ignore[arg-type]
    seed, unit = models["fan_in"], models["unit"]
    torch.testing.assert_close(seed(x), unit(x), rtol=0, atol=1e-5)
    torch.testing.assert_close(seed.conv2.h_tilde * 8, unit.conv2.h_tilde)  # n = 64 channels
    torch.testing.assert_close(
        seed.linear1.weight_tilde * math.sqrt(1568), unit.linear1.weight_tilde
    )
    with pytest.raises(InvalidArgumentError, match="init_scale='big', but it must be one of"):
        LayerOptions(init_scale="big")  # type: ignore[arg-type]
