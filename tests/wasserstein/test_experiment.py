"""The experiment: pairs with known distances, the critic table, the seed's ordering claims."""

from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path

import pytest
import scipy.stats
import torch

from gnpcheck.data import DataFileError
from gnpcheck.errors import InvalidArgumentError
from gnpcheck.train.dataset import mnist_tensors
from gnpcheck.wasserstein import WassersteinEstimate, build_critic, estimate
from gnpcheck.wasserstein.experiment import (
    SEED_TABLE,
    CriticTable,
    TableEntry,
    format_table,
    ordering_claims,
    run_table,
)
from gnpcheck.wasserstein.gan import GeneratorConfig, load_generator, train_generator
from gnpcheck.wasserstein.pairs import (
    CONSISTENCY_STANDARD_ERRORS,
    KnownDistance,
    expected_gaussian_norm,
    is_consistent,
    make_pair,
    parse_source,
)

from ._mnist import write_tiny_mnist

SEED_CLAIMS = [
    "BCOP >= RKO (MaxMin)",
    "RKO >= OSSN (MaxMin)",
    "BCOP >= RKO (ReLU)",
    "RKO >= OSSN (ReLU)",
    "MaxMin >= ReLU (BCOP)",
    "MaxMin >= ReLU (RKO)",
    "MaxMin >= ReLU (OSSN)",
]


@pytest.fixture(scope="module")
def tiny_mnist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_mnist(tmp_path_factory.mktemp("mnist"))


@pytest.fixture(scope="module")
def base_result() -> WassersteinEstimate:
    """A real estimate whose figures the claim tests replace with their own."""
    torch.manual_seed(0)
    p, q = torch.randn(8, 4), torch.randn(8, 4) + 1
    return estimate(p, q, build_critic("fc", (4,), hidden=(4,), seed=0), steps=1, batch_size=4)


def _table(
    figures: dict[tuple[str, str], tuple[float, float]],
    base: WassersteinEstimate,
    known: KnownDistance | None = None,
) -> CriticTable:
    entries = tuple(
        TableEntry(conv, act, dataclasses.replace(base, lower_bound=lb, lower_bound_error=err))
        for (conv, act), (lb, err) in figures.items()
    )
    budget: dict[str, float | int | None] = {"steps": 10, "time_limit": None, "batch_size": 4}
    budget.update({"lr": 1e-3, "seed": 0, "eval_every": 5})
    return CriticTable("p vs q", known, entries, budget)


def _row(text: str, start: str) -> str:
    (line,) = [line for line in text.splitlines() if line.startswith(start)]
    return line


# --- known distances ---------------------------------------------------------------------


@pytest.mark.parametrize("dimension", [1, 2, 3, 10, 784])
def test_expected_gaussian_norm_is_the_chi_mean(dimension: int) -> None:
    assert expected_gaussian_norm(dimension) == pytest.approx(
        scipy.stats.chi(dimension).mean(), rel=1e-12
    )


def test_expected_gaussian_norm_of_784_pixels_is_about_sqrt_of_783_5() -> None:
    # E||Z|| = sqrt(D - 1/2) + O(D^{-3/2}): the approximation of the issue, to 1e-6.
    assert expected_gaussian_norm(784) == pytest.approx(math.sqrt(783.5), rel=1e-6)


@pytest.mark.parametrize(
    ("spec", "parsed"),
    [
        ("mnist", ("mnist", "")),
        ("noise:0.1", ("noise", "0.1")),
        ("offset:-0.05", ("offset", "-0.05")),
        ("generator:runs/g/generator.pt", ("generator", "runs/g/generator.pt")),
    ],
)
def test_sources_parse(spec: str, parsed: tuple[str, str]) -> None:
    assert parse_source(spec) == parsed


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("cifar", "q='cifar', but it must be one of mnist, noise:SIGMA, offset:C"),
        ("mnist:3", "q='mnist:3', but it must be one of"),
        ("noise:abc", "q='noise:abc', but it must be one of"),
        ("noise:0", "q='noise:0', but the noise scale must be > 0"),
        ("offset:inf", "q='offset:inf', but the offset scale must be finite"),
        ("generator:", "q='generator:', but it must be one of"),
    ],
)
def test_bad_sources_are_named(spec: str, message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        parse_source(spec)


def _indices(samples: torch.Tensor, images: torch.Tensor) -> list[int]:
    """The index in ``images`` of each sample (each must be one of them, exactly)."""
    matches = (samples.flatten(1)[:, None] == images.flatten(1)[None]).all(dim=2)
    assert bool((matches.sum(dim=1) == 1).all())
    return [int(index) for index in matches.int().argmax(dim=1)]


def test_pairs_shuffle_the_split_into_disjoint_sets(tiny_mnist: Path) -> None:
    images, _ = mnist_tensors("test", tiny_mnist)
    pair = make_pair("mnist", 40, data_dir=tiny_mnist, seed=3)
    assert pair.name == "mnist vs mnist"
    p, q = _indices(pair.p, images), _indices(pair.q, images)
    assert len(set(p) | set(q)) == 80
    assert p != list(range(40))
    assert pair.known == KnownDistance(0.0, "exact", "two samples of one distribution")
    other = make_pair("mnist", 40, data_dir=tiny_mnist, seed=4)
    assert _indices(other.p, images) != p
    train = make_pair("mnist", 30, p_spec="mnist:train", data_dir=tiny_mnist)
    _indices(train.p, mnist_tensors("train", tiny_mnist)[0])


def test_noise_and_offset_are_added_to_the_same_images(tiny_mnist: Path) -> None:
    same = make_pair("mnist", 40, data_dir=tiny_mnist, seed=3)
    noisy = make_pair("noise:0.5", 40, data_dir=tiny_mnist, seed=3)
    assert torch.equal(noisy.p, same.p)
    noise = (noisy.q - same.q) / 0.5
    assert abs(float(noise.mean())) < 0.01
    assert float(noise.std()) == pytest.approx(1.0, abs=0.01)
    assert float(noisy.q.min()) < 0
    assert float(noisy.q.max()) > 1
    assert torch.equal(noisy.q, make_pair("noise:0.5", 40, data_dir=tiny_mnist, seed=3).q)
    assert noisy.known is not None
    assert (noisy.known.relation, noisy.known.reason) == ("upper bound", "sigma E||N(0, I_784)||")
    assert noisy.known.value == pytest.approx(0.5 * scipy.stats.chi(784).mean(), rel=1e-12)
    shifted = make_pair("offset:0.25", 40, data_dir=tiny_mnist, seed=3)
    assert torch.equal(shifted.q, same.q + 0.25)
    assert shifted.known == KnownDistance(0.25 * 28, "exact", "|C| sqrt(784)")


def test_generator_pair_samples_the_checkpoint(tiny_mnist: Path, tmp_path: Path) -> None:
    config = GeneratorConfig(
        latent_dim=4, width=2, batch_size=4, steps=1, data_dir=str(tiny_mnist), progress=False
    )
    checkpoint = train_generator(config, tmp_path).checkpoint
    pair = make_pair(f"generator:{checkpoint}", 90, data_dir=tiny_mnist, seed=2)
    assert pair.known is None
    assert pair.p.shape == pair.q.shape == (90, 1, 28, 28)
    assert torch.equal(pair.q, load_generator(checkpoint).sample(90, seed=2))


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"q_spec": "noise:0.1", "examples": 49}, InvalidArgumentError, "examples=49, but the pair needs 98 images of the test split"),
        ({"q_spec": "mnist", "examples": 1}, InvalidArgumentError, "examples=1, but it must be an int >= 2"),
        ({"q_spec": "mnist", "p_spec": "cifar"}, InvalidArgumentError, "p='cifar', but it must be mnist"),
        ({"q_spec": "generator:missing.pt", "examples": 4}, DataFileError, "missing.pt not found"),
    ],
    ids=["too many", "too few", "p", "checkpoint"],
)  # fmt: skip
def test_bad_pairs_are_named(
    kwargs: dict[str, object], error: type[Exception], message: str, tiny_mnist: Path
) -> None:
    with pytest.raises(error, match=message):
        make_pair(data_dir=tiny_mnist, **kwargs)  # type: ignore[arg-type]


def test_consistency_allows_the_stated_number_of_standard_errors() -> None:
    upper = KnownDistance(1.0, "upper bound", "test")
    allowed = 1.0 + CONSISTENCY_STANDARD_ERRORS * 0.1
    assert is_consistent(allowed - 1e-9, 0.1, upper)
    assert not is_consistent(allowed + 1e-9, 0.1, upper)
    assert is_consistent(1e9, 0.0, None)


# --- the ordering claims and the table text ------------------------------------------------


def test_the_seeds_own_figures_satisfy_every_claim(base_result: WassersteinEstimate) -> None:
    table = _table({key: (value, 0.05) for key, value in SEED_TABLE.items()}, base_result)
    claims = ordering_claims(table)
    assert [claim.claim for claim in claims] == SEED_CLAIMS
    assert all(claim.holds for claim in claims)
    first = claims[0]
    assert first.difference == pytest.approx(9.91 - 8.95)
    assert first.standard_errors == pytest.approx((9.91 - 8.95) / math.hypot(0.05, 0.05))
    text = format_table(table)
    assert "7 of 7 ordering claims hold" in text
    assert "does not hold" not in text


def test_a_reversed_pair_is_reported_as_not_holding(base_result: WassersteinEstimate) -> None:
    figures = {key: (value, 0.05) for key, value in SEED_TABLE.items()}
    figures["rko", "maxmin"], figures["ossn", "maxmin"] = (7.9, 0.05), (8.0, 0.1)
    table = _table(figures, base_result)
    verdicts = {claim.claim: claim.holds for claim in ordering_claims(table)}
    assert [name for name, holds in verdicts.items() if not holds] == ["RKO >= OSSN (MaxMin)"]
    text = format_table(table)
    line = _row(text, "RKO >= OSSN (MaxMin)")
    assert line.split()[-3:] == ["does", "not", "hold"]
    assert "-0.1000 (-0.9 SE)" in line
    assert _row(text, "BCOP >= RKO (MaxMin)").endswith("holds")
    assert "6 of 7 ordering claims hold" in text


def test_table_rows_hold_the_figures_and_the_seeds(base_result: WassersteinEstimate) -> None:
    figures = {("bcop", "maxmin"): (2.5, 0.01), ("svcm", "relu"): (1.25, 0.02)}
    table = _table(figures, base_result)
    text = format_table(table)
    bcop = _row(text, "BCOP  MaxMin")
    assert "2.5000 +- 0.0100" in bcop
    assert bcop.endswith("9.91")
    assert f"{base_result.lipschitz.measured:.6f}" in bcop
    assert _row(text, "SVCM  ReLU").endswith("-")
    assert "budget per critic: 10 steps, batch 4, lr 0.001, seed 0" in text
    assert ordering_claims(table) == []
    assert "ordering claims" not in text
    assert table.entry("svcm", "relu").result.lower_bound == 1.25
    with pytest.raises(InvalidArgumentError, match="conv='rko', act='relu', but the table"):
        table.entry("rko", "relu")


def test_claims_skip_missing_critics(base_result: WassersteinEstimate) -> None:
    figures = {("bcop", "maxmin"): (1.0, 0.1), ("ossn", "maxmin"): (1.5, 0.1)}
    claims = ordering_claims(_table(figures, base_result))
    assert [(claim.claim, claim.holds) for claim in claims] == [("BCOP >= OSSN (MaxMin)", False)]


def test_known_distance_verdict(base_result: WassersteinEstimate) -> None:
    known = KnownDistance(1.0, "upper bound", "test")
    good = _table({("bcop", "maxmin"): (1.2, 0.1)}, base_result, known)
    bad = _table(
        {("bcop", "maxmin"): (1.2, 0.1), ("rko", "maxmin"): (1.31, 0.1)}, base_result, known
    )
    assert good.consistent
    assert not bad.consistent
    assert format_table(good).endswith("within 3 standard errors of it: holds")
    assert format_table(bad).endswith("within 3 standard errors of it: does not hold")


# --- a real (tiny) table -------------------------------------------------------------------


def test_run_table_estimates_every_critic_with_one_budget(tiny_mnist: Path) -> None:
    pair = make_pair("offset:0.05", 24, data_dir=tiny_mnist)
    seen: list[str] = []
    table = run_table(
        pair,
        convs=("bcop", "rko"),
        acts=("maxmin", "relu"),
        steps=2,
        batch_size=8,
        eval_every=1,
        seed=1,
        hidden=(8,),
        threads=1,
        on_entry=lambda entry: seen.append(entry.label),
    )
    assert seen == ["BCOP, MaxMin", "BCOP, ReLU", "RKO, MaxMin", "RKO, ReLU"]
    assert [e.label for e in table.entries] == seen
    assert table.budget == {
        "steps": 2, "time_limit": None, "batch_size": 8, "lr": 1e-3, "seed": 1, "eval_every": 1,
    }  # fmt: skip
    assert table.known == pair.known
    for entry in table.entries:
        result = entry.result
        assert (result.steps, result.stopped) == (2, "steps")
        assert [step for step, _ in result.history] == [0, 1, 2]
        assert result.lipschitz.claimed == 1.0
        assert result.lower_bound == pytest.approx(result.gap / result.lipschitz.certified_with)
    # Same seed, same initialization: BCOP with MaxMin built again gives the same estimate.
    critic = build_critic("conv", (1, 28, 28), "bcop", "maxmin", (8,), seed=1)
    again = estimate(pair.p, pair.q, critic, 2, 8, eval_every=1, seed=1, threads=1)
    assert again.gap == table.entry("bcop", "maxmin").result.gap
    text = format_table(table)
    assert text.startswith("pair: mnist vs offset:0.05; W1 = 1.4000 (|C| sqrt(784))")
    assert re.search(r"\n[0-4] of 4 ordering claims hold\n", text)
    rows = [line for line in text.splitlines() if re.match(r"(BCOP|RKO) +(MaxMin|ReLU) ", line)]
    assert len(rows) == 4


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"convs": ("dense",)}, r"convs=\['dense'\], but it must be distinct names from bcop"),
        ({"convs": ("bcop", "bcop")}, r"convs=\['bcop', 'bcop'\], but it must be distinct"),
        ({"acts": ()}, r"acts=\[\], but it must be distinct names from maxmin, relu"),
        ({"steps": 0}, "steps=0, but it must be at least 1"),
    ],
    ids=["unknown conv", "repeated conv", "no act", "steps"],
)
def test_run_table_rejects_bad_arguments(
    kwargs: dict[str, object], message: str, tiny_mnist: Path
) -> None:
    pair = make_pair("mnist", 8, data_dir=tiny_mnist)
    with pytest.raises(InvalidArgumentError, match=message):
        run_table(pair, **kwargs)  # type: ignore[arg-type]
