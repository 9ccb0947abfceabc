r"""Theorem 1's invariant: a 1-D orthogonal convolution has :math:`\det W(z) = \pm z^{-r}`.

For a BCOP kernel built from ``H`` and projectors of ranks :math:`k_i` the construction gives
``sign = det H`` and :math:`r = \sum_i (n - k_i)` (docs, Note [component index]). Checked
three ways that share nothing but the kernel: the ranks the strategy was asked for, the
factors (:func:`~gnpcheck.reference.component_index`), and the determinant polynomial of the
kernel (:func:`~gnpcheck.reference.kernel_component_index`). ``r`` adds and the signs
multiply under composition (``det`` of a product).
"""

from __future__ import annotations

from hypothesis import given, note
from hypothesis import strategies as st

from gnpcheck.reference import block_conv, component_index, kernel_component_index
from gnpcheck.strategies import bcop_factors, channel_counts, kernel_sizes

_SIGNS = st.sampled_from((1, -1))


def _draw_construction(data: st.DataObject, label: str) -> tuple[int, int, list[int], int]:
    """Channels, kernel size, ranks and det H for one 1-D BCOP kernel."""
    n = data.draw(channel_counts(), label=f"{label}channels")
    k = data.draw(kernel_sizes(), label=f"{label}kernel_size")
    ranks = data.draw(
        st.lists(st.integers(0, n), min_size=k - 1, max_size=k - 1), label=f"{label}ranks"
    )
    det = data.draw(_SIGNS, label=f"{label}det H")
    return n, k, ranks, det


@given(data=st.data())
def test_sign_and_degree_match_the_construction(data: st.DataObject) -> None:
    n, k, ranks, det = _draw_construction(data, "")
    factors = data.draw(
        bcop_factors(spatial_ndim=1, channels=n, kernel_size=k, ranks=ranks, det=det)
    )
    expected = (det, sum(n - rank for rank in ranks))
    from_factors = component_index(factors.H, factors.Ps)
    from_kernel = kernel_component_index(factors.kernel())
    note(f"expected (sign, r) = {expected}, from factors {from_factors}, from kernel {from_kernel}")
    assert from_factors == expected, (
        f"component_index={from_factors}, but should be (det H, sum(n - rank P_i))={expected}"
    )
    assert from_kernel == expected, (
        f"kernel_component_index={from_kernel}, but should be (det H, sum(n - rank P_i))={expected}"
    )


@given(data=st.data())
def test_degree_adds_and_sign_multiplies_under_composition(data: st.DataObject) -> None:
    n = data.draw(channel_counts(), label="channels")
    first = data.draw(bcop_factors(spatial_ndim=1, channels=n), label="X factors")
    second = data.draw(bcop_factors(spatial_ndim=1, channels=n), label="Y factors")
    sign_x, r_x = kernel_component_index(first.kernel())
    sign_y, r_y = kernel_component_index(second.kernel())
    composite = block_conv(first.kernel(), second.kernel())
    measured = kernel_component_index(composite)
    expected = (sign_x * sign_y, r_x + r_y)
    note(f"X: (sign, r)=({sign_x}, {r_x}), Y: ({sign_y}, {r_y}), X □ Y: {measured}")
    assert measured == expected, (
        f"(sign, r) of X □ Y = {measured}, but should be (sign_X sign_Y, r_X + r_Y) = {expected}"
    )
