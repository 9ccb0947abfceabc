"""Data-parallel training with ``torch.distributed`` (DDP), launched by ``torchrun``.

``torchrun --nproc-per-node P -m gnpcheck train ... --distributed`` starts ``P`` processes;
each reads its rank from the environment ``torchrun`` sets (``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``). The backend is gloo on the CPU and NCCL
on CUDA (one GPU per process, ``cuda:LOCAL_RANK``). Every rank builds the same model from the
same seed, takes every ``P``-th example of each global batch (:func:`shard`), and DDP
averages the gradients, so all replicas take the same optimizer steps; only rank 0
evaluates and writes checkpoints.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from gnpcheck.errors import InvalidArgumentError

__all__ = [
    "DistributedContext",
    "any_rank",
    "barrier",
    "init_from_env",
    "max_replica_difference",
    "shard",
    "shutdown",
    "single_process",
    "wrap",
]


@dataclass(frozen=True)
class DistributedContext:
    """Where this process stands: its rank among ``world_size`` and its device."""

    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """Whether this is rank 0 (which evaluates, prints and writes checkpoints)."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """Whether a process group is in use."""
        return self.world_size > 1 or dist.is_initialized()


def single_process(device: str = "cpu") -> DistributedContext:
    """The context of an ordinary, single-process run."""
    return DistributedContext(0, 1, torch.device(device))


def init_from_env(device: str = "cpu") -> DistributedContext:
    """Join the process group ``torchrun`` set up (gloo on CPU, NCCL on CUDA).

    Raises:
        InvalidArgumentError: the ``torchrun`` environment variables are missing.
    """
    missing = [name for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK") if name not in os.environ]
    if missing:
        raise InvalidArgumentError(
            f"distributed=True, but {', '.join(missing)} not set: launch with torchrun, e.g. "
            "torchrun --nproc-per-node 2 -m gnpcheck train --distributed ..."
        )
    rank, world, local = (int(os.environ[n]) for n in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))
    if device.startswith("cuda"):
        torch.cuda.set_device(local)
        place = torch.device("cuda", local)
        backend = "nccl"
    else:
        place, backend = torch.device("cpu"), "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, rank=rank, world_size=world)
    return DistributedContext(rank, world, place)


def shard(indices: torch.Tensor, context: DistributedContext) -> torch.Tensor:
    """This rank's part of a global batch: every ``world_size``-th index from ``rank``."""
    return indices[context.rank :: context.world_size]


def wrap(model: nn.Module, context: DistributedContext) -> nn.Module:
    """``model`` inside ``DistributedDataParallel`` when distributed, else unchanged."""
    if not context.distributed:
        return model
    ids = [context.device.index] if context.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def any_rank(flag: bool, context: DistributedContext) -> bool:
    """Whether ``flag`` is true on any rank (every rank gets the same answer)."""
    if not context.distributed:
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=context.device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item() > 0)


def barrier(context: DistributedContext) -> None:
    """Wait for every rank (nothing to wait for in a single process)."""
    if context.distributed:
        dist.barrier()


def max_replica_difference(model: nn.Module, context: DistributedContext) -> float:
    """The largest absolute difference between this rank's parameters and every other's.

    Every rank gets the same answer; 0 in a single process.
    """
    if not context.distributed:
        return 0.0
    flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    gathered = [torch.empty_like(flat) for _ in range(context.world_size)]
    dist.all_gather(gathered, flat)
    return max(float((other - gathered[0]).abs().max()) for other in gathered)


def shutdown(context: DistributedContext) -> None:
    """Leave the process group, if one is in use."""
    if context.distributed and dist.is_initialized():
        dist.destroy_process_group()
