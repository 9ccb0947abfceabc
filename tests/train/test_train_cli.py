"""``gnpcheck train``, ``certify``, ``spectrum`` and ``export`` through their argument
parsers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from gnpcheck.errors import InvalidArgumentError
from gnpcheck.models.architectures import small
from gnpcheck.train.dataset import mnist_tensors
from gnpcheck.train.deploy import deploy
from gnpcheck.train.loop import model_from_checkpoint
from gnpcheck.train_cli import main


@pytest.fixture(scope="module")
def checkpoint(tiny_mnist: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cli-run")
    flags = ["--batch-size", "32", "--threads", "1", "--no-progress"]
    assert (
        main(["train", "--out", str(out), "--data-dir", str(tiny_mnist), "--epochs", "1", *flags])
        == 0
    )
    return out / "last.pt"


def test_train_then_resume(checkpoint: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["train", "--out", str(checkpoint.parent), "--resume", "--epochs", "2"]) == 0
    out = capsys.readouterr().out
    assert "resuming" in out
    assert "at epoch 1, step 0" in out
    assert "epoch 2.00" in out
    assert "stopped: epochs" in out


def test_resume_cannot_change_the_recipe(
    checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["train", "--out", str(checkpoint.parent), "--resume", "--lr", "0.5"]) == 2
    assert "gnpcheck: error: overrides ['lr'], but a resumed run" in capsys.readouterr().err


def test_certify_prints_the_bounds_and_three_accuracies(
    checkpoint: Path, tiny_mnist: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = tmp_path / "report.json"
    argv = ["certify", str(checkpoint), "--examples", "16", "--pgd-steps", "5",
            "--pgd-restarts", "1", "--threads", "1", "--data-dir", str(tiny_mnist),
            "--json", str(report)]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "conv1      BCOPConv2d" in out
    assert "certifying with the larger" in out
    assert "certified <= PGD-robust <= clean: holds" in out
    payload = json.loads(report.read_text())
    assert payload["examples"] == 16
    assert payload["epsilon"] == 1.58
    assert payload["consistent"]
    assert payload["lipschitz"] == max(payload["lipschitz_claimed"], payload["lipschitz_measured"])
    assert payload["certified"] <= payload["pgd"] <= payload["clean"]


def test_spectrum_writes_the_figure_and_the_numbers(
    checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["spectrum", str(checkpoint), "--layer", "2", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "conv2 (BCOPConv2d): circulant spectrum on the 7x7 grid (exact)" in out
    assert (tmp_path / "spectrum_conv2.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    numbers = np.load(tmp_path / "spectrum_conv2.npz")
    # conv2: 64 inputs after the unshuffle, 32 outputs, 7x7 grid: 32 * 49 singular values,
    # all 1 (semi-orthogonal) before and after training.
    assert numbers["initial"].shape == numbers["trained"].shape == (32 * 49,)
    np.testing.assert_allclose(numbers["trained"], 1.0, atol=1e-5)
    rows = (tmp_path / "spectrum_conv2.csv").read_text().splitlines()
    assert rows[0] == "state,sigma"
    assert len(rows) == 1 + 2 * 32 * 49


_RUN_WITHOUT_GNPCHECK = """
import json, sys, torch
program = torch.export.load(sys.argv[1]).module()
images = torch.load(sys.argv[2])
outputs = [program(images).tolist(), program(images[:3]).tolist()]
print(json.dumps({"outputs": outputs, "gnpcheck": "gnpcheck" in sys.modules}))
"""


def test_export_writes_a_program_that_runs_without_gnpcheck(
    checkpoint: Path, tiny_mnist: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    program = tmp_path / "small.pt2"
    argv = ["export", str(checkpoint), "--out", str(program), "--examples", "8",
            "--data-dir", str(tiny_mnist)]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "replaced by their plain exports, each checked: conv1, conv2, linear1, linear2" in out
    assert f"wrote {program}" in out
    images, _ = mnist_tensors("test", tiny_mnist, 16)  # beyond the 8 it was checked on
    torch.save(images, tmp_path / "images.pt")
    result = subprocess.run(
        [sys.executable, "-c", _RUN_WITHOUT_GNPCHECK, str(program), str(tmp_path / "images.pt")],
        capture_output=True, text=True, check=True, cwd=tmp_path,
    )  # fmt: skip
    payload = json.loads(result.stdout)
    assert payload["gnpcheck"] is False
    _, model = model_from_checkpoint(checkpoint)
    with torch.no_grad():
        expected = model(images)
    for outputs, count in zip(payload["outputs"], (16, 3), strict=True):
        got = torch.tensor(outputs)
        assert got.shape == (count, 10)
        torch.testing.assert_close(got, expected[:count], rtol=0, atol=1e-5)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["spectrum", "{ckpt}", "--layer", "7"],
            "layer=7, but the model has convolutions conv1, conv2",
        ),
        (["certify", "{dir}/missing.pt"], "missing.pt not found"),
        (
            ["train", "--out", "{dir}/new", "--data-dir", "{dir}"],
            "MNIST file train-images-idx3-ubyte",
        ),
        (["train", "--out", "{dir}/new", "--conv", "dense"], "conv='dense', but it must be one of"),
        (
            ["export", "{ckpt}", "--out", "{dir}/a.pt2", "--examples", "1"],
            "--examples=1, but it must be at least 2",
        ),
    ],
    ids=["layer", "checkpoint", "data", "setting", "examples"],
)
def test_errors_exit_2_with_a_message(
    argv: list[str], message: str, checkpoint: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    filled = [a.format(ckpt=checkpoint, dir=tmp_path) for a in argv]
    assert main(filled) == 2
    assert message in capsys.readouterr().err


def test_deploy_needs_a_batch_of_two(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError, match=r"at least 2 inputs"):
        deploy(small(), torch.rand(1, 1, 28, 28), tmp_path / "one.pt2")
    assert not (tmp_path / "one.pt2").exists()
