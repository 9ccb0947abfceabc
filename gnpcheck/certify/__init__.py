"""Certificates of robustness from Lipschitz bounds, and an empirical attack to sanity-check them."""

from gnpcheck.certify.attack import pgd_l2
from gnpcheck.certify.margin import (
    certified,
    certified_radius,
    logit_margin,
    multiclass_hinge_loss,
)

__all__ = ["certified", "certified_radius", "logit_margin", "multiclass_hinge_loss", "pgd_l2"]
