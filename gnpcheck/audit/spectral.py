r"""The spectral claims of a linear (affine) target, measured on its matrix.

Three routes, best first (:class:`LinearStructure` says which applies):

- **circular convolution** (kernel read off impulse responses): first the rigorous
  autocorrelation bound of :func:`gnpcheck.reference.orthogonality_defect` (valid for every
  input size, independent of it in cost); only if that cannot decide, every singular value
  from :func:`gnpcheck.reference.circulant_spectrum` (exact). A counterexample is the real
  Fourier mode of the worst frequency's singular vector: for it the ratio *is* that
  singular value.
- **dense matrix** (small inputs): the SVD of the matrix (exact).
- **matrix-free**: power iteration through the target and autograd
  (:mod:`gnpcheck.audit.power`): a lower bound, and an upper bound that fails with
  probability ``delta`` when the margin allows one.

Claims: ``lipschitz`` is :math:`\sigma_{\max} \le L`; ``orthogonal`` is every one of the
``min(m, n)`` singular values equal to 1; ``gnp`` is ``m <= n`` and every singular value 1
(:math:`J J^T = I`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import NDArray

from gnpcheck.audit.claims import GNP, LIPSCHITZ, ORTHOGONAL
from gnpcheck.audit.counterexample import Counterexample
from gnpcheck.audit.deadline import Deadline
from gnpcheck.audit.figures import cotangent_ratio, pair_ratio
from gnpcheck.audit.linear import ConvolutionModel, Map
from gnpcheck.audit.power import PowerResult, power_iteration
from gnpcheck.audit.report import ClaimResult, Evidence, Verdict
from gnpcheck.audit.sampler import Sampler
from gnpcheck.audit.tolerance import NETWORK_REASON, network_tolerance
from gnpcheck.reference import circulant_spectrum, gram_defect_bound, orthogonality_defect
from gnpcheck.reference.spectrum import symbol_at
from gnpcheck.tolerances import gnp_tolerance, orthogonality_tolerance

__all__ = ["POWER_DELTA", "LinearStructure", "linear_claim"]

#: Failure probability of the power-iteration certificate.
POWER_DELTA = 1e-6
_EXACT_REASON = "10 m eps, m = output size: rounding of the exact spectrum (gnpcheck.tolerances)"


@dataclass(frozen=True)
class LinearStructure:
    """An affine target ``f(x) = g(x) + f(0)`` and what is known of its linear part ``g``.

    Attributes:
        f: the target's batched map (evaluation mode).
        offset: ``f(0)``, one output.
        sampler: the audit's draws (input shape, dtype, device, seed).
        precision: the dtype tolerances are taken from.
        seed: the audit's seed, recorded in counterexamples.
        convolution: the circular convolution ``g`` is, if it is one.
        matrix: the dense ``m x n`` matrix of ``g``, if it was formed.
    """

    f: Map
    offset: torch.Tensor
    sampler: Sampler
    precision: torch.dtype
    seed: int
    convolution: ConvolutionModel | None = None
    matrix: NDArray[np.float64] | None = None

    @property
    def n_in(self) -> int:
        """The input size ``n``."""
        return math.prod(self.sampler.input_shape)

    @property
    def n_out(self) -> int:
        """The output size ``m``."""
        return self.offset.numel()

    def g(self, x: torch.Tensor) -> torch.Tensor:
        """The linear part, ``f(x) - f(0)``, for a batch."""
        return self.f(x) - self.offset

    def transpose(self, w: torch.Tensor) -> torch.Tensor:
        """``J^T w`` for one output-shaped ``w``, by autograd (one input-shaped result)."""
        with torch.enable_grad():
            point = torch.zeros(
                1, *self.sampler.input_shape, dtype=self.sampler.dtype, device=self.sampler.device
            ).requires_grad_(True)
            out = self.f(point)
            (grad,) = torch.autograd.grad(out, point, w.reshape(out.shape), allow_unused=True)
        return torch.zeros_like(point[0]) if grad is None else grad[0].detach()


def _counterexample(
    s: LinearStructure,
    claim: str,
    kind: str,
    tensors: dict[str, torch.Tensor],
    values: dict[str, float | int | str | bool],
    measured: float,
    tolerance: float,
    figure: str,
    description: str,
) -> Counterexample:
    return Counterexample(
        claim=claim,
        kind=kind,  # type: ignore[arg-type]
        tensors={k: v.detach().cpu() for k, v in tensors.items()},
        values=values,
        measured=measured,
        tolerance=tolerance,
        figure=figure,
        description=description,
        dtype=str(s.sampler.dtype).removeprefix("torch."),
        input_shape=s.sampler.input_shape,
        seed=s.seed,
    )


def _result(
    claim: str,
    verdict: Verdict,
    figure: str,
    measured: float | None,
    tolerance: float | None,
    reason: str,
    method: str,
    evidence: Evidence,
    detail: str = "",
    counterexample: Counterexample | None = None,
) -> ClaimResult:
    return ClaimResult(
        claim,
        verdict,
        figure,
        measured,
        tolerance,
        reason,
        method,
        evidence,
        detail,
        counterexample,
    )


def _tolerances(s: LinearStructure, claim: str, exact: bool) -> tuple[float, str]:
    if not exact:
        return network_tolerance(s.precision, s.n_in, s.n_out), NETWORK_REASON
    if claim == GNP:
        return gnp_tolerance(s.precision, s.n_out), _EXACT_REASON
    return orthogonality_tolerance(s.precision, s.n_out), _EXACT_REASON


def _pair_witness(
    s: LinearStructure, claim: str, x: torch.Tensor, limit: float, figure: str, constant: float
) -> tuple[float, Counterexample]:
    """The pair ``(x, 0)``, its ratio measured through the target."""
    x = x.to(dtype=s.sampler.dtype, device=s.sampler.device)
    zero = torch.zeros_like(x)
    ratio = pair_ratio(s.f, x, zero)
    what = "above the constant" if claim == LIPSCHITZ else "away from 1"
    return ratio, _counterexample(
        s,
        claim,
        "pair",
        {"x": x, "y": zero},
        {"constant": constant},
        ratio,
        limit,
        figure,
        f"||f(x) - f(0)|| / ||x|| = {ratio:.10g}, {what}, for x a singular vector of the linear part",
    )


def _cotangent_witness(
    s: LinearStructure, g: torch.Tensor, tolerance: float
) -> tuple[float, Counterexample]:
    x = torch.zeros(s.sampler.input_shape, dtype=s.sampler.dtype, device=s.sampler.device)
    g = g.to(dtype=s.sampler.dtype, device=s.sampler.device)
    ratio = cotangent_ratio(s.f, x, g)
    return ratio, _counterexample(
        s,
        GNP,
        "cotangent",
        {"x": x, "g": g},
        {},
        ratio,
        tolerance,
        "||J(x)^T g|| / ||g||",
        f"the output gradient g is mapped to a gradient of norm {ratio:.10g} ||g||",
    )


def _fourier_mode(
    vector: NDArray[np.complex128], frequency: tuple[int, ...], spatial: tuple[int, ...]
) -> torch.Tensor:
    """The real signal ``Re(c v e^{2 pi i <f, t/N>})`` of larger norm for ``c`` in ``{1, -i}``."""
    grids = np.meshgrid(*[np.arange(n) for n in spatial], indexing="ij")
    phase = np.exp(
        2j * np.pi * sum(f * t / n for f, t, n in zip(frequency, grids, spatial, strict=True))
    )
    mode = vector.reshape(-1, *([1] * len(spatial))) * phase
    real, imaginary = np.real(mode), np.imag(mode)
    chosen = real if np.linalg.norm(real) >= np.linalg.norm(imaginary) else imaginary
    return torch.from_numpy(np.ascontiguousarray(chosen))


def _convolution_claim(s: LinearStructure, claim: str, constant: float) -> ClaimResult:
    model = s.convolution
    assert model is not None
    w, spatial = model.kernel, model.spatial
    n_out, n_in = w.shape[-2], w.shape[-1]
    tolerance, reason = _tolerances(s, claim, exact=True)
    taps = "x".join(map(str, w.shape[:-2]))
    origin = f"circular convolution ({taps} kernel, {n_in} -> {n_out} channels)"
    if claim == GNP and n_out > n_in:
        symbol = symbol_at(w, spatial, np.zeros((1, len(spatial)), dtype=np.int64))[0]
        null = np.linalg.svd(symbol)[0][:, -1]
        mode = _fourier_mode(null, (0,) * len(spatial), spatial)
        _, witness = _cotangent_witness(s, mode, tolerance)
        return _result(
            claim,
            "violated",
            "max | ||J^T g|| / ||g|| - 1 |",
            1.0,
            tolerance,
            reason,
            f"{origin}: channel count",
            "exact",
            f"n_out={n_out} > n_in={n_in}: J^T has a null space",
            witness,
        )
    if claim == LIPSCHITZ:
        figure, limit, reason = "sigma_max", constant * (1 + tolerance), f"L (1 + {reason})"
        bound = math.sqrt(1.0 + gram_defect_bound(w, rigorous=True))
    else:
        figure, limit = "max |sigma - 1|", tolerance
        bound = orthogonality_defect(w, spatial, method="bound", rigorous=True)
    if bound <= limit:
        return _result(
            claim,
            "holds",
            f"{figure} (upper bound)",
            bound,
            limit,
            reason,
            f"{origin}: autocorrelation bound (every input size)",
            "bound",
        )
    method = f"{origin}: circulant spectrum"
    spectrum = circulant_spectrum(w, spatial)
    deviation = spectrum if claim == LIPSCHITZ else np.abs(spectrum - 1.0)
    worst = np.unravel_index(int(np.argmax(deviation)), deviation.shape)
    measured = float(deviation[worst])
    if measured <= limit:
        return _result(claim, "holds", figure, measured, limit, reason, method, "exact")
    frequency, k = tuple(int(i) for i in worst[:-1]), int(worst[-1])
    symbol = symbol_at(w, spatial, np.asarray([frequency], dtype=np.int64))[0]
    u, _, vh = np.linalg.svd(symbol)
    if claim == GNP:
        _, witness = _cotangent_witness(s, _fourier_mode(u[:, k], frequency, spatial), tolerance)
    else:
        x = _fourier_mode(vh[k].conj(), frequency, spatial)
        _, witness = _pair_witness(s, claim, x, limit, "||f(x) - f(y)|| / ||x - y||", constant)
    detail = f"worst at frequency {frequency}: sigma={float(spectrum[worst]):.10g}"
    return _result(
        claim, "violated", figure, measured, limit, reason, method, "exact", detail, witness
    )


def _dense_claim(s: LinearStructure, claim: str, constant: float) -> ClaimResult:
    matrix = s.matrix
    assert matrix is not None
    m, n = matrix.shape
    tolerance, reason = _tolerances(s, claim, exact=True)
    method = f"dense matrix ({m} x {n}) from basis responses: SVD"
    u, sigma, vh = np.linalg.svd(matrix, full_matrices=True)
    if claim == GNP and m > n:
        _, witness = _cotangent_witness(s, torch.from_numpy(u[:, -1].copy()), tolerance)
        return _result(
            claim,
            "violated",
            "max | ||J^T g|| / ||g|| - 1 |",
            1.0,
            tolerance,
            reason,
            method,
            "exact",
            f"m={m} > n={n}: J^T has a null space",
            witness,
        )
    if claim == LIPSCHITZ:
        figure, deviation, limit = "sigma_max", sigma, constant * (1 + tolerance)
        reason = f"L (1 + {reason})"
    else:
        figure, deviation, limit = "max |sigma - 1|", np.abs(sigma - 1.0), tolerance
    k = int(np.argmax(deviation))
    measured = float(deviation[k])
    if measured <= limit:
        return _result(claim, "holds", figure, measured, limit, reason, method, "exact")
    if claim == GNP:
        _, witness = _cotangent_witness(s, torch.from_numpy(u[:, k].copy()), tolerance)
    else:
        x = torch.from_numpy(vh[k].copy()).reshape(s.sampler.input_shape)
        _, witness = _pair_witness(s, claim, x, limit, "||f(x) - f(y)|| / ||x - y||", constant)
    return _result(
        claim,
        "violated",
        figure,
        measured,
        limit,
        reason,
        method,
        "exact",
        f"sigma={float(sigma[k]):.10g}",
        witness,
    )


def _power_verdict(
    s: LinearStructure,
    claim: str,
    run: PowerResult,
    figure: str,
    to_figure: Callable[[float], float],
    limit: float,
    reason: str,
    method: str,
    witness: Callable[[], tuple[float, Counterexample]],
) -> ClaimResult:
    lower = to_figure(run.lower)
    method = f"{method}, {run.iterations} iterations"
    if run.stopped == "time budget":
        return _result(
            claim,
            "inconclusive",
            figure + " (lower bound)",
            lower,
            limit,
            reason,
            method,
            "search",
            "inconclusive: time budget",
        )
    if run.stopped == "exceeded":
        ratio, counterexample = witness()
        return _result(
            claim,
            "violated",
            figure + " (lower bound)",
            lower,
            limit,
            reason,
            method,
            "search",
            f"witness ratio {ratio:.10g}",
            counterexample,
        )
    upper = to_figure(run.upper)
    if run.stopped == "certified":
        return _result(
            claim,
            "holds",
            figure + " (probabilistic upper bound)",
            upper,
            limit,
            reason,
            method,
            "probabilistic",
            f"{figure} <= {upper:.6g} with failure probability <= {run.delta:g}; "
            f"lower bound {lower:.10g}",
        )
    return _result(
        claim,
        "holds",
        figure + " (lower bound)",
        lower,
        limit,
        reason,
        method,
        "search",
        f"no violation found; the margin allows no certificate "
        f"(probabilistic upper bound {upper:.6g})",
    )


def _matrix_free_claim(
    s: LinearStructure, claim: str, constant: float, deadline: Deadline
) -> ClaimResult:
    tolerance, reason = _tolerances(s, claim, exact=False)
    n, m = s.n_in, s.n_out
    shape = s.sampler.input_shape

    def forward(v: torch.Tensor) -> torch.Tensor:
        return s.g(v.reshape(1, *shape)).reshape(-1)

    def backward(w: torch.Tensor) -> torch.Tensor:
        return s.transpose(w).reshape(-1)

    if claim == LIPSCHITZ:
        limit = constant * (1 + tolerance)
        run = power_iteration(
            lambda v: backward(forward(v)),
            s.sampler.normal(n),
            threshold=limit**2,
            delta=POWER_DELTA,
            deadline=deadline,
        )
        return _power_verdict(
            s,
            claim,
            run,
            "sigma_max",
            lambda q: math.sqrt(max(q, 0.0)),
            limit,
            f"L (1 + {reason})",
            "matrix-free: power iteration on J^T J",
            lambda: _pair_witness(
                s, claim, run.vector.reshape(shape), limit, "||f(x) - f(y)|| / ||x - y||", constant
            ),
        )
    limit = 2 * tolerance + tolerance**2  # |sigma - 1| <= tol  <=>  |sigma^2 - 1| <= 2 tol + tol^2
    on_inputs = claim == ORTHOGONAL and n <= m
    if on_inputs:
        run = power_iteration(
            lambda v: backward(forward(v)) - v,
            s.sampler.normal(n),
            squared=True,
            threshold=limit**2,
            delta=POWER_DELTA,
            deadline=deadline,
        )
    else:
        run = power_iteration(
            lambda w: forward(backward(w)) - w,
            s.sampler.normal(m),
            squared=True,
            threshold=limit**2,
            delta=POWER_DELTA,
            deadline=deadline,
        )

    def witness() -> tuple[float, Counterexample]:
        if claim == GNP:
            return _cotangent_witness(s, run.vector.reshape(s.offset.shape), tolerance)
        x = run.vector if on_inputs else backward(run.vector)
        return _pair_witness(
            s, claim, x.reshape(shape), tolerance, "||f(x) - f(y)|| / ||x - y||", constant
        )

    operator = "J^T J - I" if on_inputs else "J J^T - I"
    return _power_verdict(
        s,
        claim,
        run,
        "max |sigma^2 - 1|",
        lambda q: math.sqrt(max(q, 0.0)),
        limit,
        f"2 tol + tol^2, tol = {reason}",
        f"matrix-free: power iteration on ({operator})^2",
        witness,
    )


def linear_claim(
    structure: LinearStructure, claim: str, constant: float, deadline: Deadline
) -> ClaimResult:
    """The verdict on ``claim`` (``lipschitz``, ``orthogonal`` or ``gnp``) for a linear target.

    ``constant`` is the Lipschitz constant claimed. Counterexamples are confirmed through the
    target (:mod:`gnpcheck.audit.figures`).
    """
    if structure.convolution is not None:
        return _convolution_claim(structure, claim, constant)
    if structure.matrix is not None:
        return _dense_claim(structure, claim, constant)
    return _matrix_free_claim(structure, claim, constant, deadline)
