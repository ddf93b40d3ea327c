"""The inference section's further forms (issue: analysis-grade inference): several
parameters of interest, the unbinned backend from YAML, and an analysis's own pyhf
workspace with a learned nuisance added."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from ratiofit.cli import main
from ratiofit.errors import SpecError
from ratiofit.spec import load_spec_text, resolved_dict

HEAD = """\
seed: 7
parameters:
  mu: {nominal: 0.0, range: [-1.0, 1.0]}
samples:
  nominal: {source: gaussian, n_events: 4000, options: {mean: mu}}
  varied: {source: gaussian, n_events: 4000, theta: {mu: uniform}, options: {mean: mu}}
  signal: {source: gaussian, n_events: 2000, options: {mean: 2.0, width: 0.3}}
  other: {source: gaussian, n_events: 2000, options: {mean: -2.0, width: 0.3}}
  data: {source: gaussian, n_events: 2000, theta: {mu: 0.1}, options: {mean: mu}}
reweighter:
  architecture: mlp
  reference: nominal
  target: varied
  training: {epochs: 1, batch_size: 512, checkpoint: false}
uncertainty: {replicas: 0, correction: none}
"""

TWO_POIS = HEAD + """\
inference:
  observable: x0
  bins: {n: 8, range: [-6, 6]}
  flow: fold
  poi: [mu_a, mu_b]
  data: data
  upper_limit: false
  impacts: false
  samples:
    a: {sample: signal, yield: 30, signal: true}
    b: {sample: other, yield: 30, signal: mu_b}
    bkg: {sample: nominal, yield: 2000, nuisances: [shape]}
  nuisances:
    shape: {reweighter: this, parameter: mu, nominal: 0.0, sigma: 0.1}
"""


def _run(tmp_path: Path, text: str, name: str = "s.yaml") -> dict:
    path = tmp_path / name
    path.write_text(text)
    res = CliRunner().invoke(main, ["run", str(path), "-o", str(tmp_path / "out"), "-q",
                                    "--no-plots"])
    assert res.exit_code == 0, res.output
    return json.loads((tmp_path / "out" / "result.json").read_text())["inference"]


def test_two_pois_are_both_fitted_and_the_first_is_tested(tmp_path: Path) -> None:
    spec = load_spec_text(TWO_POIS, path="p.yaml")
    assert spec.inference is not None and spec.inference.pois == ("mu_a", "mu_b")
    assert spec.inference.samples["b"].poi == "mu_b"
    assert load_spec_text(json.dumps(resolved_dict(spec)), path="r.yaml").inference == \
        spec.inference
    out = _run(tmp_path, TWO_POIS)
    assert out["fit"]["poi"] == "mu_a" and {"mu_a", "mu_b"} <= set(out["fit"]["names"])
    ws = json.loads((tmp_path / "out" / "workspace.json").read_text())
    mods = {s["name"]: {m["name"]: m["type"] for m in s["modifiers"]}
            for s in ws["channels"][0]["samples"]}
    assert mods["a"]["mu_a"] == "normfactor" and mods["b"]["mu_b"] == "normfactor"
    assert "mu_a" not in mods["b"]
    # background-only data: both signal strengths within 5 errors of 0
    for q in ("mu_a", "mu_b"):
        i = out["fit"]["names"].index(q)
        assert out["fit"]["values"][i] < 5 * out["fit"]["errors"][i]


@pytest.mark.parametrize(("old", "new", "match"), [
    ("signal: mu_b}", "signal: mu_c}", r"samples\.b\.signal: expected true, false or the "
                                       r"name of a parameter of interest \(mu_a, mu_b\)"),
    ("signal: mu_b}", "signal: false}", "no sample is scaled by the parameter of interest "
                                        "'mu_b'"),
    ("poi: [mu_a, mu_b]", "poi: [mu_a, mu_a]", "inference.poi: expected a parameter name or "
                                               "a list of distinct names"),
    ("poi: [mu_a, mu_b]", "poi: [mu_a, shape]", "the parameter of interest 'shape' is also a "
                                                "nuisance's name"),
])
def test_bad_pois_are_one_line_errors(old: str, new: str, match: str) -> None:
    assert old in TWO_POIS
    with pytest.raises(SpecError, match=match) as info:
        load_spec_text(TWO_POIS.replace(old, new, 1), path="p.yaml")
    assert "\n" not in str(info.value) and str(info.value).startswith("p.yaml:")


# four epochs: the signal's density ratio of a one-epoch classifier mimicked a signal of
# μ ≈ 8 ± 2.4 in background-only data (what the replicas, not the test, have to show)
# (and the simulation correction of ratiofit.unbinned_correction on)
# (1000 data events and three simulated events per expected event in the correction instead
# of the default ten: its unbinned fits, whose time grows with the events, are the test's
# slowest part; the correction's noise is then √(1/3) of the statistical error)
UNBINNED = HEAD.replace("replicas: 0", "replicas: 2").replace("epochs: 1", "epochs: 4").replace(
    "correction: none", "correction: simulation, correction_events: 3").replace(
    "data: {source: gaussian, n_events: 2000", "data: {source: gaussian, n_events: 1000") + """\
inference:
  backend: unbinned
  poi: mu_sig
  data: data
  hypotest: {poi_value: 2.0}
  ratio_training: {epochs: 4, batch_size: 512}
  samples:
    sig: {sample: signal, yield: 30, signal: true, modifiers: [{lumi: {sigma: 0.02}}]}
    bkg: {sample: nominal, yield: 1000, nuisances: [shape],
          modifiers: [{lumi: {sigma: 0.02}}, {normsys: {name: xsec, lo: 0.95, hi: 1.05}}]}
  nuisances:
    shape: {reweighter: this, parameter: mu, nominal: 0.0, sigma: 0.1}
"""


def test_the_unbinned_backend_runs_from_yaml(tmp_path: Path) -> None:
    spec = load_spec_text(UNBINNED, path="u.yaml")
    assert spec.inference is not None and spec.inference.backend == "unbinned"
    assert load_spec_text(json.dumps(resolved_dict(spec)), path="r.yaml").inference == \
        spec.inference
    # with an observable and bins (optional for this backend) the fit draws the binned
    # plots: histograms of that observable
    text = UNBINNED.replace("  data: data\n", "  data: data\n  observable: x0\n"
                            "  bins: {n: 8, range: [-8, 8]}\n", 1)
    path = tmp_path / "u.yaml"
    path.write_text(text)
    res = CliRunner().invoke(main, ["run", str(path), "-o", str(tmp_path / "out"), "-q"])
    assert res.exit_code == 0, res.output
    out = json.loads((tmp_path / "out" / "result.json").read_text())["inference"]
    fit = out["fit"]
    assert out["backend"] == "unbinned"
    assert fit["names"] == ["mu_sig", "shape", "lumi", "xsec"]
    # the trained density ratio of the signal is saved, and the replicas' spread is in
    saved = tmp_path / "out" / out["signal_ratios"]["signal/nominal"]["trained"]
    assert saved.is_dir()
    # trained as inference.ratio_training says, the rest of its options at their defaults
    training = json.loads((saved / "metadata.json").read_text())["training"]
    assert (training["epochs"], training["batch_size"], training["patience"]) == (4, 512, 5)
    comp = fit["error_components"]["mu_sig"]
    assert comp["total"] == pytest.approx(np.sqrt(comp["without_learned_ratio"] ** 2 + comp[
        "learned_ratio"] ** 2 + comp["simulation"] ** 2), rel=0.5)
    # the simulation correction: reported values are the corrected ones, the learned fit's
    # kept beside them; its noise is a third of the data's variance (K = 3 events per
    # expected event), so its error is about √(1/3) of the statistical one
    corr = fit["correction"]
    assert corr["applied"] and corr["steps"] and corr["events_per_expected"] == 3
    # (three per expected event of the last simulated point; its yields are within the
    # normsys's and lumi's few per cent of the spec's 1030)
    assert sum(corr["events"].values()) == pytest.approx(3 * 1030, rel=0.1)
    for i, n in enumerate(fit["names"]):
        assert fit["values"][i] == pytest.approx(corr["parameters"][n]["corrected"])
        assert fit["learned_values"][i] == pytest.approx(corr["parameters"][n]["fitted"])
    # (background-only data: where the learned μ̂ sits on its bound 0 and the simulation
    # there returns to it, the bound is probed and half the span [0, edge] joins the
    # simulation share; the noise is what remains)
    span = corr["at_limit"].get("mu_sig")
    half = 0.0 if span is None else 0.5 * (span["edge"] - span["limit"])
    if span is not None:
        assert span["kind"] == "bound" and span["limit"] == 0.0 and span["edge"] > 0
        assert fit["poi_intervals"]["68"][0] == 0.0
        assert fit["poi_intervals"]["68"][1] >= span["edge"]
    # the noise is the simulated fit's error over √3, that fit's error the data's one at
    # the simulated point: compared with the learned fit's 95 % upper side over 1.96 (the
    # Hesse error on a bound is not one), within a factor 2 (that point lies up to a few
    # errors above μ̂, where the error grows with the signal)
    noise = np.sqrt(max(comp["simulation"] ** 2 - half ** 2, 0.0))
    mu_hat = fit["learned_values"][0]
    sigma = (fit["poi_intervals_stat"]["95"][1] - mu_hat) / 1.96
    assert 0.5 < noise / sigma / np.sqrt(1 / 3) < 2.0, (comp, span, sigma)
    assert comp["total"] >= comp["without_learned_ratio"]
    h = out["hypotest"]
    assert 0 <= h["cls_observed"] <= 1 and h["poi_value"] == 2.0
    assert list(h["cls_expected"]) == sorted(h["cls_expected"])
    assert out["upper_limit"]["observed"] > 0
    assert {i["name"] for i in out["impacts"]} == {"shape", "lumi", "xsec"}
    i = out["scan"]["twice_delta_nll"]
    assert min(i) == pytest.approx(0.0, abs=0.05)
    closure = out["signal_ratios"]["signal/nominal"]["closure"]
    assert closure["ndf"] > 0 and 0 <= closure["p_value"] <= 1
    # each stage's stacked samples add up to the expected yields (the bins cover the
    # events here); the report draws the same files as for a binned fit
    pd = out["plot_data"]["channels"]["channel"]
    for stage in ("prefit", "postfit"):
        expected = sum(out["yields"][stage]["channel"].values())
        assert sum(pd[stage]["total"]) == pytest.approx(expected, rel=1e-9)
    assert sum(pd["observed"]) == 1000  # every data event of the spec's sample
    assert np.all(np.asarray(pd["postfit"]["band"]) >= 0)
    drawn = {p.name for p in (tmp_path / "out" / "plots").iterdir()}
    assert {"postfit_channel.png", "pulls.png", "cls_scan.png", "impacts.png"} <= drawn


@pytest.mark.parametrize(("old", "new", "match"), [
    ("nuisances: [shape],\n", "nuisances: [],\n", "the unbinned backend needs exactly one "
                                                 "sample per channel that lists the "
                                                 "reweighter's nuisances"),
    ("{normsys: {name: xsec, lo: 0.95, hi: 1.05}}", "{shapesys: {name: mc, relative: 0.1}}",
     r"modifiers\[1\]\.shapesys: shapesys is a per-bin modifier"),
    ("ratio_training: {epochs: 4, batch_size: 512}", "ratio_training: {epoch: 4}",
     r"inference\.ratio_training\.epoch: unknown field 'epoch'; did you mean 'epochs'"),
    ("hypotest: {poi_value: 2.0}", "hypotest: {calctype: toybased, ntoys: 0}",
     r"inference\.hypotest\.ntoys: must be >= 1, got 0"),
    ("ratio_training: {epochs: 4, batch_size: 512}", "ratio_training: {batch_size: 0}",
     r"inference\.ratio_training\.batch_size: "),
    ("backend: unbinned", "backend: unbined", "unknown backend 'unbined'; did you mean "
                                              "'unbinned'"),
])
def test_bad_unbinned_sections_are_one_line_errors(old: str, new: str, match: str) -> None:
    assert old in UNBINNED
    with pytest.raises(SpecError, match=match) as info:
        load_spec_text(UNBINNED.replace(old, new, 1), path="u.yaml")
    assert "\n" not in str(info.value) and str(info.value).startswith("u.yaml:")


def test_the_unbinned_options_are_refused_on_pyhf() -> None:
    text = TWO_POIS.replace("  upper_limit: false\n", "  upper_limit: false\n  scan: false\n")
    with pytest.raises(SpecError, match=r"inference\.scan: only the unbinned backend"):
        load_spec_text(text, path="p.yaml")
    # switching a spec's backend keeps or drops them with it
    from ratiofit.spec import with_inference

    spec = load_spec_text(UNBINNED.replace("  data: data\n", "  data: data\n  observable: x0\n"
                                           "  bins: {n: 8, range: [-8, 8]}\n", 1), path="u.yaml")
    assert spec.inference is not None and spec.inference.ratio_training.batch_size == 512
    back = with_inference(spec, backend="pyhf", mode="portable")
    assert back.inference is not None and back.inference.backend == "pyhf"


def _analysis_workspace() -> dict:
    """A small analysis: a signal region with signal and background histograms, a lumi and
    a background normsys, and its observations (what an analysis keeps in pyhf JSON)."""
    bkg = [50.0, 300.0, 900.0, 900.0, 300.0, 50.0]
    return {"version": "1.0.0",
            "channels": [{"name": "SR", "samples": [
                {"name": "signal", "data": [0.0, 0.0, 0.0, 2.0, 20.0, 8.0],
                 "modifiers": [{"name": "mu", "type": "normfactor", "data": None},
                               {"name": "lumi", "type": "lumi", "data": None}]},
                {"name": "background", "data": bkg,
                 "modifiers": [{"name": "lumi", "type": "lumi", "data": None},
                               {"name": "bkg_norm", "type": "normsys",
                                "data": {"lo": 0.9, "hi": 1.1}}]}]}],
            "observations": [{"name": "SR", "data": [52.0, 310.0, 880.0, 930.0, 290.0, 47.0]}],
            "measurements": [{"name": "meas", "config": {"poi": "mu", "parameters": [
                {"name": "lumi", "auxdata": [1.0], "sigmas": [0.02],
                 "bounds": [[0.8, 1.2]], "inits": [1.0]}]}}]}


WITH_WORKSPACE = HEAD + """\
inference:
  workspace: analysis.json
  mode: portable
  flow: fold
  channels:
    SR:
      observable: x0
      bins: [-3, -2, -1, 0, 1, 2, 3]
      samples:
        background: {sample: nominal, nuisances: [shape]}
  nuisances:
    shape: {reweighter: this, parameter: mu, nominal: 0.0, sigma: 0.1}
"""


def test_a_learned_nuisance_joins_an_analysis_workspace(tmp_path: Path) -> None:
    import pyhf

    (tmp_path / "analysis.json").write_text(json.dumps(_analysis_workspace()))
    spec = load_spec_text(WITH_WORKSPACE, path=str(tmp_path / "w.yaml"))
    assert spec.inference is not None and spec.inference.poi == "mu"
    out = _run(tmp_path, WITH_WORKSPACE, "w.yaml")
    ws = json.loads((tmp_path / "out" / "workspace.json").read_text())
    pyhf.Workspace(ws)  # a standard workspace again
    bkg = ws["channels"][0]["samples"][1]
    mods = {m["name"]: m for m in bkg["modifiers"]}
    assert set(mods) == {"lumi", "bkg_norm", "shape"}
    assert bkg["data"] == _analysis_workspace()["channels"][0]["samples"][1]["data"]
    lo, hi = (np.asarray(mods["shape"]["data"][k]) for k in ("lo_data", "hi_data"))
    # a mean shift of +0.1 moves events from the lower to the upper bins: the variation
    # is relative, the analysis's counts its scale
    assert hi[-1] > bkg["data"][-1] > lo[-1] and hi[0] < bkg["data"][0] < lo[0]
    assert out["started_from"]["measurement"] == "meas"
    assert out["fit"]["poi"] == "mu" and "shape" in out["fit"]["names"]


@pytest.mark.parametrize(("old", "new", "match"), [
    ("    shape: {reweighter", "    bkg_norm: {reweighter", "'bkg_norm' is already a "
                                                          "parameter of the workspace"),
    ("    SR:\n", "    CR:\n", "the workspace has no channel 'CR'"),
    ("bins: [-3, -2, -1, 0, 1, 2, 3]", "bins: [-3, -1, 0, 1, 3]", r"SR\.bins: 4 bins, the "
                                                                  "workspace's channel 'SR' "
                                                                  "has 6"),
    ("background: {sample", "bkgd: {sample", "the workspace's channel 'SR' has no sample "
                                             "'bkgd'"),
    ("workspace: analysis.json", "workspace: missing.json", "cannot read the workspace "
                                                            "'missing.json'"),
    ("{sample: nominal, nuisances: [shape]}", "{sample: nominal, yield: 5, nuisances: [shape]}",
     "the workspace gives this sample's yield"),
])
def test_bad_workspace_starts_are_one_line_errors(tmp_path: Path, old: str, new: str,
                                                  match: str) -> None:
    (tmp_path / "analysis.json").write_text(json.dumps(_analysis_workspace()))
    assert old in WITH_WORKSPACE
    with pytest.raises(SpecError, match=match) as info:
        load_spec_text(WITH_WORKSPACE.replace(old, new, 1), path=str(tmp_path / "w.yaml"))
    assert "\n" not in str(info.value)



def test_an_ensemble_infers_with_its_members_mean_log_ratio(tmp_path: Path) -> None:
    """With ``ensemble: 2`` the learned nuisance is the members' averaged reweighter: the
    workspace's +1σ template is the nominal sample reweighted by the mean log-ratio of the
    two saved members (recomputed here from the same events), not member 0's."""
    from ratiofit.inference import reweighted_template
    from ratiofit.registry import get_registry
    from ratiofit.reweighter import AveragedReweighter, Reweighter
    from ratiofit.workflow import Samples

    text = TWO_POIS.replace("uncertainty:", "ensemble: 2\nuncertainty:", 1)
    out = _run(tmp_path, text)
    assert out["reweighter"]["members_averaged"] == 2
    run = tmp_path / "out"
    reg = get_registry()
    members = [Reweighter.load(run / "reweighter", registry=reg),
               Reweighter.load(run / "ensemble" / "member-1" / "reweighter", registry=reg)]
    spec = load_spec_text(text, path=str(tmp_path / "s.yaml"))
    events = Samples(spec, reg)["nominal"]
    edges = np.linspace(-6, 6, 9)
    w = events.event_weights * (2000 / events.event_weights.sum())  # the sample's yield
    ws = json.loads((run / "workspace.json").read_text())
    bkg = next(s for s in ws["channels"][0]["samples"] if s["name"] == "bkg")
    hi = np.asarray(next(m for m in bkg["modifiers"] if m["name"] == "shape")["data"]
                    ["hi_data"])

    def up(rw: object) -> np.ndarray:
        """n_b + h_b(θ₀ + σ) − h_b(θ₀) (the portable histosys, pyhf_workspace.py)."""
        def h(mu: float) -> np.ndarray:
            return reweighted_template(reweighter=rw, events=events, observable="x0",
                                       edges=edges, theta={"mu": mu}, weights=w,
                                       flow="fold").values
        nominal = np.histogram(np.clip(events.features[:, 0], -6, 6), edges, weights=w)[0]
        return nominal + h(0.1) - h(0.0)

    # the same float32 networks on the same events: equal within float rounding; member
    # 0 alone differs from the average by the members' training noise (≫ 1e-4 here)
    np.testing.assert_allclose(hi, up(AveragedReweighter(members=members)), rtol=1e-5,
                               atol=1e-6)
    assert not np.allclose(hi, up(members[0]), rtol=1e-4)
