"""The experiment's figures: the estimate over training steps and sample grids."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.image import imread

from gnpcheck.errors import InvalidArgumentError
from gnpcheck.wasserstein.plot import (
    FIGURE_DPI,
    FIGURE_SIZE,
    estimate_figure,
    plot_estimates,
    sample_grid,
)

#: A pixel in [0, 1] written with 8 bits is off by at most half a level (plus float32 rounding).
EIGHT_BITS = 0.5 / 255 + 1e-6

HISTORIES = {
    "BCOP, MaxMin": ((0, 0.01), (50, 1.2), (100, 1.9), (120, 2.05)),
    "OSSN, ReLU": ((0, -0.02), (50, 0.4), (100, 0.7), (120, 0.71)),
}


def test_figure_draws_each_history_and_the_known_value() -> None:
    figure = estimate_figure(HISTORIES, title="mnist vs noise:0.1", known=(2.8, "W1 <= 2.8"))
    (axes,) = figure.axes
    lines = axes.get_lines()
    assert [line.get_label() for line in lines] == [*HISTORIES, "W1 <= 2.8"]
    for line, records in zip(lines, HISTORIES.values(), strict=False):
        np.testing.assert_array_equal(line.get_xdata(), [step for step, _ in records])
        np.testing.assert_array_equal(line.get_ydata(), [gap for _, gap in records])
    np.testing.assert_array_equal(lines[-1].get_ydata(), [2.8, 2.8])
    assert axes.get_title() == "mnist vs noise:0.1"
    (legend,) = figure.legends
    assert [text.get_text() for text in legend.get_texts()] == [*HISTORIES, "W1 <= 2.8"]


def test_png_has_the_stated_size_and_shows_something(tmp_path: Path) -> None:
    path = plot_estimates(HISTORIES, tmp_path / "sub" / "estimate.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pixels = imread(path)
    width, height = (round(inches * FIGURE_DPI) for inches in FIGURE_SIZE)
    assert pixels.shape[:2] == (height, width)
    assert float(pixels[..., :3].std()) > 0.05


@pytest.mark.parametrize(
    ("histories", "message"),
    [
        ({}, r"histories=\{\}, but it must hold at least one curve"),
        ({"a": ()}, r"histories\['a'\] is empty"),
        ({"a": ((0, math.nan),)}, r"histories\['a'\] holds a non-finite value"),
    ],
    ids=["no curve", "empty curve", "nan"],
)
def test_bad_histories_are_named(
    histories: dict[str, tuple[tuple[int, float], ...]], message: str
) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        estimate_figure(histories)


def test_sample_grid_places_every_image_between_white_gaps(tmp_path: Path) -> None:
    images = torch.rand((5, 1, 28, 28), generator=torch.Generator().manual_seed(0))
    path = sample_grid(images, tmp_path / "grid.png", columns=3)
    grey = imread(path)[..., 0]
    assert grey.shape == (2 * 30 + 2, 3 * 30 + 2)
    for index, image in enumerate(images[:, 0].numpy()):
        top, left = 2 + 30 * (index // 3), 2 + 30 * (index % 3)
        tile = grey[top : top + 28, left : left + 28]
        np.testing.assert_allclose(tile, image, rtol=0, atol=EIGHT_BITS)
    assert (grey[:2] == 1).all()
    assert (grey[:, 30:32] == 1).all()
    assert (grey[32:, 62:] == 1).all()


@pytest.mark.parametrize(
    ("images", "columns", "message"),
    [
        (torch.zeros(3, 28, 28), 8, r"shape \(3, 28, 28\), but it must be \(N, 1, H, W\)"),
        (torch.zeros(0, 1, 28, 28), 8, r"with N >= 1"),
        (torch.full((2, 1, 4, 4), 1.5), 8, r"values in \[1.5, 1.5\], but they must be in \[0, 1\]"),
        (torch.zeros(2, 1, 4, 4), 0, "columns=0, but it must be >= 1"),
    ],
    ids=["shape", "empty", "range", "columns"],
)
def test_bad_grids_are_named(
    images: torch.Tensor, columns: int, message: str, tmp_path: Path
) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        sample_grid(images, tmp_path / "grid.png", columns)
    assert not (tmp_path / "grid.png").exists()
