"""The ``gnpcheck`` command.

``gnpcheck audit [MODULE:FACTORY --input-shape C,H,W]`` audits a layer's claims (bare: the
layer zoo) and prints the verdict table; ``gnpcheck check`` runs the reference self-check and
prints measured defects against their tolerances. Exit status 0 when everything holds, 1
when a claim is violated or a check fails, 2 on a usage or target error.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

from gnpcheck import __version__
from gnpcheck.audit_cli import add_audit_parser, run_audit_command
from gnpcheck.train_cli import TRAIN_COMMANDS, add_train_parsers, run_train_command
from gnpcheck.wasserstein_cli import add_wasserstein_parser, run_wasserstein_command

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``gnpcheck`` command and its subcommands."""
    parser = argparse.ArgumentParser(
        prog="gnpcheck",
        description="Verify orthogonal, gradient-norm-preserving convolutions.",
    )
    parser.add_argument("--version", action="version", version=f"gnpcheck {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    check = commands.add_parser(
        "check", help="run the float64 reference self-check and print a table of measured defects"
    )
    check.add_argument("--seed", type=int, default=0, help="seed of the random kernels (default 0)")
    add_audit_parser(commands)
    add_train_parsers(commands)
    add_wasserstein_parser(commands)
    return parser


def _run_check(seed: int) -> int:
    from gnpcheck.selfcheck import format_table, run_self_checks

    start = time.perf_counter()
    results = run_self_checks(seed)
    print(format_table(results))
    failed = sum(not r.passed for r in results)
    elapsed = time.perf_counter() - start
    print(f"\n{len(results) - failed} passed, {failed} failed ({elapsed:.1f} s, seed {seed})")
    from gnpcheck.nn import native

    print(f"native BCOP library (docs/layers.rst, Note [native stages]): {native.status()}")
    return 1 if failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "check":
        return _run_check(args.seed)
    if args.command == "audit":
        return run_audit_command(args)
    if args.command in TRAIN_COMMANDS:
        return run_train_command(args)
    if args.command == "wasserstein":
        return run_wasserstein_command(args)
    parser.print_help(sys.stderr)
    return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
