"""Atomic checkpoints read back with the safe loader."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from gnpcheck.data import DataFileError
from gnpcheck.train import load_checkpoint, save_checkpoint


def test_round_trip(tmp_path: Path) -> None:
    state = {
        "epoch": 3,
        "model": {"w": torch.arange(4.0)},
        "history": [{"clean": 0.5}],
        "name": "small",
    }
    path = save_checkpoint(state, tmp_path / "sub" / "last.pt")
    loaded = load_checkpoint(path)
    assert loaded["epoch"] == 3
    assert loaded["history"] == [{"clean": 0.5}]
    torch.testing.assert_close(loaded["model"]["w"], torch.arange(4.0))
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["last.pt"], (
        "no temporary file left behind"
    )


def test_failed_write_keeps_the_previous_checkpoint(tmp_path: Path) -> None:
    path = save_checkpoint({"epoch": 1}, tmp_path / "last.pt")

    class Unpicklable:
        def __reduce__(self) -> tuple[object, ...]:
            raise RuntimeError("cannot serialise")

    with pytest.raises(RuntimeError, match="cannot serialise"):
        save_checkpoint({"epoch": 2, "bad": Unpicklable()}, path)
    assert load_checkpoint(path)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_unsafe_or_missing_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(DataFileError, match="not found"):
        load_checkpoint(tmp_path / "none.pt")
    torch.save({"obj": Path("x")}, tmp_path / "unsafe.pt")
    with pytest.raises(DataFileError, match="not a readable checkpoint"):
        load_checkpoint(tmp_path / "unsafe.pt")
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(DataFileError, match="a checkpoint is a dict"):
        load_checkpoint(tmp_path / "list.pt")
