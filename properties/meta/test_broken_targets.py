"""The suite fails, with the measured figure, on deliberately broken targets.

Each test runs property files in a nested pytest session (``pytester``, in process) with
``--gnp-target`` naming a target of :mod:`gnpcheck.zoo_kernels`, under the deterministic
``ci`` profile, and checks the exit code and the text a user would read.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gnpcheck import __version__
from gnpcheck.hypothesis_profiles import active_profile, load_profile
from gnpcheck.targets import TARGET_ENV
from gnpcheck.zoo_kernels import PERTURBATION

PROPERTIES = Path(__file__).resolve().parents[1]
ZOO = "gnpcheck.zoo_kernels"
SIGMA = "max |sigma - 1|"
GNP = "max | ||J^T g|| / ||g|| - 1 |"

RunSuite = Callable[..., pytest.RunResult]


@pytest.fixture
def run_suite(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Iterator[RunSuite]:
    """``run_suite(target, *files_or_options)``: a nested run under the ``ci`` profile."""
    monkeypatch.delenv(TARGET_ENV, raising=False)
    previous = active_profile()
    load_profile("ci")

    def run(target: str | None, *args: str) -> pytest.RunResult:
        options = [f"--gnp-target={target}"] if target else []
        paths = [str(PROPERTIES / arg) if arg.endswith(".py") else arg for arg in args]
        return pytester.runpytest_inprocess(*paths, *options, "-p", "no:cacheprovider", "-rfs")

    yield run
    load_profile(previous)


def _figure(output: str, figure: str) -> tuple[float, float]:
    """``(measured, tolerance)`` of the first ``<figure>=<measured>, but should be <= <tol>``."""
    number = r"([0-9.]+(?:e[+-]?[0-9]+)?)"
    match = re.search(re.escape(figure) + "=" + number + ", but should be <= " + number, output)
    assert match is not None, f"no '{figure}=..., but should be <= ...' in:\n{output[-3000:]}"
    return float(match.group(1)), float(match.group(2))


def _failed(output: str, *names: str) -> None:
    for name in names:
        assert re.search(rf"FAILED \S+::{name}\b", output), (
            f"{name} did not fail:\n{output[-3000:]}"
        )


def test_scaled_h_fails_orthogonality_gnp_and_composition(run_suite: RunSuite) -> None:
    result = run_suite(
        f"{ZOO}:bcop_scaled", "test_orthogonality.py", "test_gnp.py", "test_composition.py"
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    output = result.stdout.str()
    _failed(
        output,
        "test_target_is_orthogonal",
        "test_tall_and_wide_slices_of_target_are_orthogonal",
        "test_gradient_norms_preserved_through_adjoint",
        "test_gradient_norms_preserved_through_dense_operator",
        "test_wide_slices_of_target_preserve_all_gradient_norms",
        "test_tall_slices_of_target_are_isometries_but_not_gnp",
        "test_composite_of_target_kernels_is_orthogonal",
    )
    # Every singular value is 1 + 1e-6, and so is every gradient norm ratio.
    assert _figure(output, SIGMA)[0] == pytest.approx(PERTURBATION, rel=1e-6)
    assert _figure(output, GNP)[0] == pytest.approx(PERTURBATION, rel=1e-6)
    # The properties of the machinery hold for any kernel, broken or not.
    result.assert_outcomes(failed=7, passed=7)


def test_perturbed_tap_fails_orthogonality_with_its_figure(run_suite: RunSuite) -> None:
    result = run_suite(f"{ZOO}:bcop_perturbed_tap", "test_orthogonality.py", "-k", "target_is")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    _failed(result.stdout.str(), "test_target_is_orthogonal")
    measured, tolerance = _figure(result.stdout.str(), SIGMA)
    # A perturbation of norm 1e-6 moves no singular value by more (Weyl).
    assert 1e3 * tolerance < measured <= PERTURBATION * (1 + 1e-6)


def test_random_kernel_fails_gnp_by_a_large_margin(run_suite: RunSuite) -> None:
    result = run_suite(f"{ZOO}:random_kernel", "test_gnp.py", "-k", "adjoint")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    _failed(result.stdout.str(), "test_gradient_norms_preserved_through_adjoint")
    assert _figure(result.stdout.str(), GNP)[0] > 1e-3


def test_causal_padding_fails_the_convention(run_suite: RunSuite) -> None:
    result = run_suite(f"{ZOO}:causal_bcop", "test_convention.py")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    output = result.stdout.str()
    _failed(output, "test_target_operator_is_reference_cross_correlation")
    assert _figure(output, "max |convolve(W, x) - dense_operator(W) x|")[0] > 1e-3
    # The counterexample shrinks to the smallest kernel where causal and centered differ.
    assert "kernel_size=2" in output


def test_torch_layout_fails_with_the_expected_shape(run_suite: RunSuite) -> None:
    result = run_suite(f"{ZOO}:torch_layout_bcop", "test_orthogonality.py", "-k", "target_is")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.re_match_lines(
        [r".*returned shape \(\d+, \d+, \d+(, \d+)?\), but it must be .*taps first.*"]
    )


def test_reused_projector_passes_kernel_properties(run_suite: RunSuite) -> None:
    """A blind spot, stated: reusing P_1 for P_2 keeps the kernel a BCOP kernel, hence
    orthogonal; only a parameter-coverage check of the layer that builds it can see it."""
    result = run_suite(f"{ZOO}:bcop_reused_projector", "test_orthogonality.py", "test_gnp.py")
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()[-3000:]


def test_claim_not_made_is_skipped_with_reason(run_suite: RunSuite) -> None:
    result = run_suite(f"{ZOO}:half_lipschitz", "test_orthogonality.py", "test_gnp.py")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(
        ["*SKIPPED*target 'half of a reference BCOP kernel' does not claim 'orthogonal'*"]
    )
    result.stdout.fnmatch_lines(
        ["*SKIPPED*target 'half of a reference BCOP kernel' does not claim 'gnp'*"]
    )
    result.assert_outcomes(passed=4, skipped=6)


def test_environment_variable_selects_the_target_and_the_option_wins(
    run_suite: RunSuite, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TARGET_ENV, f"{ZOO}:half_lipschitz")
    from_env = run_suite(None, "test_orthogonality.py", "--collect-only")
    from_env.stdout.fnmatch_lines(
        [
            f"gnpcheck target: {ZOO}:half_lipschitz = half of a reference BCOP kernel, version {__version__}*claims: none*"
        ]
    )
    from_option = run_suite(f"{ZOO}:bcop_scaled", "test_orthogonality.py", "--collect-only")
    from_option.stdout.fnmatch_lines(
        [f"gnpcheck target: {ZOO}:bcop_scaled, version {__version__}*claims: gnp, orthogonal*"]
    )


def test_default_target_is_the_torch_layer_and_header_names_profile(run_suite: RunSuite) -> None:
    result = run_suite(None, "test_orthogonality.py", "--collect-only")
    result.stdout.fnmatch_lines(
        [
            "gnpcheck target: gnpcheck.nn.kernel_targets:bcop_float64 = gnpcheck.nn BCOP layer "
            f"(float64), version {__version__}*",
            "gnpcheck sizes (profile 'ci'): channels <= 4, kernel size <= 3, spatial size <= 6",
        ]
    )


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("no_such_module_gnp:factory", "module 'no_such_module_gnp' could not be imported"),
        (f"{ZOO}:no_such_factory", f"'{ZOO}' has no attribute 'no_such_factory'"),
        (f"{ZOO}", "it must have the form 'package.module:factory'"),
        (f"{ZOO}:PERTURBATION", "is a float, but it must be a KernelTarget or a callable"),
    ],
    ids=["missing-module", "missing-attribute", "no-colon", "not-callable"],
)
def test_bad_target_is_a_usage_error(run_suite: RunSuite, spec: str, message: str) -> None:
    result = run_suite(spec, "test_orthogonality.py")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert message in result.stderr.str(), result.stderr.str()
