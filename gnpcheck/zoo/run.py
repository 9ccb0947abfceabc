"""Audit the zoo and tabulate what the audit found against what it had to find."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from gnpcheck.audit import AuditReport, audit
from gnpcheck.audit.table import ABBREVIATIONS, aligned, claim_marks
from gnpcheck.zoo import ZooEntry

__all__ = ["ZooOutcome", "audit_entry", "audit_zoo", "zoo_table"]


@dataclass(frozen=True)
class ZooOutcome:
    """One zoo layer audited with one seed.

    Attributes:
        entry: the layer.
        seed: the seed of the layer and of the audit.
        report: the audit report.
    """

    entry: ZooEntry
    seed: int
    report: AuditReport

    @property
    def caught(self) -> bool:
        """A broken layer: whether its expected claim was found violated."""
        return self.entry.expected is not None and (self.entry.expected in self.report.violated)

    @property
    def false_alarms(self) -> tuple[str, ...]:
        """A good layer: the claims found violated (there must be none)."""
        return self.report.violated if self.entry.expected is None else ()

    @property
    def as_expected(self) -> bool | None:
        """Whether the audit found what it had to (``None`` for unjudged layers): a good
        layer holds on every claim, a broken one is caught on its claim."""
        if not self.entry.judged:
            return None
        if self.entry.expected is None:
            return self.report.passed
        return self.caught


def audit_entry(entry: ZooEntry, seed: int = 0, time_budget: float = 60.0) -> ZooOutcome:
    """Build ``entry`` with ``seed`` and audit it with the same seed and default claims."""
    report = audit(
        lambda: entry.build(seed),
        entry.input_shape,
        seed=seed,
        time_budget=time_budget,
        name=entry.name,
    )
    return ZooOutcome(entry, seed, report)


def audit_zoo(
    entries: Iterable[ZooEntry],
    seeds: Sequence[int] = (0,),
    time_budget: float = 60.0,
    progress: Callable[[ZooOutcome], None] | None = None,
) -> list[ZooOutcome]:
    """Every entry with every seed; ``progress`` is called after each audit."""
    outcomes = []
    for entry in entries:
        for seed in seeds:
            outcome = audit_entry(entry, seed, time_budget)
            outcomes.append(outcome)
            if progress is not None:
                progress(outcome)
    return outcomes


def zoo_table(outcomes: Sequence[ZooOutcome]) -> str:
    """One row per outcome: the verdict on each claim (:func:`~gnpcheck.audit.table.claim_marks`),
    what had to be found, and whether it was."""
    head = ["layer", *ABBREVIATIONS.values(), "must find", "result", "seconds"]
    rows = [head]
    for outcome in outcomes:
        expected = outcome.entry.expected or ("all hold" if outcome.entry.judged else "-")
        verdict = {True: "as expected", False: "WRONG", None: "reported"}[outcome.as_expected]
        if outcome.report.target_error:
            verdict += " (target error)"
        rows.append(
            [
                outcome.entry.name,
                *claim_marks(outcome.report),
                expected,
                verdict,
                f"{outcome.report.seconds:.1f}",
            ]
        )
    return aligned(rows)
