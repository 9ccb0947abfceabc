"""MNIST as in-memory tensors for training: images ``x / 255`` in ``[0, 1]``, float32.

The one normalisation is :func:`gnpcheck.data.to_unit_interval`: certified radii are L2
distances between ``[0, 1]``-scaled images (docs/training.rst, Note [input scaling]).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch

from gnpcheck.data import load_mnist, to_unit_interval

__all__ = ["MNIST_SHAPE", "mnist_tensors"]

#: The shape of one MNIST input: (channels, height, width).
MNIST_SHAPE = (1, 28, 28)


def mnist_tensors(
    split: Literal["train", "test"],
    data_dir: str | Path | None = None,
    examples: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Images ``(N, 1, 28, 28)`` float32 in ``[0, 1]`` and labels ``(N,)`` int64.

    ``examples`` keeps the first ``examples`` of the split (all when ``None``).

    Raises:
        gnpcheck.data.DataFileError: a file is missing or corrupt (see
            :func:`gnpcheck.data.load_mnist`).
    """
    images, labels = load_mnist(split, data_dir)
    if examples is not None:
        images, labels = images[:examples], labels[:examples]
    return torch.from_numpy(to_unit_interval(images)), torch.from_numpy(labels)
