"""torch.compile computes what eager mode computes: outputs and every gradient, in one graph
where this PyTorch traces gnpcheck's Functions correctly (docs/layers.rst, "Compilation and
devices")."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest
import torch
import torch._dynamo
from torch import nn

import gnpcheck.nn.functions as functions
from gnpcheck.nn import BCOPConv1d, BCOPConv2d, BjorckLinear, MaxMin
from gnpcheck.nn.functions import DYNAMO_TRACES_FUNCTIONS
from gnpcheck.tolerances import FLOAT64_KERNEL_AGREEMENT

from ._helpers import layer_input, make_bcop

INDUCTOR = pytest.param(
    "inductor",
    marks=pytest.mark.skipif(
        os.environ.get("GNPCHECK_RUN_INDUCTOR") != "1",
        reason="inductor generates and compiles C++ for minutes on 2 shared cores; "
        "set GNPCHECK_RUN_INDUCTOR=1 to run it",
    ),
)


@pytest.fixture(autouse=True)
def fresh_compiler() -> Iterator[None]:
    """Each test compiles from scratch (no code compiled by another test, no recompilation
    limit reached by earlier tests)."""
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def network() -> nn.Module:
    """A strided BCOP layer, MaxMin, a BCOP layer whose input needs a gradient (the padding
    that the eager mode gathers) and BjorckLinear, float64."""
    torch.manual_seed(0)
    return nn.Sequential(
        BCOPConv2d(2, 8, 4, stride=2, dtype=torch.float64),
        MaxMin(),
        BCOPConv2d(8, 8, 3, dtype=torch.float64),
        nn.Flatten(),
        BjorckLinear(8 * 16, 4, dtype=torch.float64),
    )


def assert_compiled_equals_eager(
    module: nn.Module,
    compiled: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    tolerance: float,
) -> None:
    """Outputs, every parameter's gradient and the input's gradient of ``compiled(x)`` equal
    those of ``module(x)`` within ``tolerance`` (and every gradient is there)."""
    module.zero_grad()
    x = x.detach().requires_grad_()
    y = compiled(x)
    y.square().sum().backward()
    grads = [p.grad.clone() for p in module.parameters() if p.grad is not None]
    assert x.grad is not None
    input_grad = x.grad.clone()
    module.zero_grad()
    x.grad = None
    expected = module(x)
    expected.square().sum().backward()
    assert (y - expected).abs().max().item() <= tolerance
    eager = [p.grad for p in module.parameters() if p.grad is not None]
    assert len(grads) == len(eager) == len(list(module.parameters()))
    for compiled_grad, eager_grad in zip([*grads, input_grad], [*eager, x.grad], strict=True):
        assert eager_grad is not None
        assert (compiled_grad - eager_grad).abs().max().item() <= tolerance


@pytest.mark.parametrize("backend", ["aot_eager", INDUCTOR])
def test_torch_compile_matches_eager(backend: str) -> None:
    """Dynamo traces the layer (cache bypassed while compiling) and AOT autograd its
    backward, the one-node QR kernel build included; no graph break, which ``fullgraph``
    turns into an error, where the Functions are traced (always from PyTorch 2.12)."""
    layer = make_bcop(BCOPConv2d, 4, 4, 3)
    compiled = torch.compile(layer, backend=backend, fullgraph=DYNAMO_TRACES_FUNCTIONS)
    assert_compiled_equals_eager(layer, compiled, layer_input(layer, 6), FLOAT64_KERNEL_AGREEMENT)


def test_a_compiled_network_matches_eager() -> None:
    """The network compiles (in one graph from PyTorch 2.12); outputs and every gradient as
    in eager mode."""
    module = network()
    compiled = torch.compile(module, backend="aot_eager", fullgraph=DYNAMO_TRACES_FUNCTIONS)
    x = torch.randn(3, 2, 8, 8, dtype=torch.float64)
    assert_compiled_equals_eager(module, compiled, x, FLOAT64_KERNEL_AGREEMENT)


@pytest.mark.parametrize("cls", [BCOPConv1d, BCOPConv2d])
def test_dynamic_shapes_compile_and_match_eager(cls: type) -> None:
    """With symbolic spatial sizes (``dynamic=True``) the strided, input-gradient layer still
    compiles, in one graph where the Functions are traced (the eager mode's gather index is
    computed by NumPy from the sizes, which Dynamo cannot trace), at every size."""
    layer = make_bcop(cls, 2, 8, 4, stride=2)
    compiled = torch.compile(
        layer, backend="aot_eager", dynamic=True, fullgraph=DYNAMO_TRACES_FUNCTIONS
    )
    for size in (8, 12, 16):
        assert_compiled_equals_eager(
            layer, compiled, layer_input(layer, size), FLOAT64_KERNEL_AGREEMENT
        )


def test_functions_run_outside_the_graph_where_dynamo_traces_them_wrongly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Where Dynamo is known to trace the Functions wrongly (PyTorch 2.11: zero gradients),
    they run eagerly between compiled parts: ``fullgraph`` reports the break, and without it
    every gradient is eager mode's."""
    monkeypatch.setattr(functions, "DYNAMO_TRACES_FUNCTIONS", False)
    module = network()
    x = torch.randn(3, 2, 8, 8, dtype=torch.float64)
    with pytest.raises(torch._dynamo.exc.Unsupported, match=r"before 2\.12"):
        torch.compile(module, backend="aot_eager", fullgraph=True)(x)
    torch._dynamo.reset()
    compiled = torch.compile(module, backend="aot_eager")
    assert_compiled_equals_eager(module, compiled, x, FLOAT64_KERNEL_AGREEMENT)


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        ("2.11.0+cu130", (2, 11)),
        ("2.12.0a0+git1234", (2, 12)),
        ("2.13.0", (2, 13)),
        ("3.0", (3, 0)),
    ],
)
def test_major_minor_reads_release_versions(version: str, expected: tuple[int, int]) -> None:
    assert functions._major_minor(version) == expected
