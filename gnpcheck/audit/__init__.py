"""Audit any ``nn.Module``: is it what it claims, and what is the evidence?

.. code-block:: python

    from gnpcheck.audit import audit

    report = audit(layer, (16, 32, 32))     # one input, without the batch axis
    report.passed, report.verdict("lipschitz")
    print(report.to_text())

:func:`audit` returns an :class:`AuditReport`: one :class:`ClaimResult` per claim (verdict,
figure, tolerance and its reason, method, evidence, and for a violation a
:class:`Counterexample` that can be saved and replayed). See docs/audit.rst.
"""

from gnpcheck.audit.auditor import audit, second_shape
from gnpcheck.audit.claims import CLAIMS, DESCRIPTIONS, default_claims, parse_claims
from gnpcheck.audit.counterexample import Counterexample, Replay
from gnpcheck.audit.deadline import TimeBudgetError
from gnpcheck.audit.report import AuditReport, ClaimResult, Evidence, Verdict
from gnpcheck.audit.search import Effort
from gnpcheck.audit.target import TargetError

__all__ = [
    "CLAIMS",
    "DESCRIPTIONS",
    "AuditReport",
    "ClaimResult",
    "Counterexample",
    "Effort",
    "Evidence",
    "Replay",
    "TargetError",
    "TimeBudgetError",
    "Verdict",
    "audit",
    "default_claims",
    "parse_claims",
    "second_shape",
]
