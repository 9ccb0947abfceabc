"""DDP on the CPU: two gloo processes under torchrun end with identical parameters, equal to
a single process training on the whole batch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gnpcheck.train.checkpoint import load_checkpoint
from gnpcheck.train.config import TrainConfig
from gnpcheck.train.dataset import mnist_tensors
from gnpcheck.train.distributed import DistributedContext, shard
from gnpcheck.train.loop import CHECKPOINT_NAME, build_from_config, train

from .ddp_worker import SETTINGS


def test_shard_splits_a_batch_between_ranks() -> None:
    batch = torch.arange(7)
    parts = [shard(batch, DistributedContext(r, 2, torch.device("cpu"))) for r in range(2)]
    assert [p.tolist() for p in parts] == [[0, 2, 4, 6], [1, 3, 5]]


@pytest.mark.slow
def test_two_processes_keep_identical_replicas(tiny_mnist: Path, tmp_path: Path) -> None:
    out = tmp_path / "ddp"
    out.mkdir()
    worker = Path(__file__).with_name("ddp_worker.py")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc-per-node", "2", str(worker), str(tiny_mnist), str(out)]  # fmt: skip
    finished = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr[-3000:]
    ranks = [torch.load(out / f"rank{r}.pt", weights_only=True) for r in range(2)]
    assert ranks[0]["model"].keys() == ranks[1]["model"].keys()
    for key, value in ranks[0]["model"].items():
        assert torch.equal(value, ranks[1]["model"][key]), key
    assert ranks[0]["difference"] == ranks[1]["difference"] == 0.0
    state = load_checkpoint(out / CHECKPOINT_NAME)
    assert state["world_size"] == 2
    assert state["epoch"] == SETTINGS["epochs"]
    # The same global batches in one process: the same steps up to summation order, so the
    # same function (raw parameters may drift along directions the kernel ignores, where
    # Adam normalizes gradients that are rounding noise).
    config = TrainConfig(data_dir=str(tiny_mnist), **SETTINGS)  # type: ignore[arg-type]
    alone = train(config, tmp_path / "alone").model
    replica = build_from_config(config)
    replica.load_state_dict(ranks[0]["model"])
    images, _ = mnist_tensors("test", tiny_mnist)
    with torch.no_grad():
        expected, got = alone.eval()(images), replica.eval()(images)
    print("largest logit difference", float((expected - got).abs().max()))
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-4)
