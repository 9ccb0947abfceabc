"""The zoo: layers that are what they claim, and layers broken the way real code breaks.

It shows that the audit tells them apart: every layer in :data:`GOOD` must hold on every
claim, every layer in :data:`BROKEN` must be found violated on the claim it breaks
(:attr:`ZooEntry.expected`). :func:`library_entries` adds gnpcheck's own layers
(:mod:`gnpcheck.nn`, which must hold) and the baselines of :mod:`gnpcheck.nn.baselines`
(reported, not judged). ``gnpcheck audit`` with no target audits :func:`default_zoo`
(:mod:`gnpcheck.zoo.run`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import torch
from torch import nn

from gnpcheck.zoo.broken import (
    CancelledRescalingLinear,
    FewIterationsBjorckLinear,
    FirstSizeNormConv2d,
    NaNRenormalizedMaxMin,
    ReshapedNormConv2d,
    ReusedProjectorConv2d,
    StaleEvalCacheConv2d,
    StaleExportConv2d,
    TruncatedExpConv2d,
)
from gnpcheck.zoo.good import GNPNetwork, OrthogonalConv2d, OrthogonalLinear

__all__ = ["BROKEN", "GOOD", "ZooEntry", "default_zoo", "library_entries"]


@dataclass(frozen=True)
class ZooEntry:
    """One layer of the zoo and what the audit must find.

    Attributes:
        name: the row name in tables.
        build: ``build(seed)`` makes the layer (float64, CPU), the same for the same seed.
        input_shape: the input it is audited on, without the batch axis.
        expected: the claim the audit must find violated, or ``None``: every claim holds.
        description: what the layer is, or the real-world bug it mimics.
        judged: ``False`` for layers whose verdicts are reported without an expectation.
    """

    name: str
    build: Callable[[int], nn.Module]
    input_shape: tuple[int, ...]
    expected: str | None
    description: str
    judged: bool = True


#: Layers that must hold on every claim.
GOOD: tuple[ZooEntry, ...] = (
    ZooEntry(
        "OrthogonalConv2d",
        lambda s: OrthogonalConv2d(4, s),
        (4, 8, 8),
        None,
        "3x3 BCOP convolution, circular padding",
    ),
    ZooEntry(
        "OrthogonalLinear",
        lambda s: OrthogonalLinear(64, s),
        (4, 4, 4),
        None,
        "exp(A - A^T) on the flattened input",
    ),
    ZooEntry(
        "GNPNetwork",
        lambda s: GNPNetwork(4, 6, s),
        (4, 6, 6),
        None,
        "conv, MaxMin, conv, GroupSort, linear",
    ),
)

#: Layers broken on purpose, with the claim the audit must catch.
BROKEN: tuple[ZooEntry, ...] = (
    ZooEntry(
        "StaleEvalCacheConv2d",
        lambda s: StaleEvalCacheConv2d(4, s),
        (4, 8, 8),
        "fresh_after_step",
        "evaluation cache never refreshed after an optimizer step",
    ),
    ZooEntry(
        "StaleExportConv2d",
        lambda s: StaleExportConv2d(4, s),
        (4, 8, 8),
        "export_faithful",
        "export() copies the last forward's kernel: stale after load_state_dict",
    ),
    ZooEntry(
        "ReusedProjectorConv2d",
        lambda s: ReusedProjectorConv2d(4, s),
        (4, 8, 8),
        "parameter_coverage",
        "one projector used twice, another never (still orthogonal)",
    ),
    ZooEntry(
        "CancelledRescalingLinear",
        lambda s: CancelledRescalingLinear(64, s),
        (4, 4, 4),
        "parameter_coverage",
        "AOL rescaling whose learnable q cancels (exp(-s) * |W^T W| * exp(s))",
    ),
    ZooEntry(
        "FewIterationsBjorckLinear",
        lambda s: FewIterationsBjorckLinear(64, s),
        (4, 4, 4),
        "lipschitz",
        "too few Björck iterations: sigma_max slightly above 1",
    ),
    ZooEntry(
        "TruncatedExpConv2d",
        lambda s: TruncatedExpConv2d(4, s),
        (4, 8, 8),
        "lipschitz",
        "Taylor-truncated exp of a skew convolution with large weights",
    ),
    ZooEntry(
        "ReshapedNormConv2d",
        lambda s: ReshapedNormConv2d(4, s),
        (4, 8, 8),
        "lipschitz",
        "spectral norm of the reshaped kernel used as the operator norm",
    ),
    ZooEntry(
        "FirstSizeNormConv2d",
        lambda s: FirstSizeNormConv2d(4, s),
        (4, 8, 8),
        "input_size_independent",
        "normalized for the first input size it sees",
    ),
    ZooEntry(
        "NaNRenormalizedMaxMin",
        lambda s: NaNRenormalizedMaxMin(4, s),
        (4, 8, 8),
        "lipschitz",
        "renormalization without epsilon: NaN on all-zero pixels",
    ),
)


def _seeded(make: Callable[[], nn.Module], seed: int) -> nn.Module:
    """``make()`` with the global random state seeded, then restored; in float64."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return make().double()


def library_entries() -> tuple[ZooEntry, ...]:
    """gnpcheck's own layers (must hold) and the baselines (reported, not judged)."""
    from gnpcheck.nn import (
        BCOPConv1d,
        BCOPConv2d,
        BjorckLinear,
        GroupSort,
        InvertibleDownsampling,
        MaxMin,
    )
    from gnpcheck.nn.baselines import OSSNConv2d, RKOConv2d, SVCMConv2d

    own = (
        ("BCOPConv2d", lambda: BCOPConv2d(4, 4, 3), (4, 8, 8), "gnpcheck.nn, 3x3, circular"),
        ("BCOPConv1d", lambda: BCOPConv1d(4, 4, 3), (4, 16), "gnpcheck.nn, 3 taps, circular"),
        ("BjorckLinear", lambda: BjorckLinear(16, 16), (4, 16), "gnpcheck.nn, on the last axis"),
        ("MaxMin", lambda: MaxMin(), (4, 8, 8), "gnpcheck.nn activation"),
        ("GroupSort", lambda: GroupSort(4), (4, 8, 8), "gnpcheck.nn activation, groups of 4"),
        (
            "InvertibleDownsampling",
            lambda: InvertibleDownsampling(2),
            (4, 8, 8),
            "gnpcheck.nn pixel unshuffle by 2",
        ),
    )
    baselines = (
        ("OSSNConv2d", lambda: OSSNConv2d(4, 4, 3), (4, 8, 8), "baseline: operator spectral norm"),
        ("RKOConv2d", lambda: RKOConv2d(4, 4, 3), (4, 8, 8), "baseline: reshaped kernel orth."),
        ("SVCMConv2d", lambda: SVCMConv2d(4, 4, 3), (4, 8, 8), "baseline: singular value clipping"),
    )
    entries = []
    for group, judged in ((own, True), (baselines, False)):
        for name, make, shape, text in group:
            entries.append(ZooEntry(name, partial(_seeded, make), shape, None, text, judged))
    return tuple(entries)


def default_zoo() -> tuple[ZooEntry, ...]:
    """:data:`GOOD`, :data:`BROKEN` and :func:`library_entries`."""
    return GOOD + BROKEN + library_entries()
