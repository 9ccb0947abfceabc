r"""What the target is, established by tests, and the spectral verdicts that follow from it.

:func:`analyse` probes a target at one input shape: NaN/inf on structured inputs, affinity,
shift equivariance, then the strongest model that reproduces it (a circular convolution, a
dense matrix, a matrix-free linear map) or "nonlinear". :func:`spectral_claim` decides
``lipschitz``, ``orthogonal`` or ``gnp`` by the method that model allows
(:mod:`gnpcheck.audit.spectral` or :mod:`gnpcheck.audit.search`), and
:func:`size_independent_claim` re-decides them at a second input size on a copy that has run
at the first.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch

from gnpcheck.audit.claims import INPUT_SIZE_INDEPENDENT, LIPSCHITZ, ORTHOGONAL
from gnpcheck.audit.counterexample import Counterexample
from gnpcheck.audit.deadline import Deadline
from gnpcheck.audit.linear import (
    DENSE_LIMIT,
    AffineCheck,
    Map,
    check_affine,
    check_shift_equivariant,
    dense_matrix,
    extract_convolution,
)
from gnpcheck.audit.report import ClaimResult
from gnpcheck.audit.sampler import Sampler
from gnpcheck.audit.search import (
    Effort,
    find_nonfinite,
    nonfinite_result,
    search_gnp,
    search_lipschitz,
)
from gnpcheck.audit.spectral import LinearStructure, linear_claim
from gnpcheck.audit.target import Target
from gnpcheck.tolerances import machine_epsilon

__all__ = ["Analysis", "analyse", "size_independent_claim", "spectral_claim"]


@dataclass
class Analysis:
    """What the audit established about the target at one input shape."""

    module: torch.nn.Module
    f: Map
    sampler: Sampler
    precision: torch.dtype
    structure: str
    nonfinite: tuple[torch.Tensor, int] | None
    linear: LinearStructure | None
    affine: AffineCheck


def analyse(
    target: Target,
    shape: tuple[int, ...],
    seed: int,
    deadline: Deadline,
    effort: Effort,
    spectral: bool,
    warm: tuple[int, ...] | None = None,
) -> Analysis:
    """Probe the target at ``shape`` and establish what kind of map it is; with ``warm``,
    on a copy that has first run at input ``warm``."""
    module = target.fresh() if warm is None else target.warmed(warm, seed)
    module.requires_grad_(False)  # the spectral claims differentiate inputs, not parameters
    sampler = Sampler(seed, shape, target.dtype, target.device)

    def f(x: torch.Tensor) -> torch.Tensor:
        return target.call(module, x)

    with torch.no_grad():
        probe = f(sampler.inputs(2))
        coarser = (
            probe.dtype if machine_epsilon(probe.dtype) > machine_epsilon(target.dtype) else None
        )
        precision = coarser or target.dtype
        nonfinite = None
        if spectral:
            found, tried = find_nonfinite(f, sampler, deadline, 0)
            nonfinite = None if found is None else (found, tried)
        affine = check_affine(f, sampler)
        n = math.prod(shape)
        if not affine.affine:
            structure = f"nonlinear map (not affine: relative residual {affine.residual:.3g})"
            if spectral and nonfinite is None and effort.hypothesis_examples > 0:
                found, tried = find_nonfinite(f, sampler, deadline, effort.hypothesis_examples)
                nonfinite = None if found is None else (found, tried)
            return Analysis(module, f, sampler, precision, structure, nonfinite, None, affine)
        base = LinearStructure(f, affine.offset, sampler, precision, seed)

        def g(x: torch.Tensor) -> torch.Tensor:
            return f(x) - affine.offset

        if check_shift_equivariant(g, sampler):
            model = extract_convolution(g, sampler)
            if model is not None:
                taps = "x".join(map(str, model.kernel.shape[:-2]))
                structure = (
                    "circular convolution (affine and shift-equivariant; "
                    f"{taps} kernel read off impulse responses and verified)"
                )
                linear = dataclasses.replace(base, convolution=model)
                return Analysis(module, f, sampler, precision, structure, nonfinite, linear, affine)
        m = affine.offset.numel()
        if n <= DENSE_LIMIT and m <= 4 * DENSE_LIMIT:
            matrix = dense_matrix(g, sampler)
            if matrix is not None:
                structure = f"linear map (affine; {m} x {n} matrix from basis responses, verified)"
                linear = dataclasses.replace(base, matrix=matrix)
                return Analysis(module, f, sampler, precision, structure, nonfinite, linear, affine)
        structure = f"linear map (affine; {m} x {n}: matrix-free)"
        return Analysis(module, f, sampler, precision, structure, nonfinite, base, affine)


def _nonlinear_orthogonal(analysis: Analysis) -> ClaimResult:
    witness = analysis.affine.witness
    assert witness is not None
    x, y, a, b = witness
    sampler = analysis.sampler
    counterexample = Counterexample(
        claim=ORTHOGONAL,
        kind="nonlinear",
        tensors={"x": x.detach().cpu(), "y": y.detach().cpu()},
        values={"a": a, "b": b},
        measured=analysis.affine.residual,
        tolerance=analysis.affine.tolerance,
        figure="||g(ax + by) - a g(x) - b g(y)|| (relative), g = f - f(0)",
        description="f is not affine, so it cannot be an orthogonal map",
        dtype=str(sampler.dtype).removeprefix("torch."),
        input_shape=sampler.input_shape,
        seed=sampler.seed,
    )
    return ClaimResult(
        ORTHOGONAL,
        "violated",
        "relative affinity residual",
        analysis.affine.residual,
        analysis.affine.tolerance,
        "10 (n + m) eps: forward rounding",
        "affinity test",
        "search",
        "an orthogonal map is linear; claim gnp and lipschitz for a nonlinear one",
        counterexample,
    )


def spectral_claim(
    analysis: Analysis, claim: str, constant: float, deadline: Deadline, effort: Effort
) -> ClaimResult:
    if analysis.nonfinite is not None and (claim != ORTHOGONAL or analysis.linear is not None):
        x, tried = analysis.nonfinite
        return nonfinite_result(claim, x, analysis.sampler, tried, "NaN/inf search")
    if analysis.linear is not None:
        return linear_claim(analysis.linear, claim, constant, deadline)
    if claim == ORTHOGONAL:
        return _nonlinear_orthogonal(analysis)
    if claim == LIPSCHITZ:
        return search_lipschitz(
            analysis.f, analysis.sampler, constant, analysis.precision, deadline, effort
        )
    return search_gnp(analysis.f, analysis.sampler, analysis.precision, deadline, effort)


def size_independent_claim(
    target: Target,
    first: tuple[int, ...],
    shape: tuple[int, ...],
    claims: tuple[str, ...],
    seed: int,
    constant: float,
    deadline: Deadline,
    effort: Effort,
) -> ClaimResult:
    """The spectral ``claims`` re-checked at ``shape`` on a copy that has run at ``first``;
    the worst of their verdicts."""
    analysis = analyse(target, shape, seed, deadline, effort, spectral=True, warm=first)
    results = [spectral_claim(analysis, claim, constant, deadline, effort) for claim in claims]
    order = {"violated": 0, "inconclusive": 1, "holds": 2}
    worst = min(results, key=lambda r: order[r.verdict])
    where = "x".join(map(str, shape))
    counterexample = worst.counterexample
    if counterexample is not None:
        warm = ",".join(map(str, first))
        values = {**counterexample.values, "check": counterexample.claim, "warm_shape": warm}
        counterexample = dataclasses.replace(
            counterexample, claim=INPUT_SIZE_INDEPENDENT, values=values
        )
    summary = "; ".join(f"{r.claim} {r.verdict}" for r in results)
    first_where = "x".join(map(str, first))
    detail = f"at input {where} after running at {first_where}: {summary}" + (
        f"; {worst.detail}" if worst.detail else ""
    )
    return dataclasses.replace(
        worst,
        claim=INPUT_SIZE_INDEPENDENT,
        figure=f"{worst.claim}: {worst.figure}",
        method=f"at input {where}: {worst.method}",
        detail=detail,
        counterexample=counterexample,
    )
