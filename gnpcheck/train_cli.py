"""The ``gnpcheck train``, ``certify``, ``spectrum`` and ``export`` subcommands.

:func:`add_train_parsers` registers them on the ``gnpcheck`` command's subparsers and
:func:`run_train_command` runs the one parsed. Exit status: 0 on success; 1 when
``certify`` finds a certified example that PGD breaks (the Lipschitz bound is wrong);
2 on a usage or data error (the message says which).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

from gnpcheck.errors import GnpcheckError, InvalidArgumentError

__all__ = ["TRAIN_COMMANDS", "add_train_parsers", "main", "run_train_command"]

#: The subcommands this module adds.
TRAIN_COMMANDS = ("train", "certify", "spectrum", "export")

_SETTING_HELP = {
    "model": "architecture: small, large or fc3 (default small)",
    "conv": "convolution: bcop, rko, ossn or svcm (default bcop)",
    "act": "activation: maxmin or relu (default maxmin)",
    "padding": "circular (orthogonal) or same (zeros) (default circular)",
    "orthogonalizer": "BCOP orthonormalization: qr or bjorck (default qr)",
    "bjorck_iters": "BCOP Björck iterations (orthogonalizer bjorck only)",
    "linear_orthogonalizer": "polar (default: Björck's limit, by an SVD) or bjorck",
    "linear_bjorck_iters": "Björck iterations of the linear layers (bjorck only; default 20)",
    "init_scale": "fan_in (the seed's) or unit scale of the BCOP and Björck matrices",
    "epochs": "epochs (default 200)",
    "batch_size": "global batch size (default 128)",
    "lr": "Adam learning rate (default 1e-3)",
    "lr_schedule": "exponential (times lr_decay per epoch; default) or cosine (over epochs)",
    "lr_decay": "learning rate factor per epoch, exponential schedule (default 0.96235)",
    "average_decay": "evaluate a moving average of the weights with this decay per step",
    "loss": "hinge (the seed's, mean over classes; default) or max_hinge (top competitor)",
    "eps_train": "hinge margin is sqrt(2) * eps_train (default 1.5)",
    "eps_cert": "L2 radius of the certified accuracy while training (default 1.58)",
    "seed": "seed of initialization and data order (default 0)",
    "threads": "torch threads (default 2)",
    "time_limit": "stop after this many minutes of training (default none)",
    "eval_every": "evaluate on the test set every N epochs (default 1)",
    "train_examples": "use the first N training examples (default all)",
    "test_examples": "use the first N test examples (default all)",
    "data_dir": "MNIST directory (default $GNPCHECK_DATA_DIR or ../shared/data/mnist)",
    "device": "cpu or cuda[:N] (default cpu)",
    "channels_last": "channels-last memory format for the images",
    "progress": "tqdm progress bar (default on)",
}


def _add_settings(parser: argparse.ArgumentParser) -> None:
    from gnpcheck.train.config import TrainConfig, field_types

    types_by_name = field_types()
    settings = parser.add_argument_group("settings (override the TOML file and the defaults)")
    for item in fields(TrainConfig):
        flag = "--" + item.name.replace("_", "-")
        base, _ = types_by_name[item.name]
        if base is bool:
            settings.add_argument(
                flag,
                dest=item.name,
                action=argparse.BooleanOptionalAction,
                default=argparse.SUPPRESS,
                help=_SETTING_HELP[item.name],
            )
        else:
            settings.add_argument(
                flag,
                dest=item.name,
                default=argparse.SUPPRESS,
                metavar=base.__name__.upper(),
                help=_SETTING_HELP[item.name],
            )


def add_train_parsers(subparsers: Any) -> None:
    """Register ``train``, ``certify``, ``spectrum`` and ``export`` on
    ``parser.add_subparsers()``."""
    train = subparsers.add_parser(
        "train",
        help="train a Lipschitz network on MNIST (checkpoints, resume, DDP)",
        description="Train with the multi-class hinge loss, Adam and exponential decay; "
        "write OUT/last.pt after every epoch and OUT/history.csv.",
    )
    train.add_argument("--config", type=Path, help="TOML file of settings (top-level keys)")
    train.add_argument("--out", type=Path, required=True, help="directory of the run")
    train.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out; only epochs, time-limit, eval-every, threads, "
        "progress, data-dir and device may change",
    )
    train.add_argument(
        "--distributed",
        action="store_true",
        help="data-parallel over the processes torchrun starts (gloo on CPU, NCCL on CUDA)",
    )
    _add_settings(train)

    certify = subparsers.add_parser(
        "certify",
        help="clean, PGD-robust and certified accuracy of a checkpoint",
        description="Certify with the larger of the claimed and measured Lipschitz bounds; "
        "refuse a model with a layer whose bound is neither known nor measurable.",
    )
    certify.add_argument("checkpoint", type=Path)
    certify.add_argument("--epsilon", type=float, default=1.58, help="L2 radius (default 1.58)")
    certify.add_argument("--pgd-steps", type=int, default=50, help="PGD steps (default 50)")
    certify.add_argument("--pgd-restarts", type=int, default=3, help="PGD restarts (default 3)")
    certify.add_argument("--examples", type=int, help="first N test examples (default all)")
    certify.add_argument("--batch-size", type=int, default=1000, help="default 1000")
    certify.add_argument("--data-dir", type=Path, help="MNIST directory")
    certify.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    certify.add_argument("--seed", type=int, default=0, help="seed of PGD's random starts")
    certify.add_argument("--json", type=Path, help="also write the report as JSON here")

    spectrum = subparsers.add_parser(
        "spectrum",
        help="histogram of a conv layer's Jacobian singular values, before and after training",
    )
    spectrum.add_argument("checkpoint", type=Path)
    spectrum.add_argument("--layer", type=int, required=True, help="N: the layer named convN")
    spectrum.add_argument("--out", type=Path, help="output directory (default: beside CHECKPOINT)")
    spectrum.add_argument("--bins", type=int, default=60, help="histogram bins (default 60)")

    export = subparsers.add_parser(
        "export",
        help="write a checkpoint's network as a torch.export program that needs no gnpcheck",
        description="Replace each constrained layer by its plain export (each checked on the "
        "test images' activations), trace the plain network with torch.export (any batch "
        "size) and save it; load it back with torch.export.load(FILE).module().",
    )
    export.add_argument("checkpoint", type=Path)
    export.add_argument("--out", type=Path, required=True, help="the program file (e.g. net.pt2)")
    export.add_argument(
        "--examples", type=int, default=256, help="test images to check on (>= 2; default 256)"
    )
    export.add_argument("--data-dir", type=Path, help="MNIST directory")


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    from gnpcheck.train.config import TrainConfig, parse_value

    return {
        item.name: getattr(args, item.name)
        if isinstance(getattr(args, item.name), bool)
        else parse_value(item.name, getattr(args, item.name))
        for item in fields(TrainConfig)
        if hasattr(args, item.name)
    }


def _run_train(args: argparse.Namespace) -> int:
    from gnpcheck.train.config import TrainConfig, config_from_dict, load_config
    from gnpcheck.train.distributed import init_from_env, shutdown, single_process
    from gnpcheck.train.loop import resume, train

    overrides = _settings(args)
    device = str(overrides.get("device", "cpu"))
    context = init_from_env(device) if args.distributed else single_process(device)
    try:
        if args.resume:
            if args.config is not None:
                raise GnpcheckError("--config cannot be combined with --resume")
            result = resume(args.out, overrides, context)
        else:
            base = load_config(args.config) if args.config is not None else TrainConfig()
            result = train(config_from_dict(overrides, base), args.out, context)
    finally:
        shutdown(context)
    if context.is_main:
        print(f"stopped: {result.stopped}; checkpoint: {result.checkpoint}")
        if context.world_size > 1:
            print(f"largest parameter difference between replicas: {result.replica_difference:g}")
    return 0


def _run_certify(args: argparse.Namespace) -> int:
    import torch

    from gnpcheck.certify.lipschitz import model_lipschitz
    from gnpcheck.certify.report import evaluate_robustness
    from gnpcheck.train.dataset import MNIST_SHAPE, mnist_tensors
    from gnpcheck.train.loop import model_from_checkpoint

    torch.set_num_threads(args.threads)
    config, model = model_from_checkpoint(args.checkpoint)
    bound = model_lipschitz(model, MNIST_SHAPE)
    print(bound.to_text())
    images, labels = mnist_tensors("test", args.data_dir or config.data_dir, args.examples)
    report = evaluate_robustness(
        model,
        images,
        labels,
        args.epsilon,
        bound,
        pgd_steps=args.pgd_steps,
        pgd_restarts=args.pgd_restarts,
        batch_size=args.batch_size,
        seed=args.seed,
    )
    print(report.to_text())
    if args.json is not None:
        payload = {
            "checkpoint": str(args.checkpoint),
            "config": config.to_dict(),
            **report.to_dict(),
        }
        payload["lipschitz_claimed"], payload["lipschitz_measured"] = bound.claimed, bound.measured
        args.json.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    return 0 if report.consistent else 1


def _run_spectrum(args: argparse.Namespace) -> int:
    from gnpcheck.train.spectrum import checkpoint_spectrum, write_spectrum

    spectrum = checkpoint_spectrum(args.checkpoint, args.layer)
    print(spectrum.summary())
    out = args.out if args.out is not None else args.checkpoint.parent
    for path in write_spectrum(spectrum, out, f"spectrum_conv{args.layer}", args.bins):
        print(f"wrote {path}")
    return 0


def _run_export(args: argparse.Namespace) -> int:
    from gnpcheck.train.dataset import mnist_tensors
    from gnpcheck.train.deploy import deploy
    from gnpcheck.train.loop import model_from_checkpoint

    if args.examples < 2:
        raise InvalidArgumentError(
            f"--examples={args.examples}, but it must be at least 2 (the program is traced on "
            "them with a free batch size)"
        )
    config, model = model_from_checkpoint(args.checkpoint)
    images, _ = mnist_tensors("test", args.data_dir or config.data_dir, args.examples)
    print(deploy(model, images, args.out).to_text())
    return 0


def run_train_command(args: argparse.Namespace) -> int:
    """Run the parsed ``train``/``certify``/``spectrum``/``export`` command; returns the exit
    status.

    Errors gnpcheck raises on purpose (bad settings, missing data, an uncertifiable model)
    are printed as ``gnpcheck: error: ...`` and give status 2.
    """
    from gnpcheck.nn.precision import use_ieee_float32_arithmetic

    runners = {
        "train": _run_train,
        "certify": _run_certify,
        "spectrum": _run_spectrum,
        "export": _run_export,
    }
    use_ieee_float32_arithmetic()  # certificates on a GPU: cuDNN's default is TF32
    try:
        return runners[args.command](args)
    except GnpcheckError as error:
        print(f"gnpcheck: error: {error}", file=sys.stderr)
        return 2


def main(argv: Sequence[str] | None = None) -> int:
    """These four subcommands on their own (``python -m gnpcheck.train_cli train ...``)."""
    parser = argparse.ArgumentParser(prog="gnpcheck")
    add_train_parsers(parser.add_subparsers(dest="command", metavar="COMMAND", required=True))
    return run_train_command(parser.parse_args(argv))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
