r"""Exact BCOP identities in rational arithmetic, with SymPy (docs, Note [symbolic proofs]).

The float64 reference checks paraunitarity to a tolerance; this module proves it, with no
rounding, for kernels whose factors have rational entries: an orthogonal ``H`` from the
Cayley transform of an integer skew-symmetric matrix and projectors
:math:`R (R^T R)^{-1} R^T` of integer ``R``.

Polynomial convention: a kernel is the polynomial matrix :math:`W(z) = \sum_i W_i z^{-i}`
(taps first, as in :mod:`gnpcheck.reference.polynomial`), written in the **delay** variable
:math:`w = z^{-1}` (:data:`Z_INV`, printed ``w``) so that its entries are polynomials:
:math:`W(w) = \sum_i W_i w^i`. In 2-D, :math:`W = \sum_{i,j} W_{ij} w_1^i w_2^j` with
:data:`Z1_INV` (``w1``, delay along the height axis, axis 0 of the taps) and :data:`Z2_INV`
(``w2``, along the width axis, axis 1). The factor order is that of
:func:`~gnpcheck.reference.bcop.bcop_kernel_1d` and
:func:`~gnpcheck.reference.bcop.bcop_kernel_2d`:

.. math:: W = H \prod_i \bigl(P_i + (I - P_i) w\bigr), \qquad
          W = H \prod_i \bigl(P_i + (I - P_i) w_2\bigr)\bigl(Q_i + (I - Q_i) w_1\bigr).

Inputs are exact: entries ``int``, ``fractions.Fraction`` or ``sympy.Rational``; floats
are refused, since no exact statement can be made about them. Never imports torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, TypeAlias

import numpy as np
import sympy
from numpy.typing import NDArray
from sympy.polys.matrices import DomainMatrix

from gnpcheck.errors import InvalidArgumentError, InvalidTypeError

__all__ = [
    "Z1_INV",
    "Z2_INV",
    "Z_INV",
    "ExactMatrix",
    "PolynomialMatrix",
    "is_paraunitary",
    "monomial_index",
    "rational_orthogonal",
    "rational_projector",
    "symbolic_bcop_1d",
    "symbolic_bcop_2d",
    "symbolic_determinant",
    "to_float_kernel",
]

#: A ``sympy.ImmutableMatrix`` (SymPy is untyped, so the alias is ``Any``).
ExactMatrix: TypeAlias = Any

#: :math:`w = z^{-1}`, the delay of a 1-D kernel, so that :math:`W(w) = \sum_i W_i w^i`.
Z_INV: Any = sympy.Symbol("w")
#: :math:`w_1 = z_1^{-1}`, the delay along the height axis (axis 0 of 2-D taps).
Z1_INV: Any = sympy.Symbol("w1")
#: :math:`w_2 = z_2^{-1}`, the delay along the width axis (axis 1 of 2-D taps).
Z2_INV: Any = sympy.Symbol("w2")

_EXACT_TYPES = "int, fractions.Fraction or sympy.Rational"


@dataclass(frozen=True)
class PolynomialMatrix:
    r"""A square polynomial matrix :math:`W(w) = \sum_a W_a w^a` with rational coefficients.

    Attributes:
        matrix: the ``n x n`` ``sympy.ImmutableMatrix`` of expanded polynomials.
        variables: ``(Z_INV,)`` for a 1-D kernel, ``(Z1_INV, Z2_INV)`` for a 2-D kernel.
        kernel_size: taps per spatial axis; the degree in each variable is below it.

    Raises:
        InvalidArgumentError: an entry that is not a polynomial in ``variables`` with rational
            coefficients, a degree too high for ``kernel_size``, a non-square matrix.
        InvalidTypeError: ``matrix`` not a SymPy matrix, a float coefficient.
    """

    matrix: ExactMatrix
    variables: tuple[Any, ...]
    kernel_size: tuple[int, ...]

    def __post_init__(self) -> None:
        if self.variables not in ((Z_INV,), (Z1_INV, Z2_INV)):
            raise InvalidArgumentError(
                f"variables={self.variables!r}, but it must be (Z_INV,) or (Z1_INV, Z2_INV)"
            )
        if (
            not isinstance(self.kernel_size, tuple)
            or len(self.kernel_size) != len(self.variables)
            or not all(
                isinstance(k, int) and not isinstance(k, bool) and k >= 1 for k in self.kernel_size
            )
        ):
            raise InvalidArgumentError(
                f"kernel_size={self.kernel_size!r}, but it must be {len(self.variables)} "
                "int(s) >= 1"
            )
        if not isinstance(self.matrix, sympy.MatrixBase):
            raise InvalidTypeError(
                f"matrix has type {type(self.matrix).__name__}, but it must be a SymPy matrix"
            )
        rows, cols = self.matrix.shape
        if rows != cols or rows == 0:
            raise InvalidArgumentError(f"matrix is {rows} x {cols}, but it must be square, n >= 1")
        ring = _ring(self.variables)
        elements = [
            [_ring_element(ring, entry, f"matrix[{i}, {j}]") for j, entry in enumerate(row)]
            for i, row in enumerate(self.matrix.tolist())
        ]
        for i, row in enumerate(elements):
            for j, element in enumerate(row):
                for variable, degree, size in zip(
                    self.variables, element.degrees(), self.kernel_size, strict=True
                ):
                    if degree >= size:
                        raise InvalidArgumentError(
                            f"matrix[{i}, {j}] has degree {degree} in {variable}, but "
                            f"kernel_size={self.kernel_size} allows at most {size - 1}"
                        )
        canonical = DomainMatrix(elements, (rows, cols), ring).to_Matrix()
        object.__setattr__(self, "matrix", sympy.ImmutableMatrix(canonical))

    @property
    def channels(self) -> int:
        """The number of channels ``n``."""
        return int(self.matrix.shape[0])

    def _domain_matrix(self) -> Any:
        ring = _ring(self.variables)
        entries = [[ring.from_sympy(e) for e in row] for row in self.matrix.tolist()]
        return DomainMatrix(entries, self.matrix.shape, ring)


def _ring(variables: tuple[Any, ...]) -> Any:
    return sympy.QQ[variables]


def _ring_element(ring: Any, entry: Any, name: str) -> Any:
    expression = sympy.sympify(entry)
    if expression.has(sympy.Float):
        raise InvalidTypeError(
            f"{name}={expression}, but coefficients must be exact ({_EXACT_TYPES}), not floats"
        )
    try:
        return ring.from_sympy(expression)
    except (ValueError, sympy.polys.polyerrors.BasePolynomialError):
        raise InvalidArgumentError(
            f"{name}={expression}, but it must be a polynomial in "
            f"{', '.join(map(str, ring.symbols))} with rational coefficients"
        ) from None


def _rational(entry: object, name: str) -> Any:
    if isinstance(entry, (int, np.integer)) and not isinstance(entry, (bool, np.bool_)):
        return sympy.Integer(int(entry))
    if isinstance(entry, Fraction):
        return sympy.Rational(entry.numerator, entry.denominator)
    if isinstance(entry, sympy.Basic) and entry.is_Rational:
        return entry
    raise InvalidTypeError(
        f"{name}={entry!r} ({type(entry).__name__}), but entries must be exact rationals "
        f"({_EXACT_TYPES})"
    )


def _exact_matrix(value: object, name: str) -> ExactMatrix:
    """A square ``sympy.ImmutableMatrix`` of rationals, from a SymPy matrix or nested sequence."""
    if isinstance(value, sympy.MatrixBase):
        array = np.array(value.tolist(), dtype=object).reshape(value.shape)
    elif isinstance(value, (str, bytes)) or value is None or isinstance(value, (int, float)):
        raise InvalidTypeError(f"{name}={value!r}, but it must be a matrix (a nested sequence)")
    else:
        array = np.asarray(value, dtype=object)
    if array.ndim != 2 or array.shape[0] != array.shape[1] or array.shape[0] == 0:
        raise InvalidArgumentError(
            f"{name} has shape {array.shape}, but it must be a square n x n matrix, n >= 1"
        )
    entries = [
        [_rational(array[i, j], f"{name}[{i}, {j}]") for j in range(array.shape[1])]
        for i in range(array.shape[0])
    ]
    return sympy.ImmutableMatrix(entries)


def _largest_entry(matrix: ExactMatrix) -> Any:
    return max((abs(e) for e in matrix), default=sympy.Integer(0))


def _checked_orthogonal(value: object) -> ExactMatrix:
    h = _exact_matrix(value, "H")
    residual = h.T * h - sympy.eye(h.shape[0])
    if not residual.is_zero_matrix:
        raise InvalidArgumentError(
            f"H has H^T H - I with an entry of size {_largest_entry(residual)}, but H must be "
            "exactly orthogonal"
        )
    return h


def _checked_projectors(values: object, name: str, n: int) -> list[ExactMatrix]:
    if isinstance(values, (sympy.MatrixBase, np.ndarray)) or not isinstance(values, Sequence):
        raise InvalidTypeError(
            f"{name} has type {type(values).__name__}, but it must be a sequence of matrices"
        )
    projectors = []
    for index, value in enumerate(values):
        label = f"{name}[{index}]"
        p = _exact_matrix(value, label)
        if p.shape[0] != n:
            raise InvalidArgumentError(
                f"{label} is {p.shape[0]} x {p.shape[0]}, but H has {n} channels"
            )
        for residual, what in ((p - p.T, "P - P^T"), (p * p - p, "P^2 - P")):
            if not residual.is_zero_matrix:
                raise InvalidArgumentError(
                    f"{label} has {what} with an entry of size {_largest_entry(residual)}, but it "
                    "must be an exact symmetric projector (P = P^T = P^2)"
                )
        projectors.append(p)
    return projectors


def _check_count(value: object, name: str, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InvalidTypeError(f"{name}={value!r}, but it must be an int")
    if value < low or (high is not None and value > high):
        allowed = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise InvalidArgumentError(f"{name}={value}, but it must be {allowed}")
    return int(value)


def rational_orthogonal(n: int, seed: int, det: int = 1) -> ExactMatrix:
    r"""An exact rational ``n x n`` orthogonal matrix of determinant ``det``.

    The Cayley transform :math:`Q = (I - A)(I + A)^{-1}` of a random integer skew-symmetric
    :math:`A` (entries in ``[-2, 2]``, drawn from ``numpy.random.default_rng(seed)``):
    :math:`I + A` is invertible (the eigenvalues of :math:`A` are imaginary), :math:`Q^T Q = I`
    and :math:`\det Q = \det(I - A) / \det(I + A) = 1`. For ``det=-1`` the first row is negated.

    Returns:
        A ``sympy.ImmutableMatrix`` of rationals.

    Raises:
        InvalidArgumentError: ``n < 1``, ``seed < 0``, ``det`` not ``1`` or ``-1``.
        InvalidTypeError: ``n`` or ``seed`` not an int.
    """
    n = _check_count(n, "n", 1)
    rng = np.random.default_rng(_check_count(seed, "seed", 0))
    if det not in (1, -1) or isinstance(det, bool):
        raise InvalidArgumentError(f"det={det!r}, but it must be 1 or -1")
    upper = np.triu(rng.integers(-2, 3, size=(n, n)), k=1)
    a = sympy.Matrix((upper - upper.T).tolist())
    identity = sympy.eye(n)
    q = (identity - a) * (identity + a).inv()
    if det == -1:
        q[0, :] = -q[0, :]
    return sympy.ImmutableMatrix(q)


def rational_projector(n: int, k: int, seed: int) -> ExactMatrix:
    r"""An exact rational symmetric projector of rank ``k``: :math:`R (R^T R)^{-1} R^T`.

    ``R`` is ``[I_k; B]`` with a random integer ``B`` (entries in ``{-2, -1, 1, 2}``), rows
    randomly permuted, so it has full column rank and :math:`R^T R = I + B^T B` is invertible.
    ``k=0`` gives the zero matrix, ``k=n`` the identity.

    Returns:
        A ``sympy.ImmutableMatrix`` of rationals.

    Raises:
        InvalidArgumentError: ``n < 1``, ``k`` outside ``[0, n]``, ``seed < 0``.
        InvalidTypeError: ``n``, ``k`` or ``seed`` not an int.
    """
    n = _check_count(n, "n", 1)
    k = _check_count(k, "k", 0, n)
    rng = np.random.default_rng(_check_count(seed, "seed", 0))
    if k == 0:
        return sympy.ImmutableMatrix.zeros(n, n)
    lower = rng.choice(np.array([-2, -1, 1, 2]), size=(n - k, k))
    basis = np.vstack([np.eye(k, dtype=np.int64), lower])
    r = sympy.Matrix(basis[rng.permutation(n)].tolist())
    return sympy.ImmutableMatrix(r * (r.T * r).inv() * r.T)


def _delay_factor(p: ExactMatrix, delay: Any) -> ExactMatrix:
    """The one-delay factor :math:`P + (I - P) w`, taps ``[P, I - P]``."""
    return p + (sympy.eye(p.shape[0]) - p) * delay


def _product(factors: Sequence[ExactMatrix], variables: tuple[Any, ...]) -> ExactMatrix:
    r"""The product of polynomial matrices, multiplied in :math:`\mathbb{Q}[w]` (fast, exact)."""
    ring = _ring(variables)

    def lift(factor: ExactMatrix) -> Any:
        return DomainMatrix(
            [[ring.from_sympy(e) for e in row] for row in factor.tolist()], factor.shape, ring
        )

    result = lift(factors[0])
    for factor in factors[1:]:
        result = result * lift(factor)
    return result.to_Matrix()


def symbolic_bcop_1d(H: object, Ps: Sequence[object]) -> PolynomialMatrix:
    r"""The exact 1-D BCOP kernel :math:`W(w) = H \prod_i (P_i + (I - P_i) w)`.

    Same taps as :func:`~gnpcheck.reference.bcop.bcop_kernel_1d` of the float factors.

    Raises:
        InvalidArgumentError: ``H`` not exactly orthogonal; a ``P`` not an exact ``n x n``
            symmetric projector.
        InvalidTypeError: a non-rational entry; ``Ps`` not a sequence of matrices.
    """
    h = _checked_orthogonal(H)
    projectors = _checked_projectors(Ps, "Ps", h.shape[0])
    factors = [h, *(_delay_factor(p, Z_INV) for p in projectors)]
    return PolynomialMatrix(_product(factors, (Z_INV,)), (Z_INV,), (len(projectors) + 1,))


def symbolic_bcop_2d(H: object, Ps: Sequence[object], Qs: Sequence[object]) -> PolynomialMatrix:
    r"""The exact 2-D BCOP kernel :math:`H \prod_i (P_i + (I - P_i) w_2)(Q_i + (I - Q_i) w_1)`.

    Row factors ``[P, I - P]`` along the width (:data:`Z2_INV`), column factors ``[Q; I - Q]``
    along the height (:data:`Z1_INV`), in the order of
    :func:`~gnpcheck.reference.bcop.bcop_kernel_2d`.

    Raises:
        InvalidArgumentError: ``len(Ps) != len(Qs)``, ``H`` not exactly orthogonal, a projector
            not an exact ``n x n`` symmetric projector.
        InvalidTypeError: a non-rational entry; ``Ps`` or ``Qs`` not a sequence of matrices.
    """
    h = _checked_orthogonal(H)
    ps = _checked_projectors(Ps, "Ps", h.shape[0])
    qs = _checked_projectors(Qs, "Qs", h.shape[0])
    if len(ps) != len(qs):
        raise InvalidArgumentError(
            f"len(Ps)={len(ps)} and len(Qs)={len(qs)}, but they must be equal (kernel size - 1)"
        )
    factors = [h]
    for p, q in zip(ps, qs, strict=True):
        factors += [_delay_factor(p, Z2_INV), _delay_factor(q, Z1_INV)]
    size = len(ps) + 1
    return PolynomialMatrix(_product(factors, (Z1_INV, Z2_INV)), (Z1_INV, Z2_INV), (size, size))


def _checked_polynomial_matrix(value: object) -> PolynomialMatrix:
    if not isinstance(value, PolynomialMatrix):
        raise InvalidTypeError(
            f"W has type {type(value).__name__}, but it must be a PolynomialMatrix (build one "
            "with symbolic_bcop_1d/2d or PolynomialMatrix(matrix, variables, kernel_size))"
        )
    return value


def is_paraunitary(W: PolynomialMatrix) -> bool:
    r"""Whether :math:`W(z)^T W(z^{-1}) = I` holds as an identity of Laurent polynomials.

    In the delay variables, :math:`W(1/w) = w^{-(K-1)} \widetilde W(w)` with the reversed
    polynomial :math:`\widetilde W(w) = \sum_a W_a w^{K-1-a}`, so the claim is the polynomial
    identity :math:`W(w)^T \widetilde W(w) = w^{K-1} I` (per variable in 2-D), decided by
    exact arithmetic in :math:`\mathbb{Q}[w]` (:math:`\mathbb{Q}[w_1, w_2]`): every
    coefficient, i.e. every autocorrelation :math:`\sum_a W_a^T W_{a+d} = \delta_{d0} I`.

    Raises:
        InvalidTypeError: ``W`` not a :class:`PolynomialMatrix`.
    """
    w = _checked_polynomial_matrix(W)
    gram = w._domain_matrix().transpose() * _reversed(w)
    ring = gram.domain
    shift = ring.ring.from_dict({tuple(k - 1 for k in w.kernel_size): ring.domain.one})
    target = DomainMatrix.eye(w.channels, ring) * shift
    return bool((gram - target).is_zero_matrix)


def _reversed(w: PolynomialMatrix) -> Any:
    ring = _ring(w.variables)
    flipped = [
        [
            ring.ring.from_dict(
                {
                    tuple(k - 1 - e for k, e in zip(w.kernel_size, exponents, strict=True)): c
                    for exponents, c in element.terms()
                }
            )
            for element in row
        ]
        for row in w._domain_matrix().to_list()
    ]
    return DomainMatrix(flipped, w.matrix.shape, ring)


def symbolic_determinant(W: PolynomialMatrix) -> Any:
    r"""The exact polynomial :math:`\det W(w)` (a SymPy expression in the delay variables).

    Raises:
        InvalidTypeError: ``W`` not a :class:`PolynomialMatrix`.
    """
    w = _checked_polynomial_matrix(W)
    matrix = w._domain_matrix()
    return matrix.domain.to_sympy(matrix.det())


def monomial_index(W: PolynomialMatrix) -> tuple[int, tuple[int, ...]]:
    r"""``(sign, r)`` with :math:`\det W = \text{sign} \cdot \prod_d w_d^{r_d}` exactly.

    ``r`` has one exponent per spatial axis: ``(r,)`` in 1-D, where
    :math:`\det W(z) = \text{sign}\, z^{-r}` (the Theorem 1 invariant,
    docs, Note [component index]); ``(r_height, r_width)`` in 2-D.

    Raises:
        InvalidArgumentError: :math:`\det W` is not a signed monomial (``W`` is not
            paraunitary).
        InvalidTypeError: ``W`` not a :class:`PolynomialMatrix`.
    """
    w = _checked_polynomial_matrix(W)
    matrix = w._domain_matrix()
    determinant = matrix.det()
    terms = determinant.terms()
    if len(terms) != 1 or abs(terms[0][1]) != 1:
        shown = str(matrix.domain.to_sympy(determinant))
        if len(shown) > 80:
            shown = f"a polynomial with {len(terms)} terms"
        form = "w^r" if len(w.variables) == 1 else "w1^r1*w2^r2"
        raise InvalidArgumentError(
            f"det W = {shown}, but it must be a signed monomial ±{form} (W is not paraunitary)"
        )
    exponents, coefficient = terms[0]
    return (1 if coefficient > 0 else -1), tuple(int(e) for e in exponents)


def to_float_kernel(W: PolynomialMatrix) -> NDArray[np.float64]:
    """The float64 taps-first kernel of ``W``: ``(K, n, n)`` in 1-D, ``(K1, K2, n, n)`` in 2-D.

    Tap ``a`` is the coefficient of :math:`w^a` rounded to the nearest float64, so it agrees
    with the float reference built from the rounded factors up to their rounding.

    Raises:
        InvalidTypeError: ``W`` not a :class:`PolynomialMatrix`.
    """
    w = _checked_polynomial_matrix(W)
    kernel = np.zeros((*w.kernel_size, w.channels, w.channels))
    for i, row in enumerate(w._domain_matrix().to_list()):
        for j, element in enumerate(row):
            for exponents, coefficient in element.terms():
                kernel[(*exponents, i, j)] = float(coefficient)
    return kernel
