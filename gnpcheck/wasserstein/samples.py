r"""Sample sets for estimation: read from tensors or batches, split, and drawn in batches.

Note [sample sets]: a sample set is a tensor ``(N, *shape)`` or an iterable of batches (a
``DataLoader``). Batches are concatenated in the order the iterable yields them, so the whole
set is held in memory; a batch that is a tuple or list (a ``DataLoader`` over a labelled
data set yields ``[images, labels]``) contributes its first element only. With
``max_samples`` set, the first ``max_samples`` samples are kept and the rest is not read
(iterables stop after the batch that reaches the count, plus one more to learn whether
anything was left); :class:`SampleSet` records whether that cut anything. An endless
iterable (a sampler that never stops) therefore needs ``max_samples``.

The set is then split at random, by a seeded permutation, into a held-out part of
``round(holdout * N)`` samples (halves rounded up) and a training part with the rest; no
sample is in both and none is left out.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import torch

from gnpcheck.errors import InvalidArgumentError, InvalidTypeError

__all__ = ["BatchCycle", "SampleSet", "Samples", "read_samples", "split_pair", "split_samples"]

#: A sample set: a tensor ``(N, *shape)`` or an iterable of batches (see Note [sample sets]).
Samples = torch.Tensor | Iterable[object]

#: The held-out part needs two samples for a variance, the training part one for a batch.
_MIN_HELDOUT, _MIN_TRAIN = 2, 1


@dataclass(frozen=True)
class SampleSet:
    """A sample set read into memory.

    Attributes:
        data: the samples, ``(N, *shape)``.
        truncated: whether ``max_samples`` left samples unread.
    """

    data: torch.Tensor
    truncated: bool


def _batch_tensor(batch: object, name: str, index: int) -> torch.Tensor:
    if isinstance(batch, tuple | list) and batch:
        batch = batch[0]
    if not isinstance(batch, torch.Tensor):
        raise InvalidTypeError(
            f"{name} batch {index} is a {type(batch).__name__}, but batches must be tensors "
            "(or tuples/lists whose first element is the tensor of samples)"
        )
    return batch


def _check(data: torch.Tensor, name: str) -> torch.Tensor:
    if data.ndim < 2:
        raise InvalidArgumentError(
            f"{name} has shape {tuple(data.shape)}, but samples must be (N, *shape) with at "
            "least one axis per sample (use x[:, None] for scalars)"
        )
    if not torch.is_floating_point(data):
        raise InvalidArgumentError(
            f"{name} has dtype {data.dtype}, but samples must be floating point (convert with "
            ".float())"
        )
    if not bool(torch.isfinite(data).all()):
        raise InvalidArgumentError(f"{name} has non-finite values, but samples must be finite")
    return data


def read_samples(samples: Samples, name: str, max_samples: int | None = None) -> SampleSet:
    """Read a sample set into one tensor (see Note [sample sets]).

    Raises:
        InvalidTypeError: neither a tensor nor an iterable of tensors.
        InvalidArgumentError: batches whose shapes (beyond the first axis) or dtypes differ;
            no samples; samples of fewer than 2 axes, not floating point, or not finite.
    """
    if isinstance(samples, torch.Tensor):
        data = samples.detach()
        truncated = max_samples is not None and data.shape[0] > max_samples
        return SampleSet(_check(data[:max_samples], name), truncated)
    if not isinstance(samples, Iterable):
        raise InvalidTypeError(
            f"{name} is a {type(samples).__name__}, but it must be a tensor (N, *shape) or an "
            "iterable of batches (e.g. a DataLoader)"
        )
    batches: list[torch.Tensor] = []
    count, truncated = 0, False
    for index, batch in enumerate(samples):
        tensor = _batch_tensor(batch, name, index).detach()
        if max_samples is not None and count >= max_samples:
            truncated = tensor.numel() > 0
            break
        if batches and (
            tensor.shape[1:] != batches[0].shape[1:] or tensor.dtype != batches[0].dtype
        ):
            raise InvalidArgumentError(
                f"{name} batch {index} has shape {tuple(tensor.shape)} and dtype {tensor.dtype}, "
                f"but batch 0 has {tuple(batches[0].shape)} and {batches[0].dtype}"
            )
        if max_samples is not None and count + tensor.shape[0] > max_samples:
            tensor, truncated = tensor[: max_samples - count], True
        batches.append(tensor)
        count += tensor.shape[0]
    if not batches:
        raise InvalidArgumentError(f"{name} yielded no batches, but samples are needed")
    return SampleSet(_check(torch.cat(batches), name), truncated)


def split_samples(
    data: torch.Tensor, holdout: float, generator: torch.Generator, name: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(train, heldout)``: a random split by ``torch.randperm(N, generator=generator)``.

    The first ``round(holdout * N)`` permuted samples (halves rounded up) are held out.

    Raises:
        InvalidArgumentError: fewer than 2 held-out or 1 training sample.
    """
    count = data.shape[0]
    heldout = math.floor(holdout * count + 0.5)
    if heldout < _MIN_HELDOUT or count - heldout < _MIN_TRAIN:
        raise InvalidArgumentError(
            f"{name} has {count} samples, but holdout={holdout} holds out {heldout} and trains "
            f"on {count - heldout}; at least {_MIN_HELDOUT} held-out samples (for a standard "
            f"error) and {_MIN_TRAIN} training sample are needed"
        )
    order = torch.randperm(count, generator=generator)
    return data[order[heldout:]], data[order[:heldout]]


def split_pair(
    p: torch.Tensor, q: torch.Tensor, holdout: float, generator: torch.Generator
) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """``((p_train, p_heldout), (q_train, q_heldout))``: :func:`split_samples` of ``p``, then
    of ``q``, with the same generator. ``estimate(..., seed=s)`` splits with
    ``split_pair(p, q, holdout, torch.Generator().manual_seed(s))``, so the held-out sets of
    a run can be rebuilt."""
    return split_samples(p, holdout, generator, "p"), split_samples(q, holdout, generator, "q")


class BatchCycle:
    """Batches of ``min(batch_size, N)`` samples that visit a set in seeded random epochs.

    Each epoch is a permutation drawn from ``generator``; a batch that runs past the end of
    an epoch is completed from the next, so every sample is visited once per epoch.
    """

    def __init__(self, data: torch.Tensor, batch_size: int, generator: torch.Generator) -> None:
        self.data = data
        self.batch_size = min(batch_size, data.shape[0])
        self.generator = generator
        self._order = torch.randperm(data.shape[0], generator=generator)
        self._position = 0

    def next(self) -> torch.Tensor:
        """The next batch, ``(min(batch_size, N), *shape)``."""
        parts: list[torch.Tensor] = []
        needed = self.batch_size
        while needed:
            if self._position == self._order.shape[0]:
                self._order = torch.randperm(self.data.shape[0], generator=self.generator)
                self._position = 0
            take = min(needed, self._order.shape[0] - self._position)
            parts.append(self._order[self._position : self._position + take])
            self._position += take
            needed -= take
        return self.data[torch.cat(parts)]
