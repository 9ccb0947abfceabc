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
from gnpcheck.wasserstein.experiment import (
    SEED_TABLE,
    CriticTable,
    OrderingClaim,
    TableEntry,
    format_table,
    ordering_claims,
    run_table,
)
from gnpcheck.wasserstein.gan import (
    GeneratorConfig,
    GeneratorRun,
    load_generator,
    resume_generator,
    train_generator,
)
from gnpcheck.wasserstein.generator import Generator
from gnpcheck.wasserstein.pairs import KnownDistance, Pair, expected_gaussian_norm, make_pair
from gnpcheck.wasserstein.result import WassersteinEstimate
from gnpcheck.wasserstein.samples import Samples

__all__ = [
    "CONV_LAYOUT",
    "CRITIC_ACTIVATIONS",
    "CRITIC_KINDS",
    "SEED_TABLE",
    "CriticActivation",
    "CriticKind",
    "CriticTable",
    "Generator",
    "GeneratorConfig",
    "GeneratorRun",
    "KnownDistance",
    "OrderingClaim",
    "Pair",
    "Samples",
    "TableEntry",
    "WassersteinEstimate",
    "build_critic",
    "default_hidden",
    "estimate",
    "exact_discrete_w1",
    "expected_gaussian_norm",
    "format_table",
    "heldout_gap",
    "load_generator",
    "make_pair",
    "ordering_claims",
    "resume_generator",
    "run_table",
    "train_generator",
]
