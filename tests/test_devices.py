"""usable_device: a torch device this machine has, or an error naming the argument."""

from __future__ import annotations

import pytest
import torch

from gnpcheck.devices import usable_device
from gnpcheck.errors import InvalidArgumentError


def test_a_device_name_becomes_a_torch_device() -> None:
    assert usable_device("cpu") == torch.device("cpu")
    assert usable_device(torch.device("cpu")) == torch.device("cpu")


def test_a_name_that_is_no_device_is_refused_with_the_arguments_name() -> None:
    with pytest.raises(InvalidArgumentError, match=r"--device='gpu0', but it must name a torch"):
        usable_device("gpu0", "--device")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda_is_refused() -> None:
    with pytest.raises(InvalidArgumentError, match=r"device='cuda', but torch\.cuda\.is_available"):
        usable_device("cuda")
