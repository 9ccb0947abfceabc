"""One DDP process of ``test_distributed.py``: train, then save this rank's parameters.

Run by ``torchrun --nproc-per-node 2 ddp_worker.py DATA_DIR OUT_DIR``.
"""

from __future__ import annotations

import sys

import torch

from gnpcheck.train.config import TrainConfig
from gnpcheck.train.distributed import init_from_env, shutdown
from gnpcheck.train.loop import train

#: The run both the worker and the single-process reference perform. The learning rate is
#: small: Adam's first steps are about ``lr * sign(gradient)``, so with a large rate the
#: rounding differences of two processes against one would grow beyond rounding.
SETTINGS = {
    "epochs": 2,
    "batch_size": 32,
    "lr": 0.001,
    "threads": 1,
    "progress": False,
    "train_examples": 128,
    "test_examples": 16,
}


def main(data_dir: str, out_dir: str) -> None:
    context = init_from_env("cpu")
    result = train(TrainConfig(data_dir=data_dir, **SETTINGS), out_dir, context)  # type: ignore[arg-type]
    state = {"model": result.model.state_dict(), "difference": result.replica_difference}
    torch.save(state, f"{out_dir}/rank{context.rank}.pt")
    shutdown(context)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
