r"""The audit: which claims apply, what the target is, and each claim's verdict.

:func:`audit` runs, inside a forked random state and against a time budget:

1. build the target (call a factory once), deep-copy it, convert the copy;
2. probe it on random inputs (what can go wrong is a target error, not a crash);
3. look for finite inputs with NaN/inf outputs (:func:`gnpcheck.audit.search.find_nonfinite`);
4. establish what it is (:mod:`gnpcheck.audit.analysis`): a circular convolution, a small
   linear map, a large linear map, or a nonlinear map;
5. check each claim by the strongest method that applies (:mod:`gnpcheck.audit.spectral`
   for linear targets, :mod:`gnpcheck.audit.search` for nonlinear ones,
   :mod:`gnpcheck.audit.behaviour` for the behaviour claims), re-checking the spectral
   claims at a second input size for ``input_size_independent``;
6. compare the caller's module with a snapshot taken before: a target that changed it is
   reported.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn

from gnpcheck import __version__
from gnpcheck.audit.analysis import Analysis, analyse, size_independent_claim, spectral_claim
from gnpcheck.audit.behaviour import BEHAVIOUR_CHECKS, behaviour_sampler
from gnpcheck.audit.claims import (
    EXPORT_FAITHFUL,
    FRESH_AFTER_STEP,
    GNP,
    INPUT_SIZE_INDEPENDENT,
    LIPSCHITZ,
    PARAMETER_COVERAGE,
    SPECTRAL_CLAIMS,
    STATE_DICT_ROUNDTRIP,
    declared_lipschitz_constant,
    default_claims,
    parse_claims,
)
from gnpcheck.audit.deadline import Deadline, TimeBudgetError, run_before
from gnpcheck.audit.report import AuditReport, ClaimResult
from gnpcheck.audit.sampler import Sampler
from gnpcheck.audit.search import Effort
from gnpcheck.audit.target import (
    Target,
    TargetError,
    as_input_shape,
    changed,
    snapshot,
    target_name,
)
from gnpcheck.errors import InvalidArgumentError, InvalidTypeError
from gnpcheck.nn.precision import require_ieee_float32_arithmetic
from gnpcheck.threads import limited_threads

__all__ = ["audit", "second_shape"]


def second_shape(input_shape: tuple[int, ...]) -> tuple[int, ...] | None:
    """The default second input size: 4 more along each spatial axis (``None`` without one)."""
    if len(input_shape) < 2:
        return None
    return (input_shape[0], *(size + 4 for size in input_shape[1:]))


def _inconclusive(claim: str, detail: str) -> ClaimResult:
    return ClaimResult(claim, "inconclusive", "-", None, None, "", "not run", "none", detail)


def _not_applicable(
    target: Target,
    claim: str,
    first: tuple[int, ...],
    second: tuple[int, ...] | None,
    seed: int,
    deadline: Deadline,
) -> str | None:
    """Why ``claim`` does not apply to the target, or ``None`` if it does (a target that, after
    running at the first input size, refuses the second, is not size independent by design)."""
    module = target.pristine
    if claim == FRESH_AFTER_STEP and not any(p.requires_grad for p in module.parameters()):
        return "the target has no trainable parameters"
    if claim == PARAMETER_COVERAGE and not any(
        p.numel() and p.requires_grad for p in module.parameters()
    ):
        return "the target has no trainable parameters"
    if claim == STATE_DICT_ROUNDTRIP and not module.state_dict():
        return "the target has an empty state dict"
    if claim == EXPORT_FAITHFUL:
        return _export_missing(module)
    if claim == INPUT_SIZE_INDEPENDENT:
        if second is None:
            return "the input has no spatial axis to resize"
        probe = Sampler(seed, second, target.dtype, target.device).inputs(1)

        def run() -> torch.Tensor:
            module = target.warmed(first, seed)
            with torch.no_grad():
                return target.call(module, probe)

        try:
            run_before(deadline, run, "probing the second input size")
        except TargetError as error:
            return f"the target does not run at input {second}: {error}"
    return None


def _export_missing(module: nn.Module) -> str | None:
    """Why ``module`` has no ``export()`` to check: none, one that takes arguments (a path to
    write to, say: never called), or one that returns something other than a module (an
    export of another kind); ``None`` if it has one to check. The probe calls ``export()``
    on a copy; an ``export()`` that raises there is checked (the claim reports it)."""
    export = getattr(module, "export", None)
    if not callable(export):
        return "the target has no export()"
    try:
        parameters = list(inspect.signature(export).parameters)
    except (TypeError, ValueError):  # no signature to read
        return "the target's export() has no signature to read"
    if parameters:
        return f"the target's export() takes arguments ({', '.join(parameters)})"
    try:
        plain = copy.deepcopy(module).export()  # type: ignore[operator]
    except Exception:
        return None
    if not isinstance(plain, nn.Module):
        return f"the target's export() returns a {type(plain).__name__}, not an nn.Module"
    return None


def _validate(seed: object, lipschitz_constant: object, threads: object) -> None:
    if threads is not None and (
        isinstance(threads, bool) or not isinstance(threads, int) or threads < 1
    ):
        raise InvalidArgumentError(f"threads={threads!r}, but it must be None or an int >= 1")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise InvalidArgumentError(f"seed={seed!r}, but it must be an int >= 0")
    if lipschitz_constant is not None:
        if isinstance(lipschitz_constant, bool) or not isinstance(lipschitz_constant, int | float):
            raise InvalidTypeError(
                f"lipschitz_constant={lipschitz_constant!r}, but it must be a number"
            )
        if not 0 < float(lipschitz_constant) < math.inf:
            raise InvalidArgumentError(
                f"lipschitz_constant={lipschitz_constant!r}, but it must be positive and finite"
            )


def audit(
    target: object,
    input_shape: object,
    claims: Iterable[str] | str | None = None,
    dtype: torch.dtype = torch.float64,
    seed: int = 0,
    time_budget: float = 60.0,
    lipschitz_constant: float | None = None,
    *,
    device: str | torch.device | None = None,
    second_input_shape: object = None,
    effort: Effort | None = None,
    name: str | None = None,
    threads: int | None = 1,
) -> AuditReport:
    r"""Check what ``target`` claims, with the evidence.

    Args:
        target: an ``nn.Module``, a zero-argument factory returning one, or
            ``"package.module:factory"``. Never modified: the audit runs deep copies.
        input_shape: one input without the batch axis: ``(C, H, W)``, ``(C, L)`` or ``(F,)``
            (or ``"C,H,W"``).
        claims: names from :data:`gnpcheck.audit.claims.CLAIMS` (a list or ``"a,b"``);
            default: what the target declares (``claims`` attribute) plus ``lipschitz`` and
            every behaviour claim that applies.
        dtype: the floating dtype the copy is converted to; tolerances scale with it.
        seed: every random draw of the audit derives from it (the caller's global random
            state is left as it was).
        time_budget: seconds for the whole audit; claims not decided in time are
            "inconclusive: time budget" (a hanging target is abandoned, not waited for).
        lipschitz_constant: the constant of ``lipschitz``; default the target's
            ``lipschitz_bound()``, else 1.
        device: where to run (default: where the target's parameters are).
        second_input_shape: the size for ``input_size_independent`` (default: 4 more along
            each spatial axis).
        effort: how hard the searches of nonlinear targets try (:class:`Effort`).
        name: how the report names the target.
        threads: threads for torch and BLAS during the audit, restored afterwards (``None``
            leaves them). An audit is many small operations: one thread avoids the spin-waits
            that make them ten to a hundred times slower on a busy machine.

    Returns:
        An :class:`~gnpcheck.audit.report.AuditReport`. A target that cannot be built or run
        gives a report whose claims are all inconclusive, with ``target_error`` saying why.

    Raises:
        InvalidArgumentError, InvalidTypeError: bad arguments (a malformed spec or shape, an
            unknown claim, a CUDA device on a machine without one).
        UnsupportedOperationError: a float32 audit on a device whose settings run float32
            products or convolutions in reduced precision (cuDNN's TF32 default on a GPU):
            its outputs would be off by about 5e-4, and the verdicts with them
            (docs/layers.rst, Note [float32 products]).
    """
    shape = as_input_shape(input_shape)
    _validate(seed, lipschitz_constant, threads)
    requested = parse_claims(claims) if claims is not None else None
    second = (
        as_input_shape(second_input_shape, "second_input_shape")
        if (second_input_shape is not None)
        else second_shape(shape)
    )
    deadline = Deadline(time_budget)
    used = effort or Effort()
    label = name or target_name(target)
    start = time.perf_counter()
    versions = {"gnpcheck": __version__, "torch": torch.__version__}
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with limited_threads(threads), torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        try:
            built = run_before(
                deadline, lambda: Target.build(target, dtype, device, label), "building the target"
            )
        except (TargetError, TimeBudgetError) as failure:
            chosen = requested or (LIPSCHITZ,)
            return AuditReport(
                label,
                shape,
                second,
                str(dtype).removeprefix("torch."),
                str(device or "cpu"),
                seed,
                float(lipschitz_constant or 1.0),
                "not built",
                tuple(_inconclusive(c, f"inconclusive: {failure}") for c in chosen),
                target_error=str(failure),
                seconds=time.perf_counter() - start,
                versions=versions,
            )
        require_ieee_float32_arithmetic(built.dtype, built.device, "a float32 audit's verdicts")
        before = snapshot(built.original)
        chosen = requested or default_claims(built.pristine)
        results, notes, structure, error, constant = _run(
            built,
            shape,
            second,
            chosen,
            requested is not None,
            seed,
            lipschitz_constant,
            deadline,
            used,
        )
        mutated = changed(before, built.original)
    return AuditReport(
        label,
        shape,
        second if INPUT_SIZE_INDEPENDENT in {r.claim for r in results} else None,
        str(dtype).removeprefix("torch."),
        str(built.device),
        seed,
        constant,
        structure,
        tuple(results),
        tuple(notes),
        error,
        mutated,
        time.perf_counter() - start,
        versions,
    )


@dataclass(frozen=True)
class _Context:
    """What every claim check of one audit needs."""

    target: Target
    analysis: Analysis
    shape: tuple[int, ...]
    second: tuple[int, ...] | None
    spectral: tuple[str, ...]
    seed: int
    deadline: Deadline
    effort: Effort


def _check(
    c: _Context, claim: str, constant: float, explicit: bool, notes: list[str]
) -> ClaimResult | None:
    """The verdict on ``claim``; ``None`` (and a note) if it does not apply and was not asked
    for explicitly.

    Raises:
        TimeBudgetError, TargetError: from the target or the clock.
    """
    if claim in SPECTRAL_CLAIMS:

        def spectral() -> ClaimResult:
            with torch.no_grad():
                return spectral_claim(c.analysis, claim, constant, c.deadline, c.effort)

        return run_before(c.deadline, spectral, f"checking {claim}")
    reason = _not_applicable(c.target, claim, c.shape, c.second, c.seed, c.deadline)
    if reason is not None:
        if explicit:
            return _inconclusive(claim, f"not applicable: {reason}")
        notes.append(f"{claim}: not applicable ({reason})")
        return None
    if claim == INPUT_SIZE_INDEPENDENT:
        second = c.second
        assert second is not None
        again = c.spectral or (LIPSCHITZ,)
        return run_before(
            c.deadline,
            lambda: size_independent_claim(
                c.target, c.shape, second, again, c.seed, constant, c.deadline, c.effort
            ),
            f"checking {claim}",
        )
    check = BEHAVIOUR_CHECKS[claim]
    sampler = behaviour_sampler(c.target, c.seed, claim, c.shape)

    def behaviour() -> ClaimResult:
        try:
            return check(c.target, sampler, c.analysis.precision)
        except (TargetError, TimeBudgetError):
            raise
        except Exception as error:  # the target's own methods (state_dict, train, step...)
            raise TargetError(
                f"the target raised while checking {claim}: {type(error).__name__}: {error}"
            ) from None

    return run_before(c.deadline, behaviour, f"checking {claim}")


def _constant(analysis: Analysis, given: float | None) -> float:
    """The Lipschitz constant to check: ``given``, else the target's ``lipschitz_bound()``
    (read from the probed copy: some layers know their bound only after a first call)."""
    if given is not None:
        return float(given)
    try:
        declared = declared_lipschitz_constant(analysis.module)
    except (InvalidArgumentError, InvalidTypeError) as error:
        raise TargetError(f"the target's lipschitz_bound() is unusable: {error}") from None
    except Exception as error:
        raise TargetError(
            f"the target's lipschitz_bound() raised {type(error).__name__}: {error}"
        ) from None
    return 1.0 if declared is None else declared


def _run(
    target: Target,
    shape: tuple[int, ...],
    second: tuple[int, ...] | None,
    chosen: tuple[str, ...],
    explicit: bool,
    seed: int,
    given: float | None,
    deadline: Deadline,
    effort: Effort,
) -> tuple[list[ClaimResult], list[str], str, str | None, float]:
    """(results, notes, structure, target error, Lipschitz constant) for the chosen claims."""
    notes: list[str] = []
    if target.coarser_buffers:
        dtype = str(target.dtype).removeprefix("torch.")
        notes.append(
            f"buffers converted to {dtype} from a coarser dtype: "
            f"{', '.join(target.coarser_buffers)}; what the module stored in them (a cached "
            "weight, a basis computed when it was built) keeps that rounding, which a "
            f"{dtype} tolerance can see: audit a factory (built in {dtype}) to tell the two apart"
        )
    spectral = tuple(c for c in chosen if c in SPECTRAL_CLAIMS)
    try:
        analysis = run_before(
            deadline,
            lambda: analyse(target, shape, seed, deadline, effort, bool(spectral)),
            "probing the target",
        )
    except (TargetError, TimeBudgetError) as failure:
        undecided = [_inconclusive(c, f"inconclusive: {failure}") for c in chosen]
        return undecided, notes, "not run", str(failure), float(given or 1.0)
    results: list[ClaimResult] = []
    target_error: str | None = None
    try:
        constant: float | None = _constant(analysis, given)
    except TargetError as error:
        constant, target_error = None, str(error)
    context = _Context(target, analysis, shape, second, spectral, seed, deadline, effort)
    for claim in chosen:
        began = time.perf_counter()
        try:
            if constant is None and claim in (LIPSCHITZ, INPUT_SIZE_INDEPENDENT):
                result: ClaimResult | None = _inconclusive(claim, f"inconclusive: {target_error}")
            else:
                result = _check(context, claim, constant or 1.0, explicit, notes)
        except TimeBudgetError as error:
            result = _inconclusive(claim, f"inconclusive: time budget ({error})")
        except TargetError as error:
            target_error = target_error or str(error)
            result = _inconclusive(claim, f"inconclusive: {error}")
        if result is not None:
            results.append(dataclasses.replace(result, seconds=time.perf_counter() - began))
    if GNP in spectral and analysis.linear is None and analysis.nonfinite is None:
        notes.append("gnp of a nonlinear target is checked at sampled inputs (evidence, not proof)")
    return results, notes, analysis.structure, target_error, float(constant or 1.0)
