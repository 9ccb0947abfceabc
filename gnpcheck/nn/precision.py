"""IEEE float32 matrix products for the kernels that promise float32 accuracy (docs/layers.rst,
Note [float32 products]).

PyTorch can run float32 matrix products in reduced precision: TF32 (a 10-bit mantissa) on
CUDA, TF32 or bfloat16 through oneDNN on CPUs that have them, when
``torch.set_float32_matmul_precision("high")`` or ``"medium"``,
``torch.backends.cuda.matmul.allow_tf32 = True`` or an ``fp32_precision`` setting asks for
it. A kernel built from such products is orthogonal only to about :math:`10^{-2}` (TF32's
rounding emulated on the CPU: 7e-3 to 1.3e-2 for BCOP at 16 to 64 channels; bfloat16 is
coarser still) instead of the :math:`10^{-6}` a float32 layer promises, and nothing in its
outputs would show it. The layers refuse to build one: the error names the
setting and the ways out.

Certificates need more: the logits they compare with a margin, and the measured bounds they
multiply, come from convolutions as well as matrix products, and cuDNN runs float32
convolutions in TF32 by default (``torch.backends.cudnn.conv.fp32_precision == "tf32"``),
which moved logits by up to 5.5e-4 relative on an H200. The certifying functions refuse
reduced-precision float32 products or convolutions on the model's device
(:func:`require_ieee_float32_arithmetic`); gnpcheck's command line asks for IEEE float32 for
its whole process (:func:`use_ieee_float32_arithmetic`). They refuse float16 and bfloat16
outright, as parameters or through autocast (:func:`require_certifiable_arithmetic`): in
them the Small and Large networks' logits were off by 1e-3 to 2e-2 of their largest
magnitude.
"""

from __future__ import annotations

from collections.abc import Collection

import torch
from torch import nn

from gnpcheck.errors import UnsupportedOperationError

__all__ = [
    "CERTIFIABLE_DTYPES",
    "float32_products_precision",
    "float32_settings",
    "parameter_dtypes",
    "require_certifiable_arithmetic",
    "require_ieee_float32_arithmetic",
    "require_ieee_float32_products",
    "use_ieee_float32_arithmetic",
]

#: The ``torch.backends`` groups whose ``fp32_precision`` governs float32 matrix products
#: (first) and convolutions on each device type.
_GROUPS = {
    "cuda": (("cuda", "matmul"), ("cudnn", "conv")),
    "cpu": (("mkldnn", "matmul"), ("mkldnn", "conv")),
}
_IEEE = ("none", "ieee")  # "none": no reduced precision asked at any level

#: The dtypes whose arithmetic a certificate can rest on (float32 only when IEEE).
CERTIFIABLE_DTYPES = (torch.float32, torch.float64)


def _setting(backend: str, operation: str) -> tuple[str, str]:
    """The name of ``torch.backends.<backend>.<operation>.fp32_precision`` and its value
    (PyTorch resolves inherited values in the getter)."""
    value = getattr(getattr(torch.backends, backend), operation).fp32_precision
    return f"torch.backends.{backend}.{operation}.fp32_precision", str(value)


def float32_settings(device_type: str) -> dict[str, str]:
    """Name and value of the settings of float32 matrix products and convolutions on
    ``device_type`` (none for a device type without them)."""
    return dict(_setting(*group) for group in _GROUPS.get(device_type, ()))


@torch.compiler.assume_constant_result  # type: ignore[untyped-decorator]
def float32_products_precision(device_type: str) -> str:
    """The ``fp32_precision`` PyTorch applies to float32 matrix products on ``device_type``:
    ``"none"`` or ``"ieee"`` (IEEE float32), ``"tf32"``, ``"bf16"``, ...; ``"none"`` for a
    device type without the setting. A constant to ``torch.compile``, which cannot trace
    the setting: a compiled layer checks it when it is compiled."""
    groups = _GROUPS.get(device_type)
    return "none" if groups is None else _setting(*groups[0])[1]


def require_ieee_float32_products(
    dtype: torch.dtype, device: torch.device, built: str, way_out: str
) -> None:
    """Refuse to build ``built`` (what the error calls it) from ``dtype`` products on
    ``device`` when they are float32 products that PyTorch's settings run in reduced
    precision; ``way_out`` names the layer's own alternative to changing the setting.

    Raises:
        UnsupportedOperationError: naming the setting, its value and the ways out.
    """
    if dtype != torch.float32:
        return
    precision = float32_products_precision(device.type)
    if precision in _IEEE:
        return
    raise UnsupportedOperationError(
        f"{_setting(*_GROUPS[device.type][0])[0]}={precision!r}, but "
        f"{built} is built from IEEE float32 matrix products (in {precision} it would be "
        "orthogonal only to about 1e-2 instead of 1e-6): set it to 'ieee', e.g. by "
        f"torch.set_float32_matmul_precision('highest'), or {way_out}"
    )


def _reduced_settings(device_type: str) -> list[str]:
    """``"name=value"`` of each setting that runs float32 products or convolutions on
    ``device_type`` in reduced precision."""
    settings = float32_settings(device_type).items()
    return [f"{name}={value!r}" for name, value in settings if value not in _IEEE]


def require_ieee_float32_arithmetic(
    dtype: torch.dtype, device: torch.device, computed: str
) -> None:
    """Refuse to compute ``computed`` (what the error calls it) from ``dtype`` products and
    convolutions on ``device`` when they are float32 ones that PyTorch's settings run in
    reduced precision.

    Raises:
        UnsupportedOperationError: naming each such setting, its value and the way out.
    """
    if dtype != torch.float32:
        return
    settings = _reduced_settings(device.type)
    if not settings:
        return
    raise UnsupportedOperationError(
        f"{', '.join(settings)}, but {computed} needs IEEE float32 products and convolutions "
        "(TF32 convolutions moved logits by up to 5e-4 relative on a GPU, enough to certify "
        "a margin that is not there): set each to 'ieee', e.g. by "
        "gnpcheck.nn.precision.use_ieee_float32_arithmetic(), or evaluate in float64"
    )


def parameter_dtypes(module: nn.Module) -> set[torch.dtype]:
    """The dtypes of ``module``'s floating-point parameters; ``{torch.float32}`` (the dtype
    its inputs would be made in) when it has none."""
    dtypes = {p.dtype for p in module.parameters() if p.is_floating_point()}
    return dtypes or {torch.float32}


def require_certifiable_arithmetic(
    dtypes: Collection[torch.dtype], device: torch.device, computed: str
) -> None:
    """Refuse to compute ``computed`` (what the error calls it) with a model whose floating
    parameters have ``dtypes``, on ``device``, unless its arithmetic is float64 or IEEE
    float32: no float16 or bfloat16 parameters, no autocast active on ``device``'s type, and
    for float32 the check of :func:`require_ieee_float32_arithmetic`.

    Raises:
        UnsupportedOperationError: naming the dtypes or the autocast, and the way out.
    """
    reduced = sorted(str(dtype) for dtype in set(dtypes) if dtype not in CERTIFIABLE_DTYPES)
    way_out = "evaluate a float32 or float64 copy, e.g. copy.deepcopy(model).double()"
    if reduced:
        raise UnsupportedOperationError(
            f"the model has {' and '.join(reduced)} parameters, but {computed} needs float32 or "
            "float64 arithmetic (in float16 and bfloat16 the logits of gnpcheck's Small and "
            f"Large networks were off by 1e-3 to 2e-2 of their largest magnitude): {way_out}"
        )
    if torch.is_autocast_enabled(device.type):
        raise UnsupportedOperationError(
            f"autocast to {torch.get_autocast_dtype(device.type)} is enabled on {device.type}, "
            f"but {computed} needs float32 or float64 arithmetic: leave the autocast block, "
            f"or {way_out}"
        )
    if torch.float32 in dtypes:
        require_ieee_float32_arithmetic(torch.float32, device, computed)


def use_ieee_float32_arithmetic() -> None:
    """Ask PyTorch for IEEE float32 matrix products (every backend) and cuDNN convolutions,
    for the rest of the process: ``torch.set_float32_matmul_precision("highest")`` and
    ``torch.backends.cudnn.allow_tf32 = False`` (PyTorch's legacy settings, which keep both
    of its APIs readable). oneDNN convolutions are IEEE unless a program asked otherwise."""
    torch.set_float32_matmul_precision("highest")
    torch.backends.cudnn.allow_tf32 = False
