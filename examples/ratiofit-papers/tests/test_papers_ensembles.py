"""Per-ensemble learning (ensembles.md): ensembles, ROC/AUC, divergences, mutual
information, the studies and their specs (ratiofit-papers).

The deep-sets architecture and the regression and classifier-loss strategies are
ratiofit's own: tests/test_ensembles.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from ratiofit_papers.ensembles.divergences import (
    divergences_from_losses,
    gaussian_pair_divergences,
    mutual_information_mlc,
)
from ratiofit_papers.ensembles.roc import auc, auc_standard_error, normal_scores_auc, roc_curve
from ratiofit_papers.ensembles.sampling import draw_ensembles, ensemble_log_ratio
from ratiofit_papers.studies.ensemble_classification import EnsembleClassification
from ratiofit_papers.studies.ensemble_regression import EnsembleRegression
from ratiofit_papers.studies.mutual_information import MutualInformation
from scipy.special import log_expit, ndtr

from ratiofit.errors import DataError, SpecError
from ratiofit.events import EventSet
from ratiofit.spec import load_spec_text
from ratiofit.testing import check_plugin

SPECS = Path(__file__).resolve().parent.parent / "specs"


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
    from ratiofit.spec import load_spec

    spec = load_spec(SPECS / f"ensembles_{name}.yaml")
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
