"""BCOPConv1d/2d against the float64 reference: kernel, operator, claims, gradients, export."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from gnpcheck.nn import BCOPConv1d, BCOPConv2d
from gnpcheck.nn.bcop import _BCOPConvNd
from gnpcheck.reference import bcop_kernel_1d, bcop_kernel_2d, to_torch_layout
from gnpcheck.tolerances import FLOAT64_KERNEL_AGREEMENT, gnp_tolerance, orthogonality_tolerance

from ._helpers import (
    BCOP_CLASSES,
    dense_jacobian,
    layer_input,
    make_bcop,
    reference_forward,
    same_config,
)

# (in, out, kernel_size, stride, padding): square, tall, wide; odd and even kernels; strided;
# zeros; one channel; a one-tap kernel with zeros (which pads nothing).
CONFIGS = [
    (4, 4, 3, 1, "circular"),
    (4, 4, 2, 1, "circular"),
    (3, 5, 4, 1, "circular"),
    (5, 3, 3, 1, "circular"),
    (2, 8, 4, 2, "circular"),
    (3, 3, 3, 1, "same"),
    (4, 2, 2, 1, "same"),
    (2, 3, 6, 2, "same"),
    (1, 1, 3, 1, "circular"),
    (4, 4, 1, 1, "same"),
]
SIZE = 6
IDS = [f"in{c[0]}-out{c[1]}-k{c[2]}-s{c[3]}-{c[4]}" for c in CONFIGS]


def _layer(cls: type[_BCOPConvNd], config: tuple[Any, ...], **kwargs: Any) -> _BCOPConvNd:
    in_c, out_c, k, stride, padding = config
    return make_bcop(cls, in_c, out_c, k, stride=stride, padding=padding, **kwargs)


def _orthogonal_like(layer: _BCOPConvNd) -> bool:
    return layer.padding == "circular" or layer.inner_kernel_size[0] == 1


@pytest.mark.parametrize("orthogonalizer", ["qr", "bjorck"])
@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
@pytest.mark.parametrize("cls", BCOP_CLASSES)
def test_weight_equals_reference_from_the_same_parameters(
    cls: type[_BCOPConvNd], config: tuple[Any, ...], orthogonalizer: str
) -> None:
    iters = 40 if orthogonalizer == "bjorck" else None
    layer = _layer(cls, config, orthogonalizer=orthogonalizer, bjorck_iters=iters)
    expected = layer.to_reference().torch_weight()
    assert layer.weight.shape == expected.shape
    assert np.abs(layer.weight.detach().numpy() - expected).max() <= FLOAT64_KERNEL_AGREEMENT


@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
@pytest.mark.parametrize("cls", BCOP_CLASSES)
def test_weight_equals_reference_kernel_of_the_layers_factors(
    cls: type[_BCOPConvNd], config: tuple[Any, ...]
) -> None:
    layer = _layer(cls, config)
    h, p = (t.detach().numpy() for t in layer.factors())
    k = layer.inner_kernel_size[0]
    if cls.spatial_ndim == 1:
        kernel = bcop_kernel_1d(h, list(p))
    else:
        kernel = bcop_kernel_2d(h, list(p[: k - 1]), list(p[k - 1 :]))
    expected = to_torch_layout(kernel)[: layer.out_channels, : layer.inner_in_channels]
    assert np.abs(layer.weight.detach().numpy() - expected).max() <= FLOAT64_KERNEL_AGREEMENT


@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
@pytest.mark.parametrize("cls", BCOP_CLASSES)
def test_forward_equals_reference_operator(cls: type[_BCOPConvNd], config: tuple[Any, ...]) -> None:
    layer = _layer(cls, config)
    with torch.no_grad():
        layer.bias.normal_()  # type: ignore[union-attr]
    x = layer_input(layer, SIZE * layer.stride)
    y = layer(x)
    expected = reference_forward(layer, x)
    assert y.shape == expected.shape
    assert np.abs(y.detach().numpy() - expected).max() <= FLOAT64_KERNEL_AGREEMENT


CLAIMS = [
    ((4, 4, 3, 1, "circular"), {"lipschitz", "orthogonal", "gnp"}),
    ((5, 3, 3, 1, "circular"), {"lipschitz", "gnp"}),
    ((3, 5, 3, 1, "circular"), {"lipschitz"}),
    ((2, 8, 2, 2, "circular"), {"lipschitz", "orthogonal", "gnp"}),
    ((2, 4, 2, 2, "circular"), {"lipschitz", "gnp"}),
    ((4, 4, 3, 1, "same"), {"lipschitz"}),
    ((4, 4, 1, 1, "same"), {"lipschitz", "orthogonal", "gnp"}),
    ((2, 8, 2, 2, "same"), {"lipschitz", "orthogonal", "gnp"}),
]


@pytest.mark.parametrize(("config", "claims"), CLAIMS, ids=[str(c[0]) for c in CLAIMS])
def test_claims_are_exact_2d(config: tuple[Any, ...], claims: set[str]) -> None:
    layer = _layer(BCOPConv2d, config)
    assert layer.claims == frozenset(claims)
    assert layer.lipschitz_bound() == 1.0


def test_claims_count_the_stride_in_one_dimension() -> None:
    assert _layer(BCOPConv1d, (2, 4, 2, 2, "circular")).claims == {"lipschitz", "orthogonal", "gnp"}
    assert _layer(BCOPConv1d, (2, 8, 2, 2, "circular")).claims == {"lipschitz"}


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
@pytest.mark.parametrize("cls", BCOP_CLASSES)
def test_every_singular_value_of_the_kernel_is_one(
    cls: type[_BCOPConvNd], config: tuple[Any, ...], dtype: torch.dtype
) -> None:
    """Semi-orthogonal too: the ``min(out, in)`` singular values per frequency are all 1."""
    layer = _layer(cls, config, dtype=dtype)
    grid = (SIZE * layer.stride,) * cls.spatial_ndim
    size = max(layer.out_channels, layer.inner_in_channels) * SIZE**cls.spatial_ndim
    defect = layer.orthogonality_defect(grid)
    assert defect <= orthogonality_tolerance(dtype, size), f"max |sigma - 1| = {defect:.3g}"


@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
@pytest.mark.parametrize("cls", BCOP_CLASSES)
def test_dense_jacobian_matches_the_claims(cls: type[_BCOPConvNd], config: tuple[Any, ...]) -> None:
    """sigma_max <= 1 always; all singular values 1 where "orthogonal" is claimed; zero padding
    with taps is a strict contraction somewhere (hence no orthogonal claim)."""
    layer = _layer(cls, config)
    x = layer_input(layer, 4 * layer.stride, batch=1)
    sigma = np.linalg.svd(dense_jacobian(layer, x), compute_uv=False)
    tolerance = orthogonality_tolerance(np.float64, sigma.size)
    assert sigma[0] <= 1 + tolerance
    if "orthogonal" in layer.claims:
        assert np.abs(sigma - 1).max() <= tolerance
    if not _orthogonal_like(layer):
        assert sigma[-1] < 1 - 1e-3
    rows, columns = dense_jacobian(layer, x).shape
    if "gnp" in layer.claims:  # J J^T = I: every singular value of J^T is 1
        assert rows <= columns
        assert np.abs(sigma - 1).max() <= tolerance
    else:  # J^T maps some gradient to a shorter one
        assert rows > columns or sigma[-1] < 1 - 1e-3


def _gnp_cases() -> list[Any]:
    cases = []
    for cls in BCOP_CLASSES:
        for config, name in zip(CONFIGS, IDS, strict=True):
            if "gnp" in _layer(cls, config).claims:
                cases.append(pytest.param(cls, config, id=f"{cls.__name__}-{name}"))
    return cases


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
@pytest.mark.parametrize(("cls", "config"), _gnp_cases())
def test_gnp_by_autograd(
    cls: type[_BCOPConvNd], config: tuple[Any, ...], dtype: torch.dtype
) -> None:
    layer = _layer(cls, config, dtype=dtype)
    x = layer_input(layer, SIZE * layer.stride, batch=3, requires_grad=True)
    y = layer(x)
    g = torch.randn(y.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    (grad,) = torch.autograd.grad(y, x, g.to(dtype))
    ratio = grad.double().flatten(1).norm(dim=1) / g.flatten(1).norm(dim=1)
    tolerance = gnp_tolerance(dtype, y[0].numel())
    assert (ratio - 1).abs().max().item() <= tolerance


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
@pytest.mark.parametrize("cls", BCOP_CLASSES)
def test_every_parameter_receives_a_gradient(
    cls: type[_BCOPConvNd], config: tuple[Any, ...], dtype: torch.dtype
) -> None:
    """Per projector: a construction that used one projector twice and another never would
    still give an orthogonal kernel, but one slice of ``r_tilde`` would get no gradient."""
    layer = _layer(cls, config, dtype=dtype)
    x = layer_input(layer, SIZE * layer.stride)
    y = layer(x)
    weights = torch.randn(y.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(7))
    (y * weights.to(dtype)).sum().backward()
    assert layer.h_tilde.grad is not None
    if layer.channels > 1:
        assert layer.h_tilde.grad.abs().max() > 0
    else:  # O(1) = {-1, 1}: H = sign(h_tilde) is locally constant
        assert layer.h_tilde.grad.abs().max() == 0
    assert layer.bias is not None
    assert layer.bias.grad is not None
    assert torch.all(layer.bias.grad != 0)
    if layer.r_tilde.numel():  # empty for K = 1 (no projector) and n = 1 (rank 0)
        r_grad = layer.r_tilde.grad
        assert r_grad is not None
        per_projector = r_grad.flatten(1).abs().amax(dim=1)
        assert torch.all(per_projector > 0), f"projectors without gradient: {per_projector}"


@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
@pytest.mark.parametrize("cls", BCOP_CLASSES)
def test_export_computes_the_same_function(cls: type[_BCOPConvNd], config: tuple[Any, ...]) -> None:
    layer = _layer(cls, config)
    with torch.no_grad():
        layer.bias.normal_()  # type: ignore[union-attr]
    exported = layer.export()
    plain = (
        nn.Conv1d,
        nn.Conv2d,
        nn.Sequential,
        nn.CircularPad1d,
        nn.CircularPad2d,
        nn.ZeroPad1d,
        nn.ZeroPad2d,
    )
    assert all(type(m) in plain for m in exported.modules())
    conv = next(m for m in exported.modules() if isinstance(m, nn.Conv1d | nn.Conv2d))
    assert conv.kernel_size == layer.kernel_size
    assert conv.stride == (layer.stride,) * cls.spatial_ndim
    x = layer_input(layer, SIZE * layer.stride)
    assert (exported(x) - layer(x)).abs().max().item() <= FLOAT64_KERNEL_AGREEMENT


@pytest.mark.parametrize("cls", BCOP_CLASSES)
def test_export_right_after_load_state_dict(cls: type[_BCOPConvNd]) -> None:
    """No forward pass between loading and exporting: the export uses the loaded parameters."""
    source = _layer(cls, (4, 4, 3, 1, "circular"), seed=3)
    target = same_config(source, seed=4)
    x = layer_input(source, SIZE)
    with torch.no_grad():
        before = target(x)
    target.load_state_dict(source.state_dict())
    exported = target.export()
    assert (exported(x) - source(x)).abs().max().item() <= FLOAT64_KERNEL_AGREEMENT
    assert (exported(x) - before).abs().max().item() > 1e-3


@pytest.mark.parametrize("cls", BCOP_CLASSES)
def test_state_dict_round_trip(cls: type[_BCOPConvNd]) -> None:
    source = _layer(cls, (3, 5, 4, 2, "same"), seed=3)
    buffer = io.BytesIO()
    torch.save(source.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    assert set(state) == {"h_tilde", "r_tilde", "bias"}
    target = same_config(source, seed=9)
    target.load_state_dict(state)
    x = layer_input(source, 8)
    assert torch.equal(target(x), source(x))


def test_float32_layer_follows_the_float64_layer() -> None:
    layer64 = make_bcop(BCOPConv2d, 4, 4, 3)
    layer32 = make_bcop(BCOPConv2d, 4, 4, 3, dtype=torch.float32)
    x = layer_input(layer64, SIZE)
    y64, y32 = layer64(x), layer32(x.float())
    assert y32.dtype == torch.float32
    assert (y32.double() - y64).abs().max().item() <= orthogonality_tolerance(
        torch.float32, y64.numel()
    )


@pytest.mark.parametrize("cls", BCOP_CLASSES)
def test_float64_build_rounds_the_float32_kernel_once(cls: type[_BCOPConvNd]) -> None:
    """build_dtype=float64: the float32 kernel is the float64 layer's kernel rounded; the
    default (float32 block convolutions) differs from it by float32 rounding only."""
    exact = make_bcop(cls, 6, 6, 4, dtype=torch.float32, build_dtype=torch.float64)
    layer64 = make_bcop(cls, 6, 6, 4)
    layer64.load_state_dict({k: v.double() for k, v in exact.state_dict().items()})
    assert torch.equal(exact.weight, layer64.weight.float())
    fast = make_bcop(cls, 6, 6, 4, dtype=torch.float32)
    fast.load_state_dict(exact.state_dict())
    assert not torch.equal(fast.weight, exact.weight)
    assert (fast.weight - exact.weight).abs().max() <= orthogonality_tolerance(torch.float32, 6)


def test_default_dtype_and_repr() -> None:
    layer = BCOPConv2d(2, 2, 3, orthogonalizer="bjorck", bjorck_iters=12)
    assert layer.h_tilde.dtype == torch.get_default_dtype()
    assert "bjorck_iters=12" in repr(layer)
    assert "padding='circular'" in repr(layer)


def test_generator_makes_initialization_reproducible() -> None:
    a = make_bcop(BCOPConv2d, 3, 3, 3, seed=11)
    b = make_bcop(BCOPConv2d, 3, 3, 3, seed=11)
    c = make_bcop(BCOPConv2d, 3, 3, 3, seed=12)
    assert torch.equal(a.weight, b.weight)
    assert not torch.equal(a.weight, c.weight)


@pytest.mark.parametrize("kernel_size", [3, 7])
def test_the_float32_budget_holds_at_256_channels(kernel_size: int) -> None:
    """The issue's float32 figure (max |sigma - 1| <= 2e-6 for C <= 256, k <= 7) on its
    largest case, fresh; 3x3 also within the 1e-6 of 32 channels (8.2e-7 measured: a
    kernel's products summing 256 terms in one chain, not in blocks, measured 1.2e-6)."""
    layer = BCOPConv2d(256, 256, kernel_size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        defect = layer.orthogonality_defect(16)
    assert defect <= (1e-6 if kernel_size == 3 else 2e-6), f"max |sigma - 1| = {defect:.3g}"
