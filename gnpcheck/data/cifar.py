"""CIFAR-10 from its python-pickle batches (``data_batch_1..5``, ``test_batch``).

Each batch is a pickled dict with ``b"data"``, a ``(N, 3072)`` uint8 array (1024 red, then
green, then blue values, rows of 32 pixels), and ``b"labels"``, N ints in 0..9. The files are
pickles: load only files you trust.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from gnpcheck.data.errors import DataFileError
from gnpcheck.errors import InvalidArgumentError

__all__ = ["CIFAR10_BATCHES", "load_cifar10"]

CIFAR10_BATCHES = {
    "train": tuple(f"data_batch_{i}" for i in range(1, 6)),
    "test": ("test_batch",),
}


def _read_batch(path: Path) -> tuple[NDArray[np.uint8], NDArray[np.int64]]:
    if not path.is_file():
        raise DataFileError(
            f"CIFAR-10 batch {path.name} not found in {path.parent} (nothing is downloaded)"
        )
    try:
        with path.open("rb") as handle:
            batch: Any = pickle.load(handle, encoding="bytes")
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as error:
        raise DataFileError(f"{path}: not a CIFAR-10 pickle batch ({error})") from None
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        raise DataFileError(f"{path}: a CIFAR-10 batch is a dict with b'data' and b'labels'")
    data = np.asarray(batch[b"data"])
    labels = np.asarray(batch[b"labels"], dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise DataFileError(
            f"{path}: data is {data.dtype} {data.shape}, but must be uint8 (N, 3072)"
        )
    if labels.shape != (data.shape[0],) or (labels.size and (labels.min() < 0 or labels.max() > 9)):
        raise DataFileError(
            f"{path}: {labels.shape} labels for {data.shape[0]} images, or labels outside 0..9"
        )
    return data.reshape(-1, 3, 32, 32), labels


def load_cifar10(
    split: Literal["train", "test"], data_dir: str | Path
) -> tuple[NDArray[np.uint8], NDArray[np.int64]]:
    """Images ``(N, 3, 32, 32)`` uint8 and labels ``(N,)`` int64 of one CIFAR-10 split.

    Raises:
        InvalidArgumentError: ``split`` is not ``"train"`` or ``"test"``.
        DataFileError: a batch is missing or not in the CIFAR-10 format.
    """
    if split not in CIFAR10_BATCHES:
        raise InvalidArgumentError(f"split={split!r}, but it must be 'train' or 'test'")
    batches = [_read_batch(Path(data_dir) / name) for name in CIFAR10_BATCHES[split]]
    return (
        np.concatenate([images for images, _ in batches]),
        np.concatenate([labels for _, labels in batches]),
    )
