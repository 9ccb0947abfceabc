r"""Hypothesis strategies for orthogonal convolutions: matrices, projectors, BCOP kernels, inputs.

Conventions (as in ``hypothesis.extra.numpy``): strategies are nouns, take keyword-only
arguments, accept a value or a strategy for each size, and check their arguments when the
strategy is built (a bad value raises :class:`~gnpcheck.errors.InvalidArgumentError` or
:class:`~gnpcheck.errors.InvalidTypeError` right away; a value drawn from a strategy argument
is checked when drawn). Sizes left unset are drawn up to the :func:`size limits
<gnpcheck.hypothesis_profiles.size_limits>` of the active Hypothesis profile, the one knob
that keeps the ``ci`` profile fast and lets ``thorough`` go big.

Well-conditioned objects (orthogonal matrices, projectors, BCOP factors) are built by the
float64 reference from a drawn seed, so sizes, ranks and seeds shrink while every draw stays
valid. Arbitrary kernels and gradients are drawn element by element (they shrink to a few
small integers: readable counterexamples). All arrays are float64, kernels taps first.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from numpy.typing import NDArray

from gnpcheck.errors import InvalidArgumentError, InvalidTypeError
from gnpcheck.hypothesis_profiles import size_limits
from gnpcheck.reference import BCOPFactors, projector, random_orthogonal

__all__ = [
    "IntArgument",
    "bcop_factors",
    "bcop_kernels",
    "channel_counts",
    "gradients",
    "input_shapes",
    "kernel_sizes",
    "kernels",
    "orthogonal_matrices",
    "projectors",
    "seeds",
    "spatial_ndims",
]

#: A size argument: a fixed int or a strategy that draws ints.
IntArgument = int | st.SearchStrategy[int]

_MAX_SEED = 2**32 - 1


def _check_int(value: object, name: str, low: int, high: int | None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InvalidTypeError(f"{name}={value!r}, but it must be an int or a strategy of ints")
    allowed = f">= {low}" if high is None else f"in [{low}, {high}]"
    if value < low or (high is not None and value > high):
        raise InvalidArgumentError(f"{name}={value}, but it must be {allowed}")
    return int(value)


def _int_strategy(
    value: object, name: str, low: int, high: int | None = None
) -> st.SearchStrategy[int]:
    """A strategy for ``value`` (an int, checked now, or a strategy, each draw checked)."""
    if isinstance(value, st.SearchStrategy):
        return value.map(lambda drawn: _check_int(drawn, f"{name} (drawn)", low, high))
    return st.just(_check_int(value, name, low, high))


def _check_det(det: object) -> None:
    if det is not None and (isinstance(det, bool) or det not in (1, -1)):
        raise InvalidArgumentError(f"det={det!r}, but it must be None, 1 or -1")


def seeds() -> st.SearchStrategy[int]:
    """Seeds for :func:`numpy.random.default_rng`: ints in ``[0, 2**32 - 1]``, shrinking to 0."""
    return st.integers(0, _MAX_SEED)


def channel_counts(*, min_value: int = 1, max_value: int | None = None) -> st.SearchStrategy[int]:
    """Channel counts in ``[min_value, max_value]`` (default: the profile's ``max_channels``)."""
    low = _check_int(min_value, "min_value", 1, None)
    high = size_limits().max_channels if max_value is None else max_value
    return st.integers(low, _check_int(high, "max_value", low, None))


def kernel_sizes(*, min_value: int = 1, max_value: int | None = None) -> st.SearchStrategy[int]:
    """Kernel sizes in ``[min_value, max_value]`` (default: the profile's ``max_kernel_size``)."""
    low = _check_int(min_value, "min_value", 1, None)
    high = size_limits().max_kernel_size if max_value is None else max_value
    return st.integers(low, _check_int(high, "max_value", low, None))


def spatial_ndims() -> st.SearchStrategy[int]:
    """1 (sequences) or 2 (images), shrinking to 1."""
    return st.sampled_from((1, 2))


def orthogonal_matrices(
    *, n: IntArgument, det: int | None = None
) -> st.SearchStrategy[NDArray[np.float64]]:
    """Haar-random ``n x n`` orthogonal matrices (of determinant ``det`` if given).

    Raises:
        InvalidArgumentError: ``n < 1`` or ``det`` not in ``(None, 1, -1)``.
    """
    sizes = _int_strategy(n, "n", 1)
    _check_det(det)

    @st.composite
    def draw_matrix(draw: st.DrawFn) -> NDArray[np.float64]:
        rng = np.random.default_rng(draw(seeds()))
        return random_orthogonal(draw(sizes), rng, det)

    return draw_matrix()


def _projector(n: int, rank: int, seed: int) -> NDArray[np.float64]:
    return projector(np.random.default_rng(seed).standard_normal((n, rank)))


def projectors(
    *, n: IntArgument, rank: IntArgument | None = None
) -> st.SearchStrategy[NDArray[np.float64]]:
    """Symmetric projectors :math:`P = P^T = P^2` of size ``n x n`` and rank ``rank``.

    ``rank=None`` draws every rank in ``[0, n]`` (0 and ``n`` included: the zero matrix and
    the identity). ``P = R R^T`` for the orthonormalized Gaussian ``R`` of shape ``(n, rank)``.

    Raises:
        InvalidArgumentError: ``n < 1``, or ``rank`` outside ``[0, n]`` (checked now when
            both are ints, else when drawn).
    """
    sizes = _int_strategy(n, "n", 1)
    fixed_n = n if isinstance(n, int) else None
    ranks = None if rank is None else _int_strategy(rank, "rank", 0, fixed_n)

    @st.composite
    def draw_projector(draw: st.DrawFn) -> NDArray[np.float64]:
        size = draw(sizes)
        k = (
            draw(st.integers(0, size))
            if ranks is None
            else _check_int(draw(ranks), "rank", 0, size)
        )
        return _projector(size, k, draw(seeds()))

    return draw_projector()


def _rank_plan(ranks: int | Sequence[int] | None) -> int | tuple[int, ...] | None:
    if ranks is None:
        return None
    if isinstance(ranks, Sequence) and not isinstance(ranks, (str, bytes)):
        return tuple(_check_int(r, f"ranks[{i}]", 0, None) for i, r in enumerate(ranks))
    return _check_int(ranks, "ranks", 0, None)


def bcop_factors(
    *,
    spatial_ndim: IntArgument | None = None,
    channels: IntArgument | None = None,
    kernel_size: IntArgument | None = None,
    ranks: int | Sequence[int] | None = None,
    det: int | None = None,
) -> st.SearchStrategy[BCOPFactors]:
    r"""BCOP factors :class:`~gnpcheck.reference.BCOPFactors` ``(H, Ps, Qs)``.

    Args:
        spatial_ndim: 1 (``Qs`` is ``None``) or 2; default: both.
        channels: ``n``; default: ``1..max_channels`` of the profile.
        kernel_size: ``K`` (``K - 1`` projectors per axis); default ``1..max_kernel_size``.
        ranks: ``None`` draws each projector's rank in ``[0, n]``; an int gives every projector
            that rank; a sequence of ``K - 1`` ints gives the ranks of ``P_1..P_{K-1}`` (and,
            in 2-D, of ``Q_1..Q_{K-1}``).
        det: ``det H``; ``None`` draws both signs.

    Raises:
        InvalidArgumentError, InvalidTypeError: a bad value, checked now when it is fixed and
            when drawn otherwise (ranks against a drawn ``channels`` or ``kernel_size``).
    """
    ndims = _int_strategy(
        spatial_ndims() if spatial_ndim is None else spatial_ndim, "spatial_ndim", 1, 2
    )
    sizes = _int_strategy(channel_counts() if channels is None else channels, "channels", 1)
    taps = _int_strategy(kernel_sizes() if kernel_size is None else kernel_size, "kernel_size", 1)
    plan = _rank_plan(ranks)
    if isinstance(plan, int) and isinstance(channels, int):
        _check_int(plan, "ranks", 0, channels)
    if isinstance(plan, tuple):
        if isinstance(kernel_size, int) and len(plan) != kernel_size - 1:
            raise InvalidArgumentError(
                f"ranks has {len(plan)} entries, but kernel_size={kernel_size} needs {kernel_size - 1}"
            )
        if isinstance(channels, int):
            for i, r in enumerate(plan):
                _check_int(r, f"ranks[{i}]", 0, channels)
    _check_det(det)

    @st.composite
    def draw_factors(draw: st.DrawFn) -> BCOPFactors:
        d, n, k = draw(ndims), draw(sizes), draw(taps)
        chosen = _ranks_for(draw, plan, n, k)
        sign = draw(st.sampled_from((1, -1))) if det is None else det
        rng = np.random.default_rng(draw(seeds()))
        h = random_orthogonal(n, rng, sign)
        ps = tuple(projector(rng.standard_normal((n, r))) for r in chosen[: k - 1])
        if d == 1:
            return BCOPFactors(h, ps)
        qs = tuple(projector(rng.standard_normal((n, r))) for r in chosen[k - 1 :])
        return BCOPFactors(h, ps, qs)

    return draw_factors()


def _ranks_for(draw: st.DrawFn, plan: int | tuple[int, ...] | None, n: int, k: int) -> list[int]:
    """``2 (k - 1)`` ranks (row then column projectors) following the plan."""
    if plan is None:
        return [draw(st.integers(0, n)) for _ in range(2 * (k - 1))]
    if isinstance(plan, int):
        return [_check_int(plan, "ranks", 0, n)] * (2 * (k - 1))
    if len(plan) != k - 1:
        raise InvalidArgumentError(
            f"ranks has {len(plan)} entries, but the drawn kernel_size={k} needs {k - 1}"
        )
    return [_check_int(r, f"ranks[{i}]", 0, n) for i, r in enumerate(plan)] * 2


def bcop_kernels(
    *,
    spatial_ndim: IntArgument | None = None,
    channels: IntArgument | None = None,
    kernel_size: IntArgument | None = None,
    ranks: int | Sequence[int] | None = None,
    det: int | None = None,
) -> st.SearchStrategy[NDArray[np.float64]]:
    """Taps-first kernels ``W(H, Ps, Qs)`` of :func:`bcop_factors` drawn with the same arguments."""
    return bcop_factors(
        spatial_ndim=spatial_ndim, channels=channels, kernel_size=kernel_size, ranks=ranks, det=det
    ).map(BCOPFactors.kernel)


def kernels(
    *,
    spatial_ndim: IntArgument | None = None,
    kernel_size: IntArgument | None = None,
    out_channels: IntArgument | None = None,
    in_channels: IntArgument | None = None,
) -> st.SearchStrategy[NDArray[np.float64]]:
    """Arbitrary real taps-first kernels (square, tall or wide), entries in ``[-1, 1]``.

    Drawn element by element with ``hypothesis.extra.numpy.arrays``: a failing kernel shrinks
    to few nonzero, simple entries. Sizes default to the profile's limits.
    """
    ndims = _int_strategy(
        spatial_ndims() if spatial_ndim is None else spatial_ndim, "spatial_ndim", 1, 2
    )
    taps = _int_strategy(kernel_sizes() if kernel_size is None else kernel_size, "kernel_size", 1)
    outs = _int_strategy(
        channel_counts() if out_channels is None else out_channels, "out_channels", 1
    )
    ins = _int_strategy(channel_counts() if in_channels is None else in_channels, "in_channels", 1)
    elements = st.floats(-1.0, 1.0, allow_nan=False, allow_infinity=False, allow_subnormal=False)

    @st.composite
    def draw_kernel(draw: st.DrawFn) -> NDArray[np.float64]:
        d, k = draw(ndims), draw(taps)
        shape = (k,) * d + (draw(outs), draw(ins))
        return draw(hnp.arrays(np.float64, shape, elements=elements))

    return draw_kernel()


def input_shapes(
    *, kernel_size: int | tuple[int, ...], spatial_ndim: int, max_side: int | None = None
) -> st.SearchStrategy[tuple[int, ...]]:
    """Spatial input sizes ``(N,)`` or ``(N1, N2)`` with every side at least the kernel's.

    In 2-D both square and non-square shapes are drawn. ``kernel_size`` is an int (the same
    along every axis) or one int per axis; ``max_side`` defaults to the profile's
    ``max_spatial`` (raised to the kernel size if that is larger).

    Raises:
        InvalidArgumentError: ``spatial_ndim`` not 1 or 2, a kernel side below 1, a
            per-axis ``kernel_size`` of the wrong length, or ``max_side`` below a kernel side.
    """
    d = _check_int(spatial_ndim, "spatial_ndim", 1, 2)
    if isinstance(kernel_size, tuple):
        if len(kernel_size) != d:
            raise InvalidArgumentError(
                f"kernel_size={kernel_size!r}, but spatial_ndim={d} needs {d} sizes"
            )
        sides = tuple(_check_int(k, "kernel_size", 1, None) for k in kernel_size)
    else:
        sides = (_check_int(kernel_size, "kernel_size", 1, None),) * d
    if max_side is None:
        top = max(size_limits().max_spatial, *sides)
    else:
        top = _check_int(max_side, "max_side", max(sides), None)
    independent = st.tuples(*(st.integers(k, top) for k in sides))
    if d == 1:
        return independent
    square = st.integers(max(sides), top).map(lambda side: (side,) * d)
    return st.one_of(square, independent)


def gradients(
    *, channels: int, input_shape: tuple[int, ...], count: IntArgument = 2
) -> st.SearchStrategy[NDArray[np.float64]]:
    """``count`` nonzero gradients of shape ``(count, channels, *input_shape)``.

    Half the draws are small integers (shrinking to impulses, the most readable
    counterexample), half Gaussian from a seed (dense, no structure). A gradient drawn
    entirely zero gets a 1 at its first entry (a zero gradient says nothing about GNP).

    Raises:
        InvalidArgumentError: ``channels``, ``count`` or a side of ``input_shape`` below 1.
    """
    n = _check_int(channels, "channels", 1, None)
    if not isinstance(input_shape, tuple) or not 1 <= len(input_shape) <= 2:
        raise InvalidArgumentError(
            f"input_shape={input_shape!r}, but it must be a tuple (N,) or (N1, N2)"
        )
    spatial = tuple(_check_int(side, "input_shape", 1, None) for side in input_shape)
    counts = _int_strategy(count, "count", 1)
    integers = st.integers(-3, 3).map(float)

    @st.composite
    def draw_gradients(draw: st.DrawFn) -> NDArray[np.float64]:
        shape = (draw(counts), n, *spatial)
        if draw(st.booleans()):
            g = np.random.default_rng(draw(seeds())).standard_normal(shape)
        else:
            g = draw(hnp.arrays(np.float64, shape, elements=integers))
        flat = g.reshape(shape[0], -1)
        flat[~flat.any(axis=1), 0] = 1.0
        return flat.reshape(shape)

    return draw_gradients()
