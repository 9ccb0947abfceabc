"""The behaviour claims, on layers that keep them and layers that break them."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from gnpcheck.audit import audit
from gnpcheck.zoo.broken import CancelledRescalingLinear

from ._targets import Schedule, bcop_weight, orthogonal_conv

BEHAVIOUR = "train_eval_consistent,fresh_after_step,parameter_coverage,state_dict_roundtrip"


class CachedConv(nn.Module):
    """A circular conv whose kernel ``weight * gain`` is cached for evaluation.

    ``refresh``: ``"never"``, ``"on_train"`` (cleared by ``train()``) or ``"by_value"``
    (rebuilt whenever the parameters differ from the ones it was built from).
    """

    def __init__(self, refresh: str) -> None:
        super().__init__()
        self.weight = nn.Parameter(bcop_weight(4, 0))
        self.gain = nn.Parameter(torch.ones(1, dtype=torch.float64))
        self.refresh = refresh
        self._cache: torch.Tensor | None = None
        self._built_from: torch.Tensor | None = None

    def train(self, mode: bool = True) -> CachedConv:
        if self.refresh == "on_train" and mode:
            self._cache = None
        return super().train(mode)

    def _kernel(self) -> torch.Tensor:
        if self.training or torch.is_grad_enabled():
            return self.weight * self.gain
        current = torch.cat([self.weight.detach().reshape(-1), self.gain.detach()])
        stale = self._built_from is None or not torch.equal(self._built_from, current)
        if self._cache is None or (self.refresh == "by_value" and stale):
            self._cache = (self.weight * self.gain).detach()
            self._built_from = current.clone()
        return self._cache

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="circular"), self._kernel())


def _verdicts(module: nn.Module, claims: str = BEHAVIOUR, **kwargs: Any) -> dict[str, str]:
    report = audit(module, (4, 6, 6), claims=claims, **kwargs)
    return {r.claim: r.verdict for r in report.results}


def test_a_plain_conv_keeps_every_behaviour_claim() -> None:
    assert set(_verdicts(orthogonal_conv()).values()) == {"holds"}


def test_caches_that_refresh_by_value_pass_and_stale_ones_fail() -> None:
    assert set(_verdicts(CachedConv("by_value")).values()) == {"holds"}
    never = audit(CachedConv("never"), (4, 6, 6), claims=BEHAVIOUR)
    assert never.verdict("fresh_after_step") == "violated"
    assert never.verdict("state_dict_roundtrip") == "violated"
    assert "cached kernel is not refreshed" in never.result("fresh_after_step").detail
    counterexample = never.counterexample("fresh_after_step")
    assert counterexample is not None
    assert counterexample.kind == "procedure"
    assert counterexample.replay(CachedConv("never")).reproduced
    assert not counterexample.replay(CachedConv("by_value")).reproduced


def test_a_cache_cleared_only_by_train_fails_after_a_step_in_evaluation_mode() -> None:
    report = audit(CachedConv("on_train"), (4, 6, 6), claims="fresh_after_step")
    result = report.result("fresh_after_step")
    assert result.verdict == "violated", report.to_text()
    assert "eval-mode step" in result.detail


def test_batch_norm_is_not_train_eval_consistent_and_dropout_is_inconclusive() -> None:
    bn = nn.Sequential(orthogonal_conv(), nn.BatchNorm2d(4).double())
    verdicts = _verdicts(bn, "train_eval_consistent,fresh_after_step")
    assert verdicts == {"train_eval_consistent": "violated", "fresh_after_step": "inconclusive"}
    dropout = audit(
        nn.Sequential(orthogonal_conv(), nn.Dropout(0.5)), (4, 6, 6), claims="train_eval_consistent"
    )
    result = dropout.result("train_eval_consistent")
    assert result.verdict == "inconclusive"
    assert "stochastic" in result.detail


def test_an_unused_parameter_and_an_unused_slice_are_named() -> None:
    class Unused(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = orthogonal_conv()
            self.spare = nn.Parameter(torch.ones(3, dtype=torch.float64))
            self.stack = nn.Parameter(torch.ones(3, 4, dtype=torch.float64))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            scale = self.stack[0].sum() + self.stack[2].sum()
            return self.conv(x) * scale

    result = audit(Unused(), (4, 6, 6), claims="parameter_coverage").result("parameter_coverage")
    assert result.verdict == "violated"
    assert result.detail == "no influence on the output: spare, stack[1]"
    assert result.measured == 2.0


def test_a_parameter_with_zero_gradient_that_matters_is_covered() -> None:
    class Rounded(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.offset = nn.Parameter(torch.tensor([0.3], dtype=torch.float64))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + torch.round(self.offset * 10)  # gradient 0, influence real

    assert _verdicts(Rounded(), "parameter_coverage") == {"parameter_coverage": "holds"}


def test_a_parameter_whose_gradient_is_rounding_noise_is_not_covered() -> None:
    # exp(-s) * |W^T W| * exp(s) along one axis: s cancels, its gradient is rounding noise,
    # nonzero in most slices; each of its 64 slices must be named, not only the exact zeros
    layer = CancelledRescalingLinear(64, seed=0)
    result = audit(layer, (4, 4, 4), claims="parameter_coverage").result("parameter_coverage")
    assert result.verdict == "violated"
    assert result.measured == 64.0
    assert result.detail == "no influence on the output: " + ", ".join(
        f"log_q[{i}]" for i in range(64)
    )


def test_frozen_parameters_are_state_not_coverage() -> None:
    class PowerIterationState(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = orthogonal_conv()
            # a power-iteration vector kept as a frozen parameter, as some libraries do
            self.u = nn.Parameter(torch.ones(4, 2, dtype=torch.float64), requires_grad=False)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.conv(x)

    assert _verdicts(PowerIterationState(), "parameter_coverage") == {"parameter_coverage": "holds"}
    frozen = PowerIterationState()
    frozen.conv.requires_grad_(False)
    report = audit(frozen, (4, 6, 6), claims="parameter_coverage")
    assert report.verdict("parameter_coverage") == "inconclusive"
    assert "no trainable parameters" in report.result("parameter_coverage").detail


class _ExtraState(nn.Module):
    def __init__(self, extra: object) -> None:
        super().__init__()
        self.conv = orthogonal_conv()
        self.extra = extra

    def get_extra_state(self) -> object:
        return {"schedule": self.extra}

    def set_extra_state(self, state: object) -> None:
        pass

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def test_state_that_cannot_be_saved_or_loaded_safely_violates_the_roundtrip() -> None:
    claim = "state_dict_roundtrip"
    unsafe = audit(_ExtraState(Schedule(3)), (4, 6, 6), claims=claim).result(claim)
    assert unsafe.verdict == "violated"
    assert "cannot be read back with weights_only=True" in unsafe.detail
    unsaveable = audit(_ExtraState(lambda step: step), (4, 6, 6), claims=claim).result(claim)
    assert unsaveable.verdict == "violated"
    assert "cannot be saved" in unsaveable.detail


def test_not_applicable_claims_are_noted_or_inconclusive() -> None:
    class NoParameters(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.flip(1)

    report = audit(NoParameters(), (4, 6, 6))
    assert "parameter_coverage" not in report.claims
    assert any(note.startswith("parameter_coverage: not applicable") for note in report.notes)
    assert report.passed
    explicit = audit(NoParameters(), (4, 6, 6), claims="parameter_coverage")
    assert explicit.verdict("parameter_coverage") == "inconclusive"
    assert not explicit.passed


class _ExportedConv(nn.Module):
    """A circular conv whose ``export()`` copies the kernel ``kind`` says: ``"current"``
    (built from the parameters), ``"last_forward"`` (the kernel of the last call: stale
    right after a load or a step), ``"scaled"`` (off by a factor), ``"refused"`` (raises),
    ``"tensor"`` (returns the kernel, not a module)."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.weight = nn.Parameter(bcop_weight(4, 0))
        self.kind = kind
        self._last: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._last = self.weight.detach().clone()
        return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="circular"), self.weight)

    def export(self) -> nn.Module:
        if self.kind == "refused":
            raise NotImplementedError("no plain form")
        kernel = self.weight.detach()
        if self.kind == "last_forward" and self._last is not None:
            kernel = self._last
        if self.kind == "tensor":
            return kernel  # type: ignore[return-value]
        conv = nn.Conv2d(4, 4, 3, padding=1, padding_mode="circular", bias=False)
        with torch.no_grad():
            conv.weight = nn.Parameter(kernel * (1.01 if self.kind == "scaled" else 1.0))
        return conv


def test_export_faithful_catches_stale_and_wrong_exports() -> None:
    claim = "export_faithful"
    assert _verdicts(_ExportedConv("current"), claim) == {claim: "holds"}
    stale = audit(_ExportedConv("last_forward"), (4, 6, 6), claims=claim)
    result = stale.result(claim)
    assert result.verdict == "violated"
    assert result.detail.startswith("after load_state_dict, the exported module computes")
    assert result.detail.endswith("a stale kernel (fresh, it matched)")
    counterexample = stale.counterexample(claim)
    assert counterexample is not None
    assert counterexample.replay(_ExportedConv("last_forward")).reproduced
    assert not counterexample.replay(_ExportedConv("current")).reproduced
    scaled = audit(_ExportedConv("scaled"), (4, 6, 6), claims=claim).result(claim)
    assert scaled.verdict == "violated"
    assert scaled.detail == "the exported module computes another function than the target"
    refused = audit(_ExportedConv("refused"), (4, 6, 6), claims=claim).result(claim)
    assert refused.verdict == "inconclusive"
    assert "export() raised NotImplementedError: no plain form" in refused.detail


def test_export_faithful_applies_only_to_an_export_that_gives_a_module() -> None:
    class NeedsPath(_ExportedConv):
        def export(self, path: str = "never-written.onnx") -> nn.Module:  # type: ignore[override]
            raise AssertionError("never called")

    for module, reason in (
        (orthogonal_conv(), "the target has no export()"),
        (NeedsPath("current"), "the target's export() takes arguments (path)"),
        (_ExportedConv("tensor"), "the target's export() returns a Tensor, not an nn.Module"),
    ):
        report = audit(module, (4, 6, 6))
        assert "export_faithful" not in report.claims
        assert f"export_faithful: not applicable ({reason})" in report.notes


def test_export_faithful_skips_the_load_sequence_of_a_module_that_cannot_load() -> None:
    class NoLoad(_ExportedConv):
        def load_state_dict(self, *args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("cannot load")

    report = audit(NoLoad("current"), (4, 6, 6), claims="export_faithful,state_dict_roundtrip")
    assert report.verdict("state_dict_roundtrip") == "violated"
    export = report.result("export_faithful")
    assert export.verdict == "holds"
    assert export.method.endswith("(fresh, after an optimizer step)")
