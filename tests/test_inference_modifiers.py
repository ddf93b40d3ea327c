"""Standard HistFactory modifiers beside the learned nuisances (issue: analysis-grade
inference): normsys, lumi, normfactor and shapesys on inference samples, from the spec to
both pyhf modes and the portable workspace."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ratiofit.errors import SpecError
from ratiofit.events import EventSet
from ratiofit.inference import (
    Channel,
    InferenceError,
    ReweighterNuisance,
    Sample,
    StandardModifier,
    build_templates,
    exact_model,
    fit,
    portable_model,
    portable_workspace,
)
from ratiofit.spec import load_spec_text, resolved_dict
from ratiofit.testing import analytic_gaussian_reweighter

EDGES = np.linspace(-8.0, 8.0, 9)


def _events(x: np.ndarray, total: float) -> EventSet:
    return EventSet(features=x[:, None], feature_names=("x0",),
                    weights=np.full(len(x), total / len(x)))


@pytest.fixture(scope="module")
def templates():
    rng = np.random.default_rng(3)
    bkg = _events(rng.normal(0.0, 1.0, 20_000), 2000.0)
    other = _events(rng.normal(-1.0, 1.0, 10_000), 500.0)
    sig = _events(rng.normal(1.0, 0.4, 5_000), 100.0)
    nu = ReweighterNuisance(name="shape", reweighter=analytic_gaussian_reweighter(),
                            parameter="mu", nominal=0.0, sigma=0.2)
    observed = np.round(np.histogram(rng.normal(0.0, 1.0, 2000), EDGES)[0]
                        + np.histogram(rng.normal(-1.0, 1.0, 550), EDGES)[0]
                        + np.histogram(rng.normal(1.0, 0.4, 100), EDGES)[0])
    ch = Channel(name="SR", observable="x0", edges=EDGES, observed=observed, samples=(
        Sample(name="signal", events=sig, signal=True,
               modifiers=(StandardModifier("lumi", "lumi", {"sigma": 0.02}),)),
        Sample(name="bkg", events=bkg, nuisances=("shape",),
               modifiers=(StandardModifier("normsys", "bkg_xsec", {"lo": 0.9, "hi": 1.1}),
                          StandardModifier("lumi", "lumi", {"sigma": 0.02}))),
        Sample(name="other", events=other,
               modifiers=(StandardModifier("normfactor", "k_other"),
                          StandardModifier("shapesys", "other_shape", {"relative": 0.05})))))
    return build_templates(channels=[ch], nuisances=[nu])


def test_the_modifiers_reach_the_workspace_and_pyhf_fits_it(templates):
    import pyhf

    spec = portable_workspace(templates, poi="mu_sig")
    mods = {m["name"]: m for s in spec["channels"][0]["samples"] for m in s["modifiers"]}
    assert mods["bkg_xsec"] == {"name": "bkg_xsec", "type": "normsys",
                                "data": {"lo": 0.9, "hi": 1.1}}
    assert mods["k_other"]["type"] == "normfactor" and mods["lumi"]["type"] == "lumi"
    other = next(s for s in spec["channels"][0]["samples"] if s["name"] == "other")
    np.testing.assert_allclose(mods["other_shape"]["data"], 0.05 * np.asarray(other["data"]))
    lumi = next(p for p in spec["measurements"][0]["config"]["parameters"]
                if p["name"] == "lumi")
    assert lumi["auxdata"] == [1.0] and lumi["sigmas"] == [0.02]
    # pyhf's own fit of the written workspace and ratiofit's agree (same model, same data)
    ws = pyhf.Workspace(json.loads(json.dumps(spec)))
    model, data = ws.model(), ws.data(ws.model())
    pyhf.set_backend("numpy", pyhf.optimize.minuit_optimizer(verbose=0))
    best = pyhf.infer.mle.fit(data, model)
    ours = fit(portable_model(templates, poi="mu_sig"))
    assert ours.poi_value == pytest.approx(float(best[model.config.poi_index]), abs=1e-3)
    assert {"bkg_xsec", "k_other", "lumi", "other_shape"} <= set(model.config.parameters)


def test_the_exact_model_carries_them_too(templates):
    exact = exact_model(templates, poi="mu_sig")
    names = set(exact.model.config.parameters)
    assert {"bkg_xsec", "k_other", "lumi", "other_shape", "shape"} <= names
    assert np.isfinite(fit(exact).poi_value)


def test_measured_auxiliary_data_reach_both_models(templates):
    """A lumi and a normsys constraint with an auxiliary measurement (``measured``): the
    pyhf models' auxiliary data carry it (pyhf's defaults 1 and 0 otherwise), and the
    constraint terms of the NLL move accordingly (the iminuit binned cost reads them
    from the same data, so pyhf's and its NLL agree)."""
    import dataclasses

    from ratiofit.inference.binned_cost import HistFactoryNLL

    def with_measured(ch, values):
        samples = tuple(dataclasses.replace(s, modifiers=tuple(
            dataclasses.replace(m, data={**m.data, "measured": values[m.name]})
            if m.name in values else m for m in s.modifiers)) for s in ch.samples)
        return dataclasses.replace(ch, samples=samples)

    rng = np.random.default_rng(3)
    bkg = _events(rng.normal(0.0, 1.0, 20_000), 2000.0)
    sig = _events(rng.normal(1.0, 0.4, 5_000), 100.0)
    nu = ReweighterNuisance(name="shape", reweighter=analytic_gaussian_reweighter(),
                            parameter="mu", nominal=0.0, sigma=0.2)
    observed = (np.histogram(rng.normal(0.0, 1.0, 2000), EDGES)[0]
                + np.histogram(rng.normal(1.0, 0.4, 100), EDGES)[0]).astype(float)
    ch = Channel(name="SR", observable="x0", edges=EDGES, observed=observed,
                 samples=(Sample(name="signal", events=sig, signal=True, modifiers=(
                     StandardModifier("lumi", "lumi", {"sigma": 0.02}),)),
                          Sample(name="bkg", events=bkg, nuisances=("shape",), modifiers=(
                              StandardModifier("normsys", "xs", {"lo": 0.9, "hi": 1.1}),
                              StandardModifier("lumi", "lumi", {"sigma": 0.02})))))
    plain = build_templates(channels=[ch], nuisances=[nu])
    moved = build_templates(channels=[with_measured(ch, {"lumi": 1.03, "xs": -0.7})],
                            nuisances=[nu])
    assert moved.measured == {"lumi": 1.03, "xs": -0.7} and plain.measured == {}
    for make in (portable_model, exact_model):
        a, b = make(plain, poi="mu_sig"), make(moved, poi="mu_sig")
        order = list(b.model.config.auxdata_order)
        aux = dict(zip(order, b.model.config.auxdata, strict=False))
        assert aux["lumi"] == pytest.approx(1.03) and aux["xs"] == pytest.approx(-0.7)
        base = dict(zip(order, a.model.config.auxdata, strict=False))
        assert base["lumi"] == 1.0 and base["xs"] == 0.0
        pars = b.model.config.suggested_init()
        nll = -float(b.model.logpdf(pars, b.data)[0])
        assert HistFactoryNLL(b)(*pars) == pytest.approx(nll, abs=1e-6)
        # the constraints moved: the same parameters cost more where the data sit apart
        assert nll > -float(a.model.logpdf(pars, a.data)[0]) + 0.2
    # disagreeing declarations of one constraint
    bad = dataclasses.replace(ch, samples=(with_measured(ch, {"lumi": 1.03}).samples[0],
                                           with_measured(ch, {"lumi": 1.01}).samples[1]))
    with pytest.raises(InferenceError, match="disagree on measured"):
        build_templates(channels=[bad], nuisances=[nu])


_HEAD = """\
parameters:
  mu: {nominal: 0.0, range: [-1.0, 1.0]}
samples:
  nominal: {source: gaussian, n_events: 4000, options: {mean: mu}}
  varied: {source: gaussian, n_events: 4000, theta: {mu: uniform}, options: {mean: mu}}
  signal: {source: gaussian, n_events: 2000, options: {mean: 2.0, width: 0.3}}
  data: {source: gaussian, n_events: 2000, theta: {mu: 0.1}, options: {mean: mu}}
"""
_REWEIGHTER = """\
reweighter:
  architecture: mlp
  reference: nominal
  target: varied
  training: {epochs: 1, batch_size: 512, checkpoint: false}
"""


def _header(seed: int, extra_samples: str = "") -> str:
    """The specs' common part: a 1-D Gaussian background, a signal, data and a quick
    reweighter (the inference section follows)."""
    return f"seed: {seed}\n" + _HEAD + extra_samples + _REWEIGHTER


SPEC = _header(5) + """\
inference:
  observable: x0
  bins: {n: 8, range: [-6, 6]}
  poi: mu_sig
  data: data
  samples:
    sig: {sample: signal, yield: 30, signal: true, modifiers: [{lumi: {sigma: 0.02}}]}
    bkg: {sample: nominal, yield: 2000, nuisances: [shape],
          modifiers: [{normsys: {name: bkg_xsec, lo: 0.9, hi: 1.1}}, {lumi: {sigma: 0.02}},
                      {shapesys: {name: bkg_mc, relative: 0.02}}]}
  nuisances:
    shape: {reweighter: this, parameter: mu, nominal: 0.0, sigma: 0.1}
"""


def test_the_spec_declares_them_and_the_resolved_spec_keeps_them() -> None:
    spec = load_spec_text(SPEC, path="m.yaml")
    assert spec.inference is not None
    mods = spec.inference.samples["bkg"].modifiers
    assert [m[:2] for m in mods] == [("normsys", "bkg_xsec"), ("lumi", "lumi"),
                                     ("shapesys", "bkg_mc")]
    again = load_spec_text(json.dumps(resolved_dict(spec)), path="again.yaml")
    assert again.inference == spec.inference
    # an auxiliary measurement, on every declaration of the constraint
    text = SPEC.replace("{normsys: {name: bkg_xsec, lo: 0.9, hi: 1.1}}",
                        "{normsys: {name: bkg_xsec, lo: 0.9, hi: 1.1, measured: 0.4}}")
    spec = load_spec_text(text, path="m.yaml")
    assert spec.inference.samples["bkg"].modifiers[0][2] == {"lo": 0.9, "hi": 1.1,
                                                               "measured": 0.4}
    again = load_spec_text(json.dumps(resolved_dict(spec)), path="again.yaml")
    assert again.inference == spec.inference


@pytest.mark.parametrize(("old", "new", "match"), [
    ("{normsys: {name: bkg_xsec, lo: 0.9, hi: 1.1}}", "{normsys: {name: bkg_xsec, lo: 0.9}}",
     r"modifiers\[0\]\.normsys: missing required field 'hi'"),
    ("lo: 0.9, hi: 1.1", "lo: -0.9, hi: 1.1", r"modifiers\[0\]\.normsys\.lo: must be > 0"),
    ("{normsys:", "{normsis:", r"modifiers\[0\]: unknown modifier 'normsis'; did you mean "
                               r"'normsys'"),
    ("{name: bkg_xsec,", "{name: shape,", r"normsys\.name: 'shape' is also a reweighter "
                                          r"nuisance's name"),
    ("modifiers: [{lumi: {sigma: 0.02}}]}", "modifiers: [{lumi: {sigma: 0.05}}]}",
     "the lumi modifiers disagree on sigma"),
    ("relative: 0.02", "relative: [0.02, 0.02]", r"shapesys\.relative: 2 values for 8 bins"),
    ("modifiers: [{lumi: {sigma: 0.02}}]}", "modifiers: [{lumi: {sigma: 0.02, measured: "
     "1.01}}]}", "the 'lumi' modifiers disagree on measured"),
    ("modifiers: [{lumi: {sigma: 0.02}}]}", "modifiers: [{lumi: {sigma: 0.02, measured: "
     "0}}]}", r"lumi\.measured: must be > 0"),
    ("poi: mu_sig", "poi: bkg_xsec", "inference.poi: the parameter of interest 'bkg_xsec' is "
                                     "also a modifier's name"),
])
def test_bad_modifiers_are_one_line_errors(old: str, new: str, match: str) -> None:
    assert old in SPEC
    with pytest.raises(SpecError, match=match) as info:
        load_spec_text(SPEC.replace(old, new, 1), path="m.yaml")
    assert "\n" not in str(info.value) and str(info.value).startswith("m.yaml:")


def test_a_run_fits_them(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from ratiofit.cli import main

    path = tmp_path / "m.yaml"
    # (no upper limit and impacts: their 41-point CLs scan was most of the test's time and
    # tests/test_inference_pyhf.py checks them)
    path.write_text(SPEC.replace("  data: data\n", "  data: data\n  upper_limit: false\n"
                                 "  impacts: false\n", 1)
                    + "uncertainty: {replicas: 0, correction: none}\n")
    res = CliRunner().invoke(main, ["run", str(path), "-o", str(tmp_path / "out"), "-q",
                                    "--no-plots"])
    assert res.exit_code == 0, res.output
    out = json.loads((tmp_path / "out" / "result.json").read_text())["inference"]
    assert {"bkg_xsec", "lumi", "bkg_mc[0]"} <= set(out["fit"]["names"])
    # the exact mode (the default) says its fit is not what pyhf computes from the file
    assert out["workspace_model"].startswith("portable:")
    assert "the fit reported here is the exact mode's" in out["workspace_model"]
    ws = json.loads((tmp_path / "out" / "workspace.json").read_text())
    types = {m["type"] for s in ws["channels"][0]["samples"] for m in s["modifiers"]}
    assert {"normsys", "lumi", "shapesys", "histosys", "staterror", "normfactor"} <= types


TWO_CHANNELS = _header(6, "  control: {source: gaussian, n_events: 4000, theta: {mu: 0.1}, "
                           "options: {mean: mu}}\n") + """\
inference:
  poi: mu_sig
  upper_limit: false  # (checked elsewhere: its scan was most of the run's time)
  impacts: false
  channels:
    SR:
      observable: x0
      bins: {n: 6, range: [-6, 6]}
      data: data
      samples:
        sig: {sample: signal, yield: 30, signal: true}
        bkg: {sample: nominal, yield: 2000, nuisances: [shape],
              modifiers: [{normfactor: k_bkg}]}
    CR:
      observable: x0
      bins: {n: 4, range: [-6, 6]}
      data: control
      samples:
        bkg: {sample: nominal, yield: 4000, nuisances: [shape],
              modifiers: [{normfactor: k_bkg}]}
  nuisances:
    shape: {reweighter: this, parameter: mu, nominal: 0.0, sigma: 0.1}
uncertainty: {replicas: 0, correction: none}
"""


def test_two_channels_share_the_learned_nuisance_and_a_normfactor(tmp_path: Path) -> None:
    """A signal region and a control region: one reweighter nuisance and one free
    background normalisation across both; the workspace has both channels, the resolved
    spec keeps them, and the control region constrains k_bkg (its error is below the
    signal region's alone: the CR has twice the background)."""
    from click.testing import CliRunner

    from ratiofit.cli import main

    spec = load_spec_text(TWO_CHANNELS, path="two.yaml")
    assert spec.inference is not None and list(spec.inference.channels) == ["SR", "CR"]
    assert load_spec_text(json.dumps(resolved_dict(spec)), path="r.yaml").inference == \
        spec.inference
    with pytest.raises(ValueError, match="2 channels"):
        _ = spec.inference.samples
    path = tmp_path / "two.yaml"
    path.write_text(TWO_CHANNELS)
    res = CliRunner().invoke(main, ["run", str(path), "-o", str(tmp_path / "out"), "-q",
                                    "--no-plots"])
    assert res.exit_code == 0, res.output
    ws = json.loads((tmp_path / "out" / "workspace.json").read_text())
    assert [c["name"] for c in ws["channels"]] == ["SR", "CR"]
    assert [len(o["data"]) for o in ws["observations"]] == [6, 4]
    out = json.loads((tmp_path / "out" / "result.json").read_text())["inference"]
    assert set(out["channels"]) == {"SR", "CR"} and "observable" not in out
    fit_ = out["fit"]
    k = fit_["names"].index("k_bkg")
    assert abs(fit_["values"][k] - 1.0) < 5 * fit_["errors"][k]


@pytest.mark.parametrize(("old", "new", "match"), [
    ("  channels:\n    SR:", "  observable: x0\n  channels:\n    SR:",
     "inference.observable: with 'channels', a channel's observable"),
    ("    CR:\n      observable: x0", "    CR:\n      observable: x9",
     r"inference.channels.CR.observable: sample 'control' has no feature 'x9'"),
    ("      data: control", "      data: contrl",
     r"inference.channels.CR.data: undefined sample 'contrl'"),
])
def test_bad_channels_are_one_line_errors(old: str, new: str, match: str) -> None:
    assert old in TWO_CHANNELS
    with pytest.raises(SpecError, match=match):
        load_spec_text(TWO_CHANNELS.replace(old, new, 1), path="two.yaml")


def test_a_failed_fit_names_the_parameters_where_it_stopped(templates, monkeypatch):
    """pyhf's FailedMinimization becomes one line that names the parameters its last point
    left at a bound or non-finite."""
    from types import SimpleNamespace

    import pyhf

    from ratiofit.inference import InferenceError

    model = portable_model(templates, poi="mu_sig")
    names = list(model.model.config.par_order)
    start = np.asarray(model.model.config.suggested_init(), dtype=np.float64)
    bounds = model.model.config.suggested_bounds()
    slices = {n: model.model.config.par_slice(n) for n in names}
    last = start.copy()
    last[slices["mu_sig"].start] = bounds[slices["mu_sig"].start][1]  # at its upper bound
    last[slices["k_other"].start] = np.nan

    def failing(*args, **kwargs):
        raise pyhf.exceptions.FailedMinimization(SimpleNamespace(
            message="Optimization failed.\nEstimated distance to minimum too large.",
            x=last))

    monkeypatch.setattr(pyhf.infer.mle, "fit", failing)
    with pytest.raises(InferenceError) as info:
        fit(model)
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith("the fit did not converge: Optimization failed.")
    assert "mu_sig = 10 at its bound [0, 10]" in msg and "k_other = nan" in msg


def test_a_start_on_a_bound_is_moved_inside(templates, monkeypatch):
    """A start on a parameter's bound (a previous fit's value at a range limit) reaches
    MINUIT a thousandth of the range inside it, and the fit from there finds the same
    minimum as from the suggested start (within a tenth of each parameter's error: both
    are MIGRAD minima of the same NLL, to an EDM that leaves them that close)."""
    import pyhf

    model = portable_model(templates, poi="mu_sig")
    cfg = model.model.config
    bounds = cfg.suggested_bounds()
    i = cfg.par_slice("bkg_xsec").start
    seen = []
    real = pyhf.infer.mle.fit

    def spy(*args, **kwargs):
        seen.append(np.asarray(kwargs["init_pars"], dtype=np.float64))
        return real(*args, **kwargs)

    monkeypatch.setattr(pyhf.infer.mle, "fit", spy)
    plain = fit(model)
    edge = fit(model, init={"bkg_xsec": bounds[i][1], "mu_sig": bounds[cfg.poi_index][0]})
    span = bounds[i][1] - bounds[i][0]
    assert seen[1][i] == pytest.approx(bounds[i][1] - 1e-3 * span)
    assert seen[1][cfg.poi_index] > bounds[cfg.poi_index][0]
    assert np.all(np.abs(edge.values - plain.values) <= 0.1 * plain.errors + 1e-9), \
        (edge.values - plain.values) / plain.errors


def test_a_fit_that_fails_from_its_start_is_tried_from_the_suggested_one(templates,
                                                                         monkeypatch):
    """A fit from a given start that fails is tried once more from the model's suggested
    start, and its result is that fit's; without a given start, or where the second try
    fails too, the failure stands."""
    from types import SimpleNamespace

    import pyhf

    from ratiofit.inference import InferenceError

    model = portable_model(templates, poi="mu_sig")
    cfg = model.model.config
    real = pyhf.infer.mle.fit
    plain = fit(model)
    starts = []

    def first_fails(*args, **kwargs):
        starts.append(np.asarray(kwargs["init_pars"], dtype=np.float64))
        if len(starts) == 1:
            raise pyhf.exceptions.FailedMinimization(SimpleNamespace(
                message="Optimization failed.", x=starts[0]))
        return real(*args, **kwargs)

    monkeypatch.setattr(pyhf.infer.mle, "fit", first_fails)
    again = fit(model, init={"mu_sig": 3.0})
    assert len(starts) == 2 and starts[0][cfg.poi_index] == 3.0
    np.testing.assert_allclose(starts[1], cfg.suggested_init())
    np.testing.assert_allclose(again.values, plain.values, rtol=0, atol=1e-9)
    starts.clear()

    def always_fails(*args, **kwargs):
        starts.append(np.asarray(kwargs["init_pars"], dtype=np.float64))
        raise pyhf.exceptions.FailedMinimization(SimpleNamespace(
            message="Optimization failed.", x=starts[-1]))

    monkeypatch.setattr(pyhf.infer.mle, "fit", always_fails)
    with pytest.raises(InferenceError):
        fit(model, init={"mu_sig": 3.0})
    assert len(starts) == 2
