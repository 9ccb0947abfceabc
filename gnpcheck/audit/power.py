r"""Power iteration with a random start, and a probabilistic certificate for its estimate.

Estimates the largest eigenvalue :math:`\lambda_1` of a symmetric positive semidefinite
operator given only by its action (``J^T J`` of a target, via autograd). The Rayleigh
quotient is always a **lower bound**; with a Gaussian random start it also yields an
**upper bound that fails with probability at most** ``delta`` (docs/audit.rst,
Note [power certificate]):

Let :math:`A` have eigenvalues :math:`1 = \lambda_1 \ge \dots \ge \lambda_n \ge 0` (scale
out :math:`\lambda_1`) and let :math:`z` be the random start in its eigenbasis (i.i.d.
standard normal, as a Gaussian vector is in any orthonormal basis). The quotient after the
iteration is :math:`\xi = \sum_i \lambda_i^{p+1} z_i^2 / \sum_i \lambda_i^p z_i^2`
(``p = 2j`` after ``j`` steps of :math:`A`; ``p = j`` when iterating a symmetric :math:`M`
with :math:`A = M^2`). Then :math:`\xi < 1 - \varepsilon` implies
:math:`\varepsilon z_1^2 < \sum_{i \ge 2} \lambda_i^p (1 - \varepsilon - \lambda_i) z_i^2
\le c_p (1 - \varepsilon)^{p+1} \sum_{i \ge 2} z_i^2` with
:math:`c_p = p^p / (p+1)^{p+1}` (the maximum of :math:`t^p (1 - \varepsilon - t)`), and
:math:`z_1^2 / \|z\|^2 \sim \mathrm{Beta}(1/2, (n-1)/2)`, so

.. math:: P[\xi < (1-\varepsilon)\lambda_1] \le I_{a/(1+a)}\big(\tfrac12, \tfrac{n-1}{2}\big),
          \qquad a = \frac{c_p (1-\varepsilon)^{p+1}}{\varepsilon},

:math:`I` the regularized incomplete beta function. This is a bound of the kind
Kuczyński and Woźniakowski (SIAM J. Matrix Anal. Appl. 13, 1992) proved for the power
method (of order :math:`\sqrt n (1 - \varepsilon)^{k}`), derived here in full so that the
certificate rests on nothing recalled. Checking at every iteration up to ``max_iterations``
is paid for by a union bound: each check uses ``delta / max_iterations``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from scipy.special import betainc

from gnpcheck.audit.deadline import Deadline
from gnpcheck.errors import InvalidArgumentError

__all__ = [
    "PowerResult",
    "Stop",
    "certified_upper",
    "failure_probability",
    "power_iteration",
]

Stop = Literal["exceeded", "certified", "converged", "iterations", "time budget"]


def failure_probability(p: int, epsilon: float, n: int) -> float:
    r"""An upper bound on :math:`P[\xi < (1 - \varepsilon) \lambda_1]` (module docstring).

    Args:
        p: the power of the quotient (``2j`` after ``j`` steps of ``A``).
        epsilon: the relative shortfall, in ``(0, 1)``; ``<= 0`` gives 1, ``>= 1`` gives 0.
        n: the dimension of the operator.
    """
    if p < 0 or n < 1:
        raise InvalidArgumentError(f"p={p}, n={n}, but p must be >= 0 and n >= 1")
    if epsilon <= 0:
        return 1.0
    if epsilon >= 1 or n == 1:
        return 0.0
    log_c = (p * math.log(p) if p > 0 else 0.0) - (p + 1) * math.log(p + 1)
    a = math.exp(log_c + (p + 1) * math.log1p(-epsilon)) / epsilon
    return float(betainc(0.5, (n - 1) / 2.0, a / (1.0 + a)))


def certified_upper(quotient: float, p: int, n: int, delta: float) -> float:
    """The smallest ``U = quotient / (1 - eps)`` with ``failure_probability(p, eps, n) <= delta``.

    With probability at least ``1 - delta`` over the random start, ``lambda_1 <= U``.
    """
    if not 0 < delta < 1:
        raise InvalidArgumentError(f"delta={delta}, but it must be in (0, 1)")
    if failure_probability(p, 1.0 - 1e-15, n) > delta:
        return math.inf
    low, high = 0.0, 1.0 - 1e-15  # failure_probability(low) > delta >= ...(high)
    for _ in range(80):
        middle = 0.5 * (low + high)
        if failure_probability(p, middle, n) > delta:
            low = middle
        else:
            high = middle
    return quotient / (1.0 - high)


@dataclass(frozen=True)
class PowerResult:
    """The outcome of :func:`power_iteration` (eigenvalues of ``A``, not their square roots).

    Attributes:
        lower: the last Rayleigh quotient, a lower bound on ``lambda_1``.
        upper: an upper bound that fails with probability at most ``delta`` (``inf`` if the
            iterations so far cannot certify any).
        delta: the failure probability of ``upper``.
        iterations: applications of the operator.
        vector: the last iterate, unit norm (a witness for ``lower``).
        stopped: why it stopped: the quotient ``"exceeded"`` the threshold, the upper bound
            was ``"certified"`` below it, the quotient ``"converged"``, ``"iterations"`` ran
            out, or the ``"time budget"`` did.
    """

    lower: float
    upper: float
    delta: float
    iterations: int
    vector: torch.Tensor
    stopped: Stop


def power_iteration(
    apply: Callable[[torch.Tensor], torch.Tensor],
    start: torch.Tensor,
    *,
    squared: bool = False,
    threshold: float | None = None,
    delta: float = 1e-6,
    max_iterations: int = 200,
    rtol: float = 1e-10,
    deadline: Deadline | None = None,
) -> PowerResult:
    """Power iteration for the largest eigenvalue of ``A``, from the Gaussian ``start``.

    Args:
        apply: ``v -> A v`` (``squared=False``, ``A`` symmetric PSD) or ``v -> M v`` with
            ``A = M^2`` (``squared=True``, ``M`` symmetric, e.g. ``J^T J - I``).
        start: a standard normal draw, the shape ``apply`` takes.
        squared: see ``apply``.
        threshold: stop once the quotient exceeds it or the certified upper bound is below it.
        delta: total failure probability of the certificate.
        max_iterations: at most this many applications of ``apply``.
        rtol: stop when the quotient changes by less than this, relatively, 3 times running.
        deadline: stop (``stopped="time budget"``) when it passes.
    """
    n = start.numel()
    v = start / torch.linalg.vector_norm(start)
    per_check = delta / max_iterations
    history: list[float] = []
    quotient, upper = 0.0, math.inf
    stopped: Stop = "iterations"
    for j in range(max_iterations):
        if deadline is not None and deadline.expired():
            stopped = "time budget"
            break
        image = apply(v)
        if squared:
            quotient, p = float(torch.linalg.vector_norm(image) ** 2), j
        else:
            quotient, p = float(torch.sum(v * image)), 2 * j
        if not math.isfinite(quotient):
            upper, stopped = math.inf, "exceeded"
            break
        upper = certified_upper(max(quotient, 0.0), p, n, per_check)
        history.append(quotient)
        if threshold is not None and quotient > threshold:
            stopped = "exceeded"
            break
        if threshold is not None and upper <= threshold:
            stopped = "certified"
            break
        if len(history) >= 4 and all(
            abs(history[-i] - history[-i - 1]) <= rtol * abs(history[-1]) for i in (1, 2, 3)
        ):
            stopped = "converged"
            break
        norm = torch.linalg.vector_norm(image)
        if float(norm) == 0.0:
            stopped = "converged"  # A v = 0: the quotient 0 is exact along v
            break
        v = image / norm
    return PowerResult(quotient, upper, delta, len(history), v, stopped)
