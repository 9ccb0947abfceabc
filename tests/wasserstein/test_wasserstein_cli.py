"""``gnpcheck wasserstein generator``, ``estimate`` and ``table`` on tiny settings."""

from __future__ import annotations

from pathlib import Path

import pytest
from matplotlib.image import imread

from gnpcheck.cli import main

from ._mnist import write_tiny_mnist

#: Few steps of small batches: every command finishes in seconds.
FAST = ["--steps", "2", "--batch-size", "8", "--eval-every", "1", "--threads", "1"]


@pytest.fixture(scope="module")
def tiny_mnist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_mnist(tmp_path_factory.mktemp("mnist"))


@pytest.fixture(scope="module")
def run_dir(tiny_mnist: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("generator")
    argv = ["wasserstein", "generator", "--out", str(out), "--steps", "2", "--batch-size", "4",
            "--width", "2", "--latent-dim", "4", "--log-every", "1", "--grid", "5",
            "--data-dir", str(tiny_mnist), "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    return out


def test_generator_writes_the_checkpoint_and_a_sample_grid(run_dir: Path) -> None:
    assert (run_dir / "generator.pt").is_file()
    # 5 samples, 8 per row: one row of 28-pixel tiles with 2-pixel gaps.
    assert imread(run_dir / "samples.png").shape[:2] == (32, 8 * 30 + 2)


def test_generator_resumes_and_keeps_its_recipe(
    run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert (
        main(["wasserstein", "generator", "--out", str(run_dir), "--resume", "--steps", "3"]) == 0
    )
    captured = capsys.readouterr()
    assert "resuming" in captured.err + captured.out
    assert "stopped: steps after 3 generator steps" in captured.out
    argv = ["wasserstein", "generator", "--out", str(run_dir), "--resume", "--lr", "0.1"]
    assert main(argv) == 2
    assert "gnpcheck: error: overrides ['lr'], but a resumed run" in capsys.readouterr().err


def test_estimate_noise_pair_reports_the_bound_and_plots(
    tiny_mnist: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plot = tmp_path / "estimate.png"
    argv = ["wasserstein", "estimate", "--p", "mnist", "--q", "noise:0.1", "--critic", "rko",
            "--act", "relu", "--examples", "24", "--hidden", "8", "--data-dir", str(tiny_mnist),
            "--plot", str(plot), *FAST]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "pair: mnist vs noise:0.1; critic: rko, relu" in out
    assert "W1 lower bound:" in out
    assert "training: 2 steps" in out
    assert "known distance W1 <= 2.7991 (sigma E||N(0, I_784)||)" in out
    assert out.splitlines()[-2].endswith(": holds")
    assert imread(plot).shape[:2] == (600, 960)


def test_estimate_generator_pair_with_an_fc_critic(
    run_dir: Path, tiny_mnist: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["wasserstein", "estimate", "--q", f"generator:{run_dir / 'generator.pt'}",
            "--critic", "fc", "--act", "groupsort", "--group-size", "4", "--hidden", "8,8",
            "--examples", "24", "--data-dir", str(tiny_mnist), *FAST]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "critic: fc, groupsort" in out
    assert "known distance: none for this pair" in out


def test_a_lower_bound_above_a_known_bound_exits_1(
    tiny_mnist: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A pair whose stated upper bound is wrong (far below any estimate) must be flagged.
    monkeypatch.setattr("gnpcheck.wasserstein.pairs.expected_gaussian_norm", lambda d: -1e6)
    argv = ["wasserstein", "estimate", "--q", "noise:0.1", "--examples", "24", "--hidden", "8",
            "--data-dir", str(tiny_mnist), *FAST]  # fmt: skip
    assert main(argv) == 1
    assert capsys.readouterr().out.splitlines()[-1].endswith(": does not hold")


def test_table_prints_both_pairs_with_verdicts_and_plots(
    tiny_mnist: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["wasserstein", "table", "--q", "offset:0.05", "--q", "mnist", "--convs", "bcop,ossn",
            "--acts", "maxmin", "--examples", "24", "--hidden", "8", "--data-dir",
            str(tiny_mnist), "--plot", str(tmp_path / "table.png"), *FAST]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "## mnist vs offset:0.05" in out
    assert "## mnist vs mnist" in out
    assert out.count("BCOP >= OSSN (MaxMin)") == 2
    assert out.count("of 1 ordering claims hold") == 2
    assert "known distance W1 = 1.4000 (|C| sqrt(784))" in out
    assert "known distance W1 = 0.0000 (two samples of one distribution)" in out
    for index in (1, 2):
        assert imread(tmp_path / f"table_{index}.png").shape[:2] == (600, 960)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["estimate", "--q", "noise:abc"], "q='noise:abc', but it must be one of"),
        (["estimate", "--q", "generator:{dir}/none.pt"], "none.pt not found"),
        (["estimate", "--q", "mnist", "--p", "cifar"], "p='cifar', but it must be mnist"),
        (["estimate", "--q", "mnist", "--examples", "60"], "examples=60, but the pair needs 120"),
        (["estimate", "--q", "mnist", "--data-dir", "{dir}"], "MNIST file t10k-images-idx3-ubyte"),
        (["estimate", "--q", "mnist", "--critic", "fc", "--act", "maxmin", "--group-size", "4"],
         "group_size=4, but it applies to act='groupsort' only"),
        (["table", "--q", "mnist", "--convs", "dense"], "convs=['dense'], but it must be distinct"),
        (["generator", "--out", "{dir}/g", "--beta1", "1.5"], "beta1=1.5, but it must be in [0, 1)"),
        (["generator", "--out", "{dir}/g", "--data-dir", "{dir}"], "MNIST file train-images"),
        (["generator", "--out", "{dir}/g", "--resume"], "generator.pt not found"),
    ],
    ids=["q", "checkpoint", "p", "examples", "data", "group size", "convs", "setting",
         "generator data", "resume"],
)  # fmt: skip
def test_errors_exit_2_with_a_message(
    argv: list[str], message: str, tiny_mnist: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    filled = [part.format(dir=tmp_path) for part in argv]
    data = [] if "--data-dir" in filled else ["--data-dir", str(tiny_mnist)]
    # Pairs of 8 images unless the case says otherwise (argparse keeps the last value).
    size = [] if filled[0] == "generator" else ["--examples", "8"]
    assert main(["wasserstein", filled[0], *size, *filled[1:], *data]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "the following arguments are required: COMMAND"),
        (["estimate", "--q", "mnist", "--steps", "0"], "--steps: '0', but it must be an int >= 1"),
        (["estimate", "--q", "mnist", "--minutes", "-1"], "'-1', but it must be a number > 0"),
        (["estimate", "--q", "mnist", "--hidden", "8,x"], "--hidden: 'x', but it must be an int"),
        (["estimate", "--q", "mnist", "--critic", "dense"], "invalid choice: 'dense'"),
        (["table"], "the following arguments are required: --q"),
    ],
    ids=["no command", "steps", "minutes", "hidden", "critic", "no q"],
)
def test_usage_errors_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["wasserstein", *argv])
    assert caught.value.code == 2
    assert message in capsys.readouterr().err
