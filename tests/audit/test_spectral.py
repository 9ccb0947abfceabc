"""Spectral claims of linear targets: the three routes against independent oracles.

Oracles: the reference spectrum of the kernel the layer was built from, and the SVD of the
layer's Jacobian computed by ``torch.autograd.functional.jacobian``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from gnpcheck.audit import analysis, audit
from gnpcheck.reference import circulant_spectrum, from_torch_layout
from gnpcheck.tolerances import orthogonality_tolerance

from ._targets import make_orthogonal_conv, orthogonal_conv

SPECTRAL = "lipschitz,orthogonal,gnp"


def _jacobian_singular_values(module: nn.Module, shape: tuple[int, ...]) -> np.ndarray:
    x = torch.zeros(1, *shape, dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(lambda t: module(t).reshape(-1), x)
    return np.linalg.svd(jac.reshape(-1, x.numel()).numpy(), compute_uv=False)


def test_orthogonal_circular_conv_holds_by_the_bound() -> None:
    report = audit(orthogonal_conv(), (4, 8, 8), claims=SPECTRAL)
    assert report.passed, report.to_text()
    assert report.structure.startswith("circular convolution")
    for claim in ("orthogonal", "gnp"):
        result = report.result(claim)
        assert result.evidence == "bound"
        assert result.tolerance == orthogonality_tolerance(torch.float64, 4 * 64)
        assert result.measured is not None
        assert result.measured <= result.tolerance


def test_spec_strings_and_factories_are_targets() -> None:
    by_spec = audit("audit._targets:make_orthogonal_conv", (4, 8, 8), claims="orthogonal")
    by_factory = audit(make_orthogonal_conv, (4, 8, 8), claims="orthogonal")
    assert by_spec.passed
    assert by_factory.passed
    assert by_spec.target == "audit._targets:make_orthogonal_conv"


@pytest.mark.parametrize("scale", [1.001, 0.999])
def test_scaled_kernel_is_measured_exactly(scale: float) -> None:
    conv = orthogonal_conv(seed=5, scale=scale)
    report = audit(conv, (4, 8, 8), claims=SPECTRAL)
    expected = circulant_spectrum(from_torch_layout(conv.weight.detach().numpy()), (8, 8))
    orthogonal = report.result("orthogonal")
    assert orthogonal.verdict == "violated"
    assert orthogonal.evidence == "exact"
    assert orthogonal.measured == pytest.approx(float(np.max(np.abs(expected - 1))), abs=1e-14)
    assert report.verdict("lipschitz") == ("violated" if scale > 1 else "holds")
    assert report.result("lipschitz").measured == pytest.approx(float(expected.max()), abs=1e-14)
    # The counterexample is a real input pair whose ratio is the worst singular value.
    counterexample = report.counterexample("orthogonal")
    assert counterexample is not None
    assert counterexample.kind == "pair"
    assert counterexample.measured == pytest.approx(scale, abs=1e-12)
    replay = counterexample.replay(conv)
    assert replay.reproduced
    assert replay.measured == pytest.approx(scale, abs=1e-12)
    assert not counterexample.replay(orthogonal_conv(seed=5)).reproduced


def test_lipschitz_against_a_stated_constant() -> None:
    conv = orthogonal_conv(seed=6, scale=2.0)
    assert audit(conv, (4, 8, 8), claims="lipschitz", lipschitz_constant=2.0).passed
    report = audit(conv, (4, 8, 8), claims="lipschitz", lipschitz_constant=1.999)
    assert report.verdict("lipschitz") == "violated"
    assert report.lipschitz_constant == 1.999


def test_more_outputs_than_inputs_is_not_gnp() -> None:
    torch.manual_seed(0)
    wide = nn.Conv2d(2, 4, 1, bias=False).double()
    with torch.no_grad():
        q, _ = torch.linalg.qr(torch.randn(4, 2, dtype=torch.float64))
        wide.weight.copy_(q.reshape(4, 2, 1, 1))
    report = audit(wide, (2, 6, 6), claims=SPECTRAL)
    assert report.verdict("orthogonal") == "holds"  # orthonormal columns: an isometry
    gnp = report.result("gnp")
    assert gnp.verdict == "violated"
    assert "null space" in gnp.detail
    counterexample = gnp.counterexample
    assert counterexample is not None
    assert counterexample.kind == "cotangent"
    assert counterexample.measured < 1e-12  # J^T g = 0
    assert counterexample.replay(wide).reproduced


def test_zero_padded_conv_uses_the_dense_matrix() -> None:
    conv = orthogonal_conv(seed=7, padding_mode="zeros", bias=False)
    report = audit(conv, (4, 6, 6), claims=SPECTRAL)
    assert report.structure.startswith("linear map (affine; 144 x 144 matrix")
    sigma = _jacobian_singular_values(conv, (4, 6, 6))
    lipschitz = report.result("lipschitz")
    assert lipschitz.evidence == "exact"
    assert lipschitz.measured == pytest.approx(float(sigma.max()), abs=1e-13)
    assert report.verdict("orthogonal") == "violated"  # zero padding loses energy at borders
    assert report.result("orthogonal").measured == pytest.approx(
        float(np.abs(sigma - 1).max()), abs=1e-13
    )


def test_matrix_free_route_certifies_or_finds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(analysis, "DENSE_LIMIT", 16)
    small = orthogonal_conv(seed=8, scale=0.5, padding_mode="zeros")
    report = audit(small, (4, 6, 6), claims="lipschitz")
    result = report.result("lipschitz")
    assert report.structure.endswith("matrix-free)")
    assert result.verdict == "holds"
    assert result.evidence == "probabilistic"
    sigma = _jacobian_singular_values(small, (4, 6, 6)).max()
    assert result.measured is not None
    assert sigma <= result.measured <= 1.0
    large = orthogonal_conv(seed=8, scale=1.5, padding_mode="zeros")
    report = audit(large, (4, 6, 6), claims="lipschitz,orthogonal,gnp")
    for claim in ("lipschitz", "orthogonal", "gnp"):
        assert report.verdict(claim) == "violated", report.to_text()
        counterexample = report.counterexample(claim)
        assert counterexample is not None
        assert counterexample.replay(large).reproduced
    true_max = _jacobian_singular_values(large, (4, 6, 6)).max()
    found = report.counterexample("lipschitz")
    assert found is not None
    assert 1.0 < found.measured <= true_max * (1 + 1e-12)


def test_float32_tolerances_scale_with_the_dtype() -> None:
    report = audit(orthogonal_conv(seed=9), (4, 8, 8), claims="orthogonal", dtype=torch.float32)
    result = report.result("orthogonal")
    assert result.verdict == "holds"
    assert result.tolerance == orthogonality_tolerance(torch.float32, 4 * 64)
    assert report.dtype == "float32"
