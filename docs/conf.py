"""Sphinx configuration of the sklearn-gsoftmax documentation.

Build it with ``python -m sphinx -b html docs docs/_build/html`` (see README.md).

Two environment variables make the build fit its context:

``GSOFTMAX_PLOT_GALLERY``
    ``"True"`` runs the example scripts of the gallery; the default ``"False"``
    only renders their code, so that a documentation build takes seconds.
``GSOFTMAX_INTERSPHINX``
    ``"1"`` links to the Python, NumPy, SciPy and scikit-learn docs (needs the
    network); by default the build is offline and those names render as text.
"""

from __future__ import annotations

import os
import re
import sys

# Document the checkout this file belongs to, also without an installed package.
sys.path.insert(0, os.path.abspath(".."))

import sklearn_gsoftmax  # noqa: E402

# -- Project --------------------------------------------------------------------------

project = "sklearn-gsoftmax"
author = "sklearn-gsoftmax developers"
copyright = "sklearn-gsoftmax developers"
release = sklearn_gsoftmax.__version__
version = ".".join(release.split(".")[:2])

# -- General --------------------------------------------------------------------------

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    # MathJax served from the build (the package ships it), not from a CDN, so
    # that the formulas render when the pages are opened without network
    "sphinx-mathjax-offline",
    "sphinx.ext.intersphinx",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

templates_path = ["_templates"]
exclude_patterns = ["_build", "README.md", "Thumbs.db", ".DS_Store"]
root_doc = "index"
# Single backticks in docstrings render as code, as in scikit-learn's docs,
# rather than as a cross-reference that may not resolve.
default_role = "literal"

# -- autodoc, autosummary, numpydoc ---------------------------------------------------

autosummary_generate = True
# numpydoc renders the types of the docstrings; signatures stay short.
autodoc_typehints = "none"
autodoc_member_order = "groupwise"
# The class template documents each method on the class page; numpydoc's own
# member tables would list them a second time.
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False


_PARAM_LINE = re.compile(r"^(\s*\*{0,2}\w+ : )(.*)$")
_TRAILING_UNDERSCORE = re.compile(r"\b(\w*[A-Za-z0-9])_(?=[\s,)\]]|$)")


def _escape_attribute_names_in_types(app, what, name, obj, options, lines):
    """Escape the trailing underscore of names such as ``n_features_in_`` in the
    type of a numpydoc parameter or attribute.

    In reST ``word_`` is a hyperlink reference, so a type written
    ``ndarray of shape (2, n_features_in_)`` fails to render; scikit-learn's own
    docstrings quote such names with backticks. Runs before numpydoc.
    """
    for i, line in enumerate(lines):
        match = _PARAM_LINE.match(line)
        if match and "`" not in match.group(2):
            lines[i] = match.group(1) + _TRAILING_UNDERSCORE.sub(
                r"\1\\_", match.group(2)
            )


def _skip_metadata_request_methods(app, what, name, obj, skip, options):
    """Leave out scikit-learn's generated ``set_*_request`` methods.

    scikit-learn adds them to every estimator for metadata routing and documents
    them itself; their docstrings link to labels of its user guide, which do not
    resolve here.
    """
    if name.startswith("set_") and name.endswith("_request"):
        return True
    return skip


# -- intersphinx ----------------------------------------------------------------------

_INTERSPHINX = {
    "python": ("https://docs.python.org/3", None),
    "numpy": ("https://numpy.org/doc/stable/", None),
    "scipy": ("https://docs.scipy.org/doc/scipy/", None),
    "sklearn": ("https://scikit-learn.org/stable/", None),
}


# Off by default: a documentation build must not need the network (an
# unreachable inventory is a warning that -W turns into an error).
intersphinx_mapping = (
    dict(_INTERSPHINX) if os.environ.get("GSOFTMAX_INTERSPHINX") == "1" else {}
)
intersphinx_timeout = 10

# -- sphinx-gallery -------------------------------------------------------------------

sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": "/plot_",
    # A string, as sphinx-gallery accepts; "True" executes the examples.
    "plot_gallery": os.environ.get("GSOFTMAX_PLOT_GALLERY", "False"),
    "doc_module": ("sklearn_gsoftmax",),
    "backreferences_dir": "generated/backreferences",
    # No timings page: sphinx-gallery's loads jQuery and DataTables from a CDN,
    # and the docs must read without network access (tests/test_docs.py). The
    # build log gives the times.
    "write_computation_times": False,
}

# -- HTML -----------------------------------------------------------------------------

try:
    import pydata_sphinx_theme  # noqa: F401
except ImportError:
    html_theme = "alabaster"
    html_theme_options = {"description": "Probabilities bounded by the sample count"}
else:
    html_theme = "pydata_sphinx_theme"
    html_theme_options = {
        "navigation_with_keys": False,
        "show_toc_level": 2,
    }

html_title = f"sklearn-gsoftmax {release}"
html_show_sourcelink = False


def setup(app):
    app.connect("autodoc-skip-member", _skip_metadata_request_methods)
    # numpydoc listens with the default priority 500; lower runs first.
    app.connect(
        "autodoc-process-docstring", _escape_attribute_names_in_types, priority=400
    )
