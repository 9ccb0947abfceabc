"""Sphinx configuration of the gnpcheck documentation.

The build downloads nothing (no intersphinx); the API pages import gnpcheck itself.
"""

from __future__ import annotations

import gnpcheck

project = "gnpcheck"
author = "gnpcheck developers"
copyright = "gnpcheck developers"
version = gnpcheck.__version__
release = gnpcheck.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
]

exclude_patterns = ["_build"]
templates_path: list[str] = []
html_static_path = ["_static"]
html_theme = "alabaster"
html_title = f"gnpcheck {release}"

# Google-style docstrings (Args/Returns/Raises); no NumPy-style sections.
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False

# Signatures without annotations: the NumPy typing aliases (NDArray[np.float64]) would only
# clutter them, and the docstrings state shapes and dtypes.
autodoc_typehints = "none"
autodoc_member_order = "bysource"
autodoc_preserve_defaults = True
