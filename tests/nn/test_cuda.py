"""The layers on a CUDA device compute what they compute on the CPU (skipped without one)."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from gnpcheck.certify.lipschitz import model_lipschitz
from gnpcheck.errors import UnsupportedOperationError
from gnpcheck.models.architectures import small
from gnpcheck.nn import BCOPConv1d, BCOPConv2d, BjorckLinear, MaxMin, export_model
from gnpcheck.nn.functions import DYNAMO_TRACES_FUNCTIONS
from gnpcheck.tolerances import FLOAT64_KERNEL_AGREEMENT, orthogonality_tolerance

from ._helpers import Settings, layer_input, make_bcop

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.mark.parametrize("orthogonalizer", ["qr", "bjorck"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("cls", [BCOPConv1d, BCOPConv2d])
def test_forward_and_backward_match_the_cpu(
    cls: type, dtype: torch.dtype, orthogonalizer: str
) -> None:
    iters = 30 if orthogonalizer == "bjorck" else None
    cpu = make_bcop(
        cls, 4, 6, 4, stride=2, dtype=dtype, orthogonalizer=orthogonalizer, bjorck_iters=iters
    )
    gpu = make_bcop(
        cls,
        4,
        6,
        4,
        stride=2,
        dtype=dtype,
        orthogonalizer=orthogonalizer,
        bjorck_iters=iters,
        device="cuda",
    )
    x = layer_input(cpu, 8)
    y_cpu, y_gpu = cpu(x), gpu(x.cuda())
    tolerance = orthogonality_tolerance(dtype, y_cpu.numel())
    assert (y_gpu.cpu() - y_cpu).abs().max().item() <= tolerance
    y_cpu.square().sum().backward()
    y_gpu.square().sum().backward()
    for p_cpu, p_gpu in zip(cpu.parameters(), gpu.parameters(), strict=True):
        assert p_gpu.grad is not None
        assert p_cpu.grad is not None
        assert (p_gpu.grad.cpu() - p_cpu.grad).abs().max().item() <= 100 * tolerance
    grid = (8,) * cls.spatial_ndim
    assert gpu.orthogonality_defect(grid) <= orthogonality_tolerance(dtype, 8 * 8**cls.spatial_ndim)


def test_export_and_linear_on_cuda() -> None:
    layer = make_bcop(BCOPConv2d, 3, 3, 2, device="cuda")
    x = layer_input(layer, 6)
    assert (layer.export()(x) - layer(x)).abs().max().item() <= FLOAT64_KERNEL_AGREEMENT
    linear = BjorckLinear(5, 4, device="cuda", dtype=torch.float64)
    z = torch.randn(2, 5, device="cuda", dtype=torch.float64)
    assert (linear.export()(z) - linear(z)).abs().max().item() <= FLOAT64_KERNEL_AGREEMENT


def test_tf32_products_are_refused_on_cuda(float32_settings: Settings) -> None:
    """A float32 kernel is not built from TF32 products; a float64 build is."""
    layer = make_bcop(BCOPConv2d, 8, 8, 3, dtype=torch.float32, device="cuda")
    float64_build = make_bcop(
        BCOPConv2d, 8, 8, 3, dtype=torch.float32, device="cuda", build_dtype=torch.float64
    )
    x = layer_input(layer, 8)
    float32_settings("cuda.matmul", "tf32")
    with pytest.raises(UnsupportedOperationError, match=r"cuda\.matmul\.fp32_precision"):
        layer(x)
    assert float64_build.orthogonality_defect(8) <= 1e-6
    float32_settings("cuda.matmul", "ieee")
    assert layer.orthogonality_defect(8) <= 1e-6


# Inductor suggests TF32 products whenever they are off, which is what the layers require.
@pytest.mark.filterwarnings("ignore:TensorFloat32 tensor cores:UserWarning")
def test_inductor_compiled_network_matches_eager_on_cuda() -> None:
    """torch.compile's default backend generates GPU kernels for a float32 network of strided
    and unstrided BCOP layers, MaxMin and BjorckLinear, in one graph (``fullgraph``, where
    this PyTorch traces the Functions): outputs and every parameter's gradient as in eager
    mode, within float32 rounding."""
    torch.manual_seed(0)
    network = nn.Sequential(
        BCOPConv2d(2, 8, 4, stride=2),
        MaxMin(),
        BCOPConv2d(8, 8, 3),
        nn.Flatten(),
        BjorckLinear(8 * 16, 4),
    ).cuda()
    x = torch.randn(3, 2, 8, 8, device="cuda", requires_grad=True)
    compiled = torch.compile(network, fullgraph=DYNAMO_TRACES_FUNCTIONS)
    y = compiled(x)
    y.square().sum().backward()
    grads = [p.grad.clone() for p in network.parameters() if p.grad is not None]
    network.zero_grad()
    expected = network(x)
    expected.square().sum().backward()
    tolerance = orthogonality_tolerance(torch.float32, expected.numel())
    assert (y - expected).abs().max().item() <= tolerance
    eager = [p.grad for p in network.parameters() if p.grad is not None]
    assert len(grads) == len(eager) == len(list(network.parameters()))
    for compiled_grad, eager_grad in zip(grads, eager, strict=True):
        assert (compiled_grad - eager_grad).abs().max().item() <= 100 * tolerance


def test_certificates_on_cuda_need_ieee_convolutions(
    float32_settings: Settings,
) -> None:
    """cuDNN's default TF32 convolutions are refused for a measured bound; with IEEE float32
    the bound is measured and the logits agree with a float64 copy to float32 rounding."""
    torch.manual_seed(0)
    model = nn.Sequential(
        BCOPConv2d(1, 4, 3), MaxMin(), nn.Flatten(), BjorckLinear(4 * 64, 10)
    ).cuda()
    float32_settings("cudnn.conv", "tf32")
    with pytest.raises(UnsupportedOperationError, match=r"cudnn\.conv\.fp32_precision='tf32'"):
        model_lipschitz(model, (1, 8, 8))
    float32_settings("cudnn.conv", "ieee")
    assert model_lipschitz(model, (1, 8, 8)).certified_with == pytest.approx(1.0, abs=1e-4)
    x = torch.rand(64, 1, 8, 8, device="cuda")
    exact = copy.deepcopy(model).double()(x.double())
    assert (model(x).double() - exact).abs().max().item() <= 1e-5 * exact.abs().max().item()


def test_a_network_exports_on_cuda(float32_settings: Settings) -> None:
    """IEEE float32 (cuDNN's TF32 off), so that the layer and its export round alike."""
    float32_settings("cudnn.conv", "ieee")
    torch.manual_seed(0)
    network = small().cuda()
    x = torch.rand(8, 1, 28, 28, device="cuda")
    exported = export_model(network, x)
    assert next(exported.module.parameters()).device.type == "cuda"
    assert exported.max_difference <= 1e-5
