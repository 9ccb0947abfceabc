"""The pytest plugin: one item per claim, readable failures, usage errors, skips with reasons."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

# Every run is a subprocess: torch (a C extension with global registries) cannot be imported
# again into the interpreter that pytester's in-process runs would reuse. No run names the
# plugin: the pytest11 entry point of the installed package must load it.


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(test_own="def test_own():\n    assert True\n")
    return pytester


def test_without_an_input_shape_the_plugin_adds_nothing(project: pytest.Pytester) -> None:
    result = project.runpytest_subprocess()
    result.assert_outcomes(passed=1)
    assert "gnpcheck audit" not in result.stdout.str()


def test_a_good_target_passes_every_claim(project: pytest.Pytester) -> None:
    result = project.runpytest_subprocess(
        "--gnp-target=gnpcheck.zoo.good:OrthogonalConv2d", "--gnp-input-shape=4,8,8", "-v"
    )
    result.assert_outcomes(passed=10)
    result.stdout.fnmatch_lines(
        [
            "gnpcheck audit: gnpcheck.zoo.good:OrthogonalConv2d on input 4,8,8 (float64, seed 0; "
            "claims: lipschitz, orthogonal, gnp, *)",
            "*gnpcheck-audit?lipschitz? PASSED*",
            "*gnpcheck-audit?input_size_independent? PASSED*",
        ]
    )


def test_a_broken_target_fails_with_the_figure_and_a_saved_counterexample(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GNPCHECK_TARGET", "gnpcheck.zoo.broken:ReshapedNormConv2d")
    monkeypatch.setenv("GNPCHECK_INPUT_SHAPE", "4,8,8")
    result = project.runpytest_subprocess("--gnp-claims=lipschitz,train_eval_consistent")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*gnpcheck.zoo.broken:ReshapedNormConv2d: lipschitz violated: sigma_max=1.48277, "
            "but should be <= 1 + 5.68e-13 (method: circular convolution*",
            "counterexample saved to *gnpcheck-audit*lipschitz.pt; replay it with *",
        ]
    )
    assert "Traceback" not in result.stdout.str()


def test_claims_that_do_not_apply_are_skipped_with_the_reason(project: pytest.Pytester) -> None:
    result = project.runpytest_subprocess(
        "--gnp-target=torch.nn:Identity", "--gnp-input-shape=4,8,8", "-rs"
    )
    result.assert_outcomes(passed=4, skipped=4)
    result.stdout.fnmatch_lines(
        ["*parameter_coverage: not applicable (the target has no trainable parameters)*"]
    )


def test_an_input_shape_without_a_target_is_a_usage_error(project: pytest.Pytester) -> None:
    result = project.runpytest_subprocess("--gnp-input-shape=4,8,8")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: gnpcheck: --gnp-input-shape='4,8,8' needs a target: pass "
            "--gnp-target=MODULE:FACTORY or set GNPCHECK_TARGET"
        ]
    )
