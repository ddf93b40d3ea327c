"""The portable workspace works with the field's tools, without ratiofit: the ``pyhf``
command line (``pyhf inspect``, ``pyhf fit``) and cabinetry read the JSON that
``write_workspace(portable_workspace(...))`` writes and fit it to ratiofit's own result.

The model carries learned-ratio modifiers and standard modifiers together: a reweighter
nuisance (the exact analytic Gaussian reweighter, ratiofit.testing) as ``normsys`` +
shape ``histosys`` (``split_norm``), the learned ratio's own error as ``histosys``
components from bootstrap-like replicas (:func:`learned_ratio_term`), and ``lumi``,
``normsys``, ``normfactor``, ``shapesys`` and ``staterror``, over two channels.

Every fit minimises the same likelihood from pyhf's suggested start, so the POIs agree
within 10⁻³ of the POI's error — far below it, only a different model (a lost modifier, a
changed constraint) or other data would move them — once each fit has converged to that
precision: a tool running MINUIT with pyhf's defaults is compared with ratiofit's default
fit (the same steps), any other with ratiofit's fit at tolerance 1e-6 (the default stops
≈ 0.005 σ short of the minimum here).
cabinetry is a declared test dependency (pyproject's ``test`` extra): without it the
cabinetry test fails rather than skips.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ratiofit.events import EventSet
from ratiofit.inference import (
    BinnedFitResult,
    Channel,
    ReweighterNuisance,
    Sample,
    StandardModifier,
    add_learned_ratio,
    build_templates,
    fit,
    learned_ratio_term,
    portable_model,
    portable_workspace,
    write_workspace,
)
from ratiofit.testing import analytic_gaussian_reweighter

POI = "mu_sig"
OPTIONS = {"poi": POI, "split_norm": True}


def _events(x: np.ndarray, total: float) -> EventSet:
    return EventSet(features=x[:, None], feature_names=("x0",),
                    weights=np.full(len(x), total / len(x)))


def _channel(rng: np.random.Generator, name: str, edges: np.ndarray,
             yields: tuple[float, float, float]) -> Channel:
    n_sig, n_bkg, n_other = yields
    lumi = StandardModifier("lumi", "lumi", {"sigma": 0.025})

    def counts(mean: float, width: float, n: float) -> np.ndarray:
        x = np.clip(rng.normal(mean, width, int(n)), edges[0] + 1e-9, edges[-1] - 1e-9)
        return np.histogram(x, edges)[0]

    # data: the background shifted by θ = 0.15 and 20% more of the other process
    observed = (counts(0.15, 1.0, n_bkg) + counts(1.0, 0.4, n_sig)
                + counts(-1.0, 1.5, 1.2 * n_other)).astype(float)
    return Channel(name=name, observable="x0", edges=edges, observed=observed, samples=(
        Sample(name="signal", events=_events(rng.normal(1.0, 0.4, 4_000), n_sig), signal=True,
               modifiers=(lumi,)),
        Sample(name="bkg", events=_events(rng.normal(0.0, 1.0, 20_000), n_bkg),
               nuisances=("theta_shape",),
               modifiers=(lumi, StandardModifier("normsys", "bkg_xsec",
                                                 {"lo": 0.95, "hi": 1.06}))),
        Sample(name="other", events=_events(rng.normal(-1.0, 1.5, 10_000), n_other),
               modifiers=(StandardModifier("normfactor", "k_other"),
                          StandardModifier("shapesys", f"other_mc_{name}",
                                           {"relative": 0.04})))))


@pytest.fixture(scope="module")
def templates():
    rng = np.random.default_rng(31)
    channels = [_channel(rng, "SR", np.linspace(-3.0, 3.0, 7), (60.0, 1200.0, 250.0)),
                _channel(rng, "CR", np.linspace(-4.0, 2.0, 5), (5.0, 900.0, 700.0))]
    nu = ReweighterNuisance(name="theta_shape", reweighter=analytic_gaussian_reweighter(),
                            parameter="mu", nominal=0.0, sigma=0.2)
    tpl = build_templates(channels=channels, nuisances=[nu], flow="fold", morph=False)
    # three replicas off by ±10% / +5% in θ: the learned ratio's error at θ̂ = 0.15
    replicas = [analytic_gaussian_reweighter(theta_scale=s) for s in (1.1, 0.9, 1.05)]
    term = learned_ratio_term(channels=channels, nuisance=nu, replicas=replicas, theta=0.15,
                              flow="fold")
    assert term.shifts, "the replicas should give learned-ratio modifiers"
    return add_learned_ratio(tpl, [term])


@pytest.fixture(scope="module")
def workspace(templates, tmp_path_factory) -> Path:
    return write_workspace(portable_workspace(templates, **OPTIONS),
                           tmp_path_factory.mktemp("ws") / "workspace.json")


@pytest.fixture(scope="module")
def ours(templates) -> BinnedFitResult:
    """ratiofit's portable-mode fit with pyhf's default MINUIT settings (tolerance 0.1)."""
    return fit(portable_model(templates, **OPTIONS))


@pytest.fixture(scope="module")
def converged(templates) -> BinnedFitResult:
    """The same fit converged fully (tolerance 1e-6): the reference for a tool that
    minimises with another algorithm. pyhf's default MINUIT tolerance stops this model's
    μ̂ ≈ 0.005 σ short of the minimum (2NLL 7·10⁻⁵ above it), more than 10⁻³ σ."""
    return fit(portable_model(templates, **OPTIONS), tolerance=1e-6)


def _pyhf_cli(*args: str) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("pyhf")
    assert exe.exists(), f"the pyhf command-line tool is not installed next to {sys.executable}"
    return subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=300,
                          check=False)


def _close(poi: float, ours: BinnedFitResult, tool: str) -> None:
    shift = abs(poi - ours.poi_value)
    print(f"\n{tool}: μ̂ = {poi:.8f}, ratiofit {ours.poi_value:.8f} ± {ours.poi_error:.4f} "
          f"(Δ = {shift / ours.poi_error:.2g} σ)")
    assert shift < 1e-3 * ours.poi_error


def test_the_workspace_carries_learned_and_standard_modifiers(workspace):
    spec = json.loads(workspace.read_text())
    kinds = {m["name"]: m["type"] for ch in spec["channels"] for s in ch["samples"]
             for m in s["modifiers"]}
    learned = sorted(n for n in kinds if n.startswith("theta_shape_learned_"))
    assert learned and all(kinds[n] == "histosys" for n in learned)
    assert set(kinds.values()) == {"normfactor", "normsys", "histosys", "lumi", "shapesys",
                                   "staterror"}


def test_pyhf_inspect_reads_it(workspace, tmp_path):
    out = tmp_path / "inspect.json"
    run = _pyhf_cli("inspect", str(workspace), "--output-file", str(out))
    assert run.returncode == 0, run.stderr
    summary = json.loads(out.read_text())
    assert sorted(summary["channels"]) == [["CR", 4], ["SR", 6]]
    assert summary["measurements"] == [["ratiofit", POI, [POI, "lumi"]]]
    systematics = {name: (kind, sorted(mods)) for name, kind, mods in summary["systematics"]}
    assert systematics[POI] == ("unconstrained", ["normfactor"])
    assert systematics["k_other"] == ("unconstrained", ["normfactor"])
    assert systematics["theta_shape"] == ("constrained_by_normal", ["histosys", "normsys"])
    assert systematics["theta_shape_learned_1"] == ("constrained_by_normal", ["histosys"])
    assert systematics["bkg_xsec"] == ("constrained_by_normal", ["normsys"])
    assert systematics["lumi"] == ("constrained_by_normal", ["lumi"])
    assert systematics["staterror_SR"] == ("constrained_by_normal", ["staterror"])
    assert systematics["other_mc_CR"] == ("constrained_by_poisson", ["shapesys"])
    # and the human-readable summary prints too
    assert _pyhf_cli("inspect", str(workspace)).returncode == 0


def test_pyhf_fit_fits_it_to_ratiofits_result(workspace, ours, converged):
    """``pyhf fit`` prints JSON (``mle_parameters``: name → values; ``twice_nll`` with
    ``--value``). With ``--optimizer minuit`` it runs ratiofit's own fit settings; by
    default it minimises with scipy's SLSQP, compared with the converged fit (pyhf 0.7.6's
    ``--optconf tolerance=…`` passes a string and cannot tighten either)."""
    for args, reference in ((["--optimizer", "minuit"], ours), ([], converged)):
        run = _pyhf_cli("fit", str(workspace), "--value", *args)
        assert run.returncode == 0, run.stderr
        result = json.loads(run.stdout)
        _close(result["mle_parameters"][POI][0], reference,
               f"pyhf fit {' '.join(args) or '(scipy)'}")
        assert result["twice_nll"] == pytest.approx(reference.twice_nll, abs=1e-5)


def test_cabinetry_fits_it_to_ratiofits_result(workspace, ours, converged):
    import pyhf

    try:
        import cabinetry
    except ImportError as exc:  # a declared test dependency: fail, never skip
        pytest.fail(f"cabinetry is not installed ({exc}); it is in pyproject's test extra")
    before = pyhf.get_backend()
    try:
        model, data = cabinetry.model_utils.model_and_data(json.loads(workspace.read_text()))
        results = {"default": cabinetry.fit.fit(model, data),
                   "converged": cabinetry.fit.fit(model, data, tolerance=1e-6)}
    finally:
        pyhf.set_backend(*before)  # cabinetry sets pyhf's optimizer globally
    for which, reference in (("default", ours), ("converged", converged)):
        result = results[which]
        labels = list(result.labels)
        assert labels == list(reference.names)
        i = labels.index(POI)
        _close(float(result.bestfit[i]), reference, f"cabinetry ({which})")
        assert float(result.uncertainty[i]) == pytest.approx(reference.poi_error, rel=1e-2)
        assert result.best_twice_nll == pytest.approx(reference.twice_nll, abs=1e-6)
