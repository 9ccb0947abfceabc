"""Figures of docs/baselines.rst: OSSN convergence, RKO spectra, SVCM projections and cost.

Usage: python benchmarks/bench_baselines.py   (prints; asserts nothing; one thread)
"""

from __future__ import annotations

import time

import numpy as np
import torch

from gnpcheck.nn.baselines import OSSNConv2d, RKOConv2d, SVCMConv2d
from gnpcheck.reference import circulant_spectrum, from_torch_layout


def spectrum(weight: torch.Tensor, grid: tuple[int, int]) -> np.ndarray:
    """All singular values of the circular convolution with ``weight`` (float64 reference)."""
    return circulant_spectrum(from_torch_layout(weight.detach().double().numpy()), grid)


def median_seconds(call: object, repeats: int) -> float:
    """Median wall time of ``repeats`` calls of ``call``."""
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()  # type: ignore[operator]
        runs.append(time.perf_counter() - start)
    return float(np.median(runs))


def main() -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    print("OSSN: relative error of the estimate, C=16, k=3, N=16, fresh u (float64)")
    layer = OSSNConv2d(16, 16, 3, input_size=16).double()
    exact = spectrum(layer.raw_weight, (16, 16)).max()
    done = 0
    for n in (1, 2, 5, 10, 20, 50, 100, 200):
        est = layer.power_iteration_(n - done)
        done = n
        print(f"  {n:4d} iterations: {(exact - est) / exact:.2e}")

    print("OSSN: eval forward time / train-mode-free forward, batch 128, C=32, N=16, k=3")
    layer = OSSNConv2d(32, 32, 3, input_size=16)
    x = torch.randn(128, 32, 16, 16)
    conv = layer.export()
    with torch.no_grad():
        layer.eval()
        for module in (conv, layer):
            module(x)
        times = {}
        for name, module in (("export", conv), ("ossn eval", layer)):
            times[name] = median_seconds(lambda module=module: module(x), 7)
    print(f"  ratio {times['ossn eval'] / times['export']:.2f}")

    print("RKO: spectrum of a freshly initialized layer (C=16, k=3, N=16)")
    for k in (1, 3, 5):
        torch.manual_seed(0)
        rko = RKOConv2d(16, 16, k).double()
        s = spectrum(rko.weight, (16, 16))
        print(f"  k={k}: sigma_max={s.max():.4f} sigma_min={s.min():.2e} median={np.median(s):.4f}")

    print("SVCM: measured sigma_max after projections (C=16, k=3, N=16, kernel scaled to sigma 3)")
    torch.manual_seed(0)
    svcm = SVCMConv2d(16, 16, 3, input_size=16).double()
    with torch.no_grad():
        svcm.raw_weight.mul_(3 / svcm.lipschitz_bound())
    done = 0
    print(f"  0 projections: {svcm.lipschitz_bound():.4f}")
    for n in (1, 2, 5, 10, 20, 50):
        bound = svcm.project_(n - done)
        done = n
        print(f"  {n} projections: {bound:.4f}")

    print("SVCM: time of one projection (float32 layer, float64 projection), median of 5")
    for c, n in ((16, 16), (32, 16), (64, 16), (32, 32), (64, 32)):
        timed = SVCMConv2d(c, c, 3, input_size=n)
        timed.project_()
        seconds = median_seconds(lambda timed=timed: timed._clip_and_mask(1), 5)
        print(f"  C={c:3d} N={n:3d}: {1e3 * seconds:8.1f} ms")


if __name__ == "__main__":
    main()
