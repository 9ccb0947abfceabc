"""Per-example gradients by ``torch.func`` (``vmap`` over ``grad``) equal the gradients of the
examples taken one at a time: the hand-written backwards hold under ``vmap``.

Oracle: ``loss.backward()`` per example, in plain autograd.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gnpcheck.nn import BCOPConv1d, BCOPConv2d, BjorckLinear

EXAMPLES = 3


def _layers() -> list[object]:
    options = {"dtype": torch.float64, "generator": torch.Generator().manual_seed(0)}
    cases = [
        ("qr", BCOPConv2d(4, 4, 3, **options), (4, 6, 6)),
        ("bjorck", BCOPConv2d(4, 4, 3, orthogonalizer="bjorck", **options), (4, 6, 6)),
        ("fewer-in", BCOPConv2d(3, 5, 4, **options), (3, 6, 6)),
        ("fewer-out", BCOPConv2d(5, 3, 3, **options), (5, 6, 6)),
        ("strided", BCOPConv2d(2, 8, 4, stride=2, **options), (2, 6, 6)),
        ("zeros", BCOPConv2d(3, 3, 3, padding="same", **options), (3, 6, 6)),
        ("1d", BCOPConv1d(4, 6, 4, stride=2, **options), (4, 8)),
        ("linear-polar", BjorckLinear(6, 4, orthogonalizer="polar", **options), (6,)),
        ("linear-bjorck", BjorckLinear(6, 4, **options), (6,)),
    ]
    return [pytest.param(layer, shape, id=name) for name, layer, shape in cases]


@pytest.mark.parametrize(("layer", "shape"), _layers())
def test_vmap_of_grad_equals_one_example_at_a_time(layer: nn.Module, shape: tuple[int]) -> None:
    x = torch.randn(EXAMPLES, *shape, dtype=torch.float64, generator=torch.Generator())
    target = torch.randn_like(layer(x))

    def loss(
        parameters: dict[str, torch.Tensor], example: torch.Tensor, weights: torch.Tensor
    ) -> torch.Tensor:
        output = torch.func.functional_call(layer, parameters, (example[None],))
        return (output[0] * weights).sum()

    detached = {name: value.detach() for name, value in layer.named_parameters()}
    batched = torch.func.vmap(torch.func.grad(loss), in_dims=(None, 0, 0))(detached, x, target)
    for example in range(EXAMPLES):
        layer.zero_grad()
        loss(dict(layer.named_parameters()), x[example], target[example]).backward()
        for name, value in layer.named_parameters():
            assert value.grad is not None
            assert value.grad.abs().max() > 0, name
            torch.testing.assert_close(batched[name][example], value.grad, rtol=1e-9, atol=1e-12)
