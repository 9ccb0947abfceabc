"""Checkpoints: written atomically, read with ``torch.load(..., weights_only=True)``.

A checkpoint is a dict of tensors, numbers, strings, lists and dicts (what PyTorch's
``weights_only`` loader accepts). Writing goes to a temporary file in the same directory,
flushed to disk, then renamed over the target: a crash leaves the previous checkpoint whole.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from gnpcheck.data.errors import DataFileError
from gnpcheck.errors import InvalidArgumentError

__all__ = ["load_checkpoint", "new_run_directory", "save_checkpoint"]


def save_checkpoint(state: dict[str, Any], path: str | Path) -> Path:
    """Atomically write ``state`` to ``path`` (temp file + fsync + rename); returns the path."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            torch.save(state, stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return target


def new_run_directory(out_dir: str | Path, checkpoint_name: str) -> Path:
    """``out_dir``, created if needed, for a new run: refused if it holds a run already.

    Raises:
        InvalidArgumentError: ``out_dir`` already holds ``checkpoint_name``.
    """
    directory = Path(out_dir)
    if (directory / checkpoint_name).exists():
        raise InvalidArgumentError(
            f"out_dir={str(directory)!r} already holds {checkpoint_name}; resume it or choose "
            "another directory"
        )
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def load_checkpoint(
    path: str | Path, expected_format: str | None = None, kind: str = ""
) -> dict[str, Any]:
    """Read a checkpoint with the safe (``weights_only=True``) loader; with
    ``expected_format``, require ``state["format"]`` to be it (``kind`` names such
    checkpoints in the error).

    Raises:
        DataFileError: the file is missing, not a checkpoint this loader accepts, or of
            another format.
    """
    source = Path(path)
    if not source.is_file():
        raise DataFileError(f"checkpoint {source} not found")
    try:
        state = torch.load(source, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for corrupt or unsafe files
        raise DataFileError(
            f"{source}: not a readable checkpoint ({type(error).__name__}: {error})"
        ) from None
    if not isinstance(state, dict):
        raise DataFileError(f"{source}: a checkpoint is a dict, found {type(state).__name__}")
    if expected_format is not None and state.get("format") != expected_format:
        raise DataFileError(
            f"{source}: format {state.get('format')!r}, but {kind} checkpoints are "
            f"{expected_format!r}"
        )
    return state
