"""The ratiofit-papers distribution as ratiofit sees it: its studies register through the
``ratiofit`` entry-point group like any third-party package's, pass ``check_plugin``, are
listed under their distribution, and ratiofit itself never imports them.

``make setup`` installs it into the venv next to ratiofit (``pip install --no-deps -e
examples/ratiofit-papers``). Every test here fails, rather than skips, when it is missing.
"""

from __future__ import annotations

import ast
import doctest
import importlib
import importlib.metadata as md
import pkgutil
import sys
from pathlib import Path
from typing import Any

import pytest
import ratiofit_papers
from click.testing import CliRunner

import ratiofit
import ratiofit.plugins
from ratiofit.cli import main
from ratiofit.registry import Registry, reset_registry
from ratiofit.testing import check_plugin

PACKAGE = Path(__file__).resolve().parents[1]
DIST = "ratiofit-papers"
#: study name → entry point (one per plugin module)
STUDIES = {"ncr": "ncr_study", "search_power": "search_power",
           "search_nuisance_feature": "search_nuisance_feature",
           "search_parameterised_sigma": "search_parameterised_sigma",
           "search_pvalues": "search_pvalues", "ensemble_classification": "ensemble_classification",
           "ensemble_regression": "ensemble_regression", "mutual_information": "mutual_information"}
#: placeholder values for a study's required options (sample names etc.), by option kind
PLACEHOLDER: dict[str, Any] = {"str": "a", "str_list": ["a"], "float": 1.0, "int": 1,
                               "float_list": [0.0, 1.0], "int_list": [1], "mapping": {},
                               "number_or_name": 1.0, "number_or_name_list": [1.0]}


@pytest.fixture(scope="module")
def registry() -> Registry:
    """A registry loaded from the installed entry points (fails if the package is missing)."""
    try:
        md.distribution(DIST)
    except md.PackageNotFoundError:
        pytest.fail(f"the paper package '{DIST}' is not installed: run `make setup` "
                    f"or `{sys.executable} -m pip install --no-deps -e {PACKAGE}`")
    reg = Registry()
    reg.load_entry_points()
    assert not [p for p in reg.problems() if DIST in p], reg.problems()
    return reg


@pytest.mark.parametrize("name", sorted(STUDIES))
def test_study_is_registered_from_its_distribution(registry: Registry, name: str) -> None:
    rec = registry.record("study", name)
    assert rec.distribution == DIST
    assert rec.plugin == STUDIES[name]
    assert type(rec.obj).__module__.startswith("ratiofit_papers.studies.")


@pytest.mark.parametrize("name", sorted(STUDIES))
def test_check_plugin(registry: Registry, name: str) -> None:
    plugin = registry.get("study", name)
    options = {key: PLACEHOLDER[opt.kind] for key, opt in plugin.options.items()
               if opt.default is None and opt.kind in PLACEHOLDER}
    check_plugin(plugin, kind="study", options=options)


def test_only_own_loads_ratiofit_without_the_papers(registry: Registry) -> None:
    own = Registry()
    own.load_entry_points(only_own=True)
    studies = {rec.name for rec in own.all_records() if rec.kind == "study"}
    assert "nuisance_closure" in studies  # the generic study stays in the product
    assert not studies & set(STUDIES)


def test_cli_plugins_lists_them_with_their_distribution(registry: Registry) -> None:
    reset_registry()
    try:
        result = CliRunner().invoke(main, ["plugins"])
    finally:
        reset_registry()
    assert result.exit_code == 0, result.output
    listed = {}
    for line in result.stdout.splitlines():
        kind, name, dist, *_ = line.split()
        listed[kind, name] = dist
    for name in STUDIES:
        assert listed.get(("study", name)) == DIST, name
    assert listed.get(("study", "nuisance_closure")) == "ratiofit"


def _papers_imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.split(".")[0] == "ratiofit_papers"]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 \
                and (node.module or "").split(".")[0] == "ratiofit_papers":
            found.append(node.module or "")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and node.value.startswith("ratiofit_papers"):
            found.append(f"string {node.value!r}")  # e.g. importlib.import_module(...)
    return found


def test_ratiofit_never_imports_the_papers() -> None:
    """The product (framework and built-in plugins) stands without this distribution."""
    dirs = {Path(p).resolve() for pkg in (ratiofit, ratiofit.plugins) for p in pkg.__path__}
    files = sorted({f for d in dirs for f in d.rglob("*.py")})
    assert any(f.name == "classifier_loss.py" for f in files)
    assert any(f.name == "spec.py" for f in files)
    offenders = {str(f): found for f in files if (found := _papers_imports(f))}
    assert offenders == {}


def _modules() -> list[str]:
    return sorted(m.name for m in pkgutil.walk_packages(ratiofit_papers.__path__,
                                                        "ratiofit_papers."))


@pytest.mark.parametrize("module", _modules())
def test_docstring_examples(module: str) -> None:
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
