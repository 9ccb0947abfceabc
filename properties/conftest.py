"""The property suite's setup: the Hypothesis profile and the target plugin.

The profile (``GNPCHECK_HYPOTHESIS_PROFILE``: ``ci``, ``dev`` or ``thorough``) is loaded here,
before the test modules build their strategies; the target (``--gnp-target`` or
``GNPCHECK_TARGET``) is resolved by :mod:`gnpcheck.pytest_plugin`. ``pytester`` runs the
suite against broken targets in ``properties/meta``.
"""

from gnpcheck.hypothesis_profiles import load_profile

pytest_plugins = ["gnpcheck.pytest_plugin", "pytester"]

load_profile()
