r"""What an audit found: one :class:`ClaimResult` per claim, gathered in an :class:`AuditReport`.

A verdict is ``"holds"``, ``"violated"`` or ``"inconclusive"``. How much a verdict proves is
its ``evidence``:

- ``"exact"``: the figure is computed exactly, up to the rounding the tolerance allows
  (an SVD of the target's matrix or of its convolution symbol);
- ``"bound"``: a rigorous upper bound is within the tolerance (a pass is a proof);
- ``"probabilistic"``: an upper bound that fails with probability at most the stated
  ``delta`` over the audit's random start;
- ``"search"``: a lower bound found by sampling and optimization: a violation is
  conclusive (it comes with a counterexample), "holds" means only that none was found;
- ``"observed"``: a behaviour compared on test inputs: a difference is conclusive, its
  absence is evidence on those inputs.

Reports render as a text table (:meth:`AuditReport.to_text`), Markdown
(:meth:`AuditReport.to_markdown`) and a JSON-ready dict (:meth:`AuditReport.to_dict`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from gnpcheck.audit.counterexample import Counterexample
from gnpcheck.audit.numbers import format_number
from gnpcheck.errors import InvalidArgumentError

__all__ = ["VERDICTS", "AuditReport", "ClaimResult", "Evidence", "Verdict"]

Verdict = Literal["holds", "violated", "inconclusive"]
Evidence = Literal["exact", "bound", "probabilistic", "search", "observed", "none"]
#: The three verdicts, from best to worst.
VERDICTS: tuple[Verdict, ...] = ("holds", "violated", "inconclusive")


@dataclass(frozen=True)
class ClaimResult:
    """The verdict on one claim and the evidence for it.

    Attributes:
        claim: the claim (``"lipschitz"``, ``"orthogonal"``, ...).
        verdict: ``"holds"``, ``"violated"`` or ``"inconclusive"``.
        figure: what ``measured`` is, e.g. ``"sigma_max"``.
        measured: the figure measured (``None`` when nothing could be measured).
        tolerance: the largest figure allowed (``None`` when not applicable).
        tolerance_reason: why the tolerance is what it is.
        method: how the figure was measured, e.g. ``"circular convolution: kernel from
            impulse responses, circulant spectrum"``.
        evidence: see the module docstring.
        detail: what went wrong or what to know, in words (``""`` if nothing).
        counterexample: for ``"violated"``, inputs that show it, when there are any.
        seconds: wall time spent on this claim.
    """

    claim: str
    verdict: Verdict
    figure: str
    measured: float | None
    tolerance: float | None
    tolerance_reason: str
    method: str
    evidence: Evidence
    detail: str = ""
    counterexample: Counterexample | None = None
    seconds: float = 0.0

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise InvalidArgumentError(
                f"verdict={self.verdict!r}, but it must be one of {VERDICTS}"
            )

    def message(self) -> str:
        """One paragraph: ``"lipschitz violated: sigma_max=1.02, but should be <= 1 ..."``."""
        if self.measured is None:
            text = f"{self.claim} {self.verdict}"
        else:
            relation = "<=" if self.verdict == "holds" else "but should be <="
            allowed = (
                "" if self.tolerance is None else f", {relation} {format_number(self.tolerance)}"
            )
            text = f"{self.claim} {self.verdict}: {self.figure}={format_number(self.measured)}{allowed}"
        text += f" (method: {self.method}; evidence: {self.evidence})"
        if self.detail:
            text += f"; {self.detail}"
        if self.counterexample is not None:
            text += f"; counterexample: {self.counterexample.summary()}"
        return text

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (non-finite figures as strings ``"nan"``, ``"inf"``)."""
        return {
            "claim": self.claim,
            "verdict": self.verdict,
            "figure": self.figure,
            "measured": _json_number(self.measured),
            "tolerance": _json_number(self.tolerance),
            "tolerance_reason": self.tolerance_reason,
            "method": self.method,
            "evidence": self.evidence,
            "detail": self.detail,
            "counterexample": None
            if self.counterexample is None
            else self.counterexample.to_dict(),
            "seconds": round(self.seconds, 3),
        }


@dataclass(frozen=True)
class AuditReport:
    """The outcome of :func:`gnpcheck.audit.audit`.

    Attributes:
        target: the audited target, as named to the user.
        input_shape: the shape of one input, without the batch axis.
        second_input_shape: the shape used for ``input_size_independent`` (or ``None``).
        dtype: the dtype the target was audited in.
        device: where it ran.
        seed: the seed of every random draw of the audit.
        lipschitz_constant: the constant ``lipschitz`` was checked against.
        structure: what the audit found the target to be (``"circular convolution"``,
            ``"linear map"``, ``"nonlinear map"``...) and how it established it.
        results: the claims in the order checked.
        notes: things the user should know that are not a claim's verdict (a claim skipped
            as not applicable, parameters the target changed in the caller's module...).
        target_error: why the target could not be audited at all (``None`` if it could).
        mutated: names of parameters or buffers of the caller's module that changed during
            the audit (the audit runs copies, so only the target itself can do that).
        seconds: wall time of the audit.
        versions: versions of gnpcheck and torch.
    """

    target: str
    input_shape: tuple[int, ...]
    second_input_shape: tuple[int, ...] | None
    dtype: str
    device: str
    seed: int
    lipschitz_constant: float
    structure: str
    results: tuple[ClaimResult, ...]
    notes: tuple[str, ...] = ()
    target_error: str | None = None
    mutated: tuple[str, ...] = ()
    seconds: float = 0.0
    versions: Mapping[str, str] = field(default_factory=dict)

    @property
    def claims(self) -> tuple[str, ...]:
        """The claims checked, in order."""
        return tuple(r.claim for r in self.results)

    @property
    def passed(self) -> bool:
        """Whether every claim holds, the target could be audited, and it mutated nothing."""
        return (
            self.target_error is None
            and not self.mutated
            and all(r.verdict == "holds" for r in self.results)
        )

    @property
    def violated(self) -> tuple[str, ...]:
        """The claims found violated."""
        return tuple(r.claim for r in self.results if r.verdict == "violated")

    def result(self, claim: str) -> ClaimResult:
        """The :class:`ClaimResult` of ``claim``.

        Raises:
            InvalidArgumentError: ``claim`` was not checked.
        """
        for r in self.results:
            if r.claim == claim:
                return r
        raise InvalidArgumentError(f"claim={claim!r}, but this report checked {list(self.claims)}")

    def verdict(self, claim: str) -> Verdict:
        """``"holds"``, ``"violated"`` or ``"inconclusive"`` for ``claim`` (see :meth:`result`)."""
        return self.result(claim).verdict

    def counterexample(self, claim: str) -> Counterexample | None:
        """The counterexample of ``claim``, if it was violated and one exists."""
        return self.result(claim).counterexample

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``json.dumps(report.to_dict())`` works)."""
        return {
            "target": self.target,
            "input_shape": list(self.input_shape),
            "second_input_shape": None
            if self.second_input_shape is None
            else list(self.second_input_shape),
            "dtype": self.dtype,
            "device": self.device,
            "seed": self.seed,
            "lipschitz_constant": self.lipschitz_constant,
            "structure": self.structure,
            "passed": self.passed,
            "target_error": self.target_error,
            "mutated": list(self.mutated),
            "notes": list(self.notes),
            "seconds": round(self.seconds, 3),
            "versions": dict(self.versions),
            "results": [r.to_dict() for r in self.results],
        }

    def to_json(self, indent: int | None = 2) -> str:
        """:meth:`to_dict` as JSON text."""
        return json.dumps(self.to_dict(), indent=indent)

    def _header(self) -> list[str]:
        shape = "x".join(map(str, self.input_shape))
        lines = [
            f"audit of {self.target} on input {shape} ({self.dtype}, {self.device}, "
            f"seed {self.seed}): {self.structure}"
        ]
        if self.target_error is not None:
            lines.append(f"target error: {self.target_error}")
        if self.mutated:
            lines.append(
                "the target mutated its own parameters/buffers during the audit: "
                + ", ".join(self.mutated)
            )
        return lines

    def _rows(self) -> list[tuple[str, str, str, str, str]]:
        rows: list[tuple[str, str, str, str, str]] = []
        for r in self.results:
            measured = "-" if r.measured is None else f"{r.figure}={format_number(r.measured)}"
            tolerance = "-" if r.tolerance is None else f"<= {format_number(r.tolerance)}"
            rows.append((r.claim, r.verdict, measured, tolerance, f"{r.method} [{r.evidence}]"))
        return rows

    def _footer(self) -> list[str]:
        lines = []
        for r in self.results:
            if r.verdict != "holds" and (r.detail or r.counterexample is not None):
                lines.append(r.message())
        lines.extend(f"note: {note}" for note in self.notes)
        verdicts = [r.verdict for r in self.results]
        lines.append(
            f"{verdicts.count('holds')} hold, {verdicts.count('violated')} violated, "
            f"{verdicts.count('inconclusive')} inconclusive ({self.seconds:.1f} s)"
        )
        return lines

    def to_text(self) -> str:
        """A plain-text table, one row per claim, with details of what failed below it."""
        head = ("claim", "verdict", "measured", "tolerance", "method [evidence]")
        rows = [head, *self._rows()]
        widths = [max(len(row[i]) for row in rows) for i in range(4)]
        table = [
            "  ".join(cell.ljust(width) for cell, width in zip(row[:4], widths, strict=True))
            + "  "
            + row[4]
            for row in rows
        ]
        return "\n".join([*self._header(), "", *table, "", *self._footer()])

    def to_markdown(self) -> str:
        """A Markdown section: header, a table, details of what failed, notes."""
        lines = [f"### {line}" if i == 0 else line for i, line in enumerate(self._header())]
        lines += ["", "| claim | verdict | measured | tolerance | method [evidence] |"]
        lines.append("|---|---|---|---|---|")
        for row in self._rows():
            cells = [cell.replace("|", "\\|") for cell in row]
            cells[1] = f"**{cells[1]}**" if cells[1] != "holds" else cells[1]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
        lines.extend(f"- {line}" for line in self._footer())
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.to_text()


def _json_number(value: float | None) -> float | str | None:
    if value is None:
        return None
    return value if math.isfinite(value) else str(value)
