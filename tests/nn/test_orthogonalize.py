"""Differentiable orthonormalization against the float64 reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gnpcheck.checks import assert_orthonormal_columns, assert_symmetric_projector
from gnpcheck.errors import InvalidArgumentError, InvalidTypeError
from gnpcheck.nn.orthogonalize import (
    GRAM_POLAR_MAX_CONDITION,
    bjorck,
    bjorck_orthonormalize,
    orthonormalize,
    polar_orthonormalize,
    projectors,
    qr_orthonormalize,
    spectral_norm_bound,
)
from gnpcheck.reference import bjorck as reference_bjorck
from gnpcheck.reference import orthonormalize as reference_orthonormalize
from gnpcheck.reference import projector as reference_projector
from gnpcheck.tolerances import FLOAT64_KERNEL_AGREEMENT

SHAPES = [(5, 5), (7, 3), (6, 1), (8, 4)]


def _gaussian(*shape: int, seed: int = 0, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    return torch.randn(
        shape, dtype=torch.float64, generator=torch.Generator().manual_seed(seed)
    ).to(dtype)


def _ill_conditioned(n: int, k: int, condition: float, seed: int = 0) -> torch.Tensor:
    """A tall matrix with singular values spread geometrically from 1 to 1 / condition."""
    u = torch.linalg.qr(_gaussian(n, k, seed=seed))[0]
    v = torch.linalg.qr(_gaussian(k, k, seed=seed + 1))[0]
    sigma = torch.logspace(0, -np.log10(condition), k, dtype=torch.float64)
    return (u * sigma) @ v.T


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_qr_matches_reference_qr(shape: tuple[int, int]) -> None:
    a = _gaussian(*shape)
    expected = reference_orthonormalize(a.numpy(), method="qr")
    assert np.abs(qr_orthonormalize(a).numpy() - expected).max() <= FLOAT64_KERNEL_AGREEMENT


def test_qr_is_batched() -> None:
    a = _gaussian(3, 6, 2)
    q = qr_orthonormalize(a)
    for i in range(3):
        assert torch.equal(q[i], qr_orthonormalize(a[i]))


@pytest.mark.parametrize("shape", [(3, 6, 4), (5, 5), (2, 4, 1)], ids=str)
def test_qr_backward_matches_finite_differences(shape: tuple[int, ...]) -> None:
    a = _gaussian(*shape).requires_grad_()
    assert torch.autograd.gradcheck(qr_orthonormalize, (a,))


def test_qr_computes_in_float64_and_returns_the_requested_dtype() -> None:
    a = _gaussian(6, 3).float()
    q = qr_orthonormalize(a, torch.float64)
    assert q.dtype == torch.float64
    expected = reference_orthonormalize(a.double().numpy(), method="qr")
    assert np.abs(q.numpy() - expected).max() <= FLOAT64_KERNEL_AGREEMENT
    assert torch.equal(qr_orthonormalize(a), q.float())


def test_qr_float32_is_orthonormal_to_float32_rounding_for_any_conditioning() -> None:
    a = _ill_conditioned(64, 32, condition=1e6).float()
    q = qr_orthonormalize(a)
    assert q.dtype == torch.float32
    assert_orthonormal_columns(q.double().numpy(), dtype=np.float32)


@pytest.mark.parametrize("order", [1, 2, 3])
def test_bjorck_iterations_match_the_reference(order: int) -> None:
    a = _gaussian(7, 4) / 4.0
    expected = reference_bjorck(a.numpy(), 6, order)
    assert np.abs(bjorck(a, 6, order).numpy() - expected).max() <= FLOAT64_KERNEL_AGREEMENT


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_bjorck_converges_to_the_polar_factor(shape: tuple[int, int]) -> None:
    a = _gaussian(*shape)
    polar = reference_orthonormalize(a.numpy(), method="polar")
    assert np.abs(bjorck_orthonormalize(a, 40).numpy() - polar).max() <= FLOAT64_KERNEL_AGREEMENT


def test_bjorck_with_too_few_iterations_is_visibly_not_converged() -> None:
    a = _ill_conditioned(8, 4, condition=100.0)
    gap = torch.linalg.matrix_norm(
        bjorck_orthonormalize(a, 3).mT @ bjorck_orthonormalize(a, 3) - torch.eye(4), 2
    )
    assert gap > 1e-3


def test_spectral_norm_bound_is_an_upper_bound() -> None:
    a = torch.stack([_gaussian(6, 3, seed=s) for s in range(5)] + [torch.ones(6, 3)])
    exact = torch.linalg.matrix_norm(a, 2)
    bound = spectral_norm_bound(a)
    assert torch.all(bound >= exact * (1 - 1e-15))
    assert bound[-1] == pytest.approx(exact[-1])  # rank one: every bound is tight


@pytest.mark.parametrize("method", ["qr", "bjorck"])
@pytest.mark.parametrize("rank", [0, 1, 3, 6])
def test_projectors_are_the_reference_projectors(method: str, rank: int) -> None:
    r = _gaussian(2, 6, rank)
    basis = orthonormalize(r, method, 40)  # type: ignore[arg-type]
    p = basis @ basis.mT
    for i in range(2):
        expected = reference_projector(r[i].numpy(), method="qr")
        assert np.abs(p[i].numpy() - expected).max() <= FLOAT64_KERNEL_AGREEMENT
        assert_symmetric_projector(p[i].numpy(), rank=rank)


@pytest.mark.parametrize("method", ["qr", "bjorck"])
@pytest.mark.parametrize("rank", [0, 2, 5])
def test_projectors_function_is_q_q_transposed(method: str, rank: int) -> None:
    r = _gaussian(3, 5, rank, dtype=torch.float32)
    basis = orthonormalize(r, method, 40, dtype=torch.float64)  # type: ignore[arg-type]
    p = projectors(r, method, 40)  # type: ignore[arg-type]
    assert p.dtype == torch.float64
    assert p.shape == (3, 5, 5)
    assert torch.abs(p - basis @ basis.mT).max() <= FLOAT64_KERNEL_AGREEMENT


@pytest.mark.parametrize("shape", [(5, 2), (3, 6, 3), (4, 4)])
def test_projector_closed_form_backward_matches_finite_differences(
    shape: tuple[int, ...],
) -> None:
    a = _gaussian(*shape, seed=len(shape)).requires_grad_()
    assert torch.autograd.gradcheck(projectors, (a,))


@pytest.mark.parametrize("shape", [(5, 5), (7, 3), (2, 6, 4)])
def test_polar_factor_is_u_v_transposed_and_its_backward_matches_finite_differences(
    shape: tuple[int, ...],
) -> None:
    a = _gaussian(*shape, seed=sum(shape))
    u, _, vh = torch.linalg.svd(a, full_matrices=False)
    assert torch.abs(polar_orthonormalize(a) - u @ vh).max() <= FLOAT64_KERNEL_AGREEMENT
    assert torch.autograd.gradcheck(polar_orthonormalize, (a.requires_grad_(),))


def test_polar_backward_is_finite_at_repeated_singular_values() -> None:
    """At an orthonormal matrix every singular value is 1: the closed form divides by
    ``s_i + s_j``, never by ``s_i - s_j``, and matches finite differences there too."""
    a = torch.linalg.qr(_gaussian(6, 4))[0].requires_grad_()
    assert torch.autograd.gradcheck(polar_orthonormalize, (a,))


@pytest.mark.parametrize("condition", [1.0, 0.9 * GRAM_POLAR_MAX_CONDITION])
def test_gram_route_agrees_with_the_svd_up_to_its_error_budget(condition: float) -> None:
    """Within the Gram route's range its error ``eps64 * kappa**2`` stays far below float32
    rounding; the oracle is the SVD of the same matrix."""
    a = _ill_conditioned(40, 12, condition, seed=3)
    u, _, vh = torch.linalg.svd(a, full_matrices=False)
    difference = torch.abs(polar_orthonormalize(a) - u @ vh).max()
    assert difference <= 100 * torch.finfo(torch.float64).eps * max(condition, 1.0) ** 2


def test_polar_backward_of_an_ill_conditioned_matrix_matches_finite_differences() -> None:
    """Beyond the Gram route's range (the SVD route) the same closed form holds."""
    a = _ill_conditioned(6, 3, 2 * GRAM_POLAR_MAX_CONDITION).requires_grad_()
    assert torch.autograd.gradcheck(polar_orthonormalize, (a,), eps=1e-9, atol=1e-4)


def test_polar_factor_under_vmap_equals_the_factor_of_each_matrix() -> None:
    """``torch.func.vmap`` takes the SVD route (no branch on batched values)."""
    stack = torch.stack([_ill_conditioned(7, 3, c, seed=1) for c in (2.0, 1e5)])
    batched = torch.func.vmap(polar_orthonormalize)(stack)
    one_by_one = torch.stack([polar_orthonormalize(a) for a in stack])
    assert torch.abs(batched - one_by_one).max() <= FLOAT64_KERNEL_AGREEMENT


def test_float32_polar_gradient_agrees_with_the_float64_one() -> None:
    a = _ill_conditioned(30, 10, 20.0, seed=2)
    weights = _gaussian(30, 10, seed=4)
    gradients = []
    for dtype in (torch.float32, torch.float64):
        leaf = a.to(dtype).requires_grad_()
        (polar_orthonormalize(leaf) * weights.to(dtype)).sum().backward()
        assert leaf.grad is not None
        assert leaf.grad.dtype == dtype
        gradients.append(leaf.grad.double())
    scale = torch.abs(gradients[1]).max()
    assert torch.abs(gradients[0] - gradients[1]).max() <= 1e-5 * scale


@pytest.mark.parametrize("function", ["qr", "projectors"])
def test_float32_qr_gradients_run_in_float32_and_agree_with_float64(function: str) -> None:
    a = _ill_conditioned(2 * 24, 12, 20.0, seed=3).reshape(2, 24, 12)
    gradients = []
    for dtype in (torch.float32, torch.float64):
        leaf = a.to(dtype).requires_grad_()
        out = qr_orthonormalize(leaf) if function == "qr" else projectors(leaf, dtype=dtype)
        assert out.dtype == dtype
        # one node from the leaf to the output: no conversion that would run backward in float64
        assert out.grad_fn is not None
        assert out.grad_fn.next_functions[0][0].variable is leaf
        (out * _gaussian(*out.shape, seed=5).to(dtype)).sum().backward()
        assert leaf.grad is not None
        assert leaf.grad.dtype == dtype
        gradients.append(leaf.grad.double())
    scale = torch.abs(gradients[1]).max()
    assert torch.abs(gradients[0] - gradients[1]).max() <= 1e-5 * scale


def test_projectors_return_the_requested_dtype_from_the_float64_product() -> None:
    r = _gaussian(3, 6, 2, dtype=torch.float32)
    wide = projectors(r)
    assert wide.dtype == torch.float64
    assert torch.equal(projectors(r, dtype=torch.float32), wide.float())


def test_polar_factor_of_an_ill_conditioned_matrix() -> None:
    """kappa = 1e5 (the SVD route): the factor is orthonormal to float32 rounding."""
    a = _ill_conditioned(8, 4, 1e5).float()
    q = polar_orthonormalize(a)
    assert q.dtype == torch.float32
    assert_orthonormal_columns(q.double().numpy(), dtype=np.float32)
    u, _, vh = torch.linalg.svd(a.double(), full_matrices=False)
    assert torch.abs(q.double() - u @ vh).max() <= 4 * torch.finfo(torch.float32).eps


def test_gradients_flow_through_both_methods() -> None:
    for method in ("qr", "bjorck"):
        r = _gaussian(5, 2).requires_grad_()
        basis = orthonormalize(r, method, 20)  # type: ignore[arg-type]
        (basis @ basis.mT * _gaussian(5, 5, seed=3)).sum().backward()
        assert r.grad is not None
        assert torch.count_nonzero(r.grad) == r.numel()


BAD = [
    ("wide", lambda: qr_orthonormalize(torch.zeros(2, 3)), InvalidArgumentError, "tall"),
    ("vector", lambda: bjorck(torch.zeros(3), 1), InvalidArgumentError, "tall"),
    (
        "integer",
        lambda: qr_orthonormalize(torch.zeros(3, 2, dtype=torch.int64)),
        InvalidTypeError,
        "floating",
    ),
    ("not-a-tensor", lambda: bjorck(np.zeros((3, 2)), 1), InvalidTypeError, "torch.Tensor"),  # type: ignore[arg-type]
    ("negative-iters", lambda: bjorck(torch.zeros(3, 2), -1), InvalidArgumentError, "iters=-1"),
    ("order-0", lambda: bjorck(torch.zeros(3, 2), 1, 0), InvalidArgumentError, "order=0"),
    (
        "method",
        lambda: orthonormalize(torch.zeros(3, 2), "svd"),
        InvalidArgumentError,
        "method='svd'",
    ),  # type: ignore[arg-type]
    (
        "dtype",
        lambda: qr_orthonormalize(torch.zeros(3, 2), torch.int32),
        InvalidTypeError,
        "dtype=torch.int32",
    ),
    (
        "projector-dtype",
        lambda: projectors(torch.zeros(3, 2), dtype=torch.int64),
        InvalidTypeError,
        "dtype=torch.int64",
    ),
]


@pytest.mark.parametrize(("call", "error", "match"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_arguments(call: object, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        call()  # type: ignore[operator]
