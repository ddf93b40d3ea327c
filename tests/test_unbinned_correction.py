"""The unbinned fit's simulation correction (ratiofit.unbinned_correction): a background
model with a known bias (the exact Gaussian ratio evaluated at 1.5·μ, a θ-dependence 50 %
too strong) gives a fitted nuisance many errors from the truth, and the correction brings
it back within its errors."""

from __future__ import annotations

import numpy as np
import pytest

from ratiofit.inference.unbinned_analysis import fit_model
from ratiofit.inference.unbinned_model import (
    UnbinnedChannel,
    UnbinnedComponent,
    UnbinnedModel,
    UnbinnedNuisance,
    concatenate_events,
)
from ratiofit.registry import get_registry
from ratiofit.spec import load_spec_text
from ratiofit.testing import analytic_gaussian_reweighter
from ratiofit.unbinned_correction import cannot_simulate, simulation_correction
from ratiofit.workflow import Samples

SPEC = """\
seed: 3
parameters:
  mu: {nominal: 0.0, range: [-1.0, 1.0]}
samples:
  nominal: {source: gaussian, n_events: 5000, options: {mean: mu}}
  varied: {source: gaussian, n_events: 1000, theta: {mu: uniform}, options: {mean: mu}}
  signal: {source: gaussian, n_events: 5000, options: {mean: 1.5, width: 0.3}}
  data: {source: gaussian, n_events: 5000, theta: {mu: 0.2}, options: {mean: mu}}
  injected: {source: gaussian, n_events: 200, options: {mean: 1.5, width: 0.3}}
reweighter: {architecture: mlp, reference: nominal, target: varied}
inference:
  backend: unbinned
  poi: mu_sig
  data: [data, injected]
  samples:
    signal: {sample: signal, yield: 200, signal: true}
    background: {sample: nominal, yield: 5000, nuisances: [shape]}
  nuisances:
    shape: {reweighter: this, parameter: mu, nominal: 0.0, sigma: 0.1}
"""


def _exact_signal(events):  # log N(x; 1.5, 0.3) − log N(x; 0, 1)
    x = events.features[:, 0]
    return -np.log(0.3) - 0.5 * ((x - 1.5) / 0.3) ** 2 + 0.5 * x * x


def test_the_correction_removes_a_known_bias_of_the_background_model() -> None:
    spec = load_spec_text(SPEC, path="c.yaml")
    registry = get_registry()
    assert cannot_simulate(spec, registry) is None
    samples = Samples(spec, registry)
    ns = spec.inference.nuisances["shape"]
    model = UnbinnedModel(
        channels=[UnbinnedChannel(
            name="channel",
            data=concatenate_events([(samples[d], samples[d].event_weights)
                                     for d in ("data", "injected")]),
            components=(UnbinnedComponent(name="signal", events=samples["signal"], yield_=200.0,
                                          poi="mu_sig", log_ratio=_exact_signal),
                        UnbinnedComponent(name="background", events=samples["nominal"],
                                          yield_=5000.0, log_ratio=None)),
            nuisances=("shape",))],
        # w(x, μ) of N(1.5μ, 1): data at μ = 0.2 look like μ = 0.2/1.5 to it
        reweighter=analytic_gaussian_reweighter(mu_range=(-1.0, 1.0), theta_scale=1.5),
        nuisances=[UnbinnedNuisance(name="shape", parameter="mu", nominal=ns.nominal,
                                    sigma=ns.sigma, measured=None)],
        pois=["mu_sig"])
    fit = fit_model(model)
    truth = {"mu_sig": 1.0, "shape": 2.0}  # α = (0.2 − 0)/0.1
    i = list(model.names).index("shape")
    # the learned fit: α̂ ≈ 2/1.5, far outside its statistical error (≈ 0.15 here)
    assert abs(fit.value("shape") - truth["shape"]) > 3 * fit.error("shape")
    corr = simulation_correction(spec, registry, model, fit, fit_model=fit_model)
    assert corr.converged and len(corr.steps) >= 2  # a growing bias takes more than a step
    sim_err = np.sqrt(np.diag(corr.covariance))
    # the model follows α at 1/1.5 of the rate: the data's error of α grows by 1.5 through
    # the correction (the secant Jacobian from a few simulations: within 0.3)
    grow = corr.error_scale()
    assert grow[i] == pytest.approx(1.5, abs=0.3)
    for n in ("mu_sig", "shape"):
        j = list(model.names).index(n)
        # the corrected value against the truth: the data's statistical error through the
        # correction and the simulation's (1/10 of its variance), at 3 standard deviations
        tolerance = 3 * float(np.hypot(grow[j] * fit.error(n), sim_err[j]))
        assert abs(corr.corrected[j] - truth[n]) < tolerance, (n, corr.corrected[j])
    assert corr.bias[i] == pytest.approx(fit.value("shape") - corr.corrected[i])
    d = corr.to_dict()
    assert d["applied"] and d["parameters"]["shape"]["corrected"] == pytest.approx(
        corr.corrected[i])
    assert d["events"]["channel/background"] == pytest.approx(10 * 5000, rel=0.2)


@pytest.mark.parametrize(("old", "new", "match"), [
    ("reweighter: {architecture", "uncertainty: {correction: none}\nreweighter: {architecture",
     "uncertainty.correction is none"),
    ("background: {sample: nominal,", "background: {sample: injected,",
     "its background 'injected' is not the reweighter's reference process"),
])
def test_the_correction_says_why_it_cannot_simulate(old: str, new: str, match: str) -> None:
    spec = load_spec_text(SPEC.replace(old, new, 1), path="c.yaml")
    assert match in (cannot_simulate(spec, get_registry()) or "")

