"""Benchmark of the audit: does it tell good layers from broken ones, and how fast is it?

Prints:

1. the zoo over N seeds (default 20): every broken layer must be caught on the claim it
   breaks (detection rate 100%) and no good layer may have a violated claim (0 false alarms);
   gnpcheck's own layers count as good ones;
2. the audit time (all default claims) of a 64-channel 3x3 circular convolution on 16x16
   inputs, orthogonal (decided by the rigorous bound) and not (the exact circulant spectrum),
   against the target of 30 s;
3. the same for 256 channels on 32x32 inputs, against 60 s;
4. a small third-party-style network (BCOP convolution, MaxMin, Björck linear layer), end to
   end, against 60 s.

Run: ``python benchmarks/bench_audit.py [--seeds 20] [--skip-zoo]``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch
from torch import nn

from gnpcheck.audit import AuditReport, audit
from gnpcheck.nn import BCOPConv2d, BjorckLinear, MaxMin
from gnpcheck.zoo import BROKEN, GOOD, library_entries
from gnpcheck.zoo.run import ZooOutcome, audit_zoo


def _zoo(seeds: int) -> bool:
    entries = GOOD + BROKEN + tuple(e for e in library_entries() if e.judged)
    print(f"## 1. zoo over {seeds} seeds ({len(entries)} layers)")
    start = time.perf_counter()

    def progress(outcome: ZooOutcome) -> None:
        if outcome.seed == seeds - 1:
            print(f"   {outcome.entry.name} done ({time.perf_counter() - start:.0f} s)", flush=True)

    outcomes = audit_zoo(entries, seeds=range(seeds), progress=progress)
    print(f"{'layer':<26} {'must find':<24} {'as expected':>12} {'mean s':>7}")
    ok = True
    for entry in entries:
        mine = [o for o in outcomes if o.entry is entry]
        hits = sum(bool(o.as_expected) for o in mine)
        mean = sum(o.report.seconds for o in mine) / len(mine)
        print(
            f"{entry.name:<26} {entry.expected or 'all hold':<24} "
            f"{hits:>5}/{len(mine):<6} {mean:>7.2f}"
        )
        ok &= hits == len(mine)
    broken = [o for o in outcomes if o.entry.expected is not None]
    good = [o for o in outcomes if o.entry.expected is None]
    caught = sum(o.caught for o in broken)
    alarms = sum(bool(o.false_alarms) for o in good)
    undecided = sum(not o.report.passed and not o.false_alarms for o in good)
    print(
        f"detection rate: {caught}/{len(broken)} = {100 * caught / len(broken):.1f}% "
        f"caught on the right claim"
    )
    print(
        f"false alarms: {alarms} of {len(good)} audits of good layers "
        f"({undecided} with an inconclusive claim)"
    )
    print(f"zoo total: {time.perf_counter() - start:.1f} s")
    return ok and alarms == 0 and undecided == 0 and caught == len(broken)


class _ReshapedNorm(nn.Module):
    """A circular 3x3 convolution divided by the norm of its reshaped kernel: not orthogonal,
    so the audit needs the exact spectrum."""

    claims = frozenset({"lipschitz"})

    def __init__(self, channels: int) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        self.weight = nn.Parameter(
            torch.randn(channels, channels, 3, 3, generator=generator, dtype=torch.float64)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        norm = torch.linalg.matrix_norm(self.weight.reshape(self.weight.shape[0], -1), ord=2)
        padded = torch.nn.functional.pad(x, (1, 1, 1, 1), mode="circular")
        return torch.nn.functional.conv2d(padded, self.weight / norm)


class _ThirdPartyNetwork(nn.Module):
    """BCOP convolution, MaxMin, flatten, Björck linear layer to 10 outputs."""

    claims = frozenset({"lipschitz", "gnp"})

    def __init__(self, channels: int, size: int) -> None:
        super().__init__()
        self.conv = BCOPConv2d(channels, channels, 3)
        self.activation = MaxMin()
        self.head = BjorckLinear(channels * size * size, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.head(self.activation(self.conv(x)).flatten(1))
        return logits


def _timed(name: str, make: Callable[[], nn.Module], shape: tuple[int, ...], target: float) -> bool:
    torch.manual_seed(0)
    module = make().double()
    start = time.perf_counter()
    report: AuditReport = audit(module, shape, time_budget=10 * target)
    elapsed = time.perf_counter() - start
    verdicts = ", ".join(f"{r.claim} {r.verdict}" for r in report.results)
    methods = {r.claim: r.method for r in report.results}
    print(
        f"{name}: {elapsed:.1f} s (target <= {target:.0f} s) "
        f"{'meets' if elapsed <= target else 'MISSES'} the target"
    )
    print(f"   {report.structure}")
    print(f"   lipschitz by {methods.get('lipschitz')}")
    print(f"   {verdicts}")
    return elapsed <= target


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20, help="zoo seeds (default 20)")
    parser.add_argument("--skip-zoo", action="store_true", help="only the timings")
    args = parser.parse_args()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads available; the audit "
        "runs on 1 (its default)\n"
    )
    ok = True if args.skip_zoo else _zoo(args.seeds)
    print("\n## 2-4. audit times (all default claims)")
    ok &= _timed(
        "64-channel BCOP 3x3 on 16x16 (bound)", lambda: BCOPConv2d(64, 64, 3), (64, 16, 16), 30
    )
    ok &= _timed(
        "64-channel reshaped-norm 3x3 on 16x16 (exact spectrum)",
        lambda: _ReshapedNorm(64),
        (64, 16, 16),
        30,
    )
    ok &= _timed(
        "256-channel BCOP 3x3 on 32x32 (bound)", lambda: BCOPConv2d(256, 256, 3), (256, 32, 32), 60
    )
    ok &= _timed(
        "256-channel reshaped-norm 3x3 on 32x32 (exact spectrum)",
        lambda: _ReshapedNorm(256),
        (256, 32, 32),
        60,
    )
    ok &= _timed(
        "third-party-style network: BCOP 16ch, MaxMin, Björck linear 4096->10, 16x16",
        lambda: _ThirdPartyNetwork(16, 16),
        (16, 16, 16),
        60,
    )
    print(f"\n{'all figures met' if ok else 'some figure MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
