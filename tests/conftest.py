"""Tests of gnpcheck itself use the Hypothesis profile named by GNPCHECK_HYPOTHESIS_PROFILE,
and IEEE float32 convolutions on CUDA."""

from collections.abc import Callable, Iterator

import pytest
import torch

from gnpcheck.hypothesis_profiles import load_profile

load_profile()


@pytest.fixture(autouse=True, scope="session")
def ieee_convolutions() -> Iterator[None]:
    """cuDNN runs float32 convolutions in TF32 by default, which rounds outputs to about 5e-4
    (docs/layers.rst, Note [float32 products]): the tests compare the layers' own arithmetic
    with the CPU's and with float64 oracles, so they ask for IEEE float32 (the setting has no
    effect without a GPU) and restore it at the end."""
    cudnn = torch.backends.cudnn
    saved = cudnn.allow_tf32  # the legacy flag keeps both of PyTorch's APIs readable
    cudnn.allow_tf32 = False
    yield
    cudnn.allow_tf32 = saved


#: The ``torch.backends`` groups whose ``fp32_precision`` the ``float32_settings`` fixture sets.
FLOAT32_SETTINGS = ("cuda.matmul", "cudnn.conv", "mkldnn.matmul", "mkldnn.conv")


def _setting(name: str) -> object:
    backend, operation = name.split(".")
    return getattr(getattr(torch.backends, backend), operation)


@pytest.fixture
def float32_settings() -> Iterator[Callable[[str, str], None]]:
    """``set(name, value)`` for ``torch.backends.<name>.fp32_precision``, ``name`` one of
    :data:`FLOAT32_SETTINGS`. Afterwards the global matrix-product precision the test started
    from is set again through ``torch.set_float32_matmul_precision`` (after a per-backend
    setting, or a test's own call of it, PyTorch's global getter would read otherwise or
    raise), then each group's value from before the test: the same state as before."""
    saved_global = torch.get_float32_matmul_precision()
    saved = {name: _setting(name).fp32_precision for name in FLOAT32_SETTINGS}  # type: ignore[attr-defined]

    def set_precision(name: str, value: str) -> None:
        _setting(name).fp32_precision = value  # type: ignore[attr-defined]

    yield set_precision
    torch.set_float32_matmul_precision(saved_global)
    for name, value in saved.items():
        set_precision(name, value)
    assert torch.get_float32_matmul_precision() == saved_global
