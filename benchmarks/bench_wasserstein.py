"""The seed's Wasserstein critic table on MNIST: the generator, then both pairs.

Usage: python benchmarks/bench_wasserstein.py [--out DIR] [--steps N] [--minutes M]
       [--generator-minutes M] [--generator-lr LR] [--examples N] [--noise SIGMA]
       [--threads T] [--quick]

1. The generator: WGAN-GP on MNIST (``gnpcheck wasserstein generator``) for
   ``--generator-minutes`` of training into ``OUT/generator`` (a finished run there is
   reused; an unfinished one is resumed), with a grid of 64 samples in
   ``OUT/generator/samples.png``. Its training time and steps are printed.
2. The table (``gnpcheck wasserstein table``) for two pairs: MNIST test images vs the
   generator's samples, and vs other test images plus Gaussian noise of scale ``--noise``
   (known: W1 <= sigma E||N(0, I_784)||). Every critic (BCOP, RKO, OSSN x MaxMin, ReLU) gets
   the same budget: ``--steps`` steps (default 400; ``--minutes`` is a time limit per
   critic in case the machine is slow), with the same samples, seed and initialization
   seed. Prints each table, the seed's ordering claims with their verdicts, the
   known-bound check, and writes ``OUT/estimate_generator.png`` and
   ``OUT/estimate_noise.png``.

``--quick`` is a smoke run (a few seconds of each part, 200 images). The machine's load
average is printed: other work on a shared machine slows every figure down.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch

from gnpcheck.train.checkpoint import load_checkpoint
from gnpcheck.wasserstein.experiment import format_table, run_table
from gnpcheck.wasserstein.gan import (
    GENERATOR_CHECKPOINT,
    GeneratorConfig,
    resume_generator,
    train_generator,
)
from gnpcheck.wasserstein.pairs import make_pair
from gnpcheck.wasserstein.plot import plot_estimates, sample_grid


def generator(out: Path, minutes: float, lr: float, threads: int) -> Path:
    """Train (or finish, or reuse) the generator; print its budget; return the checkpoint."""
    checkpoint = out / GENERATOR_CHECKPOINT
    config = GeneratorConfig(time_limit=minutes, lr=lr, threads=threads, progress=False)
    print(f"## generator: WGAN-GP in {out}", flush=True)
    if not checkpoint.exists():
        run = train_generator(config, out)
    elif load_checkpoint(checkpoint)["stopped"] == "":
        run = resume_generator(out, {"time_limit": minutes, "progress": False})
    else:
        run = None
    state = load_checkpoint(checkpoint)
    steps, seconds = state["step"], state["seconds"]
    print(f"settings: {state['config']}")
    print(
        f"generator training: {steps} generator steps ({steps * state['config']['n_critic']} "
        f"critic steps) in {seconds / 60:.2f} min, stopped by {state['stopped']}"
        + ("" if run is not None else " (reused)")
    )
    if run is not None:
        print(f"samples: {sample_grid(run.generator.sample(64, seed=0), out / 'samples.png')}")
    return checkpoint


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/bench_wasserstein"))
    parser.add_argument("--steps", type=int, default=400, help="per critic (default 400)")
    parser.add_argument(
        "--minutes", type=float, default=3.0, help="time limit per critic (default 3)"
    )
    parser.add_argument("--generator-minutes", type=float, default=10.0)
    parser.add_argument("--generator-lr", type=float, default=5e-4, help="default 5e-4 (see docs)")
    parser.add_argument("--examples", type=int, default=5000, help="images per set")
    parser.add_argument("--noise", type=float, default=0.1, help="sigma of the noise pair")
    parser.add_argument("--eval-every", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="smoke run: seconds per part")
    args = parser.parse_args()
    if args.quick:
        args.minutes, args.steps, args.generator_minutes = 0.05, 5, 0.1
        args.examples, args.eval_every = 200, 1
    torch.set_num_threads(args.threads)
    print(f"load average {os.getloadavg()}, threads {args.threads}", flush=True)
    started = time.perf_counter()
    checkpoint = generator(args.out / "generator", args.generator_minutes, args.generator_lr,
                           args.threads)  # fmt: skip
    pairs = {
        "generator": (f"generator:{checkpoint}", "MNIST test images vs the WGAN-GP generator"),
        "noise": (
            f"noise:{args.noise:g}",
            f"MNIST test images vs other test images + N(0, {args.noise:g}² I)",
        ),
    }
    for name, (spec, title) in pairs.items():
        pair = make_pair(spec, args.examples, seed=args.seed)
        print(f"\n## {pair.name}: {args.examples} + {args.examples} images", flush=True)
        table = run_table(
            pair,
            steps=args.steps,
            time_limit=args.minutes,
            eval_every=args.eval_every,
            seed=args.seed,
            threads=args.threads,
            on_entry=lambda entry: print(
                f"{entry.label}: {entry.result.lower_bound:.4f} +- "
                f"{entry.result.lower_bound_error:.4f}, {entry.result.steps} steps, "
                f"{entry.result.seconds:.0f} s, load {os.getloadavg()[0]:.1f}",
                flush=True,
            ),
        )
        print()
        print(format_table(table))
        known = None if pair.known is None else (pair.known.value, pair.known.describe())
        histories = {entry.label: entry.result.history for entry in table.entries}
        path = plot_estimates(histories, args.out / f"estimate_{name}.png", title=title,
                              known=known)  # fmt: skip
        print(f"wrote {path}")
    print(f"\n(total {(time.perf_counter() - started) / 60:.1f} min; load now {os.getloadavg()})")


if __name__ == "__main__":
    main()
