"""How many threads PyTorch and the BLAS libraries use, for the duration of a block."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from threadpoolctl import threadpool_limits

__all__ = ["limited_threads"]


@contextmanager
def limited_threads(count: int | None) -> Iterator[None]:
    """Run the block with ``count`` threads in PyTorch (``torch.set_num_threads``) and in the
    BLAS libraries NumPy and SciPy call, restoring both afterwards; ``None`` changes nothing."""
    if count is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        with threadpool_limits(limits=count):
            yield
    finally:
        torch.set_num_threads(previous)
