"""gnpcheck: verifiable orthogonal, gradient-norm-preserving (GNP) convolutions.

``gnpcheck.reference`` is the float64 ground truth of block convolution orthogonal
parameterization (BCOP); ``gnpcheck.checks`` states the properties in two forms
(``check_*`` returns a :class:`~gnpcheck.checks.CheckResult`, ``assert_*`` raises);
``gnpcheck.strategies`` draws inputs for Hypothesis property suites.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
