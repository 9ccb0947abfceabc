"""Figures of the Wasserstein experiment: the estimate over training steps, sample grids.

Both write PNG files with Matplotlib's Agg renderer through a :class:`matplotlib.figure.Figure`
that is never registered with ``pyplot`` (no global state, no display needed).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure

from gnpcheck.errors import InvalidArgumentError

__all__ = ["FIGURE_DPI", "FIGURE_SIZE", "estimate_figure", "plot_estimates", "sample_grid"]

#: Size of the estimate figure in inches and its resolution: 960 x 600 pixels.
FIGURE_SIZE = (6.4, 4.0)
FIGURE_DPI = 150

#: Pixels of white between the tiles of a sample grid.
_GRID_GAP = 2


def estimate_figure(
    histories: Mapping[str, Sequence[tuple[int, float]]],
    *,
    title: str | None = None,
    known: tuple[float, str] | None = None,
) -> Figure:
    r"""The held-out gap :math:`E_p f - E_q f` against training steps, one curve per critic.

    Args:
        histories: a label (e.g. ``"BCOP, MaxMin"``) to its ``(step, held-out gap)`` records,
            as :attr:`WassersteinEstimate.history` holds them.
        title: the figure's title.
        known: a known value and its label (e.g. ``(2.79, "upper bound")``), drawn as a
            horizontal dashed line.

    Returns:
        The figure (not shown, not registered with ``pyplot``).

    Raises:
        InvalidArgumentError: no curve, or a curve without records or with non-finite values.
    """
    if not histories:
        raise InvalidArgumentError("histories={}, but it must hold at least one curve")
    figure = Figure(figsize=FIGURE_SIZE, dpi=FIGURE_DPI, layout="constrained")
    axes = figure.subplots()
    for label, records in histories.items():
        if not records:
            raise InvalidArgumentError(f"histories[{label!r}] is empty, but it needs records")
        steps = [float(step) for step, _ in records]
        gaps = [float(gap) for _, gap in records]
        if not all(math.isfinite(value) for value in (*steps, *gaps)):
            raise InvalidArgumentError(
                f"histories[{label!r}] holds a non-finite value, but steps and gaps must be finite"
            )
        axes.plot(steps, gaps, marker="." if len(records) < 30 else None, label=label)
    if known is not None:
        value, text = known
        axes.axhline(value, color="black", linestyle="--", linewidth=1.0, label=text)
    axes.set_xlabel("training step of the critic")
    axes.set_ylabel("held-out $E_p f - E_q f$")
    if title:
        axes.set_title(title)
    axes.grid(alpha=0.3)
    # Below the axes, so that it hides neither the curves nor the known value.
    figure.legend(loc="outside lower center", ncols=3, fontsize="small")
    return figure


def plot_estimates(
    histories: Mapping[str, Sequence[tuple[int, float]]],
    path: str | Path,
    *,
    title: str | None = None,
    known: tuple[float, str] | None = None,
) -> Path:
    """Write :func:`estimate_figure` as a PNG of 960 x 600 pixels; returns the path.

    Raises:
        InvalidArgumentError: see :func:`estimate_figure`.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    estimate_figure(histories, title=title, known=known).savefig(target, format="png")
    return target


def sample_grid(images: torch.Tensor, path: str | Path, columns: int = 8) -> Path:
    """Write images ``(N, 1, H, W)`` in ``[0, 1]`` as one grey 8-bit PNG, ``columns`` per row.

    Tiles are separated by 2 white pixels: the PNG is ``rows * (H + 2) + 2`` pixels high and
    ``columns * (W + 2) + 2`` wide, ``rows = ceil(N / columns)``; empty tiles stay white.

    Raises:
        InvalidArgumentError: ``images`` is not ``(N, 1, H, W)`` with ``N >= 1``, has values
            outside ``[0, 1]``, or ``columns < 1``.
    """
    from matplotlib.image import imsave

    if images.ndim != 4 or images.shape[1] != 1 or images.shape[0] < 1:
        raise InvalidArgumentError(
            f"images has shape {tuple(images.shape)}, but it must be (N, 1, H, W) with N >= 1"
        )
    if columns < 1:
        raise InvalidArgumentError(f"columns={columns}, but it must be >= 1")
    pixels = images.detach().double().cpu().numpy()[:, 0]
    if not (np.isfinite(pixels).all() and pixels.min() >= 0 and pixels.max() <= 1):
        raise InvalidArgumentError(
            f"images has values in [{pixels.min():g}, {pixels.max():g}], but they must be in [0, 1]"
        )
    count, height, width = pixels.shape
    rows, gap = math.ceil(count / columns), _GRID_GAP
    grid = np.ones((rows * (height + gap) + gap, columns * (width + gap) + gap))
    for index, tile in enumerate(pixels):
        top = gap + (index // columns) * (height + gap)
        left = gap + (index % columns) * (width + gap)
        grid[top : top + height, left : left + width] = tile
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    grey = np.round(grid * 255).astype(np.uint8)
    imsave(target, np.repeat(grey[:, :, None], 3, axis=2), format="png")
    return target
