"""Critics: layers, output shape, measured Lipschitz bounds, seeding, argument errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gnpcheck.certify.lipschitz import model_lipschitz
from gnpcheck.errors import InvalidArgumentError, InvalidTypeError
from gnpcheck.models import CONVS
from gnpcheck.nn import BCOPConv2d, BjorckLinear, GroupSort, MaxMin
from gnpcheck.nn.baselines import OSSNConv2d, RKOConv2d, SVCMConv2d
from gnpcheck.tolerances import orthogonality_tolerance
from gnpcheck.wasserstein import build_critic, default_hidden

_CONV_CLASSES = {"bcop": BCOPConv2d, "rko": RKOConv2d, "ossn": OSSNConv2d, "svcm": SVCMConv2d}
_SHAPE = (1, 8, 8)


def _gradient_norms(critic: nn.Module, shape: tuple[int, ...]) -> torch.Tensor:
    """The oracle: ||grad f(x)|| by autograd at random inputs (a lower bound on Lip(f))."""
    x = torch.randn((16, *shape), generator=torch.Generator().manual_seed(1), requires_grad=True)
    (gradient,) = torch.autograd.grad(critic(x).sum(), x)
    return gradient.flatten(1).norm(dim=1)


@pytest.mark.parametrize("act", ["maxmin", "relu"])
@pytest.mark.parametrize("conv", CONVS)
def test_conv_critic_is_the_small_network_with_one_output(conv: str, act: str) -> None:
    critic = build_critic("conv", _SHAPE, conv, act, seed=0).eval()
    names = [name for name, _ in critic.named_children()]
    assert names == ["conv1", "act1", "conv2", "act2", "flatten", "linear1", "act3", "linear2"]
    assert isinstance(critic.conv1, _CONV_CLASSES[conv])
    assert isinstance(critic.act1, MaxMin if act == "maxmin" else nn.ReLU)
    assert (critic.linear1.in_features, critic.linear1.out_features) == (32 * 2 * 2, 100)
    assert critic(torch.rand(5, *_SHAPE)).shape == (5, 1)
    bound = model_lipschitz(critic, _SHAPE)
    assert float(_gradient_norms(critic, _SHAPE).max()) <= bound.certified_with * (
        1 + orthogonality_tolerance(torch.float32, 100)
    )


@pytest.mark.parametrize("conv", ["bcop", "rko"])
def test_orthogonal_critics_measure_what_they_claim(conv: str) -> None:
    critic = build_critic("conv", _SHAPE, conv, "maxmin", seed=0)
    bound = model_lipschitz(critic, _SHAPE)
    assert bound.claimed == 1.0
    for layer in bound.layers:
        allowed = orthogonality_tolerance(torch.float32, 16 * 4 * 4)
        assert layer.measured <= 1 + allowed, f"{layer.name}: {layer.measured}"


def test_fc_critic_groupsort_and_default_widths() -> None:
    critic = build_critic("fc", (3, 2), act="groupsort", group_size=4, seed=0)
    widths = default_hidden("fc")
    assert [type(layer) for layer in critic] == [
        nn.Flatten, BjorckLinear, GroupSort, BjorckLinear, GroupSort, BjorckLinear,
    ]  # fmt: skip
    assert [layer.out_features for layer in critic if isinstance(layer, BjorckLinear)] == [
        *widths,
        1,
    ]
    assert all(layer.group_size == 4 for layer in critic if isinstance(layer, GroupSort))
    assert critic(torch.rand(7, 3, 2)).shape == (7, 1)
    bound = model_lipschitz(critic, (3, 2))
    assert bound.claimed == 1.0
    assert bound.measured <= 1 + orthogonality_tolerance(torch.float32, max(widths))
    assert float(_gradient_norms(critic, (3, 2)).max()) <= bound.certified_with * (
        1 + orthogonality_tolerance(torch.float32, max(widths))
    )


def test_conv_critic_groupsort_sorts_groups_of_channels() -> None:
    critic = build_critic("conv", _SHAPE, act="groupsort", hidden=(16,), group_size=8, seed=0)
    sorts = [layer for layer in critic if isinstance(layer, GroupSort)]
    assert len(sorts) == 3
    assert all(layer.group_size == 8 for layer in sorts)


def test_seed_fixes_the_parameters_and_leaves_the_global_state() -> None:
    state = torch.random.get_rng_state()
    first = build_critic("fc", (4,), seed=3).state_dict()
    assert torch.equal(torch.random.get_rng_state(), state)
    second = build_critic("fc", (4,), seed=3).state_dict()
    other = build_critic("fc", (4,), seed=4).state_dict()
    assert all(torch.equal(first[key], second[key]) for key in first)
    assert not torch.equal(first["linear1.weight_tilde"], other["linear1.weight_tilde"])


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"kind": "rnn"}, InvalidArgumentError, "kind='rnn', but it must be one of conv, fc"),
        ({"conv": "dense"}, InvalidArgumentError, "conv='dense', but it must be one of bcop"),
        ({"act": "tanh"}, InvalidArgumentError, "act='tanh', but it must be one of maxmin"),
        ({"kind": "fc", "conv": "bcop"}, InvalidArgumentError, "an 'fc' critic has no conv"),
        ({"input_shape": (28, 28)}, InvalidArgumentError, "needs (channels, height, width)"),
        ({"input_shape": (1, 6, 6)}, InvalidArgumentError, "conv2 has stride 2, which must"),
        ({"input_shape": (1, 0, 8)}, InvalidArgumentError, "every size must be an int >= 1"),
        ({"input_shape": ()}, InvalidTypeError, "must be a non-empty tuple of ints"),
        ({"hidden": (15,)}, InvalidArgumentError, "sorts groups of 2, which must divide"),
        ({"hidden": (0,)}, InvalidArgumentError, "every width must be >= 1"),
        ({"hidden": "100"}, InvalidTypeError, "hidden='100', but it must be a tuple of ints"),
        ({"act": "groupsort", "group_size": 3}, InvalidArgumentError, "groups of 3"),
        ({"group_size": 4}, InvalidArgumentError, "applies to act='groupsort' only"),
        ({"act": "groupsort", "group_size": 0}, InvalidArgumentError, "group_size=0, but"),
        ({"options": "fast"}, InvalidTypeError, "options='fast', but it must be a LayerOptions"),
        ({"seed": 2**64}, InvalidArgumentError, f"seed={2**64}, but it must be below 2**64"),
        ({"seed": 1.0}, InvalidTypeError, "seed=1.0, but it must be an int"),
    ],
    ids=lambda value: str(value) if isinstance(value, dict) else "",
)
def test_bad_arguments_are_named(kwargs: dict[str, object], error: type, message: str) -> None:
    arguments: dict[str, object] = {"kind": "conv", "input_shape": _SHAPE, **kwargs}
    with pytest.raises(error) as raised:
        build_critic(**arguments)  # type: ignore[arg-type]
    assert message in str(raised.value)
