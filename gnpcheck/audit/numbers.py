"""How reports write numbers."""

from __future__ import annotations

import math

__all__ = ["format_number"]


def format_number(value: float) -> str:
    """Six significant digits; ``"1 + 5.68e-13"`` where those would hide a tiny excess over a
    round number (a constant plus its tolerance, a singular value just above 1)."""
    if math.isnan(value) or math.isinf(value):
        return str(value)
    if not (1e-3 <= abs(value) < 1e4 or value == 0):
        return f"{value:.3g}"
    rounded = float(f"{value:.3g}")
    excess = value - rounded
    if float(f"{value:.6g}") == rounded and excess != 0 and abs(excess) < 1e-6 * abs(rounded):
        return f"{rounded:g} {'+' if excess > 0 else '-'} {abs(excess):.3g}"
    return f"{value:.6g}"
