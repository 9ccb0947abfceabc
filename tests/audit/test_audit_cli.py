"""The ``gnpcheck audit`` subcommand: output, files, exit codes."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import torch

from gnpcheck.audit import Counterexample
from gnpcheck.audit_cli import (
    EXIT_ERROR,
    EXIT_HOLDS,
    EXIT_VIOLATED,
    add_audit_parser,
    run_audit_command,
)
from gnpcheck.zoo import BROKEN, GOOD


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="gnpcheck")
    add_audit_parser(parser.add_subparsers(dest="command"))
    return run_audit_command(parser.parse_args(["audit", *argv]))


def test_a_layer_that_holds_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["gnpcheck.zoo.good:OrthogonalConv2d", "--input-shape", "4,8,8"]) == EXIT_HOLDS
    out = capsys.readouterr().out
    assert out.startswith("audit of gnpcheck.zoo.good:OrthogonalConv2d on input 4x8x8")
    assert "9 hold, 0 violated, 0 inconclusive" in out


def test_a_violation_exits_one_and_writes_every_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = _run(
        [
            "gnpcheck.zoo.broken:ReshapedNormConv2d",
            "--input-shape",
            "4,8,8",
            "--claims",
            "lipschitz,parameter_coverage",
            "--json",
            str(tmp_path / "r.json"),
            "--markdown",
            str(tmp_path / "r.md"),
            "--counterexamples",
            str(tmp_path / "ce"),
            "--seed",
            "2",
        ]
    )
    assert code == EXIT_VIOLATED
    out = capsys.readouterr().out
    assert f"counterexample of lipschitz: {tmp_path / 'ce' / 'lipschitz.pt'}" in out
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["seed"] == 2
    assert [r["claim"] for r in data["results"]] == [
        "lipschitz",
        "parameter_coverage",
    ]
    assert "| lipschitz | **violated** |" in (tmp_path / "r.md").read_text()
    saved = Counterexample.load(tmp_path / "ce" / "lipschitz.pt")
    assert saved.replay("gnpcheck.zoo.broken:ReshapedNormConv2d").reproduced


def test_seeds_audit_each_initialization_and_show_the_first_violating_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    expanding = []
    for seed in range(3, 9):  # the audit builds a factory in its dtype: the draw is float64's
        torch.manual_seed(seed)
        expanding.append(float(torch.rand((), dtype=torch.float64)) > 0.5)
    assert sorted(set(expanding)) == [False, True]  # the seeds below show both verdicts
    spec = "audit._targets:SometimesExpanding"
    argv = [spec, "--input-shape", "4", "--claims", "lipschitz", "--seed", "3", "--seeds", "6"]
    assert _run([*argv, "--json", str(tmp_path / "r.json")]) == EXIT_VIOLATED
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines() if line[:1].isdigit()][:6]
    assert [row[0] for row in rows] == [str(seed) for seed in range(3, 9)]
    assert [row[1] == "FAIL" for row in rows] == expanding
    first = 3 + expanding.index(True)
    assert f"violated: lipschitz at {sum(expanding)} of 6 seeds; the report of seed {first}" in out
    assert f"audit of {spec} on input 4 (float64, cpu, seed {first})" in out
    reports = json.loads((tmp_path / "r.json").read_text())
    assert [r["seed"] for r in reports] == list(range(3, 9))
    holding = 3 + expanding.index(False)
    assert _run([spec, "--input-shape", "4", "--claims", "lipschitz", "--seed", str(holding)]) == (
        EXIT_HOLDS
    )
    capsys.readouterr()
    assert _run([*argv[:-1], "0"]) == EXIT_ERROR
    assert "--seeds=0, but it must be at least 1" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["gnpcheck.zoo.good:OrthogonalConv2d"], "--input-shape is required with a target"),
        (["gnpcheck.zoo.good:Missing", "--input-shape", "4,8,8"], "has no attribute 'Missing'"),
        (
            ["gnpcheck.zoo.good:OrthogonalConv2d", "--input-shape", "4,8,8", "--claims", "fast"],
            "each claim must be one of",
        ),
        (["--input-shape", "4,8,8"], "need a target"),
    ],
)
def test_usage_errors_exit_two(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(argv) == EXIT_ERROR
    err = capsys.readouterr().err
    assert err.startswith("gnpcheck audit: error: ")
    assert message in err


def test_a_target_that_cannot_run_exits_two(capsys: pytest.CaptureFixture[str]) -> None:
    # OrthogonalLinear needs its size: calling the class with no arguments fails.
    assert _run(["gnpcheck.zoo.good:OrthogonalLinear", "--input-shape", "64"]) == EXIT_ERROR
    assert "missing 1 required positional argument" in capsys.readouterr().err


def test_bare_audit_audits_the_zoo(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import gnpcheck.zoo

    reused = next(entry for entry in BROKEN if entry.name == "ReusedProjectorConv2d")
    monkeypatch.setattr(gnpcheck.zoo, "default_zoo", lambda: (GOOD[0], reused))
    assert _run(["--json", str(tmp_path / "zoo.json")]) == EXIT_HOLDS
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:2] == ["layer", "lip"]
    assert out[1].startswith("OrthogonalConv2d")
    assert out[1].split()[-2:-1] == ["expected"]
    assert out[2].startswith("ReusedProjectorConv2d")
    assert "FAIL" in out[2]
    assert "2 of 2 layers judged as expected" in "\n".join(out)
    data = json.loads((tmp_path / "zoo.json").read_text())
    assert [d["layer"] for d in data] == ["OrthogonalConv2d", "ReusedProjectorConv2d"]
    assert [d["as_expected"] for d in data] == [True, True]


def test_bare_audit_exits_one_when_the_zoo_is_misjudged(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import dataclasses

    import gnpcheck.zoo

    wrong = dataclasses.replace(GOOD[0], expected="lipschitz")  # a good layer "must fail"
    monkeypatch.setattr(gnpcheck.zoo, "default_zoo", lambda: (wrong,))
    assert _run([]) == EXIT_VIOLATED
    assert "not as expected: OrthogonalConv2d" in capsys.readouterr().out
