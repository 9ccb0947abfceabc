"""Circulant symbol and spectrum against the dense operator's SVD (independent oracle)."""

from __future__ import annotations

import numpy as np
import pytest

from gnpcheck.errors import InvalidArgumentError
from gnpcheck.reference import (
    autocorrelation,
    circulant_spectrum,
    circulant_symbol,
    circular_conv,
    dense_operator,
    random_bcop_2d,
)

CASES = [
    ((3,), 4, 4, (7,)),
    ((2,), 3, 5, (6,)),
    ((4,), 6, 2, (5,)),
    ((3, 3), 3, 3, (5, 6)),
    ((2, 4), 2, 4, (4, 5)),
    ((3, 2), 5, 3, (6, 4)),
    ((1, 1), 3, 3, (2, 3)),
]


def _id(case: tuple) -> str:  # type: ignore[type-arg]
    taps, n_out, n_in, spatial = case
    return f"k{'x'.join(map(str, taps))}-{n_out}from{n_in}-N{'x'.join(map(str, spatial))}"


@pytest.mark.parametrize("method", ["gram", "svd"])
@pytest.mark.parametrize("case", CASES, ids=_id)
def test_spectrum_equals_dense_svd(case: tuple, method: str) -> None:  # type: ignore[type-arg]
    taps, n_out, n_in, spatial = case
    kernel = np.random.default_rng(0).standard_normal((*taps, n_out, n_in))
    spectrum = circulant_spectrum(kernel, spatial, method=method)  # type: ignore[arg-type]
    assert spectrum.shape == (*spatial, min(n_out, n_in))
    assert np.all(np.diff(spectrum, axis=-1) <= 0), "each frequency's values must be descending"
    dense = np.linalg.svd(dense_operator(kernel, spatial), compute_uv=False)
    np.testing.assert_allclose(
        np.sort(spectrum.ravel()), np.sort(dense)[-spectrum.size :], rtol=0, atol=1e-12
    )


def test_gram_route_falls_back_to_svd_for_nearly_singular_frequencies() -> None:
    rng = np.random.default_rng(1)
    kernel = rng.standard_normal((3, 3, 4, 4))
    kernel[..., 0] = 1e-9 * kernel[..., 1]  # an input channel almost parallel to another
    by_gram = circulant_spectrum(kernel, (5, 5), method="gram")
    by_svd = circulant_spectrum(kernel, (5, 5), method="svd")
    assert by_svd.min() < 1e-6
    np.testing.assert_allclose(by_gram, by_svd, rtol=0, atol=1e-12)


@pytest.mark.parametrize("case", CASES, ids=_id)
def test_symbol_is_the_action_on_fourier_modes(case: tuple) -> None:  # type: ignore[type-arg]
    taps, n_out, n_in, spatial = case
    rng = np.random.default_rng(2)
    kernel = rng.standard_normal((*taps, n_out, n_in))
    symbol = circulant_symbol(kernel, spatial)
    frequency = tuple(int(rng.integers(n)) for n in spatial)
    grids = np.meshgrid(*[np.arange(n) for n in spatial], indexing="ij")
    mode = np.exp(
        2j * np.pi * sum(f * g / n for f, g, n in zip(frequency, grids, spatial, strict=True))
    )
    v = rng.standard_normal(n_in)
    x = v.reshape(-1, *[1] * len(spatial)) * mode
    y = circular_conv(kernel, x.real) + 1j * circular_conv(kernel, x.imag)
    expected = (symbol[frequency] @ v).reshape(-1, *[1] * len(spatial)) * mode
    np.testing.assert_allclose(y, expected, atol=1e-12)


def test_autocorrelation_matches_its_definition() -> None:
    rng = np.random.default_rng(3)
    kernel = rng.standard_normal((2, 3, 4, 3))
    terms = autocorrelation(kernel)
    assert terms.shape == (3, 5, 3, 3)
    for d1 in range(-1, 2):
        for d2 in range(-2, 3):
            expected = np.zeros((3, 3))
            for a1 in range(2):
                for a2 in range(3):
                    if 0 <= a1 + d1 < 2 and 0 <= a2 + d2 < 3:
                        expected += kernel[a1, a2].T @ kernel[a1 + d1, a2 + d2]
            np.testing.assert_allclose(terms[d1 + 1, d2 + 2], expected, atol=1e-12)


def test_bcop_spectrum_is_all_ones() -> None:
    kernel = random_bcop_2d(6, 4, np.random.default_rng(4)).kernel()
    np.testing.assert_allclose(circulant_spectrum(kernel, (8, 7)), 1.0, rtol=0, atol=1e-13)


def test_bad_method_and_shape_are_rejected() -> None:
    with pytest.raises(InvalidArgumentError, match="method='eig'"):
        circulant_spectrum(np.ones((1, 2, 2)), 3, method="eig")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="kernel size 3"):
        circulant_symbol(np.ones((3, 3, 2, 2)), (2, 2))
