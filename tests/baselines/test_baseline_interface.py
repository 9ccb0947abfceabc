"""The shared interface of the baselines: arguments, export, gradients, state, dtypes."""

from __future__ import annotations

import copy
from typing import Any, ClassVar

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gnpcheck.audit.claims import declared_claims
from gnpcheck.errors import InvalidArgumentError, InvalidTypeError
from gnpcheck.nn.base import ConstrainedConv
from gnpcheck.nn.baselines import OSSNConv2d, RKOConv2d, SVCMConv2d
from gnpcheck.tolerances import matrix_orthogonality_tolerance, orthogonality_tolerance

from ._oracles import dense_zero_padded, sigma_max

LAYERS = [OSSNConv2d, RKOConv2d, SVCMConv2d]
# (in, out, kernel, stride, padding): square, wide, tall; odd and even kernels; strided.
CONFIGS = [
    (4, 4, 3, 1, "circular"),
    (3, 5, 4, 1, "circular"),
    (6, 2, 2, 1, "same"),
    (2, 3, 4, 2, "circular"),
    (2, 4, 6, 2, "same"),
    (3, 3, (3, 1), 1, "circular"),
]
SIZE = 8


def _build(cls: type[ConstrainedConv], config: tuple[Any, ...], **kwargs: Any) -> ConstrainedConv:
    in_c, out_c, k, stride, padding = config
    torch.manual_seed(0)
    return cls(in_c, out_c, k, stride=stride, padding=padding, **kwargs).double()


def _input(in_channels: int, batch: int = 3, seed: int = 1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, in_channels, SIZE, SIZE, dtype=torch.float64, generator=generator)


@pytest.mark.parametrize("config", CONFIGS, ids=str)
@pytest.mark.parametrize("cls", LAYERS)
def test_interface_and_claims(cls: type[ConstrainedConv], config: tuple[Any, ...]) -> None:
    assert issubclass(cls, ConstrainedConv)
    assert _build(cls, config).claims == frozenset({"lipschitz"})


def test_audit_reads_claims_from_a_property_or_a_class_attribute() -> None:
    """The audit reads ``claims`` from the instance: a property (these layers, BCOP) and a
    class attribute (a module written elsewhere) both count."""

    class Attribute(nn.Module):
        claims: ClassVar[frozenset[str]] = frozenset({"lipschitz", "gnp"})

    class Property(nn.Module):
        @property
        def claims(self) -> frozenset[str]:
            return frozenset({"lipschitz", "orthogonal"})

    assert declared_claims(RKOConv2d(2, 2, 3)) == frozenset({"lipschitz"})
    assert declared_claims(Attribute()) == frozenset({"lipschitz", "gnp"})
    assert declared_claims(Property()) == frozenset({"lipschitz", "orthogonal"})


@pytest.mark.parametrize("config", CONFIGS, ids=str)
@pytest.mark.parametrize("cls", LAYERS)
def test_forward_equals_padded_strided_conv(
    cls: type[ConstrainedConv], config: tuple[Any, ...]
) -> None:
    """The layer is pixel-unshuffle then F.conv2d of ``weight`` with the documented padding."""
    layer = _build(cls, config).eval()
    in_c, _, _, stride, padding = config
    x = _input(in_c)
    y = layer(x)  # in eval mode: ties the size, then u stays fixed
    z = F.pixel_unshuffle(x, stride)
    k1, k2 = layer.weight.shape[-2:]
    widths = ((k2 - 1) // 2, k2 - 1 - (k2 - 1) // 2, (k1 - 1) // 2, k1 - 1 - (k1 - 1) // 2)
    mode = "circular" if padding == "circular" else "constant"
    expected = F.conv2d(F.pad(z, widths, mode=mode), layer.weight, layer.bias)
    torch.testing.assert_close(y, expected, rtol=0, atol=1e-13)


@pytest.mark.parametrize("config", CONFIGS, ids=str)
@pytest.mark.parametrize("cls", LAYERS)
def test_export_is_plain_and_equal(cls: type[ConstrainedConv], config: tuple[Any, ...]) -> None:
    layer = _build(cls, config)
    x = _input(config[0])
    layer(x)  # training forward: ties the input size, runs power iterations
    layer.eval()
    exported = layer.export()
    plain = (nn.Conv2d, nn.PixelUnshuffle, nn.ZeroPad2d, nn.Sequential)
    assert all(isinstance(m, plain) for m in exported.modules()), exported
    assert not any(isinstance(m, ConstrainedConv) for m in exported.modules())
    torch.testing.assert_close(exported(x), layer(x), rtol=0, atol=1e-13)


@pytest.mark.parametrize("cls", LAYERS)
def test_export_in_training_mode_is_the_evaluation_function(cls: type[ConstrainedConv]) -> None:
    """Called on a layer still in training mode (OSSN normalizes by the stored vector
    there, by a refined one in evaluation), export() gives what evaluation computes."""
    layer = _build(cls, (3, 4, 3, 1, "circular"))
    x = _input(3)
    layer(x)
    exported = layer.export()
    assert layer.training
    with torch.no_grad():
        torch.testing.assert_close(exported(x), layer.eval()(x), rtol=0, atol=1e-13)


@pytest.mark.parametrize("cls", LAYERS)
def test_export_after_load_state_dict_without_forward(cls: type[ConstrainedConv]) -> None:
    """A fresh layer that loads a trained state exports the trained function at once."""
    config = (3, 4, 3, 1, "circular")
    trained = _build(cls, config)
    x = _input(3)
    optimizer = torch.optim.SGD(trained.parameters(), lr=0.01)
    for _ in range(2):
        optimizer.zero_grad()
        trained(x).square().sum().backward()
        optimizer.step()
    trained.eval()
    torch.manual_seed(123)
    fresh = cls(3, 4, 3).double()
    fresh.load_state_dict(trained.state_dict())
    fresh.eval()
    torch.testing.assert_close(fresh.export()(x), trained(x), rtol=0, atol=1e-13)


@pytest.mark.parametrize("cls", LAYERS)
def test_state_dict_round_trip(cls: type[ConstrainedConv], tmp_path: Any) -> None:
    layer = _build(cls, (2, 3, 4, 2, "same"))
    x = _input(2)
    layer(x)
    layer.eval()
    path = tmp_path / "layer.pt"
    torch.save(layer.state_dict(), path)
    state = torch.load(path, weights_only=True)
    if cls is OSSNConv2d:
        assert {"power_vector", "input_hw"} <= set(state)
    other = cls(2, 3, 4, stride=2, padding="same").double()
    other.load_state_dict(state)
    other.eval()
    for key, value in layer.state_dict().items():
        torch.testing.assert_close(other.state_dict()[key], value, rtol=0, atol=0)
    torch.testing.assert_close(other(x), layer(x), rtol=0, atol=0)


@pytest.mark.parametrize("config", CONFIGS, ids=str)
@pytest.mark.parametrize("cls", LAYERS)
def test_every_parameter_gets_a_nonzero_gradient(
    cls: type[ConstrainedConv], config: tuple[Any, ...]
) -> None:
    layer = _build(cls, config)
    x = _input(config[0])
    target = torch.randn_like(layer(x))
    (layer(x) - target).square().sum().backward()
    names = [name for name, _ in layer.named_parameters()]
    assert names == ["bias", "raw_weight"]
    for name, parameter in layer.named_parameters():
        assert parameter.grad is not None, name
        assert float(parameter.grad.abs().max()) > 0, name


@pytest.mark.parametrize("cls", LAYERS)
def test_optimizer_step_is_seen_by_forward_and_export(cls: type[ConstrainedConv]) -> None:
    """No cache: the kernel after a step is the kernel the layer and its export apply."""
    layer = _build(cls, (3, 3, 3, 1, "circular"))
    x = _input(3)
    layer(x)
    layer.eval()
    before = layer.weight.detach().clone()
    optimizer = torch.optim.SGD(layer.parameters(), lr=0.1)
    layer(x).sum().backward()
    optimizer.step()
    assert float((layer.weight.detach() - before).abs().max()) > 0
    torch.testing.assert_close(layer.export()(x), layer(x), rtol=0, atol=1e-13)


@pytest.mark.parametrize("cls", LAYERS)
def test_float32_and_float64(cls: type[ConstrainedConv]) -> None:
    torch.manual_seed(0)
    layer = cls(2, 3, 3)
    x32 = _input(2).float()
    assert layer(x32).dtype == torch.float32
    layer.double()
    assert layer(x32.double()).dtype == torch.float64
    assert all(
        t.dtype == torch.float64 for t in layer.state_dict().values() if t.is_floating_point()
    )


def test_dense_zero_padded_oracle_matches_torch() -> None:
    """Meta-test: the NumPy zero-padding oracle is the convolution torch computes."""
    torch.manual_seed(0)
    for k in (2, 3, 4):
        weight = torch.randn(3, 2, k, k, dtype=torch.float64)
        x = torch.randn(2, 5, 6, dtype=torch.float64)
        c = (k - 1) // 2
        expected = F.conv2d(F.pad(x[None], (c, k - 1 - c, c, k - 1 - c)), weight)[0]
        matrix = dense_zero_padded(weight, (5, 6))
        np.testing.assert_allclose(
            matrix @ x.numpy().reshape(-1), expected.numpy().reshape(-1), atol=1e-13
        )


# ---- bad arguments: each rejected with an error that names it -----------------------------

BAD_CONSTRUCTION = [
    ("in_channels_zero", {"in_channels": 0}, InvalidArgumentError, r"in_channels=0, but"),
    ("in_channels_float", {"in_channels": 2.0}, InvalidTypeError, r"in_channels=2\.0, but"),
    ("in_channels_bool", {"in_channels": True}, InvalidTypeError, r"in_channels=True, but"),
    ("out_channels_negative", {"out_channels": -1}, InvalidArgumentError, r"out_channels=-1, but"),
    ("kernel_size_zero", {"kernel_size": 0}, InvalidArgumentError, r"kernel_size=0, but"),
    (
        "kernel_size_three_axes",
        {"kernel_size": (3, 3, 3)},
        InvalidArgumentError,
        r"kernel_size=\(3, 3, 3\)",
    ),
    ("stride_zero", {"stride": 0}, InvalidArgumentError, r"stride=0, but"),
    (
        "stride_unequal",
        {"kernel_size": 4, "stride": (2, 1)},
        InvalidArgumentError,
        r"stride=\(2, 1\), but the pixel unshuffle needs the same factor",
    ),
    ("stride_float", {"stride": 1.0}, InvalidTypeError, r"stride=1\.0, but it must be an int"),
    (
        "stride_not_dividing",
        {"stride": 2},
        InvalidArgumentError,
        r"kernel_size=\(3, 3\), but with stride=2",
    ),
    (
        "padding_zeros_word",
        {"padding": "zeros"},
        InvalidArgumentError,
        r"padding='zeros', but it must be 'circular' \(wraps around, same size\) or 'same' "
        r"\(zeros, same size\)",
    ),
    ("padding_reflect", {"padding": "reflect"}, InvalidArgumentError, r"padding='reflect', but"),
    ("padding_int", {"padding": 1}, InvalidArgumentError, r"padding=1, but"),
    ("padding_valid", {"padding": "valid"}, InvalidArgumentError, r"padding='valid', but"),
    ("bias_string", {"bias": "yes"}, InvalidTypeError, r"bias='yes', but it must be a bool"),
]
SIZED_BAD = [
    (
        "input_size_not_divisible",
        {"kernel_size": 4, "stride": 2, "input_size": (7, 8)},
        InvalidArgumentError,
        r"input_size=\(7, 8\), but axis 0 must be divisible by stride=2",
    ),
    (
        "input_size_below_kernel",
        {"kernel_size": 5, "input_size": 4},
        InvalidArgumentError,
        r"input_size=\(4, 4\), but axis 0 gives a grid of 4",
    ),
    ("input_size_zero", {"input_size": 0}, InvalidArgumentError, r"input_size=0, but"),
]
OWN_BAD = {
    OSSNConv2d: [
        (
            "power_iterations_zero",
            {"power_iterations": 0},
            InvalidArgumentError,
            r"power_iterations=0, but",
        ),
        (
            "eval_power_iterations_float",
            {"eval_power_iterations": 1.5},
            InvalidTypeError,
            r"eval_power_iterations=1\.5, but",
        ),
    ],
    RKOConv2d: [
        ("bjorck_iters_zero", {"bjorck_iters": 0}, InvalidArgumentError, r"bjorck_iters=0, but"),
    ],
    SVCMConv2d: [],
}
CASES = [
    pytest.param(cls, kwargs, error, match, id=f"{cls.__name__}-{name}")
    for cls in LAYERS
    for name, kwargs, error, match in (
        BAD_CONSTRUCTION + (SIZED_BAD if cls is not RKOConv2d else []) + OWN_BAD[cls]
    )
]


@pytest.mark.parametrize(("cls", "kwargs", "error", "match"), CASES)
def test_bad_constructor_argument(
    cls: type[Any], kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    arguments: dict[str, Any] = {"in_channels": 2, "out_channels": 2, "kernel_size": 3} | kwargs
    with pytest.raises(error, match=match):
        cls(**arguments)


@pytest.mark.parametrize("cls", LAYERS)
def test_stride_pair_of_equal_ints(cls: type[Any]) -> None:
    assert cls(2, 2, 4, stride=(2, 2)).stride == 2


def test_rko_rejects_input_size() -> None:
    """RKO's bound holds for every size: it takes no input_size (not silently ignored)."""
    with pytest.raises(TypeError, match="input_size"):
        RKOConv2d(2, 2, 3, input_size=8)  # type: ignore[call-arg]


BAD_INPUTS = [
    (
        "wrong_channels",
        torch.zeros(1, 3, 8, 8),
        InvalidArgumentError,
        r"input has shape \(1, 3, 8, 8\), but it must be \(batch, 2, H, W\)",
    ),
    ("unbatched", torch.zeros(2, 8, 8), InvalidArgumentError, r"input has shape \(2, 8, 8\), but"),
    (
        "dtype_mismatch",
        torch.zeros(1, 2, 8, 8, dtype=torch.float64),
        InvalidArgumentError,
        r"input has dtype torch\.float64, but the layer's parameters are torch\.float32",
    ),
    (
        "device_mismatch",
        torch.zeros(1, 2, 8, 8, device="meta"),
        InvalidArgumentError,
        r"input is on meta, but the layer's parameters are on cpu",
    ),
    (
        "odd_size_for_stride",
        torch.zeros(1, 2, 7, 8),
        InvalidArgumentError,
        r"x\.shape\[-2:\]=\(7, 8\), but axis 0 must be divisible by stride=2",
    ),
    (
        "not_a_tensor",
        np.zeros((1, 2, 8, 8), dtype=np.float32),
        InvalidTypeError,
        r"input is a ndarray, but it must be a torch\.Tensor",
    ),
]


@pytest.mark.parametrize(
    ("name", "x", "error", "match"), BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS]
)
@pytest.mark.parametrize("cls", LAYERS)
def test_bad_input(cls: type[Any], name: str, x: Any, error: type[Exception], match: str) -> None:
    stride = 2 if name == "odd_size_for_stride" else 1
    layer = cls(2, 2, 2 * stride if stride > 1 else 3, stride=stride)
    with pytest.raises(error, match=match):
        layer(x)


@pytest.mark.parametrize("cls", [OSSNConv2d, SVCMConv2d])
def test_input_size_is_fixed_after_first_forward(cls: type[Any]) -> None:
    layer = cls(2, 2, 3)
    assert layer.input_size is None
    layer(torch.zeros(1, 2, 8, 6))
    assert layer.input_size == (8, 6)
    with pytest.raises(
        InvalidArgumentError,
        match=r"x has spatial size \(8, 8\), but this layer is tied to input_size=\(8, 6\)",
    ):
        layer(torch.zeros(1, 2, 8, 8))
    copied = copy.deepcopy(layer)
    assert copied.input_size == (8, 6)


@pytest.mark.parametrize("cls", [OSSNConv2d, SVCMConv2d])
def test_size_dependent_figures_need_an_input_size(cls: type[Any]) -> None:
    layer = cls(2, 2, 3)
    with pytest.raises(
        InvalidArgumentError, match=r"input_size=None, but this needs the input size"
    ):
        _ = layer.weight if cls is OSSNConv2d else layer.lipschitz_bound()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
@pytest.mark.parametrize("cls", LAYERS)
def test_cuda_forward_export_and_claim(cls: type[Any]) -> None:
    """On a GPU (float32): the export computes the same function, and each layer's figure
    agrees with the CPU float64 reference spectrum of its kernel."""
    torch.manual_seed(0)
    layer = cls(4, 6, 4, stride=2).cuda()
    x = torch.randn(3, 4, SIZE, SIZE, device="cuda")
    layer(x)
    grid = (SIZE // 2, SIZE // 2)
    rows = 6 * grid[0] * grid[1]
    if cls is OSSNConv2d:
        estimate = layer.power_iteration_(50)
        exact = sigma_max(layer.raw_weight, grid)
        assert estimate <= exact * (1 + orthogonality_tolerance(torch.float32, rows))
        expected = exact / max(1.0, estimate)  # the norm of the operator the layer applies
        measured = sigma_max(layer.weight, grid)
        assert abs(measured - expected) <= orthogonality_tolerance(torch.float32, rows) * expected
    elif cls is RKOConv2d:
        tolerance = matrix_orthogonality_tolerance(torch.float32, 6)
        assert sigma_max(layer.weight, grid) <= layer.lipschitz_bound() + tolerance
    else:
        bound = layer.project_(3)
        exact = sigma_max(layer.weight, grid)
        assert abs(bound - exact) <= orthogonality_tolerance(np.float64, rows) * exact
    layer.eval()
    torch.testing.assert_close(layer.export()(x), layer(x))
