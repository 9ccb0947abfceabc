"""MNIST IDX and CIFAR-10 pickle loaders on generated files, and on the real MNIST copy."""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import numpy as np
import pytest

from gnpcheck.data import (
    DataFileError,
    default_mnist_dir,
    load_cifar10,
    load_mnist,
    radius_in_pixel_space,
    read_idx,
    to_unit_interval,
    write_idx,
)
from gnpcheck.errors import InvalidArgumentError


def _idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(s).to_bytes(4, "big") for s in array.shape
    )
    return header + array.astype(np.uint8).tobytes()


def _write_mnist(
    directory: Path, count: int, compress: bool, split: str = "test"
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(count, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=count, dtype=np.uint8)
    stems = {"test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
             "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte")}[split]  # fmt: skip
    for stem, array in zip(stems, (images, labels), strict=True):
        data = _idx_bytes(array)
        if compress:
            (directory / (stem + ".gz")).write_bytes(gzip.compress(data))
        else:
            (directory / stem).write_bytes(data)
    return images, labels


@pytest.mark.parametrize("name", ["a.gz", "a"], ids=["gzip", "plain"])
def test_write_idx_writes_the_format_and_read_idx_reads_it_back(tmp_path: Path, name: str) -> None:
    array = np.random.default_rng(1).integers(0, 256, size=(3, 4, 5))
    path = write_idx(tmp_path / name, array)
    raw = gzip.decompress(path.read_bytes()) if name.endswith(".gz") else path.read_bytes()
    assert raw == _idx_bytes(array)
    assert np.array_equal(read_idx(path), array)
    with pytest.raises(InvalidArgumentError, match=r"values in \[0, 256\]"):
        write_idx(tmp_path / "b", np.array([0, 256]))


@pytest.mark.parametrize("compress", [True, False], ids=["gzip", "plain"])
def test_mnist_round_trip(tmp_path: Path, compress: bool) -> None:
    images, labels = _write_mnist(tmp_path, 7, compress)
    loaded_images, loaded_labels = load_mnist("test", tmp_path)
    assert loaded_images.shape == (7, 1, 28, 28)
    assert loaded_images.dtype == np.uint8
    np.testing.assert_array_equal(loaded_images[:, 0], images)
    np.testing.assert_array_equal(loaded_labels, labels.astype(np.int64))


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(
        DataFileError, match=r"t10k-images-idx3-ubyte\[\.gz\] not found in .*GNPCHECK_DATA_DIR"
    ):
        load_mnist("test", tmp_path)


@pytest.mark.parametrize(
    ("corrupt", "match"),
    [
        (lambda raw: b"\x01" + raw[1:], "bad magic number"),
        (lambda raw: raw[:2] + b"\x0d" + raw[3:], "data type 0x0d"),
        (lambda raw: raw[:-5], "bytes, but its header"),
        (lambda raw: raw[:6], "truncated IDX header"),
    ],
    ids=["magic", "dtype", "truncated-data", "truncated-header"],
)
def test_corrupt_idx_is_rejected(tmp_path: Path, corrupt: object, match: str) -> None:
    path = tmp_path / "file"
    path.write_bytes(corrupt(_idx_bytes(np.zeros((2, 3, 3)))))  # type: ignore[operator]
    with pytest.raises(DataFileError, match=match):
        read_idx(path)


def test_label_count_mismatch_names_both_files(tmp_path: Path) -> None:
    _write_mnist(tmp_path, 4, compress=False)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(_idx_bytes(np.zeros(3)))
    with pytest.raises(DataFileError, match=r"\(3,\) labels for 4 images"):
        load_mnist("test", tmp_path)


def test_bad_gzip_is_a_data_error(tmp_path: Path) -> None:
    _write_mnist(tmp_path, 2, compress=True)
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(b"not gzip")
    with pytest.raises(DataFileError, match="cannot be read"):
        load_mnist("test", tmp_path)


def test_bad_split_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError, match="split='val'"):
        load_mnist("val", tmp_path)  # type: ignore[arg-type]


def test_data_dir_environment_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GNPCHECK_DATA_DIR", str(tmp_path))
    assert default_mnist_dir() == tmp_path
    _write_mnist(tmp_path, 3, compress=True)
    assert load_mnist("test")[0].shape[0] == 3


@pytest.mark.skipif(not (default_mnist_dir() / "t10k-labels-idx1-ubyte.gz").is_file(),
                    reason="the shared MNIST copy is not beside this checkout")  # fmt: skip
def test_real_mnist_test_split() -> None:
    images, labels = load_mnist("test")
    assert images.shape == (10000, 1, 28, 28)
    assert np.bincount(labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def _write_cifar(directory: Path, per_batch: int) -> list[tuple[np.ndarray, list[int]]]:
    rng = np.random.default_rng(1)
    written = []
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, size=per_batch).tolist()
        with (directory / name).open("wb") as handle:
            pickle.dump({b"data": data, b"labels": labels, b"batch_label": name.encode()}, handle)
        written.append((data, labels))
    return written


def test_cifar10_round_trip(tmp_path: Path) -> None:
    written = _write_cifar(tmp_path, 4)
    images, labels = load_cifar10("train", tmp_path)
    assert images.shape == (20, 3, 32, 32)
    np.testing.assert_array_equal(images[4].reshape(-1), written[1][0][0])
    assert labels.tolist() == [label for _, batch in written[:5] for label in batch]
    red_first_row = written[0][0][0][:32]
    np.testing.assert_array_equal(images[0, 0, 0], red_first_row)
    assert load_cifar10("test", tmp_path)[0].shape == (4, 3, 32, 32)


def test_cifar10_bad_batches(tmp_path: Path) -> None:
    with pytest.raises(DataFileError, match="test_batch not found"):
        load_cifar10("test", tmp_path)
    (tmp_path / "test_batch").write_bytes(b"garbage")
    with pytest.raises(DataFileError, match="not a CIFAR-10 pickle batch"):
        load_cifar10("test", tmp_path)
    with (tmp_path / "test_batch").open("wb") as handle:
        pickle.dump({b"data": np.zeros((2, 10), dtype=np.uint8), b"labels": [0, 1]}, handle)
    with pytest.raises(DataFileError, match=r"uint8 \(N, 3072\)"):
        load_cifar10("test", tmp_path)


def test_normalisation_and_radius_conversion() -> None:
    pixels = np.array([0, 51, 255], dtype=np.uint8)
    np.testing.assert_allclose(to_unit_interval(pixels), [0.0, 0.2, 1.0])
    assert radius_in_pixel_space(2.0, 0.3081) == pytest.approx(0.6162)
    assert radius_in_pixel_space(1.0, [0.2, 0.25, 0.3]) == pytest.approx(0.2)
    with pytest.raises(InvalidArgumentError, match="std"):
        radius_in_pixel_space(1.0, 0.0)
    with pytest.raises(InvalidArgumentError, match="uint8"):
        to_unit_interval(np.zeros(2))  # type: ignore[arg-type]
