"""A plugin whose optional dependency is missing says, in one line, which extra installs it
(ratiofit.extras); `pip install ratiofit` needs neither pythia8mc, fastjet nor dask."""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from ratiofit.cli import main
from ratiofit.errors import PluginError
from ratiofit.extras import EXTRAS, require

ROOT = Path(__file__).resolve().parents[1]


def test_the_base_install_needs_no_extra() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    base = " ".join(project["dependencies"])
    for dists in EXTRAS.values():
        for d in dists:
            assert d not in base
    extras = project["optional-dependencies"]
    for extra, dists in EXTRAS.items():
        assert all(any(d in req for req in extras[extra]) for d in dists)
    assert "ratiofit[all]" in extras["test"]


def test_require_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "fastjet", None)  # import fastjet → ImportError
    with pytest.raises(PluginError, match=r"^jets needs fastjet, which is not installed: "
                                          r"pip install 'ratiofit\[jets\]'$"):
        require("fastjet", extra="jets", by="jets")


def test_validating_a_pythia_spec_without_pythia8mc_is_one_line(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pythia8mc", None)
    res = CliRunner().invoke(main, ["validate", str(ROOT / "specs" / "dctr_pythia_alphas.yaml")])
    assert res.exit_code == 2, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and "source 'pythia' needs pythia8mc" in lines[0]
    assert "pip install 'ratiofit[pythia]'" in lines[0]
