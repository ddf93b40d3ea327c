"""The learned ratio's error in fits: bootstrap replicas, the error budget, the closure gate
and the coverage machinery."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from conftest import MU, gaussian_events, gaussian_spec

from ratiofit.auc import weighted_auc
from ratiofit.cli import main
from ratiofit.closure_gate import closure_gate
from ratiofit.coverage import summarise
from ratiofit.errors import SpecError
from ratiofit.fitting import FitProblem
from ratiofit.registry import get_registry
from ratiofit.spec import TrainingSpec, load_spec_text
from ratiofit.testing import analytic_gaussian_reweighter
from ratiofit.training import train_reweighter
from ratiofit.uncertainty import ErrorBudget, bootstrap, objective_hessian, refit


def test_budget_components_add_and_the_t_factor_follows_the_replicas() -> None:
    stat = np.array([[4.0, 1.0], [1.0, 9.0]])
    ref = np.diag([1.0, 0.0])
    # Replica values whose sample covariance is known: ±1 around 0 in mu, 0 in sigma.
    budget = ErrorBudget.from_replicas(names=["mu", "sigma"], stat=stat, reference=ref,
                                       replica_values={"mu": [-1.0, 1.0, 0.0],
                                                       "sigma": [2.0, 2.0, 2.0]})
    np.testing.assert_allclose(budget.reweighter, [[1.0, 0.0], [0.0, 0.0]])
    np.testing.assert_allclose(budget.total, stat + ref + budget.reweighter)
    # ν = (4 + 1 + 1)² / (1² / 2) = 72 for mu; sigma has no replica variance: ν = ∞.
    np.testing.assert_allclose(budget.dof(), [72.0, np.inf])
    fit = {"parameters": {"mu": {"value": 0.5}, "sigma": {"value": 1.0}}}
    budget.to_fit(fit)
    from scipy.stats import t

    k = t.ppf(0.5 + 0.682689492137086 / 2, 72)
    assert fit["parameters"]["mu"]["error"] == pytest.approx(k * np.sqrt(6.0))
    assert fit["parameters"]["sigma"]["error"] == pytest.approx(3.0)
    assert fit["parameters"]["mu"]["error_components"] == pytest.approx(
        {"stat": 2.0, "reweighter": 1.0, "reference": 1.0})
    lo, hi = fit["parameters"]["mu"]["interval_95"]
    assert hi - 0.5 == pytest.approx(t.ppf(0.975, 72) * np.sqrt(6.0))
    assert 0.5 - lo == pytest.approx(hi - 0.5)
    np.testing.assert_allclose(np.sqrt(np.diag(fit["covariance"])),
                               [fit["parameters"][n]["error"] for n in ("mu", "sigma")])


def test_no_replicas_says_the_reweighter_error_is_missing() -> None:
    fit = {"parameters": {"mu": {"value": 0.0}}}
    ErrorBudget.from_replicas(names=["mu"], stat=[[1.0]], reference=None,
                              replica_values={"mu": []}).to_fit(fit)
    assert fit["parameters"]["mu"]["error"] == pytest.approx(1.0)
    assert "NOT included" in fit["error_method"]


def test_bootstrap_weights_are_poisson_and_seeded() -> None:
    ev = gaussian_events(200_000, 0.0, seed=1, theta=False)
    a = bootstrap(ev, np.random.default_rng(5))
    b = bootstrap(ev, np.random.default_rng(5))
    np.testing.assert_array_equal(a.event_weights, b.event_weights)
    np.testing.assert_array_equal(a.features, ev.features)  # events stay, weights change
    w = a.event_weights
    assert np.all(w == np.round(w)) and w.min() >= 0
    # Poisson(1): mean 1 and variance 1, each within 5 standard errors on 2·10⁵ draws.
    n = len(w)
    assert abs(w.mean() - 1) < 5 / np.sqrt(n)
    assert abs(w.var() - 1) < 5 * np.sqrt(3 / n)  # Var of s² for Poisson(1): (μ4 − σ⁴)/n


def _likelihood_problem(rw, data, reference) -> FitProblem:
    return FitProblem(reweighter=rw, data=data, reference=reference, parameters=MU)


def test_newton_refit_matches_a_full_fit() -> None:
    """The replicas' refit (Newton steps with the main Hessian) lands where MIGRAD does."""
    reg = get_registry()
    strategy = reg.get("strategy", "likelihood")
    opts = {"normalisation": "reference", "minos": False, "landscape_points": 0,
            "tolerance": 0.01}
    rw = analytic_gaussian_reweighter()
    reference = gaussian_events(20_000, 0.0, seed=2, theta=False)
    main_problem = _likelihood_problem(rw, gaussian_events(5000, 0.4, seed=3, theta=False),
                                       reference)
    main = strategy.fit(problem=main_problem, options=opts)
    obj = strategy.objective(main_problem, opts)
    hess = objective_hessian(obj.gradient, [main.values["mu"]], [0.1 * main.errors["mu"]])
    # A perturbed objective: other data of the same size (a shift of about one error).
    other = _likelihood_problem(rw, gaussian_events(5000, 0.4, seed=4, theta=False), reference)
    x = refit(strategy.objective(other, opts).gradient, start=[main.values["mu"]],
              hessian=hess, errors=[main.errors["mu"]], low=[-2.0], high=[2.0])
    full = strategy.fit(problem=other, options=opts)
    assert x is not None
    # Newton's point is a stationary point: the distance to the minimum, g/H = g·σ², is
    # below 10⁻³ σ (its stopping rule).
    sigma = full.errors["mu"]
    g = strategy.objective(other, opts).gradient(x)[0]
    assert abs(g) * sigma**2 < 1e-3 * sigma
    # MIGRAD's minimum is only as precise as the float32 objective (relative precision
    # 10⁻⁶ of a value ~5·10³, i.e. Δf ~ 5·10⁻³, Δθ ≲ √(2Δf)·σ = 0.1σ).
    assert abs(x[0] - full.values["mu"]) < 0.1 * sigma


def test_coverage_of_exact_ratio_fits_is_textbook() -> None:
    """Repeated likelihood fits with the exact ratio, truths over the range: the reported
    intervals cover at their stated rates (the machinery itself adds no error)."""
    reg = get_registry()
    strategy = reg.get("strategy", "likelihood")
    opts = {"normalisation": "reference", "minos": False, "landscape_points": 0,
            "tolerance": 0.1}
    rw = analytic_gaussian_reweighter()
    rng = np.random.default_rng(11)
    repeats = 120
    values, errors, truths, intervals = [], [], [], []
    for k in range(repeats):
        truth = float(rng.uniform(-1.5, 1.5))
        data = gaussian_events(1000, truth, seed=1000 + k, theta=False)
        reference = gaussian_events(20_000, 0.0, seed=5000 + k, theta=False)
        res = strategy.fit(problem=_likelihood_problem(rw, data, reference),
                           options=opts).to_dict()
        ErrorBudget.from_replicas(names=["mu"], stat=res["covariance"],
                                  reference=res["extra"]["mc_stat_covariance"],
                                  replica_values={"mu": []}).to_fit(res)
        e = res["parameters"]["mu"]
        values.append(e["value"])
        errors.append(e["error"])
        truths.append(truth)
        intervals.append(e["interval_95"])
    s = summarise(values, errors, truths, intervals)
    # Binomial errors on 120 repeats: 4.3% at 68%, 2.0% at 95%; 3 of them as tolerance.
    assert abs(s["covered_68"] - 0.6827) < 3 * np.sqrt(0.68 * 0.32 / repeats)
    assert abs(s["covered_95"] - 0.95) < 3 * np.sqrt(0.95 * 0.05 / repeats)
    # Pull width: standard error 1/√(2(N−1)) = 0.065; mean: 1/√N = 0.091.
    assert abs(s["pull_width"] - 1) < 3 / np.sqrt(2 * (repeats - 1))
    assert abs(s["pull_mean"]) < 3 / np.sqrt(repeats)


def test_weighted_auc_counts_weights_and_ties() -> None:
    score = np.array([0.0, 1.0, 1.0, 2.0])
    label = np.array([0, 0, 1, 1])
    # Pairs (label-1, label-0): (1 vs 0) win, (1 vs 1) tie, (2 vs 0) win, (2 vs 1) win.
    def auc(w):
        return weighted_auc(target_scores=score[label == 1], reference_scores=score[label == 0],
                            target_weights=w[label == 1], reference_weights=w[label == 0])

    assert auc(np.ones(4)) == pytest.approx(3.5 / 4)
    w = np.array([1.0, 3.0, 1.0, 1.0])
    assert auc(w) == pytest.approx((1 + 1.5 + 1 + 3) / 8)


def _gate(rw, theta: float, n: int = 40_000):
    reference = gaussian_events(n, 0.0, seed=21, theta=False)
    target = gaussian_events(n, theta, seed=22, theta=False)
    return closure_gate(reweighter=rw, reference=reference, target=target,
                        theta={"mu": theta}, level=0.01, n_data=10_000, seed=1,
                        fitted=["mu"], reweighter_covariance=np.zeros((1, 1)),
                        stat_errors=np.array([0.01]))


def test_gate_passes_the_exact_ratio_and_flags_an_under_trained_one() -> None:
    exact = _gate(analytic_gaussian_reweighter(), 0.8)
    assert exact["verdict"] == "pass", exact["tests"]
    reg = get_registry()
    rng = np.random.default_rng(3)
    under = train_reweighter(
        reference=gaussian_events(30_000, 0.0, seed=1, theta=False),
        target=gaussian_events(30_000, rng.uniform(-2, 2, 30_000), seed=2, theta=True),
        parameters=MU, architecture=reg.get("architecture", "mlp"),
        architecture_options={"hidden": [16, 16], "activation": "swish", "theta_input": True},
        loss=reg.get("loss", "bce"),
        training=TrainingSpec(epochs=1, batch_size=4096, learning_rate=1e-3,
                              checkpoint=False), seed=5)
    bad = _gate(under, 0.8)
    assert bad["verdict"] == "fail"
    assert "score" in bad["failed"]


def test_gate_passes_a_well_trained_reweighter(trained_1d) -> None:
    rw, _ = trained_1d if isinstance(trained_1d, tuple) else (trained_1d, None)
    # A trained ratio is off by its own (training) error: give the score test the size of
    # that error, as the error budget would (the replicas' spread, here 0.01-0.02 for
    # 6·10⁴ events per class), and a gate of the data's size.
    reference = gaussian_events(10_000, 0.0, seed=31, theta=False)
    target = gaussian_events(10_000, 0.5, seed=32, theta=False)
    g = closure_gate(reweighter=rw, reference=reference, target=target, theta={"mu": 0.5},
                     level=0.01, n_data=10_000, seed=1, fitted=["mu"],
                     reweighter_covariance=np.array([[0.015**2]]),
                     stat_errors=np.array([0.01]))
    assert g["verdict"] == "pass", g["tests"]


UNC = {"seed": 4, "n_nominal": 20000, "data_mu": -0.6, "hidden": (32, 32),
       "training": {"epochs": 8, "batch_size": 512},
       "calibration": {"method": "normalisation", "points": 9, "degree": 4, "events": 20000},
       "uncertainty": {"replicas": 3, "gate_events": 5000}, "outputs": {"plots": False}}
UNC_SPEC = gaussian_spec(**UNC)


def test_run_reports_the_error_budget_and_the_gate(tmp_path: Path) -> None:
    spec = tmp_path / "unc.yaml"
    spec.write_text(UNC_SPEC)
    res = CliRunner().invoke(main, ["run", str(spec), "-o", str(tmp_path / "out"), "-q"])
    assert res.exit_code == 0, res.output
    import json

    fit = json.loads((tmp_path / "out" / "result.json").read_text())["fit"]
    e = fit["parameters"]["mu"]
    c = e["error_components"]
    # The learned fit's budget: the replicas' refitted values give its reweighter part.
    learned = fit["learned"]["parameters"]["mu"]
    values = [r["values"]["mu"] for r in fit["uncertainty"]["replicas"]]
    assert len(values) == 3
    assert learned["error_components"]["reweighter"] == pytest.approx(np.std(values, ddof=1))
    # The simulation-corrected value: the replicas corrected with their own scores.
    assert fit["correction"]["applied"]
    corrected = fit["correction"]["replica_values"]["mu"]
    assert c["reweighter"] == pytest.approx(np.std(corrected, ddof=1))
    assert e["error"] >= np.sqrt(c["stat"]**2 + c["reweighter"]**2 + c["simulation"]**2)
    assert all(r["refit"] in ("newton", "fit") for r in fit["uncertainty"]["replicas"])
    for k in (1, 2, 3):
        assert (tmp_path / "out" / "replicas" / f"replica-{k}" / "reweighter").is_dir()
    assert fit["gate"]["verdict"] in ("pass", "fail")
    assert {t["test"] for t in fit["gate"]["tests"]} == {"chi2:x0", "classifier", "score"}
    assert "stat" in res.output and "reweighter" in res.output
    assert "closure gate at the fitted theta" in res.output

    # `ratiofit fit` with the run's reweighter refits the replicas saved beside it.
    res = CliRunner().invoke(main, ["fit", str(spec), "--reweighter",
                                    str(tmp_path / "out" / "reweighter"),
                                    "-o", str(tmp_path / "refit")])
    assert res.exit_code == 0, res.output
    again = json.loads((tmp_path / "refit" / "fit.json").read_text())["fit"]
    assert [r["values"]["mu"] for r in again["uncertainty"]["replicas"]] == pytest.approx(
        values, abs=1e-3 * c["stat"])
    # Same reweighters, data and simulation seeds: the same corrected fit (float32 outputs
    # of reloaded models agree to ~1e-6 relative, far below 1e-3 of the error).
    assert again["parameters"]["mu"]["value"] == pytest.approx(e["value"], abs=1e-3 * e["error"])
    assert again["parameters"]["mu"]["error"] == pytest.approx(e["error"], rel=1e-3)
    # A lone reweighter directory has no replicas: the fit says what its error leaves out.
    lone = tmp_path / "lone"
    import shutil

    shutil.copytree(tmp_path / "out" / "reweighter", lone / "reweighter")
    res = CliRunner().invoke(main, ["fit", str(spec), "--reweighter", str(lone / "reweighter"),
                                    "-o", str(tmp_path / "refit2")])
    assert res.exit_code == 0, res.output
    assert "warning: no reweighter replicas" in res.output


@pytest.mark.parametrize(("body", "field"), [
    ("{replicas: 1}", "uncertainty.replicas"),
    ("{replicas: -2}", "uncertainty.replicas"),
    ("{gate_level: 1.5}", "uncertainty.gate_level"),
    ("{gate_level: .nan}", "uncertainty.gate_level"),
    ("{gate_events: 10}", "uncertainty.gate_events"),
    ("{replica: 3}", "uncertainty"),
])
def test_bad_uncertainty_sections_are_refused(body: str, field: str) -> None:
    import yaml

    text = gaussian_spec(**{**UNC, "uncertainty": yaml.safe_load(body)})
    with pytest.raises(SpecError, match=field):
        load_spec_text(text, path="u.yaml")


def test_uncertainty_defaults_are_on_and_survive_the_resolved_spec() -> None:
    from ratiofit.spec import resolved_dict

    text = gaussian_spec(**{k: v for k, v in UNC.items() if k != "uncertainty"})
    spec = load_spec_text(text, path="u.yaml")
    assert spec.uncertainty.replicas == 3 and spec.uncertainty.gate
    again = load_spec_text(yaml.safe_dump(resolved_dict(spec)), path="r.yaml")
    assert again.uncertainty == spec.uncertainty


def _distorted_gaussian_reweighter(scale: float):
    """log w = aμx − a²μ²/2: a normalised but wrong ratio (the model N(aμ, 1)), like a
    reweighter that learned the θ-dependence too weakly (a < 1)."""
    import keras

    from ratiofit.plugin_api import InputSignature
    from ratiofit.reweighter import Reweighter
    from ratiofit.testing import _IdentityLoss

    class Distorted(keras.Model):  # type: ignore[misc]
        def call(self, inputs):
            x, mu = inputs["features"], inputs["theta"]
            return scale * x * mu - 0.5 * scale * scale * mu * mu

    sig = InputSignature(feature_names=("x0",), feature_mean=(0.0,), feature_std=(1.0,),
                         theta_names=("mu",), theta_centre=(0.0,), theta_half_width=(1.0,))
    return Reweighter(model=Distorted(), loss=_IdentityLoss(), parameters=MU, signature=sig,
                      metadata={"architecture": "analytic", "note": "distorted ratio"})


def test_simulation_correction_removes_a_wrong_ratios_bias() -> None:
    """A ratio that is 20% too weak in μ biases the learned fit by 25% of μ; one corrected
    step (simulation at the learned θ̂) lands on the truth, and its stated error covers."""
    from ratiofit.correction import one_step

    rw = _distorted_gaussian_reweighter(0.8)
    reg = get_registry()
    strategy = reg.get("strategy", "likelihood")
    opts = {"normalisation": "reference", "minos": False, "landscape_points": 0,
            "tolerance": 0.1}
    pulls, learned_pulls = [], []
    for k in range(40):
        truth = -1.0 + 0.05 * k
        data = gaussian_events(5000, truth, seed=200 + k, theta=False)
        reference = gaussian_events(50_000, 0.0, seed=300 + k, theta=False)
        fit = strategy.fit(problem=_likelihood_problem(rw, data, reference), options=opts)
        theta0 = {"mu": fit.values["mu"]}
        learned_pulls.append((fit.values["mu"] - truth) / fit.errors["mu"])
        for it in range(2):  # the workflow's second step when the first moved θ far
            sim = gaussian_events(20_000, theta0["mu"], seed=400 + 10 * k + it, theta=False)
            step = one_step(rw, data=data, sim=sim, theta=theta0, names=["mu"])
            theta0 = {"mu": step.values[0]}
        pulls.append((step.values[0] - truth) / np.sqrt(step.covariance[0][0]))
    pulls, learned_pulls = np.array(pulls), np.array(learned_pulls)
    # The learned fit is off by 0.25·|μ| ≈ 0.3 average over μ ∈ [−1, 1], ~20 of its errors.
    assert np.mean(np.abs(learned_pulls)) > 5
    # The corrected pulls: mean 0 (standard error 1/√40 = 0.16) and width 1 (standard
    # error 1/√78 = 0.11), each within 3 standard errors.
    assert abs(np.mean(pulls)) < 3 / np.sqrt(40)
    assert abs(np.std(pulls, ddof=1) - 1) < 3 / np.sqrt(2 * 39)


def test_correction_without_common_random_numbers_converges_within_its_noise(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A source that cannot reuse its random numbers (like PYTHIA at a changed θ): every
    correction step gets an independent simulation, so the steps keep moving by ~√2 of the
    simulation's error. The correction then reports convergence within that noise (or
    below a fifth of an error, by chance) instead of a warning, and the value stays within
    3 total errors of the truth (a fixed-seed draw)."""
    import json

    import ratiofit.honest as honest

    original = honest.simulate_at
    calls: list[str] = []

    def independent(spec, registry, theta, *, key, n):
        calls.append(key)
        return original(spec, registry, theta, key=f"{key}-{len(calls)}", n=n)

    monkeypatch.setattr(honest, "simulate_at", independent)
    spec = tmp_path / "unc.yaml"
    spec.write_text(gaussian_spec(**{**UNC, "uncertainty": {"replicas": 0, "gate": False,
                                                            "gate_events": 5000}}))
    res = CliRunner().invoke(main, ["run", str(spec), "-o", str(tmp_path / "out"), "-q"])
    assert res.exit_code == 0, res.output
    fit = json.loads((tmp_path / "out" / "result.json").read_text())["fit"]
    corr = fit["correction"]
    assert corr["applied"] and corr["converged"], corr
    assert corr["convergence"] in ("step below a fifth of an error",
                                   "last step within the simulation's noise (2·√2·its error)")
    assert len(set(calls)) == 1 and len(calls) == len(corr["steps"])
    assert not any("did not converge" in w for w in fit["warnings"])
    e = fit["parameters"]["mu"]
    assert abs(e["value"] + 0.6) < 3 * e["error"]


def test_coverage_command_repeats_the_pipeline(tmp_path: Path) -> None:
    import json

    spec = tmp_path / "unc.yaml"
    spec.write_text(gaussian_spec(**{**UNC, "n_nominal": 6000,
                                     "training": {"epochs": 3, "batch_size": 512},
                                     "uncertainty": {"replicas": 2, "gate_events": 5000}}))
    out = tmp_path / "cov"
    res = CliRunner().invoke(main, ["coverage", str(spec), "--repeats", "2", "-o", str(out),
                                    "--truth-range", "mu=-1:1"])
    assert res.exit_code == 0, res.output
    cov = json.loads((out / "coverage.json").read_text())
    truths = [r["parameters"]["mu"]["truth"] for r in cov["runs"]]
    assert len(set(truths)) == 2 and all(-1 <= t <= 1 for t in truths)
    assert len({r["seed"] for r in cov["runs"]}) == 2  # fresh samples and training
    s = cov["summary"]["mu"]
    assert s["repeats"] == 2 and 0 <= s["covered_68"] <= 1
    assert (out / "pulls.png").stat().st_size > 0
    assert "coverage mu: 68%" in res.output
    bad = CliRunner().invoke(main, ["coverage", str(spec), "--repeats", "2", "-o", str(out),
                                    "--truth-range", "mu=3:4"])
    assert bad.exit_code == 2 and "--truth-range" in bad.output


@pytest.mark.parametrize("strategy_name", ["likelihood", "dctr"])
def test_a_fit_at_a_range_limit_is_flagged_and_keeps_a_real_error(strategy_name: str) -> None:
    """Data at μ = 1 fitted with a ratio defined on [−0.5, 0.5]: MIGRAD stops at the limit,
    where its bounded HESSE would report ~0 (docs/results.md once showed a_lund =
    0.9000 ± 0.0000); the objective's own curvature there gives ~1/√N instead."""
    from ratiofit.parameters import Parameter, ParameterSet

    rw = analytic_gaussian_reweighter(mu_range=(-0.5, 0.5))
    params = ParameterSet([Parameter(name="mu", nominal=0.0, low=-0.5, high=0.5)])
    data = gaussian_events(4000, 1.0, seed=7, theta=False)
    reference = gaussian_events(40_000, 0.0, seed=8, theta=False)
    strategy = get_registry().get("strategy", strategy_name)
    opts = {n: o.default for n, o in strategy.options.items()}
    opts.update({"landscape_points": 0})
    if "minos" in opts:
        opts["minos"] = False
    res = strategy.fit(problem=FitProblem(reweighter=rw, data=data, reference=reference,
                                          parameters=params), options=opts)
    assert res.values["mu"] == pytest.approx(0.5, abs=1e-3)
    assert res.extra["at_limit"] == ["mu"]
    # The NLL's curvature at μ = 0.5 is N (unit Gaussian): error 1/√4000 = 0.016; DCTR's
    # sandwich error is within a factor 2 of it. Anything near 0 would fail.
    assert 0.5 / np.sqrt(4000) < res.errors["mu"] < 2 / np.sqrt(4000)


def test_secant_jacobian_maps_the_step_onto_the_observed_change() -> None:
    from ratiofit.correction import secant_jacobian

    j0 = np.array([[2.0, 0.5], [0.5, 1.0]])
    step, change = np.array([0.3, -0.1]), np.array([0.9, 0.2])
    j1 = secant_jacobian(j0, step=step, change=change)
    np.testing.assert_allclose(j1 @ step, change)
    # Directions orthogonal to the step keep the old Jacobian (Broyden's minimal change).
    ortho = np.array([0.1, 0.3])
    np.testing.assert_allclose(j1 @ ortho, j0 @ ortho)


def test_a_failed_repeat_counts_as_not_covering() -> None:
    """Coverage over repeats where one fit did not converge: the failure stays in the
    denominator (3 of 4 repeats cover, not 3 of 3), and the pulls are the others'."""
    from ratiofit.coverage import summarise_runs

    ok = [{"repeat": k, "gate": None, "parameters": {"mu": {
        "truth": 0.0, "value": v, "error": 1.0, "interval_95": [v - 1.96, v + 1.96]}}}
        for k, v in enumerate((0.1, -0.5, 0.3))]
    failed = {"repeat": 3, "gate": None, "failed": "the fit did not converge",
              "parameters": {"mu": {"truth": 0.0}}}
    s = summarise_runs([*ok, failed], ["mu"])["mu"]
    assert s["repeats"] == 4 and s["failed"] == 1
    assert s["covered_68"] == pytest.approx(0.75) and s["covered_95"] == pytest.approx(0.75)
    assert len(s["pulls"]) == 3
