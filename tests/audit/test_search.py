"""Nonlinear targets: searches find what is there and report evidence, not proof, otherwise."""

from __future__ import annotations

import math

import torch
from torch import nn

from gnpcheck.audit import audit
from gnpcheck.audit.deadline import Deadline
from gnpcheck.audit.sampler import Sampler
from gnpcheck.audit.search import _pair_excess, find_nonfinite, structured_inputs

from ._targets import orthogonal_conv


class _MaxMin(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = x.chunk(2, dim=1)
        return torch.cat([torch.maximum(a, b), torch.minimum(a, b)], dim=1)


def test_orthogonal_conv_and_maxmin_hold() -> None:
    net = nn.Sequential(orthogonal_conv(seed=1), _MaxMin(), orthogonal_conv(seed=2))
    report = audit(net, (4, 6, 6), claims="lipschitz,gnp")
    assert report.passed, report.to_text()
    assert report.structure.startswith("nonlinear map")
    lipschitz = report.result("lipschitz")
    assert lipschitz.evidence == "search"
    assert "no violation found" in lipschitz.detail
    assert lipschitz.measured is not None
    assert 0.9 < lipschitz.measured <= 1 + 1e-12
    assert report.result("gnp").evidence == "search"


class _ConcatenatedReLU(nn.Module):
    """``[relu(x), relu(-x)]``: 1-Lipschitz, GNP almost everywhere, Jacobian 0 at ``x = 0``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([torch.relu(x), torch.relu(-x)], dim=1)


def test_a_map_with_a_zero_jacobian_at_zero_is_searched_not_crashed() -> None:
    # the local power iteration ends at 0 on the all-zero structured input: the pair along
    # it keeps its random direction instead of collapsing to (x, x)
    report = audit(_ConcatenatedReLU(), (16,), claims="lipschitz")
    assert report.target_error is None
    result = report.result("lipschitz")
    assert result.verdict == "holds", report.to_text()
    assert result.measured is not None
    assert 0.9 < result.measured <= 1 + 1e-12


def test_pairs_of_equal_inputs_are_no_evidence() -> None:
    x = torch.randn(3, 4, dtype=torch.float64)
    y = x.clone()
    y[1] += 0.5
    ratio, excess = _pair_excess(lambda t: 2 * t, x, y, 1.0, torch.float64)
    assert ratio.tolist()[0::2] == [0.0, 0.0]
    assert math.isclose(float(ratio[1]), 2.0)
    assert excess.tolist()[0::2] == [-math.inf, -math.inf]
    assert excess[1] > 0


def test_a_doubled_relu_network_is_caught_with_a_pair() -> None:
    net = nn.Sequential(orthogonal_conv(seed=3, scale=2.0), nn.ReLU())
    report = audit(net, (4, 6, 6), claims="lipschitz,orthogonal,gnp")
    lipschitz = report.result("lipschitz")
    assert lipschitz.verdict == "violated"
    counterexample = lipschitz.counterexample
    assert counterexample is not None
    assert counterexample.kind == "pair"
    assert 1.0 < counterexample.measured <= 2.0 + 1e-12
    assert counterexample.replay(net).reproduced
    orthogonal = report.result("orthogonal")
    assert orthogonal.verdict == "violated"
    assert "linear" in orthogonal.detail
    assert orthogonal.counterexample is not None
    assert orthogonal.counterexample.kind == "nonlinear"
    assert orthogonal.counterexample.replay(net).reproduced
    gnp = report.result("gnp")
    assert gnp.verdict == "violated"  # ReLU zeroes gradients
    assert gnp.counterexample is not None
    assert gnp.counterexample.replay(net).reproduced


def test_a_slightly_expanding_nonlinear_map_is_found_by_ascent() -> None:
    net = nn.Sequential(orthogonal_conv(seed=4, scale=1.01), _MaxMin())
    report = audit(net, (4, 6, 6), claims="lipschitz")
    assert report.verdict("lipschitz") == "violated"
    counterexample = report.counterexample("lipschitz")
    assert counterexample is not None
    assert counterexample.measured > 1.0


def test_structured_inputs_find_nan_on_a_zeroed_pixel() -> None:
    class NaNOnZeroPixel(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x / x.norm(dim=1, keepdim=True) * x.norm(dim=1, keepdim=True)

    sampler = Sampler(0, (2, 3, 3), torch.float64, torch.device("cpu"))
    net = NaNOnZeroPixel()
    assert not bool(torch.isnan(net(sampler.inputs(64))).any())  # random inputs never do
    found, tried = find_nonfinite(lambda x: net(x), sampler, Deadline(30), 0)
    assert found is not None
    assert tried == structured_inputs(sampler).shape[0]
    assert bool(torch.isnan(net(found.unsqueeze(0))).any())


def test_hypothesis_finds_what_the_structured_inputs_miss() -> None:
    class NaNOnNegativeCorner(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            corner = x[:, 0, 0, 0].reshape(-1, 1, 1, 1)
            return x * torch.where(corner == -2.0, torch.nan, 1.0)

    sampler = Sampler(0, (2, 3, 3), torch.float64, torch.device("cpu"))
    net = NaNOnNegativeCorner()
    assert not bool(torch.isnan(net(structured_inputs(sampler))).any())
    found, _ = find_nonfinite(lambda x: net(x), sampler, Deadline(30), 60)
    assert found is not None
    assert float(found[0, 0, 0]) == -2.0
    # Shrunk by Hypothesis: every other entry is the simplest value, 0.
    assert int((found != 0).sum()) == 1


def test_nan_outputs_violate_lipschitz_with_a_finite_input() -> None:
    class NaNAtZero(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            norm = x.flatten(1).norm(dim=1).reshape(-1, 1, 1, 1)
            return x * (norm / norm)

    report = audit(NaNAtZero(), (2, 4, 4), claims="lipschitz,gnp")
    for claim in ("lipschitz", "gnp"):
        result = report.result(claim)
        assert result.verdict == "violated"
        assert math.isnan(result.measured or 0.0)
        counterexample = result.counterexample
        assert counterexample is not None
        assert counterexample.kind == "nonfinite"
        assert bool(torch.isfinite(counterexample.tensors["x"]).all())
        assert counterexample.replay(NaNAtZero()).reproduced


def test_nearby_pairs_of_a_map_with_a_large_bias_raise_no_false_alarm() -> None:
    """The rounding of f(x) - f(y) scales with the outputs, which a bias makes much larger
    than L ||x||: the pair tolerance uses the outputs' norms."""
    generator = torch.Generator().manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(8, 8, dtype=torch.float64, generator=generator))
    bias = torch.full((8,), 1e4, dtype=torch.float64)

    def affine(z: torch.Tensor) -> torch.Tensor:
        return z @ q + bias

    x = torch.randn(16, 8, dtype=torch.float64, generator=generator)
    y = x + 1e-7 * torch.randn(16, 8, dtype=torch.float64, generator=generator)
    ratio, excess = _pair_excess(affine, x, y, 1.0, torch.float64)
    assert (ratio - 1).abs().max() > 1e-9  # rounding is visible in the ratio ...
    assert excess.max() <= 0  # ... and allowed for
