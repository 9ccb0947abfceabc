"""Argument checks of :mod:`gnpcheck.wasserstein`: messages ``"name=value, but ..."``."""

from __future__ import annotations

import math

from gnpcheck.errors import InvalidArgumentError, InvalidTypeError

__all__ = ["SEED_LIMIT", "fraction", "integer", "positive", "seed_value"]

#: Seeds are in ``[0, 2**64)``, the range ``torch.Generator.manual_seed`` accepts.
SEED_LIMIT = 2**64


def integer(value: object, name: str, minimum: int | None) -> int:
    """``value`` if it is an int (not a bool) ``>= minimum``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidTypeError(f"{name}={value!r}, but it must be an int")
    if minimum is not None and value < minimum:
        raise InvalidArgumentError(f"{name}={value}, but it must be at least {minimum}")
    return value


def seed_value(value: object, name: str = "seed") -> int:
    """``value`` if it is an int in ``[0, 2**64)``."""
    seed = integer(value, name, 0)
    if seed >= SEED_LIMIT:
        raise InvalidArgumentError(f"{name}={seed}, but it must be below 2**64")
    return seed


def positive(value: object, name: str) -> float:
    """``value`` as a float if it is a finite number ``> 0``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidTypeError(f"{name}={value!r}, but it must be a number")
    if not (math.isfinite(value) and value > 0):
        raise InvalidArgumentError(f"{name}={value}, but it must be finite and > 0")
    return float(value)


def fraction(value: object, name: str) -> float:
    """``value`` as a float if it is a number strictly between 0 and 1."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidTypeError(f"{name}={value!r}, but it must be a number")
    if not 0 < value < 1:
        raise InvalidArgumentError(f"{name}={value}, but it must be strictly between 0 and 1")
    return float(value)
