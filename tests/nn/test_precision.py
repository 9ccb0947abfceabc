"""Layers refuse to build float32 kernels from reduced-precision products (docs/layers.rst,
Note [float32 products]).

The settings are PyTorch's global ``fp32_precision`` values; each test sets them through the
``float32_settings`` fixture (tests/conftest.py), which restores them. On this CPU oneDNN may
not honour TF32 or bfloat16, but the layer cannot know what the hardware does with a setting
that asks for less than IEEE float32, so it refuses either way.
"""

from __future__ import annotations

import pytest
import torch

from gnpcheck.errors import UnsupportedOperationError
from gnpcheck.nn import BCOPConv1d, BCOPConv2d, BjorckLinear
from gnpcheck.nn.functions import DYNAMO_TRACES_FUNCTIONS
from gnpcheck.nn.precision import (
    float32_products_precision,
    parameter_dtypes,
    require_certifiable_arithmetic,
    require_ieee_float32_arithmetic,
    require_ieee_float32_products,
    use_ieee_float32_arithmetic,
)

from ._helpers import Settings, layer_input, make_bcop

SIZE = 6


def test_default_settings_are_ieee() -> None:
    """What a test run starts from: no reduced precision asked on either device type."""
    assert float32_products_precision("cpu") in ("none", "ieee")
    assert float32_products_precision("cuda") in ("none", "ieee")
    assert float32_products_precision("meta") == "none"  # no such setting


@pytest.mark.parametrize("value", ["tf32", "bf16"])
@pytest.mark.parametrize("cls", [BCOPConv1d, BCOPConv2d])
def test_bcop_refuses_a_float32_kernel_from_reduced_products(
    float32_settings: Settings, value: str, cls: type[BCOPConv2d]
) -> None:
    layer = make_bcop(cls, 4, 4, 3, dtype=torch.float32)
    x = layer_input(layer, SIZE)
    float32_settings("mkldnn.matmul", value)
    for build in (lambda: layer(x), lambda: layer.weight, layer.export):
        with pytest.raises(UnsupportedOperationError) as error:
            build()
        message = str(error.value)
        assert f"torch.backends.mkldnn.matmul.fp32_precision={value!r}" in message
        assert "build_dtype=torch.float64" in message
        assert "set_float32_matmul_precision('highest')" in message


def test_set_float32_matmul_precision_high_is_refused(float32_settings: Settings) -> None:
    """The usual way the setting gets changed (it also sets CUDA's to TF32)."""
    layer = make_bcop(BCOPConv2d, 4, 4, 3, dtype=torch.float32)
    torch.set_float32_matmul_precision("high")  # the fixture sets the start's back
    with pytest.raises(UnsupportedOperationError, match="fp32_precision='tf32'"):
        layer(layer_input(layer, SIZE))


@pytest.mark.parametrize("orthogonalizer", ["qr", "bjorck"])
def test_the_ways_out_build_an_orthogonal_kernel(
    float32_settings: Settings, orthogonalizer: str
) -> None:
    """A float64 build, float64 parameters, or the setting back at IEEE."""
    float32 = make_bcop(BCOPConv2d, 4, 4, 3, dtype=torch.float32, orthogonalizer=orthogonalizer)
    float64_build = make_bcop(
        BCOPConv2d,
        4,
        4,
        3,
        dtype=torch.float32,
        orthogonalizer=orthogonalizer,
        build_dtype=torch.float64,
    )
    float64 = make_bcop(BCOPConv2d, 4, 4, 3, orthogonalizer=orthogonalizer)
    float32_settings("mkldnn.matmul", "tf32")
    assert float64_build.orthogonality_defect(SIZE) <= 1e-6
    assert float64.orthogonality_defect(SIZE) <= 1e-12
    float32_settings("mkldnn.matmul", "ieee")
    assert float32.orthogonality_defect(SIZE) <= 1e-6


def test_a_kernel_cached_under_ieee_is_served_after_the_setting_changes(
    float32_settings: Settings,
) -> None:
    """The products that built it were IEEE; a kernel built anew is refused."""
    layer = make_bcop(BCOPConv2d, 4, 4, 3, dtype=torch.float32).eval()
    x = layer_input(layer, SIZE)
    with torch.no_grad():
        expected = layer(x)
        float32_settings("mkldnn.matmul", "tf32")
        assert torch.equal(layer(x), expected)
        layer.h_tilde.add_(1e-3)  # the cached kernel is stale: a new one must be built
        with pytest.raises(UnsupportedOperationError):
            layer(x)


def test_bjorck_linear_refuses_and_polar_does_not(float32_settings: Settings) -> None:
    x = torch.randn(3, 5)
    bjorck = BjorckLinear(5, 4)
    polar = BjorckLinear(5, 4, orthogonalizer="polar")
    float32_settings("mkldnn.matmul", "tf32")
    with pytest.raises(UnsupportedOperationError, match="orthogonalizer='polar'"):
        bjorck(x)
    weight = polar.weight.double()
    torch.testing.assert_close(weight @ weight.T, torch.eye(4, dtype=torch.float64))
    assert BjorckLinear(5, 4, dtype=torch.float64)(x.double()).shape == (3, 4)


def test_cuda_setting_is_read_for_cuda_devices(float32_settings: Settings) -> None:
    """Decided from the settings alone, so checkable without a GPU."""
    float32_settings("cuda.matmul", "tf32")
    assert float32_products_precision("cpu") in ("none", "ieee")
    require_ieee_float32_products(torch.float32, torch.device("cpu"), "a kernel", "go")
    with pytest.raises(UnsupportedOperationError, match=r"torch\.backends\.cuda\.matmul"):
        require_ieee_float32_products(torch.float32, torch.device("cuda"), "a kernel", "go")
    require_ieee_float32_products(torch.float64, torch.device("cuda"), "a kernel", "go")


def test_compiled_layer_traces_the_check_in_one_graph() -> None:
    """The setting is a constant to torch.compile: no graph break, even with fullgraph
    (where this PyTorch traces the Functions: docs/layers.rst, "Compilation and devices")."""
    layer = make_bcop(BCOPConv2d, 4, 4, 3, dtype=torch.float32)
    x = layer_input(layer, SIZE)
    compiled = torch.compile(layer, backend="eager", fullgraph=DYNAMO_TRACES_FUNCTIONS)
    torch.testing.assert_close(compiled(x), layer(x))


def test_certificates_need_ieee_products_and_convolutions(float32_settings: Settings) -> None:
    """Each reduced-precision setting of the device's backends is named; float64 and other
    devices' settings are not checked."""
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    require_ieee_float32_arithmetic(torch.float32, cuda, "a certificate")
    float32_settings("cudnn.conv", "tf32")  # cuDNN's own default, which the tests turn off
    with pytest.raises(UnsupportedOperationError) as error:
        require_ieee_float32_arithmetic(torch.float32, cuda, "a certificate")
    message = str(error.value)
    assert "torch.backends.cudnn.conv.fp32_precision='tf32'" in message
    assert "matmul" not in message.split(", but")[0]
    assert "use_ieee_float32_arithmetic()" in message
    require_ieee_float32_arithmetic(torch.float64, cuda, "a certificate")
    require_ieee_float32_arithmetic(torch.float32, cpu, "a certificate")
    float32_settings("cuda.matmul", "tf32")
    with pytest.raises(UnsupportedOperationError, match=r"cuda\.matmul.*cudnn\.conv"):
        require_ieee_float32_arithmetic(torch.float32, cuda, "a certificate")
    float32_settings("mkldnn.conv", "bf16")
    with pytest.raises(UnsupportedOperationError, match=r"mkldnn\.conv\.fp32_precision='bf16'"):
        require_ieee_float32_arithmetic(torch.float32, cpu, "a certificate")


def test_use_ieee_float32_arithmetic_clears_cuda_reduced_precision(
    float32_settings: Settings,
) -> None:
    float32_settings("cudnn.conv", "tf32")
    float32_settings("cuda.matmul", "tf32")
    use_ieee_float32_arithmetic()
    require_ieee_float32_arithmetic(torch.float32, torch.device("cuda"), "a certificate")
    assert torch.get_float32_matmul_precision() == "highest"  # PyTorch's getters still read
    assert torch.backends.cudnn.allow_tf32 is False


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_certificates_refuse_half_precision_parameters(dtype: torch.dtype) -> None:
    """float16 and bfloat16 are named, with the way out; a model mixing them with float32
    is refused as well."""
    cpu = torch.device("cpu")
    with pytest.raises(UnsupportedOperationError, match=rf"{dtype} parameters.*deepcopy"):
        require_certifiable_arithmetic({dtype}, cpu, "a certificate")
    with pytest.raises(UnsupportedOperationError, match=rf"{dtype} parameters"):
        require_certifiable_arithmetic({torch.float32, dtype}, cpu, "a certificate")
    require_certifiable_arithmetic({torch.float32, torch.float64}, cpu, "a certificate")


def test_certificates_refuse_autocast() -> None:
    cpu = torch.device("cpu")
    with (
        torch.autocast("cpu", dtype=torch.bfloat16),
        pytest.raises(UnsupportedOperationError, match=r"autocast to torch\.bfloat16.*on cpu"),
    ):
        require_certifiable_arithmetic({torch.float32}, cpu, "a certificate")
    with torch.autocast("cpu", enabled=False):
        require_certifiable_arithmetic({torch.float64}, cpu, "a certificate")


def test_certificates_of_float32_still_check_the_settings(float32_settings: Settings) -> None:
    float32_settings("mkldnn.conv", "bf16")
    with pytest.raises(UnsupportedOperationError, match=r"mkldnn\.conv\.fp32_precision='bf16'"):
        require_certifiable_arithmetic({torch.float32}, torch.device("cpu"), "a certificate")
    require_certifiable_arithmetic({torch.float64}, torch.device("cpu"), "a certificate")


def test_parameter_dtypes() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 2).double())
    assert parameter_dtypes(model) == {torch.float32, torch.float64}
    assert parameter_dtypes(torch.nn.ReLU()) == {torch.float32}
