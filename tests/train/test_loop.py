"""The training loop: checkpoints, history, determinism, the time limit, and resume."""

from __future__ import annotations

import dataclasses
import math
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from gnpcheck.errors import InvalidArgumentError, UnsupportedOperationError
from gnpcheck.train.checkpoint import load_checkpoint
from gnpcheck.train.config import LOSSES, TrainConfig
from gnpcheck.train.dataset import mnist_tensors
from gnpcheck.train.loop import (
    CHECKPOINT_NAME,
    HISTORY_NAME,
    LOSS_FUNCTIONS,
    build_from_config,
    epoch_order,
    model_from_checkpoint,
    resume,
    train,
)


def _assert_same_state(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def _learned(history: list[dict[str, object]]) -> list[tuple[object, ...]]:
    """What a record says about learning (not about time)."""
    return [(r["epoch"], r["train_loss"], r["clean"], r["certified"], r["lr"]) for r in history]


def test_a_run_writes_checkpoints_and_history(tiny_config: TrainConfig, tmp_path: Path) -> None:
    result = train(tiny_config, tmp_path)
    assert result.stopped == "epochs"
    assert result.replica_difference == 0.0
    state = load_checkpoint(tmp_path / CHECKPOINT_NAME)
    assert (state["epoch"], state["step"], state["finished"]) == (2, 0, True)
    assert state["config"] == tiny_config.to_dict()
    history = state["history"]
    assert [r["epoch"] for r in history] == [1.0, 2.0]
    assert history[1]["train_loss"] < history[0]["train_loss"]
    assert history[1]["clean"] > 50.0
    assert history[1]["lr"] == pytest.approx(tiny_config.lr * tiny_config.decay_per_epoch**2)
    assert 0 < history[0]["train_minutes"] < history[1]["train_minutes"]
    lines = (tmp_path / HISTORY_NAME).read_text().splitlines()
    assert lines[0].startswith("epoch,train_minutes,wall_minutes,lr,train_loss,clean,certified")
    assert len(lines) == 3
    _, loaded = model_from_checkpoint(tmp_path / CHECKPOINT_NAME)
    _assert_same_state(loaded.state_dict(), result.model.state_dict())


def test_a_run_is_a_function_of_its_configuration(tiny_config: TrainConfig, tmp_path: Path) -> None:
    config = dataclasses.replace(tiny_config, epochs=1)
    first = train(config, tmp_path / "a").model.state_dict()
    second = train(config, tmp_path / "b").model.state_dict()
    _assert_same_state(first, second)
    other = train(dataclasses.replace(config, seed=1), tmp_path / "c").model.state_dict()
    assert not torch.equal(first["linear2.weight_tilde"], other["linear2.weight_tilde"])


def test_epoch_order_is_a_permutation_fixed_by_seed_and_epoch() -> None:
    order = epoch_order(3, 5, 100)
    assert sorted(order.tolist()) == list(range(100))
    assert torch.equal(order, epoch_order(3, 5, 100))
    assert not torch.equal(order, epoch_order(3, 6, 100))


@pytest.mark.parametrize("average_decay", [None, 0.9], ids=["raw", "averaged"])
def test_time_limit_stops_mid_epoch_and_resume_finishes_the_same_run(
    tiny_config: TrainConfig, tmp_path: Path, average_decay: float | None
) -> None:
    tiny_config = dataclasses.replace(tiny_config, average_decay=average_decay)
    reference = train(tiny_config, tmp_path / "reference")
    limited = train(dataclasses.replace(tiny_config, time_limit=1e-9), tmp_path / "limited")
    assert limited.stopped == "time limit"
    state = load_checkpoint(tmp_path / "limited" / CHECKPOINT_NAME)
    assert (state["epoch"], state["step"], state["finished"]) == (0, 0, True)
    assert limited.history[-1]["clean"] is not None  # evaluated when stopping
    # Stop again part-way through the first epoch, then finish without a limit.
    partial = train(dataclasses.replace(tiny_config, time_limit=0.02 / 60), tmp_path / "partial")
    position = load_checkpoint(tmp_path / "partial" / CHECKPOINT_NAME)
    assert partial.stopped == "time limit"
    assert (position["epoch"], position["step"]) < (2, 0)
    finished = resume(tmp_path / "partial", {"time_limit": None})
    assert finished.stopped == "epochs"
    _assert_same_state(finished.model.state_dict(), reference.model.state_dict())
    assert _learned(finished.history)[-1] == _learned(reference.history)[-1]


def test_resume_after_a_killed_run_loses_only_the_current_epoch(
    tiny_config: TrainConfig, tmp_path: Path
) -> None:
    """A training process is killed (SIGKILL) once its first checkpoint exists; resuming it
    reproduces the uninterrupted run exactly."""
    out = tmp_path / "killed"
    settings = {k: v for k, v in tiny_config.to_dict().items() if k not in ("epochs", "progress")}
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in settings.items()
             if v is not None and not isinstance(v, bool)]  # fmt: skip
    assert not tiny_config.channels_last
    command = [sys.executable, "-m", "gnpcheck.train_cli", "train", "--out", str(out),
               "--epochs", "1000", "--no-progress", *flags]  # fmt: skip
    log = tmp_path / "stderr.txt"  # a file, not a pipe: nothing blocks the child or leaks
    deadline = time.monotonic() + 120
    # run from tmp_path: `-m` puts the working directory first on sys.path, and from a source
    # checkout the child would import that gnpcheck, not the installed one this process runs
    # (which may differ in its native library, Note [native stages], and so in rounding)
    with (
        log.open("wb") as stderr,
        subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=stderr, cwd=tmp_path
        ) as process,
    ):
        try:
            while not (out / CHECKPOINT_NAME).exists():
                assert process.poll() is None, log.read_text()
                assert time.monotonic() < deadline, "no checkpoint within 120 s"
                time.sleep(0.05)
        finally:
            process.kill()  # SIGKILL
            process.wait()
    assert process.returncode == -signal.SIGKILL
    state = load_checkpoint(out / CHECKPOINT_NAME)
    done = state["epoch"]
    assert done >= 1
    assert state["step"] == 0
    assert not state["finished"]
    epochs = done + 1
    resumed = resume(out, {"epochs": epochs})
    reference = train(dataclasses.replace(tiny_config, epochs=epochs), tmp_path / "reference")
    _assert_same_state(resumed.model.state_dict(), reference.model.state_dict())
    assert _learned(resumed.history) == _learned(reference.history)
    assert math.isclose(
        resumed.history[-1]["lr"], tiny_config.lr * tiny_config.decay_per_epoch**epochs
    )


def test_cosine_schedule_anneals_over_the_epochs_and_fixes_them(
    tiny_config: TrainConfig, tmp_path: Path
) -> None:
    """Factor ``(1 + cos(pi e / epochs)) / 2`` after epoch ``e``: 1/2 after one of two, then 0;
    a resumed cosine run may not change the epochs it anneals over."""
    cosine = dataclasses.replace(tiny_config, lr_schedule="cosine", epochs=2)
    history = train(dataclasses.replace(cosine, time_limit=None), tmp_path / "full").history
    assert [r["lr"] for r in history] == pytest.approx([cosine.lr / 2, 0.0], abs=1e-12)
    train(dataclasses.replace(cosine, epochs=3), tmp_path / "short")
    with pytest.raises(InvalidArgumentError, match="anneals over the 3 epochs it started with"):
        resume(tmp_path / "short", {"epochs": 4})


def test_each_loss_is_the_one_minimized(tiny_config: TrainConfig, tmp_path: Path) -> None:
    """The first step's loss (the only one with ``train_examples`` = batch) is the chosen
    function of the initial network's logits."""
    assert set(LOSS_FUNCTIONS) == set(LOSSES)
    one_step = dataclasses.replace(
        tiny_config, epochs=1, train_examples=tiny_config.batch_size, time_limit=None
    )
    images, labels = mnist_tensors("train", one_step.data_dir, one_step.train_examples)
    margin = math.sqrt(2.0) * one_step.eps_train
    for name, function in LOSS_FUNCTIONS.items():
        config = dataclasses.replace(one_step, loss=name)
        with torch.no_grad():
            expected = float(function(build_from_config(config)(images), labels, margin))
        history = train(config, tmp_path / name).history
        assert history[-1]["train_loss"] == pytest.approx(expected, rel=1e-5)


def test_resume_refuses_to_change_what_is_learned(tiny_config: TrainConfig, tmp_path: Path) -> None:
    train(dataclasses.replace(tiny_config, epochs=1), tmp_path)
    with pytest.raises(InvalidArgumentError, match=r"overrides \['lr'\], but a resumed run"):
        resume(tmp_path, {"lr": 0.5})
    with pytest.raises(InvalidArgumentError, match=r"already holds last\.pt"):
        train(tiny_config, tmp_path)


def test_reduced_precision_is_refused_before_anything_is_written(
    tiny_config: TrainConfig, tmp_path: Path, float32_settings: Callable[[str, str], None]
) -> None:
    """The per-epoch certified count needs IEEE float32 arithmetic: train and resume refuse
    a device that runs float32 convolutions in reduced precision at once, not after an
    epoch of training, and train writes nothing."""
    train(dataclasses.replace(tiny_config, epochs=1), tmp_path / "done")
    float32_settings("mkldnn.conv", "bf16")
    with pytest.raises(UnsupportedOperationError, match=r"the training loop's certified count"):
        train(tiny_config, tmp_path / "new")
    assert not (tmp_path / "new").exists()
    with pytest.raises(UnsupportedOperationError, match=r"mkldnn\.conv"):
        resume(tmp_path / "done", {"epochs": 2})


def test_a_half_precision_default_dtype_is_refused_before_anything_is_written(
    tiny_config: TrainConfig, tmp_path: Path
) -> None:
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float16)
    try:
        with pytest.raises(UnsupportedOperationError, match=r"torch\.float16 parameters"):
            train(tiny_config, tmp_path / "new")
    finally:
        torch.set_default_dtype(previous)
    assert not (tmp_path / "new").exists()


def test_the_average_is_what_is_evaluated_and_loaded(
    tiny_config: TrainConfig, tmp_path: Path
) -> None:
    """With decay 0 the average is the last parameters; with 0.9 it lags behind them."""
    last = train(dataclasses.replace(tiny_config, average_decay=0.0), tmp_path / "zero")
    state = load_checkpoint(tmp_path / "zero" / CHECKPOINT_NAME)
    _assert_same_state(state["average"], state["model"])
    lagging = train(dataclasses.replace(tiny_config, average_decay=0.9), tmp_path / "lag")
    state = load_checkpoint(tmp_path / "lag" / CHECKPOINT_NAME)
    assert state["average_steps"] == 2 * 8
    _assert_same_state(lagging.model.state_dict(), state["average"])
    assert not torch.equal(state["average"]["conv1.h_tilde"], state["model"]["conv1.h_tilde"])
    _, loaded = model_from_checkpoint(tmp_path / "lag" / CHECKPOINT_NAME)
    _assert_same_state(loaded.state_dict(), state["average"])
    raw = train(tiny_config, tmp_path / "raw")
    _assert_same_state(raw.model.state_dict(), state["model"])  # averaging never steers training
    assert load_checkpoint(tmp_path / "raw" / CHECKPOINT_NAME)["average"] is None
    assert last.history[-1]["clean"] is not None
