"""The MNIST generator and its WGAN-GP training: samples, penalty, checkpoints, resume."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from gnpcheck.data import DataFileError
from gnpcheck.errors import InvalidArgumentError
from gnpcheck.train.checkpoint import load_checkpoint, save_checkpoint
from gnpcheck.wasserstein.gan import (
    GENERATOR_CHECKPOINT,
    GENERATOR_FORMAT,
    GeneratorConfig,
    gradient_penalty,
    load_generator,
    resume_generator,
    train_generator,
)
from gnpcheck.wasserstein.generator import Generator, wgan_critic

from ._mnist import write_tiny_mnist


@pytest.fixture(scope="module")
def tiny_mnist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_mnist(tmp_path_factory.mktemp("mnist"))


@pytest.fixture
def config(tiny_mnist: Path) -> GeneratorConfig:
    """Four generator steps of 8 images on the tiny set, narrow networks, one thread."""
    return GeneratorConfig(
        latent_dim=8,
        width=4,
        batch_size=8,
        steps=4,
        train_examples=32,
        data_dir=str(tiny_mnist),
        threads=1,
        checkpoint_every=2,
        log_every=2,
        progress=False,
    )


def _same_state(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[key], b[key]) for key in a)


def test_samples_are_images_in_the_unit_interval_and_a_function_of_the_seed() -> None:
    torch.manual_seed(0)
    generator = Generator(latent_dim=8, width=4)
    state = torch.get_rng_state()
    images = generator.sample(5, seed=3)
    assert torch.equal(torch.get_rng_state(), state)
    assert images.shape == (5, 1, 28, 28)
    assert images.dtype == torch.float32
    assert float(images.min()) >= 0.0
    assert float(images.max()) <= 1.0
    assert torch.equal(images, generator.sample(5, seed=3))
    assert not torch.equal(images, generator.sample(5, seed=4))
    assert generator.training


def test_sample_draws_in_chunks_like_one_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    generator = Generator(latent_dim=4, width=2)
    monkeypatch.setattr("gnpcheck.wasserstein.generator._SAMPLE_CHUNK", 4)
    images = generator.sample(10, seed=1)
    assert images.shape == (10, 1, 28, 28)
    torch.testing.assert_close(images, generator(generator.latent(10, 1)))


def test_wgan_critic_scores_each_image() -> None:
    assert wgan_critic(4)(torch.rand(3, 1, 28, 28)).shape == (3, 1)


def test_gradient_penalty_of_linear_critics() -> None:
    # f(x) = <w, x> has gradient w everywhere: the penalty is (||w|| - 1)^2 exactly, and its
    # gradient with respect to w is 2 (||w|| - 1) w / ||w||.
    critic = nn.Sequential(nn.Flatten(), nn.Linear(6, 1, bias=False))
    w = torch.tensor([[2.0, 0.0, 0.0, 0.0, 0.0, 0.0]], dtype=torch.float64)
    critic = critic.double()
    with torch.no_grad():
        critic[1].weight.copy_(w)
    real, fake = torch.randn(4, 1, 2, 3, dtype=torch.float64), torch.randn(4, 1, 2, 3).double()
    mix = torch.rand(4, 1, 1, 1, dtype=torch.float64)
    penalty = gradient_penalty(critic, real, fake, mix)
    assert float(penalty.detach()) == pytest.approx(1.0, rel=1e-12)
    penalty.backward()
    assert critic[1].weight.grad is not None
    torch.testing.assert_close(critic[1].weight.grad, 2 * (2.0 - 1.0) * w / 2.0)
    with torch.no_grad():
        critic[1].weight.copy_(w / 2)
    assert float(gradient_penalty(critic, real, fake, mix).detach()) == pytest.approx(
        0.0, abs=1e-15
    )


def test_tiny_run_writes_a_checkpoint_and_a_history(
    config: GeneratorConfig, tmp_path: Path
) -> None:
    run = train_generator(config, tmp_path)
    assert run.checkpoint == tmp_path / GENERATOR_CHECKPOINT
    assert (run.stopped, run.step) == ("steps", 4)
    assert [record["step"] for record in run.history] == [2.0, 4.0]
    assert all(record["gradient_penalty"] >= 0 for record in run.history)
    state = load_checkpoint(run.checkpoint)
    assert state["format"] == GENERATOR_FORMAT
    assert state["step"] == 4
    assert state["stopped"] == "steps"
    assert GeneratorConfig(**state["config"]) == config
    assert _same_state(state["generator"], run.generator.state_dict())
    loaded = load_generator(run.checkpoint)
    assert not loaded.training
    assert torch.equal(loaded.sample(3, seed=0), run.generator.sample(3, seed=0))


def test_resume_repeats_what_an_uninterrupted_run_does(
    config: GeneratorConfig, tmp_path: Path
) -> None:
    whole = train_generator(config, tmp_path / "whole")
    train_generator(dataclasses.replace(config, steps=2), tmp_path / "split")
    assert load_checkpoint(tmp_path / "split" / GENERATOR_CHECKPOINT)["step"] == 2
    resumed = resume_generator(tmp_path / "split", {"steps": 4})
    assert resumed.step == 4
    assert [record["step"] for record in resumed.history] == [2.0, 4.0]
    states = [load_checkpoint(run.checkpoint) for run in (whole, resumed)]
    for key in ("generator", "critic"):
        assert _same_state(states[0][key], states[1][key]), key
    assert torch.equal(whole.generator.sample(4, seed=5), resumed.generator.sample(4, seed=5))


def test_same_seed_same_generator_other_seed_another(
    config: GeneratorConfig, tmp_path: Path
) -> None:
    config = dataclasses.replace(config, steps=2)
    first = train_generator(config, tmp_path / "a").generator.sample(4, seed=0)
    again = train_generator(config, tmp_path / "b").generator.sample(4, seed=0)
    other = train_generator(dataclasses.replace(config, seed=1), tmp_path / "c")
    assert torch.equal(first, again)
    assert not torch.equal(first, other.generator.sample(4, seed=0))


def test_time_limit_stops_the_run_and_still_writes_the_checkpoint(
    config: GeneratorConfig, tmp_path: Path
) -> None:
    run = train_generator(dataclasses.replace(config, time_limit=1e-9), tmp_path)
    assert (run.stopped, run.step) == ("time limit", 0)
    assert load_checkpoint(run.checkpoint)["stopped"] == "time limit"


def test_a_run_is_not_overwritten_and_a_resume_keeps_the_recipe(
    config: GeneratorConfig, tmp_path: Path
) -> None:
    train_generator(dataclasses.replace(config, steps=1), tmp_path)
    with pytest.raises(InvalidArgumentError, match=r"out_dir=.* already holds generator\.pt"):
        train_generator(config, tmp_path)
    with pytest.raises(InvalidArgumentError, match=r"overrides \['lr'\], but a resumed run"):
        resume_generator(tmp_path, {"lr": 0.1})


def test_load_refuses_other_checkpoints(tmp_path: Path) -> None:
    with pytest.raises(DataFileError, match="not found"):
        load_generator(tmp_path / "missing.pt")
    save_checkpoint({"format": "gnpcheck-train/1"}, tmp_path / "other.pt")
    with pytest.raises(DataFileError, match="but generator checkpoints are"):
        load_generator(tmp_path / "other.pt")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"steps": 0}, "steps=0, but it must be an int >= 1"),
        ({"batch_size": 2.5}, "batch_size=2.5, but it must be an int >= 1"),
        ({"n_critic": True}, "n_critic=True, but it must be an int >= 1"),
        ({"train_examples": 0}, "train_examples=0, but it must be an int >= 1"),
        ({"seed": -1}, "seed=-1, but it must be an int >= 0"),
        ({"lr": 0.0}, "lr=0.0, but it must be > 0"),
        ({"beta1": 1.0}, "beta1=1.0, but it must be in [0, 1)"),
        ({"beta2": -0.1}, "beta2=-0.1, but it must be in [0, 1)"),
        ({"gp_weight": -1.0}, "gp_weight=-1.0, but it must be >= 0"),
        ({"time_limit": 0.0}, "time_limit=0.0, but it must be a positive number of minutes"),
    ],
    ids=lambda value: next(iter(value)) if isinstance(value, dict) else "",
)
def test_bad_settings_are_named(changes: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        GeneratorConfig(**changes)  # type: ignore[arg-type]
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: Generator(latent_dim=0), "latent_dim=0, but it must be an int >= 1"),
        (lambda: Generator(width=1.5), "width=1.5, but it must be an int >= 1"),  # type: ignore[arg-type]
        (lambda: wgan_critic(0), "width=0, but it must be an int >= 1"),
        (lambda: Generator(latent_dim=4).sample(0), "n=0, but it must be an int >= 1"),
        (
            lambda: Generator(latent_dim=4)(torch.zeros(2, 5)),
            r"z has shape \(2, 5\), but it must be \(N, 4\)",
        ),
    ],
    ids=["latent_dim", "width", "critic width", "n", "z"],
)
def test_bad_network_arguments_are_named(call: Any, message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        call()
