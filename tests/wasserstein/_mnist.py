"""A small MNIST look-alike in the four gzipped IDX files, for the experiment's tests."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

__all__ = ["write_tiny_mnist"]

_STEMS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def _idx(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(size).to_bytes(4, "big") for size in array.shape
    )
    return header + array.astype(np.uint8).tobytes()


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
        for stem, array in zip(_STEMS[split], (images, labels), strict=True):
            (directory / f"{stem}.gz").write_bytes(gzip.compress(_idx(array)))
    return directory
