"""pytest hooks of the property suite: the target option, the report header, claim markers.

Load it with ``pytest_plugins = ["gnpcheck.pytest_plugin"]`` in a top-level ``conftest.py``
or ``-p gnpcheck.pytest_plugin``. It adds

- the option ``--gnp-target=package.module:factory`` (else ``GNPCHECK_TARGET``, else the
  reference BCOP; see :mod:`gnpcheck.targets`), resolved once when pytest starts: a target
  that cannot be loaded is a usage error (exit code 4) with the reason;
- a report header line with the target, its version, its claims, and the size limits of
  the Hypothesis profile;
- the marker ``@pytest.mark.claim(name)``: a test of a claim the target does not make is
  skipped with that reason (shown by ``-rs``), never passed silently;
- the session fixture ``gnp_target``, the :class:`~gnpcheck.targets.KernelTarget`.
"""

from __future__ import annotations

import contextlib
import os

import pytest

from gnpcheck.errors import GnpcheckError
from gnpcheck.hypothesis_profiles import active_profile, size_limits
from gnpcheck.targets import CLAIMS, KernelTarget, resolve_target

__all__ = [
    "gnp_target",
    "pytest_addoption",
    "pytest_configure",
    "pytest_report_header",
    "pytest_runtest_setup",
]

_TARGET = pytest.StashKey[tuple[str, KernelTarget] | None]()
#: Set by the audit plugin's option or environment: the target is then an ``nn.Module``
#: factory audited by :mod:`gnpcheck.audit.pytest_plugin`, not a kernel factory.
_INPUT_SHAPE_ENV = "GNPCHECK_INPUT_SHAPE"


def _audits_a_module(config: pytest.Config) -> bool:
    return bool(config.getoption("--gnp-input-shape", None) or os.environ.get(_INPUT_SHAPE_ENV))


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add ``--gnp-target`` (unless the audit plugin, loaded first, already has)."""
    group = parser.getgroup("gnpcheck", "gnpcheck property suite")
    with contextlib.suppress(ValueError):  # gnpcheck.audit.pytest_plugin defines it too
        group.addoption(
            "--gnp-target",
            default=None,
            metavar="MODULE:FACTORY",
            help="the kernel factory or KernelTarget the property suite checks "
            "(default: $GNPCHECK_TARGET, else gnpcheck's float64 reference BCOP)",
        )


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``claim`` marker and resolve the target once."""
    config.addinivalue_line(
        "markers",
        f"claim(name): the test checks a claim ({', '.join(sorted(CLAIMS))}); skipped when the "
        "target does not make it",
    )
    if _audits_a_module(config):
        config.stash[_TARGET] = None
        return
    try:
        config.stash[_TARGET] = resolve_target(config.getoption("--gnp-target"))
    except GnpcheckError as error:
        raise pytest.UsageError(f"gnpcheck: {error}") from None


def pytest_report_header(config: pytest.Config) -> list[str]:
    """``gnpcheck target: <spec> = <name>, version <version> (...)`` and the size limits."""
    resolved = config.stash[_TARGET]
    if resolved is None:
        return ["gnpcheck target: an nn.Module audited per claim (--gnp-input-shape given)"]
    spec, target = resolved
    limits = size_limits()
    claims = ", ".join(sorted(target.claims)) or "none"
    named = spec if spec == target.name else f"{spec} = {target.name}"
    return [
        f"gnpcheck target: {named}, version {target.version} "
        f"(claims: {claims}; dtype {target.dtype}; spatial_ndims {target.spatial_ndims})",
        f"gnpcheck sizes (profile {active_profile()!r}): channels <= {limits.max_channels}, "
        f"kernel size <= {limits.max_kernel_size}, spatial size <= {limits.max_spatial}",
    ]


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Skip, with the reason, a test whose ``claim`` the target does not make."""
    resolved = item.config.stash[_TARGET]
    if resolved is None:
        if any(True for _ in item.iter_markers(name="claim")):
            pytest.skip(_MODULE_TARGET_SKIP)
        return
    _, target = resolved
    for marker in item.iter_markers(name="claim"):
        for claim in marker.args:
            if claim not in CLAIMS:
                raise pytest.UsageError(
                    f"{item.nodeid}: claim({claim!r}), but a claim must be one of {sorted(CLAIMS)}"
                )
            if not target.makes(claim):
                pytest.skip(f"target {target.name!r} does not claim {claim!r}")


@pytest.fixture(scope="session")
def gnp_target(request: pytest.FixtureRequest) -> KernelTarget:
    """The :class:`~gnpcheck.targets.KernelTarget` the property suite checks."""
    resolved = request.config.stash[_TARGET]
    if resolved is None:
        pytest.skip(_MODULE_TARGET_SKIP)
    return resolved[1]


_MODULE_TARGET_SKIP = (
    "the target is an nn.Module factory (--gnp-input-shape given): its claims are audited by "
    "the gnpcheck-audit items, the kernel properties do not apply"
)
