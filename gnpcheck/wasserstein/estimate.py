r"""Wasserstein-1 estimation with a trained, measured critic (docs/wasserstein.rst).

By Kantorovich–Rubinstein duality, :math:`W_1(p, q) = \sup_{\mathrm{Lip}(f) \le 1}
\mathbb{E}_p f - \mathbb{E}_q f`, so for *any* critic :math:`f` with
:math:`\mathrm{Lip}(f) \le L`,

.. math:: \frac{\mathbb{E}_p f - \mathbb{E}_q f}{L} \le W_1(p, q).

:func:`estimate` trains a copy of the critic to maximize the gap on a training split, then
evaluates the gap on a held-out split (independent of the training, so the held-out gap is
an unbiased estimate of :math:`\mathbb{E}_p f - \mathbb{E}_q f` for the trained :math:`f`)
and divides it by the larger of the critic's claimed and independently measured Lipschitz
bounds (:func:`gnpcheck.certify.lipschitz.model_lipschitz`). A critic whose bound cannot be
measured is refused before any training.
"""

from __future__ import annotations

import copy
import math
import time
from typing import Literal

import torch
from torch import nn
from tqdm import tqdm

from gnpcheck.certify.lipschitz import model_lipschitz
from gnpcheck.errors import InvalidArgumentError, InvalidTypeError
from gnpcheck.nn.baselines import SVCMConv2d
from gnpcheck.threads import limited_threads
from gnpcheck.wasserstein._arguments import fraction, integer, positive, seed_value
from gnpcheck.wasserstein.result import WassersteinEstimate
from gnpcheck.wasserstein.samples import BatchCycle, Samples, read_samples, split_pair

__all__ = ["estimate", "heldout_gap"]


def _scores(critic: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The critic's values on ``x`` as a vector; its output must be ``(N, 1)`` or ``(N,)``."""
    out = critic(x)
    count = x.shape[0]
    if not isinstance(out, torch.Tensor) or tuple(out.shape) not in ((count, 1), (count,)):
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise InvalidArgumentError(
            f"the critic's output has shape {shape} on {count} samples, but it must be "
            f"({count}, 1): one value per sample"
        )
    return out.reshape(count)


@torch.no_grad()
def _all_scores(critic: nn.Module, data: torch.Tensor, batch_size: int) -> torch.Tensor:
    device = next(critic.parameters()).device
    parts = [
        _scores(critic, data[start : start + batch_size].to(device)).double().cpu()
        for start in range(0, data.shape[0], batch_size)
    ]
    return torch.cat(parts)


def heldout_gap(
    critic: nn.Module, p: torch.Tensor, q: torch.Tensor, batch_size: int = 256
) -> tuple[float, float]:
    r"""``(gap, standard_error)`` of a critic on two sample tensors, in float64.

    ``gap`` is :math:`\bar f(p) - \bar f(q)`; ``standard_error`` is
    :math:`\sqrt{s_p^2/n_p + s_q^2/n_q}` with the unbiased sample variances (the two sets
    are independent). The critic runs in evaluation mode; its mode is restored.
    """
    training = critic.training
    critic.eval()
    try:
        fp, fq = _all_scores(critic, p, batch_size), _all_scores(critic, q, batch_size)
    finally:
        critic.train(training)
    gap = float(fp.mean() - fq.mean())
    error = math.sqrt(float(fp.var()) / fp.numel() + float(fq.var()) / fq.numel())
    return gap, error


def _critic_dtype(critic: object) -> torch.dtype:
    if not isinstance(critic, nn.Module):
        raise InvalidTypeError(f"critic is a {type(critic).__name__}, but it must be an nn.Module")
    parameter = next(critic.parameters(), None)
    if parameter is None:
        raise InvalidArgumentError("critic has no parameters, but estimate trains the critic")
    return parameter.dtype


def estimate(
    p: Samples,
    q: Samples,
    critic: nn.Module,
    steps: int = 2000,
    batch_size: int = 256,
    lr: float = 1e-3,
    holdout: float = 0.5,
    seed: int = 0,
    eval_every: int = 100,
    time_limit: float | None = None,
    threads: int | None = None,
    progress: bool = False,
    *,
    max_samples: int | None = None,
) -> WassersteinEstimate:
    r"""Estimate a lower bound on :math:`W_1(p, q)` with a trained critic.

    Each sample set is read into memory and split at random into training and held-out
    parts (:mod:`gnpcheck.wasserstein.samples`, Note [sample sets]). A deep copy of
    ``critic`` is trained with Adam for ``steps`` steps to maximize
    :math:`\bar f(p_b) - \bar f(q_b)` on batches ``p_b``, ``q_b`` of ``batch_size`` training
    samples (the whole training part when it is smaller; both batches go through the critic in
    one forward pass); ``critic`` itself is not changed.
    The held-out gap is recorded at step 0, every ``eval_every`` steps and at the end. The
    reported gap is the *final* critic's: picking the best recorded one would select on the
    held-out data and bias it upwards.

    The result divides the gap by ``lipschitz.certified_with``, the larger of the trained
    critic's claimed and measured Lipschitz bounds
    (:func:`~gnpcheck.certify.lipschitz.model_lipschitz` on inputs of one sample's shape):
    a critic that is not 1-Lipschitz is measured and divided by what it is, never trusted.

    The run is a function of the critic's initial state, the samples and the arguments:
    ``seed`` draws the splits and the batch order (the global random state is not used).
    Bit-for-bit repetition also needs the same device and thread count.

    Args:
        p, q: sample sets: tensors ``(N, *shape)`` or iterables of batches (DataLoaders),
            floating point, of the same sample shape and dtype as each other and as the
            critic's parameters.
        critic: an ``nn.Module`` chain with output ``(N, 1)`` that
            :func:`~gnpcheck.certify.lipschitz.model_lipschitz` can measure (e.g.
            :func:`~gnpcheck.wasserstein.build_critic`).
        steps: optimizer steps (``>= 1``).
        batch_size: samples of each set per step (``>= 1``).
        lr: Adam's learning rate (``> 0``).
        holdout: the fraction of each set held out, ``0 < holdout < 1``.
        seed: seeds the splits and the batch order.
        eval_every: steps between held-out evaluations of the history (``>= 1``).
        time_limit: minutes of training (held-out evaluations included) after which it
            stops early (``stopped`` says so); ``None`` for no limit.
        threads: torch CPU threads while estimating (restored after); ``None`` keeps the
            current setting.
        progress: show a progress bar.
        max_samples: read at most this many samples of each set (``None``: all; see
            Note [sample sets]; ``truncated`` in the result says whether any were left).

    Returns:
        A :class:`~gnpcheck.wasserstein.WassersteinEstimate`.

    Raises:
        InvalidTypeError: an argument of the wrong type; a batch that is not a tensor.
        InvalidArgumentError: an argument out of range; ``p`` and ``q`` of different sample
            shapes or dtypes, or of a dtype other than the critic's; too few samples for the
            split; a critic without parameters or whose output is not ``(N, 1)``.
        gnpcheck.certify.lipschitz.UncertifiableModelError: a critic whose Lipschitz bound
            gnpcheck cannot measure (raised before training).
        UnsupportedOperationError: a float32 critic on a device whose settings run float32
            products or convolutions in reduced precision, such as cuDNN's TF32 default on a
            GPU (raised before training; docs/training.rst, "IEEE float32 arithmetic").
    """
    started = time.perf_counter()
    steps = integer(steps, "steps", 1)
    batch_size = integer(batch_size, "batch_size", 1)
    lr = positive(lr, "lr")
    holdout = fraction(holdout, "holdout")
    seed = seed_value(seed)
    eval_every = integer(eval_every, "eval_every", 1)
    limit = math.inf if time_limit is None else 60 * positive(time_limit, "time_limit")
    threads = None if threads is None else integer(threads, "threads", 1)
    if not isinstance(progress, bool):
        raise InvalidTypeError(f"progress={progress!r}, but it must be a bool")
    max_samples = None if max_samples is None else integer(max_samples, "max_samples", 1)
    dtype = _critic_dtype(critic)
    p_set, q_set = read_samples(p, "p", max_samples), read_samples(q, "q", max_samples)
    shape = tuple(p_set.data.shape[1:])
    if tuple(q_set.data.shape[1:]) != shape:
        raise InvalidArgumentError(
            f"p has samples of shape {shape} and q of shape {tuple(q_set.data.shape[1:])}, but "
            "they must match"
        )
    for name, data in (("p", p_set.data), ("q", q_set.data)):
        if data.dtype != dtype:
            raise InvalidArgumentError(
                f"{name} has dtype {data.dtype}, but the critic's parameters are {dtype}; "
                "convert one of them with .to(dtype)"
            )
    generator = torch.Generator().manual_seed(seed)
    (p_train, p_held), (q_train, q_held) = split_pair(p_set.data, q_set.data, holdout, generator)
    model = copy.deepcopy(critic)
    device = next(model.parameters()).device
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    for module in model.modules():
        if isinstance(module, SVCMConv2d):
            module.register_projection_hook(optimizer)
    p_batches = BatchCycle(p_train, batch_size, generator)
    q_batches = BatchCycle(q_train, batch_size, generator)
    stopped: Literal["steps", "time limit"] = "steps"
    with limited_threads(threads):
        model_lipschitz(model, shape)
        model.train()
        history = [(0, heldout_gap(model, p_held, q_held, batch_size)[0])]
        taken, training = 0, time.perf_counter()
        with tqdm(total=steps, desc="critic", disable=not progress, leave=False) as bar:
            for step in range(1, steps + 1):
                if time.perf_counter() - training >= limit:
                    stopped = "time limit"
                    break
                batch_p, batch_q = p_batches.next(), q_batches.next()
                scores = _scores(model, torch.cat([batch_p, batch_q]).to(device))
                loss = scores[batch_p.shape[0] :].mean() - scores[: batch_p.shape[0]].mean()
                optimizer.zero_grad(set_to_none=True)
                torch.autograd.backward(loss)
                optimizer.step()
                taken = step
                bar.update(1)
                if step % eval_every == 0:
                    history.append((step, heldout_gap(model, p_held, q_held, batch_size)[0]))
                    bar.set_postfix(gap=f"{history[-1][1]:.4f}")
        gap, error = heldout_gap(model, p_held, q_held, batch_size)
        if history[-1][0] != taken:
            history.append((taken, gap))
        lipschitz = model_lipschitz(model, shape)
    model.eval()
    bound = lipschitz.certified_with
    return WassersteinEstimate(
        gap=gap,
        standard_error=error,
        lipschitz=lipschitz,
        lower_bound=gap / bound,
        lower_bound_error=error / bound,
        history=tuple(history),
        steps=taken,
        stopped=stopped,
        seconds=time.perf_counter() - started,
        critic=model,
        train_sizes=(p_train.shape[0], q_train.shape[0]),
        heldout_sizes=(p_held.shape[0], q_held.shape[0]),
        truncated=(p_set.truncated, q_set.truncated),
    )
