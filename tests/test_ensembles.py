"""Per-ensemble learning (ensembles.md), the parts ratiofit itself ships: the deep-sets
ensemble architecture and the regression and classifier-loss strategies.

The studies of the paper (ensembles, ROC/AUC, divergences, mutual information) and their
specs are in the ratiofit-papers distribution: examples/ratiofit-papers/tests."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from scipy.stats import truncnorm

from ratiofit.errors import DataError
from ratiofit.events import EventSet
from ratiofit.fitting import FitProblem
from ratiofit.options import resolve_options
from ratiofit.parameters import Parameter, ParameterSet
from ratiofit.plugin_api import InputSignature
from ratiofit.plugins.architectures.deepsets_ensemble import DeepSetsEnsemble, per_event_model
from ratiofit.plugins.strategies.classifier_loss import ClassifierLoss
from ratiofit.plugins.strategies.regression import Regression
from ratiofit.testing import analytic_gaussian_reweighter, check_plugin


# -- deep sets -----------------------------------------------------------------------------
def _ensemble_signature(n_events: int, event_dim: int, theta: bool) -> InputSignature:
    width = n_events * event_dim
    return InputSignature(feature_names=tuple(f"f{i}" for i in range(width)),
                          feature_mean=tuple(np.linspace(-0.2, 0.2, width).tolist()),
                          feature_std=tuple(np.linspace(0.8, 1.2, width).tolist()),
                          theta_names=("mu",) if theta else (),
                          theta_centre=(0.0,) if theta else (),
                          theta_half_width=(1.0,) if theta else ())


@pytest.mark.parametrize("fixed", [False, True])
def test_deepsets_ensemble_conforms(fixed: bool) -> None:
    options = {"event_dim": 2, "phi": [8], "latent": 4, "head": [8], "fixed_output": fixed}
    # The default check signature: 2 features = 1 event of 2 features, and θ.
    check_plugin(DeepSetsEnsemble(), kind="architecture", options=options)
    check_plugin(DeepSetsEnsemble(), kind="architecture", options=options,
                 signature=_ensemble_signature(5, 2, theta=False))


@pytest.mark.parametrize("fixed", [False, True])
def test_deepsets_ensemble_is_permutation_invariant(fixed: bool) -> None:
    arch = DeepSetsEnsemble()
    options = resolve_options(arch.options, {"event_dim": 2, "phi": [8, 8], "latent": 4,
                                             "head": [8], "fixed_output": fixed}, where="t")
    model = arch.build(signature=_ensemble_signature(6, 2, theta=True),
                       output_activation="linear", options=options)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(7, 6, 2)).astype(np.float32)
    theta = rng.uniform(-1, 1, size=(7, 1)).astype(np.float32)
    permuted = np.stack([row[rng.permutation(6)] for row in x])
    out = np.asarray(model({"features": x.reshape(7, 12), "theta": theta}))
    out_perm = np.asarray(model({"features": permuted.reshape(7, 12), "theta": theta}))
    assert not np.allclose(x, permuted)
    np.testing.assert_allclose(out, out_perm, rtol=1e-5, atol=1e-6)
    if fixed:  # Eq. 32: the ensemble output is the sum of the per-event Φ
        phi = per_event_model(model)
        per_event = np.asarray(phi({"features": x.reshape(42, 2),
                                    "theta": np.repeat(theta, 6, axis=0)})).reshape(7, 6)
        np.testing.assert_allclose(out[:, 0], per_event.sum(axis=1), rtol=1e-5, atol=1e-5)


def test_deepsets_reweighter_saves_and_loads(tmp_path: Any) -> None:
    """Built-in layers only: a deep-sets reweighter reloads in safe mode, same outputs."""
    from ratiofit.plugins.losses.bce import BCE
    from ratiofit.reweighter import Reweighter

    arch = DeepSetsEnsemble()
    options = resolve_options(arch.options, {"phi": [4], "latent": 2, "head": [4]}, where="t")
    signature = _ensemble_signature(3, 1, theta=False)
    model = arch.build(signature=signature, output_activation="linear", options=options)
    rw = Reweighter(model=model, loss=BCE(), parameters=ParameterSet([]), signature=signature,
                    metadata={"architecture": "deepsets_ensemble",
                              "architecture_options": dict(options)}, architecture=arch)
    x = np.random.default_rng(2).normal(size=(5, 3))
    rw.save(tmp_path / "rw")
    loaded = Reweighter.load(tmp_path / "rw")
    np.testing.assert_allclose(loaded.log_ratio(features=x), rw.log_ratio(features=x),
                               rtol=1e-6, atol=1e-6)


def test_deepsets_ensemble_refuses_features_that_do_not_split() -> None:
    arch = DeepSetsEnsemble()
    options = resolve_options(arch.options, {"event_dim": 3}, where="t")
    with pytest.raises(Exception, match="do not split"):
        arch.build(signature=_ensemble_signature(2, 2, theta=False), output_activation="linear",
                   options=options)


# -- strategies ----------------------------------------------------------------------------
def _problem(mean: float, n: int, seed: int) -> FitProblem:
    rng = np.random.default_rng(seed)
    rw = analytic_gaussian_reweighter(mu_range=(-0.5, 0.5))
    data = EventSet(features=rng.normal(mean, 1.0, n)[:, None], feature_names=("x0",))
    reference = EventSet(features=rng.normal(0.0, 1.0, 100_000)[:, None],
                         feature_names=("x0",))
    params = ParameterSet([Parameter(name="mu", nominal=0.0, low=-0.5, high=0.5)])
    return FitProblem(reweighter=rw, data=data, reference=reference, parameters=params)


def test_strategies_conform() -> None:
    check_plugin(Regression(), kind="strategy")
    check_plugin(ClassifierLoss(), kind="strategy")


def test_regression_posterior_mean_matches_truncated_normal() -> None:
    """Exact ratio, flat prior on [−0.5, 0.5]: p(μ|x⃗) ∝ N(μ; x̄, 1/N) truncated (Eq. 29)."""
    problem = _problem(0.35, 100, seed=2)
    strategy = Regression()
    fit = strategy.fit(problem=problem, options=resolve_options(
        strategy.options, {"points": 201, "normalisation": "none"}, where="regression"))
    xbar, sigma = float(problem.data.features.mean()), 0.1
    posterior = truncnorm((-0.5 - xbar) / sigma, (0.5 - xbar) / sigma, loc=xbar, scale=sigma)
    # Midpoint sums on 201 cells of width 0.005 err by O(width²/σ²) ≈ 0.3 % of σ.
    assert fit.values["mu"] == pytest.approx(posterior.mean(), abs=1e-3)
    assert fit.errors["mu"] == pytest.approx(posterior.std(), abs=1e-3)


def test_classifier_loss_with_mlc_is_maximum_likelihood() -> None:
    """Eq. 26: with the MLC loss θ_CL is the ML estimate of the normalised learned density
    p(x|θ₀) w(x, θ)/Z(θ), Z from the reference sample (as in the likelihood strategy)."""
    from scipy.optimize import minimize_scalar
    from scipy.special import logsumexp

    problem = _problem(-0.12, 400, seed=4)
    strategy = ClassifierLoss()
    fit = strategy.fit(problem=problem, options=resolve_options(
        strategy.options, {"points": 101}, where="classifier_loss"))
    x, x_ref = problem.data.features[:, 0], problem.reference.features[:, 0]

    def nll(mu: float) -> float:
        log_z = logsumexp(mu * x_ref - mu * mu / 2) - np.log(len(x_ref))
        return float(-np.sum(mu * x - mu * mu / 2) + len(x) * log_z)

    ml = minimize_scalar(nll, bounds=(-0.5, 0.5), method="bounded",
                         options={"xatol": 1e-7}).x
    # The parabola through grid points 0.01 apart is exact for a quadratic log-likelihood;
    # Z's small non-quadratic part and the φ scan move θ_CL by ≪ 1e-3.
    assert fit.values["mu"] == pytest.approx(ml, abs=1e-3)
    assert fit.errors["mu"] == pytest.approx(1 / np.sqrt(400), rel=0.05)
    assert fit.valid
    # BCE minimises the Jensen–Shannon divergence instead: a different, nearby estimator
    # (here within a fifth of the statistical error 0.05).
    bce = strategy.fit(problem=problem, options=resolve_options(
        strategy.options, {"points": 101, "loss": "bce"}, where="classifier_loss"))
    assert bce.values["mu"] == pytest.approx(ml, abs=0.01)


def test_classifier_loss_needs_reference() -> None:
    problem = _problem(0.0, 50, seed=1)
    problem.reference = None
    strategy = ClassifierLoss()
    with pytest.raises(DataError, match="reference"):
        strategy.fit(problem=problem, options=resolve_options(strategy.options, {},
                                                              where="classifier_loss"))
