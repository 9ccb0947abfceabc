r"""Margin certificates and the multi-class hinge losses (docs, Note [certificate]).

For a network :math:`f` that is :math:`L`-Lipschitz in the L2 norm, every logit difference
:math:`f_y - f_j` is :math:`\sqrt{2} L`-Lipschitz (the map :math:`u \mapsto u_y - u_j` has
norm :math:`\sqrt 2`). So if the margin :math:`M(x) = f_y(x) - \max_{j \ne y} f_j(x)`
exceeds :math:`\sqrt{2}\, L\, \varepsilon`, no perturbation of L2 norm at most
:math:`\varepsilon` changes the prediction (Tsuzuku, Sato and Sugiyama, NeurIPS 2018;
Li et al., NeurIPS 2019, Section 5).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from gnpcheck.errors import InvalidArgumentError

__all__ = [
    "certified",
    "certified_radius",
    "logit_margin",
    "max_margin_hinge_loss",
    "multiclass_hinge_loss",
]


def _check_logits(logits: torch.Tensor, labels: torch.Tensor) -> None:
    if logits.ndim != 2 or logits.shape[1] < 2:
        raise InvalidArgumentError(
            f"logits has shape {tuple(logits.shape)}, but it must be (batch, classes >= 2)"
        )
    if labels.shape != (logits.shape[0],):
        raise InvalidArgumentError(
            f"labels has shape {tuple(labels.shape)}, but logits need ({logits.shape[0]},)"
        )


def logit_margin(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``f_y(x) - max_{j != y} f_j(x)`` per example (negative when misclassified)."""
    _check_logits(logits, labels)
    true = logits.gather(1, labels[:, None]).squeeze(1)
    others = logits.scatter(1, labels[:, None], float("-inf"))
    return true - others.max(dim=1).values


def certified(
    logits: torch.Tensor, labels: torch.Tensor, epsilon: float, lipschitz: float
) -> torch.Tensor:
    """Boolean per example: correct and certified robust at L2 radius ``epsilon``."""
    if epsilon < 0 or lipschitz <= 0 or not math.isfinite(lipschitz):
        raise InvalidArgumentError(
            f"epsilon={epsilon}, lipschitz={lipschitz}, but epsilon must be >= 0 and lipschitz finite > 0"
        )
    return logit_margin(logits, labels) > math.sqrt(2.0) * lipschitz * epsilon


def certified_radius(logits: torch.Tensor, labels: torch.Tensor, lipschitz: float) -> torch.Tensor:
    """The largest certified radius ``max(M, 0) / (sqrt(2) L)`` per example."""
    if lipschitz <= 0 or not math.isfinite(lipschitz):
        raise InvalidArgumentError(f"lipschitz={lipschitz}, but it must be finite and > 0")
    return logit_margin(logits, labels).clamp(min=0) / (math.sqrt(2.0) * lipschitz)


def multiclass_hinge_loss(
    logits: torch.Tensor, labels: torch.Tensor, margin: float
) -> torch.Tensor:
    r"""Mean over the batch of :math:`\frac{1}{C}\sum_{j \ne y} \max(0, m - (f_y - f_j))`.

    This is ``torch.nn.functional.multi_margin_loss``. With ``margin = sqrt(2) * eps_train``
    a zero loss certifies radius ``eps_train`` for a 1-Lipschitz network.
    """
    _check_logits(logits, labels)
    if margin < 0:
        raise InvalidArgumentError(f"margin={margin}, but it must be >= 0")
    return F.multi_margin_loss(logits, labels, margin=margin)


def max_margin_hinge_loss(
    logits: torch.Tensor, labels: torch.Tensor, margin: float
) -> torch.Tensor:
    r"""Mean over the batch of :math:`\max(0, m - (f_y - \max_{j \ne y} f_j))`.

    The Crammer–Singer multi-class hinge: it penalizes the certificate's own margin
    (:func:`logit_margin`), so only the strongest competitor of each example receives a
    gradient, where :func:`multiclass_hinge_loss` spreads it over every class inside the
    margin. With ``margin = sqrt(2) * eps_train`` a zero loss certifies radius ``eps_train``
    for a 1-Lipschitz network.
    """
    if margin < 0:
        raise InvalidArgumentError(f"margin={margin}, but it must be >= 0")
    return torch.relu(margin - logit_margin(logits, labels)).mean()
