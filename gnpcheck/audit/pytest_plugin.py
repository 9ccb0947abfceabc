"""pytest plugin: audit an ``nn.Module`` as part of a test run, one test item per claim.

Registered through the ``pytest11`` entry point, so it is active wherever gnpcheck is
installed; it does nothing unless an input shape is given. Then

.. code-block:: console

    pytest --gnp-target=mypkg.layers:make_layer --gnp-input-shape=16,32,32

adds the items ``gnpcheck-audit[<claim>]``: one per claim, passing when it holds, failing
with the figure, the tolerance, the method and the counterexample (saved under pytest's
cache directory) when it is violated or cannot be decided. A claim that does not apply to
the target is skipped with the reason. The target and shape may also come from the
environment variables ``GNPCHECK_TARGET`` and ``GNPCHECK_INPUT_SHAPE``.

Options: ``--gnp-target``, ``--gnp-input-shape``, ``--gnp-claims``, ``--gnp-time-budget``,
``--gnp-seed``, ``--gnp-dtype``.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

import pytest
import torch

from gnpcheck.audit.auditor import audit
from gnpcheck.audit.claims import default_claims, parse_claims
from gnpcheck.audit.report import AuditReport
from gnpcheck.audit.target import Target, TargetError, as_input_shape, resolve_spec
from gnpcheck.errors import GnpcheckError

__all__ = [
    "INPUT_SHAPE_ENV",
    "TARGET_ENV",
    "AuditItem",
    "pytest_addoption",
    "pytest_collection_modifyitems",
    "pytest_configure",
    "pytest_report_header",
]

#: The environment variable that names the target (shared with the property suite).
TARGET_ENV = "GNPCHECK_TARGET"
#: The environment variable that gives the input shape, e.g. ``16,32,32``.
INPUT_SHAPE_ENV = "GNPCHECK_INPUT_SHAPE"
_DTYPES = {"float64": torch.float64, "float32": torch.float32}


class _Settings:
    """The audit the options ask for, resolved once when pytest starts."""

    def __init__(
        self,
        spec: str,
        shape: tuple[int, ...],
        claims: tuple[str, ...],
        explicit: bool,
        time_budget: float,
        seed: int,
        dtype: torch.dtype,
    ) -> None:
        self.spec = spec
        self.shape = shape
        self.claims = claims
        self.explicit = explicit
        self.time_budget = time_budget
        self.seed = seed
        self.dtype = dtype
        self.report: AuditReport | None = None

    def run(self) -> AuditReport:
        if self.report is None:
            self.report = audit(
                self.spec,
                self.shape,
                self.claims if self.explicit else None,
                dtype=self.dtype,
                seed=self.seed,
                time_budget=self.time_budget,
            )
        return self.report


_SETTINGS = pytest.StashKey[_Settings | None]()


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add the audit's options (``--gnp-target`` only if the property suite has not)."""
    group = parser.getgroup("gnpcheck")
    # gnpcheck.pytest_plugin, when loaded first, defines --gnp-target in the same group
    with contextlib.suppress(ValueError):
        group.addoption(
            "--gnp-target",
            default=None,
            metavar="MODULE:FACTORY",
            help=f"the target (default: ${TARGET_ENV})",
        )
    group.addoption(
        "--gnp-input-shape",
        default=None,
        metavar="C,H,W",
        help=f"audit the target (an nn.Module or a factory of one) on inputs of this shape, "
        f"one test per claim (default: ${INPUT_SHAPE_ENV}; no audit when neither is set)",
    )
    group.addoption(
        "--gnp-claims",
        default=None,
        metavar="A,B",
        help="the claims to audit (default: those that apply)",
    )
    group.addoption(
        "--gnp-time-budget",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="seconds for the audit (default 60)",
    )
    group.addoption("--gnp-seed", type=int, default=0, help="seed of the audit (default 0)")
    group.addoption(
        "--gnp-dtype",
        choices=sorted(_DTYPES),
        default="float64",
        help="dtype of the audit (default float64)",
    )


def _settings(config: pytest.Config) -> _Settings | None:
    shape_text = config.getoption("--gnp-input-shape") or os.environ.get(INPUT_SHAPE_ENV, "")
    if not shape_text.strip():
        return None
    spec = config.getoption("--gnp-target", default=None) or os.environ.get(TARGET_ENV, "")
    if not spec.strip():
        raise pytest.UsageError(
            f"gnpcheck: --gnp-input-shape={shape_text!r} needs a target: pass "
            f"--gnp-target=MODULE:FACTORY or set {TARGET_ENV}"
        )
    try:
        shape = as_input_shape(shape_text.strip(), "--gnp-input-shape")
        requested = config.getoption("--gnp-claims")
        if requested:
            claims, explicit = parse_claims(requested), True
        else:
            built = Target.build(
                resolve_spec(spec, "--gnp-target"), _DTYPES[config.getoption("--gnp-dtype")]
            )
            claims, explicit = default_claims(built.pristine), False
    except TargetError as error:
        raise pytest.UsageError(f"gnpcheck: target {spec!r} cannot be audited: {error}") from None
    except GnpcheckError as error:
        raise pytest.UsageError(f"gnpcheck: {error}") from None
    return _Settings(
        spec.strip(),
        shape,
        claims,
        explicit,
        config.getoption("--gnp-time-budget"),
        config.getoption("--gnp-seed"),
        _DTYPES[config.getoption("--gnp-dtype")],
    )


def pytest_configure(config: pytest.Config) -> None:
    """Resolve the audit's target once (a bad one is a usage error, exit code 4)."""
    config.stash[_SETTINGS] = _settings(config)


def pytest_report_header(config: pytest.Config) -> list[str]:
    """``gnpcheck audit: <target> on input C,H,W (claims ...)`` when an audit runs."""
    settings = config.stash.get(_SETTINGS, None)
    if settings is None:
        return []
    shape = ",".join(map(str, settings.shape))
    return [
        f"gnpcheck audit: {settings.spec} on input {shape} "
        f"({str(settings.dtype).removeprefix('torch.')}, seed {settings.seed}; "
        f"claims: {', '.join(settings.claims)})"
    ]


class ClaimNotHeldError(Exception):
    """A claim that did not hold; the message is the report's."""


class AuditItem(pytest.Item):
    """The verdict on one claim of the audit."""

    def __init__(self, *, claim: str, settings: _Settings, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.claim = claim
        self.settings = settings

    def runtest(self) -> None:
        """Pass if the claim holds; skip if it does not apply; fail otherwise."""
        report = self.settings.run()
        found = {r.claim: r for r in report.results}
        if self.claim not in found:
            reasons = [n for n in report.notes if n.startswith(f"{self.claim}:")]
            pytest.skip(reasons[0] if reasons else f"{self.claim}: not checked")
        result = found[self.claim]
        if result.verdict == "holds":
            return
        message = f"{self.settings.spec}: {result.message()}"
        cache = getattr(self.config, "cache", None)
        if result.counterexample is not None and cache is not None:
            path = result.counterexample.save(cache.mkdir("gnpcheck-audit") / f"{self.claim}.pt")
            message += (
                f"\ncounterexample saved to {path}; replay it with "
                f"gnpcheck.audit.Counterexample.load({str(path)!r}).replay({self.settings.spec!r})"
            )
        raise ClaimNotHeldError(message)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        """The audit's message, without a traceback."""
        if isinstance(excinfo.value, ClaimNotHeldError):
            return str(excinfo.value)
        return str(super().repr_failure(excinfo, style))

    def reportinfo(self) -> tuple[str, int | None, str]:
        """The target's spec and the claim, for pytest's report lines."""
        return self.settings.spec, None, f"gnpcheck audit of {self.settings.spec}: {self.claim}"


def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    """Append one :class:`AuditItem` per claim when an audit was asked for."""
    settings = config.stash.get(_SETTINGS, None)
    if settings is None:
        return
    for claim in settings.claims:
        items.append(
            AuditItem.from_parent(
                session, name=f"gnpcheck-audit[{claim}]", claim=claim, settings=settings
            )
        )
