r"""Gradient-norm-preserving activations: MaxMin and GroupSort (Anil, Lucas and Grosse, 2019).

Both sort values within groups of channels, so away from ties their Jacobian is a
permutation matrix: ``||J^T g|| = ||g||`` (GNP) and 1-Lipschitz everywhere. ReLU, by
contrast, is 1-Lipschitz but zeroes gradients.

Groups (docs/layers.rst, Note [groups]): the channel axis of size ``C`` is viewed as
``(group_size, C / group_size)``; group ``j`` holds channels ``j, j + C/g, ..., j + (g-1) C/g``
and is sorted in descending order. ``GroupSort(2)`` is therefore ``MaxMin``:
``cat(max(a, b), min(a, b))`` of the two halves ``a, b`` of the channels.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from gnpcheck.errors import InvalidArgumentError, InvalidTypeError
from gnpcheck.nn._arguments import positive_int
from gnpcheck.nn.functions import apply_function, with_signature

__all__ = ["GroupSort", "MaxMin"]


def _check_axis(x: torch.Tensor, dim: int, group_size: int) -> int:
    if not isinstance(x, torch.Tensor):
        raise InvalidTypeError(f"input is a {type(x).__name__}, but it must be a torch.Tensor")
    if not -x.ndim <= dim < x.ndim:
        raise InvalidArgumentError(
            f"dim={dim}, but the input has shape {tuple(x.shape)} ({x.ndim} dimensions)"
        )
    size = x.shape[dim]
    if size % group_size:
        raise InvalidArgumentError(
            f"input has {size} channels along dim={dim}, but group_size={group_size} must divide it"
        )
    return dim % x.ndim


class _Sorting(nn.Module):
    @property
    def claims(self) -> frozenset[str]:
        """``"lipschitz"`` and ``"gnp"``: the Jacobian is a permutation, chosen piecewise."""
        return frozenset({"lipschitz", "gnp"})

    def lipschitz_bound(self) -> float:
        """1: a permutation of the input, chosen piecewise."""
        return 1.0


class _MaxMinFunction(torch.autograd.Function):
    """MaxMin with its Jacobian as a permutation everywhere: one comparison ``a >= b`` chooses
    which of each pair goes up, and backward sends each gradient back along the same choice.
    (``torch.maximum``'s own backward splits the gradient in half at ties, which is not a
    permutation, and costs a comparison, a selection and a fill per half.)"""

    generate_vmap_rule = True

    @staticmethod
    @with_signature
    def forward(x: torch.Tensor, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
        a, b = x.chunk(2, dim=dim)
        up = a >= b
        return torch.cat([torch.where(up, a, b), torch.where(up, b, a)], dim=dim), up

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[torch.Tensor, int], output: Any) -> None:
        _, up = output
        ctx.mark_non_differentiable(up)
        ctx.save_for_backward(up)
        ctx.dim = inputs[1]

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor, *unused: Any) -> tuple[torch.Tensor, None]:
        (up,) = ctx.saved_tensors
        high, low = grad.chunk(2, dim=ctx.dim)
        return torch.cat(
            [torch.where(up, high, low), torch.where(up, low, high)], dim=ctx.dim
        ), None


class MaxMin(_Sorting):
    """``cat(max(a, b), min(a, b))`` for the halves ``a, b`` of the channels along ``dim``.

    Args:
        dim: the channel axis (default 1).

    Raises:
        InvalidArgumentError: at forward, an odd number of channels along ``dim``.
    """

    def __init__(self, dim: int = 1) -> None:
        super().__init__()
        if isinstance(dim, bool) or not isinstance(dim, int):
            raise InvalidTypeError(f"dim={dim!r}, but it must be an int")
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Sort each pair ``(x_j, x_{j + C/2})`` in descending order."""
        dim = _check_axis(x, self.dim, 2)
        sorted_pairs: torch.Tensor = apply_function(_MaxMinFunction, _MaxMinFunction, x, dim)[0]
        return sorted_pairs

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class GroupSort(_Sorting):
    """Sort groups of ``group_size`` channels in descending order (see Note [groups]).

    Args:
        group_size: channels per group (``>= 1``; 1 is the identity, 2 is :class:`MaxMin`).
        dim: the channel axis (default 1).

    Raises:
        InvalidArgumentError: ``group_size < 1``; at forward, a channel count along ``dim``
            that ``group_size`` does not divide.
    """

    def __init__(self, group_size: int, dim: int = 1) -> None:
        super().__init__()
        self.group_size = positive_int(group_size, "group_size")
        if isinstance(dim, bool) or not isinstance(dim, int):
            raise InvalidTypeError(f"dim={dim!r}, but it must be an int")
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Sort within each group along ``dim``."""
        dim = _check_axis(x, self.dim, self.group_size)
        shape = x.shape
        grouped = x.reshape(
            *shape[:dim], self.group_size, shape[dim] // self.group_size, *shape[dim + 1 :]
        )
        return grouped.sort(dim=dim, descending=True).values.reshape(shape)

    def extra_repr(self) -> str:
        return f"group_size={self.group_size}, dim={self.dim}"
