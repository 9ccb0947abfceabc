r"""The seed's critic table: Wasserstein-1 lower bounds by convolution x activation.

Li et al. (NeurIPS 2019) estimate :math:`W_1` between STL-10 images and a GAN's
samples with conv critics built from BCOP, RKO and OSSN layers, with MaxMin or ReLU (larger
is better: each is a lower bound). Their figures are :data:`SEED_TABLE`; their ordering,
BCOP >= RKO >= OSSN and MaxMin >= ReLU, is what :func:`ordering_claims` tests here.

:func:`run_table` runs :func:`gnpcheck.wasserstein.estimate` for every critic on one
:class:`~gnpcheck.wasserstein.pairs.Pair` with the same budget (steps and/or minutes),
samples, seed and initialization seed, and :func:`format_table` prints the result as reST
tables, with the seed's figure beside each row, every ordering claim marked ``holds`` or
``does not hold``, and the check against a known distance when the pair has one.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from gnpcheck.errors import InvalidArgumentError
from gnpcheck.models.components import CONVS
from gnpcheck.wasserstein.critics import build_critic
from gnpcheck.wasserstein.estimate import estimate
from gnpcheck.wasserstein.pairs import (
    CONSISTENCY_STANDARD_ERRORS,
    KnownDistance,
    Pair,
    is_consistent,
)
from gnpcheck.wasserstein.result import WassersteinEstimate

__all__ = [
    "ACTIVATION_NAMES",
    "CONV_NAMES",
    "SEED_TABLE",
    "TABLE_ACTS",
    "TABLE_CONVS",
    "CriticTable",
    "OrderingClaim",
    "TableEntry",
    "format_table",
    "ordering_claims",
    "run_table",
]

#: The seed's W1 lower bounds, STL-10 vs a GAN's samples (Li et al. 2019).
SEED_TABLE: dict[tuple[str, str], float] = {
    ("bcop", "maxmin"): 9.91,
    ("rko", "maxmin"): 8.95,
    ("ossn", "maxmin"): 7.39,
    ("bcop", "relu"): 8.28,
    ("rko", "relu"): 7.82,
    ("ossn", "relu"): 7.06,
}
#: The seed's convolutions and activations, in the order of its claim (best first).
TABLE_CONVS = ("bcop", "rko", "ossn")
TABLE_ACTS = ("maxmin", "relu")
#: Display names.
CONV_NAMES = {"bcop": "BCOP", "rko": "RKO", "ossn": "OSSN", "svcm": "SVCM"}
ACTIVATION_NAMES = {"maxmin": "MaxMin", "relu": "ReLU"}


@dataclass(frozen=True)
class TableEntry:
    """One critic of the table and its estimate."""

    conv: str
    act: str
    result: WassersteinEstimate

    @property
    def label(self) -> str:
        """``"BCOP, MaxMin"``."""
        return f"{CONV_NAMES[self.conv]}, {ACTIVATION_NAMES[self.act]}"


@dataclass(frozen=True)
class CriticTable:
    """The estimates of every critic on one pair, with the budget they shared.

    Attributes:
        pair: the pair's name (the samples are not kept).
        known: what is known about :math:`W_1` of the pair, or ``None``.
        entries: one per (conv, act), convolutions outermost.
        budget: the arguments every estimate shared: ``steps``, ``time_limit`` (minutes or
            ``None``), ``batch_size``, ``lr``, ``seed``, ``eval_every``.
    """

    pair: str
    known: KnownDistance | None
    entries: tuple[TableEntry, ...]
    budget: dict[str, float | int | None]

    @property
    def consistent(self) -> bool:
        """Whether every lower bound agrees with the known distance
        (:func:`~gnpcheck.wasserstein.pairs.is_consistent`; ``True`` when nothing is known)."""
        return all(
            is_consistent(e.result.lower_bound, e.result.lower_bound_error, self.known)
            for e in self.entries
        )

    def entry(self, conv: str, act: str) -> TableEntry:
        """The entry of ``(conv, act)``.

        Raises:
            InvalidArgumentError: the table has no such critic.
        """
        for item in self.entries:
            if (item.conv, item.act) == (conv, act):
                return item
        raise InvalidArgumentError(f"conv={conv!r}, act={act!r}, but the table has no such critic")


@dataclass(frozen=True)
class OrderingClaim:
    """One claim of the seed's ordering, ``larger >= smaller``, judged on a table.

    Attributes:
        claim: e.g. ``"BCOP >= RKO (MaxMin)"``.
        larger, smaller: the entries the claim compares.
    """

    claim: str
    larger: TableEntry
    smaller: TableEntry

    @property
    def difference(self) -> float:
        """``larger.lower_bound - smaller.lower_bound``."""
        return self.larger.result.lower_bound - self.smaller.result.lower_bound

    @property
    def standard_errors(self) -> float:
        r"""The difference in units of :math:`\sqrt{e_1^2 + e_2^2}`, the errors of the two
        lower bounds (as if independent; both critics are evaluated on the same held-out
        samples, so this is only a guide to whether the difference is noise)."""
        error = math.hypot(
            self.larger.result.lower_bound_error, self.smaller.result.lower_bound_error
        )
        if error == 0:
            return math.copysign(math.inf, self.difference) if self.difference else 0.0
        return self.difference / error

    @property
    def holds(self) -> bool:
        """Whether ``larger``'s lower bound is at least ``smaller``'s."""
        return self.difference >= 0


def _check_names(values: Sequence[str], name: str, allowed: Sequence[str]) -> tuple[str, ...]:
    chosen = tuple(values)
    if not chosen or len(set(chosen)) != len(chosen) or any(v not in allowed for v in chosen):
        raise InvalidArgumentError(
            f"{name}={list(chosen)!r}, but it must be distinct names from {', '.join(allowed)}"
        )
    return chosen


def run_table(
    pair: Pair,
    *,
    convs: Sequence[str] = TABLE_CONVS,
    acts: Sequence[str] = TABLE_ACTS,
    steps: int = 2000,
    time_limit: float | None = None,
    batch_size: int = 256,
    lr: float = 1e-3,
    seed: int = 0,
    eval_every: int = 100,
    hidden: Sequence[int] | None = None,
    threads: int | None = None,
    progress: bool = False,
    on_entry: Callable[[TableEntry], None] | None = None,
) -> CriticTable:
    """Estimate :math:`W_1(p, q)` of ``pair`` with a conv critic for every ``(conv, act)``.

    Every critic is built by :func:`~gnpcheck.wasserstein.build_critic` (``kind="conv"``,
    parameters initialized from ``seed``) and trained by
    :func:`~gnpcheck.wasserstein.estimate` with the same samples, split, batch order and
    budget: ``steps`` optimizer steps, stopping earlier after ``time_limit`` minutes if set.

    Args:
        pair: the samples (:func:`~gnpcheck.wasserstein.pairs.make_pair`).
        convs, acts: the critics' convolutions (from :data:`gnpcheck.models.CONVS`) and
            activations (``maxmin``, ``relu``); the seed's by default.
        steps, time_limit, batch_size, lr, seed, eval_every, threads, progress: passed to
            :func:`~gnpcheck.wasserstein.estimate`.
        hidden: the critics' hidden widths (``None``: the default of ``build_critic``).
        on_entry: called with each entry as soon as it is estimated (e.g. to print it).

    Returns:
        The :class:`CriticTable`, convolutions outermost.

    Raises:
        InvalidArgumentError: ``convs`` or ``acts`` empty, repeated or unknown; invalid
            estimation arguments (from :func:`~gnpcheck.wasserstein.estimate`).
    """
    convs = _check_names(convs, "convs", CONVS)
    acts = _check_names(acts, "acts", tuple(ACTIVATION_NAMES))
    entries: list[TableEntry] = []
    for conv in convs:
        for act in acts:
            critic = build_critic("conv", pair.p.shape[1:], conv, act, hidden, seed=seed)
            result = estimate(
                pair.p,
                pair.q,
                critic,
                steps=steps,
                batch_size=batch_size,
                lr=lr,
                seed=seed,
                eval_every=eval_every,
                time_limit=time_limit,
                threads=threads,
                progress=progress,
            )
            entries.append(TableEntry(conv, act, result))
            if on_entry is not None:
                on_entry(entries[-1])
    budget: dict[str, float | int | None] = {
        "steps": steps,
        "time_limit": time_limit,
        "batch_size": batch_size,
        "lr": lr,
        "seed": seed,
        "eval_every": eval_every,
    }
    return CriticTable(pair.name, pair.known, tuple(entries), budget)


def ordering_claims(table: CriticTable) -> list[OrderingClaim]:
    """The seed's ordering as claims on ``table``: for each activation, each convolution of
    :data:`TABLE_CONVS` against the next one present (BCOP >= RKO, RKO >= OSSN); for each
    convolution, MaxMin >= ReLU. Claims whose critics are missing are left out."""
    present = {(e.conv, e.act): e for e in table.entries}
    claims: list[OrderingClaim] = []
    for act in TABLE_ACTS:
        ranked = [conv for conv in TABLE_CONVS if (conv, act) in present]
        for better, worse in itertools.pairwise(ranked):
            text = f"{CONV_NAMES[better]} >= {CONV_NAMES[worse]} ({ACTIVATION_NAMES[act]})"
            claims.append(OrderingClaim(text, present[better, act], present[worse, act]))
    for conv in TABLE_CONVS:
        if (conv, "maxmin") in present and (conv, "relu") in present:
            text = f"MaxMin >= ReLU ({CONV_NAMES[conv]})"
            claims.append(OrderingClaim(text, present[conv, "maxmin"], present[conv, "relu"]))
    return claims


def _rst(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A reST simple table."""
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    rule = "  ".join("=" * width for width in widths)

    def line(cells: Sequence[str]) -> str:
        cells = [cell.ljust(width) for cell, width in zip(cells, widths, strict=True)]
        return "  ".join(cells).rstrip()

    return "\n".join([rule, line(header), rule, *(line(row) for row in rows), rule]).rstrip()


def _budget_text(table: CriticTable) -> str:
    budget = table.budget
    limit = budget["time_limit"]
    length = f"{budget['steps']} steps" + (f" or {limit:g} min" if limit is not None else "")
    first = table.entries[0].result
    return (
        f"budget per critic: {length}, batch {budget['batch_size']}, lr {budget['lr']:g}, "
        f"seed {budget['seed']}; samples p {sum((first.train_sizes[0], first.heldout_sizes[0]))}, "
        f"q {sum((first.train_sizes[1], first.heldout_sizes[1]))}, held out "
        f"{first.heldout_sizes[0]} + {first.heldout_sizes[1]}"
    )


def format_table(table: CriticTable) -> str:
    """The table as text: the pair and budget, a reST table of the critics (W1 lower bound
    +- one standard error, claimed and measured Lipschitz bounds, steps, seconds, the seed's
    figure), a reST table of the ordering claims with ``holds`` or ``does not hold``, and the
    check against the known distance when there is one."""
    header = ["conv", "act", "W1 lower bound", "L claimed", "L measured", "steps", "time s"]
    rows = []
    for entry in table.entries:
        result = entry.result
        seed = SEED_TABLE.get((entry.conv, entry.act))
        rows.append(
            [
                CONV_NAMES[entry.conv],
                ACTIVATION_NAMES[entry.act],
                f"{result.lower_bound:.4f} +- {result.lower_bound_error:.4f}",
                f"{result.lipschitz.claimed:.6f}",
                f"{result.lipschitz.measured:.6f}",
                f"{result.steps}" + ("*" if result.stopped == "time limit" else ""),
                f"{result.seconds:.1f}",
                "-" if seed is None else f"{seed:.2f}",
            ]
        )
    parts = [f"pair: {table.pair}"]
    if table.known is not None:
        parts[0] += f"; {table.known.describe()}"
    parts += [_budget_text(table), "", _rst([*header, "seed (STL-10)"], rows)]
    if any(entry.result.stopped == "time limit" for entry in table.entries):
        parts.append("* stopped by the time limit")
    claims = ordering_claims(table)
    if claims:
        claim_rows = [
            [
                claim.claim,
                f"{claim.difference:+.4f} ({claim.standard_errors:+.1f} SE)",
                "holds" if claim.holds else "does not hold",
            ]
            for claim in claims
        ]
        held = sum(claim.holds for claim in claims)
        parts += ["", _rst(["seed's ordering", "difference here", "verdict"], claim_rows)]
        parts.append(f"{held} of {len(claims)} ordering claims hold")
    if table.known is not None:
        verdict = "holds" if table.consistent else "does not hold"
        parts += [
            "",
            f"known distance {table.known.describe()}: every lower bound within "
            f"{CONSISTENCY_STANDARD_ERRORS:g} standard errors of it: {verdict}",
        ]
    return "\n".join(parts)
