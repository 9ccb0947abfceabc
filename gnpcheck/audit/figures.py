r"""The figures a counterexample is judged by, computed through the target itself.

Each takes a batched map ``f`` (``(B, *input_shape) -> (B, ...)``) and returns one number;
the audit uses them to confirm what it found and :meth:`Counterexample.replay` to re-run it.
"""

from __future__ import annotations

import math

import torch

from gnpcheck.audit.linear import Map

__all__ = ["affine_residual", "cotangent_ratio", "has_nonfinite", "pair_ratio", "ratio_of_outputs"]


def _norm(t: torch.Tensor) -> float:
    return float(torch.linalg.vector_norm(t.detach().double().reshape(-1)))


def pair_ratio(f: Map, x: torch.Tensor, y: torch.Tensor) -> float:
    r""":math:`\|f(x) - f(y)\| / \|x - y\|` for single inputs ``x != y`` (``nan`` if an output
    is not finite)."""
    return ratio_of_outputs(f(torch.stack([x, y])), x, y)


def ratio_of_outputs(out: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> float:
    r""":func:`pair_ratio` from the already computed ``out = f(stack([x, y]))``."""
    if not bool(torch.isfinite(out).all()):
        return math.nan
    return _norm(out[0] - out[1]) / _norm(x - y)


def cotangent_ratio(f: Map, x: torch.Tensor, g: torch.Tensor) -> float:
    r""":math:`\|J_f(x)^T g\| / \|g\|` by reverse-mode autograd at the single input ``x``."""
    with torch.enable_grad():
        point = x.detach().clone().unsqueeze(0).requires_grad_(True)
        out = f(point)
        (grad,) = torch.autograd.grad(
            out, point, g.reshape(out.shape).to(out.dtype), allow_unused=True
        )
    if grad is None:
        return 0.0
    return _norm(grad) / _norm(g)


def has_nonfinite(f: Map, x: torch.Tensor) -> bool:
    """Whether ``f`` maps the single input ``x`` to something holding NaN or inf."""
    return not bool(torch.isfinite(f(x.unsqueeze(0))).all())


def affine_residual(f: Map, x: torch.Tensor, y: torch.Tensor, a: float, b: float) -> float:
    r"""Relative :math:`\|g(ax + by) - a g(x) - b g(y)\|` with :math:`g = f - f(0)`."""
    out = f(torch.stack([torch.zeros_like(x), x, y, a * x + b * y])).double()
    offset = out[0]
    lhs = out[3] - offset
    rhs = a * (out[1] - offset) + b * (out[2] - offset)
    scale = _norm(lhs) + _norm(rhs) + _norm(offset) * (1 + abs(a) + abs(b))
    if not math.isfinite(scale):
        return math.inf
    return _norm(lhs - rhs) / max(scale, torch.finfo(torch.float64).tiny)
