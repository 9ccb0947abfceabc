"""The ``gnpcheck audit`` subcommand.

``gnpcheck audit MODULE:FACTORY --input-shape C,H,W`` audits one target and prints its
verdict table; ``gnpcheck audit`` alone audits gnpcheck's layer zoo (good layers, layers
broken on purpose, gnpcheck's own layers) and prints one row per layer.

Exit status: 0 every claim holds (the zoo: every layer is judged as expected); 1 a claim is
violated (the zoo: a layer is not judged as expected); 2 a usage error, a target that cannot
be built or run, or a claim that could not be decided (inconclusive).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

from gnpcheck.audit.claims import CLAIMS, DESCRIPTIONS
from gnpcheck.audit.report import AuditReport
from gnpcheck.errors import GnpcheckError

__all__ = ["EXIT_ERROR", "EXIT_HOLDS", "EXIT_VIOLATED", "add_audit_parser", "run_audit_command"]

#: Every claim holds.
EXIT_HOLDS = 0
#: A claim is violated.
EXIT_VIOLATED = 1
#: Usage error, target error, or an undecided claim.
EXIT_ERROR = 2

_DTYPES = {"float64": torch.float64, "float32": torch.float32}


def add_audit_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``audit`` subcommand to ``subparsers`` (from ``add_subparsers``)."""
    claims = "; ".join(f"{name}: {text}" for name, text in DESCRIPTIONS.items())
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "audit",
        help="audit a layer's claims (or, with no target, gnpcheck's layer zoo)",
        description="Check what a layer claims (1-Lipschitz, orthogonal, GNP, and how it "
        "behaves in training) and print the verdicts with their evidence. Claims: " + claims,
    )
    parser.add_argument(
        "target",
        nargs="?",
        metavar="MODULE:FACTORY",
        help="an nn.Module or a zero-argument factory returning one, e.g. mypkg.layers:make; "
        "omit it to audit gnpcheck's layer zoo",
    )
    parser.add_argument(
        "--input-shape", metavar="C,H,W", help="one input without the batch axis: C,H,W or C,L or F"
    )
    parser.add_argument(
        "--claims",
        metavar="A,B",
        help=f"claims to check (default: those that apply), from {', '.join(CLAIMS)}",
    )
    parser.add_argument("--json", metavar="PATH", type=Path, help="write the report as JSON")
    parser.add_argument(
        "--markdown", metavar="PATH", type=Path, help="write the report as Markdown"
    )
    parser.add_argument(
        "--counterexamples",
        metavar="DIR",
        type=Path,
        help="save each violated claim's counterexample to DIR/<claim>.pt",
    )
    parser.add_argument(
        "--time-budget",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="seconds per audit (default 60)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of every draw (default 0)")
    parser.add_argument(
        "--seeds",
        type=int,
        default=1,
        metavar="N",
        help="audit with seeds SEED .. SEED+N-1 (a factory's initialization is drawn anew for "
        "each): a table of their verdicts, then the first violating seed's report (default 1)",
    )
    parser.add_argument(
        "--dtype",
        choices=sorted(_DTYPES),
        default="float64",
        help="dtype of the audit: a factory builds the target in it, a module is converted to "
        "it (default float64)",
    )
    parser.add_argument(
        "--lipschitz",
        type=float,
        default=None,
        metavar="L",
        help="the Lipschitz constant to check (default: the target's lipschitz_bound(), else 1)",
    )
    parser.add_argument("--device", default=None, help="device to run on (default: the target's)")
    return parser


def _fail(message: str) -> int:
    print(f"gnpcheck audit: error: {message}", file=sys.stderr)
    return EXIT_ERROR


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n", encoding="utf-8")


def _run_zoo(args: argparse.Namespace) -> int:
    from gnpcheck.audit.table import LEGEND
    from gnpcheck.zoo import default_zoo
    from gnpcheck.zoo.run import audit_zoo, zoo_table

    if args.input_shape or args.claims or args.counterexamples or args.lipschitz is not None:
        return _fail("--input-shape, --claims, --lipschitz and --counterexamples need a target")
    start = time.perf_counter()
    outcomes = audit_zoo(default_zoo(), seeds=(args.seed,), time_budget=args.time_budget)
    print(zoo_table(outcomes))
    judged = [o for o in outcomes if o.as_expected is not None]
    wrong = [o.entry.name for o in judged if not o.as_expected]
    print(
        f"\n{len(judged) - len(wrong)} of {len(judged)} layers judged as expected "
        f"({len(outcomes) - len(judged)} baselines reported; seed {args.seed}; "
        f"{time.perf_counter() - start:.1f} s)"
        + (f"; not as expected: {', '.join(wrong)}" if wrong else "")
    )
    print(LEGEND)
    if args.json:
        _write(
            args.json,
            json.dumps(
                [
                    {
                        "layer": o.entry.name,
                        "expected": o.entry.expected,
                        "as_expected": o.as_expected,
                        **o.report.to_dict(),
                    }
                    for o in outcomes
                ],
                indent=2,
            ),
        )
    if args.markdown:
        _write(args.markdown, "\n\n".join(o.report.to_markdown() for o in outcomes))
    return EXIT_VIOLATED if wrong else EXIT_HOLDS


def run_audit_command(args: argparse.Namespace) -> int:
    """Run ``gnpcheck audit`` with parsed ``args``; returns the exit status."""
    from gnpcheck.audit import audit
    from gnpcheck.nn.precision import use_ieee_float32_arithmetic

    use_ieee_float32_arithmetic()  # float32 audits on a GPU: cuDNN's default is TF32
    if args.target is None:
        return _run_zoo(args)
    if not args.input_shape:
        return _fail("--input-shape is required with a target, e.g. --input-shape 16,32,32")
    if args.seeds < 1:
        return _fail(f"--seeds={args.seeds}, but it must be at least 1")
    reports = []
    try:
        for seed in range(args.seed, args.seed + args.seeds):
            reports.append(
                audit(
                    args.target,
                    args.input_shape,
                    claims=args.claims,
                    dtype=_DTYPES[args.dtype],
                    seed=seed,
                    time_budget=args.time_budget,
                    lipschitz_constant=args.lipschitz,
                    device=args.device,
                )
            )
    except (GnpcheckError, ValueError, TypeError) as error:
        return _fail(str(error))
    shown = next((i for i, r in enumerate(reports) if r.violated or r.mutated), 0)
    report = reports[shown]
    if len(reports) > 1:
        print(_seed_table(reports, args.seed, args.seed + shown) + "\n")
    print(report.to_text())
    if args.json:
        texts = [r.to_json() for r in reports]
        _write(args.json, texts[0] if len(texts) == 1 else "[\n" + ",\n".join(texts) + "\n]")
    if args.markdown:
        _write(args.markdown, "\n\n".join(r.to_markdown() for r in reports))
    if args.counterexamples:
        for result in report.results:
            if result.counterexample is not None:
                path = result.counterexample.save(args.counterexamples / f"{result.claim}.pt")
                print(f"counterexample of {result.claim}: {path}")
    if report.target_error is not None:
        print(f"gnpcheck audit: target error: {report.target_error}", file=sys.stderr)
    if any(r.violated or r.mutated for r in reports):
        return EXIT_VIOLATED
    return EXIT_HOLDS if all(r.passed for r in reports) else EXIT_ERROR


def _seed_table(reports: list[AuditReport], first: int, shown: int) -> str:
    """One row per seed from ``first`` (its verdict marks), how many seeds violate each claim,
    and which seed's report follows (``shown``)."""
    from gnpcheck.audit.table import ABBREVIATIONS, LEGEND, aligned, claim_marks

    rows = [["seed", *ABBREVIATIONS.values(), "seconds"]]
    for seed, report in enumerate(reports, start=first):
        rows.append([str(seed), *claim_marks(report), f"{report.seconds:.1f}"])
    counts = {
        claim: sum(r.verdict(claim) == "violated" for r in reports if claim in r.claims)
        for claim in ABBREVIATIONS
    }
    violated = [f"{claim} at {n} of {len(reports)} seeds" for claim, n in counts.items() if n]
    summary = "violated: " + ", ".join(violated) if violated else "no claim violated at any seed"
    return f"{aligned(rows)}\n{LEGEND}\n{summary}; the report of seed {shown} follows"
