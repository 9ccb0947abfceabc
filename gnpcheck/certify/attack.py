r"""An empirical L2 attack (projected gradient descent) as a sanity check of certificates.

PGD (Madry et al., ICLR 2018) in L2: from a random start in the ball, ``steps`` steps of
size ``step_size`` along the normalised gradient of the margin loss, each followed by
projection onto the ball of radius ``epsilon`` and onto the input box ``[low, high]``;
``restarts`` random starts, keeping per example any that succeeds; each restart attacks only
the examples no earlier one broke (misclassified ones are not attacked: the model is assumed
to treat examples independently, as in evaluation mode). A certified example can never be
attacked, so certified accuracy <= PGD-robust accuracy <= clean accuracy.
"""

from __future__ import annotations

import torch
from torch import nn

from gnpcheck.certify.margin import logit_margin
from gnpcheck.errors import InvalidArgumentError

__all__ = ["pgd_l2"]


def _per_example_norm(x: torch.Tensor) -> torch.Tensor:
    norms: torch.Tensor = torch.linalg.vector_norm(x.flatten(1), dim=1).clamp(min=1e-12)
    return norms.view(-1, *([1] * (x.ndim - 1)))


def _project(delta: torch.Tensor, epsilon: float) -> torch.Tensor:
    norms = _per_example_norm(delta)
    return delta * torch.clamp(epsilon / norms, max=1.0)


def pgd_l2(
    model: nn.Module,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    epsilon: float,
    steps: int = 50,
    restarts: int = 3,
    step_size: float | None = None,
    low: float = 0.0,
    high: float = 1.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Boolean per example: still correctly classified after the attack (robust to PGD).

    Args:
        model: the network, called in its current mode (use ``eval()``).
        inputs, labels: a batch, ``inputs`` in ``[low, high]``.
        epsilon: L2 radius. steps, restarts: attack budget (defaults 50 and 3).
        step_size: default ``2.5 * epsilon / steps``.
        generator: for the random starts (reproducible attacks).
    """
    if epsilon < 0 or steps < 1 or restarts < 1:
        raise InvalidArgumentError(
            f"epsilon={epsilon}, steps={steps}, restarts={restarts}, but epsilon must be >= 0 "
            "and steps, restarts >= 1"
        )
    size = 2.5 * epsilon / steps if step_size is None else step_size
    with torch.no_grad():
        robust = logit_margin(model(inputs), labels) > 0
    for _ in range(restarts):
        active = robust.nonzero().squeeze(1)
        if active.numel() == 0:
            break
        x, y = inputs[active], labels[active]
        noise = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
        delta = _project(noise * epsilon, epsilon)
        delta = (x + delta).clamp(low, high) - x
        for _ in range(steps):
            delta.requires_grad_(True)
            margin = logit_margin(model(x + delta), y)
            (gradient,) = torch.autograd.grad(margin.sum(), delta)
            with torch.no_grad():
                delta = delta - size * gradient / _per_example_norm(gradient)
                delta = _project(delta, epsilon)
                delta = (x + delta).clamp(low, high) - x
        with torch.no_grad():
            robust[active] = logit_margin(model(x + delta), y) > 0
    return robust
