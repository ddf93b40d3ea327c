"""Sphinx configuration of the ratiofit documentation (``make docs``).

Pages are Markdown (MyST). The CLI reference is generated from the click application
(sphinx-click), the API reference from the docstrings (autodoc + napoleon, numpydoc
style), the spec and plugin reference is ``plugins.md`` (written by ``make docs-tables``
from the schema docstring and the plugins' option declarations). Every other ``*.md``
page in this directory (the result pages of the reproduced papers) is listed in the
"Results" section of the index automatically, by name.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from ratiofit import __version__  # noqa: E402

project = "ratiofit"
author = "the ratiofit authors"
copyright = "the ratiofit authors"
version = release = __version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx_click",
]

source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]

myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "undoc-members": False, "show-inheritance": False}
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False
napoleon_use_ivar = True  # "Attributes" as fields: no second description of dataclass fields

# Type hints of re-exported names (e.g. FitResult, defined in ratiofit.fitting and seen
# through several modules) cannot always be resolved to one target: not an error of the docs.
suppress_warnings = ["ref.python"]

html_theme = "alabaster"
html_title = f"ratiofit {release}"
html_static_path: list[str] = []

nitpicky = False

#: Pages placed by hand in the index; every other page goes under "Results".
GUIDE_PAGES = ["index", "getting-started", "tutorial-files", "concepts", "plugin-authors",
               "cli", "plugins", "api", "execution"]
RESULT_PAGES_TOKEN = "%RESULT_PAGES%"


def result_pages(found: set[str]) -> list[str]:
    """The other top-level pages Sphinx found, sorted by name (``results`` first)."""
    names = [n for n in found if "/" not in n and n not in GUIDE_PAGES]
    return sorted(names, key=lambda n: (n != "results", n))


def _fill_result_pages(app: Any, docname: str, source: list[str]) -> None:
    if docname == "index":
        pages = result_pages(set(app.env.found_docs))
        source[0] = source[0].replace(RESULT_PAGES_TOKEN, "\n".join(pages))


_LITERAL = re.compile(r"(``.*?``|:math:`[^`]*`)")
_NAMES = re.compile(r"^(\s*)\w+(, *\w+)*,$")
_MORE_NAMES = re.compile(r"^(\s*)\w+(, *\w+)*$")


def _clean_docstring(app: Any, what: str, name: str, obj: Any, options: Any,
                     lines: list[str]) -> None:
    """Read ratiofit's plain-text docstring conventions as reST.

    - |x| means an absolute value or a norm, never a reST substitution: bars outside
      inline literals and math are escaped (tables and line blocks, lines starting with
      a bar, are left alone);
    - a list of parameter names sharing one description may wrap onto a second line
      (``a, b,`` then ``c, d``): the lines are joined, as numpydoc wants one line.
    """
    i = 0
    while i + 1 < len(lines):
        m = _NAMES.match(lines[i])
        nxt = _MORE_NAMES.match(lines[i + 1])
        if m and nxt and m.group(1) == nxt.group(1):
            lines[i:i + 2] = [f"{lines[i]} {lines[i + 1].strip()}"]
            continue
        i += 1
    for i, line in enumerate(lines):
        if "|" not in line or line.lstrip().startswith(("|", "+")):
            continue
        parts = _LITERAL.split(line)
        lines[i] = "".join(p if p.startswith(("``", ":math:")) else p.replace("|", "\\|")
                           for p in parts)


def setup(app: Any) -> dict[str, Any]:
    app.connect("source-read", _fill_result_pages)
    app.connect("autodoc-process-docstring", _clean_docstring, priority=100)  # before napoleon
    return {"parallel_read_safe": True}
