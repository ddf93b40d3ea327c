"""The guide-searches.md studies (``search_*``): exact ratios, fits, ROC curves, p-values.

Fast tests run tiny toys; ``slow`` ones train the parameterised classifier and fit.
Every statistical tolerance is derived from the binomial or sampling error it guards.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from ratiofit_papers.studies._searches import (
    extended_nll,
    fit_signal_strength,
    fit_signal_strengths,
    log_ratio_mass,
    log_ratio_mass_marginal,
    profile_interval,
    roc_curve,
)
from scipy.integrate import quad
from scipy.optimize import brentq

from ratiofit.errors import SpecError
from ratiofit.plugins.sources.bumphunt import BumpHunt, wrap
from ratiofit.spec import load_spec_text
from ratiofit.workflow import run_spec

BUMP = "{source: bumphunt, n_events: %d, options: {process: %s, sigma: 0.08}}"


def _run(text: str, tmp_path: Path) -> dict[str, Any]:
    spec = load_spec_text(text, path="s.yaml")
    out: dict[str, Any] = run_spec(spec, tmp_path, plots=False)["studies"]
    return out


# -- exact ratios ----------------------------------------------------------------------------
@pytest.mark.parametrize("sigma", [0.03, 0.08, 0.25])
def test_mass_ratio_is_the_marginal_of_the_source_density(sigma: float) -> None:
    """p(u) = ∫ p(y₀, u − y₀) dy₀ over a period, from the source's 2-D log_density.

    The integrand is smooth and periodic in y₀, so the midpoint rule with 4000 nodes
    converges geometrically; its error is far below the 10⁻⁶ tolerance.
    """
    source = BumpHunt()
    y0 = (np.arange(4000) + 0.5) / 4000 - 0.5
    for u in (0.0, 0.07, -0.31, 0.49):
        y1 = wrap(u - y0)
        x = np.stack([y0, y1], axis=1)
        marginal = {p: float(np.mean(np.exp(source.log_density(
            features=x, theta={}, options={"process": p, "sigma": sigma}))))
                    for p in ("signal", "background")}
        assert marginal["background"] == pytest.approx(1.0, rel=1e-6)
        expected = float(np.exp(log_ratio_mass(np.array([u]), sigma))[0])
        assert marginal["signal"] == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("low", [0.0, 0.05])
def test_marginal_over_sigma_matches_quadrature(low: float) -> None:
    """The exponential-integral form equals ∫ w_{√2σ}(u) dσ/(b − a) done numerically."""
    high = 0.29
    u = np.array([0.013, 0.1, -0.27, 0.5])
    closed = np.exp(log_ratio_mass_marginal(u, low=low, high=high))
    for ui, ci in zip(u, closed, strict=True):
        numeric = quad(lambda s, ui=ui: float(np.exp(log_ratio_mass(np.array([ui]), s))[0]),
                       max(low, 1e-9), high, limit=200, epsabs=1e-12, epsrel=1e-10)[0]
        assert ci == pytest.approx(numeric / (high - low), rel=1e-7)


def test_marginal_refuses_u_zero_and_bad_prior() -> None:
    with pytest.raises(ValueError, match="u = 0"):
        log_ratio_mass_marginal(np.array([0.0]), low=0.0, high=0.29)
    with pytest.raises(ValueError, match="prior"):
        log_ratio_mass_marginal(np.array([0.1]), low=0.3, high=0.29)


# -- likelihood ------------------------------------------------------------------------------
def test_fit_and_interval_solve_their_equations() -> None:
    rng = np.random.default_rng(4)
    ratio = np.exp(rng.normal(0.0, 1.0, 500))
    nu_s, nu_b = 40.0, 480.0
    mu = fit_signal_strength(ratio=ratio, signal_yield=nu_s, background_yield=nu_b)
    h = 1e-6
    slope = (extended_nll(mu + h, ratio=ratio, signal_yield=nu_s, background_yield=nu_b)
             - extended_nll(mu - h, ratio=ratio, signal_yield=nu_s, background_yield=nu_b))
    assert abs(slope / (2 * h)) < 1e-5
    lo, hi = profile_interval(ratio=ratio, signal_yield=nu_s, background_yield=nu_b, mu_hat=mu)
    f_min = extended_nll(mu, ratio=ratio, signal_yield=nu_s, background_yield=nu_b)
    for edge in (lo, hi):
        two_delta = 2 * (extended_nll(edge, ratio=ratio, signal_yield=nu_s,
                                      background_yield=nu_b) - f_min)
        assert two_delta == pytest.approx(1.0, abs=1e-6)
    assert lo < mu < hi


def test_vectorised_discovery_fits_match_one_by_one() -> None:
    rng = np.random.default_rng(5)
    sizes = rng.poisson(300, 40)
    index = np.repeat(np.arange(40), sizes)
    ratio = np.exp(rng.normal(-0.5, 1.0, len(index)))  # E[r] = 1: μ̂ = 0 about half the time
    together = fit_signal_strengths(ratio=ratio, toy_index=index, n_toys=40, signal_yield=20.0,
                                    background_yield=300.0)
    alone = [fit_signal_strength(ratio=ratio[index == j], signal_yield=20.0,
                                 background_yield=300.0, lower=0.0) for j in range(40)]
    np.testing.assert_allclose(together, alone, atol=1e-8)
    assert 0 < np.count_nonzero(together == 0.0) < 40  # both branches exercised


def test_roc_curve_of_known_statistics() -> None:
    curve = roc_curve(np.array([0.0, 1.0, 2.0, 3.0]), np.array([2.0, 3.0, 4.0, 5.0]))
    # Rejecting at t ≥ 4 has size 0 and power 1/2; at t ≥ 3: size 1/4, power 3/4.
    assert curve.power_at(0.0) == 0.5
    assert curve.power_at(0.25) == 0.75
    assert curve.power_at(0.49) == 0.75
    assert curve.power_at(0.5) == 1.0
    # Trapezoids through (0, 1/2), (1/4, 3/4), (1/2, 1): the Mann–Whitney P(t₁ > t₀) = 14/16.
    assert curve.area() == pytest.approx(14 / 16)


# -- studies on tiny toys ---------------------------------------------------------------------
def test_optimal_statistic_is_at_least_as_powerful_as_counting(tmp_path: Path) -> None:
    text = f"""
seed: 11
samples:
  signal: {BUMP % (10000, "signal")}
  background: {BUMP % (30000, "background")}
studies:
  power: {{study: search_power, options: {{n_toys: 1000, signal_yield: 25,
                                          background_yield: 300, figures: false}}}}
"""
    res = _run(text, tmp_path)["power"]
    methods = res["methods"]
    # All statistics use the same toys; each power error (binomial + threshold, RocCurve)
    # is an upper bound on the error of a difference of positively correlated estimates.
    for alpha in res["type_one_errors"]:
        key = str(alpha)
        opt, err_opt = methods["optimal"]["power"][key], methods["optimal"]["power_error"][key]
        for other in ("inclusive", "fixed_cut", "two_bins"):
            p, err = methods[other]["power"][key], methods[other]["power_error"][key]
            assert opt >= p - 3 * math.hypot(err_opt, err), (alpha, other)
    # And strictly better than counting at α = 0.05 (expected gain ≈ 0.3 here, error ≈ 0.02).
    gain = methods["optimal"]["power"]["0.05"] - methods["inclusive"]["power"]["0.05"]
    assert gain > 5 * math.hypot(methods["optimal"]["power_error"]["0.05"],
                                 methods["inclusive"]["power_error"]["0.05"])
    # The r ≥ 0.5 cut is a window |Y₀ + Y₁| < w: r(w) = 0.5 for σ = 0.08.
    w = res["mass_window_of_cut"]
    assert float(np.exp(log_ratio_mass(np.array([w]), 0.08))[0]) == pytest.approx(0.5)


def test_asymptotic_and_toy_p_values_agree_for_large_counts(tmp_path: Path) -> None:
    mass = "derived_features: [y0_plus_y1]"
    text = f"""
seed: 12
samples:
  signal: {{source: bumphunt, n_events: 10, options: {{process: signal, sigma: 0.08, {mass}}}}}
  background: {{source: bumphunt, n_events: 10,
               options: {{process: background, sigma: 0.08, {mass}}}}}
studies:
  pv: {{study: search_pvalues, options: {{n_null_toys: 3000, n_alt_toys: 200,
        signal_yield: 50, background_yield: 1000, signal_strengths: [0.5, 0.9],
        ratio_scales: [1.1], figures: false}}}}
"""
    classifiers = _run(text, tmp_path)["pv"]["classifiers"]
    res = classifiers["exact"]
    # μ̂ = 0 in half of the background-only toys (the half-χ²₁ law); the skewness of
    # Σ rᵢ moves this by γφ(0)/6 ≈ 0.004 (γ ≈ 0.06), far below 4 binomial errors (0.04).
    assert abs(res["null_fraction_mu_hat_zero"] - 0.5) < 4 * res["null_fraction_error"]
    for row in res["rows"]:
        # Toy p-value: binomial error; the asymptotic one: with 1000 events the leading
        # correction to Wilks' law shifts Z by O(1/√ν_b) ≈ 0.03, i.e. p by ≲ 7% of itself
        # at these Z (1.2–2.3); allow both.
        tolerance = 4 * row["p_toys_error"] + 0.07 * row["p_asymptotic"]
        assert abs(row["p_toys"] - row["p_asymptotic"]) < tolerance, row
        assert 0.005 < row["p_toys"] < 0.2  # the regime the tolerance was derived for
    # An uncorrected class-prior factor (r' = 1.1 r) breaks the asymptotic law: μ̂ = 0 needs
    # 1.1 Σrᵢ ≤ ν_b, i.e. Σrᵢ 1.8 standard deviations (√(ν_b E[r²]) ≈ 50) below its mean,
    # so the fraction is ≈ 0.03 instead of 0.5, and q₀ is inflated under μ = 0.
    scaled = classifiers["scale=1.1"]
    assert scaled["null_fraction_mu_hat_zero"] < 0.5 - 8 * scaled["null_fraction_error"]
    assert scaled["rows"][0]["pull"] > 5


def test_sigma_as_a_feature_narrows_the_interval(tmp_path: Path) -> None:
    text = """
seed: 13
parameters: {sigma: {nominal: 0.1, range: [0.0, 0.29]}}
samples:
  signal: {source: bumphunt, n_events: 10000, theta: {sigma: uniform},
           options: {process: signal, sigma: sigma, sigma_feature: true,
                     derived_features: [y0_plus_y1]}}
  background: {source: bumphunt, n_events: 30000, theta: {sigma: uniform},
               options: {process: background, sigma: sigma, sigma_feature: true,
                         derived_features: [y0_plus_y1]}}
studies:
  nf: {study: search_nuisance_feature, options: {n_toys: 10, signal_yield: 2000,
                                                 background_yield: 1800, figures: false}}
"""
    res = _run(text, tmp_path)["nf"]
    ratio = res["width_ratio_without_over_with"]
    # Conditioning on σ cannot lose Fisher information; the mean ratio of widths is
    # measured to ± its standard error over toys.
    assert ratio["mean"] - 1 > 5 * ratio["error"]
    for c in ("with_sigma", "without_sigma"):
        entry = res["classifiers"][c]
        assert abs(entry["mean_mu_hat"] - 0.1) < 4 * entry["mean_mu_hat_error"]


# -- spec errors -------------------------------------------------------------------------------
POWER = f"""
seed: 1
samples:
  signal: {BUMP % (100, "signal")}
  background: {BUMP % (100, "background")}
studies:
  s: {{study: search_power, options: {{%s}}}}
"""


@pytest.mark.parametrize(("options", "field", "message"), [
    ("signal: nope", "signal", "unknown sample"),
    ("signal: background", "signal", "needs a 'signal' sample"),
    ("two_bins: [2.0, 0.5]", "two_bins", "increasing"),
    ("signal_yield: -1.0", "signal_yield", "positive"),
    ("n_toys: 2", "n_toys", ">= 10"),
])
def test_bad_power_options_are_one_line_spec_errors(options: str, field: str,
                                                    message: str) -> None:
    with pytest.raises(SpecError) as err:
        load_spec_text(POWER % options, path="s.yaml")
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith("s.yaml:")
    assert f"studies.s.options.{field}" in msg and message in msg and "search_" in msg


def test_nuisance_feature_needs_per_event_sigma() -> None:
    text = POWER.replace("search_power", "search_nuisance_feature") % ""
    with pytest.raises(SpecError, match=r"studies.s.options: .*lacks derived feature"):
        load_spec_text(text, path="s.yaml")
    text = text.replace("sigma: 0.08}", "sigma: 0.08, derived_features: [y0_plus_y1]}")
    with pytest.raises(SpecError, match=r"studies.s.options: .*must draw σ per event"):
        load_spec_text(text, path="s.yaml")


def test_parameterised_study_rejects_sigma_outside_the_range() -> None:
    text = """
seed: 1
parameters: {sigma: {nominal: 0.08, range: [0.02, 0.32]}}
samples:
  signal: {source: bumphunt, n_events: 10, theta: {sigma: uniform},
           options: {process: signal, sigma: sigma, derived_features: [y0_plus_y1]}}
  background: {source: bumphunt, n_events: 10, theta: {sigma: uniform},
               options: {process: background, sigma: sigma, derived_features: [y0_plus_y1]}}
studies:
  p: {study: search_parameterised_sigma, options: {test_sigmas: [0.03, 0.5]}}
"""
    with pytest.raises(SpecError, match=r"s.yaml:\d+: studies.p.options.test_sigmas: .*0.5"):
        load_spec_text(text, path="s.yaml")


# -- slow: training and profiled fits -----------------------------------------------------------
@pytest.mark.slow
def test_parameterised_classifier_interpolates_and_profiles(tmp_path: Path) -> None:
    text = """
seed: 14
parameters: {sigma: {nominal: 0.08, range: [0.02, 0.32]}}
samples:
  signal: {source: bumphunt, n_events: 10, theta: {sigma: uniform},
           options: {process: signal, sigma: sigma, derived_features: [y0_plus_y1]}}
  background: {source: bumphunt, n_events: 10, theta: {sigma: uniform},
               options: {process: background, sigma: sigma, derived_features: [y0_plus_y1]}}
studies:
  p:
    study: search_parameterised_sigma
    options: {n_train: 30000, epochs: 3, n_test: 30000, pool_signal: 20000,
              pool_background: 60000, signal_yield: 3000, background_yield: 2700,
              true_sigmas: [0.06], scan_sigmas: [0.02, 0.06, 0.32], n_scan_toys: 40,
              n_profile_toys: 40, figures: false}
"""
    res = _run(text, tmp_path)["p"]
    for key in ("0.03", "0.06"):
        point = res["interpolation"]["points"][key]
        assert not point["seen_in_training"]
        # The exact ratio is the optimal score, so the network's AUC can only be lower up
        # to sampling noise of a difference on the same events (≪ the bound on one AUC).
        assert point["auc_network"] <= point["auc_exact"] + point["auc_error_bound"]
        assert point["auc_network"] > point["auc_exact"] - 2 * point["auc_error_bound"]
    rows = res["scan"]["true"]["0.06"]["exact"]
    by_sigma = {r["sigma_prime"]: r for r in rows}
    # The true σ' gives a more precise calibrated μ than σ' = 0.32 (expected ≈ 50% larger;
    # relative errors ≈ 12% each from 40 toys, and the same toys enter both).
    assert by_sigma[0.06]["calibrated_std"] < by_sigma[0.32]["calibrated_std"]
    profiled = res["profile"]["variants"]["profiled"]
    assert profiled["n_valid"] >= 38
    # 68% intervals over 40 toys: binomial error ≈ 0.074.
    assert abs(profiled["coverage"] - 0.683) < 3 * math.sqrt(0.683 * 0.317 / 40)
    assert abs(profiled["mean_mu_hat"] - 0.1) < 4 * profiled["mean_mu_hat_error"]


def test_negative_signal_strength_is_found() -> None:
    """With no lower bound μ̂ may be negative (a deficit of signal-like events)."""
    rng = np.random.default_rng(6)
    ratio = np.exp(rng.normal(0.0, 0.3, 2000))
    ratio = ratio[ratio < 1.0]
    mu = fit_signal_strength(ratio=ratio, signal_yield=50.0, background_yield=2000.0)
    root = brentq(lambda m: 50.0 - np.sum(50.0 * ratio / (m * 50.0 * ratio + 2000.0)),
                  -30.0, 30.0)
    assert mu < 0
    assert mu == pytest.approx(root, abs=1e-8)


@pytest.mark.slow
def test_trained_classifier_is_close_to_the_exact_ratio(tmp_path: Path) -> None:
    text = f"""
seed: 15
samples:
  signal: {BUMP % (20000, "signal")}
  background: {BUMP % (60000, "background")}
studies:
  power: {{study: search_power, options: {{n_toys: 2000, signal_yield: 25,
          background_yield: 300, trained_classifier: true, n_train: 50000,
          train_epochs: 3, figures: false}}}}
"""
    methods = _run(text, tmp_path)["power"]["methods"]
    for alpha in ("0.05", "0.1"):
        opt, trained = methods["optimal"], methods["trained"]
        tolerance = 3 * math.hypot(opt["power_error"][alpha], trained["power_error"][alpha])
        # No statistic beats the Neyman–Pearson one beyond MC error, and a classifier that
        # learned the ratio well gets within that error of it (and beats counting).
        assert trained["power"][alpha] <= opt["power"][alpha] + tolerance
        assert trained["power"][alpha] >= opt["power"][alpha] - tolerance
        assert trained["power"][alpha] > methods["inclusive"]["power"][alpha] + tolerance
