"""MNIST from its four IDX files (gzipped or plain), in any directory.

The IDX format (LeCun et al.): a big-endian header of magic number ``0x0000 08 D`` (type
``0x08`` = unsigned byte, ``D`` dimensions), ``D`` big-endian 32-bit sizes, then the data.
Images: magic 2051, ``(N, 28, 28)``; labels: magic 2049, ``(N,)`` with values 0..9.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from gnpcheck.data.errors import DataFileError
from gnpcheck.errors import InvalidArgumentError

__all__ = ["MNIST_FILES", "default_mnist_dir", "load_mnist", "read_idx", "write_idx"]

#: The standard file stems of each split: (images, labels).
MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def default_mnist_dir() -> Path:
    """``$GNPCHECK_DATA_DIR`` if set, else ``../shared/data/mnist`` beside the repository.

    The repository is the checkout holding this package (editable installs) or, failing
    that, the current directory.
    """
    override = os.environ.get("GNPCHECK_DATA_DIR")
    if override:
        return Path(override)
    repository = Path(__file__).resolve().parents[2]
    for root in (repository, Path.cwd()):
        candidate = root.parent / "shared" / "data" / "mnist"
        if candidate.is_dir():
            return candidate
    return repository.parent / "shared" / "data" / "mnist"


def _find(directory: Path, stem: str) -> Path:
    for name in (stem + ".gz", stem):
        if (directory / name).is_file():
            return directory / name
    raise DataFileError(
        f"MNIST file {stem}[.gz] not found in {directory}; pass --data-dir or set GNPCHECK_DATA_DIR "
        "to a directory holding the four standard IDX files (nothing is downloaded)"
    )


def write_idx(path: str | Path, array: NDArray[np.integer]) -> Path:
    """Write ``array`` (values 0..255) as an unsigned-byte IDX file, gzipped when the name
    ends in ``.gz``: the inverse of :func:`read_idx` (for fixtures and converted data sets).

    Raises:
        InvalidArgumentError: values outside 0..255, or more than 255 dimensions.
    """
    path = Path(path)
    values = np.asarray(array)
    if (values.size and (values.min() < 0 or values.max() > 255)) or values.ndim > 255:
        raise InvalidArgumentError(
            f"array has shape {values.shape} and values in [{values.min()}, {values.max()}], "
            "but an unsigned-byte IDX file holds values 0..255 in at most 255 dimensions"
        )
    header = bytes([0, 0, 0x08, values.ndim]) + b"".join(
        int(size).to_bytes(4, "big") for size in values.shape
    )
    raw = header + values.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(raw) if path.suffix == ".gz" else raw)
    return path


def read_idx(path: str | Path) -> NDArray[np.uint8]:
    """Read one unsigned-byte IDX file (gzipped when its name ends in ``.gz``)."""
    path = Path(path)
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as error:
        raise DataFileError(f"{path}: cannot be read ({error})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise DataFileError(f"{path}: not an IDX file (bad magic number)")
    if raw[2] != 0x08:
        raise DataFileError(
            f"{path}: IDX data type 0x{raw[2]:02x}, but only unsigned bytes (0x08) are supported"
        )
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataFileError(f"{path}: truncated IDX header")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(shape))
    if len(raw) != expected:
        raise DataFileError(f"{path}: {len(raw)} bytes, but its header {shape} needs {expected}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape).copy()


def load_mnist(
    split: Literal["train", "test"], data_dir: str | Path | None = None
) -> tuple[NDArray[np.uint8], NDArray[np.int64]]:
    """Images ``(N, 1, 28, 28)`` uint8 and labels ``(N,)`` int64 of one MNIST split.

    Raises:
        InvalidArgumentError: ``split`` is not ``"train"`` or ``"test"``.
        DataFileError: a file is missing, corrupt, or images and labels disagree.
    """
    if split not in MNIST_FILES:
        raise InvalidArgumentError(f"split={split!r}, but it must be 'train' or 'test'")
    directory = Path(data_dir) if data_dir is not None else default_mnist_dir()
    image_stem, label_stem = MNIST_FILES[split]
    image_path, label_path = _find(directory, image_stem), _find(directory, label_stem)
    images, labels = read_idx(image_path), read_idx(label_path)
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise DataFileError(f"{image_path}: shape {images.shape}, but MNIST images are (N, 28, 28)")
    if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        raise DataFileError(
            f"{label_path}: {labels.shape} labels for {images.shape[0]} images in {image_path}"
        )
    if labels.size and labels.max() > 9:
        raise DataFileError(f"{label_path}: label {int(labels.max())}, but MNIST labels are 0..9")
    return images[:, np.newaxis], labels.astype(np.int64)
