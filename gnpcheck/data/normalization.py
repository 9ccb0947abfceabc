r"""The input normalisation, stated once (docs, Note [input scaling]).

gnpcheck feeds networks ``x / 255`` in ``[0, 1]`` and nothing else. A certificate is an L2
radius in the space the network sees. If a pipeline also applies ``(x - mean) / std`` with
one ``std`` for all channels, a radius :math:`\rho` in normalised space is
:math:`\rho \cdot \mathrm{std}` in ``[0, 1]`` pixel space (per-channel stds: the smallest
std gives a valid radius), because that affine map scales every L2 distance by ``1 / std``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from gnpcheck.errors import InvalidArgumentError

__all__ = ["radius_in_pixel_space", "to_unit_interval"]


def to_unit_interval(images: NDArray[np.uint8]) -> NDArray[np.float32]:
    """``uint8`` pixels to ``float32`` in ``[0, 1]`` (division by 255)."""
    if images.dtype != np.uint8:
        raise InvalidArgumentError(f"images has dtype {images.dtype}, but it must be uint8 pixels")
    return images.astype(np.float32) / np.float32(255.0)


def radius_in_pixel_space(radius: float, std: float | Sequence[float]) -> float:
    """An L2 radius certified after ``(x - mean) / std``, expressed in ``[0, 1]`` pixel space."""
    stds = [float(std)] if isinstance(std, (int, float)) else [float(s) for s in std]
    if not stds or min(stds) <= 0:
        raise InvalidArgumentError(f"std={std!r}, but every std must be > 0")
    if radius < 0:
        raise InvalidArgumentError(f"radius={radius}, but it must be >= 0")
    return radius * min(stds)
