"""Hypothesis profiles for gnpcheck's property suites, and the sizes each profile allows.

Three profiles, chosen by the environment variable ``GNPCHECK_HYPOTHESIS_PROFILE``
(``dev`` when unset):

- ``ci``: deterministic (``derandomize=True``), no example database, no deadline, few
  examples and small sizes, so the suite is fast and every run draws the same examples.
- ``dev``: random draws remembered in the local example database (a failure found once is
  replayed first next time), more examples.
- ``thorough``: many examples and bigger sizes, for a run before a release.

The profile is the one knob for sizes too: :func:`size_limits` gives the largest channel
count, kernel size and spatial size that :mod:`gnpcheck.strategies` draws by default under
the active profile. No profile has a deadline: timings on a shared machine are noise, and
the suite checks correctness, not speed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from hypothesis import Phase, settings

from gnpcheck.errors import InvalidArgumentError

__all__ = [
    "DEFAULT_PROFILE",
    "PROFILE_ENV",
    "PROFILE_NAMES",
    "SizeLimits",
    "active_profile",
    "load_profile",
    "profile_name",
    "register_profiles",
    "size_limits",
]

#: The environment variable that names the profile.
PROFILE_ENV = "GNPCHECK_HYPOTHESIS_PROFILE"
#: The profile used when ``GNPCHECK_HYPOTHESIS_PROFILE`` is unset or empty.
DEFAULT_PROFILE = "dev"


@dataclass(frozen=True)
class SizeLimits:
    """The largest sizes the strategies draw by default.

    Attributes:
        max_channels: channels ``n`` of a kernel or a projector's matrix size.
        max_kernel_size: taps ``K`` along each spatial axis.
        max_spatial: input size ``N`` along each spatial axis; a dense operator has
            ``n * N`` (1-D) or ``n * N1 * N2`` (2-D) rows, so this keeps its SVD cheap.
    """

    max_channels: int
    max_kernel_size: int
    max_spatial: int


_SETTINGS: dict[str, dict[str, Any]] = {
    "ci": {
        "derandomize": True,
        "database": None,
        "deadline": None,
        "max_examples": 10,
        "phases": tuple(phase for phase in Phase if phase is not Phase.explain),
    },
    "dev": {"deadline": None, "max_examples": 40},
    "thorough": {"deadline": None, "max_examples": 400},
}

_LIMITS: dict[str, SizeLimits] = {
    "ci": SizeLimits(max_channels=4, max_kernel_size=3, max_spatial=6),
    "dev": SizeLimits(max_channels=6, max_kernel_size=4, max_spatial=8),
    "thorough": SizeLimits(max_channels=12, max_kernel_size=5, max_spatial=10),
}

#: The profiles, in order of cost.
PROFILE_NAMES: tuple[str, ...] = tuple(_SETTINGS)

_loaded: list[str] = []


def register_profiles() -> None:
    """Register ``ci``, ``dev`` and ``thorough`` with Hypothesis (idempotent)."""
    for name, values in _SETTINGS.items():
        settings.register_profile(name, print_blob=True, **values)


def _checked_name(name: str, source: str) -> str:
    if name not in _SETTINGS:
        raise InvalidArgumentError(
            f"{source}={name!r}, but it must be one of {', '.join(map(repr, PROFILE_NAMES))}"
        )
    return name


def profile_name() -> str:
    """The profile ``GNPCHECK_HYPOTHESIS_PROFILE`` names (``dev`` when unset or empty).

    Raises:
        InvalidArgumentError: the variable names no profile.
    """
    value = os.environ.get(PROFILE_ENV, "").strip()
    return _checked_name(value or DEFAULT_PROFILE, PROFILE_ENV)


def load_profile(name: str | None = None) -> str:
    """Register the profiles and load ``name`` (default: :func:`profile_name`); return it.

    Call it once from a ``conftest.py`` before test modules are imported, so that the
    strategies they build see the profile's :func:`size_limits`.

    Raises:
        InvalidArgumentError: ``name`` (or the environment variable) names no profile.
    """
    chosen = profile_name() if name is None else _checked_name(name, "name")
    register_profiles()
    settings.load_profile(chosen)
    _loaded[:] = [chosen]
    return chosen


def active_profile() -> str:
    """The profile last loaded by :func:`load_profile`, else the one the environment names."""
    return _loaded[0] if _loaded else profile_name()


def size_limits(profile: str | None = None) -> SizeLimits:
    """The :class:`SizeLimits` of ``profile`` (default: :func:`active_profile`)."""
    name = active_profile() if profile is None else _checked_name(profile, "profile")
    return _LIMITS[name]
