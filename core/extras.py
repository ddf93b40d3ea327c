"""Optional dependencies, installed as extras: what needs them says which, in one line.

``pip install ratiofit`` fits Gaussians, trains and runs pyhf inference; PYTHIA samples,
jet clustering and the dask executor come with extras (``pip install 'ratiofit[pythia]'``,
``[jets]``, ``[dask]``, or ``[all]``).

>>> require("json", extra="none", by="a doctest").__name__
'json'
"""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import PluginError

__all__ = ["EXTRAS", "require"]

#: Extra → the distributions it installs (pyproject.toml's optional-dependencies).
EXTRAS = {"pythia": ("pythia8mc", "fastjet"), "jets": ("fastjet",),
          "dask": ("dask", "distributed")}


def require(module: str, *, extra: str, by: str) -> ModuleType:
    """Import ``module`` for ``by`` (a plugin or feature, named in the message), or raise a
    one-line :class:`~ratiofit.errors.PluginError` saying which extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise PluginError(f"{by} needs {module}, which is not installed: "
                          f"pip install 'ratiofit[{extra}]'") from exc
