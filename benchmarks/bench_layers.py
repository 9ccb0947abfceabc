"""Accuracy and speed of the PyTorch BCOP layer (issue figures; prints, asserts nothing).

Usage: python benchmarks/bench_layers.py [--quick] [--full] [--repeats R] [--steps S]
       [--threads T] [--skip-accuracy] [--device D] [--batch B]
       python benchmarks/bench_layers.py --breakdown [--shape B,C,N,K] [--compile MODE ...]
       [--repeats R] [--device D] [--quick]

1. float32 accuracy: max |sigma - 1| of BCOPConv2d's float32 kernel (its float64 copy,
   the reference's exact circulant spectrum on a 16 x 16 input), fresh and after S Adam steps
   at lr 1e-2 (default S = 100), for C <= 256 and k <= 7 (--full adds the three slowest
   configurations); beside it, the trained parameters with build_dtype=float64. Targets:
   <= 1e-6 at C = 32, k = 3; <= 2e-6 everywhere.
2. The Björck trade-off: the float32 defect of the trained parameters above, orthogonalized
   by Björck with 5..30 iterations instead of QR (the layer's "bjorck" option).
3. Training step (forward + backward + Adam step) of BCOPConv2d (default; "no native": the
   default inside gnpcheck.nn.native.disabled(), the PyTorch operations instead of the native
   library; build_dtype=float64; Björck with 20 iterations) over nn.Conv2d with circular
   padding, same shapes, R rounds of one call each in round-robin order: median times, and
   the median over rounds of the ratio of the two calls in the same round (target <= 1.15
   for the default), with the quartiles of the default's ratios in the last column (the
   spread of the host's noise).
   Also a plain convolution padded by BCOPConv2d's own padding ("padded"): BCOP over it is
   the cost of building the kernel alone. Row "train": the input needs no gradient (a first
   layer); row "in-grad": it does (a layer inside a network, whose backward also computes
   the input's gradient).
4. Evaluation forward (torch.no_grad, eval mode: the kernel cache) over nn.Conv2d
   (target <= 1.02).
Ratios are measured in this one process, with PyTorch's default thread count unless
--threads is given. --quick is a smoke run of a few seconds. --device runs everything on
another device (each timed call ends with a synchronization there); --batch replaces the
timing shapes' batch: the GPU table is `--device cuda --batch 256`.

--breakdown prints, instead, where one shape's time goes (default 256,64,8,3; the GPU
analysis of docs/layers.rst, "On a GPU"):
5. Evaluation forward: nn.Conv2d, BCOP, the cache's check alone (``_kernel()``), the same
   padding and conv2d on the cached kernel, the check's two ``torch.equal``; medians of R
   rounds (round robin).
6. torch.profiler of five BCOP training steps: operations by self time on the device, then
   by total CPU time.
7. With --compile MODE ...: training steps of nn.Conv2d and BCOP, eager and compiled with
   each mode (``default``, ``reduce-overhead``, ...), medians of R rounds; the first
   (compiling) step's time beside them.
8. BCOP training steps (first layer) by phase, medians of R steps: the kernel's build,
   from the call to its result; the build's backward, from the kernel's gradient to the
   last parameter's; the whole step; nn.Conv2d's step and the same BCOP layer inside
   gnpcheck.nn.native.disabled() (the PyTorch operations) alternating with it. On a GPU each
   mark waits for the device, which adds synchronizations to the steps timed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.profiler import ProfilerActivity, profile

from gnpcheck.devices import usable_device
from gnpcheck.errors import InvalidArgumentError
from gnpcheck.nn import BCOPConv2d, native
from gnpcheck.nn._arguments import padding_widths
from gnpcheck.nn.circular import unshuffle_circular_pad
from gnpcheck.nn.precision import float32_settings
from gnpcheck.reference import circulant_spectrum, from_torch_layout

GRID = (16, 16)
SHAPES = [(128, 32, 16, 3), (128, 64, 8, 3), (32, 128, 16, 3)]
ACCURACY_DEFAULT = [(32, 3), (64, 3), (128, 3), (256, 3), (64, 5), (64, 7)]
ACCURACY_FULL = [*ACCURACY_DEFAULT, (128, 7), (256, 5), (256, 7)]
BJORCK_ITERS = [5, 10, 15, 20, 25, 30]


def float32_defect(weight: torch.Tensor) -> float:
    """max |sigma - 1| of the circular convolution of ``weight`` on GRID, exactly."""
    kernel = from_torch_layout(weight.detach().double().cpu().numpy())
    method: Literal["gram", "svd"] = "gram" if kernel.shape[0] <= 3 else "svd"  # large Gram terms
    return float(np.max(np.abs(circulant_spectrum(kernel, GRID, method=method) - 1.0)))


def train(layer: BCOPConv2d, steps: int, seed: int) -> None:
    """``steps`` Adam steps (lr 1e-2) on the squared error to a random target."""
    generator = torch.Generator().manual_seed(seed)
    device = layer.h_tilde.device
    x = torch.randn(2, layer.in_channels, 8, 8, generator=generator).to(device)
    target = torch.randn(2, layer.out_channels, 8, 8, generator=generator).to(device)
    optimizer = torch.optim.Adam(layer.parameters(), lr=1e-2)
    for _ in range(steps):
        optimizer.zero_grad()
        (layer(x) - target).square().mean().backward()
        optimizer.step()


def variant(layer: BCOPConv2d, **options: Any) -> BCOPConv2d:
    """A layer with ``layer``'s parameters and other options (orthogonalizer, build_dtype)."""
    channels, k = layer.in_channels, layer.kernel_size[0]
    other = BCOPConv2d(channels, layer.out_channels, k, device=layer.h_tilde.device, **options)
    other.load_state_dict(layer.state_dict())
    return other


def accuracy(configs: list[tuple[int, int]], steps: int, device: torch.device) -> list[BCOPConv2d]:
    print(f"## 1. float32 BCOPConv2d: max |sigma - 1| on {GRID[0]}x{GRID[1]} (exact spectrum)")
    print("default (float64 factors, float32 build); last column: the trained layer's")
    print("parameters with build_dtype=float64")
    print(
        f"{'C':>4} {'k':>2} {'fresh':>9} {'trained':>9} {'target':>7} {'f64 build':>9} {'train s':>8}"
    )
    trained = []
    for channels, k in configs:
        generator = torch.Generator().manual_seed(0)
        layer = BCOPConv2d(channels, channels, k, generator=generator).to(device)
        fresh = float32_defect(layer.weight)
        start = time.perf_counter()
        train(layer, steps, seed=1)
        elapsed = time.perf_counter() - start
        after = float32_defect(layer.weight)
        exact = float32_defect(variant(layer, build_dtype=torch.float64).weight)
        target = 1e-6 if (channels, k) == (32, 3) else 2e-6
        print(f"{channels:>4} {k:>2} {fresh:>9.2e} {after:>9.2e} {target:>7.0e} {exact:>9.2e} "
              f"{elapsed:>8.1f}", flush=True)  # fmt: skip
        trained.append(layer)
    return trained


def bjorck_tradeoff(layers: list[BCOPConv2d]) -> None:
    print("\n## 2. Björck instead of QR on the same trained parameters: float32 defect")
    print(f"{'C':>4} {'k':>2} " + " ".join(f"{f'{i} it':>9}" for i in BJORCK_ITERS))
    for layer in layers:
        defects = [
            float32_defect(variant(layer, orthogonalizer="bjorck", bjorck_iters=iters).weight)
            for iters in BJORCK_ITERS
        ]
        label = f"{layer.channels:>4} {layer.kernel_size[0]:>2} "
        print(label + " ".join(f"{d:>9.2e}" for d in defects), flush=True)


def _wait(device: torch.device) -> None:
    """Wait for ``device`` to finish its queued work (CUDA runs asynchronously; the CPU needs
    no wait)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _alternate(
    functions: list[Callable[[], object]], repeats: int, device: torch.device
) -> list[list[float]]:
    """Times (s) of each function over ``repeats`` rounds after a warm-up round; each round
    calls every function once, starting with a different one (round robin), so no function
    always runs first after the others. A call's time includes waiting for ``device`` to
    finish its work (:func:`_wait`)."""
    for function in functions:
        function()
        function()
    _wait(device)
    times: list[list[float]] = [[] for _ in functions]
    for round_index in range(repeats):
        for offset in range(len(functions)):
            index = (round_index + offset) % len(functions)
            start = time.perf_counter()
            functions[index]()
            _wait(device)
            times[index].append(time.perf_counter() - start)
    return times


def _median_ms(times: list[float]) -> float:
    return 1e3 * statistics.median(times)


def _paired_ratio(times: list[float], reference: list[float]) -> float:
    """Median over rounds of the ratio of two functions' times in the same round: calls a
    few milliseconds apart share the machine's state of the moment, which drifts by tens
    of percent over a run on a shared host (docs/layers.rst, timing notes)."""
    return statistics.median(t / r for t, r in zip(times, reference, strict=True))


def _paired_quartiles(times: list[float], reference: list[float]) -> str:
    """First and third quartiles of the same-round ratios, ``q1-q3`` (one round: its ratio
    twice): how far the host's noise spreads the ratio whose median the table shows."""
    ratios = [t / r for t, r in zip(times, reference, strict=True)]
    if len(ratios) < 2:
        return f"{ratios[0]:.3f}-{ratios[0]:.3f}"
    first, _, third = statistics.quantiles(ratios, n=4)
    return f"{first:.3f}-{third:.3f}"


def _training_step(
    module: nn.Module,
    x: torch.Tensor,
    forward: Callable[[torch.Tensor], torch.Tensor] | None = None,
    context: Callable[[], AbstractContextManager[None]] = nullcontext,
) -> Callable[[], object]:
    """Adam on ``module``'s parameters; the forward through ``forward`` (``module``
    compiled) when given; the whole step inside ``context()``."""
    optimizer = torch.optim.Adam(module.parameters(), lr=1e-3)
    run = forward if forward is not None else module

    def step() -> None:
        with context():
            optimizer.zero_grad()
            x.grad = None
            run(x).square().mean().backward()
            optimizer.step()

    return step


def _evaluation(module: nn.Module, x: torch.Tensor) -> Callable[[], object]:
    module.eval()

    def forward() -> torch.Tensor:
        with torch.no_grad():
            output: torch.Tensor = module(x)
            return output

    return forward


def _circular_conv(channels: int, k: int, device: torch.device) -> nn.Conv2d:
    """The reference layer: ``nn.Conv2d`` with circular padding, same shape as BCOP's."""
    conv = nn.Conv2d(channels, channels, k, padding=(k - 1) // 2, padding_mode="circular")
    return conv.to(device)


VARIANTS: dict[str, dict[str, Any]] = {
    "BCOP": {},
    "no native": {},
    "f64 build": {"build_dtype": torch.float64},
    "Björck 20": {"orthogonalizer": "bjorck", "bjorck_iters": 20},
}
#: The variants whose steps run inside ``native.disabled()`` (Note [native stages]).
PYTORCH_OPERATIONS_ONLY = {"no native"}


class SamePaddingConv2d(nn.Conv2d):
    """A plain convolution padded by BCOPConv2d's own circular padding (docs/layers.rst,
    Note [circular gather]): the ratio to it is the cost of building the kernel."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        widths = padding_widths(self.kernel_size, 2)
        return F.conv2d(unshuffle_circular_pad(x, 1, widths), self.weight, self.bias)


def timing(shapes: list[tuple[int, int, int, int]], repeats: int, device: torch.device) -> None:
    print(f"\n## 3./4. time per call, ms (median of {repeats}, round robin), on {device}, "
          f"{torch.get_num_threads()} threads; in brackets the median over rounds of the ratio "
          "to nn.Conv2d (padding_mode='circular') in the same round; 'padded': a plain conv "
          "with BCOP's padding; 'BCOP/padded': BCOP over it, likewise; last column: the "
          "quartiles of BCOP's same-round ratios to nn.Conv2d")  # fmt: skip
    print(
        f"{'batch,C,N,k':>15} {'':>7} {'Conv2d':>8} {'padded':>17} "
        + " ".join(f"{v:>17}" for v in VARIANTS)
        + f" {'BCOP/padded':>14} {'BCOP q1-q3':>12}"
    )
    for batch, channels, size, k in shapes:
        x = torch.randn(batch, channels, size, size, device=device)
        conv = _circular_conv(channels, k, device)
        same_padding = SamePaddingConv2d(channels, channels, k).to(device)
        layers = [
            BCOPConv2d(channels, channels, k, device=device, **options)
            for options in VARIANTS.values()
        ]
        label = f"{batch},{channels},{size},{k}"
        for row, inputs in (("train", x), ("in-grad", x.clone().requires_grad_())):
            contexts = [nullcontext] * 2 + [
                native.disabled if name in PYTORCH_OPERATIONS_ONLY else nullcontext
                for name in VARIANTS
            ]
            modules = (conv, same_padding, *layers)
            steps = _alternate(
                [
                    _training_step(m, inputs, context=c)
                    for m, c in zip(modules, contexts, strict=True)
                ],
                repeats,
                device,
            )
            cells = " ".join(
                f"{_median_ms(t):>8.2f} ({_paired_ratio(t, steps[0]):>5.3f})" for t in steps[1:]
            )
            own = _paired_ratio(steps[2], steps[1])
            spread = _paired_quartiles(steps[2], steps[0])
            print(f"{label:>15} {row:>7} {_median_ms(steps[0]):>8.2f} {cells} {own:>14.3f} "
                  f"{spread:>12}", flush=True)  # fmt: skip
        forward = _alternate([_evaluation(m, x) for m in (conv, layers[0])], 2 * repeats, device)
        print(f"{label:>15} {'eval':>7} {_median_ms(forward[0]):>8.2f} "
              f"{_median_ms(forward[1]):>8.2f} ({_paired_ratio(forward[1], forward[0]):>5.3f})",
              flush=True)  # fmt: skip


def evaluation_breakdown(
    shape: tuple[int, int, int, int], repeats: int, device: torch.device
) -> None:
    batch, channels, size, k = shape
    print(f"## 5. evaluation forward at {shape}, ms (median of {repeats}, round robin)")
    x = torch.randn(batch, channels, size, size, device=device)
    conv = _circular_conv(channels, k, device).eval()
    bcop = BCOPConv2d(channels, channels, k, device=device).eval()
    with torch.no_grad():
        kernel = bcop._kernel()
        parameters = (bcop.h_tilde, bcop.r_tilde)
        snapshot = [p.detach().clone() for p in parameters]
        widths = padding_widths(k, 2)
        rows: dict[str, Callable[[], object]] = {
            "nn.Conv2d": lambda: conv(x),
            "BCOPConv2d": lambda: bcop(x),
            "the cache's check (_kernel)": bcop._kernel,
            "pad + conv2d, cached kernel": lambda: F.conv2d(
                F.pad(x, widths, mode="circular"), kernel, bcop.bias
            ),
            "two torch.equal": lambda: [
                torch.equal(p, c) for p, c in zip(parameters, snapshot, strict=True)
            ],
        }
        times = _alternate(list(rows.values()), repeats, device)
    for label, row_times in zip(rows, times, strict=True):
        print(f"{label:>30} {_median_ms(row_times):8.3f}", flush=True)


def profiled_steps(shape: tuple[int, int, int, int], device: torch.device) -> None:
    batch, channels, size, k = shape
    print(f"\n## 6. torch.profiler, five BCOP training steps at {shape}")
    x = torch.randn(batch, channels, size, size, device=device)
    step = _training_step(BCOPConv2d(channels, channels, k, device=device), x)
    for _ in range(3):
        step()
    _wait(device)
    activities = [ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(ProfilerActivity.CUDA)
    with profile(activities=activities, acc_events=True) as profiler:  # one cycle; no warning
        for _ in range(5):
            step()
        _wait(device)
    averages = profiler.key_averages()
    order = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    print(averages.table(sort_by=order, row_limit=20, max_name_column_width=45))
    print(averages.table(sort_by="cpu_time_total", row_limit=12, max_name_column_width=45))


def compiled_steps(
    shape: tuple[int, int, int, int], modes: list[str], repeats: int, device: torch.device
) -> None:
    batch, channels, size, k = shape
    print(f"\n## 7. training steps at {shape}, ms (median of {repeats}; compiling aside)")
    x = torch.randn(batch, channels, size, size, device=device)
    for mode in ["eager", *modes]:
        layers = (
            _circular_conv(channels, k, device),
            BCOPConv2d(channels, channels, k, device=device),
        )
        for name, module in zip(("nn.Conv2d", "BCOPConv2d"), layers, strict=True):
            forward = None if mode == "eager" else torch.compile(module, mode=mode)
            step = _training_step(module, x, forward)
            start = time.perf_counter()
            step()
            first = time.perf_counter() - start
            (times,) = _alternate([step], repeats, device)
            print(f"{mode:>16} {name:>11} {_median_ms(times):8.3f}   (first step {first:6.1f} s)",
                  flush=True)  # fmt: skip


class _PhaseMarks:
    """Times of the kernel build's forward (the layer's ``_build_kernel``, wrapped) and of its
    backward (a hook on the kernel's gradient to the parameters' post-accumulate hooks)."""

    def __init__(self, layer: BCOPConv2d, device: torch.device) -> None:
        self.device = device
        self.forward: list[float] = []
        self.backward: list[float] = []
        self._backward_start = 0.0
        build = layer._build_kernel

        def timed_build() -> torch.Tensor:
            start = self._now()
            kernel = build()
            self.forward.append(self._now() - start)
            kernel.register_hook(self._start_backward)  # type: ignore[no-untyped-call]
            return kernel

        layer._build_kernel = timed_build  # type: ignore[method-assign]
        parameters = (layer.h_tilde, layer.r_tilde)
        self._parameters = self._pending = len(parameters)
        for parameter in parameters:
            parameter.register_post_accumulate_grad_hook(  # type: ignore[no-untyped-call]
                self._end_backward
            )

    def _now(self) -> float:
        _wait(self.device)
        return time.perf_counter()

    def _start_backward(self, grad: torch.Tensor) -> None:
        self._backward_start, self._pending = self._now(), self._parameters

    def _end_backward(self, parameter: torch.Tensor) -> None:
        self._pending -= 1
        if not self._pending:
            self.backward.append(self._now() - self._backward_start)


def build_phases(shape: tuple[int, int, int, int], repeats: int, device: torch.device) -> None:
    batch, channels, size, k = shape
    print(f"\n## 8. first-layer training steps at {shape} by phase, ms (median of {repeats}); "
          "'no native': the same layer inside gnpcheck.nn.native.disabled()")  # fmt: skip
    x = torch.randn(batch, channels, size, size, device=device)
    layers = [BCOPConv2d(channels, channels, k, device=device) for _ in range(2)]
    marks = [_PhaseMarks(layer, device) for layer in layers]
    conv_steps, bcop_steps, pytorch_steps = _alternate(
        [
            _training_step(_circular_conv(channels, k, device), x),
            _training_step(layers[0], x),
            _training_step(layers[1], x, context=native.disabled),
        ],
        repeats,
        device,
    )
    rows = {
        "nn.Conv2d step": conv_steps,
        "BCOPConv2d step": bcop_steps,
        "kernel build, forward": marks[0].forward[-repeats:],
        "kernel build, backward": marks[0].backward[-repeats:],
        "no native: BCOPConv2d step": pytorch_steps,
        "no native: build, forward": marks[1].forward[-repeats:],
        "no native: build, backward": marks[1].backward[-repeats:],
    }
    for label, times in rows.items():
        print(f"{label:>30} {_median_ms(times):8.3f}", flush=True)


def _shape(text: str) -> tuple[int, int, int, int]:
    parts = text.split(",")
    if len(parts) != 4 or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
        raise argparse.ArgumentTypeError(f"{text!r}, but it must be four positive integers B,C,N,K")
    batch, channels, size, k = (int(p) for p in parts)
    return batch, channels, size, k


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run of a few seconds")
    parser.add_argument(
        "--full", action="store_true", help="add (C, k) = (128, 7), (256, 5), (256, 7)"
    )
    parser.add_argument("--repeats", type=int, default=7, help="timing repeats (default 7)")
    parser.add_argument("--steps", type=int, default=100, help="Adam steps (default 100)")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch.set_num_threads for the timings (default: PyTorch's default); on a shared "
        "machine one thread shows the work without the waits of contended thread barriers",
    )
    parser.add_argument(
        "--skip-accuracy", action="store_true", help="only the timings (sections 3 and 4)"
    )
    parser.add_argument("--device", default="cpu", help="torch device to run on (default cpu)")
    parser.add_argument(
        "--batch", type=int, default=None, help="batch of every timing shape (default: theirs)"
    )
    parser.add_argument(
        "--breakdown", action="store_true", help="where one shape's time goes (sections 5-8)"
    )
    parser.add_argument(
        "--shape", type=_shape, default=(256, 64, 8, 3), help="B,C,N,K of --breakdown"
    )
    parser.add_argument(
        "--compile", nargs="*", default=[], metavar="MODE", help="torch.compile modes to time"
    )
    args = parser.parse_args(argv)
    try:
        device = usable_device(args.device, "--device")
    except InvalidArgumentError as error:
        parser.error(str(error))
    if args.batch is not None and args.batch < 1:
        parser.error(f"--batch={args.batch}, but it must be at least 1")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    print("command: python " + " ".join(sys.argv))
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {device} ({name}); "
        f"{float32_settings(device.type)}\n"
    )
    if args.repeats < 1:
        parser.error(f"--repeats={args.repeats}, but it must be at least 1")
    if args.breakdown:
        shape, repeats = ((4, 8, 8, 3), 5) if args.quick else (args.shape, args.repeats)
        evaluation_breakdown(shape, repeats, device)
        profiled_steps(shape, device)
        if args.compile:
            compiled_steps(shape, args.compile, repeats, device)
        build_phases(shape, repeats, device)
        return
    shapes = [(16, 32, 8, 3)] if args.quick else SHAPES
    if args.batch is not None:
        shapes = [(args.batch, *shape[1:]) for shape in shapes]
    if args.quick:
        layers = accuracy([(32, 3)], 5, device)
        bjorck_tradeoff(layers)
        timing(shapes, 3, device)
        return
    if not args.skip_accuracy:
        layers = accuracy(ACCURACY_FULL if args.full else ACCURACY_DEFAULT, args.steps, device)
        bjorck_tradeoff(layers[:4])
    timing(shapes, args.repeats, device)


if __name__ == "__main__":
    main()
