"""A kernel cache for evaluation that cannot go stale (docs/layers.rst, Note [kernel cache]).

A constrained layer builds its kernel from its parameters on every differentiable forward
pass. When nothing is differentiated (``torch.no_grad()``, ``torch.inference_mode()``, or
parameters that do not require grad) the kernel of the previous call can be reused, but
only if it was built from exactly the parameters the layer holds now.

:class:`KernelCache` decides that by value, not by bookkeeping: it keeps a copy of the
parameters the cached kernel was built from and reuses the kernel only when every current
parameter has the same dtype, device and shape and is elementwise equal to its copy
(``torch.equal``) and the configuration key is unchanged. Version counters and data
pointers miss writes through ``.data`` and storage reuse; a comparison of the values does
not, whatever changed them: an optimizer step, ``load_state_dict``, ``.to()``, ``.data``
assignments or in-place edits. The comparison reads the parameters once (a few microseconds
for a layer's ``3 n^2`` numbers) and is skipped entirely on the differentiable path.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

import torch

__all__ = ["KernelCache", "differentiating", "transforming"]


def differentiating(parameters: Sequence[torch.Tensor]) -> bool:
    """Whether autograd would record a kernel built from ``parameters`` now."""
    return torch.is_grad_enabled() and any(p.requires_grad for p in parameters)


def transforming() -> bool:
    """Whether a ``torch.func`` transform (vmap, grad, jacrev, ...) is active: its wrapped
    tensors must be neither cached, compared nor branched on."""
    return torch._C._functorch.peek_interpreter_stack() is not None


@dataclass
class _Entry:
    key: Hashable
    snapshot: tuple[torch.Tensor, ...]
    kernel: torch.Tensor


def _same(current: torch.Tensor, saved: torch.Tensor) -> bool:
    return (
        current.dtype == saved.dtype
        and current.device == saved.device
        and current.shape == saved.shape
        and bool(torch.equal(current, saved))
    )


class KernelCache:
    """Holds at most one kernel, and hands it out only while it is provably current."""

    def __init__(self) -> None:
        self._entry: _Entry | None = None

    def clear(self) -> None:
        """Forget the cached kernel."""
        self._entry = None

    @property
    def filled(self) -> bool:
        """Whether a kernel is held (it is still checked before every use)."""
        return self._entry is not None

    def get(
        self,
        parameters: Sequence[torch.Tensor],
        build: Callable[[], torch.Tensor],
        key: Hashable = None,
    ) -> torch.Tensor:
        """The kernel ``build()`` returns for the current ``parameters``.

        On the differentiable path (see :func:`differentiating`), while compiling and inside
        ``torch.func`` transforms, always ``build()``, and the cache is left alone. Otherwise the cached kernel if its key and
        parameter copies match the current ones exactly, else a fresh ``build()``, cached.
        A kernel built in inference mode is not reused outside it (autograd may not save it).
        """
        if differentiating(parameters) or torch.compiler.is_compiling() or transforming():
            return build()
        entry = self._entry
        if (
            entry is not None
            and entry.key == key
            and len(entry.snapshot) == len(parameters)
            and (torch.is_inference_mode_enabled() or not entry.kernel.is_inference())
            and all(_same(p, s) for p, s in zip(parameters, entry.snapshot, strict=True))
        ):
            return entry.kernel
        with torch.no_grad():
            kernel = build().detach()
            snapshot = tuple(p.detach().clone() for p in parameters)
        self._entry = _Entry(key, snapshot, kernel)
        return kernel
