"""MNIST training figures: accuracy against minutes, the ablation, and the final table.

Usage: python benchmarks/bench_mnist.py [--part figure15 figure30 ablation large fc3]
       [--out DIR] [--pgd-examples N] [--threads T] [--quick]

- figure15, figure30: Small, BCOP, MaxMin with benchmarks/mnist_small_15min.toml for 15
  minutes of training and with mnist_small_30min.toml (the cosine over twice the epochs)
  for 30; the curve of clean and certified accuracy (eps 1.58, full test set, after every
  epoch) against training minutes.
- ablation: Small with BCOP, RKO, OSSN and SVCM under one *epoch* budget (the seed's
  protocol: the same epochs for every layer): the 15-minute recipe for 20 epochs with the
  seed's hinge loss, the learning rate decayed by 0.85 per epoch (exponential) and an
  average decay of 0.998, one thread each, so two run side by side
  (``--ablation-parallel``) and the load they share does not change what they learn.
- large, fc3: the Large and FC-3 networks, the 15-minute recipe with the seed's hinge loss,
  batch 512, learning rate 3e-3 and the cosine over 3 epochs (what 15 minutes on one thread
  hold here), 15 minutes each; run each in its own process with --threads 1 to have both
  side by side.
Every run ends with ``gnpcheck certify``'s checks: claimed and measured Lipschitz bounds,
and PGD (50 steps, 3 restarts) on ``--pgd-examples`` test images spread evenly over the test
set (its first and last halves come from different writers and differ in difficulty) with
the check certified <= PGD-robust <= clean. Runs already finished in ``--out`` are reused, not
retrained. Training minutes exclude evaluation; the machine's load average is printed per
epoch, because other work on a shared machine slows training down.
"""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing
import os
import time
from pathlib import Path
from typing import Any

import torch

from gnpcheck.certify.lipschitz import model_lipschitz
from gnpcheck.certify.report import evaluate_robustness
from gnpcheck.train.checkpoint import load_checkpoint
from gnpcheck.train.config import TrainConfig, load_config
from gnpcheck.train.dataset import MNIST_SHAPE, mnist_tensors
from gnpcheck.train.loop import CHECKPOINT_NAME, model_from_checkpoint, resume, train

#: The seed's figures (clean %, certified % at eps 1.58; Li et al., NeurIPS 2019, MNIST).
SEED = {
    "small-bcop": (97.54, 45.84),
    "small-bcop (original code, 200 epochs)": (97.52, 46.59),
    "large-bcop": (98.69, 56.37),
    "fc3-bcop": (98.71, 54.46),
}
RECIPE_15 = Path(__file__).with_name("mnist_small_15min.toml")
RECIPE_30 = Path(__file__).with_name("mnist_small_30min.toml")
PARTS = ("figure15", "figure30", "ablation", "large", "fc3")
ABLATION_EPOCHS = 20
#: Epochs of the Large and FC-3 runs: what 15 minutes on one thread hold here (5 min each).
LARGE_EPOCHS = 3


def run(name: str, config: TrainConfig, out: Path) -> list[dict[str, Any]]:
    """Train (or finish, or reuse) the run ``name``; return its history."""
    directory = out / name
    checkpoint = directory / CHECKPOINT_NAME
    print(f"\n## {name}: {config.model}, {config.conv}, {config.act}, "
          f"{config.time_limit} min, load {os.getloadavg()}", flush=True)  # fmt: skip
    print(f"settings: {config.to_dict()}")
    if not checkpoint.exists():
        train(config, directory)
    elif not load_checkpoint(checkpoint)["finished"]:
        resume(directory, {"progress": config.progress})
    history: list[dict[str, Any]] = load_checkpoint(checkpoint)["history"]
    return history


def at_minutes(history: list[dict[str, Any]], minutes: float) -> dict[str, Any] | None:
    """The last evaluated record within ``minutes`` of training (a run stopped by its time
    limit overshoots it by at most one step: 0.05 minutes are allowed for that)."""
    done = [r for r in history if r["clean"] is not None and r["train_minutes"] <= minutes + 0.05]
    return done[-1] if done else None


def print_curve(history: list[dict[str, Any]]) -> None:
    print(
        f"{'epoch':>7} {'minutes':>8} {'clean %':>8} {'cert. %':>8} {'loss':>8} {'lr':>9} {'load':>5}"
    )
    for r in history:
        if r["clean"] is None:
            continue
        print(f"{r['epoch']:>7.2f} {r['train_minutes']:>8.2f} {r['clean']:>8.2f} "
              f"{r['certified']:>8.2f} {r['train_loss']:>8.4f} {r['lr']:>9.2e} "
              f"{r.get('load', float('nan')):>5.1f}")  # fmt: skip


def certify(name: str, out: Path, examples: int, steps: int, restarts: int) -> dict[str, Any]:
    """The certify command's checks on the run's last checkpoint."""
    config, model = model_from_checkpoint(out / name / CHECKPOINT_NAME)
    bound = model_lipschitz(model, MNIST_SHAPE)
    print(bound.describe())
    images, labels = mnist_tensors("test", config.data_dir)
    stride = max(1, images.shape[0] // examples)  # spread over the set: its halves differ
    images, labels = images[::stride][:examples], labels[::stride][:examples]
    start = time.perf_counter()
    report = evaluate_robustness(
        model, images, labels, 1.58, bound, pgd_steps=steps, pgd_restarts=restarts
    )
    print(report.to_text())
    print(
        f"(PGD and certificates on every {stride}th test image, {images.shape[0]} in all: "
        f"{time.perf_counter() - start:.0f} s; the table's clean and certified figures are on "
        "the full test set)"
    )
    assert report.consistent, "certified <= PGD-robust <= clean violated: the bound is wrong"
    return report.to_dict()


def plan(
    parts: list[str],
    minutes: tuple[float, float],
    threads: int | None,
    ablation_epochs: int = ABLATION_EPOCHS,
) -> dict[str, TrainConfig]:
    """The runs of the chosen parts, each with its time limit."""
    fast, slow = (
        dataclasses.replace(load_config(path), progress=False, time_limit=limit)
        for path, limit in ((RECIPE_15, minutes[0]), (RECIPE_30, minutes[1]))
    )
    if threads is not None:
        fast, slow = (dataclasses.replace(c, threads=threads) for c in (fast, slow))
    runs: dict[str, TrainConfig] = {}
    if "figure15" in parts:
        runs["small-bcop"] = fast
    if "figure30" in parts:
        runs["small-bcop-30"] = slow
    if "ablation" in parts:
        for conv in ("bcop", "rko", "ossn", "svcm"):
            runs[f"ablation-{conv}"] = dataclasses.replace(
                fast,
                conv=conv,
                threads=1,
                epochs=ablation_epochs,
                lr_schedule="exponential",
                lr_decay=0.85,
                average_decay=0.998,
                loss="hinge",
                time_limit=None,
            )
    for model in ("large", "fc3"):
        if model in parts:
            runs[f"{model}-bcop"] = dataclasses.replace(
                fast, model=model, batch_size=512, lr=3e-3, epochs=LARGE_EPOCHS, loss="hinge"
            )
    return runs


def train_side_by_side(runs: dict[str, TrainConfig], out: Path, width: int) -> None:
    """Train (or finish) the runs ``width`` at a time, each in its own process."""
    context = multiprocessing.get_context("spawn")
    names = list(runs)
    for start in range(0, len(names), width):
        batch = [
            context.Process(target=run, args=(name, runs[name], out))
            for name in names[start : start + width]
        ]
        for process in batch:
            process.start()
        for process in batch:
            process.join()
            if process.exitcode:
                raise SystemExit(f"a training process failed (exit code {process.exitcode})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", nargs="+", default=list(PARTS), choices=PARTS)
    parser.add_argument("--out", type=Path, default=Path("runs/bench_mnist"))
    parser.add_argument("--pgd-examples", type=int, default=1000)
    parser.add_argument("--pgd-steps", type=int, default=50)
    parser.add_argument("--pgd-restarts", type=int, default=3)
    parser.add_argument("--threads", type=int, help="override the recipes' thread count")
    parser.add_argument(
        "--ablation-parallel", type=int, default=2, help="ablation runs side by side (default 2)"
    )
    parser.add_argument("--quick", action="store_true", help="1-minute runs, 100 PGD images")
    args = parser.parse_args()
    minutes = (1.0, 1.0) if args.quick else (15.0, 30.0)
    if args.quick:
        args.pgd_examples = 100
    rows: list[tuple[str, float, dict[str, Any], dict[str, Any] | None]] = []
    runs = plan(args.part, minutes, args.threads, 1 if args.quick else ABLATION_EPOCHS)
    ablation = {name: config for name, config in runs.items() if name.startswith("ablation-")}
    train_side_by_side(ablation, args.out, args.ablation_parallel)
    for name, config in runs.items():
        torch.set_num_threads(config.threads)
        history = run(name, config, args.out)
        print_curve(history)
        checks = certify(name, args.out, args.pgd_examples, args.pgd_steps, args.pgd_restarts)
        if config.time_limit is None:  # an epoch budget: its last record
            rows.append((name, history[-1]["train_minutes"], history[-1], checks))
            continue
        limit = config.time_limit
        marks = sorted({m for m in (7.6, minutes[0], limit) if m <= limit})
        for budget in marks:
            record = at_minutes(history, budget)
            if record is not None:
                rows.append((name, budget, record, checks if budget == marks[-1] else None))
    print("\n## Table: MNIST, certified at eps = 1.58 (L2, [0,1] pixels), full test set")
    print(f"{'run':<14} {'budget':>6} {'minutes':>7} {'epochs':>6} {'clean %':>8} {'cert. %':>8} "
          f"{'PGD %':>6} {'seed clean':>10} {'seed cert.':>10}")  # fmt: skip
    for name, budget, record, report in rows:
        seed = SEED.get(name.removesuffix("-30"))
        pgd = f"{report['pgd_accuracy']:.1f}" if report else "-"
        print(f"{name:<14} {budget:>6.3g} {record['train_minutes']:>7.2f} {record['epoch']:>6.2f} "
              f"{record['clean']:>8.2f} {record['certified']:>8.2f} {pgd:>6} "
              f"{seed[0] if seed else '-':>10} {seed[1] if seed else '-':>10}")  # fmt: skip
    print(
        f"(seed, original code, 200 epochs: {SEED['small-bcop (original code, 200 epochs)']}; "
        f"PGD on {args.pgd_examples} test images spread over the set; load now "
        f"{os.getloadavg()})"
    )


if __name__ == "__main__":
    main()
