"""The zoo: good layers hold on every claim, broken ones are caught on the claim they break.

``GNPCHECK_ZOO_SEEDS`` sets how many seeds (default 3); ``benchmarks/bench_audit.py`` runs 20.
"""

from __future__ import annotations

import os

import pytest

from gnpcheck.zoo import BROKEN, GOOD, ZooEntry, library_entries
from gnpcheck.zoo.run import audit_entry, zoo_table

SEEDS = range(int(os.environ.get("GNPCHECK_ZOO_SEEDS", "3")))


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("entry", GOOD, ids=lambda e: e.name)
def test_good_layers_hold_on_every_claim(entry: ZooEntry, seed: int) -> None:
    outcome = audit_entry(entry, seed)
    assert outcome.report.passed, outcome.report.to_text()
    assert outcome.as_expected is True
    assert len(outcome.report.results) >= 5


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("entry", BROKEN, ids=lambda e: e.name)
def test_broken_layers_are_caught_on_their_claim(entry: ZooEntry, seed: int) -> None:
    outcome = audit_entry(entry, seed)
    assert entry.expected is not None
    assert outcome.caught, outcome.report.to_text()
    result = outcome.report.result(entry.expected)
    assert result.counterexample is not None
    replay = result.counterexample.replay(entry.build(seed))
    assert replay.reproduced, replay.detail


def test_gnpchecks_own_layers_hold_and_the_table_shows_them() -> None:
    outcomes = [audit_entry(entry, 0) for entry in library_entries() if entry.judged]
    assert {o.entry.name for o in outcomes} >= {"BCOPConv2d", "BCOPConv1d", "BjorckLinear"}
    for outcome in outcomes:
        assert outcome.as_expected, outcome.report.to_text()
    table = zoo_table(outcomes).splitlines()
    assert table[0].split()[:3] == ["layer", "lip", "orth"]
    assert all(line.rstrip().split()[-2:-1] == ["expected"] for line in table[1:])
