"""Targets that misbehave get a report, never a crash; the caller's module and state are safe."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
import torch
from torch import nn

from gnpcheck.audit import audit
from gnpcheck.errors import InvalidArgumentError, InvalidTypeError, UnsupportedOperationError

from ._targets import (
    DropsBatch,
    Hangs,
    MutatesOriginal,
    NeedsCuda,
    Raises,
    ReturnsTuple,
    orthogonal_conv,
)


@pytest.mark.parametrize(
    ("target", "message"),
    [
        (
            Raises(),
            "the target raised while running on an input of shape (2, 4, 6, 6): "
            "RuntimeError: boom from the target",
        ),
        (
            ReturnsTuple(),
            "the target returned tuple for an input of shape (2, 4, 6, 6), "
            "but it must return a tensor",
        ),
        (
            DropsBatch(),
            "the target returned shape (4, 6, 6) for an input of shape (2, 4, 6, 6), "
            "but the first axis must be the batch (2)",
        ),
    ],
    ids=["raises", "tuple", "wrong-shape"],
)
def test_broken_targets_are_reported(target: nn.Module, message: str) -> None:
    report = audit(target, (4, 6, 6))
    assert report.target_error == message
    assert not report.passed
    assert {r.verdict for r in report.results} == {"inconclusive"}
    assert all(message in r.detail for r in report.results)
    assert message in report.to_text()


def test_a_factory_that_raises_is_reported() -> None:
    def factory() -> nn.Module:
        raise ValueError("no weights here")

    report = audit(factory, (4, 6, 6), claims="lipschitz")
    assert report.target_error is not None
    assert "ValueError: no weights here" in report.target_error
    assert report.structure == "not built"


class _StoredBasis(nn.Module):
    """An orthogonal map whose basis is computed once, when it is built, in the default
    dtype (as a parametrization's base or a cached weight is)."""

    def __init__(self) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        self.register_buffer("basis", torch.linalg.qr(torch.randn(8, 8, generator=generator))[0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.basis.T


def test_a_factory_is_built_in_the_audits_dtype_and_a_coarser_buffer_is_named() -> None:
    assert audit(_StoredBasis, (8,), claims="orthogonal").passed
    assert torch.get_default_dtype() == torch.float32  # restored
    converted = audit(_StoredBasis(), (8,), claims="orthogonal")
    assert converted.verdict("orthogonal") == "violated"  # float32 rounding, seen in float64
    (note,) = converted.notes
    assert note.startswith("buffers converted to float64 from a coarser dtype: basis;")
    in_float32 = audit(_StoredBasis(), (8,), claims="orthogonal", dtype=torch.float32)
    assert in_float32.passed
    assert not in_float32.notes


def test_the_default_dtype_is_restored_when_a_factory_raises() -> None:
    def factory() -> nn.Module:
        assert torch.get_default_dtype() == torch.float64
        raise ValueError("no weights here")

    assert audit(factory, (8,), claims="lipschitz").target_error is not None
    assert torch.get_default_dtype() == torch.float32


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_a_target_that_needs_cuda_says_so() -> None:
    report = audit(NeedsCuda(), (4, 6, 6), claims="lipschitz")
    assert report.target_error is not None
    assert report.target_error.startswith(
        "the target needs a CUDA device, but torch.cuda.is_available() is False"
    )
    with pytest.raises(InvalidArgumentError, match=r"torch\.cuda\.is_available\(\) is False"):
        audit(orthogonal_conv(), (4, 6, 6), device="cuda")


def test_a_hanging_target_is_abandoned_at_the_time_budget() -> None:
    start = time.perf_counter()
    report = audit(Hangs(), (4, 6, 6), time_budget=1.5)
    elapsed = time.perf_counter() - start
    assert elapsed < 10
    assert report.target_error is not None
    assert "time budget of 1.5 s" in report.target_error
    assert all(r.verdict == "inconclusive" for r in report.results)


def test_a_target_that_mutates_the_callers_module_is_reported() -> None:
    target = MutatesOriginal()
    report = audit(target, (4, 6, 6), claims="lipschitz")
    assert report.mutated == ("scale",)
    assert not report.passed
    assert "mutated its own parameters/buffers during the audit: scale" in report.to_text()


def test_the_callers_module_rng_and_modes_are_left_alone() -> None:
    conv = orthogonal_conv().float()
    conv.train()
    before = {k: v.clone() for k, v in conv.state_dict().items()}
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    threads = torch.get_num_threads()
    audit(conv, (4, 6, 6), seed=5)
    assert torch.equal(torch.rand(3), expected)
    assert conv.training
    assert conv.weight.dtype == torch.float32
    assert conv.weight.grad is None
    assert all(torch.equal(before[k], v) for k, v in conv.state_dict().items())
    assert torch.get_num_threads() == threads


def test_the_same_seed_gives_the_same_report() -> None:
    net = nn.Sequential(orthogonal_conv(seed=2, scale=1.5), nn.ReLU())
    first = audit(net, (4, 6, 6), claims="lipschitz", seed=3).to_dict()
    second = audit(net, (4, 6, 6), claims="lipschitz", seed=3).to_dict()
    for report in (first, second):
        report.pop("seconds")
        for result in report["results"]:
            result.pop("seconds")
    assert first == second


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"input_shape": (4, 0, 6)}, InvalidArgumentError, "every size must be an int >= 1"),
        ({"input_shape": (1, 2, 3, 4)}, InvalidArgumentError, "(F,), (C, L) or (C, H, W)"),
        ({"input_shape": "4,x6"}, InvalidArgumentError, "comma-separated integers"),
        ({"claims": "lipschitz,fast"}, InvalidArgumentError, "each claim must be one of"),
        ({"claims": "gnp,gnp"}, InvalidArgumentError, "a claim is repeated"),
        ({"seed": -1}, InvalidArgumentError, "seed=-1"),
        ({"time_budget": 0}, InvalidArgumentError, "time_budget=0"),
        ({"lipschitz_constant": -2.0}, InvalidArgumentError, "positive and finite"),
        ({"dtype": torch.int64}, InvalidArgumentError, "floating dtype"),
        ({"target": 42}, InvalidTypeError, "nn.Module, a zero-argument factory"),
        ({"target": "nowhere"}, InvalidArgumentError, "'package.module:factory'"),
        ({"target": "gnpcheck.zoo:Missing"}, InvalidArgumentError, "has no attribute 'Missing'"),
    ],
)
def test_bad_arguments_are_usage_errors(
    kwargs: dict[str, object], error: type, message: str
) -> None:
    arguments: dict[str, object] = {"target": orthogonal_conv(), "input_shape": (4, 6, 6)}
    arguments.update(kwargs)
    with pytest.raises(error, match=message.replace("(", "\\(").replace(")", "\\)")):
        audit(**arguments)  # type: ignore[arg-type]


def test_a_float32_audit_refuses_reduced_precision_arithmetic(
    float32_settings: Callable[[str, str], None],
) -> None:
    """Reduced-precision float32 convolutions on the audit's device (cuDNN's TF32 default on a
    GPU; here oneDNN's setting, read the same way) would move the outputs the verdicts are
    judged on: a float32 audit refuses, a float64 one is unaffected."""
    float32_settings("mkldnn.conv", "bf16")
    with pytest.raises(UnsupportedOperationError, match=r"mkldnn\.conv.*float32 audit"):
        audit(orthogonal_conv(), (4, 6, 6), claims="lipschitz", dtype=torch.float32)
    report = audit(orthogonal_conv(), (4, 6, 6), claims="lipschitz")
    assert report.target_error is None
