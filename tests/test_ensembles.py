"""Per-ensemble learning (ensembles.md): ensembles, ROC/AUC, deep sets, divergences,
mutual information, the regression and classifier-loss strategies, the study specs."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from scipy.special import log_expit, ndtr
from scipy.stats import truncnorm

from ratiofit.errors import DataError, SpecError
from ratiofit.events import EventSet
from ratiofit.fitting import FitProblem
from ratiofit.options import resolve_options
from ratiofit.parameters import Parameter, ParameterSet
from ratiofit.plugin_api import InputSignature
from ratiofit.plugins.architectures.deepsets_ensemble import DeepSetsEnsemble, per_event_model
from ratiofit.plugins.ensembles.divergences import (
    divergences_from_losses,
    gaussian_pair_divergences,
    mutual_information_mlc,
)
from ratiofit.plugins.ensembles.roc import auc, auc_standard_error, normal_scores_auc, roc_curve
from ratiofit.plugins.ensembles.sampling import draw_ensembles, ensemble_log_ratio
from ratiofit.plugins.strategies.classifier_loss import ClassifierLoss
from ratiofit.plugins.strategies.regression import Regression
from ratiofit.plugins.studies.ensemble_classification import EnsembleClassification
from ratiofit.plugins.studies.ensemble_regression import EnsembleRegression
from ratiofit.plugins.studies.mutual_information import MutualInformation
from ratiofit.spec import load_spec_text
from ratiofit.testing import analytic_gaussian_reweighter, check_plugin


# -- ensembles -----------------------------------------------------------------------------
def test_draw_ensembles_partitions_and_augments() -> None:
    events = EventSet(features=np.arange(20.0)[:, None], feature_names=("x0",))
    ens = draw_ensembles(events, ensemble_size=4, augmentation=3, rng=np.random.default_rng(1))
    assert ens.feature_names == ("e0_x0", "e1_x0", "e2_x0", "e3_x0")
    assert len(ens) == 15
    values = ens.features
    assert all(len(set(row)) == 4 for row in values)  # distinct events in each ensemble
    counts = np.bincount(values.ravel().astype(int), minlength=20)
    assert np.all(counts == 3)  # footnote 5: each event in `augmentation` ensembles
    ordered = draw_ensembles(events, ensemble_size=4, sort_by="x0", rng=np.random.default_rng(1))
    assert np.all(np.diff(ordered.features, axis=1) > 0)


def test_draw_ensembles_refuses_mixed_theta_and_bad_sizes() -> None:
    mixed = EventSet(features=np.zeros((6, 1)), feature_names=("x0",),
                     theta=np.arange(6.0)[:, None], theta_names=("mu",))
    with pytest.raises(DataError, match="share θ"):
        draw_ensembles(mixed, ensemble_size=2, rng=np.random.default_rng(0))
    few = EventSet(features=np.zeros((3, 1)), feature_names=("x0",))
    with pytest.raises(DataError, match="cannot fill"):
        draw_ensembles(few, ensemble_size=4, rng=np.random.default_rng(0))
    with pytest.raises(DataError, match="do not form ensembles"):
        ensemble_log_ratio(np.zeros(5), ensemble_size=2)


# -- ROC / AUC -----------------------------------------------------------------------------
def test_weighted_auc_equals_brute_force_pair_counting() -> None:
    rng = np.random.default_rng(3)
    s_ref = rng.integers(0, 8, 150).astype(float)  # integers: many ties
    s_tgt = rng.integers(2, 10, 120).astype(float)
    w_ref, w_tgt = rng.uniform(0.1, 2, 150), rng.uniform(0.1, 2, 120)
    above = (s_tgt[:, None] > s_ref[None, :]) + 0.5 * (s_tgt[:, None] == s_ref[None, :])
    brute = float(np.sum(w_tgt[:, None] * w_ref[None, :] * above) / (w_tgt.sum() * w_ref.sum()))
    value = auc(reference_scores=s_ref, target_scores=s_tgt, reference_weights=w_ref,
                target_weights=w_tgt)
    assert value == pytest.approx(brute, abs=1e-12)
    fpr, tpr, thresholds = roc_curve(reference_scores=s_ref, target_scores=s_tgt)
    assert fpr[0] == tpr[0] == 0 and fpr[-1] == tpr[-1] == 1 and np.all(np.diff(thresholds) < 0)


def test_auc_refuses_non_finite_scores() -> None:
    with pytest.raises(DataError, match="NaN/inf"):
        auc(reference_scores=[0.0, np.nan], target_scores=[1.0])


def test_analytic_auc_of_summed_exact_log_ratio_matches_monte_carlo() -> None:
    """Σᵢ log w = 2ε Σᵢ xᵢ is normal under each hypothesis: AUC = Φ(ε√(2N)) (Sec. III A 1)."""
    epsilon, n_ens, m = 0.1, 10, 20_000
    closed = float(ndtr(epsilon * np.sqrt(2 * n_ens)))
    from_moments = normal_scores_auc(reference_mean=-2 * n_ens * epsilon ** 2,
                                     reference_variance=4 * n_ens * epsilon ** 2,
                                     target_mean=2 * n_ens * epsilon ** 2,
                                     target_variance=4 * n_ens * epsilon ** 2)
    assert from_moments == pytest.approx(closed, abs=1e-12)
    rng = np.random.default_rng(11)
    per_event = {k: 2 * epsilon * rng.normal(sign * epsilon, 1.0, m * n_ens)
                 for k, sign in (("reference", -1), ("target", 1))}
    summed = {k: ensemble_log_ratio(v, ensemble_size=n_ens) for k, v in per_event.items()}
    mc = auc(reference_scores=summed["reference"], target_scores=summed["target"])
    # 4 standard errors of an AUC from m vs m independent ensembles.
    assert abs(mc - closed) < 4 * auc_standard_error(auc_value=closed, n_reference=m, n_target=m)


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


# -- divergences and mutual information ---------------------------------------------------
def test_divergences_from_exact_ratio_match_closed_forms() -> None:
    epsilon, n = 0.3, 200_000
    rng = np.random.default_rng(5)
    x_t, x_r = rng.normal(epsilon, 1, n), rng.normal(-epsilon, 1, n)
    est = divergences_from_losses(target_log_ratio=2 * epsilon * x_t,
                                  reference_log_ratio=2 * epsilon * x_r)
    exact = gaussian_pair_divergences(mean_difference=2 * epsilon)
    for name, value in exact.items():
        # Each estimate is a sum of two sample means: within 4 of its standard errors.
        assert abs(est[name]["value"] - value) < 4 * est[name]["error"], name


def test_mutual_information_of_exact_ratio_is_the_analytic_value() -> None:
    """Tiny problem: the MLC loss of the exact ratio estimates I(X; Y) = JS(N(±ε, 1))."""
    epsilon, n = 0.5, 50_000
    rng = np.random.default_rng(8)
    y = np.repeat([1.0, 0.0], n)
    x = epsilon * (2 * y - 1) + rng.standard_normal(2 * n)
    joint = np.log(2.0) + log_expit(2 * epsilon * (2 * y - 1) * x)
    product = np.concatenate([np.log(2.0) + log_expit(-2 * epsilon * x),
                              np.log(2.0) + log_expit(2 * epsilon * x)])
    est = mutual_information_mlc(joint_log_ratio=joint, product_log_ratio=product)
    analytic = gaussian_pair_divergences(mean_difference=2 * epsilon)["jensen_shannon"]
    # Tolerance: 4 statistical standard errors of the two sample means.
    assert abs(est["value"] - analytic) < 4 * est["error"]
    assert est["error"] < 0.05 * analytic  # the test has the power to see a 5 % bias


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


# -- studies and specs ---------------------------------------------------------------------
def test_studies_conform() -> None:
    check_plugin(EnsembleClassification(), kind="study",
                 options={"reference": "a", "target": "b"})
    check_plugin(EnsembleRegression(), kind="study",
                 options={"reference": "a", "target": "b", "parameter": "mu"})
    check_plugin(MutualInformation(), kind="study", options={"noise": "n"})


SPEC = """seed: 1
parameters: {mu: {nominal: 0.0, range: [-0.5, 0.5]}}
samples:
  bkg: {source: gaussian, n_events: 2000, options: {mean: -0.1}}
  sig: {source: gaussian, n_events: 2000, options: {mean: 0.1}}
  varied: {source: gaussian, n_events: 2000, theta: {mu: uniform}, options: {mean: mu}}
studies:
  s:
    study: %s
    options: %s
"""


@pytest.mark.parametrize("study, options, field, message", [
    ("ensemble_classification", "{reference: nope, target: sig, train_events: 100}",
     "reference", "unknown sample"),
    ("ensemble_classification", "{reference: bkg, target: varied, train_events: 100}",
     "target", "fixed-θ"),
    ("ensemble_classification", "{reference: bkg, target: sig, classifiers: [f1, fX]}",
     "classifiers", "unknown classifier"),
    ("ensemble_classification", "{reference: bkg, target: sig, classifiers: [fN_to_1]}",
     "classifiers", "needs fN_set_fixed"),
    ("ensemble_classification", "{reference: bkg, target: sig, training: {epoch: 3}}",
     "training", "unknown training setting"),
    ("ensemble_classification", "{reference: bkg, target: sig, train_events: 5000}",
     "train_events", "need more"),
    ("ensemble_regression", "{reference: bkg, target: varied, parameter: nu}",
     "parameter", "unknown parameter"),
    ("ensemble_regression", "{reference: bkg, target: sig, parameter: mu}",
     "target", "must vary"),
    ("mutual_information", "{noise: bkg, epsilons: [0.1, -0.2]}", "epsilons", "must be >="),
    ("mutual_information", "{noise: bkg, epsilons: [0.0]}", "epsilons", "positive"),
    ("mutual_information", "{noise: bkg}", "noise", "need 2·"),
])
def test_spec_errors_name_the_field(study: str, options: str, field: str, message: str
                                    ) -> None:
    with pytest.raises(SpecError) as err:
        load_spec_text(SPEC % (study, options), path="e.yaml")
    text = str(err.value)
    assert text.startswith("e.yaml:") and f"studies.s.options.{field}" in text
    assert message in text


@pytest.mark.parametrize("name", ["classification", "regression", "mi", "fN1"])
def test_shipped_specs_validate(name: str) -> None:
    from pathlib import Path

    from ratiofit.spec import load_spec

    spec = load_spec(Path(__file__).resolve().parent.parent / "specs" / f"ensembles_{name}.yaml")
    assert spec.studies


# -- slow: trained networks ---------------------------------------------------------------
TINY_CLASSIFICATION = """seed: 4
parameters: {mu: {nominal: 0.0, range: [-1, 1]}}
samples:
  bkg: {source: gaussian, n_events: 220000, options: {mean: -0.1}}
  sig: {source: gaussian, n_events: 220000, options: {mean: 0.1}}
studies:
  c:
    study: ensemble_classification
    options: {reference: bkg, target: sig, train_events: 20000,
              classifiers: [f1, f1_to_N, fN_set_fixed, fN_to_1],
              event_network: {hidden: [32, 32]}, set_network: {phi: [16], latent: 4},
              training: {epochs: 60, patience: 8}, monitor_ensembles: 1000}
"""


@pytest.mark.slow
def test_f1_to_n_reaches_the_exact_ensemble_auc(tmp_path: Any) -> None:
    from ratiofit.workflow import run_spec

    spec = load_spec_text(TINY_CLASSIFICATION, path="c.yaml")
    result = run_spec(spec, tmp_path, plots=False)["studies"]["c"]
    aucs, n = result["auc"], result["test_ensembles"]["reference"]
    # f_{1→10} and the exact ratio score the same 20 000 test ensembles per class, so
    # their AUCs differ only through the learned per-event function; allow one standard
    # error of an independent AUC (~0.0045) — far less than f_1 vs f_10 (~0.12).
    tol = auc_standard_error(auc_value=aucs["exact_N"], n_reference=n, n_target=n)
    assert abs(aucs["f1_to_N"] - aucs["exact_N"]) < tol
    assert aucs["f1_to_N"] - aucs["f1"] > 0.08
    assert len(result["epoch_curves"]["f1_to_N"]["auc"]) == result["training"]["f1"]["epochs_run"]


TINY_MI = """seed: 6
parameters: {mu: {nominal: 0.0, range: [-1, 1]}}
samples:
  noise: {source: gaussian, n_events: 1240000}
studies:
  m:
    study: mutual_information
    options: {noise: noise, epsilons: [0.5], events_per_class: 20000,
              evaluation_events: 600000, network: {hidden: [32, 32]},
              training: {epochs: 40, batch_fraction: 0.05, patience: 6}}
"""


@pytest.mark.slow
def test_trained_mutual_information_within_five_percent(tmp_path: Any) -> None:
    from ratiofit.workflow import run_spec

    spec = load_spec_text(TINY_MI, path="m.yaml")
    row = run_spec(spec, tmp_path, plots=False)["studies"]["m"]["rows"][0]
    # At ε = 0.5 (I ≈ 0.11 nats) the statistical error is ~0.3 % of I; 5 % leaves room
    # for the training's (one-sided, downward) bias of a 20 000-event classifier.
    assert row["statistical_error"] < 0.01 * row["analytic"]
    assert abs(row["relative_deviation"]) < 0.05
