"""The reference self-check behind ``gnpcheck check``: measured defects against tolerances.

Each row is a :class:`~gnpcheck.checks.CheckResult`: random BCOP kernels (1-D and 2-D, up to
64 channels and kernel size 7) are orthogonal within ``10 N eps``; the fast spectrum agrees
with the dense operator's SVD; the cheap defect bound is never below the exact defect; the
reference operator equals its dense matrix; Theorem 1's invariant read off the factors equals
the one read off the kernel; Theorem 2's embedding reproduces the original convolution; and
SymPy proves a rational BCOP kernel paraunitary in exact arithmetic.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from gnpcheck.checks import CheckResult, check_orthogonal
from gnpcheck.reference import (
    circulant_spectrum,
    circular_conv,
    component_index,
    dense_operator,
    embed_doubled,
    kernel_component_index,
    orthogonality_defect,
    random_bcop_1d,
    random_bcop_2d,
)
from gnpcheck.reference.symbolic import (
    is_paraunitary,
    rational_orthogonal,
    rational_projector,
    symbolic_bcop_1d,
    symbolic_bcop_2d,
)
from gnpcheck.tolerances import machine_epsilon

__all__ = ["SelfCheck", "format_table", "run_self_checks", "self_checks"]

SelfCheck = Callable[[np.random.Generator], CheckResult]

#: (spatial_ndim, channels, kernel_size, input size per axis) of the orthogonality rows.
ORTHOGONALITY_GRID = [
    (1, 4, 2, 16), (1, 16, 5, 16), (1, 64, 7, 32),
    (2, 4, 1, 4), (2, 4, 3, 8), (2, 16, 4, 8), (2, 16, 7, 8), (2, 64, 3, 8), (2, 64, 7, 8),
]  # fmt: skip
_EPS = machine_epsilon(np.float64)


def _orthogonality(spatial_ndim: int, n: int, k: int, size: int) -> SelfCheck:
    def run(rng: np.random.Generator) -> CheckResult:
        factors = random_bcop_1d(n, k, rng) if spatial_ndim == 1 else random_bcop_2d(n, k, rng)
        spatial = (size,) * spatial_ndim
        exact = orthogonality_defect(factors.kernel(), spatial, method="exact")
        result = check_orthogonal(factors.kernel(), spatial)
        return CheckResult(
            f"orthogonal {spatial_ndim}-D", exact <= result.tolerance, exact, result.tolerance,
            "max |sigma - 1|", "circulant spectrum", True, result.subject,
        )  # fmt: skip

    return run


def _spectrum_vs_dense(rng: np.random.Generator) -> CheckResult:
    kernel = rng.standard_normal((3, 2, 3, 4))
    spatial = (5, 4)
    dense = np.sort(np.linalg.svd(dense_operator(kernel, spatial), compute_uv=False))[-60:]
    fast = np.sort(circulant_spectrum(kernel, spatial).ravel())
    measured = float(np.max(np.abs(dense - fast)))
    tolerance = 100 * dense.size * _EPS * float(dense[-1])
    return CheckResult("spectrum = dense SVD", measured <= tolerance, measured, tolerance,
                       "max |sigma_fft - sigma_svd|", "dense SVD oracle", True,
                       "random kernel (3, 2, 3, 4) on input (5, 4)")  # fmt: skip


def _bound_above_exact(rng: np.random.Generator) -> CheckResult:
    worst = -np.inf
    for scale in (1e-10, 1e-5, 1e-2):
        kernel = random_bcop_2d(6, 3, rng).kernel() + scale * rng.standard_normal((3, 3, 6, 6))
        exact = orthogonality_defect(kernel, (6, 6), method="exact")
        worst = max(worst, exact - orthogonality_defect(kernel, (6, 6), method="bound"))
    return CheckResult("defect bound >= exact", worst <= 0.0, float(worst), 0.0, "exact - bound",
                       "circulant spectrum", True, "perturbed BCOP (3, 3, 6, 6), 3 scales")  # fmt: skip


def _operator_vs_dense(rng: np.random.Generator) -> CheckResult:
    kernel = rng.standard_normal((4, 3, 3, 2))
    x = rng.standard_normal((2, 5, 6))
    measured = float(
        np.max(
            np.abs(dense_operator(kernel, (5, 6)) @ x.ravel() - circular_conv(kernel, x).ravel())
        )
    )
    tolerance = 100 * kernel.size * _EPS * float(np.abs(kernel).max() * np.abs(x).max())
    return CheckResult("circular_conv = dense", measured <= tolerance, measured, tolerance,
                       "max |Dx - conv(x)|", "Kronecker-product matrix", True,
                       "random kernel (4, 3, 3, 2) on input (5, 6)")  # fmt: skip


def _theorem1(rng: np.random.Generator) -> CheckResult:
    mismatches = 0
    for det in (1, -1):
        for ranks in ([0, 0], [1, 3], [2, 2], [4, 4]):
            factors = random_bcop_1d(4, 3, rng, ranks=ranks, det=det)
            mismatches += component_index(factors.H, factors.Ps) != kernel_component_index(
                factors.kernel()
            )
    return CheckResult("Theorem 1 invariant", mismatches == 0, float(mismatches), 0.0,
                       "mismatched (sign, r)", "det W(z) interpolation", True,
                       "8 kernels (3, 4, 4), ranks 0..4, det +-1")  # fmt: skip


def _theorem2(rng: np.random.Generator) -> CheckResult:
    factors = random_bcop_2d(3, 3, rng, ranks=[0, 2])
    doubled = embed_doubled(factors.H, factors.Ps, factors.Qs)
    x = rng.standard_normal((6, 6, 5))
    embedded = circular_conv(doubled.kernel(), x)[:3]
    measured = float(np.max(np.abs(embedded - circular_conv(factors.kernel(), x[:3]))))
    tolerance = 100 * _EPS * float(np.abs(x).max())
    return CheckResult("Theorem 2 embedding", measured <= tolerance, measured, tolerance,
                       "max |C'(x)_1:n - C(x_1:n)|", "direct evaluation", True,
                       "n=3 -> 6 channels, ranks (0, 2)")  # fmt: skip


def _exact_proof(rng: np.random.Generator) -> CheckResult:
    seed = int(rng.integers(2**31))
    h = rational_orthogonal(3, seed, det=-1)
    ps = [rational_projector(3, rank, seed + i) for i, rank in enumerate((1, 2))]
    qs = [rational_projector(3, rank, seed + 7 + i) for i, rank in enumerate((0, 3))]
    proven = is_paraunitary(symbolic_bcop_2d(h, ps, qs)) and is_paraunitary(symbolic_bcop_1d(h, ps))
    return CheckResult(
        "exact paraunitary", proven, 0.0 if proven else 1.0, 0.0, "identity fails (0 = proven)",
        "SymPy, rational arithmetic", True, "rational BCOP n=3, K=3, 1-D and 2-D",
    )  # fmt: skip


def self_checks() -> Iterator[SelfCheck]:
    """The checks of ``gnpcheck check``, in table order."""
    for spatial_ndim, n, k, size in ORTHOGONALITY_GRID:
        yield _orthogonality(spatial_ndim, n, k, size)
    yield from (
        _spectrum_vs_dense,
        _bound_above_exact,
        _operator_vs_dense,
        _theorem1,
        _theorem2,
        _exact_proof,
    )


def run_self_checks(seed: int = 0) -> list[CheckResult]:
    """Run every self-check with one seeded generator; never raises on a failed check."""
    rng = np.random.default_rng(seed)
    return [check(rng) for check in self_checks()]


def format_table(results: list[CheckResult]) -> str:
    """A fixed-width text table: check, subject, measured, tolerance, verdict."""
    header = ("check", "subject", "figure", "measured", "tolerance", "verdict")
    rows = [
        (
            r.claim,
            r.subject,
            r.figure,
            f"{r.measured:.3g}",
            f"{r.tolerance:.3g}",
            "ok" if r.passed else "FAIL",
        )
        for r in results
    ]
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
             for row in [header, *rows]]  # fmt: skip
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)
