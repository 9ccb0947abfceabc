"""The training configuration: the seed's defaults, TOML, command-line precedence, errors."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import pytest

from gnpcheck.errors import InvalidArgumentError, InvalidTypeError
from gnpcheck.train.config import TrainConfig, config_from_dict, load_config, parse_value
from gnpcheck.train_cli import _settings, add_train_parsers


def test_defaults_are_the_seeds_recipe() -> None:
    config = TrainConfig()
    assert (config.model, config.conv, config.act) == ("small", "bcop", "maxmin")
    assert (config.lr, config.batch_size, config.epochs) == (1e-3, 128, 200)
    assert config.eps_train == 1.5
    assert config.eps_cert == 1.58
    # The seed decays by 0.96235 per epoch: a factor of 1/e^... about 0.00045 over 200 epochs.
    assert math.isclose(config.decay_per_epoch**200, 4.5e-4, rel_tol=0.05)


def test_toml_then_flags_override_the_defaults(tmp_path: Path) -> None:
    path = tmp_path / "run.toml"
    path.write_text('conv = "rko"\nbatch_size = 256\nlr = 2\ntime_limit = 15\n')
    parser = argparse.ArgumentParser()
    add_train_parsers(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        ["train", "--out", "x", "--config", str(path), "--batch-size", "512", "--no-progress"]
    )
    config = config_from_dict(_settings(args), load_config(args.config))
    assert config.conv == "rko"  # from the file
    assert config.batch_size == 512  # the flag wins
    assert config.lr == 2.0
    assert isinstance(config.lr, float)
    assert config.time_limit == 15.0
    assert config.progress is False
    assert config.model == "small"  # the default


def test_none_clears_an_optional_setting() -> None:
    assert parse_value("time_limit", "none") is None
    assert parse_value("time_limit", "7.5") == 7.5
    assert parse_value("channels_last", "true") is True


@pytest.mark.parametrize(
    ("values", "error", "match"),
    [
        ({"batch": 3}, InvalidArgumentError, "batch=3, but it is not a training setting"),
        ({"epochs": 2.5}, InvalidTypeError, "epochs=2.5, but it must be an int"),
        ({"epochs": True}, InvalidTypeError, "epochs=True, but it must be an int"),
        ({"conv": "spectral"}, InvalidArgumentError, "conv='spectral', but it must be one of"),
        ({"epochs": 0}, InvalidArgumentError, "epochs=0, but it must be at least 1"),
        ({"lr_decay": 1.5}, InvalidArgumentError, r"lr_decay=1.5, but it must be in \(0, 1\]"),
        ({"bjorck_iters": 5}, InvalidArgumentError, "orthogonalizer='qr' has no iterations"),
        ({"time_limit": -1}, InvalidArgumentError, "time_limit=-1.0, but it must be a positive"),
        ({"device": "tpu"}, InvalidArgumentError, "device='tpu', but it must be 'cpu'"),
        (
            {"average_decay": 1},
            InvalidArgumentError,
            r"average_decay=1.0, but it must be in \[0, 1\)",
        ),
        (
            {"linear_bjorck_iters": 5},
            InvalidArgumentError,
            "linear_bjorck_iters=5, but linear_orthogonalizer='polar' has no iterations",
        ),
        ({"lr_schedule": "step"}, InvalidArgumentError, "lr_schedule='step', but it must be one"),
        ({"loss": "l1"}, InvalidArgumentError, "loss='l1', but it must be one"),
        (
            {"lr_schedule": "cosine", "lr_decay": 0.9},
            InvalidArgumentError,
            "lr_decay=0.9, but lr_schedule='cosine' has no decay factor",
        ),
    ],
    ids=[
        "unknown",
        "float-for-int",
        "bool-for-int",
        "choice",
        "range",
        "decay",
        "qr-iters",
        "time",
        "device",
        "average",
        "polar-iters",
        "schedule",
        "loss",
        "cosine-decay",
    ],
)
def test_bad_settings_name_the_key(values: dict[str, object], error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        config_from_dict(values)


def test_bad_files_are_errors(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError, match="cannot be read"):
        load_config(tmp_path / "missing.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("lr = = 1\n")
    with pytest.raises(InvalidArgumentError, match="is not TOML"):
        load_config(broken)
    nested = tmp_path / "nested.toml"
    nested.write_text("[train]\nlr = 1\n")
    with pytest.raises(InvalidArgumentError, match="settings are top-level keys"):
        load_config(nested)
    with pytest.raises(InvalidArgumentError, match="lr='fast', but it must be a number"):
        parse_value("lr", "fast")
