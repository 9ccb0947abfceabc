"""Tests of gnpcheck itself use the Hypothesis profile named by GNPCHECK_HYPOTHESIS_PROFILE,
and IEEE float32 convolutions on CUDA."""

from collections.abc import Iterator

import pytest
import torch

from gnpcheck.hypothesis_profiles import load_profile

load_profile()


@pytest.fixture(autouse=True, scope="session")
def ieee_convolutions() -> Iterator[None]:
    """cuDNN runs float32 convolutions in TF32 by default, which rounds outputs to about 1e-3
    (docs/layers.rst, Note [float32 products]): the tests compare the layers' own arithmetic
    with the CPU's and with float64 oracles, so they ask for IEEE float32 (the setting has no
    effect without a GPU) and restore it at the end."""
    cudnn = torch.backends.cudnn
    saved = cudnn.allow_tf32  # the legacy flag keeps both of PyTorch's APIs readable
    cudnn.allow_tf32 = False
    yield
    cudnn.allow_tf32 = saved
