"""The spec's ``inference`` section: validation errors (one line, file:line:field) and an
end-to-end run with a trained reweighter as a constrained shape nuisance."""

from __future__ import annotations

import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from ratiofit.cli import main
from ratiofit.errors import SpecError
from ratiofit.spec import load_spec_text

SPEC = """\
seed: 5
parameters:
  mu: {nominal: 0.0, range: [-1.0, 1.0]}
samples:
  nominal: {source: gaussian, n_events: 20000, options: {mean: mu}}
  varied: {source: gaussian, n_events: 20000, theta: {mu: uniform}, options: {mean: mu}}
  signal: {source: gaussian, n_events: 5000, options: {mean: 2.0, width: 0.3}}
  data: {source: gaussian, n_events: 3000, theta: {mu: 0.1}, options: {mean: mu}}
reweighter:
  architecture: mlp
  reference: nominal
  target: varied
  training: {epochs: 2, batch_size: 512, checkpoint: false}
inference:
  mode: exact
  observable: x0
  bins: {n: 10, range: [-7, 7]}
  data: data
  samples:
    sig: {sample: signal, yield: 30, signal: true}
    bkg: {sample: nominal, yield: 3000, nuisances: [shape]}
  nuisances:
    shape: {reweighter: this, parameter: mu, nominal: 0.0, sigma: 0.1}
  upper_limit: false
  impacts: true
"""


@pytest.mark.parametrize(("old", "new", "match"), [
    ("parameter: mu, nominal", "parameter: muu, nominal",
     r":23: inference.nuisances.shape.parameter: the reweighter has no parameter 'muu'; did "
     r"you mean 'mu'"),
    ("sigma: 0.1}", "sigma: 0.0}", r":23: inference.nuisances.shape.sigma: the constraint width "
     r"must be > 0"),
    ("reweighter: this", "reweighter: no/such/run",
     r":23: inference.nuisances.shape.reweighter: no saved reweighter at 'no/such/run'"),
    ("nuisances: [shape]", "nuisances: [shap]", r":21: inference.samples.bkg.nuisances: "
     r"undefined nuisance 'shap'; did you mean 'shape'"),
    ("data: data\n  samples", "data: dat\n  samples", r":18: inference.data: undefined "
     r"sample 'dat'"),
    ("bins: {n: 10, range: [-7, 7]}", "bins: [1, 0.5]", r":17: inference.bins: bin edges must "
     r"increase"),
    ("signal: true", "signal: false", r"inference.samples: no sample is scaled by the "
     r"parameter of interest 'mu' \(give one 'signal: true'\)"),
    ("data: data\n  samples", "data: [data, dat]\n  samples", r":18: inference.data: "
     r"undefined sample 'dat'"),
    ("data: data\n  samples", "data: [data, data]\n  samples", r":18: inference.data: a "
     r"sample is listed twice"),
    ("data: data\n  samples", "data: []\n  samples", r":18: inference.data: expected a "
     r"sample name or a list"),
    ("sigma: 0.1}", "sigma: 0.1, measured: high}", r":23: inference.nuisances.shape.measured: "
     r"'measured': expected a finite number"),
])
def test_inference_spec_errors(old: str, new: str, match: str) -> None:
    assert old in SPEC
    with pytest.raises(SpecError, match=match):
        load_spec_text(SPEC.replace(old, new))


def test_saved_reweighter_with_other_theta_names_is_refused(tmp_path: Path) -> None:
    rw_dir = tmp_path / "saved" / "reweighter"
    rw_dir.mkdir(parents=True)
    (rw_dir / "metadata.json").write_text(json.dumps({"parameters": [
        {"name": "alpha_s", "nominal": 0.1365, "low": 0.1, "high": 0.18}]}))
    text = SPEC.replace("reweighter: this", f"reweighter: {tmp_path / 'saved'}")
    with pytest.raises(SpecError, match=r"has no parameter 'mu' \(it has: alpha_s\)"):
        load_spec_text(text, path=str(tmp_path / "s.yaml"))


@pytest.fixture(scope="module")
def inference_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("inference") / "out"
    spec = out.parent / "spec.yaml"
    spec.write_text(SPEC)
    res = CliRunner().invoke(main, ["run", str(spec), "-o", str(out), "-q"])
    assert res.exit_code == 0, res.output
    return out, json.loads((out / "result.json").read_text())["inference"]


def test_inference_run_fits_the_shape_nuisance(inference_run: tuple[Path, dict]) -> None:
    """Data are background only at θ = θ₀ + 1σ. With 3000 events the fitted θ has an error
    of ~0.02 (≈ 1/√3000 from the data, folded with the σ = 0.1 constraint), so θ̂ must lie
    within 4 errors of 0.1; the signal strength within 4 errors of 0."""
    _, inf = inference_run
    fit = inf["fit"]
    values = dict(zip(fit["names"], fit["values"], strict=True))
    errors = dict(zip(fit["names"], fit["errors"], strict=True))
    theta = fit["pulls"]["shape"]["theta"]
    theta_error = fit["pulls"]["shape"]["theta_error"]
    assert abs(theta - 0.1) < 4 * theta_error
    assert abs(values["mu"] - 0.0) < 4 * errors["mu"] + 1e-9
    assert 0 < inf["hypotest"]["cls_observed"] <= 1
    assert inf["impacts"][0]["name"] == "shape"


def test_inference_carries_the_learned_ratio(inference_run: tuple[Path, dict]) -> None:
    """Three bootstrap replicas (the default) give learned-ratio modifiers at θ̂; the POI's
    error with them is at least its error without (a modifier more can only widen a
    profile likelihood), and the share is reported."""
    out, inf = inference_run
    learned = inf["learned_ratio"]
    assert len(learned["trained"]) == 3
    assert all((out / d / "metadata.json").is_file() for d in learned["trained"])
    (term,) = learned["terms"]
    assert term["nuisance"] == "shape" and term["replicas"] == 3
    assert term["theta"] == pytest.approx(inf["fit_without_learned_ratio"]["pulls"]["shape"]
                                          ["theta"])
    assert 1 <= len(term["modifiers"]) <= 2
    # the learned fit's share (before the simulation correction, which widens no less)
    comps = inf["fit_before_correction"]["error_components"]["mu"]
    assert comps["total"] >= comps["without_learned_ratio"] * (1 - 1e-6)
    assert comps["learned_ratio"] ** 2 == pytest.approx(
        max(comps["total"] ** 2 - comps["without_learned_ratio"] ** 2, 0.0), abs=1e-12)
    corrected = inf["fit"]["error_components"]["mu"]
    assert corrected["total"] >= comps["total"] * (1 - 1e-6) and corrected["simulation"] > 0
    spec = json.loads((out / inf["workspace"]).read_text())
    names = {m["name"] for s in spec["channels"][0]["samples"] for m in s["modifiers"]}
    assert set(term["modifiers"]) <= names
    # the simulation correction replaces the non-closure modifier (its bias is removed,
    # not only widened over)
    assert learned["nonclosure"] == [] and "shape_nonclosure" not in names
    assert inf["fit"]["correction"]["applied"]


def test_inference_without_replicas_warns(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC + "uncertainty: {replicas: 0}\n")
    res = CliRunner().invoke(main, ["run", str(spec), "-o", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    assert "warning: nuisance 'shape': no reweighter replicas" in res.output
    assert "inference mu = " in res.output
    inf = json.loads((tmp_path / "out" / "result.json").read_text())["inference"]
    assert inf["learned_ratio"]["terms"] == []
    # the simulation correction needs no replicas: the source simulates at the fit
    assert inf["learned_ratio"]["nonclosure"] == [] and inf["fit"]["correction"]["applied"]
    comps = inf["fit"]["error_components"]["mu"]
    assert comps["learned_ratio"] == 0 and comps["simulation"] > 0
    assert comps["total"] >= comps["without_learned_ratio"] * (1 - 1e-6)


def test_coverage_repeat_injects_signal_and_draws_the_measurement() -> None:
    """A coverage repeat of an inference: the data at the nuisance's truth with a Poisson
    number of events, Poisson(POI·yield) signal events added to the data, and the
    auxiliary measurement drawn from N(θ_true, σ)."""
    from ratiofit.coverage import repeat_inference_spec, truth_ranges

    spec = load_spec_text(SPEC)
    assert truth_ranges(spec) == {"mu": pytest.approx((0.5, 5.0)),
                                  "shape": pytest.approx((-0.18, 0.18))}
    measured, injected, n_data = [], [], []
    for k in range(200):
        rep = repeat_inference_spec(spec, k, {"mu": 2.0, "shape": 0.05})
        assert rep.inference.data == ("data", "coverage-signal-0")
        assert rep.samples["data"].theta["mu"].value == 0.05
        assert rep.samples["coverage-signal-0"].source == "gaussian"
        measured.append(rep.inference.nuisances["shape"].measured)
        injected.append(rep.samples["coverage-signal-0"].n_events)
        n_data.append(rep.samples["data"].n_events)
    # 200 draws: means within 4 standard errors of N(0.05, 0.1), Poisson(60), Poisson(3000)
    assert abs(np.mean(measured) - 0.05) < 4 * 0.1 / np.sqrt(200)
    assert abs(np.std(measured) - 0.1) < 4 * 0.1 / np.sqrt(400)
    assert abs(np.mean(injected) - 60) < 4 * np.sqrt(60 / 200)
    assert abs(np.mean(n_data) - 3000) < 4 * np.sqrt(3000 / 200)


def test_coverage_repeat_draws_the_standard_constraints_measurements() -> None:
    """The lumi and normsys constraints' auxiliary measurements of a coverage repeat are
    drawn around the nominal at which its data are simulated, N(1, σ_lumi) and N(0, 1),
    one per constraint however many samples declare it (200 repeats: means within 4
    standard errors, widths within 4 of theirs, 1/√(2·200) relative); a spec's own
    ``measured`` is kept; the other draws do not depend on them."""
    from dataclasses import replace

    from ratiofit.coverage import repeat_inference_spec
    from ratiofit.spec import load_spec

    spec = load_spec(Path(__file__).resolve().parent.parent / "specs" / "inference_analysis.yaml")
    truth = {"signal_strength": 1.0, "mean": 0.05, "width": 1.03}
    lumi, xsec = [], []
    for k in range(200):
        rep = repeat_inference_spec(spec, k, truth)
        seen: dict[str, set[float]] = {}
        for ch in rep.inference.channels.values():
            for ss in ch.samples.values():
                for _, name, d in ss.modifiers:
                    seen.setdefault(name, set()).add(d["measured"])
        assert all(len(v) == 1 for v in seen.values()), seen
        lumi.append(seen["lumi"].pop())
        xsec.append(seen["xsec"].pop())
    assert abs(np.mean(lumi) - 1.0) < 4 * 0.02 / np.sqrt(200)
    assert abs(np.std(lumi) / 0.02 - 1) < 4 / np.sqrt(400)
    assert abs(np.mean(xsec)) < 4 / np.sqrt(200) and abs(np.std(xsec) - 1) < 4 / np.sqrt(400)
    # a declared measurement stays, and the data's draws are the same either way
    sr = spec.inference.channels["SR"]
    fixed_bkg = replace(sr.samples["background"], modifiers=tuple(
        (k, n, {**d, "measured": 0.25}) if n == "xsec" else (k, n, d)
        for k, n, d in sr.samples["background"].modifiers))
    cr = spec.inference.channels["CR"]
    fixed_cr = replace(cr.samples["background"], modifiers=tuple(
        (k, n, {**d, "measured": 0.25}) if n == "xsec" else (k, n, d)
        for k, n, d in cr.samples["background"].modifiers))
    declared = replace(spec, inference=replace(spec.inference, channels={
        "SR": replace(sr, samples={**sr.samples, "background": fixed_bkg}),
        "CR": replace(cr, samples={**cr.samples, "background": fixed_cr})}))
    a, b = repeat_inference_spec(spec, 3, truth), repeat_inference_spec(declared, 3, truth)
    assert {d["measured"] for ch in b.inference.channels.values()
            for ss in ch.samples.values() for _, n, d in ss.modifiers if n == "xsec"} == {0.25}
    assert a.samples == b.samples
    assert a.inference.nuisances == b.inference.nuisances


def test_a_coverage_repeat_keeps_the_corrections_diagnosis(
        inference_run: tuple[Path, dict], monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    """Each parameter of a coverage repeat records how the simulation correction scaled
    its statistical error and the learned fit's slope in it (J's diagonal): the run's
    result, not recomputed."""
    import ratiofit.workflow
    from ratiofit.coverage import _one_inference

    out, inf = inference_run
    result = json.loads((out / "result.json").read_text())
    monkeypatch.setattr(ratiofit.workflow, "run_spec", lambda *a, **k: result)
    row = _one_inference(load_spec_text(SPEC), 0, {"mu": 2.0, "shape": 0.05}, str(tmp_path))
    corr = inf["fit"]["correction"]
    names = list(corr["parameters"])
    for name in ("mu", "shape"):
        j = names.index(name)
        got = row["parameters"][name]["correction"]
        assert got["error_scale"] == corr["error_scale"][j] >= 1.0
        assert got["jacobian"] == corr["jacobian"][j][j]
        assert got["at_limit"] is (name in corr["at_limit"])
        assert row["parameters"][name]["learned"]["value"] != row["parameters"][name]["value"]


def test_inference_exports_a_portable_workspace(inference_run: tuple[Path, dict]) -> None:
    import pyhf

    out, inf = inference_run
    spec = json.loads((out / inf["workspace"]).read_text())
    ws = pyhf.Workspace(spec)  # validates against the schema
    assert {m["type"] for s in spec["channels"][0]["samples"] for m in s["modifiers"]} >= {
        "normfactor", "histosys"}
    assert ws.model().config.poi_name == "mu"


def test_binning_that_drops_events_is_a_one_line_error(tmp_path: Path) -> None:
    spec = tmp_path / "narrow.yaml"
    spec.write_text(SPEC.replace("bins: {n: 10, range: [-7, 7]}", "bins: {n: 10, range: [-1, 1]}")
                    .replace("epochs: 2", "epochs: 1"))
    res = CliRunner().invoke(main, ["run", str(spec), "-o", str(tmp_path / "out"), "-q"])
    assert res.exit_code == 2
    lines = [ln for ln in res.output.strip().splitlines() if ln.startswith("ratiofit: error")]
    assert len(lines) == 1 and "x0" in lines[0] and "Traceback" not in res.output


def test_a_failed_limit_is_a_warning_not_a_lost_run(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A limit scan runs fits far from the data's POI; where one fails, the fit stands and
    the limit is reported as failed, with a warning line."""
    import ratiofit.inference as inf

    def failing(*args, **kwargs):
        raise inf.InferenceError("a fit of the upper-limit scan did not converge: test")

    monkeypatch.setattr(inf, "upper_limit", failing)
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC.replace("upper_limit: false", "upper_limit: true")
                    + "uncertainty: {replicas: 0}\n")
    res = CliRunner().invoke(main, ["run", str(spec), "-o", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    assert "warning: the upper limit failed: a fit of the upper-limit scan" in res.output
    inf_res = json.loads((tmp_path / "out" / "result.json").read_text())["inference"]
    assert inf_res["upper_limit"] == {"failed": "a fit of the upper-limit scan did not "
                                                "converge: test"}
    assert inf_res["fit"]["valid"]
