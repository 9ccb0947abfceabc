"""Fixtures of the baseline tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from threadpoolctl import threadpool_limits


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """These tests run thousands of convolutions on single small images and SVDs of small
    dense operators, where threads cost more than they save (100x slower on a loaded 2-core
    machine); torch's and BLAS's thread counts are restored after each test."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(limits=1):
        yield
    torch.set_num_threads(threads)
