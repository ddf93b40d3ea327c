"""The example third-party plugin package (examples/ratiofit-example-plugins), as CI runs it.

``make setup`` installs it into the venv next to ratiofit (``pip install --no-deps -e
examples/ratiofit-example-plugins``). Every test here fails, rather than skips, when it is
missing: the point is that a third-party package works through the entry-point group.
"""

from __future__ import annotations

import importlib.metadata as md
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from ratiofit.cli import main
from ratiofit.events import EventSet
from ratiofit.fitting import FitProblem
from ratiofit.parameters import Parameter, ParameterSet
from ratiofit.registry import Registry, reset_registry
from ratiofit.testing import analytic_gaussian_reweighter, check_plugin

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "examples" / "ratiofit-example-plugins"
DIST = "ratiofit-example-plugins"
PLUGINS = {("architecture", "resmlp"), ("loss", "focal_bce"), ("strategy", "grid_parabola")}


@pytest.fixture(scope="module")
def registry() -> Registry:
    """A registry loaded from the installed entry points (fails if the package is missing)."""
    try:
        md.distribution(DIST)
    except md.PackageNotFoundError:
        pytest.fail(f"the example plugin package '{DIST}' is not installed: run `make setup` "
                    f"or `{sys.executable} -m pip install --no-deps -e {PACKAGE}`")
    reg = Registry()
    reg.load_entry_points()
    assert not [p for p in reg.problems() if DIST in p], reg.problems()
    return reg


@pytest.mark.parametrize(("kind", "name"), sorted(PLUGINS))
def test_plugin_is_registered_from_its_distribution(registry: Registry, kind: str,
                                                    name: str) -> None:
    rec = registry.record(kind, name)
    assert rec.distribution == DIST
    assert type(rec.obj).__module__.startswith("ratiofit_example.")


@pytest.mark.parametrize(("kind", "name"), sorted(PLUGINS))
def test_check_plugin(registry: Registry, kind: str, name: str) -> None:
    check_plugin(registry.get(kind, name), kind=kind)


def test_focal_log_ratio_is_the_ratio_at_the_optimum(registry: Registry) -> None:
    """Minimise the expected focal loss r·ℓ₁ + ℓ₀ over the logit; the map must give log r."""
    from scipy.optimize import minimize_scalar

    loss = registry.get("loss", "focal_bce")
    keras_loss = loss.keras_loss()
    y = np.array([[1.0], [0.0]], np.float32)

    for r in (0.05, 0.5, 1.0, 3.0, 40.0):
        def expected(z: float, r: float = r) -> float:
            per_example = np.asarray(keras_loss.call(y, np.full((2, 1), z, np.float32)))
            return float(r * per_example[0] + per_example[1])

        z_opt = minimize_scalar(expected, bounds=(-12, 12), method="bounded",
                                options={"xatol": 1e-6}).x
        log_w = float(np.asarray(loss.log_ratio(np.array([[z_opt]], np.float32)))[0, 0])
        assert log_w == pytest.approx(np.log(r), abs=2e-3), r
    # Finite and increasing far out, where a naive formula overflows.
    z = np.array([[-300.0], [-90.0], [0.0], [90.0], [300.0]], np.float32)
    lw = np.asarray(loss.log_ratio(z))[:, 0]
    assert np.all(np.isfinite(lw)) and np.all(np.diff(lw) > 0) and lw[2] == 0.0


def test_grid_parabola_matches_the_likelihood_strategy(registry: Registry) -> None:
    """With the exact Gaussian ratio both strategies minimise the same −log L."""
    rng = np.random.default_rng(11)
    data = EventSet(features=rng.normal(0.5, 1.0, (4000, 1)), feature_names=("x0",))
    reference = EventSet(features=rng.normal(0.0, 1.0, (20000, 1)), feature_names=("x0",))
    problem = FitProblem(reweighter=analytic_gaussian_reweighter(), data=data,
                         reference=reference,
                         parameters=ParameterSet([Parameter(name="mu", nominal=0.0,
                                                            low=-2.0, high=2.0)]))
    ours = registry.get("strategy", "grid_parabola").fit(
        problem=problem, options={"coarse": 21, "fine": 15, "window": 4.5, "zooms": 4})
    lik = registry.get("strategy", "likelihood")
    ref = lik.fit(problem=problem, options={"normalisation": "reference", "minos": False,
                                            "landscape_points": 0, "tolerance": 0.01})
    assert ours.valid
    assert ours.values["mu"] == pytest.approx(ref.values["mu"], abs=0.02 * ref.errors["mu"])
    assert ours.errors["mu"] == pytest.approx(ref.errors["mu"], rel=0.02)


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
    for key in PLUGINS:
        assert listed.get(key) == DIST, key


def test_example_spec_runs(registry: Registry, tmp_path: Path) -> None:
    spec = PACKAGE / "specs" / "example.yaml"
    out = tmp_path / "example"
    reset_registry()
    try:
        res = CliRunner().invoke(main, ["run", str(spec), "-o", str(out), "-q"])
    finally:
        reset_registry()
    assert res.exit_code == 0, res.output
    result: dict[str, Any] = json.loads((out / "result.json").read_text())
    assert result["reweighter"]["architecture"] == "resmlp"
    assert result["reweighter"]["loss"] == "focal_bce"
    fit = result["fit"]
    assert fit["strategy"] == "grid_parabola" and fit["valid"]
    mu = fit["parameters"]["mu"]
    print(f"\nexample spec: mu = {mu['value']:.4f} ± {mu['error']:.4f} "
          f"(analytic MLE {mu['analytic']:.4f} ± {mu['analytic_error']:.4f})")
    assert np.isfinite(mu["error"]) and mu["error"] > 0
    # A small, short training: the learned ratio is biased by a few σ at most.
    assert abs(mu["value"] - mu["analytic"]) < 0.1
