r"""The training configuration: one dataclass, read from TOML and overridden on the command line.

Precedence: the defaults below, then a TOML file (top-level keys named as the fields), then
command-line flags (``--batch-size 256``; ``none`` clears an optional field). Unknown keys
and values of the wrong type are errors that name the key. The defaults are the seed's
recipe (Li et al., NeurIPS 2019, MNIST): Adam at ``1e-3``, learning rate times
``0.96235`` per epoch, batch 128, hinge margin :math:`\sqrt 2 \cdot 1.5`, 200 epochs.
"""

from __future__ import annotations

import math
import tomllib
import types
import typing
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from gnpcheck.errors import InvalidArgumentError, InvalidTypeError
from gnpcheck.models import ACTIVATIONS, CONVS, INIT_SCALES, MODELS

__all__ = [
    "BUDGET_FIELDS",
    "LOSSES",
    "LR_SCHEDULES",
    "SEED_LR_DECAY",
    "TrainConfig",
    "config_from_dict",
    "field_types",
    "load_config",
    "parse_value",
]


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run.

    Attributes:
        model, conv, act: architecture (``small``/``large``/``fc3``), convolution
            (``bcop``/``rko``/``ossn``/``svcm``) and activation (``maxmin``/``relu``).
        padding: ``circular`` or ``same`` (zeros) for every convolution.
        orthogonalizer, bjorck_iters: BCOP's orthonormalization (``qr``, or ``bjorck`` with
            ``bjorck_iters`` iterations, the layer's default when unset).
        linear_orthogonalizer, linear_bjorck_iters: the linear layers' ``polar`` factor (the
            limit of Björck's iterations, computed by an SVD: the seed's converged map,
            exactly and faster) or ``bjorck`` with ``linear_bjorck_iters`` iterations (the
            layer's default, 20, when unset).
        init_scale: ``fan_in`` (the seed's) or ``unit`` scale of the BCOP and Björck
            matrices at initialization (:mod:`gnpcheck.models.components`, Note [init scale]).
        epochs, batch_size: training length and global batch (split over processes in DDP).
        lr, lr_schedule, lr_decay: Adam's learning rate and its schedule per epoch:
            ``exponential`` multiplies it by ``lr_decay`` after every epoch (default: the
            seed's :data:`SEED_LR_DECAY`); ``cosine`` anneals it over ``epochs`` to
            ``lr (1 + cos(pi e / epochs)) / 2`` in epoch ``e`` (no ``lr_decay``; the run's
            ``epochs`` are then fixed at resume).
        average_decay: keep an exponential moving average of the parameters with this decay
            per step and evaluate it (``None``: no average; :mod:`gnpcheck.train.loop`).
        loss: ``hinge`` (the seed's multi-class hinge, averaged over the competing
            classes: :func:`gnpcheck.certify.multiclass_hinge_loss`) or ``max_hinge`` (the
            hinge of the certified margin, on the strongest competitor only:
            :func:`gnpcheck.certify.max_margin_hinge_loss`).
        eps_train: the hinge loss margin is ``sqrt(2) * eps_train``.
        eps_cert: the L2 radius of the certified accuracy reported while training.
        seed: initialization and data order (epoch ``e`` shuffles with ``seed + e``).
        threads: ``torch.set_num_threads`` during the run.
        time_limit: stop after this many minutes of training (evaluation not counted).
        eval_every: evaluate on the test set every this many epochs (and at the end).
        train_examples, test_examples: use only the first examples of each split.
        data_dir: MNIST directory (default: :func:`gnpcheck.data.default_mnist_dir`).
        device: ``cpu`` or a CUDA device (``cuda``, ``cuda:1``).
        channels_last: store images and activations in the channels-last memory format.
        progress: show a tqdm progress bar.
    """

    model: str = "small"
    conv: str = "bcop"
    act: str = "maxmin"
    padding: str = "circular"
    orthogonalizer: str = "qr"
    bjorck_iters: int | None = None
    linear_orthogonalizer: str = "polar"
    linear_bjorck_iters: int | None = None
    init_scale: str = "fan_in"
    epochs: int = 200
    batch_size: int = 128
    lr: float = 1e-3
    lr_schedule: str = "exponential"
    lr_decay: float | None = None
    average_decay: float | None = None
    loss: str = "hinge"
    eps_train: float = 1.5
    eps_cert: float = 1.58
    seed: int = 0
    threads: int = 2
    time_limit: float | None = None
    eval_every: int = 1
    train_examples: int | None = None
    test_examples: int | None = None
    data_dir: str | None = None
    device: str = "cpu"
    channels_last: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        _check_choice(self.model, "model", MODELS)
        _check_choice(self.conv, "conv", CONVS)
        _check_choice(self.act, "act", ACTIVATIONS)
        _check_choice(self.padding, "padding", ("circular", "same"))
        _check_choice(self.orthogonalizer, "orthogonalizer", ("qr", "bjorck"))
        _check_choice(self.init_scale, "init_scale", INIT_SCALES)
        _check_choice(self.lr_schedule, "lr_schedule", LR_SCHEDULES)
        _check_choice(self.loss, "loss", LOSSES)
        _check_choice(self.linear_orthogonalizer, "linear_orthogonalizer", ("polar", "bjorck"))
        if self.linear_orthogonalizer == "polar" and self.linear_bjorck_iters is not None:
            raise InvalidArgumentError(
                f"linear_bjorck_iters={self.linear_bjorck_iters}, but "
                "linear_orthogonalizer='polar' has no iterations"
            )
        if self.orthogonalizer == "qr" and self.bjorck_iters is not None:
            raise InvalidArgumentError(
                f"bjorck_iters={self.bjorck_iters}, but orthogonalizer='qr' has no iterations"
            )
        for name in ("epochs", "batch_size", "threads", "eval_every"):
            _check_positive(getattr(self, name), name)
        for name in ("bjorck_iters", "linear_bjorck_iters", "train_examples", "test_examples"):
            if getattr(self, name) is not None:
                _check_positive(getattr(self, name), name)
        for name in ("lr", "eps_train"):
            if not 0 < getattr(self, name) < math.inf:
                raise InvalidArgumentError(f"{name}={getattr(self, name)}, but it must be > 0")
        if self.average_decay is not None and not 0 <= self.average_decay < 1:
            raise InvalidArgumentError(
                f"average_decay={self.average_decay}, but it must be in [0, 1) or none"
            )
        if self.lr_decay is not None and not 0 < self.lr_decay <= 1:
            raise InvalidArgumentError(f"lr_decay={self.lr_decay}, but it must be in (0, 1]")
        if self.lr_schedule == "cosine" and self.lr_decay is not None:
            raise InvalidArgumentError(
                f"lr_decay={self.lr_decay}, but lr_schedule='cosine' has no decay factor"
            )
        if not 0 <= self.eps_cert < math.inf:
            raise InvalidArgumentError(f"eps_cert={self.eps_cert}, but it must be >= 0")
        if self.time_limit is not None and not 0 < self.time_limit < math.inf:
            raise InvalidArgumentError(
                f"time_limit={self.time_limit}, but it must be a positive number of minutes"
            )
        if self.device != "cpu" and not self.device.startswith("cuda"):
            raise InvalidArgumentError(
                f"device={self.device!r}, but it must be 'cpu' or 'cuda[:N]'"
            )

    @property
    def decay_per_epoch(self) -> float:
        """The exponential schedule's factor: ``lr_decay``, or the seed's when unset."""
        return SEED_LR_DECAY if self.lr_decay is None else self.lr_decay

    def to_dict(self) -> dict[str, Any]:
        """The fields as a plain dict (what checkpoints store)."""
        return asdict(self)


#: The seed's learning-rate factor per epoch (about 4.5e-4 of the initial rate after 200).
SEED_LR_DECAY = 0.96235062639

#: Training losses (:attr:`TrainConfig.loss`).
LOSSES = ("hinge", "max_hinge")

#: Learning-rate schedules (:attr:`TrainConfig.lr_schedule`).
LR_SCHEDULES = ("exponential", "cosine")

#: Fields that may change when a run is resumed (how long and how it runs, not what it learns).
BUDGET_FIELDS = frozenset(
    {"epochs", "time_limit", "eval_every", "threads", "progress", "data_dir", "device"}
)


_KINDS = {int: "an int", float: "a number", str: "a string", bool: "true or false"}


def _check_choice(value: object, name: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise InvalidArgumentError(f"{name}={value!r}, but it must be one of {', '.join(allowed)}")


def _check_positive(value: int, name: str) -> None:
    if value < 1:
        raise InvalidArgumentError(f"{name}={value}, but it must be at least 1")


def field_types() -> dict[str, tuple[type, bool]]:
    """Each field's base type (``int``, ``float``, ``str`` or ``bool``) and whether it may be None."""
    hints = typing.get_type_hints(TrainConfig)
    result: dict[str, tuple[type, bool]] = {}
    for item in fields(TrainConfig):
        hint = hints[item.name]
        args = typing.get_args(hint) if isinstance(hint, types.UnionType) else ()
        base = next((arg for arg in args if arg is not type(None)), hint)
        result[item.name] = (base, type(None) in args)
    return result


def _coerce(name: str, value: object) -> object:
    types_by_name = field_types()
    if name not in types_by_name:
        raise InvalidArgumentError(
            f"{name}={value!r}, but it is not a training setting; known: "
            + ", ".join(sorted(types_by_name))
        )
    base, optional = types_by_name[name]
    if value is None and optional:
        return None
    if base is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    wrong_bool = isinstance(value, bool) and base is not bool
    if wrong_bool or not isinstance(value, base):
        raise InvalidTypeError(f"{name}={value!r}, but it must be {_KINDS[base]}")
    return value


def parse_value(name: str, text: str) -> object:
    """A command-line string as the type of field ``name`` (``none`` for an optional field).

    Raises:
        InvalidArgumentError: unknown field or unparsable value.
    """
    base, optional = field_types().get(name, (str, False))
    if optional and text.lower() == "none":
        return None
    try:
        if base is bool:
            if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(text)
            return text.lower() in ("true", "1", "yes")
        return base(text)
    except ValueError:
        raise InvalidArgumentError(
            f"{name}={text!r}, but it must be {_KINDS[base]}" + (" or none" if optional else "")
        ) from None


def config_from_dict(values: dict[str, Any], base: TrainConfig | None = None) -> TrainConfig:
    """``base`` (default: the defaults) with ``values`` replacing its fields, type-checked.

    Raises:
        InvalidArgumentError, InvalidTypeError: unknown key, wrong type, invalid value.
    """
    checked: dict[str, Any] = {name: _coerce(name, value) for name, value in values.items()}
    return replace(base or TrainConfig(), **checked)


def load_config(path: str | Path, base: TrainConfig | None = None) -> TrainConfig:
    """Read a TOML file of top-level ``key = value`` settings over ``base``.

    Raises:
        InvalidArgumentError: the file is missing or not valid TOML, or a setting is invalid.
    """
    source = Path(path)
    try:
        values = tomllib.loads(source.read_text(encoding="utf-8"))
    except OSError as error:
        raise InvalidArgumentError(
            f"config={str(source)!r}, but it cannot be read ({error})"
        ) from None
    except tomllib.TOMLDecodeError as error:
        raise InvalidArgumentError(
            f"config={str(source)!r}, but it is not TOML ({error})"
        ) from None
    tables = [key for key, value in values.items() if isinstance(value, dict)]
    if tables:
        raise InvalidArgumentError(
            f"config={str(source)!r} has tables {tables}, but settings are top-level keys"
        )
    return config_from_dict(values, base)
