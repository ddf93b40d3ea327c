"""The pyhf bridge on the exact Gaussian reweighter: templates, morphing, export, fits.

With log w(x, μ) = μx − μ²/2 (ratiofit.testing.analytic_gaussian_reweighter) the reweighted
background N(0, 1) → N(μ, 1) has closed-form bin expectations, so every number below is
checked against an exact answer or a direct simulation at μ.

χ² tolerances: for k independent bins and a correct prediction, χ² follows a χ²(k)
distribution with mean k and standard deviation √(2k); a check passes when
χ² < k + 5√(2k), a ≈ 5σ bound on a fixed-seed draw that only a real disagreement exceeds.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import norm

from ratiofit.errors import RatiofitError
from ratiofit.events import EventSet
from ratiofit.inference import (
    MORPH_MODIFIER,
    Channel,
    InferenceError,
    ReweighterNuisance,
    Sample,
    TemplateMorphing,
    asimov_data,
    build_templates,
    exact_model,
    expected_by_sample,
    fit,
    hypotest,
    impacts,
    portable_model,
    portable_workspace,
    reweighted_template,
    upper_limit,
    write_workspace,
)
from ratiofit.testing import analytic_gaussian_reweighter

N_BKG = 100_000
B_YIELD = 5000.0  # expected background events in the fit
S_YIELD = 250.0
EDGES = np.linspace(-4.0, 4.0, 17)
THETA0, SIGMA = 0.0, 0.1


def _events(x: np.ndarray, weight: float | None = None) -> EventSet:
    w = None if weight is None else np.full(len(x), weight)
    return EventSet(features=x[:, None], feature_names=("x0",), weights=w)


@pytest.fixture(scope="module")
def rw():
    return analytic_gaussian_reweighter()


@pytest.fixture(scope="module")
def bkg() -> EventSet:
    return _events(np.random.default_rng(11).normal(0.0, 1.0, N_BKG), B_YIELD / N_BKG)


@pytest.fixture(scope="module")
def sig() -> EventSet:
    return _events(np.random.default_rng(12).normal(1.0, 0.4, 20_000), S_YIELD / 20_000)


@pytest.fixture(scope="module")
def nuisance(rw) -> ReweighterNuisance:
    return ReweighterNuisance(name="theta_mu", reweighter=rw, parameter="mu", nominal=THETA0,
                              sigma=SIGMA)


def _templates(sig, bkg, nuisance, observed=None, edges=EDGES):
    ch = Channel(name="SR", observable="x0", edges=edges,
                 samples=(Sample(name="signal", events=sig, signal=True),
                          Sample(name="background", events=bkg, nuisances=("theta_mu",))),
                 observed=np.zeros(len(edges) - 1) if observed is None else observed)
    return build_templates(channels=[ch], nuisances=[nuisance], flow="fold")


@pytest.fixture(scope="module")
def templates(sig, bkg, nuisance):
    return _templates(sig, bkg, nuisance)


def _folded_probabilities(mu: float, edges: np.ndarray) -> np.ndarray:
    """Bin probabilities of N(μ, 1) with the tails folded into the first and last bins."""
    cdf = norm.cdf(edges, loc=mu)
    cdf[0], cdf[-1] = 0.0, 1.0
    return np.diff(cdf)


def _chi2_bound(k: int) -> float:
    return k + 5.0 * np.sqrt(2.0 * k)


# -- (a) templates --------------------------------------------------------------------------
@pytest.mark.parametrize("mu", [-1.0, 0.75, 1.5])
def test_templates_match_direct_simulation_and_exact_expectation(rw, mu):
    n = 50_000
    ref = _events(np.random.default_rng(1).normal(0.0, 1.0, n))
    values, variances = reweighted_template(reweighter=rw, events=ref, observable="x0",
                                            edges=EDGES, theta={"mu": mu}, flow="fold")
    direct = np.histogram(np.clip(np.random.default_rng(2).normal(mu, 1.0, n), -3.999, 3.999),
                          bins=EDGES)[0]
    k = len(values)
    # direct counts are Poisson (variance = expectation ≈ the template value)
    chi2_direct = float(np.sum((values - direct) ** 2 / (variances + values)))
    assert chi2_direct < _chi2_bound(k), (chi2_direct, k)
    # against the closed form, the only randomness is the template's own (variance Σw²)
    exact = n * _folded_probabilities(mu, EDGES)
    chi2_exact = float(np.sum((values - exact) ** 2 / variances))
    assert chi2_exact < _chi2_bound(k), (chi2_exact, k)
    # Σw² is the weighted-template variance: compare with the known E[w²] per bin
    assert np.all(variances > 0)


def test_template_flow_is_reported_never_dropped(rw):
    ref = _events(np.array([-5.0, -0.5, 0.5, 4.0, 6.0]))
    tpl = reweighted_template(reweighter=rw, events=ref, observable="x0", edges=EDGES,
                              theta={"mu": 0.0}, flow="exclude")
    assert (tpl.flow.underflow, tpl.flow.overflow) == (1, 2)  # 4.0 is the (open) last edge
    assert tpl.values.sum() == 2.0 and tpl.flow.overflow_weight == 2.0
    folded = reweighted_template(reweighter=rw, events=ref, observable="x0", edges=EDGES,
                                 theta={"mu": 0.0}, flow="fold")
    assert folded.values.sum() == 5.0 and folded.values[0] == 1.0 and folded.values[-1] == 2.0


# -- morphing -------------------------------------------------------------------------------
def test_morphing_value_derivative_and_residuals(templates, rw, bkg):
    morph = templates.channels[0].samples[1].morphing["theta_mu"]
    assert morph.method == "polynomial" and morph.degree is not None
    assert morph.max_residual < 1e-3
    for k in (-3.6, 0.4, 2.2, 4.8):  # in units of σ, inside the ±5σ grid
        theta = THETA0 + k * SIGMA
        truth = reweighted_template(reweighter=rw, events=bkg, observable="x0", edges=EDGES,
                                    theta={"mu": theta}, flow="fold").values
        assert np.max(np.abs(morph.value(theta) / truth - 1)) < 1e-3
        h = 1e-5
        numeric = (morph.value(theta + h) - morph.value(theta - h)) / (2 * h)
        np.testing.assert_allclose(morph.derivative(theta), numeric, rtol=1e-5,
                                   atol=1e-8 * np.max(np.abs(numeric)))
    assert morph.value(np.array([0.1, 0.2])).shape == (2, len(EDGES) - 1)
    spline = TemplateMorphing(parameter="mu", grid=morph.grid, templates=morph.templates,
                              method="spline")
    assert np.max(np.abs(spline.value(2.2 * SIGMA) / morph.value(2.2 * SIGMA) - 1)) < 1e-3
    with pytest.raises(InferenceError, match="outside the morphing grid"):
        morph.value(THETA0 + 5.5 * SIGMA)


# -- (b) exact mode vs 3-point histosys -----------------------------------------------------
def test_exact_mode_follows_templates_better_than_histosys(templates, rw, bkg, sig):
    exact = exact_model(templates, staterror=False)
    portable = portable_model(templates, staterror=False)
    lines = []
    fits = []
    for k in (1.5, 2.5):
        theta = THETA0 + k * SIGMA
        truth, truth_var = reweighted_template(reweighter=rw, events=bkg, observable="x0",
                                               edges=EDGES, theta={"mu": theta}, flow="fold")
        direct = np.histogram(np.clip(np.random.default_rng(5).normal(theta, 1.0, N_BKG),
                                      -3.999, 3.999), bins=EDGES)[0] * (B_YIELD / N_BKG)
        ex = expected_by_sample(exact.model, {"theta_mu": k})["background"]
        po = expected_by_sample(portable.model, {"theta_mu": k})["background"]
        dev_ex, dev_po, dev_direct = ex / truth - 1, po / truth - 1, direct / truth - 1
        lines.append(f"θ = θ₀ + {k}σ = {theta:.3f}")
        # statistical error of (direct − h_b)/h_b: Poisson of the direct sample and Σw² of
        # the reweighted one, for scale
        direct_err = np.sqrt(direct * (B_YIELD / N_BKG) + truth_var) / truth
        lines.append(f"{'bin':>13} {'h_b(θ)':>10} {'direct sim':>11} {'±stat':>8} "
                     f"{'exact':>10} {'histosys':>10}")
        for b in range(len(truth)):
            lines.append(f"[{EDGES[b]:+.1f},{EDGES[b + 1]:+.1f}) {truth[b]:10.3f} "
                         f"{dev_direct[b]:+11.2e} {direct_err[b]:8.1e} {dev_ex[b]:+10.2e} "
                         f"{dev_po[b]:+10.2e}")
        lines.append(f"{'max |dev|':>24} {np.max(np.abs(dev_direct)):11.2e} {'':8} "
                     f"{np.max(np.abs(dev_ex)):10.2e} {np.max(np.abs(dev_po)):10.2e}")
        assert np.max(np.abs(dev_ex)) < np.max(np.abs(dev_po))
        assert np.max(np.abs(dev_ex)) < 1e-3
        # fit (μ, θ) on Asimov data made from the true templates at θ (signal at μ = 1),
        # the auxiliary datum at α = k too, so that only the interpolation can bias the fit
        signal = expected_by_sample(exact.model, {"mu": 1.0})["signal"]
        main = truth + signal
        for mode, bm in (("exact", exact), ("histosys", portable)):
            data = np.concatenate([main, [k]])
            r = fit(bm, data)
            fits.append((k, mode, r.poi_value, r.pulls["theta_mu"].theta))
    for k, mode, mu_hat, theta_hat in fits:
        lines.append(f"fit at θ₀+{k}σ, {mode:>8}: μ̂ = {mu_hat:.4f}, θ̂ = {theta_hat:.4f} "
                     f"(true μ = 1, θ = {THETA0 + k * SIGMA:.4f})")
    print("\n" + "\n".join(lines))
    for k in (1.5, 2.5):
        (_, _, mu_ex, th_ex), (_, _, mu_po, th_po) = [f for f in fits if f[0] == k]
        truth_theta = THETA0 + k * SIGMA
        assert abs(mu_ex - 1) < 0.01 and abs(th_ex - truth_theta) < 0.01 * SIGMA
        assert abs(th_ex - truth_theta) < abs(th_po - truth_theta)
        assert abs(mu_ex - 1) < abs(mu_po - 1)


# -- exact-mode modifier: constraint and combination ----------------------------------------
def test_exact_modifier_is_constrained_by_a_unit_normal(templates):
    bm = exact_model(templates, staterror=False)
    cfg = bm.model.config
    assert "theta_mu" in cfg.auxdata_order
    assert cfg.param_set("theta_mu").pdf_type == "normal"
    assert any(m["type"] == MORPH_MODIFIER for s in bm.spec["channels"][0]["samples"]
               for m in s["modifiers"])
    pars = np.asarray(cfg.suggested_init())
    aux = np.asarray(cfg.auxdata)
    i = cfg.par_slice("theta_mu").start
    base = float(bm.model.constraint_logpdf(aux, pars))
    pars[i] = 1.3
    # log N(0 | 1.3, 1) − log N(0 | 0, 1) = −1.3²/2
    assert float(bm.model.constraint_logpdf(aux, pars)) - base == pytest.approx(-0.845)
    mult = exact_model(templates, staterror=False, op="multiplicative")
    a = expected_by_sample(bm.model, {"theta_mu": 2.0})["background"]
    b = expected_by_sample(mult.model, {"theta_mu": 2.0})["background"]
    np.testing.assert_allclose(a, b, rtol=1e-4)  # n_b = h_b(θ₀) here: the ops agree


def test_two_channels_place_the_morphing_in_the_right_bins(rw, bkg, sig, nuisance):
    """At α = ±1 histosys is exact, so the two modes must agree bin by bin in every channel."""
    low, high = np.linspace(-4.0, 0.0, 5), np.linspace(0.0, 4.0, 7)
    chans = [Channel(name="CR", observable="x0", edges=low,
                     samples=(Sample(name="background", events=bkg, nuisances=("theta_mu",)),),
                     observed=np.zeros(4)),
             Channel(name="SR", observable="x0", edges=high,
                     samples=(Sample(name="signal", events=sig, signal=True),
                              Sample(name="background", events=bkg, nuisances=("theta_mu",))),
                     observed=np.zeros(6))]
    tpl = build_templates(channels=chans, nuisances=[nuisance], flow="fold")
    exact, portable = exact_model(tpl), portable_model(tpl)
    assert exact.model.config.channels == portable.model.config.channels == ["CR", "SR"]
    for alpha in (-1.0, 1.0):
        ex = expected_by_sample(exact.model, {"theta_mu": alpha, "mu": 1.0})
        po = expected_by_sample(portable.model, {"theta_mu": alpha, "mu": 1.0})
        for name in ("background", "signal"):
            np.testing.assert_allclose(ex[name], po[name], rtol=1e-4)  # morphing rtol
        assert np.all(ex["signal"][:4] == 0)  # no signal sample in CR
        truth = np.concatenate([
            reweighted_template(reweighter=rw, events=bkg, observable="x0", edges=e,
                                theta={"mu": THETA0 + alpha * SIGMA}, flow="fold").values
            for e in (low, high)])
        np.testing.assert_allclose(ex["background"], truth, rtol=1e-4)


def test_two_nuisances_on_one_sample_add_their_variations(rw, bkg, sig):
    """Two nuisances (each with its own reweighter) on one sample: deltas add per bin."""
    nus = [ReweighterNuisance(name="theta_a", reweighter=rw, parameter="mu", nominal=0.0,
                              sigma=0.1),
           ReweighterNuisance(name="theta_b", reweighter=analytic_gaussian_reweighter(),
                              parameter="mu", nominal=0.0, sigma=0.2)]
    ch = Channel(name="SR", observable="x0", edges=EDGES,
                 samples=(Sample(name="signal", events=sig, signal=True),
                          Sample(name="background", events=bkg,
                                 nuisances=("theta_a", "theta_b"))),
                 observed=np.zeros(16))
    tpl = build_templates(channels=[ch], nuisances=nus, flow="fold")
    exact, portable = exact_model(tpl), portable_model(tpl)
    point = {"theta_a": 1.0, "theta_b": -1.0}
    ex = expected_by_sample(exact.model, point)["background"]
    po = expected_by_sample(portable.model, point)["background"]
    np.testing.assert_allclose(ex, po, rtol=1e-4)
    nominal = tpl.channels[0].samples[1].nominal.values
    expected = nominal + tpl.channels[0].samples[1].up["theta_a"].values - nominal \
        + tpl.channels[0].samples[1].down["theta_b"].values - nominal
    np.testing.assert_allclose(ex, expected, rtol=1e-4)
    assert set(exact.model.config.auxdata_order) == {"theta_a", "theta_b", "staterror_SR"}


# -- (c) portable workspace and the pyhf command line ---------------------------------------
def _pyhf_cli(*args: str) -> dict:
    exe = Path(sys.executable).with_name("pyhf")
    out = subprocess.run([str(exe), *args], capture_output=True, text=True, check=True,
                         timeout=120)
    return json.loads(out.stdout)


def test_portable_workspace_runs_with_the_pyhf_cli(sig, bkg, nuisance, tmp_path):
    base = _templates(sig, bkg, nuisance)
    truth = portable_model(base)
    expected = asimov_data(truth.model, {"mu": 0.8, "theta_mu": 0.6})
    n_main = len(EDGES) - 1
    observed = np.random.default_rng(21).poisson(expected[:n_main]).astype(float)
    tpl = _templates(sig, bkg, nuisance, observed=observed)
    for split in (False, True):
        spec = portable_workspace(tpl, split_norm=split)
        assert {"channels", "observations", "measurements", "version"} <= set(spec)
        kinds = {m["type"] for s in spec["channels"][0]["samples"] for m in s["modifiers"]}
        assert kinds == ({"normfactor", "histosys", "staterror"} | ({"normsys"} if split else
                                                                     set()))
        path = write_workspace(spec, tmp_path / f"ws_{split}.json")
        bm = portable_model(tpl, split_norm=split)
        ours = fit(bm)
        cli_fit = _pyhf_cli("fit", str(path), "--optimizer", "minuit", "--value")
        mu_cli = cli_fit["mle_parameters"]["mu"][0]
        print(f"\nsplit_norm={split}: μ̂ CLI {mu_cli:.6f} bridge {ours.poi_value:.6f}; "
              f"2NLL CLI {cli_fit['twice_nll']:.6f} bridge {ours.twice_nll:.6f}")
        assert abs(mu_cli - ours.poi_value) <= 1e-3 * abs(ours.poi_value)
        assert cli_fit["twice_nll"] == pytest.approx(ours.twice_nll, rel=1e-6)
        if split:
            continue  # one CLs comparison is enough; the CLI is slow to start
        ours_cls = hypotest(bm, poi_value=1.0)
        cli_cls = _pyhf_cli("cls", str(path), "--optimizer", "minuit")
        print(f"CLs(μ=1) CLI {cli_cls['CLs_obs']:.6f} bridge {ours_cls.cls_observed:.6f}")
        assert abs(cli_cls["CLs_obs"] - ours_cls.cls_observed) < 1e-3
        np.testing.assert_allclose(cli_cls["CLs_exp"], ours_cls.cls_expected, atol=1e-3)


# -- (d) Asimov recovery ----------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["exact", "portable"])
def test_asimov_fit_recovers_mu_and_theta(templates, rw, bkg, mode):
    bm = exact_model(templates) if mode == "exact" else portable_model(templates)
    theta = THETA0 + SIGMA
    truth = reweighted_template(reweighter=rw, events=bkg, observable="x0", edges=EDGES,
                                theta={"mu": theta}, flow="fold").values
    signal = expected_by_sample(bm.model, {"mu": 1.0})["signal"]
    aux = asimov_data(bm.model, {"theta_mu": 1.0})[len(truth):]  # constraint centred at α = 1
    r = fit(bm, np.concatenate([truth + signal, aux]))
    assert r.valid
    assert r.poi_value == pytest.approx(1.0, abs=0.01)
    pull = r.pulls["theta_mu"]
    assert pull.theta == pytest.approx(theta, abs=0.01 * SIGMA)
    assert pull.pull == pytest.approx(1.0, abs=0.01)
    assert 0 < pull.constraint < 1  # the data constrain θ better than its prior
    assert r.correlation.shape == (len(r.names),) * 2
    np.testing.assert_allclose(np.diag(r.correlation)[r.errors > 0], 1.0)
    np.testing.assert_allclose(r.correlation, r.correlation.T, atol=1e-12)
    assert {n for n in r.pulls if n.startswith("staterror_SR")}  # MC-stat gammas are pulls too


# -- hypothesis tests, limits, impacts ------------------------------------------------------
@pytest.fixture(scope="module")
def small(sig, bkg, nuisance):
    """Eight bins, no staterror: cheap enough for toys."""
    edges = np.linspace(-4.0, 4.0, 9)
    tpl = _templates(sig, bkg, nuisance, edges=edges)
    truth = exact_model(tpl, staterror=False)
    main = np.random.default_rng(8).poisson(
        asimov_data(truth.model, {"mu": 1.0, "theta_mu": 0.5})[:8]).astype(float)
    return exact_model(_templates(sig, bkg, nuisance, observed=main, edges=edges),
                       staterror=False)


def test_hypotest_asymptotic_and_toys_agree(small):
    asym = hypotest(small, poi_value=2.0)
    toys = hypotest(small, poi_value=2.0, calctype="toybased", ntoys=60, seed=3)
    assert 0 <= toys.cls_observed <= 1 and toys.ntoys == 60
    assert list(asym.cls_expected) == sorted(asym.cls_expected)
    assert abs(toys.cls_observed - asym.cls_observed) < 0.1
    assert toys == hypotest(small, poi_value=2.0, calctype="toybased", ntoys=60, seed=3)


def test_upper_limit_and_impacts(small):
    ul = upper_limit(small, scan=np.linspace(0.0, 4.0, 17))
    best = fit(small)
    assert best.poi_value < ul.observed < 4.0
    assert upper_limit(small).observed == pytest.approx(ul.observed, abs=0.05)
    assert ul.expected[0] < ul.expected[2] < ul.expected[4]
    ranking = impacts(small, nominal=best)
    assert [i.name for i in ranking] == ["theta_mu"]
    imp = ranking[0]
    assert imp.postfit_error == pytest.approx(best.error("theta_mu"))
    # θ and μ are anticorrelated here (a higher mean background takes the signal's place)
    assert imp.postfit_up < 0 < imp.postfit_down
    assert abs(imp.prefit_up) > abs(imp.postfit_up)


def test_the_upper_limit_scan_gives_pyhfs_numbers(small):
    """The scan does the fits that do not depend on the tested value once (free fits of
    the data and the Asimov data, the μ = 0 fit that makes the Asimov data) and pyhf's
    ``upper_limit`` five per point; the same fits with the same arguments, so the per-point
    CLs and the limits agree to the minimiser's reproducibility (1e-9 here, far below the
    1e-3 of the pyhf CLI comparison above)."""
    import pyhf

    from ratiofit.inference.binned_fit import _numpy_minuit, _unpack

    grid = np.linspace(0.0, 4.0, 9)
    ours = upper_limit(small, scan=grid)
    pdf, d, _ = _unpack(small, None, None)
    with _numpy_minuit():
        obs, exp, (_, results) = pyhf.infer.intervals.upper_limits.upper_limit(
            d, pdf, grid, return_results=True)
    np.testing.assert_allclose(ours.cls_observed, [float(r[0]) for r in results], atol=1e-9)
    np.testing.assert_allclose(ours.cls_expected,
                               [[float(e) for e in r[1]] for r in results], atol=1e-9)
    assert ours.observed == pytest.approx(float(obs), abs=1e-9)
    np.testing.assert_allclose(ours.expected, [float(e) for e in exp], atol=1e-9)


# -- (e) bad input: one-line errors -----------------------------------------------------------
def _one_line(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert "\n" not in msg and isinstance(exc.value, RatiofitError)
    return msg


def test_binning_that_excludes_events_is_rejected(rw, bkg):
    with pytest.raises(InferenceError) as exc:
        reweighted_template(reweighter=rw, events=bkg, observable="x0",
                            edges=np.linspace(-2, 2, 9), theta={"mu": 0.0})
    msg = _one_line(exc)
    n_out = int(np.count_nonzero(np.abs(bkg.features[:, 0]) >= 2))
    assert "observable 'x0'" in msg and f"{n_out} of {N_BKG} events" in msg
    ch = Channel(name="SR", observable="x0", edges=np.linspace(-2, 2, 9),
                 samples=(Sample(name="b", events=bkg, signal=True),), observed=np.zeros(8))
    with pytest.raises(InferenceError, match="observable 'x0'"):
        build_templates(channels=[ch], nuisances=[])


@pytest.mark.parametrize("sigma", [0.0, -0.1, float("nan")])
def test_nonpositive_sigma_is_rejected(rw, sigma):
    with pytest.raises(InferenceError) as exc:
        ReweighterNuisance(name="theta_mu", reweighter=rw, parameter="mu", nominal=0.0,
                           sigma=sigma)
    assert "sigma must be a finite number > 0" in _one_line(exc)


def test_unknown_theta_names_are_rejected(rw, bkg, sig):
    with pytest.raises(InferenceError) as exc:
        ReweighterNuisance(name="theta_s", reweighter=rw, parameter="sigma", nominal=0.0,
                           sigma=0.1)
    assert "no parameter 'sigma'" in _one_line(exc) and "['mu']" in str(exc.value)
    with pytest.raises(InferenceError) as exc:
        reweighted_template(reweighter=rw, events=bkg, observable="x0", edges=EDGES,
                            theta={"sigma": 1.0}, flow="fold")
    assert "['sigma']" in _one_line(exc)
    ch = Channel(name="SR", observable="x0", edges=EDGES,
                 samples=(Sample(name="s", events=sig, signal=True),
                          Sample(name="b", events=bkg, nuisances=("alpha_s",))),
                 observed=np.zeros(16))
    with pytest.raises(InferenceError) as exc:
        build_templates(channels=[ch], nuisances=[], flow="fold")
    assert "unknown nuisance(s) ['alpha_s']" in _one_line(exc)


def test_nuisance_outside_the_reweighter_range_is_rejected(rw):
    with pytest.raises(InferenceError) as exc:
        ReweighterNuisance(name="t", reweighter=rw, parameter="mu", nominal=1.8, sigma=0.5)
    assert "leaves the reweighter's range" in _one_line(exc)


def test_the_binned_fit_is_a_parameter_fit(templates):
    """BinnedFitResult belongs to the family of fit results (ratiofit.results)."""
    from ratiofit.inference import fit
    from ratiofit.results import ParameterFit

    result = fit(portable_model(templates, staterror=False))
    assert isinstance(result, ParameterFit)
    assert result.value(result.poi) == result.poi_value
    assert result.error(result.poi) == result.poi_error
