"""Fixtures of the layer tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from ._helpers import Setter


@pytest.fixture
def precision() -> Iterator[Setter]:
    """``set(backend, value)`` for ``torch.backends.<backend>.matmul.fp32_precision``;
    afterwards the global precision the test started from is set again, through
    ``torch.set_float32_matmul_precision``, which leaves every level consistent (after a
    per-backend setting PyTorch's global getters raise until it is called)."""
    matmuls = {"cuda": torch.backends.cuda.matmul, "mkldnn": torch.backends.mkldnn.matmul}
    saved = torch.get_float32_matmul_precision()

    def set_precision(backend: str, value: str) -> None:
        matmuls[backend].fp32_precision = value

    yield set_precision
    torch.set_float32_matmul_precision(saved)
    assert torch.get_float32_matmul_precision() == saved
