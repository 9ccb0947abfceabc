r"""Singular values of a circular convolution from its per-frequency symbol.

By Sedghi, Gupta and Long ("The singular values of convolutional layers", ICLR 2019), the
circular convolution of :mod:`gnpcheck.reference.operator` maps the Fourier mode
:math:`v\, e^{2\pi i \langle f, t/N \rangle}` to :math:`\hat W(f)\, v\, e^{2\pi i \langle f, t/N\rangle}`,

.. math:: \hat W(f) = \sum_a W_a\, e^{2\pi i \langle a - c,\, f / N\rangle},

so its singular values are those of the ``n_out x n_in`` matrices :math:`\hat W(f)` over all
``prod(N)`` frequencies (docs, Note [spectrum]). The Gram symbol is a trigonometric
polynomial in the kernel's autocorrelation :math:`A_d = \sum_a W_a^T W_{a+d}`:

.. math:: \hat W(f)^H \hat W(f) = \sum_d A_d\, e^{2\pi i \langle d, f/N \rangle}.

:func:`circulant_spectrum` evaluates it at one frequency of each pair :math:`\{f, -f\}`
(a real kernel has :math:`\hat W(-f) = \overline{\hat W(f)}`, the same singular values) and
takes Hermitian eigenvalues on both cores; frequencies where the Gram route would lose
accuracy (:math:`\sigma_{\min} < 10^{-3} \sigma_{\max}`) are redone by SVD (Note [spectrum]).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Literal

import numpy as np
from numpy.typing import NDArray
from threadpoolctl import threadpool_limits

from gnpcheck.errors import InvalidArgumentError
from gnpcheck.reference._validation import as_kernel, as_spatial_shape
from gnpcheck.reference.operator import centering, check_kernel_fits

__all__ = [
    "SpectrumMethod",
    "autocorrelation",
    "circulant_spectrum",
    "circulant_symbol",
    "symbol_at",
]

SpectrumMethod = Literal["gram", "svd"]

#: Below this ratio sigma_min / sigma_max, sqrt(eig(Gram)) loses more than about
#: eps * sigma_max / (2 * ratio) absolute accuracy; those frequencies are redone by SVD.
_GRAM_RATIO_FLOOR = 1e-3
#: Frequencies per work item: small enough to spread over the cores, large enough for BLAS.
_CHUNK = 32


def _phases(
    taps: tuple[int, ...],
    spatial: tuple[int, ...],
    freqs: NDArray[np.int64],
    origin: tuple[int, ...],
) -> NDArray[np.complex128]:
    """``E[f, a] = exp(2 pi i <a - origin, f / N>)`` for the listed frequencies and all taps."""
    grids = np.meshgrid(
        *[np.arange(k) - o for k, o in zip(taps, origin, strict=True)], indexing="ij"
    )
    positions = np.stack([g.reshape(-1) for g in grids], axis=1).astype(np.float64)
    scaled = freqs.astype(np.float64) / np.asarray(spatial, dtype=np.float64)
    return np.asarray(np.exp(2j * np.pi * (scaled @ positions.T)), dtype=np.complex128)


def symbol_at(
    kernel: NDArray[np.float64], spatial: tuple[int, ...], freqs: NDArray[np.int64]
) -> NDArray[np.complex128]:
    """:math:`\\hat W(f)` at the frequencies ``freqs`` (shape ``(F, spatial_ndim)``): ``(F, n_out, n_in)``."""
    spatial_ndim = kernel.ndim - 2
    taps = kernel.shape[:spatial_ndim]
    phases = _phases(taps, spatial, freqs, tuple(centering(k) for k in taps))
    flat = kernel.reshape(int(np.prod(taps)), -1)
    return (phases @ flat).reshape(len(freqs), kernel.shape[-2], kernel.shape[-1])


def circulant_symbol(kernel: object, input_shape: object) -> NDArray[np.complex128]:
    r"""The symbol :math:`\hat W(f)` on the full frequency grid: shape ``(*N, n_out, n_in)``.

    ``input_shape`` is the spatial size (``N`` or ``(N,)`` in 1-D, ``(N1, N2)`` in 2-D);
    ``circular_conv(W, v * exp(2 pi i <f, t/N>)) == (symbol[f] @ v) * exp(2 pi i <f, t/N>)``.
    """
    w = as_kernel(kernel)
    spatial = as_spatial_shape(input_shape, w.ndim - 2)
    check_kernel_fits(w, spatial)
    freqs = np.stack(
        [g.reshape(-1) for g in np.meshgrid(*[np.arange(n) for n in spatial], indexing="ij")],
        axis=1,
    )
    return symbol_at(w, spatial, freqs).reshape(*spatial, w.shape[-2], w.shape[-1])


def autocorrelation(kernel: object) -> NDArray[np.float64]:
    r"""The autocorrelation :math:`A_d = \sum_a W_a^T W_{a+d}`, shape ``(*(2K - 1), n_in, n_in)``.

    Entry ``[d + K - 1]`` holds :math:`A_d` for offsets :math:`d \in [-(K-1), K-1]` per axis;
    :math:`A_{-d} = A_d^T`. One symmetric product of the stacked taps, then a sum by offset.
    """
    w = as_kernel(kernel)
    spatial_ndim = w.ndim - 2
    taps = w.shape[:spatial_ndim]
    count = int(np.prod(taps))
    n_out, n_in = w.shape[-2], w.shape[-1]
    stacked = np.moveaxis(w.reshape(count, n_out, n_in), 0, 1).reshape(n_out, count * n_in)
    products = (stacked.T @ stacked).reshape(count, n_in, count, n_in)
    result = np.zeros((*(2 * k - 1 for k in taps), n_in, n_in))
    tap_index = list(np.ndindex(*taps))
    for first, a in enumerate(tap_index):
        for second, b in enumerate(tap_index):
            offset = tuple(bb - aa + k - 1 for aa, bb, k in zip(a, b, taps, strict=True))
            result[offset] += products[first, :, second, :]
    return result


def _frequency_orbits(spatial: tuple[int, ...]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """One representative of each pair ``{f, -f}`` and, per grid frequency, its representative's row."""
    grid = np.stack(
        [g.reshape(-1) for g in np.meshgrid(*[np.arange(n) for n in spatial], indexing="ij")],
        axis=1,
    )
    flat = np.arange(grid.shape[0])
    negated = np.ravel_multi_index(tuple((-grid % np.asarray(spatial)).T), spatial)
    representatives, inverse = np.unique(np.minimum(flat, negated), return_inverse=True)
    return grid[representatives], inverse.reshape(-1)


def _gram_singular_values(
    kernel: NDArray[np.float64],
    spatial: tuple[int, ...],
    freqs: NDArray[np.int64],
    gram_terms: NDArray[np.float64],
) -> NDArray[np.float64]:
    spatial_ndim = kernel.ndim - 2
    offsets = gram_terms.shape[:spatial_ndim]
    origin = tuple((size - 1) // 2 for size in offsets)
    phases = _phases(offsets, spatial, freqs, origin)
    m = gram_terms.shape[-1]
    gram = (phases @ gram_terms.reshape(-1, m * m)).reshape(len(freqs), m, m)
    eigenvalues = np.linalg.eigvalsh(gram)[:, ::-1]
    values: NDArray[np.float64] = np.sqrt(np.clip(eigenvalues, 0.0, None))
    inaccurate = values[:, -1] < _GRAM_RATIO_FLOOR * values[:, 0]
    if np.any(inaccurate):
        symbol = symbol_at(kernel, spatial, freqs[inaccurate])
        values[inaccurate] = np.linalg.svd(symbol, compute_uv=False)
    return values


def _svd_singular_values(
    kernel: NDArray[np.float64], spatial: tuple[int, ...], freqs: NDArray[np.int64]
) -> NDArray[np.float64]:
    return np.asarray(
        np.linalg.svd(symbol_at(kernel, spatial, freqs), compute_uv=False), np.float64
    )


def circulant_spectrum(
    kernel: object, input_shape: object, method: SpectrumMethod = "gram"
) -> NDArray[np.float64]:
    r"""All singular values of the circular convolution: shape ``(*N, min(n_out, n_in))``.

    Entry ``[f]`` holds the singular values of :math:`\hat W(f)` in descending order; together
    they are the ``min(n_out, n_in) * prod(N)`` singular values of :func:`dense_operator`.

    Args:
        kernel: taps-first kernel, 1-D or 2-D.
        input_shape: spatial size, ``N``, ``(N,)`` or ``(N1, N2)``.
        method: ``"gram"`` (default, fast: Hermitian eigenvalues of the Gram symbol, with an
            SVD fallback where that loses accuracy) or ``"svd"`` (SVD of every symbol).
    """
    w = as_kernel(kernel)
    spatial = as_spatial_shape(input_shape, w.ndim - 2)
    check_kernel_fits(w, spatial)
    if method not in ("gram", "svd"):
        raise InvalidArgumentError(f"method={method!r}, but it must be 'gram' or 'svd'")
    if w.shape[-2] < w.shape[-1]:
        w = np.swapaxes(w, -1, -2)  # same singular values; the Gram of the smaller side
    freqs, inverse = _frequency_orbits(spatial)
    chunks = [freqs[start : start + _CHUNK] for start in range(0, len(freqs), _CHUNK)]
    if method == "gram":
        terms = autocorrelation(w)

        def work(chunk: NDArray[np.int64]) -> NDArray[np.float64]:
            return _gram_singular_values(w, spatial, chunk, terms)
    else:

        def work(chunk: NDArray[np.int64]) -> NDArray[np.float64]:
            return _svd_singular_values(w, spatial, chunk)

    workers = max(1, min(len(chunks), os.cpu_count() or 1))
    with threadpool_limits(limits=1), ThreadPoolExecutor(max_workers=workers) as pool:
        values = np.concatenate(list(pool.map(work, chunks)))
    return values[inverse].reshape(*spatial, w.shape[-1])
