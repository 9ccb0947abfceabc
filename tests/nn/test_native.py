"""The native stages (gnpcheck/nn/native.py) compute what the PyTorch operations compute, step
aside wherever they cannot run, refuse tensors they cannot read safely, and say why they are
not in use when they are not."""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from gnpcheck.errors import InvalidArgumentError
from gnpcheck.nn import BCOPConv1d, BCOPConv2d, native
from gnpcheck.nn.kernel import bcop_kernel, native_stages, stages_backward, stages_forward
from gnpcheck.nn.native import NativeLibrary
from gnpcheck.nn.orthogonalize import (
    orthonormal_qr_gradient,
    positive_qr,
    projector_of,
    projector_qr,
    projector_qr_gradient,
)
from gnpcheck.nn.qr_kernel import _build, qr_bcop_kernel

TOLERANCE = {torch.float64: 1e-13, torch.float32: 1e-6}


def _compiler_available() -> bool:
    compiler = (sysconfig.get_config_var("CC") or "cc").split()[0]
    return shutil.which(compiler) is not None


@pytest.fixture
def stages_library() -> NativeLibrary:
    library = native.library()
    if library is None:
        pytest.skip(f"the native stages are not in use: {native.status()}")
    return library


#: The library's routines: a QR layer's whole build and its backward, the stages alone and
#: the QR gradients alone (a Björck layer's stages; orthogonalize's QR maps).
ROUTINES = (
    "kernel",
    "kernel_backward",
    "forward",
    "backward",
    "orthonormal_qr_gradient",
    "projector_qr_gradient",
    "circular_pad",
)
#: What a training step of a layer calls, by orthogonalizer.
STEP_CALLS = {"qr": ["kernel", "kernel_backward"], "bjorck": ["forward", "backward"]}


@pytest.fixture
def native_calls(monkeypatch: pytest.MonkeyPatch, stages_library: NativeLibrary) -> list[str]:
    """The names of the library's routines called during a test, in order."""
    calls: list[str] = []

    def counted(name: str) -> Any:
        routine = getattr(NativeLibrary, name)

        def call(self: NativeLibrary, *args: Any) -> Any:
            calls.append(name)
            return routine(self, *args)

        return call

    for name in ROUTINES:
        monkeypatch.setattr(NativeLibrary, name, counted(name))
    return calls


def _positive(q: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``Q`` and ``T`` of a QR with the signs that make ``diag(T)`` positive: the projectors'
    QR may take either (Householder's or Cholesky QR's), which cancel in ``Q Q^T``."""
    signs = torch.where(torch.diagonal(t, dim1=-2, dim2=-1) < 0, -1.0, 1.0).to(t.dtype)
    return q * signs.unsqueeze(-2), t * signs.unsqueeze(-1)


def _scaled_error(got: torch.Tensor, want: torch.Tensor) -> float:
    got, want = got.detach(), want.detach()
    return float((got - want).abs().max()) / max(float(want.abs().max()), 1.0)


def test_the_library_is_built_and_passes_its_self_test() -> None:
    if os.environ.get(native.DISABLE_VARIABLE) == "0":
        pytest.skip(f"{native.DISABLE_VARIABLE}=0 in this environment")
    if not _compiler_available():
        pytest.skip("no C compiler: the install could not build the native stages")
    assert native.library() is not None, native.status()
    assert "self-test passed" in native.status()


def _factors(
    spatial_ndim: int, k: int, rows: int, n: int, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(100 * spatial_ndim + 10 * k + rows)
    h = torch.randn(rows, n, dtype=dtype, generator=generator)
    projectors = torch.randn(spatial_ndim * (k - 1), n, n, dtype=dtype, generator=generator)
    return h, projectors


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize(("rows", "n"), [(5, 5), (3, 5)])
@pytest.mark.parametrize(("spatial_ndim", "k"), [(1, 2), (1, 3), (1, 5), (2, 2), (2, 3), (2, 5)])
def test_native_stages_equal_the_pytorch_operations(
    stages_library: NativeLibrary,
    monkeypatch: pytest.MonkeyPatch,
    spatial_ndim: int,
    k: int,
    rows: int,
    n: int,
    dtype: torch.dtype,
) -> None:
    h, projectors = _factors(spatial_ndim, k, rows, n, dtype)
    kernel, inputs = stages_forward(h, projectors, spatial_ndim)
    grad = torch.randn(kernel.shape, dtype=dtype, generator=torch.Generator().manual_seed(1))
    grad_h, grad_projectors = stages_backward(projectors, inputs, grad, spatial_ndim)
    monkeypatch.setattr(native, "library", lambda: None)
    expected_kernel, expected_inputs = stages_forward(h, projectors, spatial_ndim)
    expected_h, expected_projectors = stages_backward(
        projectors, expected_inputs, grad, spatial_ndim
    )
    assert kernel.shape == expected_kernel.shape
    assert [x.shape for x in inputs] == [x.shape for x in expected_inputs]
    pairs = [
        (kernel, expected_kernel),
        (grad_h, expected_h),
        (grad_projectors, expected_projectors),
    ]
    pairs += list(zip(inputs, expected_inputs, strict=True))
    for got, want in pairs:
        assert _scaled_error(got, want) <= TOLERANCE[dtype]


@pytest.mark.parametrize("orthogonalizer", ["qr", "bjorck"])
@pytest.mark.parametrize(
    ("cls", "in_channels", "out_channels", "k", "stride"),
    [(BCOPConv2d, 4, 4, 3, 1), (BCOPConv2d, 3, 5, 4, 2), (BCOPConv1d, 6, 4, 3, 1)],
)
def test_a_layer_computes_the_same_with_and_without_the_native_stages(
    native_calls: list[str],
    monkeypatch: pytest.MonkeyPatch,
    cls: type[BCOPConv2d],
    in_channels: int,
    out_channels: int,
    k: int,
    stride: int,
    orthogonalizer: str,
) -> None:
    generator = torch.Generator().manual_seed(3)
    layer = cls(
        in_channels,
        out_channels,
        k,
        stride=stride,
        orthogonalizer=orthogonalizer,  # type: ignore[arg-type]
        dtype=torch.float64,
        generator=generator,
    )
    shape = (2, in_channels) + (8,) * cls.spatial_ndim
    x = torch.randn(shape, dtype=torch.float64, generator=generator, requires_grad=True)

    def run() -> list[torch.Tensor]:
        output = layer(x)
        weights = torch.randn(output.shape, dtype=torch.float64, generator=generator)
        return [output, *torch.autograd.grad((output * weights).sum(), [x, *layer.parameters()])]

    generator.manual_seed(4)
    with_native = run()
    expected_calls = STEP_CALLS[orthogonalizer]
    assert native_calls == expected_calls  # Björck's iterations are differentiated by autograd
    monkeypatch.setattr(native, "library", lambda: None)
    generator.manual_seed(4)
    without = run()
    assert native_calls == expected_calls  # no further call
    for got, want in zip(with_native, without, strict=True):
        assert _scaled_error(got, want) <= 1e-12


def test_the_native_backward_passes_gradcheck(native_calls: list[str]) -> None:
    """Finite differences of the native forward against the native backward (float64)."""
    h, projectors = _factors(2, 3, 3, 4, torch.float64)
    assert torch.autograd.gradcheck(
        lambda a, b: bcop_kernel(a, b, 2),
        (h.requires_grad_(), projectors.requires_grad_()),
        check_backward_ad=True,
    )
    assert "forward" in native_calls
    assert "backward" in native_calls


def _second_derivative(h: torch.Tensor, projectors: torch.Tensor) -> torch.Tensor:
    h, projectors = h.detach().requires_grad_(), projectors.detach().requires_grad_()
    kernel = bcop_kernel(h, projectors, 2)
    (grad_h,) = torch.autograd.grad(kernel.square().sum(), h, create_graph=True)
    (second,) = torch.autograd.grad(grad_h.sum(), projectors)
    return second


def test_second_derivatives_and_transforms_use_pytorch_operations(
    native_calls: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A backward that is itself differentiated recomputes in PyTorch (a first-order backward
    inside a second derivative may be native); batched tensors never reach the library, and
    what ``torch.func.grad`` computes is the same with it or without."""
    h, projectors = _factors(2, 3, 4, 4, torch.float64)
    kernel = bcop_kernel(h.requires_grad_(), projectors, 2)
    torch.autograd.grad(kernel.square().sum(), h, create_graph=True)
    assert native_calls == ["forward"]  # the differentiated backward recomputes in PyTorch
    second = _second_derivative(h, projectors)
    assert native_calls == ["forward", "forward", "backward"]  # first-order backward: native
    with monkeypatch.context() as patch:
        patch.setattr(native, "library", lambda: None)
        assert _scaled_error(second, _second_derivative(h, projectors)) <= 1e-12
    del native_calls[:]
    batch = torch.stack([projectors, projectors.flip(0)])
    torch.func.vmap(lambda p: bcop_kernel(h.detach(), p, 2))(batch)
    assert native_calls == []  # batched tensors: PyTorch operations

    def loss(a: torch.Tensor) -> torch.Tensor:
        return bcop_kernel(a, projectors, 2).square().sum()

    def transformed() -> torch.Tensor:
        gradient: torch.Tensor = torch.func.grad(loss)(h.detach())
        return gradient

    gradient = transformed()  # its forward reaches the library with plain tensors
    with monkeypatch.context() as patch:
        patch.setattr(native, "library", lambda: None)
        assert _scaled_error(gradient, transformed()) <= 1e-12


def test_tensors_the_library_cannot_read_take_the_pytorch_path(native_calls: list[str]) -> None:
    h, projectors = _factors(2, 3, 4, 4, torch.float64)
    kernel = stages_forward(h, projectors.transpose(1, 2), 2)[0]  # not contiguous
    assert native_calls == []
    expected = stages_forward(h, projectors.transpose(1, 2).contiguous(), 2)[0]
    assert native_calls == ["forward"]
    assert _scaled_error(kernel, expected) <= TOLERANCE[torch.float64]
    stages_forward(h.to(torch.bfloat16), projectors.to(torch.bfloat16), 2)
    assert native_calls == ["forward"]


def test_the_library_refuses_what_it_cannot_read_safely(stages_library: NativeLibrary) -> None:
    h, projectors = _factors(2, 3, 4, 4, torch.float64)
    stages = native_stages(2, 2)
    with pytest.raises(InvalidArgumentError, match="use each of the 3 projectors once"):
        stages_library.forward(h, projectors[:3], stages)
    with pytest.raises(InvalidArgumentError, match="one \\(4, 4\\) projector each"):
        stages_library.forward(h, projectors[:, :3].contiguous(), stages)
    with pytest.raises(InvalidArgumentError, match="contiguous CPU tensors of one dtype"):
        stages_library.forward(h, projectors.float(), stages)
    kernel, inputs = stages_library.forward(h, projectors, stages)
    with pytest.raises(InvalidArgumentError, match="these stages need"):
        stages_library.backward(projectors, inputs, kernel[:2].contiguous(), stages)
    with pytest.raises(InvalidArgumentError, match="must be \\(o, n\\)"):
        stages_library.forward(h[None], projectors, stages)
    with pytest.raises(InvalidArgumentError, match="\\(index, 0 or 1\\) pairs"):
        stages_library.forward(h, projectors, [(0, 2)])


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("shape", [(6, 6), (6, 3), (4, 7, 3), (2, 5, 1)])
def test_native_qr_gradients_equal_the_pytorch_operations(
    native_calls: list[str],
    monkeypatch: pytest.MonkeyPatch,
    shape: tuple[int, ...],
    dtype: torch.dtype,
) -> None:
    generator = torch.Generator().manual_seed(sum(shape))
    q, t = positive_qr(torch.randn(shape, dtype=torch.float64, generator=generator))
    q, t = q.to(dtype), t.to(dtype)  # column-major, as the QR returns them
    n = shape[-2]
    grad_q = torch.randn(q.shape, dtype=dtype, generator=generator)
    grad_p = torch.randn((*shape[:-1], n), dtype=dtype, generator=generator)
    got = [orthonormal_qr_gradient(q, t, grad_q), projector_qr_gradient(q, t, grad_p)]
    assert native_calls == ["orthonormal_qr_gradient", "projector_qr_gradient"]
    monkeypatch.setattr(native, "library", lambda: None)
    expected = [orthonormal_qr_gradient(q, t, grad_q), projector_qr_gradient(q, t, grad_p)]
    for value, want in zip(got, expected, strict=True):
        assert value.shape == want.shape
        assert _scaled_error(value, want) <= 100 * TOLERANCE[dtype]  # a triangular solve


@pytest.fixture(params=[(True, 2), (True, 1), (False, 2)], ids=["own-2", "own-1", "blas-2"])
def products_and_threads(
    request: pytest.FixtureRequest, stages_library: NativeLibrary
) -> Iterator[NativeLibrary]:
    """The library with its products, solves and QR on its AVX-512 kernel or on the BLAS and
    LAPACK, and one or two threads (both restored afterwards)."""
    own, threads = request.param
    if own and not stages_library.use_own_products(True):
        pytest.skip("this processor has no AVX-512F: the library's kernel is not in use")
    stages_library.use_own_products(own)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield stages_library
    finally:
        torch.set_num_threads(previous)
        stages_library.use_own_products(True)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize(("o", "n"), [(130, 130), (25, 100), (64, 64)])
def test_large_products_on_either_kernel_and_any_threads_equal_pytorch(
    products_and_threads: NativeLibrary, o: int, n: int, dtype: torch.dtype
) -> None:
    """Sizes that fill the kernel's 12 x 32 tiles, cross their edges and are shared by
    threads: stages, the whole kernel build and QR gradients against the PyTorch operations."""
    library = products_and_threads
    generator = torch.Generator().manual_seed(o + n)
    stages = native_stages(2, 2)
    h = torch.linalg.qr(torch.randn(n, n, dtype=torch.float64, generator=generator))[0][:o]
    r_q = torch.linalg.qr(torch.randn(4, n, n // 2, dtype=torch.float64, generator=generator))[0]
    h, projectors = h.to(dtype).contiguous(), projector_of(r_q, dtype)
    kernel, inputs = library.forward(h, projectors, stages)
    grad = torch.randn(kernel.shape, dtype=dtype, generator=generator)
    grad_h, grad_p = library.backward(projectors, inputs, grad, stages)
    with native.disabled():
        want_kernel, want_inputs = stages_forward(h, projectors, 2)
        want_h, want_p = stages_backward(projectors, want_inputs, grad, 2)
    for got, want in ((kernel, want_kernel), (grad_h, want_h), (grad_p, want_p)):
        assert _scaled_error(got, want) <= 10 * TOLERANCE[dtype]
    r_tilde = torch.randn(4, n, n // 2, dtype=dtype, generator=generator)
    h_tilde = torch.randn(n, n, dtype=dtype, generator=generator)
    kernel, *buffers = library.kernel(h_tilde, r_tilde, stages, o, n - 3, dtype)
    built = [kernel, *native.kernel_state(n, n // 2, stages, o, n - 3).unpack(*buffers)]
    with native.disabled():
        want_built = list(_build(h_tilde, r_tilde, (2, o, n - 3), dtype))
    built[3:5] = _positive(*built[3:5])
    want_built[3:5] = _positive(*want_built[3:5])
    for got, want in zip(built, want_built, strict=True):
        assert got.shape == want.shape
        assert _scaled_error(got, want) <= 10 * TOLERANCE[got.dtype]
    factors = built[1:5]
    h_q, h_t, r_q, r_t = (f.to(dtype) for f in factors[:4])
    grad_q = torch.randn(h_q.shape, dtype=dtype, generator=generator)
    grad_p = torch.randn(4, n, n, dtype=dtype, generator=generator)
    got = [library.orthonormal_qr_gradient(h_q, h_t, grad_q)]
    got.append(library.projector_qr_gradient(r_q, r_t, grad_p))
    with native.disabled():
        want = [orthonormal_qr_gradient(h_q, h_t, grad_q), projector_qr_gradient(r_q, r_t, grad_p)]
    for value, expected in zip(got, want, strict=True):
        assert _scaled_error(value, expected) <= 1000 * TOLERANCE[dtype]  # triangular solves


@pytest.mark.parametrize("build_dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize(
    ("spatial_ndim", "k", "n", "out_channels", "in_channels"),
    [(2, 3, 6, 6, 6), (2, 4, 6, 4, 3), (1, 3, 5, 5, 2), (1, 2, 2, 1, 2), (2, 2, 70, 70, 50)],
)
def test_the_native_kernel_and_its_backward_equal_the_pytorch_build(
    native_calls: list[str],
    spatial_ndim: int,
    k: int,
    n: int,
    out_channels: int,
    in_channels: int,
    dtype: torch.dtype,
    build_dtype: torch.dtype,
) -> None:
    generator = torch.Generator().manual_seed(n + k)
    count = spatial_ndim * (k - 1)
    h_tilde = torch.randn(n, n, dtype=dtype, generator=generator, requires_grad=True)
    r_tilde = torch.randn(count, n, max(n // 2, 1), dtype=dtype, generator=generator)
    r_tilde.requires_grad_()
    arguments = (h_tilde, r_tilde, spatial_ndim, out_channels, in_channels, build_dtype)
    kernel = qr_bcop_kernel(*arguments)
    grad = torch.randn(kernel.shape, dtype=dtype, generator=generator)
    grads = torch.autograd.grad(kernel, (h_tilde, r_tilde), grad)
    assert native_calls == STEP_CALLS["qr"]
    with native.disabled():
        want_kernel = qr_bcop_kernel(*arguments)
        want_grads = torch.autograd.grad(want_kernel, (h_tilde, r_tilde), grad)
    tolerance = max(TOLERANCE[dtype], TOLERANCE[build_dtype])
    for got, want in zip((kernel, *grads), (want_kernel, *want_grads), strict=True):
        assert got.dtype == want.dtype == dtype
        assert got.shape == want.shape
        assert got.is_contiguous()
        assert _scaled_error(got, want) <= 100 * tolerance  # triangular solves in the gradients
    (only_h,) = torch.autograd.grad(qr_bcop_kernel(*arguments), h_tilde, grad)
    assert _scaled_error(only_h, want_grads[0]) <= 100 * tolerance  # one gradient asked for


def test_the_native_kernel_refuses_what_does_not_fit(stages_library: NativeLibrary) -> None:
    h_tilde, r_tilde = torch.randn(4, 4), torch.randn(2, 4, 2)
    stages = native_stages(1, 2)
    with pytest.raises(InvalidArgumentError, match="1 <= m <= n"):
        stages_library.kernel(h_tilde, r_tilde[..., :0].contiguous(), stages, 4, 4, torch.float32)
    with pytest.raises(InvalidArgumentError, match="at most n each"):
        stages_library.kernel(h_tilde, r_tilde, stages, 5, 4, torch.float32)
    with pytest.raises(InvalidArgumentError, match="use each of the 2 projectors once"):
        stages_library.kernel(h_tilde, r_tilde, ((0, 1), (0, 1)), 4, 4, torch.float32)
    kernel, factors, built = stages_library.kernel(h_tilde, r_tilde, stages, 4, 4, torch.float32)
    state = native.kernel_state(4, 2, stages, 4, 4)
    both = (True, True)
    with pytest.raises(InvalidArgumentError, match="do not fit"):
        stages_library.kernel_backward(kernel[:, :, :2].contiguous(), factors, built, state, both)
    with pytest.raises(InvalidArgumentError, match="do not fit"):
        stages_library.kernel_backward(kernel, factors, built[:-1], state, both)
    with pytest.raises(InvalidArgumentError, match="do not fit"):
        stages_library.kernel_backward(kernel, factors.float(), built, state, both)


@pytest.mark.parametrize("condition", [1.0, 1e4, 1e7, 1e10])
def test_the_factors_are_a_qr_to_rounding_at_any_condition(
    products_and_threads: NativeLibrary, condition: float
) -> None:
    """Cholesky QR where it applies (the library's kernel; moderate condition numbers),
    Householder where it does not: either way an orthonormal Q to rounding, Q T = A, T upper
    triangular, H's with a positive diagonal, the QR PyTorch computes (to the condition
    number times rounding; the projectors' up to signs), projectors Q Q^T."""
    generator = torch.Generator().manual_seed(int(math.log10(condition)))
    n = 40
    u = torch.linalg.qr(torch.randn(n, n, dtype=torch.float64, generator=generator))[0]
    v = torch.linalg.qr(torch.randn(n, n, dtype=torch.float64, generator=generator))[0]
    h_tilde = u @ torch.diag(torch.logspace(0, -math.log10(condition), n, dtype=torch.float64))
    h_tilde = h_tilde @ v.mT
    r_tilde = torch.stack([h_tilde[:, : n // 2], h_tilde[:, n // 2 :]]).contiguous()
    stages = native_stages(1, 2)
    _, *buffers = products_and_threads.kernel(h_tilde, r_tilde, stages, n, n, torch.float64)
    state = native.kernel_state(n, n // 2, stages, n, n)
    h_q, h_t, r_q, r_t, projectors = state.unpack(*buffers)[:5]
    for q, t, a in ((h_q, h_t, h_tilde), (r_q, r_t, r_tilde)):
        eye = torch.eye(q.shape[-1], dtype=torch.float64)
        assert float((q.mT @ q - eye).abs().max()) <= 1e-14
        assert _scaled_error(q @ t, a) <= 1e-15
        assert torch.equal(t, t.triu())
    assert bool((torch.diagonal(h_t) > 0).all())
    assert _scaled_error(h_q, positive_qr(h_tilde)[0]) <= 1e-13 * condition
    positive_r = _positive(*projector_qr(r_tilde))[0]
    assert _scaled_error(_positive(r_q, r_t)[0], positive_r) <= 1e-13 * condition
    assert _scaled_error(projectors, r_q @ r_q.mT) <= 1e-15


def test_the_qr_gradients_refuse_shapes_that_do_not_fit(stages_library: NativeLibrary) -> None:
    q, t = positive_qr(torch.randn(5, 3, dtype=torch.float64))
    q, t = q.contiguous(), t.contiguous()
    with pytest.raises(InvalidArgumentError, match=r"must be \(\.\.\., n, k\) with n >= k"):
        stages_library.orthonormal_qr_gradient(q, t[:2].contiguous(), q)
    with pytest.raises(InvalidArgumentError, match="and \\(5, 5\\)"):
        stages_library.projector_qr_gradient(q, t, q)
    with pytest.raises(InvalidArgumentError, match="contiguous CPU tensors of one dtype"):
        stages_library.orthonormal_qr_gradient(q, t.mT, q)


def test_the_self_test_catches_a_wrong_result(stages_library: NativeLibrary) -> None:
    class Wrong(NativeLibrary):
        def __init__(self) -> None:  # the real library's calls, then one tap off
            self.__dict__.update(stages_library.__dict__)

        def forward(self, *args: Any) -> Any:
            kernel, inputs = super().forward(*args)
            kernel[-1, -1, 0, 0] += 1e-6
            return kernel, inputs

    assert native._self_test(stages_library) is None
    assert native._self_test(Wrong()) == ("the kernel of 4 stages (torch.float64) is off by 1e-06")


def test_status_names_a_library_that_cannot_be_loaded(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    broken = tmp_path / "_bcop_native.so"
    broken.write_text("not a shared library")
    monkeypatch.setattr(native, "_library_file", lambda: broken)
    native._forget()
    try:
        assert native.library() is None
        assert native.status().startswith(f"{broken} could not be loaded")
    finally:
        monkeypatch.undo()
        native._forget()


def test_the_environment_variable_disables_the_library(tmp_path: Path) -> None:
    script = "from gnpcheck.nn import native; print(native.library() is None, native.status())"
    environment = {**os.environ, native.DISABLE_VARIABLE: "0"}
    result = subprocess.run(
        [sys.executable, "-c", script],
        env=environment,
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,  # the installed gnpcheck, as in the test above
    )
    assert result.stdout.strip() == f"True disabled ({native.DISABLE_VARIABLE}=0)"


def test_inside_disabled_the_layers_run_pytorch_operations(native_calls: list[str]) -> None:
    layer = BCOPConv2d(4, 4, 3, generator=torch.Generator().manual_seed(0))
    x = torch.randn(2, 4, 8, 8)
    with native.disabled():
        layer(x).sum().backward()  # forward and backward inside the block
        assert native.usable(x) is None
    assert native_calls == []
    layer(x).sum().backward()
    assert native_calls == ["kernel", "circular_pad", "kernel_backward"]  # no gradient to x


def test_a_first_use_in_inference_mode_loads_the_library(
    stages_library: NativeLibrary, tmp_path: Path
) -> None:
    """In a new process (run from a temporary directory, so that it imports the installed
    gnpcheck and not a source checkout's), the first build comes inside inference mode."""
    script = (
        "import torch\n"
        "from gnpcheck.nn import BCOPConv2d, native\n"
        "layer = BCOPConv2d(4, 4, 3).eval()\n"
        "with torch.inference_mode():\n"
        "    layer(torch.randn(2, 4, 8, 8))\n"
        "print(native.status())\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=tmp_path
    )
    assert "self-test passed" in result.stdout


def test_a_self_test_that_cannot_run_is_tried_again(
    stages_library: NativeLibrary, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(library: NativeLibrary) -> str | None:
        raise RuntimeError("a tensor mode of the caller's")

    native._forget()
    try:
        with monkeypatch.context() as patch:
            patch.setattr(native, "_self_test", interrupted)
            assert native.library() is None
            assert native.status() == (
                "its self-test could not run here (RuntimeError: a tensor mode of the caller's)"
            )
        assert native.library() is not None  # tried again, and loaded
    finally:
        native._forget()


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize(
    ("shape", "widths"),
    [
        ((128, 8, 8, 8), (1, 1, 1, 1)),
        ((2, 3, 5, 7), (2, 1, 0, 3)),
        ((1, 1, 3, 3), (3, 3, 3, 3)),
        ((4, 2, 9), (1, 2)),
        ((2, 2, 6), (0, 0)),
    ],
)
def test_the_native_circular_padding_equals_pytorch(
    stages_library: NativeLibrary,
    shape: tuple[int, ...],
    widths: tuple[int, ...],
    dtype: torch.dtype,
) -> None:
    x = torch.randn(shape, dtype=dtype, generator=torch.Generator().manual_seed(len(shape)))
    expected = torch.nn.functional.pad(x, widths, mode="circular")
    assert torch.equal(stages_library.circular_pad(x, widths), expected)  # a copy: exact


def test_the_native_circular_padding_refuses_what_does_not_fit(
    stages_library: NativeLibrary,
) -> None:
    x = torch.randn(2, 3, 4, 5)
    with pytest.raises(InvalidArgumentError, match="two widths per spatial axis"):
        stages_library.circular_pad(x, (1, 1))
    with pytest.raises(InvalidArgumentError, match="from 0 to the side it wraps"):
        stages_library.circular_pad(x, (6, 0, 0, 0))
    with pytest.raises(InvalidArgumentError, match="from 0 to the side it wraps"):
        stages_library.circular_pad(x, (0, 0, -1, 0))
    with pytest.raises(InvalidArgumentError, match="contiguous CPU tensors"):
        stages_library.circular_pad(x.transpose(2, 3), (1, 1, 1, 1))


def test_a_layer_pads_natively_only_when_no_gradient_flows_to_its_input(
    native_calls: list[str],
) -> None:
    layer = BCOPConv2d(3, 3, 3, generator=torch.Generator().manual_seed(0))
    x = torch.randn(2, 3, 6, 6)
    expected = layer(x)
    assert native_calls == ["kernel", "circular_pad"]
    with native.disabled():  # F.pad, and the kernel built by PyTorch operations
        torch.testing.assert_close(layer(x), expected, rtol=1e-6, atol=1e-6)
    layer(x.requires_grad_())
    assert native_calls == ["kernel", "circular_pad", "kernel"]  # the gather, differentiable
