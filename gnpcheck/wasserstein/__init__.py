r"""Wasserstein-1 estimation with verified critics (docs/wasserstein.rst).

:func:`build_critic` builds a Lipschitz critic (conv with BCOP, RKO, OSSN or SVCM layers, or
fully connected Björck); :func:`estimate` trains it to separate two sample sets and reports
the held-out gap divided by the critic's measured Lipschitz bound, a lower bound on
:math:`W_1`; :func:`exact_discrete_w1` is the exact value for small discrete distributions.
"""

from gnpcheck.wasserstein.critics import (
    CONV_LAYOUT,
    CRITIC_ACTIVATIONS,
    CRITIC_KINDS,
    CriticActivation,
    CriticKind,
    build_critic,
    default_hidden,
)
from gnpcheck.wasserstein.estimate import estimate, heldout_gap
from gnpcheck.wasserstein.exact import exact_discrete_w1
from gnpcheck.wasserstein.result import WassersteinEstimate
from gnpcheck.wasserstein.samples import Samples

__all__ = [
    "CONV_LAYOUT",
    "CRITIC_ACTIVATIONS",
    "CRITIC_KINDS",
    "CriticActivation",
    "CriticKind",
    "Samples",
    "WassersteinEstimate",
    "build_critic",
    "default_hidden",
    "estimate",
    "exact_discrete_w1",
    "heldout_gap",
]
