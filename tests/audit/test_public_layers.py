"""The audit on layers of public libraries (``benchmarks/audit_public_layers.py``,
docs/public_layers.rst): for the versions the ``public`` extra installs, every finding the
docs report is found again, with its evidence, and nothing else is violated."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch
from torch import nn

from gnpcheck.audit import audit

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "audit_public_layers.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("audit_public_layers", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


SCRIPT_MODULE = _load()
LAYERS = {f"{layer.distribution} {layer.name}": layer for layer in SCRIPT_MODULE.PUBLIC_LAYERS}


def _audited(name: str, dtype: torch.dtype = torch.float64) -> tuple[object, object]:
    layer = LAYERS[name]
    if not layer.installed():
        pytest.skip(
            f"{layer.distribution} is not installed (pip install -c constraints.txt -e '.[public]')"
        )
    return layer, SCRIPT_MODULE.audit_layer(layer, dtype=dtype)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("name", sorted(LAYERS))
def test_each_public_layer_is_judged_as_the_docs_report(name: str, dtype: torch.dtype) -> None:
    layer, report = _audited(name, dtype)
    assert SCRIPT_MODULE.agrees(layer, report), report.to_text()


def test_deels_evaluation_weight_is_one_step_behind_the_parameters() -> None:
    _, report = _audited("deel-torchlip SpectralLinear")
    result = report.result("fresh_after_step")
    assert "after the train-mode step" in result.detail
    assert "a cached kernel is not refreshed" in result.detail
    assert result.measured > 1e-3  # not rounding: a whole optimizer step
    assert result.counterexample is not None


@pytest.mark.parametrize(
    ("name", "unused"),
    [
        ("orthogonium AOLConv2D", [f"parametrizations.weight.0.q[{i}]" for i in range(8)]),
        (
            "orthogonium SDPBasedLipschitzResBlock",
            [f"q[{i}]" for i in range(16)]
            + [f"parametrizations.kernel.0.q[{i}]" for i in range(16)],
        ),
    ],
)
def test_orthogoniums_aol_rescaling_never_influences_the_output(
    name: str, unused: list[str]
) -> None:
    _, report = _audited(name)
    result = report.result("parameter_coverage")
    assert result.detail == "no influence on the output: " + ", ".join(unused)


@pytest.mark.parametrize("name", ["orthogonium HouseHolder", "orthogonium HouseHolder_Order_2"])
def test_orthogoniums_householder_activations_contract_every_gradient(name: str) -> None:
    _, report = _audited(name)
    gnp = report.result("gnp")
    assert gnp.counterexample is not None
    assert gnp.counterexample.measured == pytest.approx(2**-0.5, abs=1e-12)
    assert report.verdict("lipschitz") == "holds"


def test_geotorchs_first_row_is_unused_and_the_layer_orthogonal() -> None:
    _, report = _audited("geotorch orthogonal(nn.Linear)")
    result = report.result("parameter_coverage")
    assert result.detail == "no influence on the output: parametrizations.weight.original[0]"
    orthogonal = report.result("orthogonal")
    assert orthogonal.verdict == "holds"
    assert orthogonal.measured is not None
    assert orthogonal.measured < 1e-13  # built in float64 by the factory


def test_the_householder_activation_without_the_division_is_lipschitz_and_gnp() -> None:
    layer = LAYERS["orthogonium HouseHolder"]
    if not layer.installed():
        pytest.skip("orthogonium is not installed (pip install -c constraints.txt -e '.[public]')")

    class TimesRootTwo(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.activation = layer.build()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.activation(x) * math.sqrt(2)

    report = audit(TimesRootTwo, layer.input_shape, claims="lipschitz,gnp")
    assert report.passed, report.to_text()


def _dense_singular_values(layer: Any, module: nn.Module, dtype: torch.dtype) -> torch.Tensor:
    """Singular values (float64) of the affine map's linear part, from its responses to the
    basis of its input space, evaluated in ``dtype``: an oracle independent of the audit."""
    shape = layer.input_shape
    size = math.prod(shape)
    with torch.no_grad():
        basis = torch.eye(size, dtype=dtype).reshape(size, *shape)
        responses = module(basis) - module(torch.zeros_like(basis[:1]))
        return torch.linalg.svdvals(responses.flatten(1).double())


def _strided_aoc() -> Any:
    (layer,) = SCRIPT_MODULE.SURVEYED
    if not layer.installed():
        pytest.skip("orthogonium is not installed (pip install -c constraints.txt -e '.[public]')")
    return layer


def _built_in_float64(layer: Any) -> nn.Module:
    torch.set_default_dtype(torch.float64)  # orthogonium runs in float64 only if built so
    try:
        module: nn.Module = layer.build().eval()
    finally:
        torch.set_default_dtype(torch.float32)
    return module


def test_orthogoniums_strided_aoc_is_not_orthogonal_at_random_initializations() -> None:
    layer = _strided_aoc()
    reports = SCRIPT_MODULE.survey(layer, 10)
    assert {r.verdict("lipschitz") for r in reports} == {"holds"}
    assert {r.verdict("orthogonal") for r in reports} == {"violated"}
    deviations = sorted(r.result("orthogonal").measured for r in reports)
    assert deviations[4] > 1e-3  # most by far more than rounding: not a tolerance question
    torch.manual_seed(1)
    sigma = _dense_singular_values(layer, _built_in_float64(layer), torch.float64)
    assert float(sigma.max()) == pytest.approx(1.0, abs=1e-6)
    assert float(sigma.min()) < 0.8


def test_the_strided_aocs_float32_deviation_is_its_construction_not_its_precision() -> None:
    """The float32 layer of seed 4, and a float64 one holding the same parameters: the same
    contraction (the float32 survey's larger deviations come from its draws)."""
    layer = _strided_aoc()
    torch.manual_seed(4)
    single = layer.build().eval()
    double = _built_in_float64(layer)
    double.load_state_dict({k: v.double() for k, v in single.state_dict().items()})
    sigma_single = _dense_singular_values(layer, single, torch.float32)
    sigma_double = _dense_singular_values(layer, double, torch.float64)
    assert float(sigma_double.max()) == pytest.approx(1.0, abs=1e-9)
    assert float(sigma_double.min()) < 0.5
    assert float(sigma_single.min()) == pytest.approx(float(sigma_double.min()), abs=0.03)
