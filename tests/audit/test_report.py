"""Reports render as text, Markdown and JSON; counterexamples save, load and replay."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from gnpcheck.audit import AuditReport, ClaimResult, Counterexample, audit
from gnpcheck.audit.claims import CLAIMS, declared_claims, default_claims, parse_claims
from gnpcheck.audit.numbers import format_number
from gnpcheck.errors import InvalidArgumentError
from gnpcheck.zoo.broken import ReshapedNormConv2d
from gnpcheck.zoo.good import GNPNetwork, OrthogonalConv2d

from ._targets import orthogonal_conv


@pytest.fixture(scope="module")
def report() -> AuditReport:
    return audit(ReshapedNormConv2d(4, 0), (4, 8, 8), claims="lipschitz,train_eval_consistent")


def test_accessors(report: AuditReport) -> None:
    assert report.claims == ("lipschitz", "train_eval_consistent")
    assert report.verdict("lipschitz") == "violated"
    assert report.violated == ("lipschitz",)
    assert not report.passed
    assert report.counterexample("train_eval_consistent") is None
    with pytest.raises(InvalidArgumentError, match="claim='gnp', but this report checked"):
        report.verdict("gnp")


def test_text_and_markdown(report: AuditReport) -> None:
    text = report.to_text()
    lines = text.splitlines()
    assert lines[0].startswith("audit of ReshapedNormConv2d on input 4x8x8 (float64, cpu, seed 0)")
    header = next(line for line in lines if line.startswith("claim"))
    assert header.split()[:4] == ["claim", "verdict", "measured", "tolerance"]
    row = next(line for line in lines if line.startswith("lipschitz "))
    assert "violated" in row
    assert "sigma_max=1.48" in row
    assert "<= 1 + 5.68e-13" in row
    assert "counterexample: ||f(x) - f(y)|| / ||x - y||=1.48" in text
    assert lines[-1].startswith("1 hold, 1 violated, 0 inconclusive")
    markdown = report.to_markdown()
    assert "| claim | verdict | measured | tolerance | method [evidence] |" in markdown
    assert "| lipschitz | **violated** |" in markdown
    assert str(report) == text


def test_json_roundtrips_through_the_standard_library(report: AuditReport) -> None:
    data = json.loads(json.dumps(report.to_dict()))
    assert data["passed"] is False
    assert data["input_shape"] == [4, 8, 8]
    lipschitz = data["results"][0]
    assert lipschitz["claim"] == "lipschitz"
    assert lipschitz["evidence"] == "exact"
    assert lipschitz["counterexample"]["tensors"] == {"x": [4, 8, 8], "y": [4, 8, 8]}
    assert json.loads(report.to_json()) == data


def test_non_finite_figures_are_json_strings() -> None:
    result = ClaimResult("lipschitz", "violated", "f(x) finite", math.nan, None, "", "m", "search")
    assert result.to_dict()["measured"] == "nan"
    json.dumps(result.to_dict(), allow_nan=False)


@pytest.mark.parametrize("suffix", [".pt", ".npz"])
def test_counterexamples_save_load_and_replay(
    report: AuditReport, tmp_path: Path, suffix: str
) -> None:
    counterexample = report.counterexample("lipschitz")
    assert counterexample is not None
    path = counterexample.save(tmp_path / f"nested/lipschitz{suffix}")
    loaded = Counterexample.load(path)
    assert loaded.to_dict() == counterexample.to_dict()
    for name, tensor in counterexample.tensors.items():
        assert torch.equal(loaded.tensors[name], tensor)
    replay = loaded.replay(ReshapedNormConv2d(4, 0))
    assert replay.reproduced
    assert replay.measured == pytest.approx(counterexample.measured, rel=1e-12)
    assert not loaded.replay(OrthogonalConv2d(4, 0)).reproduced
    assert loaded.replay("gnpcheck.zoo.broken:ReshapedNormConv2d").reproduced
    assert sorted(p.name for p in path.parent.iterdir()) == [f"lipschitz{suffix}"]


def test_loading_rejects_other_files(tmp_path: Path) -> None:
    np.savez(tmp_path / "other.npz", header=np.array(json.dumps({"format": "x"})))
    with pytest.raises(InvalidArgumentError, match="format 'x'"):
        Counterexample.load(tmp_path / "other.npz")
    with pytest.raises(InvalidArgumentError, match=r"must end in \.pt or \.npz"):
        Counterexample.load(tmp_path / "other.json")


def test_number_format_shows_tiny_excesses() -> None:
    assert format_number(1.0 + 5.68e-13) == "1 + 5.68e-13"
    assert format_number(1.0 - 2e-16) == "1 - 2.22e-16"
    assert format_number(1.48277489) == "1.48277"
    assert format_number(3e-9) == "3e-09"
    assert format_number(math.inf) == "inf"


def test_claims_parsing_and_defaults() -> None:
    assert parse_claims("gnp, lipschitz") == ("lipschitz", "gnp")
    assert parse_claims(list(reversed(CLAIMS))) == CLAIMS
    assert declared_claims(torch.nn.ReLU()) is None
    assert declared_claims(GNPNetwork()) == frozenset({"lipschitz", "gnp"})
    assert default_claims(orthogonal_conv())[:2] == ("lipschitz", "train_eval_consistent")
    assert default_claims(OrthogonalConv2d())[:3] == ("lipschitz", "orthogonal", "gnp")
