"""Re-running a saved counterexample on a target (:meth:`Counterexample.replay`)."""

from __future__ import annotations

import math

import torch

from gnpcheck.audit.behaviour import BEHAVIOUR_CHECKS, behaviour_sampler
from gnpcheck.audit.claims import LIPSCHITZ
from gnpcheck.audit.counterexample import Counterexample, Replay
from gnpcheck.audit.figures import affine_residual, cotangent_ratio, has_nonfinite, pair_ratio
from gnpcheck.audit.target import Target, as_input_shape
from gnpcheck.errors import InvalidArgumentError

__all__ = ["replay"]


def _dtype(name: str) -> torch.dtype:
    value = getattr(torch, name, None)
    if not isinstance(value, torch.dtype) or not value.is_floating_point:
        raise InvalidArgumentError(f"dtype={name!r}, but it must name a torch floating dtype")
    return value


def replay(
    counterexample: Counterexample, target: object, device: str | torch.device | None = None
) -> Replay:
    """Measure ``counterexample``'s figure again on ``target`` (see
    :meth:`gnpcheck.audit.counterexample.Counterexample.replay`)."""
    ce = counterexample
    dtype = _dtype(ce.dtype)
    built = Target.build(target, dtype, device)
    tolerance = ce.tolerance
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(ce.seed)
        if ce.kind == "procedure":
            claim = str(ce.values["procedure"])
            sampler = behaviour_sampler(built, ce.seed, claim, ce.input_shape)
            result = BEHAVIOUR_CHECKS[claim](built, sampler, dtype)
            measured = math.nan if result.measured is None else result.measured
            return Replay(measured, tolerance, result.verdict == "violated", result.message())
        warm = ce.values.get("warm_shape")
        module = built.fresh() if warm is None else built.warmed(as_input_shape(str(warm)), ce.seed)

        def f(x: torch.Tensor) -> torch.Tensor:
            return built.call(module, x)

        t = {k: v.to(device=built.device, dtype=dtype) for k, v in ce.tensors.items()}
        if ce.kind == "nonfinite":
            with torch.no_grad():
                bad = has_nonfinite(f, t["x"])
            return Replay(
                math.nan if bad else 0.0,
                tolerance,
                bad,
                "output " + ("holds NaN/inf" if bad else "is finite"),
            )
        if ce.kind == "cotangent":
            ratio = cotangent_ratio(f, t["x"], t["g"])
            return Replay(
                ratio, tolerance, abs(ratio - 1) > tolerance, f"||J(x)^T g|| / ||g|| = {ratio:.10g}"
            )
        if ce.kind == "nonlinear":
            with torch.no_grad():
                residual = affine_residual(
                    f, t["x"], t["y"], float(ce.values["a"]), float(ce.values["b"])
                )
            return Replay(
                residual,
                tolerance,
                residual > tolerance,
                f"relative affinity residual {residual:.3g}",
            )
        with torch.no_grad():
            ratio = pair_ratio(f, t["x"], t["y"])
        check = str(ce.values.get("check", ce.claim))
        if check == LIPSCHITZ:
            reproduced = not ratio <= tolerance
        else:
            reproduced = not abs(ratio - 1) <= tolerance
        return Replay(ratio, tolerance, reproduced, f"||f(x) - f(y)|| / ||x - y|| = {ratio:.10g}")
