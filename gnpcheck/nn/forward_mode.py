"""Forward-mode rules that ``torch.compile`` can live with (docs/layers.rst, "Compilation and
devices").

Dynamo does not trace an ``autograd.Function`` that defines ``jvp``: it breaks the graph
there and runs the Function eagerly (its graph break ``GB0144``), so a kernel build with a
forward-mode rule would fall out of every compiled graph. Each of gnpcheck's Functions with
such a rule is therefore a pair, the Function without ``jvp`` and a subclass that adds it;
:func:`apply_function` applies the first while ``torch.compile`` traces and the second
otherwise.
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["apply_function"]


def apply_function(
    traced: type[torch.autograd.Function],
    with_jvp: type[torch.autograd.Function],
    *args: Any,
) -> Any:
    """``traced.apply(*args)`` while ``torch.compile`` traces, else ``with_jvp.apply(*args)``
    (``with_jvp`` subclasses ``traced`` and adds only ``jvp``)."""
    function = traced if torch.compiler.is_compiling() else with_jvp
    return function.apply(*args)  # type: ignore[no-untyped-call]
