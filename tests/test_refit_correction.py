"""The refit correction's solve of f(v) = v̂ (ratiofit.refit_correction) on known maps f:
no simulation, no network — f is written down, so the expected answers are exact."""

from __future__ import annotations

import numpy as np
import pytest

from ratiofit.refit_correction import LIMIT_PROBES, solve_refit_correction

LOWER, UPPER = np.array([0.0, 0.8]), np.array([5.0, 1.25])


def _solve(f, fitted, errors=(0.5, 0.05)):
    calls = []

    def simulate_fit(point):
        calls.append(point.copy())
        return f(point), np.diag(np.square(errors)), {"channel/sample": 10}

    corr = solve_refit_correction(names=["mu", "width"], fitted=np.array(fitted, float),
                                  errors=np.array(errors, float), lower=LOWER, upper=UPPER,
                                  simulate_fit=simulate_fit, events_per_expected=10,
                                  range_limited=["width"])
    return corr, calls


def test_a_constant_bias_is_removed_in_one_step() -> None:
    """f(v) = v + b: the corrected value is v̂ − b exactly, after two simulations (one
    step, then one that confirms it moves less than a fifth of an error)."""
    bias = np.array([0.7, 0.02])
    corr, calls = _solve(lambda v: v + bias, [2.0, 1.05])
    assert corr.converged and len(calls) == 2
    np.testing.assert_allclose(corr.corrected, [1.3, 1.03], atol=1e-12)
    np.testing.assert_allclose(corr.bias, bias, atol=1e-12)
    assert corr.at_limit == {}
    # the last simulated fit's covariance over the 10 events per expected event
    np.testing.assert_allclose(np.diag(corr.covariance), np.square([0.5, 0.05]) / 10)


def test_a_slope_is_learned_by_the_secant_steps() -> None:
    """f(v) = v₀ + 2(v − v₀) (a model that follows the parameter twice as fast): the
    secant steps converge on f⁻¹(v̂) within a fifth of an error."""
    v0 = np.array([1.0, 1.0])
    corr, _ = _solve(lambda v: v0 + 2 * (v - v0), [2.0, 1.1])
    assert corr.converged
    assert np.all(np.abs(corr.corrected - [1.5, 1.05]) <= 0.2 * np.array([0.5, 0.05])), \
        corr.corrected


@pytest.mark.parametrize("truth", [0.82, 0.88, 0.93])
def test_a_fit_on_a_range_limit_reports_the_span_it_cannot_resolve(truth: float) -> None:
    """The width's learned dependence three times too weak: f(v) = 1 + 3(v − 1), held in
    the fit's range [0.8, 1.25]. Data at any truth below e = 1 − 0.2/3 = 0.9333 give a fit
    on the limit 0.8, which the secant steps alone cannot leave. The correction reports
    the middle of [0.8, e'] with half its length as an error component, where e' is e
    resolved by the probes (1/16, 1/8, 1/4, 1/2 of the range, one bisection) to within
    1/16 of the range (0.028): the truth lies within that half-length plus the
    resolution."""
    def f(v):
        out = np.array(v, dtype=float)
        out[1] = np.clip(1 + 3 * (v[1] - 1), 0.8, 1.25)
        return out

    fitted = f(np.array([2.0, truth]))
    assert fitted[1] == 0.8
    corr, _ = _solve(f, fitted)
    edge = 1 - 0.2 / 3
    assert set(corr.at_limit) == {"width"} and corr.at_limit["width"]["limit"] == 0.8
    assert abs(corr.at_limit["width"]["edge"] - edge) <= (UPPER[1] - LOWER[1]) * LIMIT_PROBES[0]
    half = 0.5 * (corr.at_limit["width"]["edge"] - 0.8)
    assert corr.corrected[1] == pytest.approx(0.8 + half)
    assert np.sqrt(corr.covariance[1, 1]) >= half
    assert abs(corr.corrected[1] - truth) <= half + (UPPER[1] - LOWER[1]) * LIMIT_PROBES[0]
    # the POI, untouched by the width here, is still solved (no bias: stays)
    assert corr.corrected[0] == pytest.approx(2.0)
    assert corr.to_dict()["at_limit"] == corr.at_limit


def test_the_others_error_grows_with_the_span_of_a_held_parameter() -> None:
    """The POI's learned fit depends on the simulated width: f₀(v) = v₀ − 2(v₁ − 1), with
    the width's learned dependence three times too weak and on its limit as above. The
    POI solved with the width held at the middle m of [0.8, e] moves by 2(e − m) = 2·half
    when the width is held at e instead: exactly (f is linear), so the recorded shift is
    that and the POI's error holds it."""
    def f(v):
        return np.array([v[0] - 2 * (v[1] - 1), np.clip(1 + 3 * (v[1] - 1), 0.8, 1.25)])

    corr, _ = _solve(f, f(np.array([2.0, 0.88])))
    half = 0.5 * (corr.at_limit["width"]["edge"] - 0.8)
    assert corr.at_limit["width"]["shift"][0] == pytest.approx(2 * half, rel=1e-6)
    assert corr.covariance[0, 0] >= (2 * half) ** 2
    # and the POI itself is the solution at the middle: v̂₀ + 2(m − 1)
    assert corr.corrected[0] == pytest.approx(f(np.array([2.0, 0.88]))[0]
                                              + 2 * (corr.corrected[1] - 1), abs=0.1)


def test_a_poi_on_its_physical_bound_is_not_a_range_limit() -> None:
    """μ̂ = 0 on the POI's bound with an unbiased model (f(v) = v, clipped at 0): the data's
    own answer, not a learned model that cannot follow μ; no probes, no span added (a
    probe a sixteenth of a wide POI range away would add a large error for nothing)."""
    corr, calls = _solve(lambda v: np.maximum(v, LOWER), [0.0, 1.0])
    assert corr.at_limit == {} and corr.converged and len(calls) == 1
    assert corr.corrected[0] == 0.0
    np.testing.assert_allclose(np.diag(corr.covariance), np.square([0.5, 0.05]) / 10)
