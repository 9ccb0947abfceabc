"""Certificates of robustness from Lipschitz bounds, and an empirical attack to sanity-check them.

- :mod:`~gnpcheck.certify.margin`: margins, certificates, the multi-class hinge loss;
- :mod:`~gnpcheck.certify.lipschitz`: claimed and measured Lipschitz bounds of a chain, and
  the guard against layers gnpcheck cannot bound;
- :mod:`~gnpcheck.certify.operators`: a layer's operator, its norm and singular values;
- :mod:`~gnpcheck.certify.attack`: L2 PGD;
- :mod:`~gnpcheck.certify.report`: clean, PGD-robust and certified accuracy, checked.
"""

from gnpcheck.certify.attack import pgd_l2
from gnpcheck.certify.lipschitz import (
    LayerBound,
    ModelBound,
    UncertifiableModelError,
    model_lipschitz,
)
from gnpcheck.certify.margin import (
    certified,
    certified_radius,
    logit_margin,
    max_margin_hinge_loss,
    multiclass_hinge_loss,
)
from gnpcheck.certify.report import RobustnessReport, evaluate_robustness

__all__ = [
    "LayerBound",
    "ModelBound",
    "RobustnessReport",
    "UncertifiableModelError",
    "certified",
    "certified_radius",
    "evaluate_robustness",
    "logit_margin",
    "max_margin_hinge_loss",
    "model_lipschitz",
    "multiclass_hinge_loss",
    "pgd_l2",
]
