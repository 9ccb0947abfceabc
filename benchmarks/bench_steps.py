"""Where a BCOP training step's time goes, and what torch.compile makes of it (prints, asserts
nothing; the GPU analysis of docs/layers.rst, "On a GPU").

Usage: python benchmarks/bench_steps.py [--device D] [--shape B,C,N,K] [--repeats R]
       [--compile MODE ...] [--quick]

1. Evaluation forward (``torch.no_grad``, eval mode, the kernel cache): ``nn.Conv2d``, BCOP,
   the cache's check alone (``_kernel()``), the same padding and ``conv2d`` on the cached
   kernel, and the check's two ``torch.equal`` calls; medians of R calls, each ending with a
   synchronization on the device.
2. ``torch.profiler`` of five BCOP training steps (forward, backward, Adam): the operations
   by self time on the device, then by total CPU time.
3. Training steps of ``nn.Conv2d`` and BCOP, eager and compiled with each ``--compile`` mode
   (``default``, ``reduce-overhead``, ``max-autotune``, ...), medians of R steps. Off unless
   a mode is given: compiling takes seconds on a GPU, minutes on a small CPU.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.profiler import ProfilerActivity, profile

from gnpcheck.devices import usable_device
from gnpcheck.errors import InvalidArgumentError
from gnpcheck.nn import BCOPConv2d
from gnpcheck.nn._arguments import padding_widths


def _median_ms(function: Callable[[], object], repeats: int, device: torch.device) -> float:
    """Median time (ms) of ``repeats`` calls after two warm-up calls, each call followed by a
    synchronization on ``device`` (none needed on the CPU)."""

    def wait() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    function()
    function()
    wait()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        wait()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def _layers(channels: int, k: int, device: torch.device) -> tuple[nn.Conv2d, BCOPConv2d]:
    conv = nn.Conv2d(channels, channels, k, padding=(k - 1) // 2, padding_mode="circular")
    return conv.to(device), BCOPConv2d(channels, channels, k, device=device)


def _training_step(
    module: nn.Module,
    x: torch.Tensor,
    forward: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> Callable[[], object]:
    """Adam on ``module``'s parameters, the forward through ``forward`` (a compiled
    ``module``) when given."""
    optimizer = torch.optim.Adam(module.parameters(), lr=1e-3)
    run = forward or module

    def step() -> None:
        optimizer.zero_grad()
        run(x).square().mean().backward()
        optimizer.step()

    return step


def evaluation(shape: tuple[int, int, int, int], repeats: int, device: torch.device) -> None:
    batch, channels, size, k = shape
    print(f"## 1. evaluation forward at {shape}, ms (median of {repeats})")
    x = torch.randn(batch, channels, size, size, device=device)
    conv, bcop = _layers(channels, k, device)
    conv.eval()
    bcop.eval()
    with torch.no_grad():
        kernel = bcop._kernel()
        snapshot = [p.detach().clone() for p in (bcop.h_tilde, bcop.r_tilde)]
        widths = padding_widths(k, 2)
        rows: dict[str, Callable[[], object]] = {
            "nn.Conv2d": lambda: conv(x),
            "BCOPConv2d": lambda: bcop(x),
            "the cache's check (_kernel)": bcop._kernel,
            "pad + conv2d, cached kernel": lambda: F.conv2d(
                F.pad(x, widths, mode="circular"), kernel, bcop.bias
            ),
            "two torch.equal": lambda: [
                torch.equal(p, s)
                for p, s in zip((bcop.h_tilde, bcop.r_tilde), snapshot, strict=True)
            ],
        }
        for label, function in rows.items():
            print(f"{label:>30} {_median_ms(function, repeats, device):8.3f}", flush=True)


def profiled_steps(shape: tuple[int, int, int, int], device: torch.device) -> None:
    batch, channels, size, k = shape
    print(f"\n## 2. torch.profiler, five BCOP training steps at {shape}")
    x = torch.randn(batch, channels, size, size, device=device)
    _, bcop = _layers(channels, k, device)
    step = _training_step(bcop, x)
    for _ in range(3):
        step()
    activities = [ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(ProfilerActivity.CUDA)
        torch.cuda.synchronize(device)
    with profile(activities=activities) as profiler:
        for _ in range(5):
            step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    averages = profiler.key_averages()
    order = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    print(averages.table(sort_by=order, row_limit=20, max_name_column_width=45))
    print(averages.table(sort_by="cpu_time_total", row_limit=12, max_name_column_width=45))


def compiled_steps(
    shape: tuple[int, int, int, int], modes: list[str], repeats: int, device: torch.device
) -> None:
    batch, channels, size, k = shape
    print(f"\n## 3. training steps at {shape}, ms (median of {repeats}; compile time aside)")
    x = torch.randn(batch, channels, size, size, device=device)
    for mode in ["eager", *modes]:
        layers = _layers(channels, k, device)
        for name, module in zip(("nn.Conv2d", "BCOPConv2d"), layers, strict=True):
            forward = None if mode == "eager" else torch.compile(module, mode=mode)
            step = _training_step(module, x, forward)
            start = time.perf_counter()
            step()
            compiled_in = time.perf_counter() - start
            print(f"{mode:>16} {name:>11} {_median_ms(step, repeats, device):8.3f}   "
                  f"(first step {compiled_in:6.1f} s)", flush=True)  # fmt: skip


def _shape(text: str) -> tuple[int, int, int, int]:
    parts = text.split(",")
    if len(parts) != 4 or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
        raise argparse.ArgumentTypeError(f"{text!r}, but it must be four positive integers B,C,N,K")
    batch, channels, size, k = (int(p) for p in parts)
    return batch, channels, size, k


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--shape", type=_shape, default=(256, 64, 8, 3), help="B,C,N,K (default 256,64,8,3)"
    )
    parser.add_argument("--repeats", type=int, default=200, help="timed calls (default 200)")
    parser.add_argument(
        "--compile", nargs="*", default=[], metavar="MODE", help="torch.compile modes to time"
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run: 4,8,8,3, 5 repeats")
    args = parser.parse_args(argv)
    try:
        device = usable_device(args.device, "--device")
    except InvalidArgumentError as error:
        parser.error(str(error))
    if args.repeats < 1:
        parser.error(f"--repeats={args.repeats}, but it must be at least 1")
    shape, repeats = ((4, 8, 8, 3), 5) if args.quick else (args.shape, args.repeats)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print("command: python " + " ".join(sys.argv))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {device} ({name})\n")
    evaluation(shape, repeats, device)
    profiled_steps(shape, device)
    if args.compile:
        compiled_steps(shape, args.compile, repeats, device)


if __name__ == "__main__":
    main()
