"""The audited target: resolved, copied, converted, and called defensively.

A target is an ``nn.Module``, a zero-argument factory returning one, or the string
``"package.module:attribute"`` naming either. A factory is called with PyTorch's default
dtype set to the audit's (float32 or float64), so that what a module computes when it is
built, such as a stored orthogonal basis or a cached weight, is computed in that precision.
The audit never runs the caller's module: it deep-copies it once (:attr:`Target.pristine`,
converted to the audit's dtype and device, never run) and every check works on a fresh deep
copy of that (:meth:`Target.fresh`). Buffers that held a coarser dtype before the conversion
are named (:attr:`Target.coarser_buffers`): state derived in that precision keeps its
rounding, which a float64 audit can see.
:func:`snapshot` and :func:`changed` tell whether the caller's module changed anyway.

Calls go through :meth:`Target.call`, which turns what a target can do wrong into a
:class:`TargetError` with a readable message: raise, return something that is not a tensor,
return a batch of the wrong size, or need a CUDA device that is not there.
"""

from __future__ import annotations

import copy
import importlib
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from gnpcheck.audit.sampler import Sampler
from gnpcheck.devices import usable_device
from gnpcheck.errors import GnpcheckError, InvalidArgumentError, InvalidTypeError

__all__ = [
    "Target",
    "TargetError",
    "as_input_shape",
    "changed",
    "resolve_spec",
    "snapshot",
    "target_name",
]


class TargetError(GnpcheckError):
    """The target cannot be built, copied or run as the audit needs; the message says why."""


def as_input_shape(value: object, name: str = "input_shape") -> tuple[int, ...]:
    """``value`` as the shape of one input without the batch axis: ``(F,)``, ``(C, L)`` or
    ``(C, H, W)``; a string ``"C,H,W"`` (or ``"CxHxW"``) is accepted.

    Raises:
        InvalidArgumentError, InvalidTypeError: anything else.
    """
    if isinstance(value, str):
        try:
            value = tuple(int(part) for part in re.split(r"[,x]", value.strip()))
        except ValueError:
            raise InvalidArgumentError(
                f"{name}={value!r}, but it must be comma-separated integers such as '4,8,8'"
            ) from None
    if not isinstance(value, tuple | list):
        raise InvalidTypeError(f"{name}={value!r}, but it must be a tuple such as (4, 8, 8)")
    if not 1 <= len(value) <= 3:
        raise InvalidArgumentError(
            f"{name}={tuple(value)!r}, but it must be (F,), (C, L) or (C, H, W), without the batch"
        )
    for size in value:
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise InvalidArgumentError(
                f"{name}={tuple(value)!r}, but every size must be an int >= 1"
            )
    return tuple(value)


def resolve_spec(spec: str, source: str = "target") -> object:
    """The object ``"package.module:attribute"`` names (``attribute`` may be dotted).

    Raises:
        InvalidArgumentError: a malformed spec, a module that cannot be imported, or a
            missing attribute.
    """
    module_name, colon, attribute = spec.strip().partition(":")
    if not colon or not module_name or not attribute:
        raise InvalidArgumentError(
            f"{source}={spec!r}, but it must have the form 'package.module:factory'"
        )
    try:
        value: Any = importlib.import_module(module_name)
    except ImportError as error:
        raise InvalidArgumentError(
            f"{source}={spec!r}, but module {module_name!r} could not be imported "
            f"({type(error).__name__}: {error})"
        ) from None
    owner = module_name
    for part in attribute.split("."):
        if not hasattr(value, part):
            raise InvalidArgumentError(
                f"{source}={spec!r}, but {owner!r} has no attribute {part!r}"
            )
        value = getattr(value, part)
        owner = f"{owner}.{part}"
    return value


def target_name(target: object) -> str:
    """A short name for reports: the spec, the factory's qualified name, or the class name."""
    if isinstance(target, str):
        return target.strip()
    if isinstance(target, nn.Module):
        return type(target).__name__
    module = getattr(target, "__module__", None)
    name = getattr(target, "__qualname__", None) or type(target).__name__
    return f"{module}:{name}" if module else str(name)


#: What PyTorch's errors say when code asks for a GPU it cannot have: a CPU build ("Torch not
#: compiled with CUDA enabled"), a CUDA build without a driver ("Found no NVIDIA driver on
#: your system"), a ROCm build without a GPU ("No HIP GPUs are available").
_NO_GPU_WORDS = ("cuda", "nvidia", "hip gpus")


def _explain(error: BaseException, doing: str) -> TargetError:
    text = f"{type(error).__name__}: {error}".strip()
    if any(word in text.lower() for word in _NO_GPU_WORDS) and not torch.cuda.is_available():
        return TargetError(
            f"the target needs a CUDA device, but torch.cuda.is_available() is False "
            f"(while {doing}: {text})"
        )
    return TargetError(f"the target raised while {doing}: {text}")


def snapshot(module: nn.Module) -> dict[str, torch.Tensor]:
    """Copies of every parameter and buffer of ``module``, by name."""
    state: dict[str, torch.Tensor] = {}
    for name, tensor in [*module.named_parameters(), *module.named_buffers()]:
        state[name] = tensor.detach().clone()
    return state


def changed(before: dict[str, torch.Tensor], module: nn.Module) -> tuple[str, ...]:
    """Names whose value, shape or dtype differ from ``before``, plus names added or removed."""
    after = snapshot(module)
    names = sorted(set(before) | set(after))
    return tuple(
        name
        for name in names
        if name not in before
        or name not in after
        or before[name].shape != after[name].shape
        or before[name].dtype != after[name].dtype
        or not torch.equal(before[name], after[name].to(before[name].device))
    )


#: The dtypes a factory is built in (``torch.set_default_dtype`` takes these).
DEFAULT_DTYPES = (torch.float32, torch.float64)


@contextmanager
def _default_dtype(dtype: torch.dtype) -> Iterator[None]:
    """PyTorch's default dtype set to ``dtype`` (one of :data:`DEFAULT_DTYPES`; any other
    leaves it as it is) while the block runs, restored afterwards."""
    previous = torch.get_default_dtype()
    if dtype in DEFAULT_DTYPES:
        torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def coarser_buffers(module: nn.Module, dtype: torch.dtype) -> tuple[str, ...]:
    """Names of ``module``'s floating buffers whose dtype is coarser (a larger machine epsilon)
    than ``dtype``."""
    eps = torch.finfo(dtype).eps
    return tuple(
        name
        for name, buffer in module.named_buffers()
        if buffer.is_floating_point() and torch.finfo(buffer.dtype).eps > eps
    )


def _device_of(module: nn.Module) -> torch.device:
    for tensor in [*module.parameters(), *module.buffers()]:
        return tensor.device
    return torch.device("cpu")


@dataclass
class Target:
    """A target ready to audit.

    Attributes:
        name: how reports name it.
        original: the caller's module (never run by the audit).
        pristine: a deep copy, converted to ``dtype`` and ``device``, never run.
        dtype: the floating dtype of the audit.
        device: where the audit runs it.
        coarser_buffers: floating buffers that held a coarser dtype than ``dtype`` before the
            conversion (their values keep that rounding).
    """

    name: str
    original: nn.Module
    pristine: nn.Module
    dtype: torch.dtype
    device: torch.device
    coarser_buffers: tuple[str, ...] = ()

    @classmethod
    def build(
        cls,
        target: object,
        dtype: torch.dtype,
        device: str | torch.device | None = None,
        name: str | None = None,
    ) -> Target:
        """Resolve, construct (calling a factory once, with the default dtype set to
        ``dtype``) and copy ``target``.

        Raises:
            InvalidArgumentError: a bad spec or dtype, or a CUDA device requested where
                there is none.
            InvalidTypeError: ``target`` is neither a module, a factory nor a spec.
            TargetError: the factory raised or returned something else than a module, or the
                module cannot be deep-copied or moved.
        """
        if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
            raise InvalidArgumentError(f"dtype={dtype!r}, but it must be a torch floating dtype")
        label = name or target_name(target)
        resolved = resolve_spec(target) if isinstance(target, str) else target
        if isinstance(resolved, nn.Module):
            module = resolved
        elif callable(resolved):
            factory: Callable[[], object] = resolved
            try:
                with _default_dtype(dtype):
                    made = factory()
            except Exception as error:
                raise _explain(
                    error, "building it (calling the factory with no arguments)"
                ) from None
            if not isinstance(made, nn.Module):
                raise TargetError(
                    f"the factory returned {type(made).__name__}, but it must return an nn.Module"
                )
            module = made
        else:
            raise InvalidTypeError(
                f"target={resolved!r}, but it must be an nn.Module, a zero-argument factory "
                "returning one, or a 'module:factory' string"
            )
        where = usable_device(device if device is not None else _device_of(module))
        try:
            pristine = copy.deepcopy(module)
        except Exception as error:
            raise TargetError(
                f"the target could not be deep-copied ({type(error).__name__}: {error}); the "
                "audit runs copies so that it never changes the caller's module"
            ) from None
        coarser = coarser_buffers(pristine, dtype)
        try:
            pristine.to(device=where, dtype=dtype)
        except Exception as error:
            raise _explain(error, f"moving it to {where} in {dtype}") from None
        return cls(label, module, pristine, dtype, where, coarser)

    def fresh(self) -> nn.Module:
        """A new deep copy of :attr:`pristine`, in evaluation mode."""
        module = copy.deepcopy(self.pristine)
        module.eval()
        return module

    def warmed(self, shape: tuple[int, ...], seed: int) -> nn.Module:
        """A fresh copy (in evaluation mode) that has run at input ``shape`` in training and
        in evaluation mode, as a layer trained at one size and then applied at another has.

        Raises:
            TargetError: from :meth:`call`.
        """
        module = self.fresh()
        x = Sampler(seed, shape, self.dtype, self.device).inputs(2)
        module.train()
        with torch.enable_grad():
            self.call(module, x)
        module.eval()
        with torch.no_grad():
            self.call(module, x)
        return module

    def call(self, module: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """``module(x)`` for a batch ``x``, checked: a floating tensor whose first axis is the
        batch. NaN and inf are returned, not judged: each claim decides what they mean.

        Raises:
            TargetError: the module raised or returned something else.
        """
        try:
            y = module(x)
        except Exception as error:
            raise _explain(error, f"running on an input of shape {tuple(x.shape)}") from None
        if not isinstance(y, torch.Tensor):
            raise TargetError(
                f"the target returned {type(y).__name__} for an input of shape "
                f"{tuple(x.shape)}, but it must return a tensor"
            )
        if y.ndim == 0 or y.shape[0] != x.shape[0]:
            raise TargetError(
                f"the target returned shape {tuple(y.shape)} for an input of shape "
                f"{tuple(x.shape)}, but the first axis must be the batch ({x.shape[0]})"
            )
        if not y.is_floating_point():
            raise TargetError(
                f"the target returned dtype {y.dtype} for an input of shape {tuple(x.shape)}, "
                "but it must return a floating tensor"
            )
        return y
