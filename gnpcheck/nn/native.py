"""The BCOP kernel's stages as two native calls (docs/layers.rst, Note [native stages]).

:func:`gnpcheck.nn.kernel.stages_forward` and :func:`~gnpcheck.nn.kernel.stages_backward`
are a few dozen small PyTorch operations. Right after a convolution, each of them runs its
code cold (the convolution evicts the last-level cache), and their Python and dispatch cost
more than their arithmetic at a layer's usual widths. The C library built from
``_bcop_stages.c`` at install time runs the same operations, in the same order, with
the matrix products done by the ``sgemm_`` / ``dgemm_`` that PyTorch's own CPU library
exports, in one call per direction.

The library is optional: without a C compiler at install time, or with
``GNPCHECK_NATIVE=0`` in the environment, the PyTorch operations run instead, with the same
results. :func:`library` returns the loaded library or ``None``; :func:`status` says which,
and why.
"""

from __future__ import annotations

import ctypes
import importlib.machinery
import math
import os
from collections.abc import Sequence
from functools import cache
from pathlib import Path

import torch

from gnpcheck.errors import InvalidArgumentError

__all__ = ["ABI_VERSION", "DISABLE_VARIABLE", "NativeStages", "library", "status"]

#: The ``gnp_abi_version()`` this module calls; a library built from another source is not used.
ABI_VERSION = 1
#: Set to ``0`` to run the PyTorch operations even where the library is built.
DISABLE_VARIABLE = "GNPCHECK_NATIVE"

_DIRECTORY = Path(__file__).resolve().parent
_STEM = "_bcop_stages"
_POINTER = ctypes.c_void_p
_INT = ctypes.c_int64
_INTS = ctypes.POINTER(ctypes.c_int64)
_POINTERS = ctypes.POINTER(ctypes.c_void_p)


def _library_file() -> Path | None:
    """The built library beside its source (``_bcop_stages`` with an extension suffix)."""
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        candidate = _DIRECTORY / f"{_STEM}{suffix}"
        if candidate.is_file():
            return candidate
    return None


def _torch_blas() -> tuple[int, int] | None:
    """Addresses of ``sgemm_`` and ``dgemm_`` in PyTorch's CPU library, if it exports them."""
    for path in sorted((Path(torch.__file__).resolve().parent / "lib").glob("libtorch_cpu.*")):
        try:
            blas = ctypes.CDLL(str(path))
            single = ctypes.cast(blas.sgemm_, _POINTER).value
            double = ctypes.cast(blas.dgemm_, _POINTER).value
        except (OSError, AttributeError):
            continue
        if single and double:
            return single, double
    return None


class NativeStages:
    """The loaded library: :meth:`forward` and :meth:`backward` of a stage list on raw CPU
    tensors (contiguous, one floating dtype; the caller checks, see
    :func:`gnpcheck.nn.kernel.stages_forward`)."""

    def __init__(self, handle: ctypes.CDLL, blas: tuple[int, int], path: Path) -> None:
        self.path = path
        handle.gnp_set_blas.argtypes = [_POINTER, _POINTER]
        handle.gnp_set_blas.restype = None
        handle.gnp_set_blas(*blas)
        self._forward = {
            torch.float32: handle.gnp_stages_forward_f32,
            torch.float64: handle.gnp_stages_forward_f64,
        }
        self._backward = {
            torch.float32: handle.gnp_stages_backward_f32,
            torch.float64: handle.gnp_stages_backward_f64,
        }
        for function in self._forward.values():
            function.argtypes = [_POINTER, _POINTER, _INT, _INTS, _INTS, _INT, _INT, _POINTERS]
            function.argtypes += [_POINTER]
            function.restype = None
        for function in self._backward.values():
            function.argtypes = [_POINTER, _INT, _INTS, _INTS, _INT, _INT, _POINTERS, _POINTER]
            function.argtypes += [_POINTER, _POINTER, _POINTER]
            function.restype = None

    def forward(
        self, h: torch.Tensor, projectors: torch.Tensor, stages: Sequence[tuple[int, int]]
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The taps-first kernel and every stage's input, as
        :func:`gnpcheck.nn.kernel.stages_forward` returns them; ``stages`` lists (projector
        index, tap axis of a 2-D grid of taps) in order, a 1-D kernel being one row of taps.

        Raises:
            InvalidArgumentError: tensors the library cannot read safely (shapes that do not
                fit ``stages``, another device or dtype, not contiguous).
        """
        o, n = h.shape
        grids = _grids(stages)
        _check([h, projectors], projectors, stages, n)
        outputs = [h.new_empty(rows, columns, o, n) for rows, columns in grids[1:]]
        work = h.new_empty(math.prod(grids[-2]) * o * n)
        index, axes = _stage_arrays(tuple(stages))
        self._forward[h.dtype](
            h.data_ptr(),
            projectors.data_ptr(),
            len(stages),
            index,
            axes,
            o,
            n,
            _pointers(outputs),
            work.data_ptr(),
        )
        return outputs[-1], [h.reshape(1, 1, o, n), *outputs[:-1]]

    def backward(
        self,
        projectors: torch.Tensor,
        inputs: Sequence[torch.Tensor],
        grad: torch.Tensor,
        stages: Sequence[tuple[int, int]],
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Gradients of ``h`` (``o x n``) and of the projectors given the taps-first gradient
        ``grad`` (shaped ``(rows, columns, o, n)``) and the stage inputs of :meth:`forward`.

        Raises:
            InvalidArgumentError: as :meth:`forward`, for ``grad`` and ``inputs`` too.
        """
        o, n = grad.shape[-2:]
        grids = _grids(stages)
        _check([projectors, grad, *inputs], projectors, stages, n)
        expected = [(*grid, o, n) for grid in grids]
        shapes = [tuple(x.shape) for x in (*inputs, grad)]
        if shapes != expected:
            raise InvalidArgumentError(
                f"the stage inputs and the gradient have shapes {shapes}, but these stages "
                f"need {expected}"
            )
        grad_h = grad.new_empty(o, n)
        grad_projectors = projectors.new_empty(projectors.shape)
        work = grad.new_empty(2 * grad.numel())
        index, axes = _stage_arrays(tuple(stages))
        self._backward[grad.dtype](
            projectors.data_ptr(),
            len(stages),
            index,
            axes,
            o,
            n,
            _pointers(inputs),
            grad.data_ptr(),
            grad_h.data_ptr(),
            grad_projectors.data_ptr(),
            work.data_ptr(),
        )
        return grad_h, grad_projectors


def _grids(stages: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """The grid of taps (rows, columns) each stage reads, then the kernel's."""
    grids = [(1, 1)]
    for _, axis in stages:
        rows, columns = grids[-1]
        grids.append((rows + 1, columns) if axis == 0 else (rows, columns + 1))
    return grids


def _check(
    tensors: Sequence[torch.Tensor],
    projectors: torch.Tensor,
    stages: Sequence[tuple[int, int]],
    n: int,
) -> None:
    """What the library needs to read and write ``tensors`` safely."""
    first = tensors[0]
    if not stages or any(axis not in (0, 1) for _, axis in stages):
        raise InvalidArgumentError(f"stages={list(stages)}, but they must be (index, 0 or 1) pairs")
    if any(
        t.device.type != "cpu" or t.dtype != first.dtype or not t.is_contiguous() for t in tensors
    ) or first.dtype not in (torch.float32, torch.float64):
        raise InvalidArgumentError(
            "the native stages need contiguous CPU tensors of one dtype, float32 or float64"
        )
    count = projectors.shape[0] if projectors.ndim == 3 else 0
    indices = sorted(index for index, _ in stages)
    if projectors.shape[1:] != (n, n) or indices != list(range(count)):
        raise InvalidArgumentError(
            f"projectors have shape {tuple(projectors.shape)}, but these stages need one "
            f"({n}, {n}) projector each, indexed 0 to {len(stages) - 1}"
        )


@cache
def _stage_arrays(stages: tuple[tuple[int, int], ...]) -> tuple[ctypes.Array[_INT], ...]:
    """The projector indices and the tap axes as C arrays (cached per stage list)."""
    count = len(stages)
    return (_INT * count)(*(i for i, _ in stages)), (_INT * count)(*(a for _, a in stages))


def _pointers(tensors: Sequence[torch.Tensor]) -> ctypes.Array[_POINTER]:
    return (_POINTER * len(tensors))(*(t.data_ptr() for t in tensors))


def _oracle(
    h: torch.Tensor, projectors: torch.Tensor, stages: Sequence[tuple[int, int]]
) -> torch.Tensor:
    """The taps-first kernel tap by tap, :math:`Y_j = X_j P + X_{j-1} (I - P)`: slower and
    written independently of both implementations, for the self-test."""
    taps = [[h]]
    eye = torch.eye(h.shape[-1], dtype=h.dtype)
    for index, axis in stages:
        p = projectors[index]
        grid = taps if axis == 1 else [list(column) for column in zip(*taps, strict=True)]
        grid = [
            [
                sum(
                    (
                        row[j - shift] @ factor
                        for shift, factor in ((0, p), (1, eye - p))
                        if 0 <= j - shift < len(row)
                    ),
                    torch.zeros_like(h),
                )
                for j in range(len(row) + 1)
            ]
            for row in grid
        ]
        taps = grid if axis == 1 else [list(row) for row in zip(*grid, strict=True)]
    return torch.stack([torch.stack(row) for row in taps])


def _self_test(stages_library: NativeStages) -> str | None:
    """``None`` when the library's forward and backward agree with :func:`_oracle` (and
    autograd through it) on a 2-D and a 1-D case in both dtypes; else what differed."""
    generator = torch.Generator().manual_seed(0)
    cases = [[(0, 1), (2, 0), (1, 1), (3, 0)], [(0, 1), (1, 1)]]
    for stages in cases:
        h = torch.randn(2, 3, dtype=torch.float64, generator=generator).requires_grad_()
        projectors = torch.randn(4, 3, 3, dtype=torch.float64, generator=generator)
        projectors.requires_grad_()
        expected = _oracle(h, projectors, stages)
        grad = torch.randn(expected.shape, dtype=torch.float64, generator=generator)
        expected_h, expected_p = torch.autograd.grad(expected, (h, projectors), grad)
        used = projectors[: len(stages)]
        expected_p = expected_p[: len(stages)]
        for dtype, tolerance in ((torch.float64, 1e-12), (torch.float32, 1e-5)):
            args = (h.detach().to(dtype), used.detach().to(dtype).contiguous())
            kernel, inputs = stages_library.forward(*args, stages)
            grad_h, grad_p = stages_library.backward(args[1], inputs, grad.to(dtype), stages)
            for name, got, want in (
                ("kernel", kernel, expected.detach()),
                ("h gradient", grad_h, expected_h),
                ("projector gradient", grad_p, expected_p),
            ):
                error = float((got.double() - want).abs().max())
                scale = max(float(want.abs().max()), 1.0)
                if not error <= tolerance * scale:
                    return f"the {name} ({dtype}, {len(stages)} stages) is off by {error:.3g}"
    return None


@cache
def _loaded() -> tuple[NativeStages | None, str]:
    if os.environ.get(DISABLE_VARIABLE, "1") == "0":
        return None, f"disabled ({DISABLE_VARIABLE}=0)"
    path = _library_file()
    if path is None:
        return None, (
            f"not built (no {_STEM} library in {_DIRECTORY}; building it at install time "
            "needs a C compiler)"
        )
    blas = _torch_blas()
    if blas is None:
        return None, "this PyTorch's CPU library exports no sgemm_/dgemm_"
    try:
        handle = ctypes.CDLL(str(path))
        version = int(handle.gnp_abi_version())
    except (OSError, AttributeError) as error:
        return None, f"{path} could not be loaded: {error}"
    if version != ABI_VERSION:
        return None, f"{path} has ABI version {version}, this module needs {ABI_VERSION}: reinstall"
    stages_library = NativeStages(handle, blas, path)
    with torch.enable_grad():
        failure = _self_test(stages_library)
    if failure is not None:
        return None, f"{path} failed its self-test: {failure}"
    return stages_library, f"loaded from {path}, self-test passed"


def library() -> NativeStages | None:
    """The native stages, or ``None`` where they are disabled, not built or not loadable."""
    return _loaded()[0]


def status() -> str:
    """Whether the native stages are loaded, and from where or why not."""
    return _loaded()[1]
