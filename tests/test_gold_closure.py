"""ratiofit.gold_closure: a reweighter against exact per-event (joint) weights.

Known answers from ratiofit.testing.latent_gaussian_events: a hidden z ~ N(μ, 1), observed
x0 = (z + ε)/√2 and an uninformative x1, alternative weights the joint ratio
p(z|μ_k)/p(z|0), whose mean given x is the marginal ratio that
analytic_gaussian_reweighter(theta_scale=1/√2) returns exactly. No PYTHIA, no training
(but the last test's tiny run)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from ratiofit.errors import DataError
from ratiofit.events import AltWeights, EventSet
from ratiofit.gold_closure import gold_closure, paired_chi2
from ratiofit.testing import analytic_gaussian_reweighter, latent_gaussian_events
from ratiofit.weights import kish_ess

MUS = (-0.5, 0.5, 1.0)
EXACT_SCALE = 2 ** -0.5  # E[w|x]: the ratio of x0 ~ N(μ/√2, 1) to N(0, 1)


@pytest.fixture(scope="module")
def events() -> EventSet:
    return latent_gaussian_events(20_000, mus=MUS, rng=np.random.default_rng(11))


def _within_chi2(chi2: float, ndf: int) -> bool:
    """χ² on ndf degrees of freedom has mean ndf and standard deviation √(2 ndf); 4 of
    them above is P ≈ 1e-3 (e.g. χ²₁₉ > 43.7), below it cannot be for ndf ≥ 8, so a
    consistent closure fails this only by a 1-in-1000 fluctuation per test."""
    return abs(chi2 - ndf) <= 4 * np.sqrt(2 * ndf)


def test_the_exact_ratio_closes(events: EventSet) -> None:
    gold = gold_closure(analytic_gaussian_reweighter(theta_scale=EXACT_SCALE), events,
                        theta0={"mu": 0.0})
    assert gold.verdict == "pass" and not gold.skipped
    assert [p.theta for p in gold.points] == [{"mu": m} for m in MUS]
    for p in gold.points:
        assert p.verdict == "pass", p.to_dict()
        for c in (*p.features, p.calibration):
            assert c is not None and c.ndf >= 15
            assert _within_chi2(c.chi2, c.ndf), c
            # the two histograms share their events: as if independent, with both Σw²,
            # the χ² is far below its ndf (the module docstring's reason for the paired one)
            assert c.chi2_independent / c.ndf_independent < 0.5
        x0 = p.features[0]
        assert x0.observable == "x0" and x0.p_value_nominal < 1e-6  # θ_k moves x0
        reg = p.regression
        # linear (1, x0, x1), or quadratic (+ x0², x0·x1, x1²) where that predicts better
        assert reg is not None and reg.terms in (3, 6)
        assert reg.rmse < 0.1 * reg.rmse_regression and reg.correlation > 0.99
        # the exact ratio is no farther from E[w|x] than a regression fitted on other events
        assert reg.loss_learned_minus_regression < 3 * reg.loss_learned_minus_regression_error
        assert reg.loss_learned_minus_nominal < -5 * reg.loss_learned_minus_nominal_error


def test_a_wrong_ratio_fails_on_the_feature_it_gets_wrong(events: EventSet) -> None:
    wrong = analytic_gaussian_reweighter(theta_scale=1.1 * EXACT_SCALE)  # 10 % too strong
    gold = gold_closure(wrong, events, theta0={"mu": 0.0})
    assert gold.verdict == "fail"
    for p in gold.points:
        assert p.verdict == "fail" and "x0" in p.failed and "log_w" in p.failed
        assert "x1" not in p.failed  # x1 is independent of x0: both reweightings leave it be
        assert p.worst() is not None and p.worst().observable == "x0"  # type: ignore[union-attr]
        reg = p.regression
        assert reg is not None
        assert reg.loss_learned_minus_regression > 3 * reg.loss_learned_minus_regression_error


def test_ess_is_kish_of_the_exact_weights_times_the_event_weights(events: EventSet) -> None:
    rng = np.random.default_rng(5)
    weighted = dataclasses.replace(events, weights=rng.uniform(0.5, 2.0, len(events)))
    gold = gold_closure(analytic_gaussian_reweighter(theta_scale=EXACT_SCALE), weighted,
                        theta0={"mu": 0.0})
    assert weighted.alt_weights is not None
    for p in gold.points:
        col = weighted.alt_weights.column(p.column)
        assert p.ess == pytest.approx(kish_ess(weighted.event_weights * col), rel=1e-12)
        assert p.ess_fraction == pytest.approx(p.ess / kish_ess(weighted.event_weights))
    # E[w²] = exp(μ²) for the joint ratio: the ESS fraction falls away from θ₀
    fractions = {p.theta["mu"]: p.ess_fraction for p in gold.points}
    assert fractions[1.0] < fractions[0.5]


def test_missing_alt_weights_is_one_clear_line(events: EventSet) -> None:
    bare = dataclasses.replace(events, alt_weights=None)
    with pytest.raises(DataError) as err:
        gold_closure(analytic_gaussian_reweighter(), bare)
    msg = str(err.value)
    assert "\n" not in msg and "alt_weights" in msg and "variations" in msg
    assert msg.startswith("gold closure: latent Gaussian events has no exact")


def test_columns_the_reweighter_cannot_evaluate_are_skipped_with_reasons() -> None:
    ev = latent_gaussian_events(2000, mus=(0.5,), rng=np.random.default_rng(2))
    assert ev.alt_weights is not None
    w = ev.alt_weights.values[:, 0]
    alt = AltWeights(values=np.stack([w, w, w], axis=1), names=("mu=0.5", "sigma=2", "mu=3"),
                     theta=({"mu": 0.5}, {"sigma": 2.0}, {"mu": 3.0}))
    gold = gold_closure(analytic_gaussian_reweighter(theta_scale=EXACT_SCALE),
                        dataclasses.replace(ev, alt_weights=alt))
    assert [p.column for p in gold.points] == ["mu=0.5"]
    assert "not parameterised" in gold.skipped["sigma=2"]
    assert "outside the range" in gold.skipped["mu=3"]
    assert gold.theta0 == {"mu": 0.0}  # from the events' constant θ column
    json.dumps(gold.to_dict())  # JSON-able as it stands


def test_paired_chi2_is_chi2_distributed_under_the_null() -> None:
    """Over 200 independent replicas of 2000 events the paired χ² of the exact ratio
    averages its ndf: the mean of 200 χ²₉ has standard error √(2·9/200) = 0.3, and
    the check allows 4 of them."""
    rng = np.random.default_rng(3)
    chi2s, ndfs = [], []
    for _ in range(200):
        z = rng.standard_normal(2000)
        x = (z + rng.standard_normal(2000)) / np.sqrt(2)
        index = np.clip(np.searchsorted(np.linspace(-2, 2, 9), x), 0, 9) - 1  # 9 + rest
        nu = 0.7 * EXACT_SCALE
        c, k = paired_chi2(index, np.exp(nu * x - nu * nu / 2), np.exp(0.7 * z - 0.245))
        chi2s.append(c)
        ndfs.append(k)
    assert set(ndfs) == {9}
    assert abs(np.mean(chi2s) - 9) < 4 * np.sqrt(2 * 9 / 200)


def _latent_source() -> Any:
    """A source of latent-Gaussian events (θ = mu per event) with exact weights at the
    ``variations`` values of mu."""
    from ratiofit.options import Option

    class LatentGaussian:
        name = "latent_gaussian"
        options: ClassVar[dict[str, Any]] = {
            "variations": Option(kind="float_list", default=[], doc="mu values")}

        def feature_names(self, options: Any) -> list[str]:
            return ["x0", "x1"]

        def generate(self, *, n_events: int, theta: Any, options: Any,
                     rng: np.random.Generator) -> EventSet:
            mu = np.broadcast_to(np.asarray(theta.get("mu", 0.0), float), (n_events,))
            z = mu + rng.standard_normal(n_events)
            x = np.stack([(z + rng.standard_normal(n_events)) / np.sqrt(2),
                          rng.standard_normal(n_events)], axis=1)
            mus = [float(m) for m in options["variations"]]
            alt = None if not mus else AltWeights(
                values=np.stack([np.exp((m - mu) * z - (m * m - mu * mu) / 2) for m in mus],
                                axis=1),
                names=tuple(f"mu={m:g}" for m in mus), theta=tuple({"mu": m} for m in mus))
            return EventSet(features=x, feature_names=("x0", "x1"), alt_weights=alt)

    return LatentGaussian()


def test_a_run_whose_reference_carries_exact_weights_reports_its_gold_closure(
        tmp_path: Path) -> None:
    from ratiofit.hookspecs import hookimpl
    from ratiofit.registry import Registry
    from ratiofit.spec import load_spec_text
    from ratiofit.workflow import run_spec

    class Plugin:
        @hookimpl
        def ratiofit_sources(self) -> list[Any]:
            return [_latent_source()]

    reg = Registry()
    reg.load_entry_points(only_own=True)
    reg.register(Plugin(), name="latent", distribution="tests")
    spec = load_spec_text("""
seed: 4
parameters: {mu: {nominal: 0.0, range: [-1.0, 1.0]}}
samples:
  nominal: {source: latent_gaussian, n_events: 3000, options: {variations: [0.5, 2.0]}}
  varied: {source: latent_gaussian, n_events: 3000, theta: {mu: uniform}}
reweighter: {architecture: mlp, reference: nominal, target: varied,
             training: {epochs: 2, batch_size: 512, checkpoint: false}}
outputs: {plots: false, closure: {}, closure_events: 4000}
""", path="gold.yaml", registry=reg)
    result = run_spec(spec, tmp_path, plots=False, registry=reg)
    gold = json.loads((tmp_path / "result.json").read_text())["gold_closure"]
    assert gold == json.loads(json.dumps(result["gold_closure"]))
    assert gold["n_events"] == 4000 and gold["theta0"] == {"mu": 0.0}
    assert [p["theta"] for p in gold["points"]] == [{"mu": 0.5}]
    assert "outside the range" in gold["skipped"]["mu=2"]
    point = gold["points"][0]
    assert [f["observable"] for f in point["features"]] == ["x0", "x1"]
    assert point["verdict"] in ("pass", "fail") and 0 < point["ess_fraction"] <= 1
    assert result["timing"]["gold_closure_seconds"] == gold["seconds"]
