r"""The behaviour claims: what a layer must do to be trusted in training.

Each check works on fresh deep copies of the target, draws its inputs from its own sampler
(:func:`behaviour_sampler`, so that a counterexample re-runs with exactly the same draws),
and compares outputs relative to their size within
:func:`gnpcheck.audit.tolerance.network_tolerance`. Training-mode calls run with gradients
enabled and the global random state seeded identically (inside the audit's forked state).

- ``train_eval_consistent``: the evaluation output equals the training output. A training
  mode that gives different outputs for different seeds only is stochastic (dropout): then
  the claim is inconclusive, not violated.
- ``fresh_after_step``: after an SGD step on a random linear functional of the output, the
  evaluation output equals the training-mode output of a deep copy of the stepped module
  (the oracle: training mode builds everything from the parameters). Two sequences: the usual
  loop (``eval`` forward, ``train`` step, ``eval`` forward) and a step taken in evaluation
  mode, between two evaluation forwards.
- ``parameter_coverage``: each parameter tensor, and each slice along the first axis of a
  parameter with two or more axes (a stack of factors, the rows of a matrix), gets a nonzero
  gradient from random linear functionals of the output (two draws), or, failing that,
  perturbing it changes the output.
- ``state_dict_roundtrip``: a copy with perturbed parameters and buffers (and caches filled
  by a forward) loads the original's state dict, saved and read back with
  ``torch.load(weights_only=True)``; its outputs, right after the load, equal the original's.
- ``export_faithful``: the module returned by ``export()`` gives the target's evaluation
  output, in three sequences: a fresh target (after an evaluation forward); a copy with
  perturbed parameters and filled caches that loads the original's state dict, exported
  with no forward in between (skipped if the load fails: ``state_dict_roundtrip`` reports
  that); a target exported right after an SGD step (no forward in between, still in training
  mode), against its evaluation output afterwards. An ``export()`` that raises makes the
  claim inconclusive (an explicit refusal); one that takes arguments, or returns something
  other than a module, is not checked (the claim does not apply).
"""

from __future__ import annotations

import copy
import io
import math
import zlib
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from gnpcheck.audit.claims import (
    EXPORT_FAITHFUL,
    FRESH_AFTER_STEP,
    PARAMETER_COVERAGE,
    STATE_DICT_ROUNDTRIP,
    TRAIN_EVAL_CONSISTENT,
)
from gnpcheck.audit.counterexample import Counterexample
from gnpcheck.audit.linear import relative_difference
from gnpcheck.audit.report import ClaimResult, Verdict
from gnpcheck.audit.sampler import Sampler
from gnpcheck.audit.target import Target
from gnpcheck.audit.tolerance import NETWORK_REASON, network_tolerance

__all__ = [
    "BEHAVIOUR_CHECKS",
    "STEP_FRACTION",
    "behaviour_sampler",
    "check_export_faithful",
    "check_fresh_after_step",
    "check_parameter_coverage",
    "check_state_dict_roundtrip",
    "check_train_eval",
]

#: The SGD step moves the parameters by this fraction of their norm.
STEP_FRACTION = 0.1


def behaviour_sampler(
    target: Target, seed: int, claim: str, input_shape: tuple[int, ...]
) -> Sampler:
    """The sampler of one behaviour claim: seeded by the audit's seed and the claim's name."""
    return Sampler(seed ^ zlib.crc32(claim.encode()), input_shape, target.dtype, target.device)


def _sizes(target: Target, module: nn.Module, x: torch.Tensor) -> tuple[int, int]:
    with torch.no_grad():
        out = target.call(module, x[:1])
    return x[0].numel(), out[0].numel()


def _train_call(target: Target, module: nn.Module, x: torch.Tensor, seed: int) -> torch.Tensor:
    module.train()
    torch.manual_seed(seed)
    with torch.enable_grad():
        return target.call(module, x).detach()


def _eval_call(target: Target, module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    module.eval()
    with torch.no_grad():
        return target.call(module, x)


def _finite(*outputs: torch.Tensor) -> bool:
    return all(bool(torch.isfinite(y).all()) for y in outputs)


def _procedure(
    claim: str,
    sampler: Sampler,
    x: torch.Tensor,
    measured: float,
    tolerance: float,
    description: str,
    values: dict[str, float | int | str | bool] | None = None,
) -> Counterexample:
    return Counterexample(
        claim=claim,
        kind="procedure",
        tensors={"x": x.detach().cpu()},
        values={"procedure": claim, **(values or {})},
        measured=measured,
        tolerance=tolerance,
        figure="relative output difference",
        description=description,
        dtype=str(sampler.dtype).removeprefix("torch."),
        input_shape=sampler.input_shape,
        seed=sampler.seed,
    )


def _result(
    claim: str,
    measured: float | None,
    tolerance: float | None,
    method: str,
    counterexample: Counterexample | None = None,
    detail: str = "",
    reason: str = NETWORK_REASON,
) -> ClaimResult:
    verdict: Verdict = "inconclusive"
    if measured is not None:
        verdict = "holds" if tolerance is None or measured <= tolerance else "violated"
    return ClaimResult(
        claim,
        verdict,
        "relative output difference",
        measured,
        tolerance,
        reason,
        method,
        "observed",
        detail,
        counterexample if verdict == "violated" else None,
    )


def _train_eval_measure(
    target: Target, sampler: Sampler, precision: torch.dtype
) -> tuple[float | None, float, str, torch.Tensor]:
    """(difference or None if undecidable, tolerance, detail, inputs) of train vs eval."""
    module = target.fresh()
    x = sampler.inputs(2)
    n, m = _sizes(target, module, x)
    tolerance = network_tolerance(precision, n, m)
    first = _train_call(target, module, x, sampler.seed)
    second = _train_call(target, module, x, sampler.seed)
    other = _train_call(target, module, x, sampler.seed + 1)
    evaluated = _eval_call(target, module, x)
    if not _finite(first, second, other, evaluated):
        return None, tolerance, "non-finite outputs (see lipschitz)", x
    stateful = relative_difference(first, second) > tolerance
    if not stateful and relative_difference(first, other) > tolerance:
        return (
            None,
            tolerance,
            (
                "training mode is stochastic (its output depends on the random seed, e.g. dropout), "
                "so its output is not meant to equal the evaluation output"
            ),
            x,
        )
    detail = (
        "the training-mode output changes from call to call (state updated in forward)"
        if stateful
        else ""
    )
    return relative_difference(evaluated, second), tolerance, detail, x


def check_train_eval(target: Target, sampler: Sampler, precision: torch.dtype) -> ClaimResult:
    """``train_eval_consistent``: the evaluation output equals the (latest) training output."""
    measured, tolerance, detail, x = _train_eval_measure(target, sampler, precision)
    method = "training vs evaluation output on 2 random inputs"
    counterexample = None
    if measured is not None and measured > tolerance:
        counterexample = _procedure(
            TRAIN_EVAL_CONSISTENT,
            sampler,
            x,
            measured,
            tolerance,
            "training and evaluation modes give different outputs for the same input",
        )
    return _result(TRAIN_EVAL_CONSISTENT, measured, tolerance, method, counterexample, detail)


def _trainable(module: nn.Module) -> list[nn.Parameter]:
    return [p for p in module.parameters() if p.requires_grad and p.numel() > 0]


def _step(module: nn.Module, loss: torch.Tensor) -> bool:
    """One SGD step on ``loss``, scaled to move the parameters by STEP_FRACTION of their norm.
    False if no parameter got a nonzero gradient."""
    parameters = _trainable(module)
    grads = torch.autograd.grad(loss, parameters, allow_unused=True)
    total = math.sqrt(sum(float(g.double().pow(2).sum()) for g in grads if g is not None))
    if total == 0.0 or not math.isfinite(total):
        return False
    size = math.sqrt(sum(float(p.detach().double().pow(2).sum()) for p in parameters))
    for p, g in zip(parameters, grads, strict=True):
        p.grad = None if g is None else g.detach()
    optimizer = torch.optim.SGD(parameters, lr=STEP_FRACTION * max(size, 1.0) / total)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return True


def _step_on(
    target: Target,
    sampler: Sampler,
    module: nn.Module,
    x_loss: torch.Tensor,
    weights: torch.Tensor,
    in_eval: bool,
) -> bool:
    """One :func:`_step` on the functional ``weights . module(x_loss)``, the forward in
    evaluation mode or in training mode (seeded); False if no step could be taken."""
    if in_eval:
        module.eval()
    else:
        module.train()
        torch.manual_seed(sampler.seed)
    with torch.enable_grad():
        out = target.call(module, x_loss)
    return out.requires_grad and _step(module, (out * weights.reshape(out.shape)).sum())


def _loss_weights(target: Target, sampler: Sampler, x_loss: torch.Tensor) -> torch.Tensor:
    """The weights of the random linear functional of the output that the steps descend."""
    with torch.no_grad():
        return sampler.normal(target.call(target.fresh(), x_loss).numel())


def _after_step(
    target: Target,
    sampler: Sampler,
    x: torch.Tensor,
    x_loss: torch.Tensor,
    weights: torch.Tensor,
    in_eval: bool,
) -> tuple[float, float] | None:
    """(difference from the oracle, how much the evaluation output moved), or None if no step
    could be taken along this sequence."""
    module = target.fresh()
    before = _eval_call(target, module, x)  # fills any evaluation cache
    if not _step_on(target, sampler, module, x_loss, weights, in_eval):
        return None
    after = _eval_call(target, module, x)
    oracle = _train_call(target, copy.deepcopy(module), x, sampler.seed)
    return relative_difference(after, oracle), relative_difference(after, before)


def check_fresh_after_step(target: Target, sampler: Sampler, precision: torch.dtype) -> ClaimResult:
    """``fresh_after_step``: after an optimizer step the evaluation output follows it."""
    method = "SGD step, then evaluation output vs training-mode output of a copy"
    consistent, tolerance, why, _ = _train_eval_measure(target, sampler, precision)
    if consistent is None or consistent > tolerance:
        detail = why or "training and evaluation modes differ, so training mode is no oracle"
        return _result(FRESH_AFTER_STEP, None, tolerance, method, detail=f"inconclusive: {detail}")
    x, x_loss = sampler.inputs(2), sampler.inputs(2)
    weights = _loss_weights(target, sampler, x_loss)
    outcomes = {
        "train-mode step": _after_step(target, sampler, x, x_loss, weights, in_eval=False),
        "eval-mode step": _after_step(target, sampler, x, x_loss, weights, in_eval=True),
    }
    taken = {name: o for name, o in outcomes.items() if o is not None}
    if not taken:
        return _result(
            FRESH_AFTER_STEP,
            None,
            tolerance,
            method,
            detail="inconclusive: no parameter received a gradient, so no step was taken",
        )
    name, (measured, moved) = max(taken.items(), key=lambda item: item[1][0])
    detail, counterexample = "", None
    if measured > tolerance:
        stale = (
            "the evaluation output did not change at all"
            if moved <= tolerance
            else (f"the evaluation output moved by {moved:.3g}")
        )
        detail = f"after the {name}, {stale}: a cached kernel is not refreshed"
        counterexample = _procedure(
            FRESH_AFTER_STEP,
            sampler,
            x,
            measured,
            tolerance,
            f"after an optimizer step ({name}) the evaluation output does not follow the parameters",
            {"sequence": name},
        )
    return _result(
        FRESH_AFTER_STEP,
        measured,
        tolerance,
        f"{method} ({', '.join(taken)})",
        counterexample,
        detail,
    )


Unit = tuple[str, int | None]


def _stacked(tensor: torch.Tensor) -> bool:
    """Whether ``tensor`` is checked slice by slice along its first axis (two or more axes,
    two or more slices) rather than whole."""
    return tensor.ndim >= 2 and tensor.shape[0] >= 2


def _units(module: nn.Module) -> list[Unit]:
    """The parts whose influence is checked: each slice along the first axis of a trainable
    parameter with two or more axes (stacked factors, rows of a matrix), else the whole
    tensor. A parameter that does not require grad is state, not something training learns
    (a power-iteration vector kept as a frozen parameter), and is not checked."""
    units: list[Unit] = []
    for name, p in module.named_parameters():
        if p.numel() == 0 or not p.requires_grad:
            continue
        if _stacked(p):
            units += [(name, i) for i in range(p.shape[0])]
        else:
            units.append((name, None))
    return units


def _label(unit: Unit) -> str:
    name, index = unit
    return name if index is None else f"{name}[{index}]"


def _covered_by_gradient(
    target: Target, module: nn.Module, sampler: Sampler, tolerance: float
) -> set[Unit]:
    """The units whose gradient shows influence: for the loss ``<f(x), w>`` of a random ``w``,
    ``||g|| (rms + 1) > tolerance ||f(x)|| ||w||``, the first-order change of the loss under a
    perturbation of the unit's own scale above the loss's rounding. A gradient at rounding
    level (a parameter that cancels out, ``exp(-q) exp(q)``) is no evidence: such units are
    left to the perturbation test."""
    parameters = dict(module.named_parameters())
    wanted = [name for name, p in parameters.items() if p.requires_grad and p.numel()]
    covered: set[Unit] = set()
    for trial in range(2):
        x = sampler.inputs(2)
        module.train()
        torch.manual_seed(sampler.seed + trial)
        with torch.enable_grad():
            out = target.call(module, x)
            if not out.requires_grad or not wanted:
                break
            weights = sampler.normal(*out.shape)
            loss = (out * weights).sum()
            grads = torch.autograd.grad(loss, [parameters[n] for n in wanted], allow_unused=True)
        level = tolerance * float(out.detach().double().norm() * weights.double().norm())
        for name, g in zip(wanted, grads, strict=True):
            if g is None:
                continue
            p = parameters[name].detach()
            sliced = _stacked(p)
            rows = p.shape[0] if sliced else 1
            norms = g.detach().double().reshape(rows, -1).norm(dim=1)
            scales = p.double().reshape(rows, -1).pow(2).mean(dim=1).sqrt() + 1.0
            shown = (norms * scales > level).tolist()
            if sliced:
                covered |= {(name, i) for i in range(rows) if shown[i]}
            elif shown[0]:
                covered.add((name, None))
    return covered


def _covered_by_perturbation(
    target: Target, sampler: Sampler, unit: Unit, x: torch.Tensor, tolerance: float
) -> bool:
    name, index = unit
    reference = target.fresh()
    changed = target.fresh()
    parameter = dict(changed.named_parameters())[name]
    part = parameter if index is None else parameter[index]
    with torch.no_grad():
        scale = float(part.detach().double().pow(2).mean().sqrt()) + 1.0
        part.add_(scale * sampler.normal(*part.shape))
    for evaluate in (True, False):
        if evaluate:
            a, b = _eval_call(target, reference, x), _eval_call(target, changed, x)
        else:
            a = _train_call(target, reference, x, sampler.seed)
            b = _train_call(target, changed, x, sampler.seed)
        if not relative_difference(a, b) <= tolerance:
            return True
    return False


def check_parameter_coverage(
    target: Target, sampler: Sampler, precision: torch.dtype
) -> ClaimResult:
    """``parameter_coverage``: every parameter (every slice of a stacked one) influences the
    output."""
    module = target.fresh()
    units = _units(module)
    x = sampler.inputs(2)
    n, m = _sizes(target, module, x)
    tolerance = network_tolerance(precision, n, m)
    covered = _covered_by_gradient(target, module, sampler, tolerance)
    unused = [
        _label(unit)
        for unit in units
        if unit not in covered and not _covered_by_perturbation(target, sampler, unit, x, tolerance)
    ]
    method = (
        f"gradients of random linear functionals, then perturbation ({len(units)} parameter "
        "tensors and slices)"
    )
    detail, counterexample = "", None
    if unused:
        detail = "no influence on the output: " + ", ".join(unused)
        counterexample = _procedure(
            PARAMETER_COVERAGE,
            sampler,
            x,
            float(len(unused)),
            0.0,
            f"parameters with no influence on the output: {', '.join(unused)}",
            {"parameters": ", ".join(unused)},
        )
    return ClaimResult(
        PARAMETER_COVERAGE,
        "violated" if unused else "holds",
        "parameter tensors or slices without influence",
        float(len(unused)),
        0.0,
        "every trainable parameter must matter",
        method,
        "observed",
        detail,
        counterexample,
    )


def _perturb(module: nn.Module, sampler: Sampler) -> None:
    with torch.no_grad():
        for tensor in [*module.parameters(), *module.buffers()]:
            if tensor.is_floating_point() and tensor.numel():
                tensor.add_(0.1 * (tensor.abs().mean() + 1.0) * sampler.normal(*tensor.shape))


def check_state_dict_roundtrip(
    target: Target, sampler: Sampler, precision: torch.dtype
) -> ClaimResult:
    """``state_dict_roundtrip``: loading the state dict restores the function at once."""
    method = "state_dict saved, read back (weights_only=True), loaded into a perturbed copy"
    original = target.fresh()
    x = sampler.inputs(2)
    n, m = _sizes(target, original, x)
    tolerance = network_tolerance(precision, n, m)
    expected_eval = _eval_call(target, original, x)
    buffer = io.BytesIO()
    failure = ""
    try:
        torch.save(original.state_dict(), buffer)
    except Exception as error:
        failure = f"the state dict cannot be saved ({type(error).__name__}: {error})"
    buffer.seek(0)
    state: dict[str, Any] | None = None
    try:
        state = None if failure else torch.load(buffer, weights_only=True)
    except Exception as error:
        failure = (
            "the state dict cannot be read back with weights_only=True "
            f"({type(error).__name__}: {error})"
        )
    copy_ = target.fresh()
    _perturb(copy_, sampler)
    _eval_call(target, copy_, x)  # fills any cache with the perturbed parameters
    if state is not None:
        try:
            copy_.load_state_dict(state)
        except Exception as error:
            failure = (
                f"load_state_dict of its own state dict raised {type(error).__name__}: {error}"
            )
    if failure:
        failed = _procedure(STATE_DICT_ROUNDTRIP, sampler, x, math.inf, tolerance, failure)
        return _result(STATE_DICT_ROUNDTRIP, math.inf, tolerance, method, failed, failure)
    loaded_eval = _eval_call(target, copy_, x)
    differences = {"evaluation": relative_difference(loaded_eval, expected_eval)}
    differences["training"] = relative_difference(
        _train_call(target, copy_, x, sampler.seed), _train_call(target, original, x, sampler.seed)
    )
    where, measured = max(differences.items(), key=lambda item: item[1])
    detail, counterexample = "", None
    if measured > tolerance:
        detail = f"{where}-mode output right after load_state_dict differs from the original's"
        counterexample = _procedure(STATE_DICT_ROUNDTRIP, sampler, x, measured, tolerance, detail)
    return _result(STATE_DICT_ROUNDTRIP, measured, tolerance, method, counterexample, detail)


class _ExportRefusedError(Exception):
    """``export()`` raised: the target refuses to export (the claim is inconclusive)."""


def _exported_output(target: Target, module: nn.Module, x: torch.Tensor) -> torch.Tensor | None:
    """The evaluation output on ``x`` of what ``module.export()`` returns; ``None`` if that
    is not a module.

    Raises:
        _ExportRefusedError: ``export()`` raised.
    """
    try:
        plain = module.export()  # type: ignore[operator]
    except Exception as error:
        raise _ExportRefusedError(f"export() raised {type(error).__name__}: {error}") from None
    if not isinstance(plain, nn.Module):
        return None
    return _eval_call(target, plain, x)


def _loads_state(module: nn.Module, original: nn.Module) -> bool:
    """Whether ``module`` loads ``original``'s state dict (a failure is
    ``state_dict_roundtrip``'s to report; this sequence is then skipped)."""
    try:
        module.load_state_dict(original.state_dict())
    except Exception:
        return False
    return True


def _export_differences(target: Target, sampler: Sampler, x: torch.Tensor) -> dict[str, float]:
    """The relative difference between export and target in each sequence (module doc);
    ``inf`` where ``export()`` returned no module.

    Raises:
        _ExportRefusedError: ``export()`` raised.
    """

    def difference(got: torch.Tensor | None, expected: torch.Tensor) -> float:
        return math.inf if got is None else relative_difference(got, expected)

    original = target.fresh()
    expected = _eval_call(target, original, x)
    differences = {"fresh": difference(_exported_output(target, original, x), expected)}
    loaded = target.fresh()
    _perturb(loaded, sampler)
    _eval_call(target, loaded, x)  # fills any cache with the perturbed parameters
    if _loads_state(loaded, original):
        got = _exported_output(target, loaded, x)
        differences["after load_state_dict"] = difference(got, expected)
    stepped = target.fresh()
    _eval_call(target, stepped, x)
    x_loss = sampler.inputs(2)
    weights = _loss_weights(target, sampler, x_loss)
    if _step_on(target, sampler, stepped, x_loss, weights, in_eval=False):
        got = _exported_output(target, stepped, x)
        differences["after an optimizer step"] = difference(got, _eval_call(target, stepped, x))
    return differences


def check_export_faithful(target: Target, sampler: Sampler, precision: torch.dtype) -> ClaimResult:
    """``export_faithful``: ``export()`` computes the target's current function."""
    method = "export() output vs the target's evaluation output"
    x = sampler.inputs(2)
    n, m = _sizes(target, target.fresh(), x)
    tolerance = network_tolerance(precision, n, m)
    try:
        differences = _export_differences(target, sampler, x)
    except _ExportRefusedError as refusal:
        return _result(EXPORT_FAITHFUL, None, tolerance, method, detail=f"inconclusive: {refusal}")
    measured = max(differences.values())
    detail, counterexample = "", None
    if measured > tolerance:
        where = next(name for name, value in differences.items() if value > tolerance)
        if math.isinf(differences[where]):
            detail = f"{where}, export() returned no module"
        elif where == "fresh":
            detail = "the exported module computes another function than the target"
        else:
            detail = (
                f"{where}, the exported module computes another function: a stale kernel "
                "(fresh, it matched)"
            )
        counterexample = _procedure(
            EXPORT_FAITHFUL, sampler, x, measured, tolerance, detail, {"sequence": where}
        )
    return _result(
        EXPORT_FAITHFUL,
        measured,
        tolerance,
        f"{method} ({', '.join(differences)})",
        counterexample,
        detail,
    )


#: The behaviour checks by claim (``input_size_independent`` is the audit's own).
BEHAVIOUR_CHECKS: dict[str, Callable[[Target, Sampler, torch.dtype], ClaimResult]] = {
    TRAIN_EVAL_CONSISTENT: check_train_eval,
    FRESH_AFTER_STEP: check_fresh_after_step,
    PARAMETER_COVERAGE: check_parameter_coverage,
    STATE_DICT_ROUNDTRIP: check_state_dict_roundtrip,
    EXPORT_FAITHFUL: check_export_faithful,
}
