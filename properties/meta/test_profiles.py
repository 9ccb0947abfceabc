"""The Hypothesis profiles: what each promises, and how the environment chooses one."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import Phase, settings

from gnpcheck.errors import InvalidArgumentError
from gnpcheck.hypothesis_profiles import (
    DEFAULT_PROFILE,
    PROFILE_ENV,
    PROFILE_NAMES,
    active_profile,
    load_profile,
    profile_name,
    register_profiles,
    size_limits,
)


def test_ci_is_deterministic_without_database_or_deadline() -> None:
    register_profiles()
    ci = settings.get_profile("ci")
    assert ci.derandomize
    assert ci.database is None
    assert ci.deadline is None
    assert Phase.shrink in ci.phases
    assert Phase.explain not in ci.phases


def test_profiles_grow_in_examples_and_sizes() -> None:
    register_profiles()
    examples = [settings.get_profile(name).max_examples for name in PROFILE_NAMES]
    assert PROFILE_NAMES == ("ci", "dev", "thorough")
    assert examples == sorted(examples)
    limits = [size_limits(name) for name in PROFILE_NAMES]
    for smaller, larger in itertools.pairwise(limits):
        assert smaller.max_channels < larger.max_channels
        assert smaller.max_kernel_size < larger.max_kernel_size
        assert smaller.max_spatial < larger.max_spatial


def test_environment_chooses_the_profile(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PROFILE_ENV, raising=False)
    assert profile_name() == DEFAULT_PROFILE == "dev"
    monkeypatch.setenv(PROFILE_ENV, "thorough")
    assert profile_name() == "thorough"
    monkeypatch.setenv(PROFILE_ENV, "fast")
    with pytest.raises(
        InvalidArgumentError,
        match="GNPCHECK_HYPOTHESIS_PROFILE='fast', but it must be one of 'ci', 'dev', 'thorough'",
    ):
        profile_name()


def test_unknown_profile_is_rejected_and_nothing_changes() -> None:
    before = active_profile()
    with pytest.raises(InvalidArgumentError, match="name='fast', but it must be one of"):
        load_profile("fast")
    assert active_profile() == before
    assert load_profile(before) == before
