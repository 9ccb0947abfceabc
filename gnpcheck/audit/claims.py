r"""The claims an audit can check, what each means, and which apply to a target by default.

Spectral claims (checked on the module in evaluation mode, as a map of one input):

- ``lipschitz``: :math:`\|f(x) - f(y)\| \le L \|x - y\|` for all inputs, ``L`` the stated
  constant (the target's ``lipschitz_bound()`` if it has one, else 1).
- ``orthogonal``: ``f`` is affine, :math:`f(x) = Ax + b`, and every singular value of
  :math:`A` is 1 (:math:`A` has orthonormal rows or columns).
- ``gnp``: gradient norm preservation, :math:`\|J_f(x)^T g\| = \|g\|` for every input ``x``
  and output gradient ``g``.

Behaviour claims (what a layer must do to be trusted in training):

- ``train_eval_consistent``: training and evaluation modes compute the same function.
- ``fresh_after_step``: after an optimizer step, the evaluation output follows the new
  parameters (no stale cached kernel).
- ``parameter_coverage``: every trainable parameter (each slice of a stacked one) influences
  the output.
- ``state_dict_roundtrip``: loading a state dict (saved and read back with
  ``weights_only=True``) restores the function, also right after the load.
- ``export_faithful``: a target with an ``export()`` that takes no arguments and returns a
  module exports plain modules that compute its current function, also right after
  ``load_state_dict`` or an optimizer step with no forward pass between (a stale exported
  kernel is a known failure).
- ``input_size_independent``: the spectral claims hold at a second input size too.

A target states its spectral claims with an attribute ``claims`` (any iterable of the names
above, e.g. ``frozenset({"lipschitz", "orthogonal", "gnp"})``, as
:class:`gnpcheck.nn.base.ConstrainedConv` does) and its constant with ``lipschitz_bound()``.
"""

from __future__ import annotations

from collections.abc import Iterable

from torch import nn

from gnpcheck.errors import InvalidArgumentError, InvalidTypeError

__all__ = [
    "BEHAVIOUR_CLAIMS",
    "CLAIMS",
    "DESCRIPTIONS",
    "EXPORT_FAITHFUL",
    "FRESH_AFTER_STEP",
    "GNP",
    "INPUT_SIZE_INDEPENDENT",
    "LIPSCHITZ",
    "ORTHOGONAL",
    "PARAMETER_COVERAGE",
    "SPECTRAL_CLAIMS",
    "STATE_DICT_ROUNDTRIP",
    "TRAIN_EVAL_CONSISTENT",
    "declared_claims",
    "declared_lipschitz_constant",
    "default_claims",
    "parse_claims",
]

LIPSCHITZ = "lipschitz"
ORTHOGONAL = "orthogonal"
GNP = "gnp"
TRAIN_EVAL_CONSISTENT = "train_eval_consistent"
FRESH_AFTER_STEP = "fresh_after_step"
PARAMETER_COVERAGE = "parameter_coverage"
STATE_DICT_ROUNDTRIP = "state_dict_roundtrip"
EXPORT_FAITHFUL = "export_faithful"
INPUT_SIZE_INDEPENDENT = "input_size_independent"

#: Claims about the map itself, in the order they are checked.
SPECTRAL_CLAIMS: tuple[str, ...] = (LIPSCHITZ, ORTHOGONAL, GNP)
#: Claims about the module's behaviour, in the order they are checked.
BEHAVIOUR_CLAIMS: tuple[str, ...] = (
    TRAIN_EVAL_CONSISTENT,
    FRESH_AFTER_STEP,
    PARAMETER_COVERAGE,
    STATE_DICT_ROUNDTRIP,
    EXPORT_FAITHFUL,
    INPUT_SIZE_INDEPENDENT,
)
#: Every claim, in the order an audit checks them.
CLAIMS: tuple[str, ...] = SPECTRAL_CLAIMS + BEHAVIOUR_CLAIMS

#: One line per claim, for help texts and reports.
DESCRIPTIONS: dict[str, str] = {
    LIPSCHITZ: "||f(x) - f(y)|| <= L ||x - y|| for all inputs",
    ORTHOGONAL: "f is affine and every singular value of its linear part is 1",
    GNP: "||J(x)^T g|| = ||g|| for every input x and output gradient g",
    TRAIN_EVAL_CONSISTENT: "training and evaluation modes compute the same function",
    FRESH_AFTER_STEP: "after an optimizer step the evaluation output follows the new parameters",
    PARAMETER_COVERAGE: "every trainable parameter (each slice of a stacked one) influences the output",
    STATE_DICT_ROUNDTRIP: "load_state_dict restores the function, also right after the load",
    EXPORT_FAITHFUL: "export() computes the current function, also right after a load or step",
    INPUT_SIZE_INDEPENDENT: "the spectral claims also hold at a second input size",
}


def parse_claims(claims: Iterable[str] | str) -> tuple[str, ...]:
    """Validated claim names in :data:`CLAIMS` order; a string is split at commas.

    Raises:
        InvalidArgumentError: an unknown or repeated name, or none at all.
        InvalidTypeError: not strings.
    """
    names = [c.strip() for c in claims.split(",")] if isinstance(claims, str) else list(claims)
    for name in names:
        if not isinstance(name, str):
            raise InvalidTypeError(f"claims={names!r}, but every claim must be a string")
    unknown = [name for name in names if name not in CLAIMS]
    if unknown or not names:
        raise InvalidArgumentError(
            f"claims={names!r}, but each claim must be one of {', '.join(CLAIMS)}"
        )
    if len(set(names)) != len(names):
        raise InvalidArgumentError(f"claims={names!r}, but a claim is repeated")
    return tuple(c for c in CLAIMS if c in names)


def declared_claims(module: nn.Module) -> frozenset[str] | None:
    """The spectral claims ``module.claims`` states, or ``None`` if it states none.

    Names other than the spectral claims are ignored here (they are not about the map).
    """
    stated = getattr(module, "claims", None)
    if stated is None or isinstance(stated, str) or not isinstance(stated, Iterable):
        return None
    return frozenset(c for c in stated if isinstance(c, str) and c in SPECTRAL_CLAIMS)


def declared_lipschitz_constant(module: nn.Module) -> float | None:
    """``module.lipschitz_bound()`` if it has one that returns a positive finite number."""
    bound = getattr(module, "lipschitz_bound", None)
    if not callable(bound):
        return None
    value = bound()
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidTypeError(f"lipschitz_bound() returned {value!r}, but it must be a number")
    if not 0 < float(value) < float("inf"):
        raise InvalidArgumentError(
            f"lipschitz_bound() returned {value!r}, but it must be positive and finite"
        )
    return float(value)


def default_claims(module: nn.Module) -> tuple[str, ...]:
    """The claims that apply to ``module`` by default.

    The spectral claims it declares (``lipschitz`` always: orthogonal and GNP maps are
    1-Lipschitz), else ``lipschitz`` alone; then every behaviour claim. Claims that need
    what the module lacks (parameters, a second input size) are dropped later, with a note.
    """
    stated = declared_claims(module) or frozenset()
    return tuple(c for c in SPECTRAL_CLAIMS if c == LIPSCHITZ or c in stated) + BEHAVIOUR_CLAIMS
