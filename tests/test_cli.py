"""The ``gnpcheck`` command: the reference self-check table and exit codes."""

from __future__ import annotations

import subprocess
import sys

import pytest

from gnpcheck import __version__
from gnpcheck.checks import CheckResult
from gnpcheck.cli import main
from gnpcheck.selfcheck import format_table, run_self_checks


def test_check_prints_a_table_and_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == [
        "check",
        "subject",
        "figure",
        "measured",
        "tolerance",
        "verdict",
    ]
    assert "orthogonal 2-D" in out
    assert "Theorem 2 embedding" in out
    assert "FAIL" not in out
    assert " passed, 0 failed" in out
    assert out.splitlines()[-1].startswith("native BCOP library (docs/layers.rst, Note [native")


def test_every_self_check_holds_and_measures_below_its_tolerance() -> None:
    results = run_self_checks(seed=3)
    assert len(results) >= 10
    for result in results:
        assert result.passed, result.message()
        assert result.measured <= result.tolerance


def test_failed_row_is_marked() -> None:
    failed = CheckResult(
        "orthogonal 2-D", False, 0.1, 1e-12, "max |sigma - 1|", "circulant spectrum", True, "k"
    )
    assert format_table([failed]).splitlines()[-1].endswith("FAIL")


def test_no_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "usage: gnpcheck" in capsys.readouterr().err


def test_module_entry_point_and_version() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "gnpcheck", "--version"], capture_output=True, text=True, check=False
    )
    assert completed.returncode == 0
    assert completed.stdout.strip() == f"gnpcheck {__version__}"
