"""``benchmarks/bench_layers.py`` runs: its smoke runs print every section, on the device and
at the batch it is given (the breakdown: without compiling unless asked, its phases within
the step they divide), and it refuses a device, batch, shape or repeat count it cannot use."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_layers.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_layers", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quick_run_prints_every_section_at_the_given_batch(
    bench: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    threads = torch.get_num_threads()
    bench.main(["--quick", "--batch", "2"])
    assert torch.get_num_threads() == threads
    out = capsys.readouterr().out
    assert "device cpu (CPU)" in out
    for heading in ("## 1. float32 BCOPConv2d", "## 2. Björck", "## 3./4. time per call"):
        assert heading in out
    rows = [line.split() for line in out.splitlines() if line.strip().startswith("2,32,8,3")]
    assert [row[1] for row in rows] == ["train", "in-grad", "eval"]
    for row in rows[:2]:  # BCOP's median ratio (second in brackets) lies between its quartiles
        median = float(row[6].strip("()"))
        first, third = (float(value) for value in row[-1].split("-"))
        assert first <= median <= third
    accuracy = next(line.split() for line in out.splitlines() if line.split()[:2] == ["32", "3"])
    assert float(accuracy[2]) <= 1e-6  # fresh float32 defect at C = 32, k = 3


def test_quick_breakdown_prints_the_evaluation_rows_and_the_profile(
    bench: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    bench.main(["--breakdown", "--quick"])
    out = capsys.readouterr().out
    assert "## 5. evaluation forward at (4, 8, 8, 3)" in out
    for label in ("nn.Conv2d", "BCOPConv2d", "the cache's check (_kernel)", "two torch.equal"):
        row = next(line for line in out.splitlines() if line.strip().startswith(label))
        assert float(row.split()[-1]) > 0
    assert "## 6. torch.profiler" in out
    assert "_QRKernelWithJvpBackward" in out  # the kernel build's one autograd node
    assert "## 8. first-layer training steps at (4, 8, 8, 3) by phase" in out
    section = out.split("## 8.")[1].splitlines()
    phases = {
        label: float(next(line for line in section if line.strip().startswith(label)).split()[-1])
        for label in ("BCOPConv2d step", "kernel build, forward", "kernel build, backward")
    }
    build = phases["kernel build, forward"] + phases["kernel build, backward"]
    assert 0 < build < phases["BCOPConv2d step"]
    assert "## 1." not in out
    assert "## 7." not in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--device", "nowhere"], "--device='nowhere', but it must name a torch device"),
        (["--batch", "0"], "--batch=0, but it must be at least 1"),
        (["--repeats", "0"], "--repeats=0, but it must be at least 1"),
        (["--breakdown", "--shape", "1,2,3"], "four positive integers"),
        (["--breakdown", "--shape", "4,0,8,3"], "four positive integers"),
    ]
    + (
        []
        if torch.cuda.is_available()
        else [(["--device", "cuda"], "--device='cuda', but torch.cuda.is_available() is False")]
    ),
)
def test_bad_arguments_are_refused(
    bench: ModuleType, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        bench.main(["--quick", *argv])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
