"""The one-gather unshuffle + circular padding against PyTorch's ``pixel_unshuffle`` and
circular ``F.pad`` (the independent oracle), values and gradients."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from gnpcheck.errors import InvalidArgumentError
from gnpcheck.nn.circular import circular_source_positions, unshuffle_circular_pad
from gnpcheck.nn.downsampling import unshuffle

CASES = [
    ((2, 3, 12, 12), 1, (1, 1, 1, 1)),
    ((2, 3, 12, 12), 2, (0, 1, 0, 1)),
    ((2, 3, 12, 12), 3, (1, 2, 0, 1)),
    ((1, 2, 6, 8), 2, (2, 1, 0, 3)),
    ((2, 3, 12), 1, (3, 3)),
    ((2, 3, 12), 2, (0, 1)),
    ((2, 3, 12), 4, (1, 2)),
]


def _oracle(x: torch.Tensor, stride: int, widths: tuple[int, ...]) -> torch.Tensor:
    return F.pad(unshuffle(x, stride, x.ndim - 2), widths, mode="circular")


@pytest.mark.parametrize(("shape", "stride", "widths"), CASES)
def test_values_and_gradients_equal_unshuffle_then_circular_pad(
    shape: tuple[int, ...], stride: int, widths: tuple[int, ...]
) -> None:
    x = torch.randn(*shape, dtype=torch.float64, requires_grad=True)
    ours, expected = unshuffle_circular_pad(x, stride, widths), _oracle(x, stride, widths)
    assert ours.shape == expected.shape
    assert torch.equal(ours, expected)
    with torch.no_grad():  # without a stride: F.pad itself
        assert torch.equal(unshuffle_circular_pad(x, stride, widths), expected)
    g = torch.randn_like(ours)
    (ours_grad,) = torch.autograd.grad(ours, x, g)
    (expected_grad,) = torch.autograd.grad(expected, x, g)
    torch.testing.assert_close(ours_grad, expected_grad, rtol=0, atol=1e-14)


def test_second_derivatives_exist() -> None:
    """Gradient penalties and the audit's Jacobian-vector products differentiate twice."""
    x = torch.randn(1, 2, 4, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradgradcheck(lambda z: unshuffle_circular_pad(z, 2, (0, 1, 0, 1)), (x,))


def test_every_input_position_is_copied_at_least_once() -> None:
    """Padding only repeats values: the gather reaches every input position."""
    source = circular_source_positions((6, 8), 2, (1, 1, 1, 1))
    assert source.shape == (4, 5, 6)
    assert set(source.reshape(-1).tolist()) == set(range(48))


@pytest.mark.parametrize(
    ("spatial", "stride", "widths", "match"),
    [((6, 6), 1, (1, 1), "two widths per spatial axis"), ((6, 7), 2, (0, 1, 0, 1), "stride=2")],
)
def test_bad_arguments_are_named(
    spatial: tuple[int, ...], stride: int, widths: tuple[int, ...], match: str
) -> None:
    with pytest.raises(InvalidArgumentError, match=match):
        circular_source_positions(spatial, stride, widths)
