"""The one-node QR kernel build equals the composed functions it fuses, values and gradients.

Oracle: ``qr_orthonormalize`` and ``projectors`` then ``bcop_kernel``, differentiated by
autograd through their own Functions (each held to finite differences in its own tests);
and finite differences themselves.
"""

from __future__ import annotations

import pytest
import torch

from gnpcheck.nn.kernel import bcop_kernel
from gnpcheck.nn.orthogonalize import projectors, qr_orthonormalize
from gnpcheck.nn.qr_kernel import qr_bcop_kernel
from gnpcheck.tolerances import FLOAT64_KERNEL_AGREEMENT

# (spatial_ndim, n, taps, out_channels, in_channels): square, fewer outputs, fewer inputs,
# one tap (no projector), one channel (rank-0 projectors), 1-D.
CASES = [
    (2, 4, 3, 4, 4),
    (2, 5, 2, 3, 5),
    (2, 6, 4, 6, 2),
    (2, 4, 1, 4, 4),
    (2, 1, 3, 1, 1),
    (1, 4, 3, 4, 4),
    (1, 6, 2, 6, 3),
]
IDS = [f"d{c[0]}-n{c[1]}-k{c[2]}-o{c[3]}-i{c[4]}" for c in CASES]


def _parameters(
    case: tuple[int, ...], dtype: torch.dtype, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    d, n, taps = case[:3]
    generator = torch.Generator().manual_seed(seed)
    h = torch.randn(n, n, dtype=torch.float64, generator=generator)
    r = torch.randn(d * (taps - 1), n, n // 2, dtype=torch.float64, generator=generator)
    return h.to(dtype).requires_grad_(), r.to(dtype).requires_grad_()


def _composed(
    h: torch.Tensor, r: torch.Tensor, case: tuple[int, ...], build: torch.dtype
) -> torch.Tensor:
    d, n, _, out_channels, in_channels = case
    factor = qr_orthonormalize(h, build)[:out_channels]
    narrow = in_channels if in_channels < n else None
    return bcop_kernel(factor, projectors(r, dtype=build), d, narrow).to(h.dtype)


def _fused(
    h: torch.Tensor, r: torch.Tensor, case: tuple[int, ...], build: torch.dtype
) -> torch.Tensor:
    d, _, _, out_channels, in_channels = case
    return qr_bcop_kernel(h, r, d, out_channels, in_channels, build)


def _value_and_gradients(
    function: object, case: tuple[int, ...], dtype: torch.dtype, build: torch.dtype
) -> tuple[torch.Tensor, ...]:
    h, r = _parameters(case, dtype)
    kernel = function(h, r, case, build)  # type: ignore[operator]
    weights = torch.randn(kernel.shape, dtype=torch.float64, generator=torch.Generator())
    (kernel * weights.to(dtype)).sum().backward()
    assert h.grad is not None
    assert r.grad is not None or r.numel() == 0  # no projector: autograd may skip r
    return kernel.detach(), h.grad, torch.zeros_like(r) if r.grad is None else r.grad


def _peak(t: torch.Tensor) -> float:
    return t.abs().max().item() if t.numel() else 0.0


@pytest.mark.parametrize(
    ("dtype", "build"),
    [
        (torch.float64, torch.float64),
        (torch.float32, torch.float32),
        (torch.float32, torch.float64),
    ],
    ids=["f64", "f32", "f32-build-f64"],
)
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_equals_the_composed_functions(
    case: tuple[int, ...], dtype: torch.dtype, build: torch.dtype
) -> None:
    torch.manual_seed(1)
    expected = _value_and_gradients(_composed, case, dtype, build)
    torch.manual_seed(1)
    fused = _value_and_gradients(_fused, case, dtype, build)
    assert fused[0].dtype == dtype
    assert fused[0].shape == (case[3], case[4], *(case[2],) * case[0])
    assert fused[0].is_contiguous()
    # equal to rounding: the native library may factor by Cholesky QR where the composed
    # functions call Householder's (docs/layers.rst, Note [native stages])
    tolerance = FLOAT64_KERNEL_AGREEMENT if dtype == torch.float64 else 1e-6
    for got, want in zip(fused, expected, strict=True):
        assert got.dtype == dtype
        assert got.shape == want.shape
        torch.testing.assert_close(got, want, rtol=0, atol=tolerance * max(1.0, _peak(want)))


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_backward_matches_finite_differences(case: tuple[int, ...]) -> None:
    h, r = _parameters(case, torch.float64, seed=3)
    assert torch.autograd.gradcheck(lambda a, b: _fused(a, b, case, torch.float64), (h, r))


def test_one_autograd_node_from_the_parameters_to_the_kernel() -> None:
    h, r = _parameters(CASES[0], torch.float32)
    kernel = _fused(h, r, CASES[0], torch.float32)
    assert kernel.grad_fn is not None
    leaves = [edge[0].variable for edge in kernel.grad_fn.next_functions]
    assert leaves[0] is h
    assert leaves[1] is r


def test_only_the_parameters_that_need_a_gradient_get_one() -> None:
    h, r = _parameters(CASES[0], torch.float64)
    h.requires_grad_(False)
    kernel = _fused(h, r, CASES[0], torch.float64)
    # not kernel.sum(): the taps sum to H whatever the projectors, so its gradient in r is 0
    (kernel * torch.randn(kernel.shape, dtype=torch.float64)).sum().backward()
    assert h.grad is None
    assert r.grad is not None
    assert r.grad.abs().max() > 0
