"""Audit the layers of public Lipschitz-layer libraries (docs/public_layers.rst).

    pip install -c constraints.txt -e ".[public]"   # the versions the docs report
    python benchmarks/audit_public_layers.py [--seed S] [--seeds N] [--dtype D] [--only TEXT]

Installs nothing: audits the layers of whichever of deel-torchlip, orthogonium and geotorch
are installed, each built by a factory in the audit's dtype (float64 unless ``--dtype``)
and checked on the claims its library's documentation makes for it plus every behaviour
claim that applies. One row per layer: the verdicts (``-``: not applicable), the claims
docs/public_layers.rst reports violated for the installed version (``findings``), and
whether this run agrees. Then the layers whose verdicts depend on their random
initialization, audited on their spectral claims over ``--seeds`` seeds. Prints, asserts
nothing (``tests/audit/test_public_layers.py`` asserts the findings).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import nn

from gnpcheck.audit import AuditReport, ClaimResult, audit
from gnpcheck.audit.table import ABBREVIATIONS, LEGEND, aligned, claim_marks

#: The behaviour claims every row checks (each one only where it applies).
BEHAVIOUR = (
    "train_eval_consistent",
    "fresh_after_step",
    "parameter_coverage",
    "state_dict_roundtrip",
    "export_faithful",
    "input_size_independent",
)
LIPSCHITZ = ("lipschitz",)
GNP = ("lipschitz", "gnp")
ORTHOGONAL = ("lipschitz", "orthogonal", "gnp")


@dataclass(frozen=True)
class PublicLayer:
    """One layer of a public library and what its documentation claims.

    Attributes:
        name: the row name.
        distribution: the library's name on PyPI (its installed version is printed).
        module: the module to import, whose attribute ``attribute`` is called with ``args``.
        attribute: a class or function of ``module`` (dotted for a nested module).
        args: positional arguments of the call.
        kwargs: keyword arguments of the call.
        input_shape: one input, without the batch axis.
        claims: the spectral claims checked: those the library documents for the layer (the
            Householder activation: what it is used for, docs/public_layers.rst).
        findings: the claims docs/public_layers.rst reports violated for the version the
            ``public`` extra installs; none: every claim that applies holds.
    """

    name: str
    distribution: str
    module: str
    attribute: str
    args: tuple[Any, ...]
    kwargs: tuple[tuple[str, Any], ...]
    input_shape: tuple[int, ...]
    claims: tuple[str, ...]
    findings: tuple[str, ...]

    def build(self) -> nn.Module:
        """Import the library and construct the layer (the audit calls this as its factory).

        Raises:
            ImportError: the library is not installed.
        """
        made = _resolve(self.module, self.attribute)(*self.args, **dict(self.kwargs))
        if not isinstance(made, nn.Module):
            raise TypeError(f"{self.module}.{self.attribute} returned {type(made).__name__}")
        return made

    def installed(self) -> bool:
        """Whether :attr:`distribution` is installed."""
        try:
            importlib.metadata.version(self.distribution)
        except importlib.metadata.PackageNotFoundError:
            return False
        return True

    def version(self) -> str:
        """The installed version of :attr:`distribution`."""
        return importlib.metadata.version(self.distribution)


def _resolve(module: str, attribute: str) -> Callable[..., Any]:
    found: Any = importlib.import_module(module)
    for part in attribute.split("."):
        found = getattr(found, part)
    return found  # type: ignore[no-any-return]


def orthogonal_linear(features: int) -> nn.Module:
    """``nn.Linear(features, features)`` with geotorch's orthogonal constraint on its weight.

    Raises:
        ImportError: geotorch is not installed.
    """
    geotorch = importlib.import_module("geotorch")
    layer = nn.Linear(features, features)
    geotorch.orthogonal(layer, "weight")
    return layer


def _layer(
    name: str,
    distribution: str,
    module: str,
    attribute: str,
    args: tuple[Any, ...],
    input_shape: tuple[int, ...],
    claims: tuple[str, ...],
    *findings: str,
    **kwargs: Any,
) -> PublicLayer:
    return PublicLayer(
        name,
        distribution,
        module,
        attribute,
        args,
        tuple(sorted(kwargs.items())),
        input_shape,
        claims,
        findings,
    )


CONV = (8, 8, 8)
DEEL, ORTHOGONIUM = "deel.torchlip", "orthogonium.layers"
AOL, SLL = "orthogonium.layers.conv.AOL.aol", "orthogonium.layers.conv.SLL.sll_layer"

_SPECTRAL_CONV = _layer(
    "SpectralConv2d",
    "deel-torchlip",
    DEEL,
    "SpectralConv2d",
    (8, 8, 3),
    CONV,
    LIPSCHITZ,
    "fresh_after_step",
    padding=1,
)

_HOUSEHOLDER = _layer(
    "HouseHolder",
    "orthogonium",
    ORTHOGONIUM,
    "HouseHolder",
    (8,),
    CONV,
    GNP,
    "gnp",
    "input_size_independent",
)

#: The audited layers; the claims are those of each library's documentation.
PUBLIC_LAYERS: tuple[PublicLayer, ...] = (
    _SPECTRAL_CONV,
    replace(
        _SPECTRAL_CONV,
        name="SpectralConv2d circular",
        kwargs=(("padding", 1), ("padding_mode", "circular")),
    ),
    _layer(
        "SpectralLinear",
        "deel-torchlip",
        DEEL,
        "SpectralLinear",
        (16, 16),
        (16,),
        ORTHOGONAL,
        "fresh_after_step",
    ),
    _layer(
        "FrobeniusConv2d",
        "deel-torchlip",
        DEEL,
        "FrobeniusConv2d",
        (8, 8, 3),
        CONV,
        LIPSCHITZ,
        padding=1,
    ),
    _layer("FrobeniusLinear", "deel-torchlip", DEEL, "FrobeniusLinear", (16, 1), (16,), GNP),
    _layer("GroupSort2", "deel-torchlip", DEEL, "GroupSort2", (), CONV, GNP),
    _layer("MaxMin", "deel-torchlip", DEEL, "MaxMin", (), CONV, LIPSCHITZ),
    _layer("FullSort", "deel-torchlip", DEEL, "FullSort", (), (16,), GNP),
    _layer(
        "InvertibleDownSampling",
        "deel-torchlip",
        DEEL,
        "InvertibleDownSampling",
        (2,),
        CONV,
        ORTHOGONAL,
    ),
    _layer(
        "ScaledL2NormPool2d", "deel-torchlip", DEEL, "ScaledL2NormPool2d", (2,), CONV, LIPSCHITZ
    ),
    _layer(
        "AdaptiveOrthoConv2d",
        "orthogonium",
        ORTHOGONIUM,
        "AdaptiveOrthoConv2d",
        (8, 8, 3),
        CONV,
        ORTHOGONAL,
    ),
    _layer(
        "AdaptiveOrthoConv2d kernel 2 stride 2",
        "orthogonium",
        ORTHOGONIUM,
        "AdaptiveOrthoConv2d",
        (8, 32, 2),
        CONV,
        ORTHOGONAL,
        stride=2,
        padding="valid",
    ),
    _layer(
        "AOLConv2D",
        "orthogonium",
        AOL,
        "AOLConv2D",
        (8, 8, 3),
        CONV,
        LIPSCHITZ,
        "parameter_coverage",
        padding=1,
    ),
    _layer(
        "SDPBasedLipschitzResBlock",
        "orthogonium",
        SLL,
        "SDPBasedLipschitzResBlock",
        (8, 2),
        CONV,
        LIPSCHITZ,
        "parameter_coverage",
    ),
    _layer("OrthoLinear", "orthogonium", ORTHOGONIUM, "OrthoLinear", (16, 16), (16,), ORTHOGONAL),
    _layer("MaxMin", "orthogonium", ORTHOGONIUM, "MaxMin", (), CONV, GNP),
    _HOUSEHOLDER,
    replace(_HOUSEHOLDER, name="HouseHolder_Order_2", attribute="HouseHolder_Order_2"),
    _layer(
        "orthogonal(nn.Linear)",
        "geotorch",
        __name__,
        "orthogonal_linear",
        (16,),
        (16,),
        ORTHOGONAL,
        "parameter_coverage",
    ),
)


#: Layers whose verdict depends on the random initialization: audited on their spectral
#: claims over many seeds (``--seeds``) instead of in the table.
SURVEYED: tuple[PublicLayer, ...] = (
    _layer(
        "AdaptiveOrthoConv2d kernel 3 stride 2",
        "orthogonium",
        ORTHOGONIUM,
        "AdaptiveOrthoConv2d",
        (8, 32, 3),
        CONV,
        ORTHOGONAL,
        "orthogonal",
        "gnp",
        stride=2,
        padding=1,
    ),
)


def survey(layer: PublicLayer, seeds: int, dtype: torch.dtype = torch.float64) -> list[AuditReport]:
    """The audits of ``layer`` on its spectral claims in ``dtype``, one per seed
    ``0 .. seeds - 1`` (each seed also draws the layer's initialization)."""
    return [
        audit(layer.build, layer.input_shape, claims=layer.claims, dtype=dtype, seed=s)
        for s in range(seeds)
    ]


def audit_layer(
    layer: PublicLayer, seed: int = 0, dtype: torch.dtype = torch.float64
) -> AuditReport:
    """The audit of ``layer`` (built by its factory, in ``dtype``) on its claims and the
    behaviour claims."""
    return audit(
        layer.build,
        layer.input_shape,
        claims=layer.claims + BEHAVIOUR,
        dtype=dtype,
        seed=seed,
        name=f"{layer.distribution} {layer.name}",
    )


def _not_applicable(result: ClaimResult) -> bool:
    return result.verdict == "inconclusive" and "not applicable" in result.detail


def agrees(layer: PublicLayer, report: AuditReport) -> bool:
    """Whether ``report`` is what docs/public_layers.rst reports: the findings violated, every
    other claim held or not applicable, and no target error."""
    violated = {r.claim for r in report.results if r.verdict == "violated"}
    undecided = [
        r for r in report.results if r.verdict == "inconclusive" and not _not_applicable(r)
    ]
    return report.target_error is None and not undecided and violated == set(layer.findings)


def _row(layer: PublicLayer, report: AuditReport) -> list[str]:
    return [
        f"{layer.distribution} {layer.version()}",
        layer.name,
        *claim_marks(report),
        ", ".join(layer.findings) or "(all hold)",
        "as reported" if agrees(layer, report) else "DIFFERS",
        f"{report.seconds:.1f}",
    ]


def main(argv: Sequence[str] | None = None) -> None:
    """Audit every installed public layer and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0, help="the audits' seed (default 0)")
    parser.add_argument("--only", default="", help="audit the rows whose name contains TEXT")
    parser.add_argument(
        "--seeds", type=int, default=10, help="seeds of the survey (default 10; 0: none)"
    )
    parser.add_argument(
        "--dtype",
        choices=("float64", "float32"),
        default="float64",
        help="the audits' dtype, which the layers are built in (default float64; the findings "
        "reported are float64's)",
    )
    args = parser.parse_args(argv)
    if args.seeds < 0:
        parser.error(f"--seeds={args.seeds}, but it must be 0 or more")
    dtype = getattr(torch, args.dtype)
    head = ["library", "layer", *ABBREVIATIONS.values(), "findings", "this run", "seconds"]
    rows, missing, notes = [head], set(), []
    start = time.perf_counter()
    for layer in PUBLIC_LAYERS:
        if args.only not in f"{layer.distribution} {layer.name}":
            continue
        if not layer.installed():
            missing.add(layer.distribution)
            continue
        report = audit_layer(layer, args.seed, dtype)
        rows.append(_row(layer, report))
        notes += [f"{layer.distribution} {layer.name}: {note}" for note in report.notes]
        if report.target_error:
            notes.append(f"{layer.distribution} {layer.name}: {report.target_error}")
    print(aligned(rows))
    print(
        f"\n{len(rows) - 1} layers audited ({args.dtype}, seed {args.seed}; "
        f"{time.perf_counter() - start:.1f} s)"
    )
    if missing:
        print("not installed, skipped: " + ", ".join(sorted(missing)))
    print(LEGEND)
    for note in notes:
        print(f"note: {note}")
    for layer in SURVEYED:
        if not args.seeds or args.only not in f"{layer.distribution} {layer.name}":
            continue
        if not layer.installed():
            print(f"\n{layer.distribution} is not installed: {layer.name} not surveyed")
            continue
        print(f"\n{layer.distribution} {layer.version()} {layer.name}, seeds 0-{args.seeds - 1}:")
        for seed, report in enumerate(survey(layer, args.seeds, dtype)):
            figures = ", ".join(
                f"{r.claim} {r.verdict} ({r.figure} {r.measured:.3g})"
                for r in report.results
                if r.measured is not None
            )
            print(f"   seed {seed}: {figures}")


if __name__ == "__main__":
    main()
