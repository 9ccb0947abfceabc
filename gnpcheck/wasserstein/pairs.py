r"""The pairs of distributions of the Wasserstein experiment, and what is known about them.

``p`` is MNIST (``"mnist"``: the test split; ``"mnist:train"``: the training split), pixels
in ``[0, 1]``. ``q`` is one of (Note [known distances]):

- ``"mnist"``: other images of the same split (shuffled first). Both sets are samples of
  one distribution: :math:`W_1 = 0` exactly.
- ``"offset:C"``: other images of the split plus the constant ``C`` in every pixel (no
  clipping): a translation by :math:`v = C \mathbf 1`, so :math:`W_1 = \|v\| = |C| \sqrt{D}`
  exactly, ``D = 784`` pixels.
- ``"noise:SIGMA"``: other images of the split plus Gaussian noise :math:`\sigma Z`,
  :math:`Z \sim N(0, I_D)` (no clipping). Moving every image by its own noise is a coupling,
  so :math:`W_1 \le E\|\sigma Z\| = \sigma \sqrt 2\, \Gamma(\tfrac{D+1}{2}) / \Gamma(\tfrac D2)
  \approx \sigma \sqrt{D - 1/2}`: a known upper bound.
- ``"generator:CHECKPOINT"``: samples of a generator trained by
  :func:`gnpcheck.wasserstein.gan.train_generator` (nothing is known; this is the seed's
  real-versus-generated pair).

Note [known distances]: the statements are about the distributions the two sample sets are
drawn from (disjoint images of one split stand for two samples of one distribution), which is
what a held-out critic gap estimates; so a lower bound may exceed a known value only by its
statistical error (:data:`CONSISTENCY_STANDARD_ERRORS`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from scipy.special import gammaln

from gnpcheck.errors import InvalidArgumentError
from gnpcheck.train.dataset import mnist_tensors

__all__ = [
    "CONSISTENCY_STANDARD_ERRORS",
    "SOURCE_FORMS",
    "KnownDistance",
    "Pair",
    "expected_gaussian_norm",
    "is_consistent",
    "make_pair",
    "parse_source",
]

#: The forms ``q`` may take (``p`` is ``mnist`` or ``mnist:train``).
SOURCE_FORMS = ("mnist", "noise:SIGMA", "offset:C", "generator:CHECKPOINT")

#: A lower bound is consistent with a known value when it exceeds it by at most this many of
#: its standard errors. A held-out gap is an unbiased estimate of the trained critic's
#: :math:`E_p f - E_q f \le W_1`; with about normal errors, an estimate whose mean sits at
#: the known value exceeds it by 3 standard errors with probability 0.13%, while a critic
#: that is not what its Lipschitz bound says can exceed it by any amount.
CONSISTENCY_STANDARD_ERRORS = 3.0


@dataclass(frozen=True)
class KnownDistance:
    """What is known about :math:`W_1(p, q)`.

    Attributes:
        value: the distance, or a bound on it.
        relation: ``"exact"`` (:math:`W_1` = value) or ``"upper bound"`` (:math:`W_1 \\le`
            value).
        reason: the formula, in words (e.g. ``"|C| sqrt(784)"``).
    """

    value: float
    relation: Literal["exact", "upper bound"]
    reason: str

    def describe(self) -> str:
        """``"W1 = 1.4 (|C| sqrt(784))"`` or ``"W1 <= 2.8 (...)"``."""
        sign = "=" if self.relation == "exact" else "<="
        return f"W1 {sign} {self.value:.4f} ({self.reason})"


@dataclass(frozen=True)
class Pair:
    """Two sample sets ``(N, 1, 28, 28)`` in float32 and what is known about them.

    Attributes:
        p_spec, q_spec: the specifications they were made from.
        p, q: the samples.
        known: an exact value or upper bound of :math:`W_1`, or ``None``.
    """

    p_spec: str
    q_spec: str
    p: torch.Tensor
    q: torch.Tensor
    known: KnownDistance | None

    @property
    def name(self) -> str:
        """``"mnist vs noise:0.1"``."""
        return f"{self.p_spec} vs {self.q_spec}"


def expected_gaussian_norm(dimension: int) -> float:
    r""":math:`E\|Z\|_2` for :math:`Z \sim N(0, I_D)`: :math:`\sqrt 2\,\Gamma(\frac{D+1}{2}) /
    \Gamma(\frac D2)` (the mean of a chi distribution), computed with log-gamma.

    Raises:
        InvalidArgumentError: ``dimension < 1``.
    """
    if dimension < 1:
        raise InvalidArgumentError(f"dimension={dimension}, but it must be >= 1")
    return math.sqrt(2.0) * math.exp(gammaln((dimension + 1) / 2) - gammaln(dimension / 2))


def parse_source(spec: str) -> tuple[str, str]:
    """Split a ``q`` specification into its kind and argument: ``"noise:0.1"`` ->
    ``("noise", "0.1")``, ``"mnist"`` -> ``("mnist", "")``.

    Raises:
        InvalidArgumentError: not one of :data:`SOURCE_FORMS`; a number that does not
            parse, is not finite, or a ``sigma`` that is not > 0; an empty checkpoint path.
    """
    kind, _, argument = spec.partition(":")
    allowed = f"q={spec!r}, but it must be one of {', '.join(SOURCE_FORMS)}"
    if kind == "mnist" and not argument:
        return kind, argument
    if kind == "generator" and argument:
        return kind, argument
    if kind in ("noise", "offset"):
        try:
            value = float(argument)
        except ValueError:
            raise InvalidArgumentError(allowed) from None
        if not math.isfinite(value) or (kind == "noise" and value <= 0):
            limits = "> 0" if kind == "noise" else "finite"
            raise InvalidArgumentError(f"q={spec!r}, but the {kind} scale must be {limits}")
        return kind, argument
    raise InvalidArgumentError(allowed)


def _split(p_spec: str) -> Literal["train", "test"]:
    if p_spec in ("mnist", "mnist:test"):
        return "test"
    if p_spec == "mnist:train":
        return "train"
    raise InvalidArgumentError(
        f"p={p_spec!r}, but it must be mnist (the test split) or mnist:train"
    )


def make_pair(
    q_spec: str,
    examples: int = 5000,
    *,
    p_spec: str = "mnist",
    data_dir: str | Path | None = None,
    seed: int = 0,
) -> Pair:
    """The samples of a pair, drawn from a split shuffled by a permutation seeded with ``seed``.

    ``p`` is the first ``examples`` images of the shuffled split; ``q`` uses the next
    ``examples`` (disjoint from ``p``) for ``mnist``, ``offset`` and ``noise``, and
    ``Generator.sample(examples, seed)`` for ``generator``. The split must be shuffled: the
    MNIST test set is 5000 images of one group of writers followed by 5000 of another, so its
    halves are not samples of one distribution (docs/wasserstein.rst). For one ``seed`` and
    ``examples``, ``p`` and the images under ``q`` are the same whatever ``q`` is, so pairs
    differ only by what ``q`` adds. The noise is drawn after the permutation, from the same
    seeded generator.

    Raises:
        InvalidArgumentError: a bad specification (:func:`parse_source`), ``examples < 2``,
            or more images than the split holds.
        gnpcheck.data.DataFileError: MNIST or the generator checkpoint is missing or corrupt.
    """
    kind, argument = parse_source(q_spec)
    split = _split(p_spec)
    if isinstance(examples, bool) or not isinstance(examples, int) or examples < 2:
        raise InvalidArgumentError(f"examples={examples!r}, but it must be an int >= 2")
    images, _ = mnist_tensors(split, data_dir)
    needed = examples if kind == "generator" else 2 * examples
    if needed > images.shape[0]:
        raise InvalidArgumentError(
            f"examples={examples}, but the pair needs {needed} images of the {split} split "
            f"({'p' if kind == 'generator' else 'disjoint p and q'}), which holds "
            f"{images.shape[0]}"
        )
    random = torch.Generator().manual_seed(seed)
    order = torch.randperm(images.shape[0], generator=random)
    p, base = images[order[:examples]], images[order[examples : 2 * examples]]
    dimension = math.prod(p.shape[1:])
    known: KnownDistance | None
    if kind == "generator":
        from gnpcheck.wasserstein.gan import load_generator

        q = load_generator(argument).sample(examples, seed)
        known = None
    elif kind == "noise":
        sigma = float(argument)
        noise = torch.randn(base.shape, generator=random)
        q = base + sigma * noise
        bound = sigma * expected_gaussian_norm(dimension)
        known = KnownDistance(bound, "upper bound", f"sigma E||N(0, I_{dimension})||")
    elif kind == "offset":
        offset = float(argument)
        q = base + offset
        known = KnownDistance(abs(offset) * math.sqrt(dimension), "exact", f"|C| sqrt({dimension})")
    else:
        q = base
        known = KnownDistance(0.0, "exact", "two samples of one distribution")
    return Pair(p_spec, q_spec, p, q, known)


def is_consistent(lower_bound: float, error: float, known: KnownDistance | None) -> bool:
    """Whether a W1 lower bound ``lower_bound +- error`` agrees with what is known:
    ``lower_bound <= known.value + CONSISTENCY_STANDARD_ERRORS * error`` (``True`` when
    nothing is known)."""
    if known is None:
        return True
    return lower_bound <= known.value + CONSISTENCY_STANDARD_ERRORS * error
