"""The runnable examples in the docstrings run and give what they show."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["ratiofit.parameters", "ratiofit.options", "ratiofit.spec", "ratiofit.events",
           "ratiofit.seeding", "ratiofit.registry", "ratiofit.reweighter",
           "ratiofit.uncertainty", "ratiofit.closure_gate", "ratiofit.coverage",
           "ratiofit.correction", "ratiofit.inference.learned", "ratiofit.provenance",
           "ratiofit.extras"]


@pytest.mark.parametrize("module", MODULES)
def test_docstring_examples(module):
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
