r"""Training the MNIST generator with WGAN-GP: short CPU runs, checkpoints, resume.

WGAN-GP (Gulrajani, Ahmed, Arjovsky, Dumoulin and Courville, NeurIPS 2017) trains a critic
:math:`D` to maximize :math:`E_{data} D - E_{G} D` while keeping its gradient norm near 1:
the critic's loss is

.. math::

   L_D = E_z D(G(z)) - E_x D(x)
         + \lambda\, E_{\hat x} \big(\|\nabla_{\hat x} D(\hat x)\|_2 - 1\big)^2,
   \qquad \hat x = \epsilon x + (1 - \epsilon) G(z),\ \epsilon \sim U[0, 1],

with :math:`\lambda = 10`, ``n_critic = 5`` critic steps per generator step, and the
generator minimizes :math:`-E_z D(G(z))`; both use Adam with learning rate :math:`10^{-4}`
(the paper's defaults) and betas (0.5, 0.9) (the paper's Algorithm 1 has
:math:`\beta_1 = 0`; ``beta1`` sets it). Real images are MNIST training images in
``[0, 1]`` (:func:`gnpcheck.train.dataset.mnist_tensors`), drawn with replacement.

Note [generator determinism]: every random draw of generator step ``t`` (batch indices,
latent vectors, interpolation weights) comes from a generator seeded with ``(seed, t)``, and
the networks are initialized from ``seed``; so a run is a function of its configuration (and
of the thread count, which may change the order of floating-point sums), and a resumed run
repeats exactly what an uninterrupted one does. The checkpoint ``generator.pt`` is written
atomically every ``checkpoint_every`` generator steps and when the run stops.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from gnpcheck.errors import InvalidArgumentError
from gnpcheck.threads import limited_threads
from gnpcheck.train.checkpoint import load_checkpoint, new_run_directory, save_checkpoint
from gnpcheck.train.dataset import mnist_tensors
from gnpcheck.wasserstein.generator import Generator, wgan_critic

__all__ = [
    "GENERATOR_BUDGET_FIELDS",
    "GENERATOR_CHECKPOINT",
    "GENERATOR_FORMAT",
    "GeneratorConfig",
    "GeneratorRun",
    "gradient_penalty",
    "load_generator",
    "resume_generator",
    "train_generator",
]

#: The checkpoint's file name in the run directory.
GENERATOR_CHECKPOINT = "generator.pt"
#: The format tag of generator checkpoints.
GENERATOR_FORMAT = "gnpcheck-wgan-gp/1"


@dataclass(frozen=True)
class GeneratorConfig:
    """Everything that defines a WGAN-GP run.

    Attributes:
        latent_dim, width: the generator's latent size and the width of both networks
            (:class:`~gnpcheck.wasserstein.generator.Generator`).
        batch_size: images per critic and generator step.
        lr, beta1, beta2: Adam's learning rate and betas, for both networks.
        n_critic: critic steps per generator step.
        gp_weight: :math:`\\lambda`, the weight of the gradient penalty.
        steps: generator steps to run in all (the run may stop earlier on ``time_limit``).
        time_limit: stop once the run (resumed runs included) has trained this many
            minutes (``None``: no limit).
        seed: initialization and every random draw (Note [generator determinism]).
        train_examples: use the first examples of the MNIST training split (``None``: all).
        data_dir: MNIST directory (default :func:`gnpcheck.data.default_mnist_dir`).
        threads: ``torch.set_num_threads`` during the run.
        checkpoint_every: write the checkpoint every this many generator steps.
        log_every: append a history record every this many generator steps.
        progress: show a tqdm progress bar.
    """

    latent_dim: int = 64
    width: int = 32
    batch_size: int = 64
    lr: float = 1e-4
    beta1: float = 0.5
    beta2: float = 0.9
    n_critic: int = 5
    gp_weight: float = 10.0
    steps: int = 20000
    time_limit: float | None = None
    seed: int = 0
    train_examples: int | None = None
    data_dir: str | None = None
    threads: int = 1
    checkpoint_every: int = 100
    log_every: int = 50
    progress: bool = True

    def __post_init__(self) -> None:
        positive = ("latent_dim", "width", "batch_size", "n_critic", "steps", "threads")
        for name in (*positive, "checkpoint_every", "log_every"):
            _check_int(getattr(self, name), name, minimum=1)
        if self.train_examples is not None:
            _check_int(self.train_examples, "train_examples", minimum=1)
        _check_int(self.seed, "seed", minimum=0)
        if not 0 < self.lr < math.inf:
            raise InvalidArgumentError(f"lr={self.lr!r}, but it must be > 0")
        for name in ("beta1", "beta2"):
            if not 0 <= getattr(self, name) < 1:
                raise InvalidArgumentError(
                    f"{name}={getattr(self, name)!r}, but it must be in [0, 1)"
                )
        if not 0 <= self.gp_weight < math.inf:
            raise InvalidArgumentError(f"gp_weight={self.gp_weight!r}, but it must be >= 0")
        if self.time_limit is not None and not 0 < self.time_limit < math.inf:
            raise InvalidArgumentError(
                f"time_limit={self.time_limit!r}, but it must be a positive number of minutes"
            )

    def to_dict(self) -> dict[str, Any]:
        """The fields as a plain dict (what checkpoints store)."""
        return asdict(self)


#: Fields a resumed run may change: how long and how it runs, never what it learns.
GENERATOR_BUDGET_FIELDS = frozenset(
    {"steps", "time_limit", "data_dir", "threads", "checkpoint_every", "log_every", "progress"}
)


def _check_int(value: object, name: str, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidArgumentError(f"{name}={value!r}, but it must be an int >= {minimum}")


@dataclass(frozen=True)
class GeneratorRun:
    """What a WGAN-GP run produced.

    Attributes:
        generator: the trained generator (CPU, evaluation mode).
        history: records of ``step``, ``minutes``, ``critic_gap`` (the critic's
            :math:`E_{data} D - E_G D`, the WGAN estimate of the distance while training),
            ``gradient_penalty``, ``generator_loss`` (means over the last ``log_every``
            steps) and ``load`` (the machine's 1-minute load average).
        checkpoint: path of the checkpoint.
        stopped: ``"steps"`` or ``"time limit"``.
        step: generator steps done in all.
        seconds: training seconds in all (resumed runs included).
    """

    generator: Generator
    history: list[dict[str, float]]
    checkpoint: Path
    stopped: str
    step: int
    seconds: float


def gradient_penalty(
    critic: nn.Module, real: torch.Tensor, fake: torch.Tensor, mix: torch.Tensor
) -> torch.Tensor:
    r""":math:`E (\|\nabla D(\hat x)\|_2 - 1)^2` at :math:`\hat x = m x + (1 - m) G(z)`.

    Args:
        critic: maps ``(N, *shape)`` to ``(N, 1)``.
        real, fake: ``(N, *shape)`` each.
        mix: the interpolation weights :math:`m`, ``(N, 1, ..., 1)`` (broadcast per sample).

    Returns:
        A scalar that keeps the graph (its gradient reaches the critic's parameters).
    """
    points = (mix * real + (1 - mix) * fake).detach().requires_grad_(True)
    scores: torch.Tensor = critic(points)
    (gradient,) = torch.autograd.grad(scores.sum(), points, create_graph=True)
    norms: torch.Tensor = gradient.flatten(1).norm(dim=1)
    return ((norms - 1) ** 2).mean()


def _step_random(seed: int, step: int) -> torch.Generator:
    """The random generator of generator step ``step`` (Note [generator determinism])."""
    return torch.Generator().manual_seed(seed * 1_000_003 + step)


class _Run:
    """The mutable state of a run between checkpoints."""

    def __init__(self, config: GeneratorConfig, out_dir: Path) -> None:
        self.config = config
        self.out_dir = out_dir
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            self.generator = Generator(config.latent_dim, config.width)
            self.critic = wgan_critic(config.width)
        betas = (config.beta1, config.beta2)
        self.generator_optimizer = torch.optim.Adam(
            self.generator.parameters(), lr=config.lr, betas=betas
        )
        self.critic_optimizer = torch.optim.Adam(
            self.critic.parameters(), lr=config.lr, betas=betas
        )
        self.step = 0
        self.seconds = 0.0
        self.history: list[dict[str, float]] = []
        self.window = dict.fromkeys(("critic_gap", "gradient_penalty", "generator_loss"), 0.0)
        self.window_steps = 0

    @property
    def checkpoint(self) -> Path:
        return self.out_dir / GENERATOR_CHECKPOINT

    def state(self, stopped: str) -> dict[str, Any]:
        return {
            "format": GENERATOR_FORMAT,
            "config": self.config.to_dict(),
            "generator": self.generator.state_dict(),
            "critic": self.critic.state_dict(),
            "generator_optimizer": self.generator_optimizer.state_dict(),
            "critic_optimizer": self.critic_optimizer.state_dict(),
            "step": self.step,
            "seconds": self.seconds,
            "history": self.history,
            "window": self.window,
            "window_steps": self.window_steps,
            "stopped": stopped,
        }

    def load(self, state: dict[str, Any]) -> None:
        self.generator.load_state_dict(state["generator"])
        self.critic.load_state_dict(state["critic"])
        self.generator_optimizer.load_state_dict(state["generator_optimizer"])
        self.critic_optimizer.load_state_dict(state["critic_optimizer"])
        self.step, self.seconds = int(state["step"]), float(state["seconds"])
        self.history = [dict(record) for record in state["history"]]
        self.window = {key: float(value) for key, value in state["window"].items()}
        self.window_steps = int(state["window_steps"])

    def save(self, stopped: str = "") -> None:
        save_checkpoint(self.state(stopped), self.checkpoint)

    def train_step(self, images: torch.Tensor) -> None:
        """One generator step after ``n_critic`` critic steps (the WGAN-GP losses)."""
        config = self.config
        random = _step_random(config.seed, self.step)
        size = (config.batch_size,)
        self.critic.requires_grad_(True)
        for _ in range(config.n_critic):
            real = images[torch.randint(images.shape[0], size, generator=random)]
            with torch.no_grad():
                fake = self.generator(torch.randn((*size, config.latent_dim), generator=random))
            mix = torch.rand((*size, 1, 1, 1), generator=random)
            gap = self.critic(real).mean() - self.critic(fake).mean()
            penalty = gradient_penalty(self.critic, real, fake, mix)
            self.critic_optimizer.zero_grad(set_to_none=True)
            torch.autograd.backward(-gap + config.gp_weight * penalty)
            self.critic_optimizer.step()
        self.critic.requires_grad_(False)
        z = torch.randn((*size, config.latent_dim), generator=random)
        generator_loss = -self.critic(self.generator(z)).mean()
        self.generator_optimizer.zero_grad(set_to_none=True)
        torch.autograd.backward(generator_loss)
        self.generator_optimizer.step()
        self.critic.requires_grad_(True)
        self.window["critic_gap"] += float(gap.detach())
        self.window["gradient_penalty"] += float(penalty.detach())
        self.window["generator_loss"] += float(generator_loss.detach())
        self.window_steps += 1
        self.step += 1

    def record(self) -> dict[str, float]:
        """Append the means of the current window to the history and start a new window."""
        count = max(self.window_steps, 1)
        record = {"step": float(self.step), "minutes": self.seconds / 60}
        record.update({key: value / count for key, value in self.window.items()})
        record["load"] = os.getloadavg()[0]
        self.history.append(record)
        self.window = dict.fromkeys(self.window, 0.0)
        self.window_steps = 0
        return record


def _describe(record: dict[str, float]) -> str:
    return (
        f"step {record['step']:.0f}  {record['minutes']:.2f} min  critic gap "
        f"{record['critic_gap']:.4f}  gradient penalty {record['gradient_penalty']:.4f}  "
        f"generator loss {record['generator_loss']:.4f}  load {record['load']:.1f}"
    )


def _loop(run: _Run) -> str:
    config = run.config
    images, _ = mnist_tensors("train", config.data_dir, config.train_examples)
    limit = math.inf if config.time_limit is None else config.time_limit * 60
    bar = tqdm(
        total=config.steps,
        initial=run.step,
        desc="WGAN-GP",
        disable=not config.progress,
        dynamic_ncols=True,
    )
    stopped = "steps"
    started, base = time.perf_counter(), run.seconds
    run.generator.train()
    run.critic.train()
    while run.step < config.steps:
        run.seconds = base + time.perf_counter() - started
        if run.seconds >= limit:
            stopped = "time limit"
            break
        run.train_step(images)
        bar.update(1)
        if run.step % config.log_every == 0:
            run.seconds = base + time.perf_counter() - started
            tqdm.write(_describe(run.record()))
        if run.step % config.checkpoint_every == 0:
            run.save()
    bar.close()
    run.seconds = base + time.perf_counter() - started
    if run.window_steps:
        tqdm.write(_describe(run.record()))
    run.save(stopped)
    return stopped


def _execute(run: _Run) -> GeneratorRun:
    with limited_threads(run.config.threads):
        stopped = _loop(run)
    generator = run.generator.eval()
    return GeneratorRun(generator, run.history, run.checkpoint, stopped, run.step, run.seconds)


def train_generator(config: GeneratorConfig, out_dir: str | Path) -> GeneratorRun:
    """Train a fresh generator as ``config`` says, writing ``out_dir/generator.pt``.

    Raises:
        InvalidArgumentError: ``out_dir`` already holds a checkpoint (resume it instead).
        gnpcheck.data.DataFileError: MNIST is missing or corrupt.
    """
    directory = new_run_directory(out_dir, GENERATOR_CHECKPOINT)
    return _execute(_Run(config, directory))


def _generator_state(path: Path) -> dict[str, Any]:
    return load_checkpoint(path, GENERATOR_FORMAT, "generator")


def _config(values: dict[str, Any]) -> GeneratorConfig:
    known = {item.name for item in fields(GeneratorConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise InvalidArgumentError(
            f"settings {unknown}, but generator settings are {sorted(known)}"
        )
    return GeneratorConfig(**values)


def resume_generator(out_dir: str | Path, overrides: dict[str, Any] | None = None) -> GeneratorRun:
    """Continue the run whose checkpoint is in ``out_dir`` from where it stopped.

    ``overrides`` may change only :data:`GENERATOR_BUDGET_FIELDS` (e.g. a larger ``steps``,
    or a larger ``time_limit``: like ``steps``, it counts the whole run, resumed or not).

    Raises:
        gnpcheck.data.DataFileError: no readable generator checkpoint in ``out_dir``.
        InvalidArgumentError: an override outside the budget fields, or an invalid value.
    """
    directory = Path(out_dir)
    state = _generator_state(directory / GENERATOR_CHECKPOINT)
    fixed = sorted(set(overrides or {}) - GENERATOR_BUDGET_FIELDS)
    if fixed:
        raise InvalidArgumentError(
            f"overrides {fixed}, but a resumed run may change only "
            f"{sorted(GENERATOR_BUDGET_FIELDS)}"
        )
    config = _config({**state["config"], **(overrides or {})})
    run = _Run(config, directory)
    run.load(state)
    tqdm.write(
        f"resuming {directory} at generator step {run.step} ({run.seconds / 60:.2f} min of "
        "training so far)"
    )
    return _execute(run)


def load_generator(path: str | Path) -> Generator:
    """The trained generator of a checkpoint (CPU, evaluation mode).

    Raises:
        gnpcheck.data.DataFileError: a missing or unreadable file, or not a generator
            checkpoint.
    """
    state = _generator_state(Path(path))
    config = _config(state["config"])
    generator = Generator(config.latent_dim, config.width)
    generator.load_state_dict(state["generator"])
    return generator.eval()
