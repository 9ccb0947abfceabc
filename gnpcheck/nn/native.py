"""The BCOP kernel's build and its backward, the stages, the QR gradients and circular
padding as native calls (docs/layers.rst, Note [native stages]).

A QR layer's kernel build, from its parameters to PyTorch's layout, is some 70 small PyTorch
operations forward and backward. Right after a convolution each of them runs its code cold
(the convolution evicts the caches), and at a layer's usual widths their Python and
dispatch cost more than their arithmetic. The C library built from ``_bcop_native.c`` at
install time computes the same formulas in one call each way (:meth:`NativeLibrary.kernel`,
:meth:`NativeLibrary.kernel_backward`), with its own AVX-512 products, triangular solves
and Cholesky QR where the processor has AVX-512F and the BLAS and LAPACK that PyTorch's own
CPU library exports elsewhere, its work shared by PyTorch's OpenMP threads.

The library is optional: without a C compiler at install time, with ``GNPCHECK_NATIVE=0`` in
the environment, or inside :func:`disabled`, the PyTorch operations run instead, with the
same results to rounding. :func:`usable` decides per call; :func:`library` returns the
loaded library or ``None``; :func:`status` says which, and why.
"""

from __future__ import annotations

import ctypes
import importlib.machinery
import itertools
import math
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import torch

from gnpcheck.errors import InvalidArgumentError
from gnpcheck.nn.cache import transforming

__all__ = [
    "ABI_VERSION",
    "DISABLE_VARIABLE",
    "KernelState",
    "NativeLibrary",
    "disabled",
    "kernel_state",
    "library",
    "status",
    "usable",
]

#: The ``gnp_abi_version()`` this module calls; a library built from another source is not used.
ABI_VERSION = 7
#: Set to ``0`` to run the PyTorch operations even where the library is built.
DISABLE_VARIABLE = "GNPCHECK_NATIVE"

_DISABLED: ContextVar[bool] = ContextVar("gnpcheck_native_disabled", default=False)
_DTYPES = (torch.float32, torch.float64)
_PLAIN = (torch.Tensor, torch.nn.Parameter)
_DIRECTORY = Path(__file__).resolve().parent
_STEM = "_bcop_native"
_POINTER = ctypes.c_void_p
_INT = ctypes.c_int64
_INTS = ctypes.POINTER(ctypes.c_int64)
_POINTERS = ctypes.POINTER(ctypes.c_void_p)


def _library_file() -> Path | None:
    """The built library beside its source (``_bcop_native`` with an extension suffix)."""
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        candidate = _DIRECTORY / f"{_STEM}{suffix}"
        if candidate.is_file():
            return candidate
    return None


_BLAS_ROUTINES = ("sgemm_", "dgemm_", "strsm_", "dtrsm_", "dgeqrf_", "dorgqr_")
_THREAD_ROUTINES = ("GOMP_parallel", "omp_get_thread_num", "omp_get_num_threads")


def _torch_routines(names: Sequence[str]) -> list[int] | None:
    """Addresses of ``names`` in PyTorch's CPU library or the libraries it loaded (its BLAS
    and OpenMP runtime), if it exports them all."""
    for path in sorted((Path(torch.__file__).resolve().parent / "lib").glob("libtorch_cpu.*")):
        try:
            handle = ctypes.CDLL(str(path))
            addresses = [ctypes.cast(getattr(handle, name), _POINTER).value for name in names]
        except (OSError, AttributeError):
            continue
        if all(addresses):
            return [address for address in addresses if address]
    return None


class NativeLibrary:
    """The loaded library, on contiguous CPU float32 and float64 tensors (each method checks
    what it is given before the library reads it): :meth:`kernel` and :meth:`kernel_backward`
    (a layer's whole kernel build), :meth:`forward` and :meth:`backward` of a stage list,
    :meth:`orthonormal_qr_gradient`, :meth:`projector_qr_gradient` and :meth:`circular_pad`.
    Whether to call it is :func:`usable`'s decision."""

    def __init__(
        self, handle: ctypes.CDLL, blas: Sequence[int], threads: Sequence[int] | None, path: Path
    ) -> None:
        self.path = path
        handle.gnp_set_blas.argtypes = [_POINTER] * len(_BLAS_ROUTINES)
        handle.gnp_set_blas.restype = None
        handle.gnp_set_blas(*blas)
        handle.gnp_set_threads.argtypes = [_POINTER] * len(_THREAD_ROUTINES)
        handle.gnp_set_threads.restype = None
        handle.gnp_set_threads(*(threads or (None,) * len(_THREAD_ROUTINES)))
        #: Whether the library shares its work with PyTorch's OpenMP team.
        self.threaded = threads is not None
        self._own_products = handle.gnp_own_products
        self._own_products.argtypes = [ctypes.c_int]
        self._own_products.restype = ctypes.c_int
        self.own_products = self.use_own_products(True)
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
            function.argtypes += [_POINTER, _POINTER, _INT]
            function.restype = None
        for function in self._backward.values():
            function.argtypes = [_POINTER, _INT, _INTS, _INTS, _INT, _INT, _POINTERS, _POINTER]
            function.argtypes += [_POINTER, _POINTER, _POINTER, _INT]
            function.restype = None
        self._qr_gradients = {
            (kind, dtype): getattr(handle, f"gnp_{kind}_qr_gradient_{suffix}")
            for kind in ("orthonormal", "projector")
            for dtype, suffix in ((torch.float32, "f32"), (torch.float64, "f64"))
        }
        for function in self._qr_gradients.values():
            function.argtypes = [_POINTER, _POINTER, _POINTER, _INT, _INT, _INT, _POINTER, _POINTER]
            function.argtypes += [_INT]
            function.restype = None
        self._pad = {
            torch.float32: handle.gnp_circular_pad_f32,
            torch.float64: handle.gnp_circular_pad_f64,
        }
        for function in self._pad.values():
            function.argtypes = [_POINTER, *[_INT] * 7, _POINTER, _INT]
            function.restype = None
        self._work_bytes: dict[tuple[KernelState, int, int], int] = {}
        self._kernel_work = handle.gnp_kernel_work
        self._kernel_work.argtypes = [_INT] * 9
        self._kernel_work.restype = _INT
        self._kernel_forward = {
            torch.float32: handle.gnp_kernel_forward_f32,
            torch.float64: handle.gnp_kernel_forward_f64,
        }
        shared = [_INT, _INT, _INT, _INTS, _INTS, _INT, _INT, *[_POINTER] * 5, _POINTERS]
        forward: list[Any] = [_POINTER, _POINTER, ctypes.c_int, *shared, _POINTER, ctypes.c_int]
        forward += [_POINTER, _INT, _INT]
        for function in self._kernel_forward.values():
            function.argtypes = forward
            function.restype = _INT
        self._kernel_backward = {
            torch.float32: handle.gnp_kernel_backward_f32,
            torch.float64: handle.gnp_kernel_backward_f64,
        }
        backward: list[Any] = [_POINTER, ctypes.c_int, *shared, _POINTER, _POINTER, ctypes.c_int]
        backward += [_POINTER, _INT]
        for function in self._kernel_backward.values():
            function.argtypes = backward
            function.restype = None

    def use_own_products(self, enable: bool) -> bool:
        """Run the library's products (float32 and float64), triangular solves and QR
        (Cholesky QR, Householder where it fails) on its own AVX-512 code (``True``, the
        default where the processor has AVX-512F), or on PyTorch's BLAS and LAPACK
        (Householder QR; ``False``); returns the setting now in force (``False`` where the
        kernel cannot run), also kept in :attr:`own_products`."""
        self.own_products = bool(self._own_products(int(enable)))
        return self.own_products

    def kernel(
        self,
        h_tilde: torch.Tensor,
        r_tilde: torch.Tensor,
        stages: tuple[tuple[int, int], ...],
        out_channels: int,
        in_channels: int,
        build_dtype: torch.dtype,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """What :func:`gnpcheck.nn.qr_kernel` builds from a layer's parameters, in one call:
        the kernel ``(out_channels, in_channels, K...)`` in ``h_tilde``'s dtype, then the two
        buffers of :class:`KernelState`: the float64 factors (``h_q``, ``h_t``, the QR of
        ``h_tilde`` with ``diag(h_t) > 0``; ``r_q``, ``r_t``, of each ``r_tilde[i]``, signs
        either way: they cancel; Note [native stages] says which algorithm) and, in
        ``build_dtype``, the projectors ``r_q r_q^T`` and every stage's input. ``stages`` as
        for :meth:`forward`; a 1-D kernel (every stage along axis 1) has 1-D taps.

        Raises:
            InvalidArgumentError: tensors the library cannot read safely, shapes that do not
                fit, or a QR factorization that LAPACK reports as failed.
        """
        n, m = h_tilde.shape[-1], r_tilde.shape[-1]
        _check_readable([h_tilde, r_tilde])
        if (
            h_tilde.shape != (n, n)
            or tuple(r_tilde.shape) != (len(stages), n, m)
            or not 1 <= m <= n
            or not (1 <= out_channels <= n and 1 <= in_channels <= n)
            or build_dtype not in (torch.float32, torch.float64)
        ):
            raise InvalidArgumentError(
                f"h_tilde, r_tilde, the channels and build_dtype are {tuple(h_tilde.shape)}, "
                f"{tuple(r_tilde.shape)}, ({out_channels}, {in_channels}) and {build_dtype}, "
                f"but they must be (n, n), ({len(stages)}, n, m) with 1 <= m <= n for these "
                "stages, at most n each, and float32 or float64"
            )
        state = kernel_state(n, m, stages, out_channels, in_channels)  # checks the stages
        factors = h_tilde.new_empty(state.factors_size, dtype=torch.float64)
        built = h_tilde.new_empty(state.built_size, dtype=build_dtype)
        kernel = h_tilde.new_empty(state.kernel_shape)
        threads = torch.get_num_threads()
        work = h_tilde.new_empty(
            self._work(state, built.element_size(), threads), dtype=torch.uint8
        )
        info = self._kernel_forward[build_dtype](
            h_tilde.data_ptr(),
            r_tilde.data_ptr(),
            int(h_tilde.dtype == torch.float32),
            *state.arguments(factors, built),
            kernel.data_ptr(),
            int(kernel.dtype == torch.float32),
            work.data_ptr(),
            state.lwork,
            threads,
        )
        if info != 0:
            raise InvalidArgumentError(f"LAPACK's QR factorization returned info={info}")
        return kernel, factors, built

    def kernel_backward(
        self,
        grad: torch.Tensor,
        factors: torch.Tensor,
        built: torch.Tensor,
        state: KernelState,
        needs: tuple[bool, bool],
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """The gradients of ``h_tilde`` and ``r_tilde`` (``None`` where ``needs`` says not
        wanted) given the kernel's, ``grad`` (contiguous, the kernel's shape and dtype, which
        is the parameters'), and the buffers :meth:`kernel` returned, laid out as ``state``
        says.

        Raises:
            InvalidArgumentError: tensors the library cannot read safely, or shapes that do
                not fit.
        """
        for tensor in (grad, factors, built):  # each of its own dtype
            _check_readable([tensor])
        if (
            grad.shape != state.kernel_shape
            or factors.dtype != torch.float64
            or factors.numel() != state.factors_size
            or built.numel() != state.built_size
        ):
            raise InvalidArgumentError(
                f"the kernel's gradient {tuple(grad.shape)} and the saved buffers "
                f"({factors.numel()} {factors.dtype}, {built.numel()}) do not fit: they "
                f"must be {state.kernel_shape}, {state.factors_size} float64 and "
                f"{state.built_size}"
            )
        n, count, m = state.sizes
        grad_h_tilde = grad.new_empty(n, n) if needs[0] else None
        grad_r_tilde = grad.new_empty(count, n, m) if needs[1] else None
        threads = torch.get_num_threads()
        work = grad.new_empty(self._work(state, built.element_size(), threads), dtype=torch.uint8)
        self._kernel_backward[built.dtype](
            grad.data_ptr(),
            int(grad.dtype == torch.float32),
            *state.arguments(factors, built),
            None if grad_h_tilde is None else grad_h_tilde.data_ptr(),
            None if grad_r_tilde is None else grad_r_tilde.data_ptr(),
            int(grad.dtype == torch.float32),
            work.data_ptr(),
            threads,
        )
        return grad_h_tilde, grad_r_tilde

    def _work(self, state: KernelState, element: int, threads: int) -> int:
        """Bytes of work :meth:`kernel` and :meth:`kernel_backward` hand the library (asked
        of it once per state, element size and thread count)."""
        key = (state, element, threads)
        if key not in self._work_bytes:
            n, count, m = state.sizes
            o, (rows, columns) = state.kernel_shape[0], state.grid
            size = self._kernel_work(element, n, m, count, o, rows, columns, state.lwork, threads)
            self._work_bytes[key] = int(size)
        return self._work_bytes[key]

    def circular_pad(self, x: torch.Tensor, widths: Sequence[int]) -> torch.Tensor:
        """``F.pad(x, widths, mode="circular")`` for ``x`` of shape ``(B, C, L)`` or
        ``(B, C, H, W)``, ``widths`` in ``F.pad``'s order (last axis first), each at most the
        side it wraps.

        Raises:
            InvalidArgumentError: tensors the library cannot read safely, or widths that do
                not fit.
        """
        _check_readable([x])
        spatial = tuple(x.shape[2:])
        if x.ndim not in (3, 4) or len(widths) != 2 * len(spatial):
            raise InvalidArgumentError(
                f"x has shape {tuple(x.shape)} and widths={tuple(widths)}, but they must be "
                "(B, C, L) or (B, C, H, W) and two widths per spatial axis"
            )
        left, right, top, bottom = (*widths, 0, 0)[:4]
        height, width = (1, *spatial)[-2:]
        if not (min(widths) >= 0 and max(left, right) <= width and max(top, bottom) <= height):
            raise InvalidArgumentError(
                f"widths={tuple(widths)}, but each must be from 0 to the side it wraps ({spatial})"
            )
        padded = [
            size + widths[-2 - 2 * axis] + widths[-1 - 2 * axis]
            for axis, size in enumerate(spatial)
        ]
        out = x.new_empty(*x.shape[:2], *padded)
        self._pad[x.dtype](
            x.data_ptr(),
            x.shape[0] * x.shape[1],
            height,
            width,
            top,
            bottom,
            left,
            right,
            out.data_ptr(),
            torch.get_num_threads(),
        )
        return out

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
        if h.ndim != 2:
            raise InvalidArgumentError(f"h has shape {tuple(h.shape)}, but it must be (o, n)")
        o, n = h.shape
        grids = _grids(stages)
        _check([h, projectors], projectors, stages, n)
        shapes = [(rows, columns, o, n) for rows, columns in grids[1:-1]]
        outputs = _split(h.new_empty(sum(math.prod(shape) for shape in shapes)), shapes)
        outputs.append(h.new_empty(*grids[-1], o, n))  # its own: the caller may view it
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
            _pointers(outputs[:-1]),
            outputs[-1].data_ptr(),
            work.data_ptr(),
            torch.get_num_threads(),
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
        work = grad.new_empty(2 * grad.numel() + n * n)
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
            torch.get_num_threads(),
        )
        return grad_h, grad_projectors

    def orthonormal_qr_gradient(
        self, q: torch.Tensor, t: torch.Tensor, grad: torch.Tensor
    ) -> torch.Tensor:
        r"""As :func:`gnpcheck.nn.orthogonalize.orthonormal_qr_gradient`: :math:`\bar A` of
        :math:`Q` from :math:`A = Q T` given :math:`\bar Q` (``grad`` shaped as ``q``).

        Raises:
            InvalidArgumentError: tensors the library cannot read safely.
        """
        return self._qr_gradient("orthonormal", q, t, grad, q.shape)

    def projector_qr_gradient(
        self, q: torch.Tensor, t: torch.Tensor, grad: torch.Tensor
    ) -> torch.Tensor:
        r"""As :func:`gnpcheck.nn.orthogonalize.projector_qr_gradient`: :math:`\bar A` of
        :math:`P = Q Q^T` from :math:`A = Q T` given :math:`\bar P` (``grad`` ``(..., n, n)``).

        Raises:
            InvalidArgumentError: tensors the library cannot read safely.
        """
        return self._qr_gradient("projector", q, t, grad, (*q.shape[:-1], q.shape[-2]))

    def _qr_gradient(
        self,
        kind: str,
        q: torch.Tensor,
        t: torch.Tensor,
        grad: torch.Tensor,
        grad_shape: Sequence[int],
    ) -> torch.Tensor:
        n, k = q.shape[-2:]
        batch = math.prod(q.shape[:-2])
        _check_readable([q, t, grad])
        if (
            q.ndim < 2
            or n < k
            or tuple(t.shape) != (*q.shape[:-2], k, k)
            or tuple(grad.shape) != tuple(grad_shape)
        ):
            raise InvalidArgumentError(
                f"q, t and the gradient have shapes {tuple(q.shape)}, {tuple(t.shape)} and "
                f"{tuple(grad.shape)}, but they must be (..., n, k) with n >= k, (..., k, k) "
                f"and {tuple(grad_shape)}"
            )
        out = q.new_empty(q.shape)
        threads = torch.get_num_threads()
        work = q.new_empty(threads * (n * n + k * k if kind == "projector" else 2 * k * k))
        self._qr_gradients[kind, q.dtype](
            q.data_ptr(),
            t.data_ptr(),
            grad.data_ptr(),
            batch,
            n,
            k,
            out.data_ptr(),
            work.data_ptr(),
            threads,
        )
        return out


def _readable_tensor(tensor: torch.Tensor) -> bool:
    """Whether the library can read ``tensor``'s memory as it does: a contiguous CPU tensor,
    float32 or float64."""
    return tensor.dtype in _DTYPES and tensor.is_cpu and tensor.is_contiguous()


def _readable(tensors: Sequence[torch.Tensor]) -> bool:
    """:func:`_readable_tensor` for each of ``tensors``, all of one dtype."""
    dtype = tensors[0].dtype
    return all(t.dtype == dtype and _readable_tensor(t) for t in tensors)


def _check_readable(tensors: Sequence[torch.Tensor]) -> None:
    if not _readable(tensors):
        raise InvalidArgumentError(
            "the native library needs contiguous CPU tensors of one dtype, float32 or float64"
        )


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
    _check_readable(tensors)
    count = projectors.shape[0] if projectors.ndim == 3 else 0
    _check_stages(stages, count)
    if projectors.shape[1:] != (n, n):
        raise InvalidArgumentError(
            f"projectors have shape {tuple(projectors.shape)}, but these stages need one "
            f"({n}, {n}) projector each, indexed 0 to {len(stages) - 1}"
        )


def _check_stages(stages: Sequence[tuple[int, int]], count: int) -> None:
    """``stages`` must use each of ``count`` projectors once, along tap axis 0 or 1."""
    if not stages or any(axis not in (0, 1) for _, axis in stages):
        raise InvalidArgumentError(f"stages={list(stages)}, but they must be (index, 0 or 1) pairs")
    if sorted(index for index, _ in stages) != list(range(count)):
        raise InvalidArgumentError(
            f"stages={list(stages)}, but they must use each of the {count} projectors once"
        )


def _split(buffer: torch.Tensor, shapes: Sequence[Sequence[int]]) -> list[torch.Tensor]:
    """Consecutive parts of ``buffer`` with these shapes: one allocation for many tensors.
    Tensors on its storage, not views of it: a view among an autograd Function's outputs
    fails forward-mode differentiation."""
    parts, offset = [], buffer.storage_offset()
    for shape in shapes:
        strides = [math.prod(shape[axis + 1 :]) for axis in range(len(shape))]
        part = buffer.new_empty(0).set_(buffer.untyped_storage(), offset, shape, strides)
        parts.append(part)
        offset += math.prod(shape)
    return parts


@cache
def _stage_arrays(stages: tuple[tuple[int, int], ...]) -> tuple[ctypes.Array[_INT], ...]:
    """The projector indices and the tap axes as C arrays (cached per stage list)."""
    count = len(stages)
    return (_INT * count)(*(i for i, _ in stages)), (_INT * count)(*(a for _, a in stages))


@dataclass(frozen=True, eq=False)  # one per layout (kernel_state caches): hashed by identity
class KernelState:
    """Where :meth:`NativeLibrary.kernel` keeps what its backward needs, in two buffers: the
    float64 factors ``h_q (n, n), h_t (n, n), r_q (count, n, m), r_t (count, m, m)``, then,
    in the build dtype, the projectors ``(count, n, n)`` and the stage inputs (each stage's
    grid of taps by ``(o, n)``; 1-D: ``(taps, o, n)``), each contiguous, one after the
    other. :meth:`unpack` gives them as tensors; :func:`kernel_state` makes one."""

    sizes: tuple[int, int, int]  #: n, count, m
    stages: tuple[tuple[int, int], ...]
    kernel_shape: tuple[int, ...]
    grid: tuple[int, int]
    factor_shapes: tuple[tuple[int, ...], ...]
    built_shapes: tuple[tuple[int, ...], ...]
    lwork: int

    factors_size: int  #: elements of the factors' buffer
    built_size: int  #: elements of the build dtype's buffer

    def unpack(self, factors: torch.Tensor, built: torch.Tensor) -> list[torch.Tensor]:
        """``h_q, h_t, r_q, r_t``, the projectors and the stage inputs, as tensors."""
        return [*_split(factors, self.factor_shapes), *_split(built, self.built_shapes)]

    def arguments(self, factors: torch.Tensor, built: torch.Tensor) -> tuple[Any, ...]:
        """The arguments the kernel's forward and backward routines share: sizes, stages,
        then the addresses of the factors, the projectors and the stage inputs."""
        n, count, m = self.sizes
        o, in_channels = self.kernel_shape[:2]
        index, axes = _stage_arrays(self.stages)
        projectors, *inputs = _addresses(built, self.built_shapes)
        return (
            n,
            count,
            m,
            index,
            axes,
            o,
            in_channels,
            *_addresses(factors, self.factor_shapes),
            projectors,
            (_POINTER * len(inputs))(*inputs),
        )


@cache
def kernel_state(
    n: int, m: int, stages: tuple[tuple[int, int], ...], o: int, in_channels: int
) -> KernelState:
    """The :class:`KernelState` of a kernel with ``o`` outputs and ``in_channels`` inputs
    built by ``stages`` from ``h_tilde (n, n)`` and ``r_tilde (len(stages), n, m)``."""
    count = len(stages)
    _check_stages(stages, count)
    grids = _grids(stages)
    one_d = all(axis == 1 for _, axis in stages)
    taps = grids[-1][1:] if one_d else grids[-1]
    inputs = [(c, o, n) if one_d else (r, c, o, n) for r, c in grids[:-1]]
    factor_shapes = ((n, n), (n, n), (count, n, m), (count, m, m))
    built_shapes = ((count, n, n), *inputs)
    return KernelState(
        sizes=(n, count, m),
        stages=stages,
        kernel_shape=(o, in_channels, *taps),
        grid=grids[-1],
        factor_shapes=factor_shapes,
        built_shapes=built_shapes,
        lwork=64 * (n + 1),
        factors_size=sum(math.prod(shape) for shape in factor_shapes),
        built_size=sum(math.prod(shape) for shape in built_shapes),
    )


def _addresses(buffer: torch.Tensor, shapes: Sequence[Sequence[int]]) -> list[int]:
    """The addresses of consecutive parts of ``buffer`` with these shapes."""
    addresses, address = [], buffer.data_ptr()
    for shape in shapes:
        addresses.append(address)
        address += math.prod(shape) * buffer.element_size()
    return addresses


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


_TOLERANCES = ((torch.float64, 1e-12), (torch.float32, 1e-5))


def _difference(name: str, got: torch.Tensor, want: torch.Tensor, tolerance: float) -> str | None:
    error = float((got.double() - want).abs().max())
    if error <= tolerance * max(float(want.abs().max()), 1.0):
        return None
    return f"the {name} ({got.dtype}) is off by {error:.3g}"


#: (stages, o, n) of the stages' self-test: 2-D and 1-D, and a size whose products fill the
#: AVX-512 kernel's tiles, cross their edges and are shared by threads.
_SELF_TEST_STAGES = (
    ([(0, 1), (2, 0), (1, 1), (3, 0)], 2, 3),
    ([(0, 1), (1, 1)], 2, 3),
    ([(0, 1), (2, 0), (1, 1), (3, 0)], 25, 100),
)


def _stages_self_test(library: NativeLibrary, generator: torch.Generator) -> str | None:
    """The stages against :func:`_oracle` (and autograd through it): :data:`_SELF_TEST_STAGES`."""
    for stages, o, n in _SELF_TEST_STAGES:
        h = torch.randn(o, n, dtype=torch.float64, generator=generator).requires_grad_()
        projectors = torch.randn(len(stages), n, n, dtype=torch.float64, generator=generator)
        expected = _oracle(h, projectors.requires_grad_(), stages)
        grad = torch.randn(expected.shape, dtype=torch.float64, generator=generator)
        expected_h, expected_p = torch.autograd.grad(expected, (h, projectors), grad)
        for dtype, tolerance in _TOLERANCES:
            args = (h.detach().to(dtype), projectors.detach().to(dtype))
            kernel, inputs = library.forward(*args, stages)
            grad_h, grad_p = library.backward(args[1], inputs, grad.to(dtype), stages)
            for name, got, want in (
                (f"kernel of {len(stages)} stages", kernel, expected.detach()),
                (f"h gradient of {len(stages)} stages", grad_h, expected_h),
                (f"projector gradient of {len(stages)} stages", grad_p, expected_p),
            ):
                if (difference := _difference(name, got, want, tolerance)) is not None:
                    return difference
    return None


def _qr_self_test(library: NativeLibrary, generator: torch.Generator) -> str | None:
    """The QR gradients against autograd through ``torch.linalg.qr`` (signs fixed so that
    ``diag(T) > 0``), for ``Q`` and for ``Q Q^T``, on a batch of two ``5 x 3`` matrices."""
    from gnpcheck.nn.orthogonalize import positive_qr  # it imports this module: not at the top

    a = torch.randn(2, 5, 3, dtype=torch.float64, generator=generator).requires_grad_()
    q, t = positive_qr(a)
    grad_q = torch.randn(q.shape, dtype=torch.float64, generator=generator)
    grad_p = torch.randn(2, 5, 5, dtype=torch.float64, generator=generator)
    (expected_q,) = torch.autograd.grad(q, a, grad_q, retain_graph=True)
    (expected_p,) = torch.autograd.grad(q @ q.mT, a, grad_p)
    for dtype, tolerance in _TOLERANCES:
        q_in, t_in = q.detach().to(dtype).contiguous(), t.detach().to(dtype).contiguous()
        for name, got, want in (
            (
                "QR gradient",
                library.orthonormal_qr_gradient(q_in, t_in, grad_q.to(dtype)),
                expected_q,
            ),
            (
                "projector QR gradient",
                library.projector_qr_gradient(q_in, t_in, grad_p.to(dtype)),
                expected_p,
            ),
        ):
            if (difference := _difference(name, got, want, tolerance)) is not None:
                return difference
    return None


def _positive(q: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A QR factorization's ``Q`` and ``T`` with the signs that make ``diag(T)`` positive
    (the projectors' QR may take either: they cancel in ``Q Q^T`` and its gradient)."""
    signs = torch.where(torch.diagonal(t, dim1=-2, dim2=-1) < 0, -1.0, 1.0).to(t.dtype)
    return q * signs.unsqueeze(-2), t * signs.unsqueeze(-1)


#: (stages, out_channels, in_channels) of the kernel's self-test on n = 5, rank 2: a 2-D and a
#: 1-D kernel of 3 taps, fewer outputs and inputs than n.
_SELF_TEST_KERNELS = (((0, 1), (2, 0), (1, 1), (3, 0)), 4, 3), (((0, 1), (1, 1)), 5, 2)


def _kernel_self_test(library: NativeLibrary, generator: torch.Generator) -> str | None:
    """:meth:`NativeLibrary.kernel` and its backward against autograd through
    ``torch.linalg.qr`` (signs fixed for ``H`` so that ``diag(T) > 0``), ``Q Q^T``, the tap
    by tap :func:`_oracle` and PyTorch's layout, from float64 and float32 parameters, built
    in both dtypes."""
    from gnpcheck.nn.orthogonalize import positive_qr  # it imports this module: not at the top

    for stages, o, i in _SELF_TEST_KERNELS:
        # float32 values, so that parameters read in either dtype are the same numbers
        h_tilde = torch.randn(5, 5, generator=generator).double().requires_grad_()
        r_tilde = torch.randn(len(stages), 5, 2, generator=generator).double()
        h_q, h_t = positive_qr(h_tilde)
        r_q, r_t = torch.linalg.qr(r_tilde.requires_grad_())
        projectors = r_q @ r_q.mT
        taps = _oracle(h_q[:o], projectors, stages)[..., :i]
        expected = taps.permute(2, 3, 0, 1) if len(stages) == 4 else taps[0].permute(1, 2, 0)
        grad = torch.randn(expected.shape, dtype=torch.float64, generator=generator)
        expected_grads = torch.autograd.grad(expected, (h_tilde, r_tilde), grad)
        want = (expected, h_q, h_t, *_positive(r_q, r_t), projectors, *expected_grads)
        names = ("kernel", "H", "H's T", "R's Q", "R's T", "projector", "H gradient")
        for dtype, build_dtype in itertools.product((torch.float64, torch.float32), repeat=2):
            tolerance = max(dict(_TOLERANCES)[dtype], dict(_TOLERANCES)[build_dtype])
            kernel, factors, built = library.kernel(
                h_tilde.detach().to(dtype), r_tilde.detach().to(dtype), stages, o, i, build_dtype
            )
            state = kernel_state(5, 2, stages, o, i)
            grads = library.kernel_backward(grad.to(dtype), factors, built, state, (True, True))
            h_q_got, h_t_got, r_q_got, r_t_got, projectors_got = state.unpack(factors, built)[:5]
            positive_r = _positive(r_q_got, r_t_got)
            got = (kernel, h_q_got, h_t_got, *positive_r, projectors_got, *grads)
            for name, value, wanted in zip((*names, "R gradient"), got, want, strict=True):
                assert value is not None  # both gradients were asked for
                label = f"{name} of {len(stages)} stages from {dtype} built in {build_dtype}"
                if (
                    difference := _difference(label, value, wanted.detach(), tolerance)
                ) is not None:
                    return difference
    return None


def _pad_self_test(library: NativeLibrary, generator: torch.Generator) -> str | None:
    """The circular padding against ``F.pad``, 2-D with uneven widths and 1-D, both dtypes:
    a copy, so equal exactly."""
    for shape, widths in (((2, 3, 5, 7), (2, 1, 0, 3)), ((2, 3, 4), (1, 2))):
        for dtype in (torch.float64, torch.float32):
            x = torch.randn(shape, dtype=dtype, generator=generator)
            expected = torch.nn.functional.pad(x, widths, mode="circular")
            if not torch.equal(library.circular_pad(x, widths), expected):
                return f"the circular padding of {shape} by {widths} ({dtype}) differs"
    return None


def _self_test(library: NativeLibrary) -> str | None:
    """``None`` when every routine of the library agrees with an independent computation in
    both dtypes (:func:`_kernel_self_test`, :func:`_stages_self_test`, :func:`_qr_self_test`,
    :func:`_pad_self_test`); else what differed."""
    generator = torch.Generator().manual_seed(0)
    return (
        _kernel_self_test(library, generator)
        or _stages_self_test(library, generator)
        or _qr_self_test(library, generator)
        or _pad_self_test(library, generator)
    )


_outcome: tuple[NativeLibrary | None, str] | None = None


class _SelfTestInterruptedError(Exception):
    """The library could not be judged in the caller's context; its message says why."""


def _load() -> tuple[NativeLibrary | None, str]:
    if os.environ.get(DISABLE_VARIABLE, "1") == "0":
        return None, f"disabled ({DISABLE_VARIABLE}=0)"
    path = _library_file()
    if path is None:
        return None, (
            f"not built (no {_STEM} library in {_DIRECTORY}; building it at install time "
            "needs a C compiler)"
        )
    blas = _torch_routines(_BLAS_ROUTINES)
    if blas is None:
        return None, "this PyTorch's CPU library exports no sgemm_/dgemm_"
    try:
        handle = ctypes.CDLL(str(path))
        version = int(handle.gnp_abi_version())
    except (OSError, AttributeError) as error:
        return None, f"{path} could not be loaded: {error}"
    if version != ABI_VERSION:
        return None, f"{path} has ABI version {version}, this module needs {ABI_VERSION}: reinstall"
    library = NativeLibrary(handle, blas, _torch_routines(_THREAD_ROUTINES), path)
    try:  # the first use may come inside torch.no_grad() or torch.inference_mode()
        with torch.inference_mode(False), torch.enable_grad():
            failure = _self_test(library)
    except Exception as error:  # the caller's context, not the library (a tensor mode, say)
        message = f"its self-test could not run here ({type(error).__name__}: {error})"
        raise _SelfTestInterruptedError(message) from error
    if failure is not None:
        return None, f"{path} failed its self-test: {failure}"
    products = "its AVX-512 kernel" if library.own_products else "PyTorch's BLAS and LAPACK"
    threads = "PyTorch's OpenMP team" if library.threaded else "one thread"
    return library, (
        f"loaded from {path}, self-test passed (products and QR on {products}, work shared "
        f"by {threads})"
    )


def _loaded() -> tuple[NativeLibrary | None, str]:
    """The outcome of loading the library, decided once; a self-test that could not run (an
    exception: a tensor mode of the caller's, say) is not an outcome, and is tried again at
    the next use."""
    global _outcome
    if _outcome is None:
        try:
            outcome = _load()
        except _SelfTestInterruptedError as reason:
            return None, str(reason)
        _outcome = outcome
    return _outcome


def _forget() -> None:
    """Load again at the next use (tests that replace the library file)."""
    global _outcome
    _outcome = None


def library() -> NativeLibrary | None:
    """The native library, or ``None`` where it is disabled, not built, not loadable or failed
    its self-test."""
    return _loaded()[0]


def status() -> str:
    """Whether the native library is loaded, and from where or why not."""
    return _loaded()[1]


@contextmanager
def disabled() -> Iterator[None]:
    """Inside the block, in this thread (a ``contextvars`` context), the layers run the
    PyTorch operations instead of the library: to compare the two, or to rule the library
    out. A CPU backward started inside the block runs in it too."""
    token = _DISABLED.set(True)
    try:
        yield
    finally:
        _DISABLED.reset(token)


def usable(*tensors: torch.Tensor) -> NativeLibrary | None:
    """The library when it can run on ``tensors`` now: plain contiguous CPU tensors (or
    parameters), float32 or float64, with nothing for autograd to record, no
    ``torch.compile`` tracing or ``torch.func`` transform active and no :func:`disabled`
    block; else ``None`` (the caller runs PyTorch operations)."""
    if torch.compiler.is_compiling() or transforming() or _DISABLED.get():  # compiling first:
        return None  # Dynamo cannot trace ContextVar.get
    recording = torch.is_grad_enabled()
    for tensor in tensors:  # one pass, the cheapest tests first (this runs on every build)
        if (
            type(tensor) not in _PLAIN  # no subclass's semantics
            or (recording and tensor.requires_grad)
            or not _readable_tensor(tensor)
            or tensor.is_conj()
            or tensor.is_neg()
        ):
            return None
    return library()  # loaded (and self-tested) at the first call that gets this far
