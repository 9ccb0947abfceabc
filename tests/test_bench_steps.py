"""``benchmarks/bench_steps.py`` runs: its smoke run prints the evaluation breakdown and the
profile (no compilation unless asked), and it refuses a shape or device it cannot use."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_steps.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_steps", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quick_run_prints_the_breakdown_and_the_profile(
    bench: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    bench.main(["--quick", "--device", "cpu"])
    out = capsys.readouterr().out
    assert "## 1. evaluation forward at (4, 8, 8, 3)" in out
    for label in ("nn.Conv2d", "BCOPConv2d", "the cache's check (_kernel)", "two torch.equal"):
        row = next(line for line in out.splitlines() if line.strip().startswith(label))
        assert float(row.split()[-1]) > 0
    assert "## 2. torch.profiler" in out
    assert "_QRKernelWithJvpBackward" in out  # the kernel build's one autograd node
    assert "## 3." not in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--shape", "1,2,3"], "four positive integers"),
        (["--shape", "4,0,8,3"], "four positive integers"),
        (["--repeats", "0"], "at least 1"),
        (["--device", "nonsense"], "--device='nonsense', but it must name a torch device"),
        *(
            []
            if torch.cuda.is_available()
            else [(["--device", "cuda"], "--device='cuda', but torch.cuda.is_available() is False")]
        ),
    ],
)
def test_bad_arguments_are_refused(
    bench: ModuleType, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    with pytest.raises(SystemExit):
        bench.main(argv)
    assert message in capsys.readouterr().err
