"""The ``gnpcheck wasserstein`` subcommand: ``generator``, ``estimate`` and ``table``.

- ``gnpcheck wasserstein generator --out DIR --minutes M``: train the MNIST generator with
  WGAN-GP (:mod:`gnpcheck.wasserstein.gan`), writing ``DIR/generator.pt`` and a grid of
  samples ``DIR/samples.png``; ``--resume`` continues it.
- ``gnpcheck wasserstein estimate --p mnist --q noise:0.1 --critic bcop --act maxmin``:
  one W1 lower bound (:func:`gnpcheck.wasserstein.estimate`), checked against the known
  distance of the pair when there is one; ``--plot`` draws the estimate over the steps.
- ``gnpcheck wasserstein table --q noise:0.1 --q generator:DIR/generator.pt``: the seed's
  critic x activation table on each pair (:mod:`gnpcheck.wasserstein.experiment`).

Exit status: 0 on success; 1 when a lower bound exceeds a known distance beyond its error
(a critic is not what its Lipschitz bound says); 2 on a usage or data error (the message
says which).
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

from gnpcheck.errors import GnpcheckError

__all__ = ["add_wasserstein_parser", "main", "run_wasserstein_command"]

#: The generator settings the command line sets: type and help.
_GENERATOR_SETTINGS: dict[str, tuple[type, str]] = {
    "latent_dim": (int, "latent size (default 64)"),
    "width": (int, "channels of the networks' last hidden layers (default 32)"),
    "batch_size": (int, "images per step (default 64)"),
    "lr": (float, "Adam learning rate of both networks (default 1e-4)"),
    "beta1": (float, "Adam beta1 (default 0.5)"),
    "beta2": (float, "Adam beta2 (default 0.9)"),
    "n_critic": (int, "critic steps per generator step (default 5)"),
    "gp_weight": (float, "gradient penalty weight lambda (default 10)"),
    "steps": (int, "generator steps in all (default 20000)"),
    "seed": (int, "seed of initialization and of every draw (default 0)"),
    "train_examples": (int, "use the first N MNIST training images (default all)"),
    "data_dir": (str, "MNIST directory (default $GNPCHECK_DATA_DIR or ../shared/data/mnist)"),
    "threads": (int, "torch threads (default 1)"),
    "checkpoint_every": (int, "write the checkpoint every N generator steps (default 100)"),
    "log_every": (int, "record the losses every N generator steps (default 50)"),
}
_CHOICES = {
    "critic": ("bcop", "rko", "ossn", "svcm", "fc"),
    "act": ("maxmin", "relu", "groupsort"),
}


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}, but it must be an int >= 1")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"{text!r}, but it must be a number > 0")
    return value


def _names(text: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in text.split(","))


def _widths(text: str) -> tuple[int, ...]:
    return tuple(_positive_int(width.strip()) for width in text.split(","))


def _add_generator_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "generator",
        help="train the MNIST generator with WGAN-GP (checkpoints, resume)",
        description="Train a small DCGAN-like generator on MNIST with WGAN-GP (Gulrajani et "
        "al. 2017); write OUT/generator.pt every --checkpoint-every steps and at the end, and "
        "OUT/samples.png.",
    )
    parser.add_argument("--out", type=Path, required=True, help="directory of the run")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out; only steps, minutes, threads, data-dir, "
        "checkpoint-every, log-every and progress may change",
    )
    parser.add_argument(
        "--minutes",
        dest="time_limit",
        type=_positive_float,
        metavar="M",
        default=argparse.SUPPRESS,
        help="stop once the run has trained this many minutes in all",
    )
    parser.add_argument(
        "--grid",
        type=_positive_int,
        default=64,
        metavar="N",
        help="samples in OUT/samples.png (default 64)",
    )
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=argparse.SUPPRESS,
        help="tqdm progress bar (default on)",
    )
    settings = parser.add_argument_group("settings (a resumed run keeps its own)")
    for name, (kind, text) in _GENERATOR_SETTINGS.items():
        settings.add_argument(
            "--" + name.replace("_", "-"),
            dest=name,
            type=kind,
            default=argparse.SUPPRESS,
            metavar="DIR" if name == "data_dir" else kind.__name__.upper(),
            help=text,
        )


def _add_budget(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--p", default="mnist", help="mnist (test split, default) or mnist:train")
    parser.add_argument(
        "--examples",
        type=_positive_int,
        default=5000,
        help="images of p (and of q; default 5000)",
    )
    parser.add_argument(
        "--steps", type=_positive_int, default=2000, help="critic steps (default 2000)"
    )
    parser.add_argument(
        "--minutes", type=_positive_float, help="stop each critic after this many minutes"
    )
    parser.add_argument("--batch-size", type=_positive_int, default=256, help="default 256")
    parser.add_argument("--lr", type=_positive_float, default=1e-3, help="Adam (default 1e-3)")
    parser.add_argument(
        "--eval-every",
        type=_positive_int,
        default=100,
        help="record the held-out gap every N steps (default 100)",
    )
    parser.add_argument(
        "--hidden", type=_widths, help="hidden widths of the critic, e.g. 100 or 128,128"
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="shuffle, noise, samples, critic init and batches (default 0)",
    )
    parser.add_argument(
        "--threads", type=_positive_int, default=2, help="torch threads (default 2)"
    )
    parser.add_argument("--data-dir", type=Path, help="MNIST directory")
    parser.add_argument("--plot", type=Path, help="write the held-out gap over the steps (PNG)")
    parser.add_argument("--progress", action="store_true", help="tqdm progress bar")


def add_wasserstein_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``wasserstein`` and its subcommands to ``subparsers`` (from ``add_subparsers``)."""
    forms = "mnist, noise:SIGMA, offset:C, generator:CHECKPOINT"
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "wasserstein",
        help="Wasserstein-1 lower bounds with measured critics; the seed's critic table",
        description="Estimate W1(p, q) from below with Lipschitz critics whose bound is "
        "measured, train the generator of the experiment, run the critic table.",
    )
    commands = parser.add_subparsers(dest="wasserstein_command", metavar="COMMAND", required=True)
    _add_generator_parser(commands)
    single = commands.add_parser(
        "estimate",
        help="one W1 lower bound, checked against the pair's known distance",
        description=f"Train a critic on half of p and q and report the held-out gap over its "
        f"measured Lipschitz bound. q: {forms}.",
    )
    single.add_argument("--q", required=True, help=forms)
    single.add_argument(
        "--critic", choices=_CHOICES["critic"], default="bcop", help="conv layer, or fc"
    )
    single.add_argument("--act", choices=_CHOICES["act"], default="maxmin")
    single.add_argument("--group-size", type=_positive_int, default=2, help="act groupsort only")
    _add_budget(single)
    table = commands.add_parser(
        "table",
        help="the seed's table: W1 lower bounds by convolution x activation",
        description=f"Every conv critic of --convs x --acts on each pair with the same budget; "
        f"the seed's ordering claims judged. q (repeatable): {forms}.",
    )
    table.add_argument("--q", action="append", required=True, help=forms)
    table.add_argument("--convs", type=_names, default=("bcop", "rko", "ossn"), help="A,B,...")
    table.add_argument("--acts", type=_names, default=("maxmin", "relu"), help="A,B")
    _add_budget(table)
    return parser


def _run_generator(args: argparse.Namespace) -> int:
    from gnpcheck.wasserstein.gan import GeneratorConfig, resume_generator, train_generator
    from gnpcheck.wasserstein.plot import sample_grid

    names = {item.name for item in fields(GeneratorConfig)}
    settings = {name: getattr(args, name) for name in sorted(names) if hasattr(args, name)}
    if args.resume:
        run = resume_generator(args.out, settings)
    else:
        run = train_generator(GeneratorConfig(**settings), args.out)
    grid = sample_grid(run.generator.sample(args.grid, seed=0), args.out / "samples.png")
    print(
        f"stopped: {run.stopped} after {run.step} generator steps, {run.seconds / 60:.2f} min "
        f"of training; checkpoint: {run.checkpoint}; samples: {grid}"
    )
    return 0


def _pair(args: argparse.Namespace, q: str) -> Any:
    from gnpcheck.wasserstein.pairs import make_pair

    return make_pair(q, args.examples, p_spec=args.p, data_dir=args.data_dir, seed=args.seed)


def _known_line(lower: float, error: float, pair: Any) -> tuple[str, bool]:
    from gnpcheck.wasserstein.pairs import CONSISTENCY_STANDARD_ERRORS, is_consistent

    if pair.known is None:
        return "known distance: none for this pair", True
    good = is_consistent(lower, error, pair.known)
    return (
        f"known distance {pair.known.describe()}: lower bound within "
        f"{CONSISTENCY_STANDARD_ERRORS:g} standard errors of it: "
        + ("holds" if good else "does not hold"),
        good,
    )


def _run_estimate(args: argparse.Namespace) -> int:
    from gnpcheck.wasserstein import build_critic, estimate
    from gnpcheck.wasserstein.plot import plot_estimates

    pair = _pair(args, args.q)
    kind = "fc" if args.critic == "fc" else "conv"
    conv = None if kind == "fc" else args.critic
    critic = build_critic(
        kind,
        tuple(pair.p.shape[1:]),
        conv,
        args.act,
        args.hidden,
        args.group_size,
        seed=args.seed,
    )
    result = estimate(
        pair.p,
        pair.q,
        critic,
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        eval_every=args.eval_every,
        time_limit=args.minutes,
        threads=args.threads,
        progress=args.progress,
    )
    print(f"pair: {pair.name}; critic: {args.critic}, {args.act}")
    print(result.describe())
    line, good = _known_line(result.lower_bound, result.lower_bound_error, pair)
    print(line)
    if args.plot is not None:
        known = None if pair.known is None else (pair.known.value, pair.known.describe())
        label = f"{args.critic}, {args.act}"
        path = plot_estimates({label: result.history}, args.plot, title=pair.name, known=known)
        print(f"wrote {path}")
    return 0 if good else 1


def _plot_path(path: Path, index: int, count: int) -> Path:
    return path if count == 1 else path.with_name(f"{path.stem}_{index}{path.suffix}")


def _run_table(args: argparse.Namespace) -> int:
    from gnpcheck.wasserstein.experiment import format_table, run_table
    from gnpcheck.wasserstein.plot import plot_estimates

    pairs = [_pair(args, q) for q in args.q]
    good = True
    for index, pair in enumerate(pairs, start=1):
        print(f"## {pair.name}", flush=True)
        table = run_table(
            pair,
            convs=args.convs,
            acts=args.acts,
            steps=args.steps,
            time_limit=args.minutes,
            batch_size=args.batch_size,
            lr=args.lr,
            seed=args.seed,
            eval_every=args.eval_every,
            hidden=args.hidden,
            threads=args.threads,
            progress=args.progress,
            on_entry=lambda entry: print(
                f"{entry.label}: {entry.result.lower_bound:.4f} +- "
                f"{entry.result.lower_bound_error:.4f} ({entry.result.seconds:.1f} s)",
                flush=True,
            ),
        )
        print()
        print(format_table(table))
        print()
        good = good and table.consistent
        if args.plot is not None:
            known = None if pair.known is None else (pair.known.value, pair.known.describe())
            histories = {entry.label: entry.result.history for entry in table.entries}
            path = _plot_path(args.plot, index, len(pairs))
            print(f"wrote {plot_estimates(histories, path, title=pair.name, known=known)}")
    return 0 if good else 1


def run_wasserstein_command(args: argparse.Namespace) -> int:
    """Run the parsed ``wasserstein`` subcommand; returns the exit status.

    Errors gnpcheck raises on purpose (bad arguments, missing data or checkpoints, a critic
    it cannot measure) are printed as ``gnpcheck: error: ...`` and give status 2.
    """
    from gnpcheck.nn.precision import use_ieee_float32_arithmetic

    runners = {"generator": _run_generator, "estimate": _run_estimate, "table": _run_table}
    use_ieee_float32_arithmetic()  # measured bounds on a GPU: cuDNN's default is TF32
    try:
        return runners[args.wasserstein_command](args)
    except GnpcheckError as error:
        print(f"gnpcheck: error: {error}", file=sys.stderr)
        return 2


def main(argv: Sequence[str] | None = None) -> int:
    """The subcommand on its own (``python -m gnpcheck.wasserstein_cli generator ...``)."""
    parser = argparse.ArgumentParser(prog="gnpcheck")
    add_wasserstein_parser(parser.add_subparsers(dest="command", metavar="COMMAND", required=True))
    return run_wasserstein_command(parser.parse_args(argv))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
