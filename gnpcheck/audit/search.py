r"""Searches for violations in a nonlinear target: lower bounds, conclusive when they fail.

- :func:`find_nonfinite`: a finite input whose output holds NaN or inf: structured inputs
  (zeros, constants, impulses, zeroed pixels and channels, ties, extreme scales), then
  Hypothesis (``find``: generated and shrunk to a minimal example).
- :func:`search_lipschitz`: the ratio :math:`\|f(x) - f(y)\| / \|x - y\|` over random pairs
  at several scales and distances, pairs along the top right singular vector of the local
  Jacobian (power iteration on :math:`J(x)^T J(x)` through autograd), then gradient ascent
  (Adam) on the ratio from the best pairs.
- :func:`search_gnp`: :math:`\|J(x)^T g\| / \|g\|` at many inputs ``x``: the SVD of the
  dense Jacobian when it is small, else power iteration on :math:`(J J^T - I)^2`.

Not finding a violation is evidence, not proof: the verdict is "holds" with evidence
``"search"`` and the number of trials. A violation is always confirmed by re-measuring its
counterexample through the target.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import numpy as np
import torch
from hypothesis import HealthCheck, find, settings
from hypothesis import strategies as st
from hypothesis.errors import NoSuchExample
from hypothesis.extra.numpy import arrays

from gnpcheck.audit.claims import GNP, LIPSCHITZ
from gnpcheck.audit.counterexample import Counterexample
from gnpcheck.audit.deadline import Deadline
from gnpcheck.audit.figures import cotangent_ratio, has_nonfinite, ratio_of_outputs
from gnpcheck.audit.linear import DENSE_LIMIT, Map
from gnpcheck.audit.power import power_iteration
from gnpcheck.audit.report import ClaimResult
from gnpcheck.audit.sampler import Sampler
from gnpcheck.audit.tolerance import NETWORK_REASON, PAIR_REASON, network_tolerance, pair_tolerance

__all__ = [
    "Effort",
    "find_nonfinite",
    "nonfinite_result",
    "search_gnp",
    "search_lipschitz",
    "structured_inputs",
]


@dataclass(frozen=True)
class Effort:
    """How much a search tries (fixed counts, so that a seed gives the same audit everywhere).

    Attributes:
        random_pairs: pairs per scale and distance.
        jacobian_points: inputs where the local Jacobian's top singular vector is followed.
        power_steps: power iterations per point.
        ascent_starts: best pairs refined by gradient ascent.
        ascent_steps: Adam steps per start.
        gnp_points: inputs where the Jacobian is checked for ``gnp``.
        hypothesis_examples: examples Hypothesis tries when looking for NaN/inf.
    """

    random_pairs: int = 8
    jacobian_points: int = 6
    power_steps: int = 12
    ascent_starts: int = 3
    ascent_steps: int = 40
    gnp_points: int = 8
    hypothesis_examples: int = 30


def _norm(t: torch.Tensor) -> float:
    return float(torch.linalg.vector_norm(t.detach().double().reshape(-1)))


def _batch_norms(t: torch.Tensor) -> torch.Tensor:
    norms: torch.Tensor = torch.linalg.vector_norm(
        t.detach().double().reshape(t.shape[0], -1), dim=1
    )
    return norms


def structured_inputs(sampler: Sampler) -> torch.Tensor:
    """Inputs where layers break: zeros, constants, an impulse, zeroed pixels or channels,
    ties between channel halves, sparse inputs, and the extremes of the dtype's range."""
    shape = sampler.input_shape
    finfo = torch.finfo(sampler.dtype)
    large, tiny = float(finfo.max) ** 0.25, float(finfo.tiny) ** 0.25
    gaussian = sampler.inputs(7)
    items = [torch.zeros(shape), torch.ones(shape), -torch.ones(shape)]
    constant = torch.zeros(shape)
    constant += sampler.normal(shape[0]).cpu().reshape(-1, *([1] * (len(shape) - 1)))
    items.append(constant)
    middle = math.prod(shape[1:]) // 2  # the middle pixel, flattened
    impulse = torch.zeros(shape)
    impulse.reshape(shape[0], -1)[0, middle] = 1.0
    items.append(impulse)
    zero_pixel = gaussian[0].cpu().clone()
    zero_pixel.reshape(shape[0], -1)[:, middle] = 0.0
    items.append(zero_pixel)
    zero_channel = gaussian[1].cpu().clone()
    zero_channel[0] = 0.0
    items.append(zero_channel)
    ties = gaussian[2].cpu().clone()
    half = shape[0] // 2
    if half:
        ties[half : 2 * half] = ties[:half]
    items.append(ties)
    sparse = gaussian[3].cpu() * (gaussian[4].cpu().abs() > 1.5)
    items.append(sparse)
    items += [gaussian[5].cpu() * large, gaussian[6].cpu() * tiny]
    return torch.stack(items).to(device=sampler.device, dtype=sampler.dtype)


def find_nonfinite(
    f: Map, sampler: Sampler, deadline: Deadline, hypothesis_examples: int
) -> tuple[torch.Tensor | None, int]:
    """A finite input with a non-finite output, and how many inputs were tried.

    Structured inputs first (one batch); then, if ``hypothesis_examples > 0``, Hypothesis
    draws inputs from a few round values and shrinks the first failure it finds.
    """
    batch = structured_inputs(sampler)
    out = f(batch)
    finite = torch.isfinite(out.reshape(out.shape[0], -1)).all(dim=1)
    if not bool(finite.all()):
        return batch[int(torch.nonzero(~finite)[0])], batch.shape[0]
    if hypothesis_examples <= 0:
        return None, batch.shape[0]
    tried = [batch.shape[0]]

    def condition(values: np.ndarray) -> bool:
        deadline.check("the search for NaN/inf outputs")
        tried[0] += 1
        x = torch.from_numpy(values).to(device=sampler.device, dtype=sampler.dtype)
        return has_nonfinite(f, x)

    strategy = arrays(
        np.float64,
        sampler.input_shape,
        elements=st.sampled_from([0.0, 1.0, -1.0, 0.5, -2.0, 3.0]),
        fill=st.nothing(),  # every entry drawn, so that each shrinks to 0 on its own
    )
    options = settings(
        max_examples=hypothesis_examples,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    try:
        found = find(strategy, condition, settings=options, random=random.Random(sampler.seed))
    except NoSuchExample:
        return None, tried[0]
    x = torch.from_numpy(found).to(device=sampler.device, dtype=sampler.dtype)
    return x, tried[0]


def nonfinite_result(
    claim: str, x: torch.Tensor, sampler: Sampler, trials: int, method: str
) -> ClaimResult:
    """``claim`` violated: the finite input ``x`` gives NaN or inf, so no bound can hold."""
    counterexample = Counterexample(
        claim=claim,
        kind="nonfinite",
        tensors={"x": x.detach().cpu()},
        values={},
        measured=math.nan,
        tolerance=math.inf,
        figure="f(x)",
        description="a finite input whose output holds NaN or inf",
        dtype=str(sampler.dtype).removeprefix("torch."),
        input_shape=sampler.input_shape,
        seed=sampler.seed,
    )
    return ClaimResult(
        claim,
        "violated",
        "f(x) finite",
        math.nan,
        None,
        "a NaN or inf output admits no bound",
        f"{method} ({trials} inputs)",
        "search",
        "the target returns NaN/inf on a finite input",
        counterexample,
    )


def _pair_excess(
    f: Map, x: torch.Tensor, y: torch.Tensor, constant: float, precision: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per pair: the ratio, and how far it exceeds ``constant (1 + tolerance)``, relatively.
    A pair of equal inputs (distance 0) is no evidence either way: ratio 0, excess -inf."""
    out = f(torch.cat([x, y]))
    fx, fy = out[: x.shape[0]], out[x.shape[0] :]
    distance = _batch_norms(x - y)
    apart = distance > 0
    ratio = torch.where(apart, _batch_norms(fx - fy) / distance, 0.0)
    n, m = x[0].numel(), fx[0].numel()
    sums = _batch_norms(fx) + _batch_norms(fy)
    allowed = torch.tensor(
        [
            pair_tolerance(precision, n, m, float(s), constant * float(d)) if d > 0 else 0.0
            for s, d in zip(sums, distance, strict=True)
        ],
        dtype=torch.float64,
        device=ratio.device,
    )
    excess = ratio / (constant * (1 + allowed)) - 1
    excess = torch.where(torch.isfinite(excess), excess, torch.full_like(excess, math.inf))
    return ratio, torch.where(apart, excess, -math.inf)


def _jacobian_vector(f: Map, x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``J(x) v`` per sample, by the double-backward trick (works wherever backward does)."""
    with torch.enable_grad():
        point = x.detach().requires_grad_(True)
        out = f(point)
        dummy = torch.zeros_like(out, requires_grad=True)
        (grad,) = torch.autograd.grad(out, point, dummy, create_graph=True)
        (jv,) = torch.autograd.grad(grad, dummy, v)
    return jv.detach()


def _vector_jacobian(f: Map, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``J(x)^T w`` per sample."""
    with torch.enable_grad():
        point = x.detach().requires_grad_(True)
        out = f(point)
        (grad,) = torch.autograd.grad(out, point, w, allow_unused=True)
    return torch.zeros_like(x) if grad is None else grad.detach()


def _unit(t: torch.Tensor) -> torch.Tensor:
    norms = _batch_norms(t).clamp_min(torch.finfo(torch.float64).tiny).to(t.dtype)
    return t / norms.reshape(-1, *([1] * (t.ndim - 1)))


def search_lipschitz(
    f: Map,
    sampler: Sampler,
    constant: float,
    precision: torch.dtype,
    deadline: Deadline,
    effort: Effort,
) -> ClaimResult:
    """The largest ratio found, and a counterexample pair if it exceeds the constant."""
    candidates: list[tuple[torch.Tensor, torch.Tensor]] = []
    k = effort.random_pairs
    for scale in (1.0, 1e-2, 1e2):
        x = sampler.inputs(k) * scale
        candidates.append((x, sampler.inputs(k) * scale))
        for distance in (1.0, 1e-1, 1e-2):
            candidates.append((x, x + sampler.inputs(k) * scale * distance))
    points = torch.cat([sampler.inputs(effort.jacobian_points), structured_inputs(sampler)[3:]])
    start = _unit(sampler.normal(*points.shape))
    v = start
    for _ in range(effort.power_steps):
        deadline.check("the Lipschitz search (local Jacobians)")
        v = _unit(_vector_jacobian(f, points, _jacobian_vector(f, points, v)))
    # where the Jacobian is zero (a ReLU-like map at 0) the iteration ends at 0, and a pair
    # along it would be no pair: such a point keeps its random starting direction
    stalled = (_batch_norms(v) == 0).reshape(-1, *([1] * (v.ndim - 1))).to(v.device)
    v = torch.where(stalled, start, v)
    size = _batch_norms(points).clamp_min(1.0).to(points.dtype).reshape(-1, *([1] * (v.ndim - 1)))
    for step in (1e-1, 1e-3):
        candidates.append((points, points + step * size * v))
    xs = torch.cat([c[0] for c in candidates])
    ys = torch.cat([c[1] for c in candidates])
    ratios, excess = _pair_excess(f, xs, ys, constant, precision)
    trials = xs.shape[0]
    order = torch.argsort(excess, descending=True)
    for index in order[: effort.ascent_starts].tolist():
        if float(excess[index]) > 0:
            break
        deadline.check("the Lipschitz search (gradient ascent)")
        x, y = _ascend(f, xs[index : index + 1], ys[index : index + 1], effort.ascent_steps)
        r, e = _pair_excess(f, x, y, constant, precision)
        trials += effort.ascent_steps
        xs, ys = torch.cat([xs, x]), torch.cat([ys, y])
        ratios, excess = torch.cat([ratios, r]), torch.cat([excess, e])
    best = int(torch.argmax(torch.where(torch.isnan(ratios), math.inf, ratios)))
    worst = int(torch.argmax(excess))
    method = f"search: random, Jacobian and gradient-ascent pairs ({trials} trials)"
    n = math.prod(sampler.input_shape)
    reason = f"L (1 + {PAIR_REASON})"
    if float(excess[worst]) <= 0:
        return ClaimResult(
            LIPSCHITZ,
            "holds",
            "largest ||f(x) - f(y)|| / ||x - y|| found",
            float(ratios[best]),
            constant,
            reason,
            method,
            "search",
            f"no violation found in {trials} trials (evidence, not proof)",
        )
    x, y = xs[worst], ys[worst]
    outputs = f(torch.stack([x, y]))
    ratio = ratio_of_outputs(outputs, x, y)
    if not math.isfinite(ratio):
        culprit = x if has_nonfinite(f, x) else y
        return nonfinite_result(LIPSCHITZ, culprit, sampler, trials, method)
    output_norms = _norm(outputs[0]) + _norm(outputs[1])
    m = int(outputs[0].numel())
    limit = constant * (1 + pair_tolerance(precision, n, m, output_norms, constant * _norm(x - y)))
    counterexample = Counterexample(
        claim=LIPSCHITZ,
        kind="pair",
        tensors={"x": x.detach().cpu(), "y": y.detach().cpu()},
        values={"constant": constant},
        measured=ratio,
        tolerance=limit,
        figure="||f(x) - f(y)|| / ||x - y||",
        description=f"the outputs are {ratio:.10g} times as far apart as the inputs",
        dtype=str(sampler.dtype).removeprefix("torch."),
        input_shape=sampler.input_shape,
        seed=sampler.seed,
    )
    return ClaimResult(
        LIPSCHITZ,
        "violated",
        "largest ||f(x) - f(y)|| / ||x - y|| found",
        ratio,
        limit,
        reason,
        method,
        "search",
        "",
        counterexample,
    )


def _ascend(
    f: Map, x: torch.Tensor, y: torch.Tensor, steps: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Adam on ``log ||f(x + d) - f(x)|| - log ||d||`` over ``x`` and ``d``; the best pair seen."""
    scale = max(_norm(x) / math.sqrt(x.numel()), 1e-12)
    point = x.detach().clone().requires_grad_(True)
    offset = (y - x).detach().clone().requires_grad_(True)
    optimizer = torch.optim.Adam([point, offset], lr=0.05 * scale)
    best = (-math.inf, x.detach().clone(), y.detach().clone())
    for _ in range(steps):
        with torch.enable_grad():
            out = f(torch.cat([point, point + offset]))
            gap = torch.linalg.vector_norm((out[0] - out[1]).reshape(-1))
            loss = torch.log(torch.linalg.vector_norm(offset.reshape(-1))) - torch.log(gap)
            value = -float(loss.detach())
            if not math.isfinite(value):
                break
            if value > best[0]:
                best = (value, point.detach().clone(), (point + offset).detach().clone())
            point.grad, offset.grad = torch.autograd.grad(loss, [point, offset])
        optimizer.step()
    return best[1], best[2]


def _dense_jacobian(f: Map, x: torch.Tensor, m: int) -> torch.Tensor:
    """The ``m x n`` Jacobian at the single input ``x``: rows ``J^T e_i``, batched."""
    rows = []
    for start in range(0, m, 64):
        count = min(64, m - start)
        basis = torch.zeros(count, m, dtype=x.dtype, device=x.device)
        basis[torch.arange(count), torch.arange(start, start + count)] = 1.0
        repeated = x.unsqueeze(0).expand(count, *x.shape)
        out_shape = f(x.unsqueeze(0)).shape[1:]
        rows.append(
            _vector_jacobian(f, repeated, basis.reshape(count, *out_shape)).reshape(count, -1)
        )
    return torch.cat(rows).double().cpu()


def _gnp_at(
    f: Map,
    x: torch.Tensor,
    out_shape: tuple[int, ...],
    dense: bool,
    sampler: Sampler,
    deadline: Deadline,
) -> tuple[float, torch.Tensor]:
    """The GNP defect at ``x`` and the output gradient that shows it: exact from the SVD of the
    dense Jacobian (``max |sigma - 1|``, 1 if ``m > n``), else a lower bound of
    ``max |sigma^2 - 1|`` by power iteration."""
    m, n = math.prod(out_shape), x.numel()
    if dense:
        u, sigma, _ = np.linalg.svd(_dense_jacobian(f, x, m).numpy(), full_matrices=True)
        deviation = np.abs(sigma - 1.0)
        i = int(np.argmax(deviation))
        measured, g = (1.0, u[:, -1]) if m > n else (float(deviation[i]), u[:, i])
        return measured, torch.from_numpy(g.copy()).reshape(out_shape)
    at = x.unsqueeze(0)

    def apply(w: torch.Tensor) -> torch.Tensor:
        w = w.reshape(1, *out_shape)
        image = _jacobian_vector(f, at, _vector_jacobian(f, at, w))
        return (image - w).reshape(-1)

    run = power_iteration(
        apply, sampler.normal(m), squared=True, max_iterations=30, deadline=deadline
    )
    return math.sqrt(max(run.lower, 0.0)), run.vector.reshape(out_shape)


def search_gnp(
    f: Map, sampler: Sampler, precision: torch.dtype, deadline: Deadline, effort: Effort
) -> ClaimResult:
    """The largest ``| ||J(x)^T g|| / ||g|| - 1 |`` found over random inputs ``x`` (almost
    every input: a piecewise map is not differentiable on a null set, such as the ties of
    MaxMin, where autograd returns one subgradient of many) and output gradients ``g``."""
    k = effort.gnp_points
    scales = torch.tensor([1.0, 1e-2, 1e2], dtype=sampler.dtype, device=sampler.device)
    points = sampler.inputs(k) * scales.repeat(k)[:k].reshape(-1, *([1] * len(sampler.input_shape)))
    n = math.prod(sampler.input_shape)
    out_shape = tuple(f(points[:1]).shape[1:])
    m = math.prod(out_shape)
    tolerance = network_tolerance(precision, n, m)
    dense = m <= DENSE_LIMIT and n <= 4 * DENSE_LIMIT
    measured, x, vector = -1.0, points[0], torch.zeros(out_shape)
    for point in points:
        deadline.check("the GNP search")
        defect, direction = _gnp_at(f, point, out_shape, dense, sampler, deadline)
        if not defect <= measured:
            measured, x, vector = defect, point, direction
    method = f"search over {points.shape[0]} random inputs: " + (
        "SVD of the dense Jacobian" if dense else "power iteration on (J J^T - I)^2"
    )
    figure = "max |sigma(J(x)) - 1| found" if dense else "max |sigma(J(x))^2 - 1| found"
    limit = tolerance if dense else 2 * tolerance + tolerance**2
    if measured <= limit:
        return ClaimResult(
            GNP,
            "holds",
            figure,
            measured,
            limit,
            NETWORK_REASON,
            method,
            "search",
            f"no violation found at {points.shape[0]} inputs (evidence, not proof)",
        )
    g = vector.to(device=sampler.device, dtype=sampler.dtype)
    ratio = cotangent_ratio(f, x, g)
    counterexample = Counterexample(
        claim=GNP,
        kind="cotangent",
        tensors={"x": x.detach().cpu(), "g": g.detach().cpu()},
        values={},
        measured=ratio,
        tolerance=tolerance,
        figure="||J(x)^T g|| / ||g||",
        description=f"the output gradient g is mapped to a gradient of norm {ratio:.10g} ||g||",
        dtype=str(sampler.dtype).removeprefix("torch."),
        input_shape=sampler.input_shape,
        seed=sampler.seed,
    )
    detail = f"m={m} > n={n}: J^T has a null space" if m > n else ""
    return ClaimResult(
        GNP,
        "violated",
        figure,
        measured,
        limit,
        NETWORK_REASON,
        method,
        "search",
        detail,
        counterexample,
    )
