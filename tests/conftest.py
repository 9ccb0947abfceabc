"""Tests of gnpcheck itself use the Hypothesis profile named by GNPCHECK_HYPOTHESIS_PROFILE."""

from gnpcheck.hypothesis_profiles import load_profile

load_profile()
