"""How gnpcheck applies its ``autograd.Function``\\ s, so that ``torch.compile`` computes what
eager mode computes (docs/layers.rst, "Compilation and devices").

Forward mode: Dynamo does not trace an ``autograd.Function`` that defines ``jvp``: it breaks
the graph there and runs the Function eagerly (its graph break ``GB0144``), so a kernel
build with a forward-mode rule would fall out of every compiled graph. Each of gnpcheck's
Functions with such a rule is therefore a pair, the Function without ``jvp`` and a subclass
that adds it; :func:`apply_function` applies the first while ``torch.compile`` traces and
the second otherwise.

PyTorch 2.11: its Dynamo traces some Functions into graphs whose backward hands them a zero
gradient (the BCOP kernel build followed by a convolution and a sum over channels, or by a
linear layer: every BCOP parameter's gradient exactly zero, no error; a forward that returns
a tensor after a ``.contiguous()`` that copies nothing is enough). PyTorch 2.12 to 2.14 trace
them correctly. Before 2.12, :func:`apply_function` keeps the Functions out of the compiled
graph (``torch.compiler.disable``): they run eagerly between compiled parts, which is
correct, and ``fullgraph=True`` reports the graph break.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, TypeVar

import torch

__all__ = ["DYNAMO_TRACES_FUNCTIONS", "apply_function", "with_signature"]

_Callable = TypeVar("_Callable", bound=Callable[..., Any])


def _major_minor(version: str) -> tuple[int, int]:
    """``(2, 11)`` of ``"2.11.0+cu130"``."""
    major, minor = version.split(".")[:2]
    return int(major), int(minor)


#: Whether this PyTorch's Dynamo traces gnpcheck's Functions correctly (2.12 and later).
DYNAMO_TRACES_FUNCTIONS: bool = _major_minor(torch.__version__) >= (2, 12)


@torch.compiler.disable(  # type: ignore[untyped-decorator, no-untyped-call]
    reason="this PyTorch (before 2.12) traces gnpcheck's autograd Functions into graphs whose "
    "backward can hand them zero gradients; gnpcheck runs them outside the graph"
)
def _apply_eagerly(function: type[torch.autograd.Function], *args: Any) -> Any:
    return function.apply(*args)  # type: ignore[no-untyped-call]


def apply_function(
    traced: type[torch.autograd.Function],
    with_jvp: type[torch.autograd.Function],
    *args: Any,
) -> Any:
    """``with_jvp.apply(*args)`` in eager mode; while ``torch.compile`` traces,
    ``traced.apply(*args)`` inside the graph, or outside it where Dynamo would trace it
    wrongly (:data:`DYNAMO_TRACES_FUNCTIONS`). ``with_jvp`` subclasses ``traced`` and adds
    only ``jvp``; a Function without a forward-mode rule is passed as both."""
    if not torch.compiler.is_compiling():
        return with_jvp.apply(*args)  # type: ignore[no-untyped-call]
    if DYNAMO_TRACES_FUNCTIONS:
        return traced.apply(*args)  # type: ignore[no-untyped-call]
    return _apply_eagerly(traced, *args)


def with_signature(function: _Callable) -> _Callable:
    """``function`` carrying its signature (``__signature__``), for a Function's
    ``forward``: ``torch.autograd.Function.apply`` binds its arguments to ``forward``'s
    signature on every call (``setup_context`` style), and :func:`inspect.signature`
    computes it anew each time unless the function carries one (some microseconds per
    kernel build)."""
    function.__signature__ = inspect.signature(function)  # type: ignore[attr-defined]
    return function
