"""Sphinx configuration of the uflux-xr documentation (``sphinx-build -W docs docs/_build/html``)."""

from __future__ import annotations

import inspect
import os
from pathlib import Path

import uflux_xr

DOCS = Path(__file__).resolve().parent

project = "uflux-xr"
author = "uflux-xr developers"
copyright = "2026, uflux-xr developers"
release = uflux_xr.__version__

extensions = [
    "myst_parser",
    "numpydoc",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx_gallery.gen_gallery",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "examples/README.rst", "examples/*.py", "**.ipynb_checkpoints", "make_figures.py"]
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

html_theme = "pydata_sphinx_theme"
html_title = "uflux-xr"
html_theme_options = {
    "navigation_depth": 2,
    "show_toc_level": 2,
    "secondary_sidebar_items": ["page-toc"],
}

autosummary_generate = True
autodoc_typehints = "none"  # numpydoc documents the types in the docstring
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
# Type names in docstrings are prose ("array-like", "dict of str to float"), not cross-references.
numpydoc_xref_param_type = False

sphinx_gallery_conf = {
    "examples_dirs": "examples",
    "gallery_dirs": "gallery",
    "filename_pattern": r"/plot_",
    "abort_on_example_error": True,
    "only_warn_on_example_error": False,
    "download_all_examples": False,
    "remove_config_comments": True,
    "within_subsection_order": "FileNameSortKey",
}
os.environ.setdefault("MPLBACKEND", "Agg")  # the examples draw without a display


def _check_public_names(app, env) -> None:
    """Every name of ``uflux_xr.__all__`` has a docstring and a page in the API reference."""
    from sphinx.util import logging

    log = logging.getLogger("uflux_xr.docs")
    api = (DOCS / "api.rst").read_text()
    for name in uflux_xr.__all__:
        if name == "__version__":
            continue
        obj = getattr(uflux_xr, name)
        if not inspect.getdoc(obj):
            log.warning("uflux_xr.%s has no docstring (it is public: documented names only)", name)
        if f"\n   {name}\n" not in api:
            log.warning("uflux_xr.%s is public but not listed in docs/api.rst", name)


def setup(app):
    app.connect("env-updated", _check_public_names)
