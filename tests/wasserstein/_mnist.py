"""A small MNIST look-alike in the four gzipped IDX files, for the experiment's tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gnpcheck.data import MNIST_FILES, write_idx

__all__ = ["write_tiny_mnist"]


def write_tiny_mnist(directory: Path, train: int = 64, test: int = 96) -> Path:
    """Write ``train`` and ``test`` images (a bright 8x8 square at a place given by the label,
    on dark noise) with their labels into ``directory``; returns it."""
    rng = np.random.default_rng(0)
    for split, count in (("train", train), ("test", test)):
        labels = rng.integers(0, 10, size=count)
        images = rng.integers(0, 40, size=(count, 28, 28))
        for image, label in zip(images, labels, strict=True):
            row, col = 2 + 8 * (label // 4), 2 + 6 * (label % 4)
            image[row : row + 8, col : col + 8] = rng.integers(150, 256)
        for stem, array in zip(MNIST_FILES[split], (images, labels), strict=True):
            write_idx(directory / f"{stem}.gz", array)
    return directory
