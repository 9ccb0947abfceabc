"""Target selection: one place, a clear error for each way a target can be wrong."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from gnpcheck import __version__
from gnpcheck.errors import InvalidArgumentError, InvalidTypeError
from gnpcheck.nn.kernel_targets import bcop_float64
from gnpcheck.targets import (
    CONVENTION,
    DEFAULT_TARGET,
    GNP,
    ORTHOGONAL,
    TARGET_ENV,
    KernelTarget,
    load_target,
    resolve_target,
)
from gnpcheck.zoo_kernels import reference_bcop, reference_bcop_kernel


def identity_factory(
    *, channels: int, kernel_size: int, spatial_ndim: int, seed: int
) -> NDArray[np.float64]:
    """A third-party-style factory: the identity map, all taps but the centre zero."""
    kernel = np.zeros((kernel_size,) * spatial_ndim + (channels, channels))
    kernel[((kernel_size - 1) // 2,) * spatial_ndim] = np.eye(channels)
    return kernel


def _returning(value: object) -> KernelTarget:
    def factory(**_: Any) -> object:
        return value

    return KernelTarget(name="fixed", version="0", factory=factory)


def test_default_is_the_torch_layer_and_the_reference_is_a_target(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(TARGET_ENV, raising=False)
    assert resolve_target(None) == (DEFAULT_TARGET, bcop_float64)
    assert resolve_target("gnpcheck.zoo_kernels:reference_bcop")[1] is reference_bcop
    assert reference_bcop.claims == {ORTHOGONAL, GNP, CONVENTION}
    assert reference_bcop.version == __version__


def test_option_wins_over_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TARGET_ENV, "gnpcheck.zoo_kernels:half_lipschitz")
    assert resolve_target(None)[1].name == "half of a reference BCOP kernel"
    spec, target = resolve_target("gnpcheck.zoo_kernels:random_kernel")
    assert (spec, target.name) == ("gnpcheck.zoo_kernels:random_kernel",) * 2


def test_plain_factory_gets_default_claims_and_its_package_version() -> None:
    spec = f"{__name__}:identity_factory"
    target = load_target(spec)
    assert (target.name, target.claims, target.dtype) == (
        spec,
        frozenset({ORTHOGONAL, GNP}),
        "float64",
    )
    assert target.version == "unknown"  # the test package has no version
    kernel = target.kernel(channels=2, kernel_size=3, spatial_ndim=2, seed=0)
    assert kernel.shape == (3, 3, 2, 2)
    assert kernel[1, 1, 0, 0] == 1.0
    assert load_target("gnpcheck.zoo_kernels:random_kernel").version == __version__


def test_factories_are_deterministic_in_the_seed() -> None:
    first, again, other = (
        reference_bcop_kernel(channels=3, kernel_size=3, spatial_ndim=2, seed=seed)
        for seed in (5, 5, 6)
    )
    assert np.array_equal(first, again)
    assert not np.allclose(first, other)


@pytest.mark.parametrize(
    ("value", "error", "message"),
    [
        (
            np.zeros((2, 2, 3, 3)),
            InvalidArgumentError,
            "returned shape (2, 2, 3, 3), but it must be (3, 3, 2, 2): taps first (K1, K2, n_out, n_in)",
        ),
        (np.zeros((3, 3, 2, 2), dtype=complex), InvalidTypeError, "returned dtype complex128"),
        (np.full((3, 3, 2, 2), np.nan), InvalidArgumentError, "returned NaN or inf"),
        ("kernel", InvalidTypeError, "returned dtype <U6"),
    ],
    ids=["torch-layout", "complex", "nan", "string"],
)
def test_bad_kernel_from_the_factory_names_the_call(
    value: object, error: type[Exception], message: str
) -> None:
    with pytest.raises(error) as caught:
        _returning(value).kernel(channels=2, kernel_size=3, spatial_ndim=2, seed=7)
    text = str(caught.value)
    assert message in text
    assert "factory(channels=2, kernel_size=3, spatial_ndim=2, seed=7) of target 'fixed'" in text


def test_unsupported_dimension_is_rejected_before_calling() -> None:
    target = KernelTarget(
        name="1-D only", version="0", factory=identity_factory, spatial_ndims=(1,)
    )
    with pytest.raises(
        InvalidArgumentError, match=r"spatial_ndim=2, but target '1-D only' supports \(1,\)"
    ):
        target.kernel(channels=2, kernel_size=3, spatial_ndim=2, seed=0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"claims": frozenset({"lipschitz"})}, "each claim must be one of"),
        ({"claims": frozenset({CONVENTION})}, "convolve=None: there is no operator to check"),
        (
            {"spatial_ndims": (3,)},
            "spatial_ndims=(3,), but it must be a non-empty subset of (1, 2)",
        ),
        ({"spatial_ndims": ()}, "spatial_ndims=(), but it must be a non-empty subset of (1, 2)"),
    ],
    ids=["unknown-claim", "convention-without-operator", "3-d", "no-dimension"],
)
def test_inconsistent_target_is_rejected(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        KernelTarget(name="t", version="0", factory=identity_factory, **kwargs)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("spec", "error", "message"),
    [
        (
            "gnpcheck.no_such_module:f",
            InvalidArgumentError,
            "--gnp-target='gnpcheck.no_such_module:f', but module 'gnpcheck.no_such_module' could not be imported",
        ),
        (
            "gnpcheck.zoo_kernels:reference_bcop.nothing",
            InvalidArgumentError,
            "'gnpcheck.zoo_kernels.reference_bcop' has no attribute 'nothing'",
        ),
        (":factory", InvalidArgumentError, "it must have the form 'package.module:factory'"),
        (
            "gnpcheck.zoo_kernels:",
            InvalidArgumentError,
            "it must have the form 'package.module:factory'",
        ),
        (
            "gnpcheck.zoo_kernels:__all__",
            InvalidTypeError,
            "is a list, but it must be a KernelTarget",
        ),
    ],
    ids=["missing-module", "missing-nested-attribute", "no-module", "no-attribute", "not-callable"],
)
def test_bad_spec_names_source_and_reason(spec: str, error: type[Exception], message: str) -> None:
    with pytest.raises(error) as caught:
        load_target(spec, "--gnp-target")
    assert message in str(caught.value)
