"""Fixtures of the training tests: a small, learnable MNIST look-alike in IDX files."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from gnpcheck.data import MNIST_FILES, write_idx
from gnpcheck.train.config import TrainConfig


def _digits(count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Class k is a 6x6 square at one of ten places, of random brightness, on noise: L2
    distances between classes from about 1 to 4 in [0, 1] pixels, so radii near 1.58
    separate certified points from broken ones."""
    labels = rng.integers(0, 10, size=count)
    images = rng.integers(0, 60, size=(count, 28, 28))
    for image, label in zip(images, labels, strict=True):
        row, col = 3 + 9 * (label // 4), 3 + 6 * (label % 4)
        image[row : row + 6, col : col + 6] = rng.integers(70, 220)
    return images.astype(np.uint8), labels.astype(np.uint8)


@pytest.fixture(autouse=True, scope="session")
def _one_thread() -> Iterator[None]:
    """One torch thread: on a shared 2-core machine, two threads wait on each other."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def tiny_mnist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory of the four gzipped IDX files: 256 training and 64 test images."""
    directory = tmp_path_factory.mktemp("mnist")
    rng = np.random.default_rng(0)
    for split, count in (("train", 256), ("test", 64)):
        for stem, array in zip(MNIST_FILES[split], _digits(count, rng), strict=True):
            write_idx(directory / f"{stem}.gz", array)
    return directory


@pytest.fixture
def tiny_config(tiny_mnist: Path) -> TrainConfig:
    """Small BCOP on the tiny set: 8 steps of 32 per epoch, one thread, no progress bar."""
    return TrainConfig(
        epochs=2,
        batch_size=32,
        lr=0.01,
        threads=1,
        data_dir=str(tiny_mnist),
        progress=False,
    )
