r"""The target of the property suite: what produces the kernels the suite checks.

A target is chosen in exactly one place, :func:`resolve_target`, from (first that is set)
the pytest option ``--gnp-target=package.module:factory``, the environment variable
``GNPCHECK_TARGET``, or :data:`DEFAULT_TARGET` (gnpcheck's PyTorch BCOPConv1d/2d in float64;
``gnpcheck.zoo_kernels:reference_bcop`` is the NumPy reference).

``package.module:factory`` names either a :class:`KernelTarget` or a plain factory

.. code-block:: python

    def factory(*, channels: int, kernel_size: int, spatial_ndim: int, seed: int) -> ndarray:
        ...

that returns a real kernel **taps first**, shape ``(K, n, n)`` for ``spatial_ndim=1`` and
``(K, K, n, n)`` for ``spatial_ndim=2`` (``K = kernel_size``, ``n = channels``), the same
for the same arguments. A plain factory is taken to claim ``"orthogonal"`` and ``"gnp"``
in float64; expose a :class:`KernelTarget` to state other claims, a lower precision, the
supported dimensions, or the target's own way of applying a kernel (``convolve``).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from gnpcheck.errors import InvalidArgumentError, InvalidTypeError

__all__ = [
    "CLAIMS",
    "CONVENTION",
    "DEFAULT_TARGET",
    "GNP",
    "ORTHOGONAL",
    "TARGET_ENV",
    "Convolve",
    "KernelFactory",
    "KernelTarget",
    "load_target",
    "resolve_target",
]

#: Every singular value of the circular convolution of each kernel is 1.
ORTHOGONAL = "orthogonal"
#: The convolution preserves gradient norms: ``||J^T g|| = ||g||`` for every ``g``.
GNP = "gnp"
#: ``convolve`` applies a kernel as :func:`gnpcheck.reference.circular_conv` does
#: (cross-correlation, circular padding ``(K - 1) // 2`` before each axis).
CONVENTION = "convention"
#: The claims a target can make.
CLAIMS = frozenset({ORTHOGONAL, GNP, CONVENTION})

#: The environment variable that names the target.
TARGET_ENV = "GNPCHECK_TARGET"
#: The target used when neither the option nor the environment variable is set.
DEFAULT_TARGET = "gnpcheck.nn.kernel_targets:bcop_float64"


class KernelFactory(Protocol):
    """``factory(*, channels, kernel_size, spatial_ndim, seed)`` -> a taps-first kernel."""

    def __call__(
        self, *, channels: int, kernel_size: int, spatial_ndim: int, seed: int
    ) -> object: ...


#: ``convolve(kernel, x)``: the target's own operator, ``x`` of shape ``(B, n_in, *N)``.
Convolve = Callable[[NDArray[np.float64], NDArray[np.float64]], object]


@dataclass(frozen=True)
class KernelTarget:
    """A producer of kernels and the claims it makes about them.

    Attributes:
        name: what the suite reports, e.g. ``"gnpcheck reference BCOP (float64)"``.
        version: the version of the code under test.
        factory: see :class:`KernelFactory`.
        claims: a subset of :data:`CLAIMS`; the suite skips, with the reason, each property
            the target does not claim.
        dtype: the precision the kernels are computed in; tolerances scale with its epsilon.
        spatial_ndims: the kernel dimensions the factory supports, among ``(1, 2)``.
        convolve: the target's own operator, or ``None`` if it only produces kernels.
    """

    name: str
    version: str
    factory: KernelFactory = field(repr=False)
    claims: frozenset[str] = field(default=frozenset({ORTHOGONAL, GNP}))
    dtype: str = "float64"
    spatial_ndims: tuple[int, ...] = (1, 2)
    convolve: Convolve | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        unknown = set(self.claims) - CLAIMS
        if unknown:
            raise InvalidArgumentError(
                f"claims={sorted(self.claims)!r}, but each claim must be one of {sorted(CLAIMS)}"
            )
        if not self.spatial_ndims or not set(self.spatial_ndims) <= {1, 2}:
            raise InvalidArgumentError(
                f"spatial_ndims={self.spatial_ndims!r}, but it must be a non-empty subset of (1, 2)"
            )
        if CONVENTION in self.claims and self.convolve is None:
            raise InvalidArgumentError(
                f"claims include {CONVENTION!r}, but convolve=None: there is no operator to check"
            )

    def makes(self, claim: str) -> bool:
        """Whether the target claims ``claim``."""
        return claim in self.claims

    def kernel(
        self, *, channels: int, kernel_size: int, spatial_ndim: int, seed: int
    ) -> NDArray[np.float64]:
        """Call the factory and check what it returns; the kernel as float64, taps first.

        Raises:
            InvalidArgumentError: ``spatial_ndim`` not supported; the factory returned
                something of the wrong shape, a non-real dtype, or NaN/inf.
        """
        if spatial_ndim not in self.spatial_ndims:
            raise InvalidArgumentError(
                f"spatial_ndim={spatial_ndim}, but target {self.name!r} supports "
                f"{self.spatial_ndims}"
            )
        call = (
            f"factory(channels={channels}, kernel_size={kernel_size}, "
            f"spatial_ndim={spatial_ndim}, seed={seed}) of target {self.name!r}"
        )
        raw = self.factory(
            channels=channels, kernel_size=kernel_size, spatial_ndim=spatial_ndim, seed=seed
        )
        return _checked_kernel(raw, call, (kernel_size,) * spatial_ndim + (channels, channels))


def _checked_kernel(raw: object, call: str, expected: tuple[int, ...]) -> NDArray[np.float64]:
    try:
        array = np.asarray(raw)
    except (TypeError, ValueError) as error:
        raise InvalidTypeError(f"{call} returned {type(raw).__name__}: {error}") from None
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise InvalidTypeError(
            f"{call} returned dtype {array.dtype}, but a kernel must be a real array"
        )
    if array.shape != expected:
        layout = "(K, n_out, n_in)" if len(expected) == 3 else "(K1, K2, n_out, n_in)"
        raise InvalidArgumentError(
            f"{call} returned shape {array.shape}, but it must be {expected}: taps first {layout}"
        )
    result = np.asarray(array, dtype=np.float64)
    if not np.all(np.isfinite(result)):
        raise InvalidArgumentError(f"{call} returned NaN or inf, but every entry must be finite")
    return result


def _version_of(module_name: str) -> str:
    top = module_name.partition(".")[0]
    version = getattr(importlib.import_module(top), "__version__", None)
    if isinstance(version, str):
        return version
    try:
        return importlib.metadata.version(top)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def load_target(spec: str, source: str = "target") -> KernelTarget:
    """The :class:`KernelTarget` that ``spec`` (``"package.module:attribute"``) names.

    ``source`` names where ``spec`` came from, for messages (``"--gnp-target"``, ...).

    Raises:
        InvalidArgumentError: ``spec`` is malformed, the module cannot be imported, or it has
            no such attribute.
        InvalidTypeError: the attribute is neither a :class:`KernelTarget` nor callable.
    """
    module_name, colon, attribute = spec.strip().partition(":")
    if not colon or not module_name or not attribute:
        raise InvalidArgumentError(
            f"{source}={spec!r}, but it must have the form 'package.module:factory'"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise InvalidArgumentError(
            f"{source}={spec!r}, but module {module_name!r} could not be imported "
            f"({type(error).__name__}: {error})"
        ) from None
    value: Any = module
    owner = module_name
    for part in attribute.split("."):
        if not hasattr(value, part):
            raise InvalidArgumentError(
                f"{source}={spec!r}, but {owner!r} has no attribute {part!r}"
            )
        value = getattr(value, part)
        owner = f"{owner}.{part}"
    if isinstance(value, KernelTarget):
        return value
    if not callable(value):
        raise InvalidTypeError(
            f"{source}={spec!r} is a {type(value).__name__}, but it must be a KernelTarget or a "
            "callable factory(*, channels, kernel_size, spatial_ndim, seed)"
        )
    return KernelTarget(name=spec.strip(), version=_version_of(module_name), factory=value)


def resolve_target(option: str | None = None) -> tuple[str, KernelTarget]:
    """The suite's target and its spec: ``option``, else ``GNPCHECK_TARGET``, else the default.

    Raises:
        InvalidArgumentError, InvalidTypeError: see :func:`load_target`.
    """
    if option:
        return option, load_target(option, "--gnp-target")
    from_env = os.environ.get(TARGET_ENV, "").strip()
    if from_env:
        return from_env, load_target(from_env, TARGET_ENV)
    return DEFAULT_TARGET, load_target(DEFAULT_TARGET, "default target")
