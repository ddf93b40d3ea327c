"""The runnable examples in every module's docstrings (ratiofit and ratiofit.plugins, found
by walking the packages, so a new module's examples run without being listed) run and give
what they show."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import ratiofit
import ratiofit.plugins


def _modules() -> list[str]:
    return sorted(m.name for pkg in (ratiofit, ratiofit.plugins)
                  for m in pkgutil.walk_packages(pkg.__path__, f"{pkg.__name__}."))


MODULES = _modules()


def test_the_walk_finds_the_framework_and_the_plugins() -> None:
    assert {"ratiofit.spec", "ratiofit.inference.learned",
            "ratiofit.plugins.jets.observables"} <= set(MODULES)


@pytest.mark.parametrize("module", MODULES)
def test_docstring_examples(module):
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
