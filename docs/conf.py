"""Sphinx configuration of the skbayes_re documentation.

Build from the repository root (warnings are errors):

    python -m pip install -e ".[docs]"
    python -m sphinx -W -b html docs docs/_build/html

The gallery runs every script in ``examples/`` (``gallery_helpers.py`` beside this file
chooses their order and arguments); the user guide includes the measured tables of
``benchmarks/results/`` as they are, so a re-run benchmark updates the site.
"""

from __future__ import annotations

import pprint
import sys
import warnings
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS))  # gallery_helpers
sys.path.insert(0, str(DOCS.parent))  # the package of this checkout

# ArviZ announces its coming refactor in a FutureWarning on import: keep it out of the
# examples' printed output (the test suite ignores it too).
warnings.filterwarnings("ignore", message=".*ArviZ is undergoing a major refactor.*")

import skbayes_re  # noqa: E402

project = "skbayes_re"
author = "the skbayes_re developers"
copyright = "the skbayes_re developers"
release = skbayes_re.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "numpydoc",
    "myst_parser",
    "sphinx_gallery.gen_gallery",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
templates_path = ["_templates"]
exclude_patterns = ["_build", "auto_examples/*.ipynb", "auto_examples/*.py"]

# API reference: one autosummary page per public name, numpydoc sections, no member tables
# (autosummary lists the methods; numpydoc's tables would document them a second time).
autosummary_generate = True
autodoc_typehints = "none"
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False


def _methods_default_instances_lack() -> dict[str, list[str]]:
    """Per estimator, the methods its class has but a default instance does not (scikit-learn's
    ``available_if``: the classifier has no ``partial_fit``), left out of its page."""
    lacking = {}
    for name in skbayes_re.__all__:
        estimator = getattr(skbayes_re, name)()
        lacking[name] = [
            method
            for method in dir(type(estimator))
            if not method.startswith("_") and not hasattr(estimator, method)
        ]
    return lacking


autosummary_context = {"lacking": _methods_default_instances_lack()}

# Markdown pages (the user guide) and the benchmark tables they include.
myst_heading_anchors = 3

sphinx_gallery_conf = {
    "examples_dirs": ["../examples"],
    "gallery_dirs": ["auto_examples"],
    "filename_pattern": r".*\.py$",  # every example runs in the build
    "within_subsection_order": "gallery_helpers.example_order",
    "reset_argv": "gallery_helpers.reset_argv",
    "doc_module": ("skbayes_re",),
    "backreferences_dir": "gen_modules/backreferences",
    "download_all_examples": False,
    "remove_config_comments": True,
    "image_scrapers": ("matplotlib",),
    "matplotlib_animations": False,
}

html_theme = "pydata_sphinx_theme"
html_title = f"skbayes_re {release}"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "secondary_sidebar_items": ["page-toc"],
}
html_static_path: list[str] = []
html_show_sourcelink = False
toc_object_entries_show_parents = "hide"  # "fit()" in a class page's contents, not "Class.fit()"


def _defining_module_comment(name: str, value) -> list[str]:
    """The ``#:`` comment above a constant in the module that assigns it: a package
    re-exports its constants (``skbayes_re.datasets.SEED_FEATURES`` comes from
    ``skbayes_re.datasets._zillow``), where autodoc, reading the package, finds no comment."""
    from sphinx.pycode import ModuleAnalyzer

    package, attribute = name.rsplit(".", 1)
    for module_name, module in sorted(sys.modules.items()):
        if module_name.startswith(package) and getattr(module, attribute, None) is value:
            comments = ModuleAnalyzer.for_module(module_name).find_attr_docs()
            if ("", attribute) in comments:
                return list(comments["", attribute])
    return []


def document_constant(app, what, name, obj, options, lines) -> None:
    """A public constant's page: its comment, then its value, pretty-printed."""
    if what != "data":
        return
    lines[:] = [*_defining_module_comment(name, obj), "", "Value::", ""]
    lines += ["    " + line for line in pprint.pformat(obj, width=88).splitlines()]


def setup(app):
    app.connect("autodoc-process-docstring", document_constant)
