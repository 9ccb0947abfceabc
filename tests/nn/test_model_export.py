"""Whole networks exported to plain modules (gnpcheck.nn.model_export): nothing of the
parameterized layers is left, the plain copy computes the network's function (on inputs
other than the example too), every replacement is checked and a wrong one is named."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gnpcheck.errors import InvalidArgumentError, InvalidTypeError
from gnpcheck.models.architectures import large, small
from gnpcheck.models.components import LayerOptions
from gnpcheck.nn import (
    BCOPConv1d,
    BCOPConv2d,
    BjorckLinear,
    InvertibleDownsampling1d,
    MaxMin,
)
from gnpcheck.nn.model_export import EXPORTED_TYPES, ExportMismatchError, export_model


def _mnist_batch(dtype: torch.dtype, seed: int) -> torch.Tensor:
    return torch.rand(4, 1, 28, 28, dtype=dtype, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("padding", ["circular", "same"])
@pytest.mark.parametrize("build", [small, large])
@pytest.mark.parametrize("conv", ["bcop", "ossn", "rko", "svcm"])
def test_networks_export_to_plain_modules(build: object, conv: str, padding: str) -> None:
    """Each convolution with either padding, strided (even inner kernels) and not."""
    torch.manual_seed(0)
    options = LayerOptions(padding=padding)  # type: ignore[arg-type]
    model = build(conv=conv, options=options).double()  # type: ignore[operator]
    state = {key: value.clone() for key, value in model.state_dict().items()}
    example = _mnist_batch(torch.float64, 0)
    exported = export_model(model, example)
    assert not [m for m in exported.module.modules() if isinstance(m, EXPORTED_TYPES)]
    assert exported.replaced[:2] == ("conv1", "conv2")
    assert exported.replaced[-1].startswith("linear")
    assert exported.max_difference <= 1e-12
    other = _mnist_batch(torch.float64, 1)
    with torch.no_grad():
        torch.testing.assert_close(exported.module(other), model.eval()(other), rtol=0, atol=1e-12)
        torch.testing.assert_close(exported.outputs, model(example), rtol=0, atol=0)
    model.train()
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())


def test_float32_network_and_the_callers_mode() -> None:
    torch.manual_seed(0)
    model = small()
    exported = export_model(model, _mnist_batch(torch.float32, 0))
    assert model.training  # the copy was put in evaluation mode, not the caller's model
    assert not exported.module.training
    assert exported.max_difference <= 1e-5


def test_export_follows_load_state_dict_without_a_forward() -> None:
    """The exported kernels are those of the parameters loaded, not of a cached kernel."""
    torch.manual_seed(0)
    trained, fresh = small().double(), small().double()
    optimizer = torch.optim.Adam(trained.parameters(), lr=1e-2)
    x = _mnist_batch(torch.float64, 0)
    fresh.eval()(x)  # fills fresh's kernel caches
    for _ in range(3):
        optimizer.zero_grad()
        trained(x).square().mean().backward()
        optimizer.step()
    fresh.load_state_dict(trained.state_dict())
    exported = export_model(fresh, x)
    with torch.no_grad():
        torch.testing.assert_close(exported.module(x), trained.eval()(x), rtol=0, atol=1e-12)


def test_a_wrong_export_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    model = small().double()
    layer = model.get_submodule("conv2")
    correct = layer.export

    def perturbed() -> nn.Module:
        plain = correct()
        with torch.no_grad():
            next(plain.parameters()).mul_(1 + 1e-9)
        return plain

    monkeypatch.setattr(layer, "export", perturbed)
    with pytest.raises(ExportMismatchError, match=r"layer 'conv2' \(BCOPConv2d\).*differs"):
        export_model(model, _mnist_batch(torch.float64, 0))
    monkeypatch.setattr(layer, "export", nn.Identity)
    shapes = r"Identity returns shape \(4, 16, 14, 14\), but the layer \(4, 32, 7, 7\)"
    with pytest.raises(ExportMismatchError, match=shapes):
        export_model(model, _mnist_batch(torch.float64, 0))


def test_a_shared_layer_is_replaced_everywhere_by_one_module() -> None:
    torch.manual_seed(0)
    shared = BCOPConv2d(4, 4, 3, dtype=torch.float64)
    model = nn.Sequential(shared, MaxMin(), shared)
    x = torch.randn(2, 4, 6, 6, dtype=torch.float64)
    exported = export_model(model, x)
    assert exported.replaced == ("0", "2")
    assert exported.module[0] is exported.module[2]
    with torch.no_grad():
        torch.testing.assert_close(exported.module(x), model(x), rtol=0, atol=1e-12)


class _Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inner = nn.ModuleDict({"conv": BCOPConv1d(2, 4, 4, stride=2, dtype=torch.float64)})
        self.down = InvertibleDownsampling1d(2)
        self.unused = BjorckLinear(4, 4, dtype=torch.float64)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.inner["conv"](x), self.down(x)], dim=1)


def test_nested_1d_layers_and_an_unreached_layer() -> None:
    """Layers in nested containers are found by their dotted names; a layer the example
    does not reach is refused, its export being unchecked."""
    torch.manual_seed(0)
    block = _Block()
    x = torch.randn(2, 2, 8, dtype=torch.float64)
    with pytest.raises(InvalidArgumentError, match=r"layer 'unused' \(BjorckLinear\) does not run"):
        export_model(block, x)
    del block.unused
    exported = export_model(block, x)
    assert exported.replaced == ("inner.conv", "down")
    assert not [m for m in exported.module.modules() if isinstance(m, EXPORTED_TYPES)]
    with torch.no_grad():
        torch.testing.assert_close(exported.module(x), block(x), rtol=0, atol=1e-12)


def test_the_plain_network_exports_to_a_graph() -> None:
    """Deployment: torch.export traces the plain copy of the Large network."""
    torch.manual_seed(0)
    x = _mnist_batch(torch.float32, 0)
    plain = export_model(large(), x).module
    graph = torch.export.export(plain, (x,))
    torch.testing.assert_close(graph.module()(x), plain(x), rtol=0, atol=0)


class _Pair(nn.Module):
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x, x


@pytest.mark.parametrize(
    ("model", "example", "match"),
    [
        ("a model", torch.zeros(1), r"model is a str, but it must be an nn\.Module"),
        (nn.Identity(), [0.0], r"example is a list, but it must be a torch\.Tensor"),
        (_Pair(), torch.zeros(1), r"model returned a tuple, but it must return a tensor"),
    ],
)
def test_bad_arguments(model: object, example: object, match: str) -> None:
    with pytest.raises(InvalidTypeError, match=match):
        export_model(model, example)  # type: ignore[arg-type]
