"""The result of a Wasserstein-1 estimate (:func:`gnpcheck.wasserstein.estimate`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from torch import nn

from gnpcheck.certify.lipschitz import ModelBound

__all__ = ["WassersteinEstimate"]


@dataclass(frozen=True)
class WassersteinEstimate:
    r"""A held-out critic gap and the Wasserstein-1 lower bound it gives.

    Attributes:
        gap: :math:`\bar f(p) - \bar f(q)` of the trained critic on the held-out samples.
        standard_error: :math:`\sqrt{s_p^2 / n_p + s_q^2 / n_q}` of ``gap`` (sample
            variances of the held-out scores, ``n - 1`` in the denominator).
        lipschitz: the claimed and measured Lipschitz bounds of the trained critic.
        lower_bound: ``gap / lipschitz.certified_with``, an estimate of a lower bound on
            :math:`W_1(p, q)`.
        lower_bound_error: ``standard_error / lipschitz.certified_with``.
        history: ``(step, held-out gap)`` at step 0, every ``eval_every`` steps and at the end.
        steps: the optimizer steps taken.
        stopped: ``"steps"`` (all taken) or ``"time limit"``.
        seconds: wall-clock seconds of the whole estimate.
        critic: the trained critic, in evaluation mode.
        train_sizes: training samples of ``(p, q)``.
        heldout_sizes: held-out samples of ``(p, q)``.
        truncated: whether ``max_samples`` left samples of ``(p, q)`` unread.
    """

    gap: float
    standard_error: float
    lipschitz: ModelBound
    lower_bound: float
    lower_bound_error: float
    history: tuple[tuple[int, float], ...]
    steps: int
    stopped: Literal["steps", "time limit"]
    seconds: float
    critic: nn.Module
    train_sizes: tuple[int, int]
    heldout_sizes: tuple[int, int]
    truncated: tuple[bool, bool]

    def describe(self) -> str:
        """A few lines: the lower bound, the gap, the Lipschitz bound, the samples, the run."""
        cut = [name for name, flag in zip("pq", self.truncated, strict=True) if flag]
        samples = (
            f"samples: train p {self.train_sizes[0]}, q {self.train_sizes[1]}; held out "
            f"p {self.heldout_sizes[0]}, q {self.heldout_sizes[1]}"
        )
        if cut:
            samples += f" (max_samples cut {' and '.join(cut)})"
        return "\n".join(
            [
                f"W1 lower bound: {self.lower_bound:.6f} +- {self.lower_bound_error:.6f} "
                "(one standard error)",
                f"held-out gap E_p f - E_q f: {self.gap:.6f} +- {self.standard_error:.6f}",
                self.lipschitz.describe(),
                samples,
                f"training: {self.steps} steps in {self.seconds:.1f} s, stopped by {self.stopped}",
            ]
        )
