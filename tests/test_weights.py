"""Event weights through the chain, negative ones included (issue 19, item 3;
ratiofit.weights, docs/concepts.md "Event weights and negative weights").

The key checks train small networks (ratiofit.training.train_reweighter, the function a
spec's ``reweighter`` section calls) on N(0, 1) against a target that represents p =
N(0.5, 1) in three ways: drawn from p; drawn from q = N(0, 1.5²) with importance weights
p/q; drawn from p plus 10 % negative-weight events that cancel an excess. The learned
ratio is summarised by the mean of x under a large fixed N(0, 1) sample reweighted by it,
m = Σ ŵ x / Σ ŵ — the target mean the ratio implies (0.5 for the exact one). For this
shift family a classifier's m follows the weighted mean of its training target, so
two trainings on the same reference differ in m by (i) the difference of their targets'
weighted means, variance Σ aᵢ²(xᵢ − x̄)² with aᵢ = wᵢ/Σw per sample (the Kish effective
size's variance, ratiofit.weights.variance_of_mean), over the training split (a fraction
1 − validation_fraction of the events) and (ii) the optimiser's own noise σ_opt, which no
sample size predicts: it is measured in the test by a second training of the unweighted
target with another seed, σ_opt² ≈ (m_A − m_A')²/2. Tolerance: 4 standard deviations of
the difference. An offline check over five data seeds (10..14) with this set-up gave
differences of −1.6 to +1.6 of those standard deviations.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from scipy.stats import norm

from ratiofit.auc import weighted_auc
from ratiofit.calibration import calibrate
from ratiofit.errors import DataError, PluginError
from ratiofit.events import EventSet
from ratiofit.fitting import FitProblem
from ratiofit.options import resolve_options
from ratiofit.parameters import Parameter, ParameterSet
from ratiofit.registry import get_registry
from ratiofit.spec import SampleSpec, TrainingSpec
from ratiofit.testing import analytic_gaussian_reweighter
from ratiofit.training import train_reweighter
from ratiofit.weights import (
    check_weights,
    kish_ess,
    variance_of_mean,
    weighted_standardisation,
)

MU = 0.5  # the target p = N(MU, 1); the reference is N(0, 1)
WIDE = 1.5  # q = N(0, WIDE²), the importance sample's density
N = 16_000  # events per sample (the signed sample: N + 2·N_R = 2·10⁴)
N_R = 2_000  # events from r with each sign: 2·N_R/(N + 2·N_R) = 20 % from r, 10 % negative
R_MEAN, R_SD = 1.5, 0.7  # r = N(1.5, 0.7²), the excess the negative weights cancel
VALIDATION = 0.2
TRAINING = TrainingSpec(epochs=20, batch_size=512, learning_rate=3e-3, schedule="cosine",
                        validation_fraction=VALIDATION, patience=20, checkpoint=False,
                        restore_best=False)  # the full cosine decay: little optimiser noise


def events(x: np.ndarray, weights: np.ndarray | None = None, name: str = "s") -> EventSet:
    return EventSet(features=np.asarray(x, dtype=np.float64)[:, None], feature_names=("x0",),
                    weights=weights, provenance={"origin": f"sample '{name}'"})


# ---------------------------------------------------------------------------------------
# (a), (b): weighted training reproduces the unweighted ratio
# ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained() -> dict[str, Any]:
    """Five trainings on one reference sample: the unweighted target with two seeds (A,
    A'), the importance-weighted one (B), the same events with their weights dropped
    (C), and A's events plus N_R r-events of weight +1 and N_R of weight −1 (S)."""
    reg = get_registry()
    arch, loss = reg.get("architecture", "mlp"), reg.get("loss", "bce")
    options = resolve_options(arch.options, {"hidden": [32, 32]}, where="test")
    rng = np.random.default_rng(20)
    reference = events(rng.normal(0.0, 1.0, N), name="reference")
    x_a = rng.normal(MU, 1.0, N)
    x_q = rng.normal(0.0, WIDE, N)
    w_q = norm.pdf(x_q, MU, 1.0) / norm.pdf(x_q, 0.0, WIDE)
    x_s = np.r_[x_a, rng.normal(R_MEAN, R_SD, 2 * N_R)]
    w_s = np.r_[np.ones(N + N_R), -np.ones(N_R)]
    probe = np.random.default_rng(21).normal(0.0, 1.0, 200_000)  # the fixed N(0, 1) sample

    def implied_mean(target: EventSet, seed: int) -> float:
        rw = train_reweighter(reference=reference, target=target, parameters=ParameterSet([]),
                              architecture=arch, architecture_options=options, loss=loss,
                              training=TRAINING, seed=seed)
        w = np.exp(rw.log_ratio(features=events(probe)))
        return float(w @ probe / w.sum())

    m = {"A": implied_mean(events(x_a, name="A"), 1),
         "A'": implied_mean(events(x_a, name="A"), 2),
         "B": implied_mean(events(x_q, w_q, name="B"), 1),
         "C": implied_mean(events(x_q, name="C"), 1),
         "S": implied_mean(events(x_s, w_s, name="S"), 1)}
    return {"m": m, "x_a": x_a, "x_q": x_q, "w_q": w_q, "x_s": x_s, "w_s": w_s,
            "opt_var": (m["A"] - m["A'"]) ** 2 / 2}


def test_importance_weighted_training_reproduces_the_unweighted_ratio(trained) -> None:
    """Issue 19's "what it must show": weights p/q on events from q teach the ratio that
    events from p do. σ² = Var(x̄_A) + Var(x̄_B) (ESS, training split) + 2σ_opt² (module
    docstring); with the weights dropped the network learns q instead (m ≈ E_q[x] = 0), a
    difference the tolerance must be well below."""
    m, t = trained["m"], trained
    var_a = variance_of_mean(t["x_a"], np.ones(N)) / (1 - VALIDATION)
    var_b = variance_of_mean(t["x_q"], t["w_q"]) / (1 - VALIDATION)
    tolerance = 4 * math.sqrt(var_a + var_b + 2 * t["opt_var"])
    # q's importance weights keep 1/∫p²/q = √(2a)/1.5·exp(−μ²(1/a − 1)) of the events,
    # a = 1 − 1/(2·1.5²): 0.774; the estimate (mean w)²/mean(w²) has a relative error of
    # about 2·sd(w)/(mean(w)·√N) + sd(w²)/(mean(w²)·√N) (delta method, terms added); 5 of them
    w = t["w_q"]
    a = 1 - 1 / (2 * WIDE**2)
    rel = (2 * w.std() / w.mean() + (w**2).std() / (w**2).mean()) / math.sqrt(N)
    assert kish_ess(w) / N == pytest.approx(
        math.sqrt(2 * a) / WIDE * math.exp(-MU**2 * (1 / a - 1)), rel=5 * rel)
    m_a2 = m["A'"]
    print(f"\n(a) m_A = {m['A']:.4f}, m_A' = {m_a2:.4f}, m_B = {m['B']:.4f} "
          f"(ESS {kish_ess(t['w_q']):.0f} of {N}), m_C = {m['C']:.4f}; σ_A = "
          f"{math.sqrt(var_a):.4f}, σ_B = {math.sqrt(var_b):.4f}, σ_opt = "
          f"{math.sqrt(t['opt_var']):.4f}; |m_B − m_A| = {abs(m['B'] - m['A']):.4f} < "
          f"{tolerance:.4f}")
    assert abs(m["B"] - m["A"]) < tolerance
    assert abs(m["C"] - m["A"]) > 2 * tolerance  # weights ignored: clearly another ratio


def test_ten_percent_negative_weights_reproduce_the_unsigned_ratio(trained) -> None:
    """A's events plus N_R events from r with weight +1 and N_R with −1 (10 % negative):
    the signed sum represents p exactly in expectation, and the learned ratio agrees with
    A's. The two targets differ only by the r events, so Var(x̄_S − x̄_A) = Σ_r (x − x̄_A)²/N²
    over the training split; plus 2σ_opt². Read without their sign the r events would
    move the target mean to (N·μ + 2N_R·1.5)/(N + 2N_R) = 0.7: the tolerance must be well
    below that shift."""
    m, t = trained["m"], trained
    w_s = t["w_s"]
    assert np.mean(w_s < 0) == pytest.approx(0.1)
    d = (t["x_s"][N:] - t["x_a"].mean()) * w_s[N:] / N
    var = float(d @ d) / (1 - VALIDATION)
    tolerance = 4 * math.sqrt(var + 2 * t["opt_var"])
    print(f"\n(b) m_A = {m['A']:.4f}, m_S = {m['S']:.4f} (ESS {kish_ess(w_s):.0f} of "
          f"{len(w_s)}); σ_S−A = {math.sqrt(var):.4f}, σ_opt = "
          f"{math.sqrt(t['opt_var']):.4f}; |m_S − m_A| = {abs(m['S'] - m['A']):.4f} < "
          f"{tolerance:.4f}")
    assert abs(m["S"] - m["A"]) < tolerance
    unsigned_mean = (N * MU + 2 * N_R * R_MEAN) / (N + 2 * N_R)
    assert abs(unsigned_mean - MU) > 2 * tolerance


# ---------------------------------------------------------------------------------------
# (c): the statistics of signed weights
# ---------------------------------------------------------------------------------------
def test_weighted_auc_with_signed_weights_matches_brute_force_pairs() -> None:
    """The weighted Mann–Whitney statistic Σ_t Σ_r w_t w_r [1(s_t > s_r) + ½ 1(=)] /
    (Σw_t Σw_r) with 20 % negative weights, ties included, against the O(n²) pair sum;
    an event added once with +w and once with −w changes nothing (bilinearity); a small
    signed sample may leave [0, 1]."""
    rng = np.random.default_rng(7)
    s_t, s_r = np.round(rng.normal(0.4, 1, 300), 1), np.round(rng.normal(0, 1, 250), 1)
    w_t = rng.uniform(0.5, 1.5, 300) * np.where(rng.random(300) < 0.2, -1, 1)
    w_r = rng.uniform(0.5, 1.5, 250) * np.where(rng.random(250) < 0.2, -1, 1)
    pairs = (s_t[:, None] > s_r[None, :]) + 0.5 * (s_t[:, None] == s_r[None, :])
    brute = float(np.sum(w_t[:, None] * w_r[None, :] * pairs) / (w_t.sum() * w_r.sum()))
    auc = weighted_auc(target_scores=s_t, reference_scores=s_r, target_weights=w_t,
                       reference_weights=w_r)
    assert auc == pytest.approx(brute, rel=1e-12)
    twice = weighted_auc(target_scores=np.r_[s_t, s_t[:20], s_t[:20]], reference_scores=s_r,
                         target_weights=np.r_[w_t, w_t[:20], -w_t[:20]],
                         reference_weights=w_r)
    assert twice == pytest.approx(auc, rel=1e-12)
    outside = weighted_auc(target_scores=np.array([0.0, 1.0]),
                           reference_scores=np.array([0.5]),
                           target_weights=np.array([-1.0, 2.0]))
    assert outside == 2.0  # (−1·0 + 2·1)/(1·1): the signed pairs, outside [0, 1]


def test_kish_ess_of_signed_weights() -> None:
    """(Σw)²/Σw²: N for unit weights, N(1 − 2ε)² for a fraction ε of −1 weights; and its
    meaning: the weighted mean of independent unit-variance f has variance 1/ESS (checked
    over K = 4000 draws of f: a variance estimate's relative error is √(2/K) = 2.2 %;
    5 of those)."""
    assert kish_ess(np.ones(100)) == 100.0
    w = np.r_[np.ones(90), -np.ones(10)]
    assert kish_ess(w) == pytest.approx(100 * (1 - 2 * 0.1) ** 2)
    k = 4000
    f = np.random.default_rng(1).normal(size=(k, 100))
    means = f @ w / w.sum()
    assert np.var(means) == pytest.approx(1 / kish_ess(w), rel=5 * math.sqrt(2 / k))


def test_weighted_standardisation_is_numpys_weighted_mean_and_std() -> None:
    """Signed weights: m = np.average(x, weights=w), s² = np.average((x − m)², weights=w);
    unit weights (None): np.mean and np.std bit for bit; a negative variance is refused."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(1000, 3)) * [1.0, 2.0, 0.5]
    w = rng.uniform(0.5, 1.5, 1000) * np.where(rng.random(1000) < 0.1, -1, 1)
    mean, std = weighted_standardisation(x, w, what="sample 'x'")
    np.testing.assert_allclose(mean, np.average(x, axis=0, weights=w), rtol=1e-12)
    np.testing.assert_allclose(std, np.sqrt(np.average((x - mean) ** 2, axis=0, weights=w)),
                               rtol=1e-12)
    plain = weighted_standardisation(x, None, what="sample 'x'")
    assert np.array_equal(plain[0], x.mean(axis=0)) and np.array_equal(plain[1], x.std(axis=0))
    # the outer events carry negative weight: Σw(x − m)² < 0
    with pytest.raises(DataError, match=r"^sample 'y': the weighted variance of input column "
                       r"0 is .* < 0") as info:
        weighted_standardisation(np.array([[-3.0], [0.0], [0.0], [3.0]]),
                                 np.array([-1.0, 2.0, 2.0, -1.0]), what="sample 'y'")
    assert "\n" not in str(info.value)


def test_training_standardises_with_the_weights() -> None:
    """The network's input standardisation is the weighted one: an importance-weighted
    N(0, 1.5²) target standardises like the N(0.5, 1) it stands for."""
    from ratiofit.training import prepare_training_data

    rng = np.random.default_rng(4)
    ref = events(rng.normal(0, 1, 4000), name="reference")
    x_q = rng.normal(0, WIDE, 4000)
    w_q = norm.pdf(x_q, MU, 1) / norm.pdf(x_q, 0, WIDE)
    data = prepare_training_data(reference=ref, target=events(x_q, w_q, name="B"),
                                 parameters=ParameterSet([]), validation_fraction=0.0,
                                 class_balance=True, rng=np.random.default_rng(0))
    w_each = np.r_[np.ones(4000), w_q * 4000 / w_q.sum()]  # each sample to a mean of 1
    x_all = np.r_[ref.features[:, 0], x_q]
    m = np.average(x_all, weights=w_each)
    assert data.signature.feature_mean[0] == pytest.approx(m, rel=1e-9)
    assert data.signature.feature_std[0] == pytest.approx(
        math.sqrt(np.average((x_all - m) ** 2, weights=w_each)), rel=1e-9)


def test_calibration_averages_with_signed_weights() -> None:
    """c(θ) = log(Σ w₀ w(x, θ)/Σ w₀) with negative w₀: events added with +1 and again with
    −1 leave it unchanged; a moment calibration refuses them in one line."""
    rw = analytic_gaussian_reweighter(mu_range=(-0.5, 0.5))
    x = np.random.default_rng(5).normal(0.0, 1.0, 4000)
    extra = np.random.default_rng(6).normal(1.0, 0.5, 400)
    plain = calibrate(rw, reference_features=events(x), points=5, degree=2,
                      rng=np.random.default_rng(0), apply=False)
    signed = calibrate(rw, reference_features=events(
        np.r_[x, extra, extra], np.r_[np.ones(4400), -np.ones(400)]), points=5, degree=2,
        rng=np.random.default_rng(0), apply=False)
    np.testing.assert_allclose(signed["log_norm"], plain["log_norm"], rtol=0, atol=1e-12)
    target = EventSet(features=np.random.default_rng(7).normal(0, 1, (500, 1)),
                      feature_names=("x0",), theta=np.random.default_rng(8).uniform(
                          -0.5, 0.5, (500, 1)), theta_names=("mu",))
    with pytest.raises(DataError, match="400 negative event weights: a moment calibration"
                       ) as info:
        calibrate(rw, reference_features=EventSet(
            features=np.r_[x, extra, extra][:, None], feature_names=("x0",),
            weights=np.r_[np.ones(4400), -np.ones(400)]), points=5, degree=2,
            rng=np.random.default_rng(0), apply=False, moments=1, target=target)
    assert "\n" not in str(info.value)


def test_weighted_data_likelihood_errors_are_the_sandwich() -> None:
    """Data weights of 2 carry the information of unit weights, not twice it: the
    likelihood strategy's sandwich error equals the unit-weight HESSE error within the
    statistical difference of Σu² and H (relative √(2/N) for a Gaussian score: 1 % at
    N = 2·10⁴; 5 of those)."""
    rw = analytic_gaussian_reweighter()
    rng = np.random.default_rng(9)
    data = rng.normal(0.3, 1.0, 20_000)
    ref = events(rng.normal(0.0, 1.0, 100_000), name="reference")
    strategy = get_registry().get("strategy", "likelihood")
    options = resolve_options(strategy.options, {"landscape_points": 0, "minos": False},
                              where="test")
    params = ParameterSet([Parameter(name="mu", nominal=0.0, low=-2.0, high=2.0)])
    fits = {k: strategy.fit(problem=FitProblem(
        reweighter=rw, data=EventSet(features=data[:, None], feature_names=("x0",),
                                     weights=w), reference=EventSet(
            features=ref.features, feature_names=("x0",)), parameters=params),
        options=options) for k, w in (("unit", None), ("double", np.full(len(data), 2.0)))}
    # each fit stops within √(2·EDM) ≤ 0.032 of its own error of the minimum (MIGRAD's
    # EDM goal 0.002·tol·errordef = 5·10⁻⁴), which is the same point for both
    assert fits["double"].values["mu"] == pytest.approx(fits["unit"].values["mu"],
                                                        abs=0.1 * fits["unit"].errors["mu"])
    assert fits["double"].errors["mu"] == pytest.approx(fits["unit"].errors["mu"],
                                                        rel=5 * math.sqrt(2 / 20_000))
    assert fits["double"].extra["hesse_naive_errors"]["mu"] == pytest.approx(
        fits["unit"].errors["mu"] / math.sqrt(2), rel=1e-3)


# ---------------------------------------------------------------------------------------
# (d): bad weights, one line each
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_weights_are_refused_where_events_are_made(bad: float) -> None:
    w = np.ones(5)
    w[3] = bad
    with pytest.raises(DataError, match=r"^sample 'x': weights contain 1 NaN/inf") as info:
        EventSet(features=np.zeros((5, 1)), feature_names=("x",), weights=w,
                 provenance={"origin": "sample 'x'"})
    assert "\n" not in str(info.value)
    with pytest.raises(DataError, match=r"^sample 'x': the event weights contain 1 NaN/inf "
                       r"value\(s\), the first at event 3$"):
        check_weights(w, what="sample 'x'")


def test_a_source_giving_nan_weights_is_named_with_its_sample() -> None:
    """The sample path: a source whose own EventSet refuses NaN weights is reported once,
    naming the source and the sample."""
    from ratiofit.sampling import make_sample

    class Source:
        def generate(self, *, n_events: int, theta: Any, options: Any, rng: Any) -> Any:
            return EventSet(features=np.zeros((n_events, 1)), feature_names=("x",),
                            weights=np.r_[np.nan, np.ones(n_events - 1)])

        def feature_names(self, options: Any) -> list[str]:
            return ["x"]

    class Registry:
        def get(self, kind: str, name: str) -> Any:
            return Source()

    sample = SampleSpec(name="mc", source="custom", n_events=4, theta={}, options={})
    with pytest.raises(PluginError, match=r"^source 'custom' failed for sample 'mc': "
                       r"DataError: events: weights contain 1 NaN/inf") as info:
        make_sample(sample, parameters=ParameterSet([]), seed=1,
                    registry=Registry())  # type: ignore[arg-type]
    assert "\n" not in str(info.value)


def _zero_total() -> EventSet:
    return events(np.arange(4.0), np.array([1.0, -1.0, 0.5, -0.5]), name="mc")


@pytest.mark.parametrize("where", ["training", "fit", "calibration", "auc",
                                   "standardisation"])
def test_a_total_weight_that_is_not_positive_is_one_line(where: str) -> None:
    """Weights given through the Python API (spec samples are checked when made): every
    consumer refuses Σw ≤ 0 in one line naming the sample."""
    bad = _zero_total()
    good = events(np.arange(4.0), name="ok")
    calls = {
        "training": lambda: train_reweighter(
            reference=good, target=bad, parameters=ParameterSet([]), architecture=None,
            architecture_options={}, loss=None, training=TRAINING, seed=0),
        "fit": lambda: FitProblem(reweighter=analytic_gaussian_reweighter(), data=bad,
                                  reference=None, parameters=ParameterSet([])),
        "calibration": lambda: calibrate(analytic_gaussian_reweighter(),
                                         reference_features=bad,
                                         points=3, degree=1, rng=np.random.default_rng(0),
                                         apply=False),
        "auc": lambda: weighted_auc(target_scores=bad.features[:, 0],
                                    reference_scores=good.features[:, 0],
                                    target_weights=bad.weights),
        "standardisation": lambda: weighted_standardisation(bad.features, bad.weights,
                                                            what="sample 'mc'"),
    }
    with pytest.raises(DataError, match=r"sum to 0\b|sample 'mc'.*sum to 0") as info:
        calls[where]()
    message = str(info.value)
    assert "\n" not in message and "positive" in message
    if where != "auc":
        assert "sample 'mc'" in message
