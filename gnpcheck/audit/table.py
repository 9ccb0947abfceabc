"""Verdict tables: one row per audit report, one short column per claim.

Used by ``gnpcheck audit`` (the zoo, and a target over several seeds) and by
``benchmarks/audit_public_layers.py``.
"""

from __future__ import annotations

from collections.abc import Sequence

from gnpcheck.audit.report import AuditReport, ClaimResult

__all__ = ["ABBREVIATIONS", "LEGEND", "aligned", "claim_marks"]

#: Column headers, one per claim, in the order of :data:`~gnpcheck.audit.claims.CLAIMS`.
ABBREVIATIONS: dict[str, str] = {
    "lipschitz": "lip",
    "orthogonal": "orth",
    "gnp": "gnp",
    "train_eval_consistent": "t/e",
    "fresh_after_step": "step",
    "parameter_coverage": "cover",
    "state_dict_roundtrip": "state",
    "export_faithful": "exp",
    "input_size_independent": "size",
}
#: What the columns and marks of a verdict table mean.
LEGEND = (
    ", ".join(f"{short}: {claim}" for claim, short in ABBREVIATIONS.items() if short != claim)
    + "; ok holds, FAIL violated, ? inconclusive, - not checked or not applicable"
)

_MARKS = {"holds": "ok", "violated": "FAIL", "inconclusive": "?"}


def _mark(result: ClaimResult | None) -> str:
    if result is None or (result.verdict == "inconclusive" and "not applicable" in result.detail):
        return "-"
    return _MARKS[result.verdict]


def claim_marks(report: AuditReport) -> list[str]:
    """One mark per claim of :data:`ABBREVIATIONS`: ``ok``, ``FAIL``, ``?``, or ``-`` for a
    claim not checked or not applicable to the target."""
    results = {r.claim: r for r in report.results}
    return [_mark(results.get(claim)) for claim in ABBREVIATIONS]


def aligned(rows: Sequence[Sequence[str]]) -> str:
    """``rows`` (the first one the header) as left-aligned columns, two spaces apart."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )
