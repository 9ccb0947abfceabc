"""estimate(): determinism, inputs as tensors or batches, splits, history, argument errors."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from gnpcheck.certify.lipschitz import UncertifiableModelError
from gnpcheck.errors import InvalidArgumentError, InvalidTypeError
from gnpcheck.threads import limited_threads
from gnpcheck.wasserstein import WassersteinEstimate, build_critic, estimate, heldout_gap
from gnpcheck.wasserstein.samples import split_pair


def _gaussians(count: int = 200, dim: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    p = torch.randn(count, dim, generator=generator)
    q = torch.randn(count, dim, generator=generator) + 1.0
    return p, q


def _critic(dim: int = 3) -> nn.Sequential:
    return build_critic("fc", (dim,), hidden=(8,), seed=0)


def _run(p: Any, q: Any, **kwargs: Any) -> WassersteinEstimate:
    options: dict[str, Any] = {"steps": 6, "batch_size": 32, "lr": 0.01, "threads": 1}
    return estimate(p, q, _critic(), **{**options, **kwargs})


def _same(first: WassersteinEstimate, second: WassersteinEstimate) -> bool:
    states = first.critic.state_dict(), second.critic.state_dict()
    return (
        first.gap == second.gap
        and first.standard_error == second.standard_error
        and first.history == second.history
        and all(torch.equal(states[0][key], states[1][key]) for key in states[0])
    )


def test_two_runs_with_one_seed_are_equal_and_the_critic_is_not_changed() -> None:
    p, q = _gaussians()
    critic = _critic()
    before = {key: value.clone() for key, value in critic.state_dict().items()}
    first = estimate(p, q, critic, steps=6, batch_size=32, lr=0.01, seed=5, threads=1)
    second = estimate(p, q, critic, steps=6, batch_size=32, lr=0.01, seed=5, threads=1)
    assert _same(first, second)
    assert all(torch.equal(before[key], critic.state_dict()[key]) for key in before)
    assert first.critic is not critic
    assert not first.critic.training
    assert not _same(first, _run(p, q, seed=6))


def test_data_loaders_and_lists_of_batches_give_the_tensor_result() -> None:
    p, q = _gaussians()
    reference = _run(p, q)
    loader_p = DataLoader(TensorDataset(p, torch.zeros(len(p))), batch_size=64, shuffle=False)
    loader_q = DataLoader(TensorDataset(q), batch_size=50, shuffle=False)
    assert _same(_run(loader_p, loader_q), reference)
    assert _same(_run(list(p.split(7)), iter(q.split(30))), reference)


def test_max_samples_reads_the_first_samples_and_says_what_it_cut() -> None:
    p, q = _gaussians()

    def endless() -> Iterator[torch.Tensor]:
        for start in itertools.count(0, 10):
            yield q[start % 200 : start % 200 + 10]

    result = _run(p, endless(), max_samples=120)
    assert result.truncated == (True, True)
    assert sum(result.train_sizes) + sum(result.heldout_sizes) == 240
    assert _same(result, _run(p[:120], q[:120]))
    exact = _run(list(p.split(60)), q, max_samples=200)
    assert exact.truncated == (False, False)
    assert "max_samples cut p and q" in result.describe()


@pytest.mark.parametrize(
    ("count", "holdout", "heldout"), [(200, 0.5, 100), (10, 0.25, 3), (9, 0.5, 5), (7, 0.3, 2)]
)
def test_split_sizes_round_half_up_and_lose_nothing(
    count: int, holdout: float, heldout: int
) -> None:
    p, q = _gaussians(count)
    result = _run(p, q, holdout=holdout)
    assert result.heldout_sizes == (heldout, heldout)
    assert result.train_sizes == (count - heldout, count - heldout)
    (p_train, p_held), _ = split_pair(p, q, holdout, torch.Generator().manual_seed(0))
    rows = torch.cat([p_train, p_held])
    assert torch.equal(rows[rows[:, 0].argsort()], p[p[:, 0].argsort()])


def test_history_result_and_reported_bound_agree() -> None:
    p, q = _gaussians()
    result = _run(p, q, steps=7, eval_every=3)
    assert [step for step, _ in result.history] == [0, 3, 6, 7]
    assert result.steps == 7
    assert result.stopped == "steps"
    assert result.history[-1][1] == result.gap
    assert result.lower_bound == result.gap / result.lipschitz.certified_with
    assert result.lower_bound_error == result.standard_error / result.lipschitz.certified_with
    _, (_, q_held) = split_pair(p, q, 0.5, torch.Generator().manual_seed(0))
    (_, p_held), _ = split_pair(p, q, 0.5, torch.Generator().manual_seed(0))
    with limited_threads(1):  # as the estimate ran: the thread count changes GEMM rounding
        assert heldout_gap(result.critic, p_held, q_held) == (result.gap, result.standard_error)
    text = result.describe()
    assert f"{result.lower_bound:.6f} +- {result.lower_bound_error:.6f}" in text
    assert "7 steps" in text


def test_time_limit_stops_and_says_so() -> None:
    p, q = _gaussians()
    previous = torch.get_num_threads()
    result = _run(p, q, steps=10**6, time_limit=1e-9)
    assert result.stopped == "time limit"
    assert result.steps == 0
    assert result.history == ((0, result.gap),)
    assert torch.get_num_threads() == previous


def test_heldout_gap_is_the_difference_of_means_with_its_standard_error() -> None:
    linear = nn.Linear(2, 1).double()
    with torch.no_grad():
        linear.weight.copy_(torch.tensor([[0.6, -0.8]], dtype=torch.float64))
        linear.bias.fill_(0.25)
    p = torch.tensor([[0.0, 1.0], [2.0, 0.0], [1.0, 1.0]], dtype=torch.float64)
    q = torch.tensor([[1.0, 0.0], [0.0, 0.0]], dtype=torch.float64)
    fp, fq = p.numpy() @ np.array([0.6, -0.8]), q.numpy() @ np.array([0.6, -0.8])
    gap, error = heldout_gap(nn.Sequential(linear), p, q, batch_size=2)
    assert gap == pytest.approx(fp.mean() - fq.mean(), rel=1e-15)
    expected = np.sqrt(fp.var(ddof=1) / 3 + fq.var(ddof=1) / 2)
    assert error == pytest.approx(expected, rel=1e-14)


def test_svcm_critic_trains_with_its_projection() -> None:
    generator = torch.Generator().manual_seed(0)
    p = torch.rand(40, 1, 8, 8, generator=generator)
    q = torch.rand(40, 1, 8, 8, generator=generator) + 0.1
    critic = build_critic("conv", (1, 8, 8), "svcm", "relu", hidden=(8,), seed=0)
    initial = critic.conv1.lipschitz_bound()
    result = estimate(p, q, critic, steps=2, batch_size=8, threads=1)
    assert initial > 1
    assert result.critic.conv1.lipschitz_bound() < initial
    assert result.lower_bound == result.gap / result.lipschitz.certified_with


def test_a_critic_that_cannot_be_measured_is_refused_before_training() -> None:
    linear = nn.Linear(3, 1)
    calls: list[int] = []
    linear.register_forward_hook(lambda *_: calls.append(1))
    p, q = _gaussians()
    with pytest.raises(UncertifiableModelError, match="'0' \\(Tanh\\)"):
        estimate(p, q, nn.Sequential(nn.Tanh(), linear), steps=10**6, threads=1)
    assert calls == []


class _TwoOutputs(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)


_P, _Q = _gaussians(20)


@pytest.mark.parametrize(
    ("changes", "error", "message"),
    [
        ({"steps": 0}, InvalidArgumentError, "steps=0, but it must be at least 1"),
        ({"steps": 2.0}, InvalidTypeError, "steps=2.0, but it must be an int"),
        ({"batch_size": 0}, InvalidArgumentError, "batch_size=0, but it must be at least 1"),
        ({"lr": 0.0}, InvalidArgumentError, "lr=0.0, but it must be finite and > 0"),
        ({"lr": float("nan")}, InvalidArgumentError, "lr=nan, but it must be finite"),
        ({"holdout": 0.0}, InvalidArgumentError, "holdout=0.0, but it must be strictly between"),
        ({"holdout": 1}, InvalidArgumentError, "holdout=1, but it must be strictly between"),
        ({"holdout": "half"}, InvalidTypeError, "holdout='half', but it must be a number"),
        ({"seed": None}, InvalidTypeError, "seed=None, but it must be an int"),
        ({"seed": -1}, InvalidArgumentError, "seed=-1, but it must be at least 0"),
        ({"eval_every": 0}, InvalidArgumentError, "eval_every=0, but it must be at least 1"),
        ({"time_limit": -1}, InvalidArgumentError, "time_limit=-1, but it must be finite"),
        ({"threads": 0}, InvalidArgumentError, "threads=0, but it must be at least 1"),
        ({"progress": 1}, InvalidTypeError, "progress=1, but it must be a bool"),
        ({"max_samples": 0}, InvalidArgumentError, "max_samples=0, but it must be at least 1"),
        ({"q": _Q[:, :2]}, InvalidArgumentError, "p has samples of shape (3,) and q of shape"),
        ({"p": _P.long()}, InvalidArgumentError, "p has dtype torch.int64, but samples must be"),
        ({"p": _P.double()}, InvalidArgumentError, "critic's parameters are torch.float32"),
        ({"q": _Q / 0}, InvalidArgumentError, "q has non-finite values"),
        ({"p": _P[:, 0]}, InvalidArgumentError, "p has shape (20,), but samples must be"),
        ({"p": _P[:2]}, InvalidArgumentError, "p has 2 samples, but holdout=0.5 holds out 1"),
        ({"p": 3.0}, InvalidTypeError, "p is a float, but it must be a tensor"),
        ({"p": ["x"]}, InvalidTypeError, "p batch 0 is a str, but batches must be tensors"),
        ({"q": []}, InvalidArgumentError, "q yielded no batches"),
        ({"q": [_Q[:4], _Q[4:, :2]]}, InvalidArgumentError, "q batch 1 has shape (16, 2)"),
        ({"critic": "f"}, InvalidTypeError, "critic is a str, but it must be an nn.Module"),
        ({"critic": nn.Sequential()}, InvalidArgumentError, "critic has no parameters"),
        ({"critic": nn.Sequential(nn.Linear(3, 2))}, InvalidArgumentError, "must be (10, 1)"),
        ({"critic": _TwoOutputs()}, UncertifiableModelError, "not an nn.Sequential"),
    ],
    ids=lambda value: ",".join(value) if isinstance(value, dict) else "",
)
def test_bad_arguments_are_named(changes: dict[str, Any], error: type, message: str) -> None:
    arguments: dict[str, Any] = {"p": _P, "q": _Q, "critic": _critic(), "steps": 1, **changes}
    with pytest.raises(error) as raised:
        estimate(**arguments)
    assert message in str(raised.value)
