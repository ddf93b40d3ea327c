"""SRGN (srgn.md): two-level Gaussian source, weighted AUC, pairing, the ``srgn`` strategy."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest

from ratiofit.errors import DataError
from ratiofit.events import EventSet
from ratiofit.fitting import FitProblem
from ratiofit.options import resolve_options
from ratiofit.parameters import Parameter, ParameterSet
from ratiofit.plugins.sources.gaussian_detector import GaussianDetector
from ratiofit.plugins.strategies import srgn as srgn_module
from ratiofit.plugins.strategies.srgn import SRGN, evaluate_point, fit_bowl, weighted_auc
from ratiofit.testing import analytic_gaussian_reweighter, check_plugin

SOURCE = GaussianDetector()


def detector_events(n: int, *, mu: float, seed: int, **options: Any) -> EventSet:
    """``n`` two-level events at μ = ``mu`` from ``gaussian_detector``."""
    opts = resolve_options(SOURCE.options, {"mean": "mu", **options}, where="test")
    x = SOURCE.generate(n_events=n, theta={"mu": np.full(n, mu)}, options=opts,
                        rng=np.random.default_rng(seed))
    return EventSet(features=x, feature_names=tuple(SOURCE.feature_names(opts)))


def srgn_options(**given: Any) -> dict[str, Any]:
    return resolve_options(SRGN.options, given, where="srgn")


def problem_for(data: EventSet, reference: EventSet, *, rw: Any = None, seed: int = 3
                ) -> FitProblem:
    rw = rw or analytic_gaussian_reweighter()
    return FitProblem(reweighter=rw, data=data, reference=reference,
                      parameters=rw.parameters.subset(["mu"]), seed=seed)


# ---------------------------------------------------------------------------------------
# Source
# ---------------------------------------------------------------------------------------
def test_source_conforms() -> None:
    check_plugin(SOURCE, kind="source")
    check_plugin(SOURCE, kind="source", options={"variant": "response"})


@pytest.mark.parametrize("mu, width, eps", [(1.0, 1.0, 0.5), (-1.0, 0.75, 0.5)])
def test_smearing_moments(mu: float, width: float, eps: float) -> None:
    """gen ~ N(μ, σ²), sim − gen ~ N(0, ε²) independent of gen (srgn.md Sec. III A)."""
    n = 200_000
    opts = resolve_options(SOURCE.options, {"mean": mu, "width": width, "smearing": eps},
                           where="t")
    x = SOURCE.generate(n_events=n, theta={}, options=opts, rng=np.random.default_rng(0))
    gen, sim = x[:, 0], x[:, 1]
    # 5 standard errors: mean error σ/√n, variance error σ²√(2/n) for a Gaussian.
    assert abs(gen.mean() - mu) < 5 * width / np.sqrt(n)
    assert abs(gen.var() - width ** 2) < 5 * width ** 2 * np.sqrt(2 / n)
    resid = sim - gen
    assert abs(resid.mean()) < 5 * eps / np.sqrt(n)
    assert abs(resid.var() - eps ** 2) < 5 * eps ** 2 * np.sqrt(2 / n)
    # Independence: correlation error ≈ 1/√n.
    assert abs(np.corrcoef(gen, resid)[0, 1]) < 5 / np.sqrt(n)


def test_response_moments() -> None:
    """X_G,1 ~ N(0, ν²), ν = (ω₀ + ω₁μ)²; E[X_S] = μ + 4 E|X_G,1| = μ + 4ν√(2/π);
    the smearing width X_G,1² gives Var(X_S − X_G,0 − 4|X_G,1|) = E[X_G,1⁴] = 3ν⁴."""
    n, mu = 400_000, 1.5
    opts = resolve_options(SOURCE.options, {"variant": "response", "mean": mu}, where="t")
    x = SOURCE.generate(n_events=n, theta={}, options=opts, rng=np.random.default_rng(1))
    nu = (0.7 + 0.2 * mu) ** 2
    g0, g1, s = x[:, 0], x[:, 1], x[:, 2]
    assert abs(g0.mean() - mu) < 5 / np.sqrt(n)
    assert abs(g1.std() - nu) < 5 * nu / np.sqrt(2 * n)
    # Var(X_S) = 1 + Var(4|X_G,1|) + E[X_G,1⁴] = 1 + 16ν²(1 − 2/π) + 3ν⁴ (sets the tolerance).
    var_s = 1 + 16 * nu ** 2 * (1 - 2 / np.pi) + 3 * nu ** 4
    assert abs(s.mean() - (mu + 4 * nu * np.sqrt(2 / np.pi))) < 5 * np.sqrt(var_s / n)
    z = s - g0 - 4 * np.abs(g1)
    # Var of z² ≈ E[X_G,1⁸]·E[Z⁴] − (3ν⁴)² = 105ν⁸·3 − 9ν⁸ for the tolerance of its mean.
    assert abs(np.mean(z ** 2) - 3 * nu ** 4) < 5 * np.sqrt((315 - 9) * nu ** 8 / n)


def test_log_density_is_exact_generator_ratio() -> None:
    """Differences of log-densities reproduce srgn.md Eqs. 10 and 11 exactly."""
    x = detector_events(1000, mu=0.3, seed=2).features
    opts = resolve_options(SOURCE.options, {"mean": "mu", "width": "sigma"}, where="t")
    lp = SOURCE.log_density(features=x, theta={"mu": 1.0, "sigma": 1.25}, options=opts)
    lp0 = SOURCE.log_density(features=x, theta={"mu": 0.0, "sigma": 1.0}, options=opts)
    g = x[:, 0]
    eq11 = np.log(1 / 1.25) + 0.5 * (g ** 2 - ((g - 1.0) / 1.25) ** 2)
    np.testing.assert_allclose(lp - lp0, eq11, rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------------------------------
# Weighted AUC
# ---------------------------------------------------------------------------------------
def brute_force_auc(s_t: np.ndarray, s_r: np.ndarray, w_t: np.ndarray, w_r: np.ndarray
                    ) -> float:
    greater = (s_t[:, None] > s_r[None, :]) + 0.5 * (s_t[:, None] == s_r[None, :])
    return float(np.sum(w_t[:, None] * w_r[None, :] * greater) / (w_t.sum() * w_r.sum()))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_weighted_auc_matches_pair_count(seed: int) -> None:
    rng = np.random.default_rng(seed)
    # Rounded scores make ties common, so the ½-for-ties rule is exercised.
    s_t = np.round(rng.normal(0.3, 1.0, 300), 1)
    s_r = np.round(rng.normal(0.0, 1.0, 250), 1)
    w_t, w_r = rng.exponential(size=300), rng.exponential(size=250)
    assert weighted_auc(target_scores=s_t, reference_scores=s_r, target_weights=w_t,
                        reference_weights=w_r) == pytest.approx(
        brute_force_auc(s_t, s_r, w_t, w_r), rel=1e-12)


def test_weighted_auc_rejects_bad_weights() -> None:
    with pytest.raises(DataError, match="NaN/inf"):
        weighted_auc(target_scores=np.array([np.nan]), reference_scores=np.zeros(1))
    with pytest.raises(DataError, match="total weight must be positive"):
        weighted_auc(target_scores=np.zeros(2), reference_scores=np.zeros(2),
                     reference_weights=np.array([1.0, -2.0]))


# ---------------------------------------------------------------------------------------
# Two-level pairing
# ---------------------------------------------------------------------------------------
def test_pairing_survives_shuffle_split_parquet(tmp_path: Any) -> None:
    """With ε = 0 the sim column equals the gen column row by row: any operation that moved
    one column without the other would break the equality."""
    ev = detector_events(5000, mu=0.5, seed=4, smearing=0.0)
    rng = np.random.default_rng(0)
    first, second = ev.take(rng.permutation(len(ev))).split(0.3, rng=rng)
    second.to_parquet(tmp_path / "two_level.parquet")
    back = EventSet.from_parquet(tmp_path / "two_level.parquet")
    for events in (first, second, back):
        assert events.levels == ("gen", "sim")
        np.testing.assert_array_equal(events.level("gen").features,
                                      events.level("sim").features)
    np.testing.assert_array_equal(back.features, second.features)


# ---------------------------------------------------------------------------------------
# One θ point: held-out only, determinism
# ---------------------------------------------------------------------------------------
def tiny_setup(*, n: int, seed: int, **options: Any) -> tuple[SRGN, Any, Any, FitProblem]:
    strategy = SRGN()
    data = detector_events(n, mu=0.0, seed=seed + 100)
    reference = detector_events(n, mu=0.0, seed=seed + 200)
    problem = problem_for(data, reference)
    opts = srgn_options(**options)
    setup, ref_view = strategy._setup(problem, opts)
    return strategy, setup, ref_view, problem


def test_auc_uses_held_out_events_only() -> None:
    """Training events that g separates perfectly (data shifted by +6) and held-out events
    from one distribution: the reported AUC must be ½ within its null-hypothesis error
    √((n₁+n₂+1)/(12n₁n₂)); had training events entered it, it would be near 1."""
    from dataclasses import replace

    strategy, setup, ref_view, problem = tiny_setup(n=4000, seed=1, epochs=3)
    shifted = replace(setup, data_train=setup.data_train + np.float32(6.0),
                      key=setup.key + "-shifted")
    log_w = strategy._log_weights(problem, ref_view, [0.0])
    rec = evaluate_point(setup=shifted, reference_log_weights=log_w, theta={"mu": 0.0})
    g = srgn_module._classifier(shifted)
    train_auc = weighted_auc(target_scores=g.log_ratio(shifted.data_train),
                             reference_scores=g.log_ratio(shifted.reference_train))
    assert train_auc > 0.99  # g did learn to separate the training events
    n1, n2 = len(setup.data_held), len(setup.reference_held)
    sigma = np.sqrt((n1 + n2 + 1) / (12 * n1 * n2))
    assert abs(rec["auc"] - 0.5) < 4 * sigma


def test_cross_fit_measures_each_g_on_the_other_split() -> None:
    """``cross_fit``: the first fold is exactly the default evaluation (same split, same g),
    the second g is trained on the held-out split and measured on the training split, and
    the objective is their mean. Data events shifted by +6 in the first training split
    must then show up in the second fold's AUC (they are measured there) and not in the
    first's (null-hypothesis σ as above)."""
    from dataclasses import replace

    strategy, setup, ref_view, problem = tiny_setup(n=4000, seed=1, epochs=3, cross_fit=True)
    assert setup.swapped is not None
    np.testing.assert_array_equal(setup.swapped.data_train, setup.data_held)
    np.testing.assert_array_equal(setup.swapped.reference_held, setup.reference_train)
    log_w = strategy._log_weights(problem, ref_view, [0.0])
    rec = evaluate_point(setup=setup, reference_log_weights=log_w, theta={"mu": 0.0})
    single = evaluate_point(setup=replace(setup, swapped=None), reference_log_weights=log_w,
                            theta={"mu": 0.0})
    assert rec["fold_aucs"][0] == single["auc"]
    assert rec["auc"] == np.mean(rec["fold_aucs"])

    shift = np.float32(6.0)
    swapped = replace(setup.swapped, data_held=setup.swapped.data_held + shift,
                      key=setup.swapped.key + "-shifted")
    shifted = replace(setup, data_train=setup.data_train + shift, swapped=swapped,
                      key=setup.key + "-shifted")
    rec = evaluate_point(setup=shifted, reference_log_weights=log_w, theta={"mu": 0.0})
    n1, n2 = len(setup.data_held), len(setup.reference_held)
    sigma = np.sqrt((n1 + n2 + 1) / (12 * n1 * n2))
    assert abs(rec["fold_aucs"][0] - 0.5) < 4 * sigma
    # The second g learnt nothing (its training split is one distribution), but the shifted
    # events are measured there: any non-constant score separates them, in either direction.
    assert abs(rec["fold_aucs"][1] - 0.5) > 10 * sigma


def test_same_seed_same_auc() -> None:
    """Re-initialisation: the same θ twice, and a freshly built g, give identical AUCs."""
    strategy, setup, ref_view, problem = tiny_setup(n=3000, seed=2, epochs=4)
    log_w = strategy._log_weights(problem, ref_view, [0.4])
    first = evaluate_point(setup=setup, reference_log_weights=log_w, theta={"mu": 0.4})
    evaluate_point(setup=setup, reference_log_weights=strategy._log_weights(
        problem, ref_view, [-0.6]), theta={"mu": -0.6})
    again = evaluate_point(setup=setup, reference_log_weights=log_w, theta={"mu": 0.4})
    srgn_module._CLASSIFIERS.clear()
    fresh = evaluate_point(setup=setup, reference_log_weights=log_w, theta={"mu": 0.4})
    assert first["auc"] == again["auc"] == fresh["auc"]


def test_two_fits_with_one_seed_are_identical() -> None:
    """The whole strategy twice with the same problem seed: the same trace, number by number
    (a fresh process builds g again: the cache is cleared in between)."""
    data = detector_events(2000, mu=0.5, seed=31, levels=["sim"])
    reference = detector_events(2000, mu=0.0, seed=32)
    options = srgn_options(optimizer="smoothed", grid_points=3, refine_points=5,
                           refine_rounds=1, epochs=2)
    first = SRGN().fit(problem=problem_for(data, reference, seed=8), options=options)
    srgn_module._CLASSIFIERS.clear()
    second = SRGN().fit(problem=problem_for(data, reference, seed=8), options=options)
    assert [t["auc"] for t in first.trace] == [t["auc"] for t in second.trace]
    assert first.values == second.values


# ---------------------------------------------------------------------------------------
# Bowl fit
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", ["hyperbola", "parabola"])
def test_bowl_finds_vertex(shape: str) -> None:
    """A noisy rounded cone with its vertex between grid points: the fitted vertex is
    within 4 of its own errors (the errors come from the residual scatter)."""
    rng = np.random.default_rng(5)
    x = np.linspace(0.2, 1.8, 11)
    truth = 0.93
    values = 0.5 + np.sqrt(0.02 ** 2 + (0.3 * (x - truth)) ** 2) + rng.normal(0, 0.003, 11)
    vertex, cov, info = fit_bowl(points=x[:, None], values=values, shape=shape)
    assert abs(vertex[0] - truth) < 4 * np.sqrt(cov[0, 0]) + (0.05 if shape == "parabola"
                                                             else 0.0)
    if shape == "hyperbola":
        # The cone's slope (0.3) from 11 points of noise 0.003: its least-squares error is
        # a few 0.001; 5 % of the slope is several of those.
        assert abs(np.sqrt(info["cone"][0][0]) - 0.3) < 0.05 * 0.3


# ---------------------------------------------------------------------------------------
# End to end
# ---------------------------------------------------------------------------------------
def test_tiny_fit_recovers_mu() -> None:
    """μ = 0.7 (between grid points) from 10⁴ data and 10⁴ simulated events, exact
    reweighter. The AUC is measured on the held-out halves, so the statistical error of
    the mean difference at simulation level is σ = σ_S √(1/n_d + 1/n_r,eff) with σ_S² =
    1 + ε² = 1.25, n_d = 5000 and n_r,eff = 5000 e^{−μ²} (Kish size of the exactly
    reweighted half) → 0.026; tolerance 2.5σ. The reported error is the AUC noise over
    the cone slope, which for an optimal classifier is 1.02 σ; a trained g has a smaller
    slope, so it must lie within [0.8, 1.6] σ."""
    n = 10_000
    data = detector_events(n, mu=0.7, seed=11, levels=["sim"])
    reference = detector_events(n, mu=0.0, seed=12)
    result = SRGN().fit(problem=problem_for(data, reference),
                        options=srgn_options(grid_points=5, refine_points=5, epochs=8))
    assert result.valid
    sigma = np.sqrt(1.25) * np.sqrt(1 / 5000 + 1 / (5000 * np.exp(-0.49)))
    assert abs(result.values["mu"] - 0.7) < 2.5 * sigma
    assert 0.8 * sigma < result.errors["mu"] < 1.6 * sigma
    assert result.extra["error_method"].startswith("statistical")
    assert len(result.trace) == result.n_evaluations == 5 + 2 * 5  # coarse + two fine rounds
    assert {"theta", "auc", "objective", "epochs", "stage"} <= set(result.trace[0])
    assert result.landscape is not None and len(result.landscape["axes"][0]) >= 9


# ---------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------
def test_data_without_sim_level_is_refused() -> None:
    data = detector_events(100, mu=0.0, seed=1, levels=["gen"])
    reference = detector_events(100, mu=0.0, seed=2)
    with pytest.raises(DataError, match=r"fit.data has no 'sim' features"):
        SRGN().fit(problem=problem_for(data, reference), options=srgn_options())


def test_reference_without_gen_level_is_refused() -> None:
    data = detector_events(100, mu=0.0, seed=1, levels=["sim"])
    reference = detector_events(100, mu=0.0, seed=2, levels=["sim"])
    with pytest.raises(DataError, match=r"fit.reference has no 'gen' features"):
        SRGN().fit(problem=problem_for(data, reference), options=srgn_options())


def test_reweighter_on_other_generator_features_is_refused() -> None:
    data = detector_events(100, mu=0.0, seed=1, levels=["sim"])
    reference = detector_events(100, mu=0.0, seed=2)
    with pytest.raises(DataError, match=r"reads generator features \['x0'\], the fit asks "
                       r"for \['gen_x1'\]"):
        SRGN().fit(problem=problem_for(data, reference),
                   options=srgn_options(generator_features=["gen_x1"]))


def test_reweighter_in_other_theta_is_refused() -> None:
    data = detector_events(100, mu=0.0, seed=1, levels=["sim"])
    reference = detector_events(100, mu=0.0, seed=2)
    rw = analytic_gaussian_reweighter()
    problem = FitProblem(reweighter=rw, data=data, reference=reference,
                         parameters=ParameterSet([Parameter(name="sigma", nominal=1.0, low=0.25,
                                                            high=4.0)]))
    with pytest.raises(DataError, match=r"not parameterised in \['sigma'\]"):
        SRGN().fit(problem=problem, options=srgn_options())


def test_simulation_level_reweighter_is_refused() -> None:
    data = detector_events(100, mu=0.0, seed=1)
    reference = detector_events(100, mu=0.0, seed=2)
    rw = analytic_gaussian_reweighter()
    rw.signature = type(rw.signature)(**{**rw.signature.__dict__, "feature_names": ("sim_x0",)})
    with pytest.raises(DataError, match="reads simulation-level feature"):
        SRGN().fit(problem=problem_for(data, reference, rw=rw), options=srgn_options())


def test_too_few_fine_points_are_refused() -> None:
    with pytest.raises(DataError, match="raise option refine_points"):
        fit_bowl(points=np.linspace(0, 1, 4)[:, None], values=np.ones(4), shape="hyperbola")


def test_grid_range_outside_the_parameter_range_is_refused() -> None:
    data = detector_events(200, mu=0.0, seed=1, levels=["sim"])
    reference = detector_events(200, mu=0.0, seed=2)
    with pytest.raises(DataError, match=r"grid_range.mu"):
        SRGN().fit(problem=problem_for(data, reference),
                   options=srgn_options(grid_range={"mu": [-3.0, 1.0]}))


# ---------------------------------------------------------------------------------------
# Slow: Powell, warm start, App. B loss objective
# ---------------------------------------------------------------------------------------
def _fit(options: Mapping[str, Any], *, mu: float = 0.7, n: int = 20_000) -> Any:
    levels = ["gen", "sim"] if options.get("level") == "both" else ["sim"]
    data = detector_events(n, mu=mu, seed=21, levels=levels)
    reference = detector_events(n, mu=0.0, seed=22)
    return SRGN().fit(problem=problem_for(data, reference), options=srgn_options(**options))


@pytest.mark.slow
@pytest.mark.parametrize("options", [
    {"optimizer": "powell", "epochs": 10},
    {"initialisation": "warm", "epochs": 10},
    {"objective": "loss", "epochs": 10},
    {"level": "both", "epochs": 10},
])
def test_variants_recover_mu(options: Mapping[str, Any]) -> None:
    """Every optimiser / initialisation / objective recovers μ = 0.7 from 2·10⁴ events each:
    σ_S √(2/n) = 0.011 at simulation level; tolerance 5 × 0.011 (the loss objective and a
    warm start are less efficient than the AUC with re-initialisation)."""
    result = _fit(options)
    assert abs(result.values["mu"] - 0.7) < 5 * 0.011
    if options.get("level") == "both":
        assert abs(result.extra["generator_level"]["values"]["mu"] - 0.7) < 5 * 0.011


# ---------------------------------------------------------------------------------------
# Toy jet detector (PYTHIA)
# ---------------------------------------------------------------------------------------
def _jets(n_jets: int, per_jet: int, pid: int, pt: float, seed: int) -> Any:
    import awkward as ak

    rng = np.random.default_rng(seed)
    n = n_jets * per_jet
    record = ak.zip({"pt": np.full(n, pt, np.float32),
                     "eta": rng.uniform(-0.5, 0.5, n).astype(np.float32),
                     "phi": rng.uniform(-0.5, 0.5, n).astype(np.float32),
                     "pid": np.full(n, pid, np.int32)})
    return ak.unflatten(record, np.full(n_jets, per_jet))


def _detector_options(**given: Any) -> dict[str, Any]:
    from ratiofit.plugins.jets.detector import DETECTOR_OPTIONS

    return resolve_options(DETECTOR_OPTIONS, given, where="detector")


def test_detector_tracking_efficiency_and_resolution() -> None:
    """Charged pions survive with the tracking efficiency (binomial error √(ε(1−ε)/n));
    photons are never lost above threshold and their relative pT spread is the EM
    resolution a/√E ⊕ b (error of a standard deviation: σ/√(2n)); the jet structure
    (one list per jet) is kept."""
    import awkward as ak

    from ratiofit.plugins.jets.detector import simulate_detector

    opts = _detector_options(tracking_efficiency=0.8)
    pions = _jets(2000, 10, 211, 10.0, seed=1)
    sim = simulate_detector(pions, rng=np.random.default_rng(2), options=opts)
    assert len(sim) == 2000
    kept = float(ak.sum(ak.num(sim, axis=1))) / 20_000
    assert abs(kept - 0.8) < 5 * np.sqrt(0.8 * 0.2 / 20_000)
    photons = _jets(2000, 10, 22, 20.0, seed=3)
    sim_ph = simulate_detector(photons, rng=np.random.default_rng(4), options=opts)
    assert int(ak.sum(ak.num(sim_ph, axis=1))) == 20_000
    energy = 20.0 * np.cosh(ak.to_numpy(ak.flatten(photons["eta"])).astype(float))
    expected = np.hypot(opts["em_a"] / np.sqrt(energy), opts["em_b"])
    rel = ak.to_numpy(ak.flatten(sim_ph["pt"])).astype(float) / 20.0 - 1.0
    pull = rel / expected
    assert abs(pull.std() - 1.0) < 5 / np.sqrt(2 * 20_000)


def test_detector_is_seeded_and_checks_fields() -> None:
    import awkward as ak

    from ratiofit.plugins.jets.detector import simulate_detector

    jets = _jets(50, 5, 211, 5.0, seed=5)
    a = simulate_detector(jets, rng=np.random.default_rng(9), options=_detector_options())
    b = simulate_detector(jets, rng=np.random.default_rng(9), options=_detector_options())
    assert ak.array_equal(a, b)
    with pytest.raises(DataError, match=r"lack field\(s\) \['pid'\]"):
        simulate_detector(jets[["pt", "eta", "phi"]], rng=np.random.default_rng(0),
                          options=_detector_options())


def test_pythia_detector_declares_two_levels() -> None:
    from ratiofit.plugins.jets.observables import OBSERVABLES
    from ratiofit.plugins.sources.pythia_detector import PythiaDetector

    src = PythiaDetector()
    names = src.feature_names(resolve_options(src.options, {}, where="t"))
    assert [n for n in names if n.startswith("sim_")] == [f"sim_{o}" for o in OBSERVABLES]
    assert f"gen_{OBSERVABLES[0]}" in names


@pytest.mark.slow
def test_pythia_detector_pairs_levels() -> None:
    """A few hundred PYTHIA jets: the detector only loses particles, so the simulation-level
    multiplicity never exceeds the generator-level one of the same row."""
    from ratiofit.plugins.sources.pythia_detector import PythiaDetector

    src = PythiaDetector()
    opts = resolve_options(src.options, {"block_size": 200, "cache": False}, where="t")
    events = src.generate(n_events=400, theta={}, options=opts, rng=np.random.default_rng(1))
    gen = events.feature_columns(["gen_multiplicity"])[:, 0]
    sim = events.feature_columns(["sim_multiplicity"])[:, 0]
    assert events.levels == ("gen", "sim")
    assert np.all(sim <= gen) and np.any(sim < gen)


@pytest.mark.parametrize("name", ["srgn_gaussian", "srgn_gaussian_2d", "srgn_gaussian_response",
                                  "srgn_gaussian_response_primary", "srgn_pythia"])
def test_specs_validate(name: str) -> None:
    from pathlib import Path

    from ratiofit.spec import load_spec

    spec = load_spec(Path(__file__).resolve().parent.parent / "specs" / f"{name}.yaml")
    assert spec.reweighter is not None


def test_validate_checks_gs_architecture_options(tmp_path) -> None:
    """The strategy's check() runs at validation: a bad option of g's architecture is a
    one-line error naming the field, before any training (it surfaced after the
    reweighter's training before)."""
    from pathlib import Path

    import yaml
    from click.testing import CliRunner

    from ratiofit.cli import main

    doc = yaml.safe_load((Path(__file__).resolve().parent.parent / "specs"
                          / "srgn_gaussian.yaml").read_text())
    doc["fit"]["strategy"]["options"]["architecture_options"] = {"hidden": [32], "nosuch": 1}
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    res = CliRunner().invoke(main, ["validate", str(path)])
    assert res.exit_code == 2
    line = res.output.strip().splitlines()[-1]
    assert "fit.strategy.options.architecture_options: nosuch: unknown option 'nosuch'" in line
    assert "(plugin 'srgn')" in line
