r"""Each property in two forms: ``check_<claim>`` returns a :class:`CheckResult` and never
raises on a failed property; ``assert_<claim>`` raises :class:`AssertionError` with the figure.

Messages read ``"<figure>=<measured>, but should be <= <tolerance> [<subject>]"``. Tolerances
come from :mod:`gnpcheck.tolerances` unless given. Checks never modify what they check.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from gnpcheck.errors import InvalidArgumentError
from gnpcheck.reference._validation import (
    as_kernel,
    as_real_array,
    as_spatial_shape,
    as_square_matrix,
)
from gnpcheck.reference.defect import orthogonality_defect
from gnpcheck.reference.operator import check_kernel_fits, circular_conv_transpose
from gnpcheck.reference.orthogonalize import orthogonality_gap, projector_defect
from gnpcheck.reference.spectrum import circulant_spectrum
from gnpcheck.tolerances import (
    gnp_tolerance,
    matrix_orthogonality_tolerance,
    orthogonality_tolerance,
    projector_tolerance,
)

__all__ = [
    "CheckResult",
    "assert_gnp",
    "assert_orthogonal",
    "assert_orthonormal_columns",
    "assert_symmetric_projector",
    "check_gnp",
    "check_orthogonal",
    "check_orthonormal_columns",
    "check_symmetric_projector",
]


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one property check.

    Attributes:
        claim: the property checked (``"orthogonal"``, ``"gnp"``, ...).
        passed: whether ``measured <= tolerance`` (and any side condition) held.
        measured: the figure measured; see ``exact``.
        tolerance: the largest figure allowed.
        figure: what ``measured`` is, e.g. ``"max |sigma - 1|"``.
        method: how it was measured (``"autocorrelation bound"``, ``"circulant spectrum"``, ...).
        exact: ``True`` if ``measured`` is the figure itself up to rounding; ``False`` if it is
            an upper bound (a pass is conclusive) or a sampled lower bound (a failure is).
        subject: what was checked, e.g. ``"kernel (3, 3, 16, 16) on input (8, 8)"``.
        counterexample: where the property fails worst (a frequency, a gradient, ...), if known.
        detail: a side condition that failed (a rank, a shape), else ``""``.
    """

    claim: str
    passed: bool
    measured: float
    tolerance: float
    figure: str
    method: str
    exact: bool
    subject: str
    counterexample: Mapping[str, Any] | None = field(default=None)
    detail: str = ""

    def message(self) -> str:
        """``"max |sigma - 1|=0.0031, but should be <= 1.8e-13 [kernel ...]"`` (or ``"... <= ..."``)."""
        relation = "<=" if self.passed else "but should be <="
        text = (
            f"{self.figure}={self.measured:.3g}, {relation} {self.tolerance:.3g} [{self.subject}]"
        )
        if self.detail:
            text += f"; {self.detail}"
        if self.counterexample:
            shown = ", ".join(
                f"{key}={_short(value)}" for key, value in self.counterexample.items()
            )
            text += f"; counterexample: {shown}"
        return text + f" (method: {self.method})"

    def raise_if_failed(self) -> None:
        """Raise :class:`AssertionError` with :meth:`message` if the check failed."""
        __tracebackhide__ = True
        if not self.passed:
            raise AssertionError(self.message())


def _short(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return (
            f"array{tuple(value.shape)}" if value.size > 8 else np.array2string(value, precision=4)
        )
    if isinstance(value, float):
        return f"{value:.10g}"
    return repr(value)


def _kernel_subject(kernel: NDArray[np.float64], spatial: tuple[int, ...]) -> str:
    return f"kernel {tuple(kernel.shape)} on input {spatial}"


def check_orthogonal(
    kernel: object, input_shape: object, tol: float | None = None, dtype: Any = np.float64
) -> CheckResult:
    r"""Whether every singular value of the circular convolution of ``kernel`` is 1.

    The cheap autocorrelation bound decides first; only when it exceeds the tolerance is the
    exact circulant spectrum computed, and the frequency where :math:`|\sigma - 1|` is
    largest reported. ``tol`` defaults to :func:`~gnpcheck.tolerances.orthogonality_tolerance`
    for ``dtype`` (the dtype the kernel was produced in) and the operator's row count.
    """
    w = as_kernel(kernel)
    spatial = as_spatial_shape(input_shape, w.ndim - 2)
    check_kernel_fits(w, spatial)
    size = w.shape[-2] * int(np.prod(spatial))
    tolerance = orthogonality_tolerance(dtype, size) if tol is None else float(tol)
    subject = _kernel_subject(w, spatial)
    figure = "max |sigma - 1|"
    bound = orthogonality_defect(w, spatial, method="bound")
    if bound <= tolerance:
        return CheckResult(
            "orthogonal", True, bound, tolerance, figure, "autocorrelation bound", False, subject
        )
    spectrum = circulant_spectrum(w, spatial)
    deviation = np.abs(spectrum - 1.0)
    worst = np.unravel_index(int(np.argmax(deviation)), deviation.shape)
    measured = float(deviation[worst])
    counterexample: dict[str, object] = {
        "frequency": tuple(int(i) for i in worst[:-1]),
        "sigma": float(spectrum[worst]),
    }
    passed = measured <= tolerance
    return CheckResult(
        "orthogonal",
        passed,
        measured,
        tolerance,
        figure,
        "circulant spectrum",
        True,
        subject,
        None if passed else counterexample,
    )


def assert_orthogonal(
    kernel: object, input_shape: object, tol: float | None = None, dtype: Any = np.float64
) -> None:
    """Raise :class:`AssertionError` unless :func:`check_orthogonal` passes."""
    __tracebackhide__ = True
    check_orthogonal(kernel, input_shape, tol, dtype).raise_if_failed()


def check_gnp(
    kernel: object,
    input_shape: object,
    gradients: object | None = None,
    tol: float | None = None,
    dtype: Any = np.float64,
) -> CheckResult:
    r"""Gradient norm preservation :math:`\|J^T g\| = \|g\|` of the (linear) circular convolution.

    With ``gradients`` (shape ``(G, n_out, *N)``): the largest
    :math:`|\,\|J^T g\| / \|g\| - 1|` over them, through :func:`circular_conv_transpose`
    (a sampled lower bound of the defect: a failure is conclusive). Without: exact, from the
    spectrum: GNP for all ``g`` holds iff ``n_out <= n_in`` and every singular value is 1.
    """
    w = as_kernel(kernel)
    spatial = as_spatial_shape(input_shape, w.ndim - 2)
    check_kernel_fits(w, spatial)
    size = w.shape[-2] * int(np.prod(spatial))
    tolerance = gnp_tolerance(dtype, size) if tol is None else float(tol)
    subject = _kernel_subject(w, spatial)
    figure = "max | ||J^T g|| / ||g|| - 1 |"
    if gradients is not None:
        g = as_real_array(gradients, "gradients")
        expected = (w.shape[-2], *spatial)
        if g.ndim != len(expected) + 1 or g.shape[1:] != expected:
            raise InvalidArgumentError(
                f"gradients has shape {g.shape}, but it must be (G, {', '.join(map(str, expected))})"
            )
        axes = tuple(range(1, g.ndim))
        norms = np.sqrt(np.sum(g**2, axis=axes))
        if np.any(norms == 0):
            raise InvalidArgumentError(
                "gradients holds a zero gradient, but every gradient must be nonzero"
            )
        ratios = np.sqrt(np.sum(circular_conv_transpose(w, g) ** 2, axis=axes)) / norms
        index = int(np.argmax(np.abs(ratios - 1.0)))
        measured = float(abs(ratios[index] - 1.0))
        passed = measured <= tolerance
        counterexample: dict[str, object] = {
            "gradient_index": index,
            "norm_ratio": float(ratios[index]),
        }
        return CheckResult(
            "gnp",
            passed,
            measured,
            tolerance,
            figure,
            "sampled gradients",
            False,
            subject,
            None if passed else counterexample,
        )
    if w.shape[-2] > w.shape[-1]:
        detail = (
            f"n_out={w.shape[-2]} > n_in={w.shape[-1]}: J^T has a null space, "
            "so some gradient is mapped to 0"
        )
        return CheckResult(
            "gnp",
            False,
            1.0,
            tolerance,
            figure,
            "channel count",
            True,
            subject,
            {"norm_ratio": 0.0},
            detail,
        )
    spectrum = circulant_spectrum(w, spatial)
    deviation = np.abs(spectrum - 1.0)
    worst = np.unravel_index(int(np.argmax(deviation)), deviation.shape)
    measured = float(deviation[worst])
    passed = measured <= tolerance
    counterexample = {
        "frequency": tuple(int(i) for i in worst[:-1]),
        "norm_ratio": float(spectrum[worst]),
    }
    return CheckResult(
        "gnp",
        passed,
        measured,
        tolerance,
        figure,
        "circulant spectrum",
        True,
        subject,
        None if passed else counterexample,
    )


def assert_gnp(
    kernel: object,
    input_shape: object,
    gradients: object | None = None,
    tol: float | None = None,
    dtype: Any = np.float64,
) -> None:
    """Raise :class:`AssertionError` unless :func:`check_gnp` passes."""
    __tracebackhide__ = True
    check_gnp(kernel, input_shape, gradients, tol, dtype).raise_if_failed()


def check_symmetric_projector(
    matrix: object, rank: int | None = None, tol: float | None = None, dtype: Any = np.float64
) -> CheckResult:
    """Whether ``matrix`` is a symmetric projector ``P = P^T = P^2`` (of rank ``rank`` if given)."""
    p = as_square_matrix(matrix, "matrix")
    tolerance = projector_tolerance(dtype, p.shape[0]) if tol is None else float(tol)
    measured = projector_defect(p)
    found_rank = round(float(np.trace(p)))
    rank_ok = rank is None or found_rank == rank
    detail = "" if rank_ok else f"rank (trace)={found_rank}, but should be {rank}"
    passed = measured <= tolerance and rank_ok
    return CheckResult(
        "symmetric_projector",
        passed,
        measured,
        tolerance,
        "max(||P - P^T||, ||P^2 - P||)",
        "dense norms",
        True,
        f"matrix {p.shape}",
        None,
        detail,
    )


def assert_symmetric_projector(
    matrix: object, rank: int | None = None, tol: float | None = None, dtype: Any = np.float64
) -> None:
    """Raise :class:`AssertionError` unless :func:`check_symmetric_projector` passes."""
    __tracebackhide__ = True
    check_symmetric_projector(matrix, rank, tol, dtype).raise_if_failed()


def check_orthonormal_columns(
    matrix: object, tol: float | None = None, dtype: Any = np.float64
) -> CheckResult:
    """Whether a tall ``matrix`` has orthonormal columns: ``||A^T A - I||_2`` within tolerance."""
    a = as_real_array(matrix, "matrix", ndim=2)
    if a.shape[0] < a.shape[1]:
        raise InvalidArgumentError(
            f"matrix has shape {a.shape}, but it must be tall (rows >= columns)"
        )
    tolerance = matrix_orthogonality_tolerance(dtype, a.shape[1]) if tol is None else float(tol)
    measured = orthogonality_gap(a)
    return CheckResult(
        "orthonormal_columns",
        measured <= tolerance,
        measured,
        tolerance,
        "||A^T A - I||_2",
        "dense norm",
        True,
        f"matrix {a.shape}",
    )


def assert_orthonormal_columns(
    matrix: object, tol: float | None = None, dtype: Any = np.float64
) -> None:
    """Raise :class:`AssertionError` unless :func:`check_orthonormal_columns` passes."""
    __tracebackhide__ = True
    check_orthonormal_columns(matrix, tol, dtype).raise_if_failed()
