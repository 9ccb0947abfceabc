"""Devices named by users: parsed and checked once, with errors that say what is allowed."""

from __future__ import annotations

import torch

from gnpcheck.errors import InvalidArgumentError

__all__ = ["usable_device"]


def usable_device(device: str | torch.device, name: str = "device") -> torch.device:
    """``device`` as a ``torch.device`` that this machine has (``name``: what the error calls
    the argument).

    Raises:
        InvalidArgumentError: not a torch device name; a CUDA device without CUDA.
    """
    try:
        where = torch.device(device)
    except RuntimeError as error:
        raise InvalidArgumentError(
            f"{name}={str(device)!r}, but it must name a torch device ({error})"
        ) from None
    if where.type == "cuda" and not torch.cuda.is_available():
        raise InvalidArgumentError(
            f"{name}={str(where)!r}, but torch.cuda.is_available() is False on this machine"
        )
    return where
