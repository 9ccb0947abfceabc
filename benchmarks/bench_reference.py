"""Accuracy and speed of the float64 reference (issue figures; prints, asserts nothing).

Usage: python benchmarks/bench_reference.py [--quick] [--repeats R]

1. Orthogonality defect max |sigma - 1| of random BCOP kernels, 1-D and 2-D, n <= 64,
   k <= 7, against 10 * N * eps (N = operator rows), exact spectrum.
2. orthogonality_defect (autocorrelation bound) for a 256-channel 3x3 kernel on 32x32,
   beside the usual full per-frequency SVD (zero-padded real FFT, batched numpy SVD).
3. circulant_spectrum (all singular values) against that same per-frequency SVD: time
   ratio and largest difference.
Times are medians over R runs, measured in this one process.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from gnpcheck.reference import (
    circulant_spectrum,
    orthogonality_defect,
    random_bcop_1d,
    random_bcop_2d,
)
from gnpcheck.tolerances import orthogonality_tolerance


def median_time(function: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    """Median wall time of ``repeats`` calls and the last result."""
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def accuracy_table(channels: list[int], sizes: list[int]) -> None:
    print("## 1. float64 defect of random BCOP kernels (exact spectrum) vs 10 N eps")
    print(f"{'dim':>3} {'n':>4} {'k':>2} {'input':>9} {'defect':>10} {'10 N eps':>10} {'ratio':>6}")
    rng = np.random.default_rng(0)
    worst = 0.0
    for spatial_ndim in (1, 2):
        for n in channels:
            for k in sizes:
                factors = (
                    random_bcop_1d(n, k, rng) if spatial_ndim == 1 else random_bcop_2d(n, k, rng)
                )
                size = max(k, 8) if spatial_ndim == 2 else max(k, 32)
                spatial = (size,) * spatial_ndim
                defect = orthogonality_defect(factors.kernel(), spatial, method="exact")
                tolerance = orthogonality_tolerance(np.float64, n * size**spatial_ndim)
                worst = max(worst, defect / tolerance)
                print(f"{spatial_ndim:>3} {n:>4} {k:>2} {'x'.join(map(str, spatial)):>9} "
                      f"{defect:>10.2e} {tolerance:>10.2e} {defect / tolerance:>6.3f}")  # fmt: skip
    print(
        f"worst defect / (10 N eps) = {worst:.3f} ({'meets' if worst <= 1 else 'MISSES'} the figure)\n"
    )


def per_frequency_svd(kernel: np.ndarray, size: int) -> np.ndarray:
    """The usual way: zero-padded real FFT of the taps, then numpy's batched SVD."""
    symbol = np.fft.rfft2(kernel, s=(size, size), axes=(0, 1))
    return np.linalg.svd(symbol, compute_uv=False)


def speed_tables(channels: int, size: int, repeats: int) -> None:
    kernel = random_bcop_2d(channels, 3, np.random.default_rng(1)).kernel()
    baseline_time, baseline = median_time(lambda: per_frequency_svd(kernel, size), repeats)
    bound_time, bound = median_time(lambda: orthogonality_defect(kernel, (size, size)), repeats)
    rigorous_time, rigorous = median_time(
        lambda: orthogonality_defect(kernel, (size, size), rigorous=True), repeats
    )
    spectrum_time, spectrum = median_time(lambda: circulant_spectrum(kernel, (size, size)), repeats)
    difference = float(np.max(np.abs(spectrum[:, : size // 2 + 1] - baseline)))
    print(
        f"## 2. orthogonality_defect, {channels}-channel 3x3 kernel on {size}x{size} (median of {repeats})"
    )
    print(f"per-frequency numpy SVD (rfft2 + batched svd): {baseline_time:8.3f} s  "
          f"defect {np.max(np.abs(baseline - 1)):.2e}")  # fmt: skip
    print(f"orthogonality_defect bound:                    {bound_time:8.3f} s  defect <= {bound:.2e}  "
          f"({baseline_time / bound_time:.0f}x faster; figure: <= 0.3 s)")  # fmt: skip
    print(
        f"orthogonality_defect bound, rigorous=True:     {rigorous_time:8.3f} s  defect <= {rigorous:.2e}\n"
    )
    print(f"## 3. circulant_spectrum, same kernel (median of {repeats})")
    print(f"circulant_spectrum: {spectrum_time:.3f} s; per-frequency SVD {baseline_time:.3f} s; "
          f"ratio {baseline_time / spectrum_time:.2f}x (figure: >= 3x)")  # fmt: skip
    print(f"max |difference| = {difference:.2e} (figure: <= 1e-10)")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, one repeat (smoke run)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    if args.quick:
        accuracy_table([4, 8], [1, 3, 7])
        speed_tables(32, 16, 1)
    else:
        accuracy_table([4, 8, 16, 32, 64], [1, 2, 3, 4, 5, 6, 7])
        speed_tables(256, 32, args.repeats)


if __name__ == "__main__":
    main()
