"""Forward-mode derivatives (``torch.func.jvp``, ``jacfwd``) of the hand-written Functions.

Oracle: ``gradcheck(check_forward_ad=True)``, which compares the forward-mode Jacobian with
central differences of the function.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from gnpcheck.nn import BCOPConv2d

from ._helpers import HAND_DIFFERENTIATED


@pytest.mark.parametrize(
    ("function", "inputs"),
    [f[1:] for f in HAND_DIFFERENTIATED],
    ids=[f[0] for f in HAND_DIFFERENTIATED],
)
def test_forward_mode_matches_finite_differences(
    function: Callable[..., torch.Tensor], inputs: tuple[torch.Tensor, ...]
) -> None:
    assert torch.autograd.gradcheck(
        function, inputs, check_forward_ad=True, check_batched_forward_grad=False
    )


def test_jacfwd_of_a_layer_equals_jacrev() -> None:
    layer = BCOPConv2d(2, 3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    x = torch.randn(1, 2, 4, 4, dtype=torch.float64)
    parameters = {name: value.detach() for name, value in layer.named_parameters()}

    def output(r_tilde: torch.Tensor) -> torch.Tensor:
        return torch.func.functional_call(layer, {**parameters, "r_tilde": r_tilde}, (x,))

    forward = torch.func.jacfwd(output)(parameters["r_tilde"])
    reverse = torch.func.jacrev(output)(parameters["r_tilde"])
    torch.testing.assert_close(forward, reverse, rtol=1e-10, atol=1e-12)
