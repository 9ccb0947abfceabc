r"""Clean, PGD-robust and certified accuracy of a network on a data set, checked for consistency.

For each test example (docs/training.rst, Note [three accuracies]):

- *clean*: the prediction is right;
- *PGD-robust*: still right after an L2 PGD attack of radius :math:`\varepsilon`
  (:func:`gnpcheck.certify.pgd_l2`; an empirical *upper* bound on robust accuracy);
- *certified*: the logit margin exceeds :math:`\sqrt 2\, L\, \varepsilon` with ``L`` the
  larger of the claimed and measured Lipschitz bounds (a *lower* bound).

A certified example cannot be attacked, and an attacked example starts from the clean one,
so per example certified implies PGD-robust implies clean. A certified example that PGD
breaks proves the Lipschitz bound wrong: it is counted in ``violations``.
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from gnpcheck.certify.attack import pgd_l2
from gnpcheck.certify.lipschitz import ModelBound
from gnpcheck.certify.margin import certified, logit_margin
from gnpcheck.errors import InvalidArgumentError
from gnpcheck.nn.precision import parameter_dtypes, require_certifiable_arithmetic

__all__ = ["RobustnessReport", "evaluate_robustness"]


@dataclass(frozen=True)
class RobustnessReport:
    """Counts over ``examples`` test points at radius ``epsilon``.

    Attributes:
        examples: number of test points.
        epsilon: the L2 radius (in the space the network sees: ``[0, 1]`` pixels).
        lipschitz: the bound certificates used.
        lipschitz_source: ``"claimed"`` or ``"measured"`` (the larger).
        clean, pgd, certified: correctly classified; robust to PGD; certified.
        violations: certified yet broken by PGD (0 unless the bound is wrong).
        pgd_steps, pgd_restarts: the attack's budget.
    """

    examples: int
    epsilon: float
    lipschitz: float
    lipschitz_source: str
    clean: int
    pgd: int
    certified: int
    violations: int
    pgd_steps: int
    pgd_restarts: int

    def accuracy(self, count: int) -> float:
        """``count`` as a percentage of :attr:`examples`."""
        return 100.0 * count / self.examples

    @property
    def consistent(self) -> bool:
        """Whether certified <= PGD-robust <= clean held example by example."""
        return self.violations == 0 and self.certified <= self.pgd <= self.clean

    def to_text(self) -> str:
        """A short table of the three accuracies."""
        return "\n".join(
            [
                f"examples: {self.examples}, epsilon (L2, [0,1] pixels): {self.epsilon:g}",
                f"clean accuracy       {self.accuracy(self.clean):6.2f} %",
                f"PGD-robust accuracy  {self.accuracy(self.pgd):6.2f} %  "
                f"(L2 PGD, {self.pgd_steps} steps, {self.pgd_restarts} restarts)",
                f"certified accuracy   {self.accuracy(self.certified):6.2f} %  "
                f"(margin > sqrt(2) L eps, L = {self.lipschitz:.6f}, {self.lipschitz_source})",
                "certified <= PGD-robust <= clean: "
                + ("holds" if self.consistent else f"VIOLATED ({self.violations} examples)"),
            ]
        )

    def to_dict(self) -> dict[str, Any]:
        """The counts, settings and the three accuracies in percent."""
        return {
            **asdict(self),
            "clean_accuracy": self.accuracy(self.clean),
            "pgd_accuracy": self.accuracy(self.pgd),
            "certified_accuracy": self.accuracy(self.certified),
            "consistent": self.consistent,
        }


def evaluate_robustness(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    epsilon: float,
    bound: ModelBound,
    *,
    pgd_steps: int = 50,
    pgd_restarts: int = 3,
    batch_size: int = 1000,
    seed: int = 0,
) -> RobustnessReport:
    """Clean, PGD-robust and certified counts of ``model`` on ``images`` (in ``[0, 1]``).

    The attack runs on a frozen copy of the model in evaluation mode (the caller's model is
    not touched), seeded by ``seed``.

    Raises:
        InvalidArgumentError: no examples, mismatched labels, ``epsilon < 0``,
            ``batch_size < 1``.
        UnsupportedOperationError: float16 or bfloat16 parameters or an active autocast; a
            float32 model whose device PyTorch's settings run in reduced precision
            (docs/layers.rst, Note [float32 products]).
    """
    if images.shape[0] == 0 or labels.shape != (images.shape[0],):
        raise InvalidArgumentError(
            f"images has shape {tuple(images.shape)} and labels {tuple(labels.shape)}, but they "
            "must hold the same positive number of examples"
        )
    if not 0 <= epsilon < math.inf or batch_size < 1:
        raise InvalidArgumentError(
            f"epsilon={epsilon}, batch_size={batch_size}, but epsilon must be >= 0 and "
            "batch_size >= 1"
        )
    frozen = copy.deepcopy(model).eval().requires_grad_(False)
    device = next(frozen.parameters()).device
    require_certifiable_arithmetic(parameter_dtypes(frozen), device, "a certificate")
    generator = torch.Generator().manual_seed(seed)
    counts = torch.zeros(4, dtype=torch.long)
    for start in range(0, images.shape[0], batch_size):
        x = images[start : start + batch_size].to(device)
        y = labels[start : start + batch_size].to(device)
        with torch.no_grad():
            logits = frozen(x)
        clean = logit_margin(logits, y) > 0
        sure = certified(logits, y, epsilon, bound.certified_with)
        robust = pgd_l2(frozen, x, y, epsilon, pgd_steps, pgd_restarts, generator=generator)
        batch = torch.stack([clean, robust, sure, sure & ~robust]).sum(dim=1)
        counts += batch.cpu()
    clean_count, pgd_count, certified_count, violations = (int(c) for c in counts)
    return RobustnessReport(
        examples=int(images.shape[0]),
        epsilon=float(epsilon),
        lipschitz=bound.certified_with,
        lipschitz_source=bound.source,
        clean=clean_count,
        pgd=pgd_count,
        certified=certified_count,
        violations=violations,
        pgd_steps=pgd_steps,
        pgd_restarts=pgd_restarts,
    )
