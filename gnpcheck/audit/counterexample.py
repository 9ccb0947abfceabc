r"""A counterexample to a claim: the inputs that show it fails, saved and re-run at will.

Each kind records what its figure is computed from:

- ``"pair"``: inputs ``x``, ``y``; the figure is :math:`\|f(x) - f(y)\| / \|x - y\|`
  (``lipschitz``: above the constant; ``orthogonal``: away from 1).
- ``"cotangent"``: input ``x`` and output gradient ``g``; the figure is
  :math:`\|J_f(x)^T g\| / \|g\|` (``gnp``: away from 1).
- ``"nonfinite"``: a finite input ``x`` whose output holds NaN or inf.
- ``"nonlinear"``: inputs ``x``, ``y`` and scalars ``a``, ``b`` with
  :math:`f(ax + by) - f(0) \ne a (f(x) - f(0)) + b (f(y) - f(0))` (an orthogonal map is linear).
- ``"procedure"``: a behaviour claim: the named procedure of :mod:`gnpcheck.audit.behaviour`
  re-run with the recorded seed and inputs.

Files: ``.pt`` (``torch.save`` of plain tensors, strings and numbers, loadable with
``torch.load(..., weights_only=True)``) or ``.npz`` (NumPy arrays and a JSON header).
Writes are atomic (a temporary file, then a rename).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from gnpcheck.audit.numbers import format_number
from gnpcheck.errors import InvalidArgumentError

__all__ = ["FORMAT", "Counterexample", "CounterexampleKind", "Replay"]

CounterexampleKind = Literal["pair", "cotangent", "nonfinite", "nonlinear", "procedure"]
_KINDS: tuple[str, ...] = ("pair", "cotangent", "nonfinite", "nonlinear", "procedure")
#: The format tag written into every saved counterexample.
FORMAT = "gnpcheck-counterexample/1"

Scalar = float | int | str | bool


@dataclass(frozen=True)
class Replay:
    """A counterexample re-run on a target.

    Attributes:
        measured: the figure recomputed on the target.
        tolerance: what the figure is allowed (the counterexample's own tolerance).
        reproduced: whether the claim still fails there.
        detail: what was computed, in words.
    """

    measured: float
    tolerance: float
    reproduced: bool
    detail: str


@dataclass(frozen=True)
class Counterexample:
    """Inputs on which a claim fails, and how to measure the failure again.

    Attributes:
        claim: the claim it refutes.
        kind: see the module docstring.
        tensors: the inputs (CPU tensors; batch axis absent).
        values: scalars the figure needs (``a``, ``b``, the Lipschitz constant, a seed...).
        measured: the figure when it was found.
        tolerance: the largest figure (or deviation) the claim allows.
        figure: what ``measured`` is, e.g. ``"||f(x) - f(y)|| / ||x - y||"``.
        description: one sentence for a report.
        dtype: the dtype the target was audited in (``"float64"``).
        input_shape: the shape of one input, without the batch axis.
        seed: the audit's seed.
    """

    claim: str
    kind: CounterexampleKind
    tensors: Mapping[str, torch.Tensor]
    values: Mapping[str, Scalar]
    measured: float
    tolerance: float
    figure: str
    description: str
    dtype: str
    input_shape: tuple[int, ...]
    seed: int

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise InvalidArgumentError(f"kind={self.kind!r}, but it must be one of {_KINDS}")

    def summary(self) -> str:
        """``"<figure>=<measured> (allowed <tolerance>): <description>"``."""
        return (
            f"{self.figure}={format_number(self.measured)} "
            f"(allowed {format_number(self.tolerance)}): {self.description}"
        )

    def to_dict(self) -> dict[str, Any]:
        """Everything but the tensors, JSON-ready; tensors are listed by name and shape."""
        return {
            "format": FORMAT,
            "claim": self.claim,
            "kind": self.kind,
            "values": dict(self.values),
            "measured": self.measured if math.isfinite(self.measured) else str(self.measured),
            "tolerance": self.tolerance,
            "figure": self.figure,
            "description": self.description,
            "dtype": self.dtype,
            "input_shape": list(self.input_shape),
            "seed": self.seed,
            "tensors": {name: list(t.shape) for name, t in self.tensors.items()},
        }

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write to ``path`` (``.pt`` or ``.npz``), atomically; returns the path.

        Raises:
            InvalidArgumentError: another suffix.
        """
        target = Path(path)
        header = self.to_dict()
        tensors = {name: t.detach().cpu().contiguous() for name, t in self.tensors.items()}
        if target.suffix == ".pt":
            payload: dict[str, Any] = {"header": json.dumps(header), "tensors": tensors}
            _atomic_write(target, lambda handle: torch.save(payload, handle))
        elif target.suffix == ".npz":
            arrays: dict[str, Any] = {f"tensor_{name}": t.numpy() for name, t in tensors.items()}
            arrays["header"] = np.array(json.dumps(header))
            _atomic_write(target, lambda handle: np.savez(handle, **arrays))
        else:
            raise InvalidArgumentError(f"path={str(path)!r}, but it must end in .pt or .npz")
        return target

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Counterexample:
        """Read a counterexample written by :meth:`save`.

        Raises:
            InvalidArgumentError: another suffix, or a file that is not a gnpcheck
                counterexample.
        """
        source = Path(path)
        if source.suffix == ".pt":
            payload = torch.load(source, weights_only=True)
            header = json.loads(str(payload["header"]))
            tensors = {str(k): v for k, v in payload["tensors"].items()}
        elif source.suffix == ".npz":
            with np.load(source, allow_pickle=False) as data:
                header = json.loads(str(data["header"]))
                tensors = {
                    key.removeprefix("tensor_"): torch.from_numpy(np.array(data[key]))
                    for key in data.files
                    if key.startswith("tensor_")
                }
        else:
            raise InvalidArgumentError(f"path={str(path)!r}, but it must end in .pt or .npz")
        if header.get("format") != FORMAT:
            raise InvalidArgumentError(
                f"path={str(path)!r} has format {header.get('format')!r}, but it must be {FORMAT!r}"
            )
        return cls(
            claim=header["claim"],
            kind=header["kind"],
            tensors=tensors,
            values=header["values"],
            measured=float(header["measured"]),
            tolerance=float(header["tolerance"]),
            figure=header["figure"],
            description=header["description"],
            dtype=header["dtype"],
            input_shape=tuple(int(s) for s in header["input_shape"]),
            seed=int(header["seed"]),
        )

    def replay(self, target: object, device: str | torch.device | None = None) -> Replay:
        """Measure the figure again on ``target`` (an ``nn.Module``, a zero-argument factory,
        or a ``"module:factory"`` string), never modifying it.

        Raises:
            gnpcheck.audit.target.TargetError: the target cannot be built or run.
        """
        from gnpcheck.audit.replay import replay

        return replay(self, target, device)


def _atomic_write(path: Path, write: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            write(stream)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
