"""Machine constants by dtype: NumPy's and PyTorch's floating dtypes and their names agree,
and a dtype without NumPy constants is refused by name."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gnpcheck.errors import InvalidArgumentError
from gnpcheck.tolerances import machine_epsilon, smallest_subnormal


@pytest.mark.parametrize(
    ("torch_dtype", "numpy_dtype"),
    [(torch.float16, np.float16), (torch.float32, np.float32), (torch.float64, np.float64)],
)
def test_constants_agree_across_libraries(torch_dtype: torch.dtype, numpy_dtype: type) -> None:
    eps = torch.finfo(torch_dtype).eps
    for dtype in (torch_dtype, numpy_dtype, np.dtype(numpy_dtype).name):
        assert machine_epsilon(dtype) == eps
        # the smallest subnormal is tiny * eps for a binary format
        assert smallest_subnormal(dtype) == torch.finfo(torch_dtype).tiny * eps


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.int32, "int64", "cheese"])
def test_other_dtypes_are_refused_by_name(dtype: object) -> None:
    with pytest.raises(InvalidArgumentError, match=r"must be float16, float32 or float64"):
        machine_epsilon(dtype)
