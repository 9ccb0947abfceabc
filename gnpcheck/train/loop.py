r"""The training loop: hinge loss, Adam, learning-rate schedule, evaluation, checkpoints, resume.

Each step minimizes a multi-class hinge loss (``loss``: the seed's, averaged over the classes,
or the hinge of the certified margin: :data:`LOSS_FUNCTIONS`) with margin
:math:`\sqrt 2\, \varepsilon_{train}` (a zero loss certifies radius
:math:`\varepsilon_{train}` for a 1-Lipschitz network) with
Adam; the learning rate follows ``lr_schedule`` per epoch (times ``lr_decay``, or a cosine
over ``epochs``: :func:`learning_rate_schedule`). Epoch ``e`` visits
the training set in the order ``randperm`` draws from seed ``(seed, e)``, so a run is a
function of its configuration and a resumed run repeats exactly what an uninterrupted one
does (docs/training.rst, Note [resume]).

The position of a run is ``(epoch, step)``. A checkpoint ``last.pt`` is written atomically
after every epoch and when the run stops (time limit or last epoch): resuming loses at most
the steps since the last one. Every ``eval_every`` epochs and at the end the test set gives
clean and certified accuracy at ``eps_cert``, certified with the larger of the claimed and
measured Lipschitz bounds (:mod:`gnpcheck.certify.lipschitz`); each record holds the
training minutes (evaluation excluded) so that accuracy can be plotted against time, and the
machine's 1-minute load average (other work slows a shared machine down).

With ``average_decay`` set, an exponential moving average of the parameters (Polyak
averaging) is kept beside them: after step ``t``, ``a <- a + (1 - d_t) (theta - a)`` with
``d_t = min(average_decay, (1 + t) / (10 + t))`` (small early, so the average forgets the
initialization). Buffers are copied. Evaluation, certification and
:func:`model_from_checkpoint` then use the averaged network; training continues from the
raw parameters. Certificates are computed for whatever network is evaluated, so averaging
needs no trust: the averaged weights are measured like any others.
"""

from __future__ import annotations

import copy
import csv
import io
import math
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from gnpcheck.certify.lipschitz import model_lipschitz
from gnpcheck.certify.margin import (
    certified,
    logit_margin,
    max_margin_hinge_loss,
    multiclass_hinge_loss,
)
from gnpcheck.errors import InvalidArgumentError
from gnpcheck.models import LayerOptions, build_model
from gnpcheck.nn.baselines import SVCMConv2d
from gnpcheck.nn.precision import require_certifiable_arithmetic
from gnpcheck.threads import limited_threads
from gnpcheck.train.checkpoint import load_checkpoint, new_run_directory, save_checkpoint
from gnpcheck.train.config import BUDGET_FIELDS, TrainConfig, config_from_dict
from gnpcheck.train.dataset import MNIST_SHAPE, mnist_tensors
from gnpcheck.train.distributed import (
    DistributedContext,
    any_rank,
    barrier,
    max_replica_difference,
    shard,
    single_process,
    wrap,
)

__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_NAME",
    "HISTORY_NAME",
    "LOSS_FUNCTIONS",
    "TrainResult",
    "build_from_config",
    "epoch_order",
    "evaluate",
    "learning_rate_schedule",
    "model_from_checkpoint",
    "resume",
    "train",
]

CHECKPOINT_NAME = "last.pt"
HISTORY_NAME = "history.csv"
#: The function of each :data:`gnpcheck.train.config.LOSSES` name: ``(logits, labels, margin)``
#: to the batch's mean loss.
LOSS_FUNCTIONS: dict[str, Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]] = {
    "hinge": multiclass_hinge_loss,
    "max_hinge": max_margin_hinge_loss,
}
#: The format tag of training checkpoints.
CHECKPOINT_FORMAT = "gnpcheck-train/1"
_HISTORY_COLUMNS = (
    "epoch",
    "train_minutes",
    "wall_minutes",
    "lr",
    "train_loss",
    "clean",
    "certified",
    "lipschitz",
    "lipschitz_source",
    "load",
)


@dataclass(frozen=True)
class TrainResult:
    """What a run produced.

    Attributes:
        model: the trained network (the unwrapped module, in evaluation mode; the moving
            average when ``average_decay`` is set).
        history: one record per epoch (see :data:`HISTORY_NAME` for the columns).
        checkpoint: path of the last checkpoint.
        stopped: ``"epochs"`` or ``"time limit"``.
        replica_difference: largest parameter difference between DDP replicas at the end.
    """

    model: nn.Module
    history: list[dict[str, Any]]
    checkpoint: Path
    stopped: str
    replica_difference: float


def build_from_config(config: TrainConfig) -> nn.Sequential:
    """The model a configuration names, initialized from ``config.seed`` (the global random
    state is left as it was)."""
    options = LayerOptions(
        padding="circular" if config.padding == "circular" else "same",
        orthogonalizer="qr" if config.orthogonalizer == "qr" else "bjorck",
        bjorck_iters=config.bjorck_iters,
        linear_orthogonalizer="polar" if config.linear_orthogonalizer == "polar" else "bjorck",
        linear_bjorck_iters=config.linear_bjorck_iters,
        init_scale="fan_in" if config.init_scale == "fan_in" else "unit",
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        return build_model(config.model, config.conv, config.act, options, MNIST_SHAPE)


def epoch_order(seed: int, epoch: int, size: int) -> torch.Tensor:
    """The order in which epoch ``epoch`` visits ``size`` examples (a function of both)."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(size, generator=generator)


def evaluate(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    epsilon: float,
    batch_size: int = 1000,
) -> dict[str, Any]:
    """Clean and certified accuracy (percent) at ``epsilon`` and the Lipschitz bound used.

    Certificates use the larger of the claimed and measured bounds. The model's mode is
    restored.

    Raises:
        UnsupportedOperationError: from :func:`model_lipschitz`, float16 or bfloat16
            arithmetic, or a float32 model whose device PyTorch's settings run in reduced
            precision (docs/layers.rst, Note [float32 products]).
    """
    bound = model_lipschitz(model, tuple(images.shape[1:]))
    training = model.training
    model.eval()
    device = next(model.parameters()).device
    clean = sure = 0
    with torch.no_grad():
        for start in range(0, images.shape[0], batch_size):
            x = images[start : start + batch_size].to(device)
            y = labels[start : start + batch_size].to(device)
            logits = model(x)
            clean += int((logit_margin(logits, y) > 0).sum())
            sure += int(certified(logits, y, epsilon, bound.certified_with).sum())
    model.train(training)
    count = images.shape[0]
    return {
        "clean": 100.0 * clean / count,
        "certified": 100.0 * sure / count,
        "lipschitz": bound.certified_with,
        "lipschitz_source": bound.source,
    }


def _write_history(history: list[dict[str, Any]], path: Path) -> None:
    """``history`` as CSV, written atomically (temp file + rename)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=_HISTORY_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for record in history:
        writer.writerow({k: "" if record.get(k) is None else record[k] for k in _HISTORY_COLUMNS})
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(handle, "w", encoding="utf-8") as stream:
        stream.write(buffer.getvalue())
    os.replace(temporary, path)


def learning_rate_schedule(
    optimizer: torch.optim.Optimizer, config: TrainConfig
) -> torch.optim.lr_scheduler.LRScheduler:
    """The per-epoch schedule of ``config.lr_schedule``: ``exponential`` (times ``lr_decay``
    per epoch) or ``cosine`` (factor ``(1 + cos(pi e / epochs)) / 2`` in epoch ``e``)."""
    if config.lr_schedule == "cosine":
        epochs = config.epochs
        return torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda epoch: 0.5 * (1 + math.cos(math.pi * min(epoch, epochs) / epochs))
        )
    return torch.optim.lr_scheduler.ExponentialLR(optimizer, config.decay_per_epoch)


class _Run:
    """The mutable state of one run between checkpoints."""

    def __init__(self, config: TrainConfig, out_dir: Path, context: DistributedContext) -> None:
        self.config = config
        self.out_dir = out_dir
        self.context = context
        self.model = build_from_config(config).to(context.device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.lr)
        self.scheduler = learning_rate_schedule(self.optimizer, config)
        for module in self.model.modules():
            if isinstance(module, SVCMConv2d):
                module.register_projection_hook(self.optimizer)
        self.epoch = 0
        self.step = 0
        self.train_seconds = 0.0
        self.wall_seconds = 0.0
        self.loss_sum = 0.0
        self.loss_count = 0
        self.history: list[dict[str, Any]] = []
        self.average: nn.Module | None = None
        if config.average_decay is not None:
            self.average = copy.deepcopy(self.model).requires_grad_(False)
        self.average_steps = 0

    @property
    def evaluated(self) -> nn.Module:
        """The network evaluated and certified: the average if one is kept."""
        return self.model if self.average is None else self.average

    @torch.no_grad()
    def update_average(self) -> None:
        """One step of the moving average (see the module docstring)."""
        if self.average is None or self.config.average_decay is None:
            return
        self.average_steps += 1
        t = self.average_steps
        weight = 1.0 - min(self.config.average_decay, (1 + t) / (10 + t))
        for mean, value in zip(self.average.parameters(), self.model.parameters(), strict=True):
            mean.lerp_(value, weight)
        for kept, current in zip(self.average.buffers(), self.model.buffers(), strict=True):
            kept.copy_(current)

    @property
    def checkpoint_path(self) -> Path:
        return self.out_dir / CHECKPOINT_NAME

    def state(self, finished: bool, stopped: str) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT,
            "config": self.config.to_dict(),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "epoch": self.epoch,
            "step": self.step,
            "train_seconds": self.train_seconds,
            "wall_seconds": self.wall_seconds,
            "loss_sum": self.loss_sum,
            "loss_count": self.loss_count,
            "history": self.history,
            "average": None if self.average is None else self.average.state_dict(),
            "average_steps": self.average_steps,
            "finished": finished,
            "stopped": stopped,
            "world_size": self.context.world_size,
        }

    def load(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.epoch, self.step = int(state["epoch"]), int(state["step"])
        self.train_seconds = float(state["train_seconds"])
        self.wall_seconds = float(state["wall_seconds"])
        self.loss_sum, self.loss_count = float(state["loss_sum"]), int(state["loss_count"])
        self.history = list(state["history"])
        if self.average is not None:
            self.average.load_state_dict(state["average"])
            self.average_steps = int(state["average_steps"])

    def save(self, finished: bool, stopped: str) -> None:
        if self.context.is_main:
            save_checkpoint(self.state(finished, stopped), self.checkpoint_path)
            _write_history(self.history, self.out_dir / HISTORY_NAME)
        barrier(self.context)


def _say(text: str, context: DistributedContext) -> None:
    if context.is_main:
        tqdm.write(text)


def _record(
    run: _Run,
    test: tuple[torch.Tensor, torch.Tensor],
    steps_per_epoch: int,
    evaluate_now: bool,
) -> None:
    """Append the record of the current position (evaluated on rank 0 when asked)."""
    config = run.config
    record: dict[str, Any] = {
        "epoch": run.epoch + run.step / steps_per_epoch,
        "train_minutes": run.train_seconds / 60,
        "wall_minutes": run.wall_seconds / 60,
        "lr": run.optimizer.param_groups[0]["lr"],
        "train_loss": run.loss_sum / max(run.loss_count, 1),
        "clean": None,
        "certified": None,
        "lipschitz": None,
        "lipschitz_source": None,
        "load": os.getloadavg()[0],
    }
    if evaluate_now and run.context.is_main:
        record.update(evaluate(run.evaluated, test[0], test[1], config.eps_cert))
    run.history.append(record)
    line = (
        f"epoch {record['epoch']:.2f}  {record['train_minutes']:.2f} min  "
        f"loss {record['train_loss']:.4f}"
    )
    if record["clean"] is not None:
        line += (
            f"  clean {record['clean']:.2f}%  certified {record['certified']:.2f}% "
            f"(eps {config.eps_cert:g}, L={record['lipschitz']:.6f} {record['lipschitz_source']})"
        )
    _say(line, run.context)


def _loop(run: _Run, context: DistributedContext) -> str:
    config = run.config
    train_x, train_y = mnist_tensors("train", config.data_dir, config.train_examples)
    test = mnist_tensors("test", config.data_dir, config.test_examples)
    train_x, train_y = train_x.to(context.device), train_y.to(context.device)
    if config.channels_last:
        train_x = train_x.contiguous(memory_format=torch.channels_last)
    steps_per_epoch = math.ceil(train_x.shape[0] / config.batch_size)
    if config.batch_size < context.world_size:
        raise InvalidArgumentError(
            f"batch_size={config.batch_size}, but it must be at least the number of "
            f"processes ({context.world_size})"
        )
    network = wrap(run.model, context)
    margin = math.sqrt(2.0) * config.eps_train
    loss_function = LOSS_FUNCTIONS[config.loss]
    limit = math.inf if config.time_limit is None else config.time_limit * 60
    stopped = "epochs"
    while run.epoch < config.epochs:
        order = epoch_order(config.seed, run.epoch, train_x.shape[0]).to(context.device)
        bar = tqdm(
            total=steps_per_epoch,
            initial=run.step,
            desc=f"epoch {run.epoch + 1}/{config.epochs}",
            disable=not (config.progress and context.is_main),
            leave=False,
            dynamic_ncols=True,
        )
        started = time.perf_counter()
        base_train, base_wall = run.train_seconds, run.wall_seconds
        network.train()
        while run.step < steps_per_epoch:
            elapsed = base_train + time.perf_counter() - started
            if config.time_limit is not None and any_rank(elapsed >= limit, context):
                stopped = "time limit"
                break
            batch = order[run.step * config.batch_size : (run.step + 1) * config.batch_size]
            mine = shard(batch, context)
            loss = loss_function(network(train_x[mine]), train_y[mine], margin)
            run.optimizer.zero_grad(set_to_none=True)
            torch.autograd.backward(loss)
            run.optimizer.step()
            run.update_average()
            run.loss_sum += float(loss.detach())
            run.loss_count += 1
            run.step += 1
            bar.update(1)
            if run.step % 20 == 0:
                bar.set_postfix(loss=f"{run.loss_sum / run.loss_count:.4f}")
        bar.close()
        run.train_seconds = base_train + time.perf_counter() - started
        run.wall_seconds = base_wall + time.perf_counter() - started
        if stopped == "time limit":
            break
        run.epoch, run.step = run.epoch + 1, 0
        run.scheduler.step()
        last = run.epoch == config.epochs
        evaluating = last or run.epoch % config.eval_every == 0
        evaluated_at = time.perf_counter()
        _record(run, test, steps_per_epoch, evaluating)
        run.loss_sum, run.loss_count = 0.0, 0
        run.wall_seconds += time.perf_counter() - evaluated_at
        run.save(finished=last, stopped="epochs" if last else "")
    if stopped == "time limit":
        evaluated_at = time.perf_counter()
        _record(run, test, steps_per_epoch, evaluate_now=True)
        run.wall_seconds += time.perf_counter() - evaluated_at
        run.save(finished=True, stopped=stopped)
    return stopped


def _execute(run: _Run, context: DistributedContext) -> TrainResult:
    with limited_threads(run.config.threads):
        stopped = _loop(run, context)
        difference = max_replica_difference(run.model, context)
    run.evaluated.eval()
    return TrainResult(run.evaluated, run.history, run.checkpoint_path, stopped, difference)


def _require_exact_certificates(context: DistributedContext) -> None:
    """Refuse a run whose per-epoch certified count would come from float16, bfloat16 or
    reduced-precision float32 arithmetic (:func:`evaluate` would refuse it after the first
    epoch's training)."""
    require_certifiable_arithmetic(
        {torch.get_default_dtype()}, context.device, "the training loop's certified count"
    )


def train(
    config: TrainConfig, out_dir: str | Path, context: DistributedContext | None = None
) -> TrainResult:
    """Train a fresh model as ``config`` says, writing checkpoints to ``out_dir``.

    Raises:
        InvalidArgumentError: ``out_dir`` already holds a checkpoint (use :func:`resume`).
        gnpcheck.data.DataFileError: MNIST is missing or corrupt.
        UnsupportedOperationError: a float16 or bfloat16 default dtype, or a device that
            runs float32 products or convolutions in reduced precision (the per-epoch
            certificates could not be trusted), before anything is written.
    """
    context = context or single_process(config.device)
    _require_exact_certificates(context)
    directory = new_run_directory(out_dir, CHECKPOINT_NAME)
    return _execute(_Run(config, directory, context), context)


def _training_state(path: Path) -> dict[str, Any]:
    return load_checkpoint(path, CHECKPOINT_FORMAT, "training")


def model_from_checkpoint(path: str | Path) -> tuple[TrainConfig, nn.Sequential]:
    """The configuration and the trained model (on the CPU, evaluation mode) of a checkpoint:
    the moving average of the parameters when the run kept one.

    Raises:
        gnpcheck.data.DataFileError: a missing or unreadable file, or not a training
            checkpoint.
    """
    state = _training_state(Path(path))
    config = config_from_dict(state["config"])
    model = build_from_config(config)
    model.load_state_dict(state["model"] if state.get("average") is None else state["average"])
    return config, model.eval()


def resume(
    out_dir: str | Path,
    overrides: dict[str, Any] | None = None,
    context: DistributedContext | None = None,
) -> TrainResult:
    """Continue the run whose checkpoint is in ``out_dir`` from where it stopped.

    ``overrides`` may change only how long and how the run goes on (``epochs``,
    ``time_limit``, ``eval_every``, ``threads``, ``progress``, ``data_dir``, ``device``),
    never what it learns.

    Raises:
        gnpcheck.data.DataFileError: no readable checkpoint in ``out_dir``.
        InvalidArgumentError: a checkpoint of another format, or an override outside the
            budget fields.
        UnsupportedOperationError: as :func:`train`.
    """
    directory = Path(out_dir)
    state = _training_state(directory / CHECKPOINT_NAME)
    fixed = sorted(set(overrides or {}) - BUDGET_FIELDS)
    if fixed:
        raise InvalidArgumentError(
            f"overrides {fixed}, but a resumed run may change only {sorted(BUDGET_FIELDS)}"
        )
    config = config_from_dict({**state["config"], **(overrides or {})})
    started_with = state["config"]["epochs"]
    if config.lr_schedule == "cosine" and config.epochs != started_with:
        raise InvalidArgumentError(
            f"epochs={config.epochs}, but this run's cosine schedule anneals over the "
            f"{started_with} epochs it started with"
        )
    context = context or single_process(config.device)
    _require_exact_certificates(context)
    run = _Run(config, directory, context)
    run.load(state)
    _say(
        f"resuming {directory} at epoch {run.epoch}, step {run.step} "
        f"({run.train_seconds / 60:.2f} min of training so far)",
        context,
    )
    return _execute(run, context)
