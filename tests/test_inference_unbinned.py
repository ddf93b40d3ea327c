"""The iminuit bridge (ratiofit.inference's unbinned fit: nuisances, grid, caches,
normalisation, costs, unbinned_fit, toys) on a toy with exact ratios.

Background N(θ, 1) with θ a nuisance constrained N(θ₀ = 0, σ = 0.5) and described by
``analytic_gaussian_reweighter()`` (log w = θx − θ²/2, feature ``x0``, θ named ``mu``);
signal N(2, 0.3) with its exact ratio to N(0, 1). The analytic network runs in float32,
so every comparison with float64 numpy carries a tolerance derived from float32
rounding (see :func:`_float32_bound`).
"""

from __future__ import annotations

import numpy as np
import pytest
from iminuit import Minuit
from scipy.stats import norm

from ratiofit.events import EventSet
from ratiofit.inference import (
    ExtendedUnbinnedNLL,
    LogRatioGrid,
    NormFactor,
    Nuisance,
    ReferenceNormalisation,
    ReweightedBinnedNLL,
    coverage,
    fit_unbinned,
    generate_toy,
    signal_log_ratio_from_classifier,
)
from ratiofit.inference.errors import InferenceError
from ratiofit.parameters import Parameter, ParameterSet
from ratiofit.plugin_api import InputSignature
from ratiofit.reweighter import Reweighter
from ratiofit.testing import analytic_gaussian_reweighter

EPS32 = float(np.finfo(np.float32).eps)
NU_S, NU_B = 100.0, 1000.0
SIG_MEAN, SIG_WIDTH = 2.0, 0.3


@pytest.fixture(scope="module")
def rw():
    return analytic_gaussian_reweighter()


def events(x):
    return EventSet(features=np.asarray(x, dtype=float)[:, None], feature_names=("x0",))


def log_rs(ev):
    x = ev.features[:, 0]
    return norm.logpdf(x, SIG_MEAN, SIG_WIDTH) - norm.logpdf(x)


def sample(rng, mu=1.0, theta=0.2, nu_s=NU_S, nu_b=NU_B):
    return events(np.concatenate([rng.normal(SIG_MEAN, SIG_WIDTH, rng.poisson(mu * nu_s)),
                                  rng.normal(theta, 1.0, rng.poisson(nu_b))]))


def exact_nll(x, mu, theta, *, centre=0.0, sigma=0.5, log_z=0.0, wd=None):
    """−log L of Eq. 3.7 in float64 (without log N!), p_b = N(θ, 1)/Z."""
    wd = np.ones_like(x) if wd is None else wd
    dens = mu * NU_S * norm.pdf(x, SIG_MEAN, SIG_WIDTH) + \
        NU_B * norm.pdf(x, theta, 1.0) * np.exp(-log_z)
    return mu * NU_S + NU_B - np.sum(wd * np.log(dens)) + 0.5 * ((theta - centre) / sigma) ** 2


def _float32_bound(x, theta):
    """Largest error of Σ over events of the float32 log w = θx − θ²/2 vs float64.

    Rounding x and θ to float32, the product, the square and the difference each
    contribute at most eps32·(their magnitude); 3·eps32·(|θx| + θ²) bounds one event,
    and each event's log-density term moves by at most that (∂log D/∂log w ≤ 1).
    """
    return float(np.sum(3 * EPS32 * (np.abs(theta * x) + theta ** 2)))


# -- (a) the NLL is the exact likelihood --------------------------------------------------
def test_nll_equals_exact_likelihood_without_reference(rw):
    rng = np.random.default_rng(11)
    data = sample(rng)
    x = data.features[:, 0]
    cost = ExtendedUnbinnedNLL(data, reweighter=rw, nuisances=[Nuisance("mu", sigma=0.5)],
                       signal_yield=NU_S, background_yield=NU_B, signal_log_ratio=log_rs,
                       cache="none")
    const = np.sum(norm.logpdf(x))  # Σ log p_b0(xᵢ), dropped by the cost
    for mu, theta in [(1.0, 0.0), (0.7, 0.4), (1.6, -0.9), (0.0, 1.5)]:
        got = cost(mu, theta) - const
        want = exact_nll(x, mu, theta)
        assert abs(got - want) <= _float32_bound(x, theta) + 1e-12 * abs(want)


def test_an_ensemble_average_is_a_reweighter_like_any_other(rw):
    """The costs take anything with the log-ratio protocol (ratiofit.log_ratio): the
    average of two copies of the exact ratio gives the single one's likelihood, to the
    rounding of (a + a)/2 in float64 (exact); an object without it is refused."""
    from ratiofit.reweighter import AveragedReweighter

    data = sample(np.random.default_rng(11))
    common = {"nuisances": [Nuisance("mu", sigma=0.5)], "signal_yield": NU_S,
              "background_yield": NU_B, "signal_log_ratio": log_rs, "cache": "none"}
    single = ExtendedUnbinnedNLL(data, reweighter=rw, **common)
    averaged = ExtendedUnbinnedNLL(data, reweighter=AveragedReweighter(members=[rw, rw]),
                                   **common)
    for mu, theta in [(1.0, 0.0), (0.7, 0.4)]:
        assert averaged(mu, theta) == pytest.approx(single(mu, theta), rel=1e-12)
    with pytest.raises(InferenceError, match="LogRatioModel protocol") as exc:
        ExtendedUnbinnedNLL(data, reweighter=object(), **common)
    _one_line(exc)


def test_nll_with_reference_normalisation_and_norm_factor(rw):
    rng = np.random.default_rng(12)
    data = sample(rng)
    x = data.features[:, 0]
    xr = rng.normal(size=5000)
    ref = events(xr)
    nf = NormFactor("k", sigma=0.1)
    cost = ExtendedUnbinnedNLL(data, reweighter=rw, nuisances=[Nuisance("mu", sigma=0.5)],
                       signal_yield=NU_S, background_yield=NU_B, signal_log_ratio=log_rs,
                       reference=ref, norm=nf, cache="lru")
    const = np.sum(norm.logpdf(x))
    for mu, theta, k in [(1.0, 0.3, 1.0), (0.5, -0.7, 1.2)]:
        log_z = np.log(np.mean(np.exp(theta * xr - theta ** 2 / 2)))
        dens = mu * NU_S * norm.pdf(x, SIG_MEAN, SIG_WIDTH) + \
            k * NU_B * norm.pdf(x, theta, 1.0) * np.exp(-log_z)
        want = mu * NU_S + k * NU_B - np.sum(np.log(dens)) + 0.5 * (theta / 0.5) ** 2 + \
            0.5 * ((k - 1) / 0.1) ** 2
        # log Z is a w-weighted mean over the reference of the same float32 rounding, and
        # every data event's term moves by at most that.
        ref_bound = 3 * EPS32 * np.max(np.abs(theta * xr) + theta ** 2)
        tol = _float32_bound(x, theta) + len(x) * ref_bound
        assert abs(cost(mu, theta, k) - const - want) <= tol + 1e-12 * abs(want)
    # shape_only=False: the yield follows Z(θ) and the per-event term is not divided by it
    cost2 = ExtendedUnbinnedNLL(data, reweighter=rw, nuisances=["mu"], signal_yield=NU_S,
                        background_yield=NU_B, signal_log_ratio=log_rs(data), reference=ref,
                        shape_only=False)
    theta = 0.5
    z = np.mean(np.exp(theta * xr - theta ** 2 / 2))
    dens = NU_S * norm.pdf(x, SIG_MEAN, SIG_WIDTH) + NU_B * norm.pdf(x, theta, 1.0)
    want = NU_S + NU_B * z - np.sum(np.log(dens))
    tol = _float32_bound(x, theta) + NU_B * z * 3 * EPS32 * np.max(np.abs(theta * xr) + theta ** 2)
    assert abs(cost2(1.0, theta) - const - want) <= tol + 1e-12 * abs(want)
    assert cost.errordef == Minuit.LIKELIHOOD
    assert list(cost._parameters) == ["signal_strength", "mu", "k"]


def test_negative_signal_strength_and_both_evaluation_paths(rw):
    rng = np.random.default_rng(24)
    data = sample(rng)
    common = {"reweighter": rw, "nuisances": [Nuisance("mu", sigma=0.5)], "signal_yield": NU_S,
              "background_yield": NU_B, "signal_log_ratio": log_rs,
              "reference": events(rng.normal(size=2000)), "norm": NormFactor("k", sigma=0.3)}
    fast, stable = ExtendedUnbinnedNLL(data, **common), ExtendedUnbinnedNLL(data, **common)
    stable._signal = None  # force the overflow-safe log-space path everywhere
    for args in [(1.0, 0.2, 1.0), (-0.05, -0.4, 0.8), (3.0, 1.1, 1.3)]:
        np.testing.assert_allclose(fast(*args), stable(*args), rtol=1e-12)
        np.testing.assert_allclose(fast.grad(*args), stable.grad(*args), rtol=1e-9, atol=1e-9)
    # Deep negative μ makes signal-like events' densities negative: the cost stays finite
    # (linear continuation of log D) and far above the minimum, so MIGRAD recovers.
    assert np.isfinite(fast(-5.0, 0.0, 1.0)) and fast(-5.0, 0.0, 1.0) > fast(1.0, 0.2, 1.0) + 1e3
    a = fit_unbinned(fast, scan=False, with_fixed_theta=False, minos=False)
    b = fit_unbinned(stable, start={"signal_strength": -3.0}, scan=False, with_fixed_theta=False,
                     minos=False)
    assert a.valid and b.valid
    assert abs(a.values["signal_strength"] - b.values["signal_strength"]) < \
        0.01 * a.errors["signal_strength"]


# -- (b) an Asimov-like sample gives back the truth, with the expected errors --------------
def _asimov_cost(rw, *, mu_true, theta_true):
    """(x, dx, λ(x), cost) for an Asimov sample at (μ, θ) = (mu_true, theta_true).

    A fine quadrature grid carrying the expected counts as weights *is* the Asimov
    sample; the reference gets the N(0, 1) density on the same grid, so Z(θ) is exact up
    to the (spectrally small) rectangle-rule error. The auxiliary measurement equals the
    truth.
    """
    x, dx = np.linspace(-8, 10, 36_001, retstep=True)
    lam = mu_true * NU_S * norm.pdf(x, SIG_MEAN, SIG_WIDTH) + NU_B * norm.pdf(x, theta_true)
    data = EventSet(features=x[:, None], feature_names=("x0",), weights=lam * dx)
    ref = EventSet(features=x[:, None], feature_names=("x0",), weights=norm.pdf(x) * dx)
    cost = ExtendedUnbinnedNLL(data, reweighter=rw, nuisances=[Nuisance("mu", nominal=theta_true,
                                                                sigma=0.5)],
                       signal_yield=NU_S, background_yield=NU_B, signal_log_ratio=log_rs,
                       reference=ref)
    return x, dx, lam, cost


def test_asimov_fit_recovers_truth_and_fisher_errors(rw):
    mu_true, theta_true = 1.3, 0.3
    x, dx, lam, cost = _asimov_cost(rw, mu_true=mu_true, theta_true=theta_true)
    res = fit_unbinned(cost, start={"signal_strength": 1.0, "mu": 0.0}, tol=0.01, scan=False,
                       with_fixed_theta=False)
    assert res.valid
    # Expected errors from the Fisher information of the extended likelihood,
    # I_ab = ∫ ∂_a λ ∂_b λ / λ dx (+ 1/σ² for the constraint), by the same quadrature.
    d_mu = NU_S * norm.pdf(x, SIG_MEAN, SIG_WIDTH)
    d_th = NU_B * norm.pdf(x, theta_true) * (x - theta_true)
    info = np.array([[np.sum(d_mu * d_mu / lam), np.sum(d_mu * d_th / lam)],
                     [np.sum(d_mu * d_th / lam), np.sum(d_th * d_th / lam) + 1 / 0.5 ** 2]]) * dx
    expected = np.sqrt(np.diag(np.linalg.inv(info)))
    # "within a few % of its Hesse error": the Asimov MLE is the truth, so any offset is
    # MIGRAD's convergence (tol=0.01: EDM < 1e-5, i.e. ≲ 0.5% of σ) plus float32 noise.
    assert abs(res.values["signal_strength"] - mu_true) < 0.03 * res.errors["signal_strength"]
    assert abs(res.values["mu"] - theta_true) < 0.03 * res.errors["mu"]
    # HESSE of the Asimov NLL is the Fisher matrix; 1% covers the finite-difference Hessian.
    np.testing.assert_allclose([res.errors["signal_strength"], res.errors["mu"]], expected,
                               rtol=0.01)
    lo, hi = res.interval()
    assert lo < mu_true < hi
    from ratiofit.results import ParameterFit  # the family of fit results

    assert isinstance(res, ParameterFit) and res.value("mu") == res.values["mu"]



def test_hesse_with_fixed_parameters_is_the_conditional_fisher_error(rw):
    """With a parameter fixed, HESSE errors of the others are 1/sqrt of their Fisher
    information. Regression test for Minuit2's external-Hessian indexing with fixed
    parameters (root-project/root#20954): fixing the poi (first parameter) made the θ
    error 4.5× too large when the cost's analytic Hessian was used."""
    from ratiofit.inference.unbinned_fit import _minuit

    mu_true, theta_true = 1.3, 0.3
    x, dx, lam, cost = _asimov_cost(rw, mu_true=mu_true, theta_true=theta_true)
    d_mu = NU_S * norm.pdf(x, SIG_MEAN, SIG_WIDTH)
    d_th = NU_B * norm.pdf(x, theta_true) * (x - theta_true)
    # θ fixed at the truth (fit_unbinned's with_fixed_theta): error of μ.
    res = fit_unbinned(cost, start={"signal_strength": 1.0, "mu": 0.0}, tol=0.01, scan=False,
                       minos=False, with_fixed_theta=True)
    # 1% covers the numerical Hessian.
    np.testing.assert_allclose(res.fixed_theta["errors"]["signal_strength"],
                               1.0 / np.sqrt(np.sum(d_mu * d_mu / lam) * dx), rtol=0.01)
    # μ fixed (as in profile scans): error of θ, constraint included.
    m = _minuit(cost, {"signal_strength": mu_true, "mu": theta_true}, 0.01, 1,
                analytic_hessian=False)
    m.fixed["signal_strength"] = True
    m.migrad()
    m.hesse()
    np.testing.assert_allclose(m.errors["mu"], 1.0 / np.sqrt(
        np.sum(d_th * d_th / lam) * dx + 1 / 0.5**2), rtol=0.01)


# -- (c) the gradient ---------------------------------------------------------------------------
def _fd(f, args, i, h):
    up, dn = list(args), list(args)
    up[i] += h
    dn[i] -= h
    return (f(*up) - f(*dn)) / (2 * h)


@pytest.mark.parametrize("cache", ["none", "grid"])
def test_gradient_matches_finite_differences(rw, cache):
    rng = np.random.default_rng(13)
    data = sample(rng)
    x = data.features[:, 0]
    ref = events(rng.normal(size=4000))
    cost = ExtendedUnbinnedNLL(data, reweighter=rw, nuisances=[Nuisance("mu", sigma=0.5)],
                       signal_yield=NU_S, background_yield=NU_B, signal_log_ratio=log_rs,
                       reference=ref, norm=NormFactor("k", sigma=0.2), cache=cache,
                       grid_points=41)
    args = (0.8, 0.45, 1.1)  # away from the minimum: every component is O(10-100)
    g = cost.grad(*args)
    for i in range(3):
        # θ (i = 1) takes a larger step: its finite difference carries float32 noise.
        h = 1e-2 if i == 1 else 1e-3
        fd_h, fd_2h = _fd(cost, args, i, h), _fd(cost, args, i, 2 * h)
        # Truncation: FD_2h − FD_h ≈ 3·(FD_h − f'), so 2|FD_2h − FD_h| bounds FD_h's error.
        # Noise: moving θ re-rounds the float32 log w of every data event (bound B, plus the
        # reference mean of the same rounding for Z(θ)), giving B/h in a central
        # difference; μ and k do not touch the network, so their differences are exact.
        noise = 0.0
        if cache == "none" and i == 1:
            theta = args[1]
            noise = (_float32_bound(x, theta + h) + len(x) * 3 * EPS32 * 5 * (abs(theta) + h)) / h
        tol = 2 * abs(fd_2h - fd_h) + noise + 1e-7 * abs(g[i])
        assert abs(g[i] - fd_h) <= tol, (i, g[i], fd_h, tol)


# -- (d) coverage -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pools():
    rng = np.random.default_rng(14)
    sig = events(rng.normal(SIG_MEAN, SIG_WIDTH, 20_000))
    bkg = events(rng.normal(0.0, 1.0, 200_000))   # nominal: toys at θ by accept/reject
    ref = events(rng.normal(0.0, 1.0, 50_000))
    return sig, bkg, ref


def _coverage(rw, pools, n_toys, cache, method, seed):
    sig, bkg, ref = pools
    return coverage(n_toys=n_toys, reweighter=rw, nuisances=[Nuisance("mu", nominal=0.0,
                                                                      sigma=0.5)],
                    signal_pool=sig, background_pool=bkg, signal_yield=NU_S,
                    background_yield=NU_B, signal_log_ratio=(log_rs(sig), log_rs(bkg)),
                    mu_true=1.0, theta_true={"mu": 0.3}, reference=ref, cache=cache,
                    method=method, seed=seed)


def test_coverage_200_toys_grid(rw, pools):
    """68% MINOS intervals cover μ in 68 ± 3·sqrt(0.68·0.32/200) % of 200 toys (~10 s with
    the θ grid; the same check through the network is the slow test below)."""
    res = _coverage(rw, pools, 200, "grid", "minos", seed=21)
    assert res.n_failed == 0
    assert abs(res.fraction - 0.68) <= 3 * np.sqrt(0.68 * 0.32 / 200)
    # The spread of μ̂ agrees with the typical interval half-width (10% ≈ 2σ of a
    # 200-toy standard deviation).
    half = np.mean([(b - a) / 2 for a, b in res.intervals])
    assert abs(np.std(res.estimates) / half - 1) < 0.15


@pytest.mark.slow
@pytest.mark.parametrize("method", ["minos", "profile"])
def test_coverage_200_toys_network(rw, pools, method):
    res = _coverage(rw, pools, 200, "lru", method, seed=22)
    assert res.n_failed == 0
    assert abs(res.fraction - 0.68) <= 3 * np.sqrt(0.68 * 0.32 / 200)


def test_toys_follow_theta_by_accept_reject(rw, pools):
    _, bkg, _ = pools
    rng = np.random.default_rng(15)
    lw = rw.log_ratio(features=bkg, theta={"mu": 0.5})
    toy = generate_toy(signal_pool=pools[0], background_pool=bkg, signal_yield=10.0,
                       background_yield=5000.0, mu=1.0, rng=rng, background_log_weight=lw)
    xb = toy.data.features[toy.n_signal:, 0]
    assert len(np.unique(toy.background_index)) == toy.n_background  # without replacement
    # N(0.5, 1) sample mean and variance within 4 standard errors
    assert abs(xb.mean() - 0.5) < 4 / np.sqrt(len(xb))
    assert abs(xb.var() - 1.0) < 4 * np.sqrt(2 / len(xb))
    with pytest.raises(InferenceError, match="larger pool"):
        generate_toy(signal_pool=pools[0], background_pool=bkg.take(np.arange(100)),
                     signal_yield=1.0, background_yield=5000.0, mu=1.0, rng=rng,
                     background_log_weight=lw[:100])


# -- (e) caches ---------------------------------------------------------------------------------
def test_grid_is_exact_for_quadratic_theta_dependence(rw):
    rng = np.random.default_rng(16)
    ev = events(rng.normal(size=3000))
    x = ev.features[:, 0]
    grid = LogRatioGrid.build(rw, ev, name="mu", points=21)
    for theta in rng.uniform(-2, 2, 25):
        lw, dlw = grid.evaluate(theta)
        # Catmull-Rom reproduces quadratics; what remains is the float32 rounding of the
        # table (|weights| sum ≤ 1.25 inside, ≤ 7·1.25 with the extrapolated ghost nodes).
        tol = 10 * 3 * EPS32 * (np.abs(x) * 2 + 4)
        assert np.all(np.abs(lw - (theta * x - theta ** 2 / 2)) <= tol)
        assert np.all(np.abs(dlw - (x - theta)) <= tol / 0.2)  # divided by the spacing h


class _Identity:
    name = "identity"
    output_activation = "linear"

    def log_ratio(self, output):
        return output


def width_reweighter():
    """Exact log N(x; 0, e^s)/N(x; 0, 1) = −s − x²(e^{−2s} − 1)/2: not polynomial in s."""
    import keras

    class WidthRatio(keras.Model):
        def call(self, inputs):
            x, s = inputs["features"], inputs["theta"]
            return -s - 0.5 * x * x * (keras.ops.exp(-2.0 * s) - 1.0)

    params = ParameterSet([Parameter(name="s", nominal=0.0, low=-0.5, high=0.5)])
    sig = InputSignature(feature_names=("x0",), feature_mean=(0.0,), feature_std=(1.0,),
                         theta_names=("s",), theta_centre=(0.0,), theta_half_width=(0.5,))
    return Reweighter(model=WidthRatio(), loss=_Identity(), parameters=params, signature=sig)


def test_grid_interpolation_error_bound():
    wrw = width_reweighter()
    rng = np.random.default_rng(17)
    ev = events(rng.normal(size=2000))
    x = ev.features[:, 0]
    grid = LogRatioGrid.build(wrw, ev, name="s", points=21)
    h = grid.nodes[1] - grid.nodes[0]
    # |∂³_s log w| = 4x²e^{−2s}, |∂⁴_s| = 8x²e^{−2s}, at most e¹ on [−0.5, 0.5]; the
    # documented bound is h³·max|f'''|/8 + h⁴·max|f⁗|/384, plus float32 rounding.
    bound = h ** 3 * 4 * x ** 2 * np.e / 8 + h ** 4 * 8 * x ** 2 * np.e / 384 + \
        20 * EPS32 * (1 + x ** 2 * np.e)
    worst = 0.0
    for s in rng.uniform(-0.5, 0.5, 40):
        exact = -s - 0.5 * x ** 2 * (np.exp(-2 * s) - 1)
        err = np.abs(grid.evaluate(s)[0] - exact)
        assert np.all(err <= bound)
        worst = max(worst, float(np.max(err)))
    assert worst > 0  # the check is not vacuous: this dependence is not reproduced exactly


def test_grid_take_and_concatenate(rw):
    ev = events(np.linspace(-3, 3, 50))
    grid = LogRatioGrid.build(rw, ev, name="mu", points=9)
    idx = np.array([3, 7, 7, 40])
    joined = LogRatioGrid.concatenate([grid.take(idx[:2]), grid.take(idx[2:])])
    np.testing.assert_array_equal(joined.evaluate(0.37)[0], grid.evaluate(0.37)[0][idx])


def test_lru_cache_skips_the_network_for_repeated_theta(rw):
    rng = np.random.default_rng(18)
    data = sample(rng)
    ref = events(rng.normal(size=2000))
    cost = ExtendedUnbinnedNLL(data, reweighter=rw, nuisances=[Nuisance("mu", sigma=0.5)],
                       signal_yield=NU_S, background_yield=NU_B, signal_log_ratio=log_rs,
                       reference=ref, cache="lru")
    v1 = cost(1.0, 0.2)
    cost(1.5, 0.2)  # μ does not enter the network
    cost.grad(1.2, 0.2)  # upgrades the entry with the θ-gradient (one more pass)
    assert cost(1.0, 0.2) == v1
    info = cost.cache_info()
    assert info["data_network_calls"] == 2 and info["reference_network_calls"] == 2
    fresh = ExtendedUnbinnedNLL(data, reweighter=rw, nuisances=[Nuisance("mu", sigma=0.5)],
                        signal_yield=NU_S, background_yield=NU_B, signal_log_ratio=log_rs,
                        reference=ref, cache="none")
    assert fresh(1.0, 0.2) == v1
    fresh(1.0, 0.2)
    assert fresh.cache_info()["data_network_calls"] == 2


def test_fit_result_scans_and_grid_vs_network(rw):
    rng = np.random.default_rng(19)
    data = sample(rng, theta=0.2)
    ref_events = events(rng.normal(size=20_000))
    ref = ReferenceNormalisation(rw, ref_events, nuisances=[Nuisance("mu", sigma=0.5)])
    common = {"reweighter": rw, "nuisances": [Nuisance("mu", sigma=0.5)], "signal_yield": NU_S,
              "background_yield": NU_B, "signal_log_ratio": log_rs}
    res = fit_unbinned(ExtendedUnbinnedNLL(data, reference=ref, **common))
    assert res.valid and res.scan is not None
    lo, hi = res.interval()
    # The scan's 2ΔNLL = 1 crossings reproduce MINOS to the interpolation error of 21
    # points (a few % of the half-width).
    assert res.scan.interval_profiled is not None
    np.testing.assert_allclose(res.scan.interval_profiled, (lo, hi), atol=0.05 * (hi - lo))
    # Fixing θ can only narrow the interval (guide-searches.md Fig. 5).
    flo, fhi = res.fixed_theta["minos"]
    assert fhi - flo <= hi - lo
    assert res.fixed_theta["values"]["mu"] == 0.0
    corr = np.asarray(res.correlation)
    np.testing.assert_allclose(np.diag(corr), 1.0)
    assert res.to_dict()["scan"]["parameter"] == "signal_strength"
    # The θ grid (float64 interpolant of the float32 network) gives the same fit.
    # θ enters log w quadratically, so the interpolant is exact up to float32 rounding.
    grid_res = fit_unbinned(ExtendedUnbinnedNLL(data, reference=ref_events, cache="grid", **common),
                            scan=False)
    for name in ("mu", "signal_strength"):
        assert abs(grid_res.values[name] - res.values[name]) < 0.01 * res.errors[name]


# -- binned --------------------------------------------------------------------------------------
def test_binned_cost_value_gradient_and_grid(rw):
    rng = np.random.default_rng(20)
    mc = events(rng.normal(size=50_000))
    edges = np.linspace(-3, 4, 15)
    s_tpl = NU_S * np.diff(norm.cdf(edges, SIG_MEAN, SIG_WIDTH))
    theta_true = 0.3
    counts = rng.poisson(s_tpl + NU_B * np.diff(norm.cdf(edges, theta_true)))
    common = {"edges": edges, "background": mc, "observable": "x0", "signal_template": s_tpl,
              "reweighter": rw, "nuisances": [Nuisance("mu", sigma=0.5)],
              "background_yield": NU_B}
    direct = ReweightedBinnedNLL(counts, **common)
    grid = ReweightedBinnedNLL(counts, cache="grid", grid_points=41, **common)
    x = mc.features[:, 0]
    inside = (x >= edges[0]) & (x < edges[-1])
    for theta in (0.0, 0.37):
        w = np.exp(theta * x - theta ** 2 / 2)
        h = NU_B * np.histogram(x[inside], edges, weights=w[inside])[0] / w.sum()
        nu = 1.2 * s_tpl + h
        want = np.sum(nu - counts) + np.sum(np.where(counts > 0, counts * np.log(
            np.maximum(counts, 1) / nu), 0)) + 0.5 * (theta / 0.5) ** 2
        # template sums of float32-rounded weights: relative error ≤ 3·eps32·max|θx|+θ²
        tol = 1e-9 * abs(want) + np.sum(counts) * 6 * EPS32 * np.max(np.abs(theta * x) + 1)
        assert abs(direct(1.2, theta) - want) <= tol
        # grid: per-bin Catmull-Rom; bin sums of exp(θx) are smooth in θ, h = 0.1
        assert abs(grid(1.2, theta) - want) <= 1e-3 * abs(want)
    args = (0.9, 0.25)
    for cost in (direct, grid):
        g = cost.grad(*args)
        for i in range(2):
            fd_h, fd_2h = _fd(cost, args, i, 1e-3), _fd(cost, args, i, 2e-3)
            assert abs(g[i] - fd_h) <= 2 * abs(fd_2h - fd_h) + 1e-3 * max(1.0, abs(g[i]))
    res = fit_unbinned(direct, scan=False)
    assert res.valid
    assert abs(res.values["mu"] - theta_true) < 3 * res.errors["mu"]
    assert abs(res.values["signal_strength"] - 1.0) < 3 * res.errors["signal_strength"]


# -- classifier ratios --------------------------------------------------------------------------
def test_signal_ratio_from_bayes_optimal_classifiers():
    x = np.linspace(-2, 3, 11)
    ps, pb = norm.pdf(x, SIG_MEAN, SIG_WIDTH), norm.pdf(x)
    n_s, n_b = 3.0, 7.0  # training priors
    f = n_s * ps / (n_s * ps + n_b * pb)  # App. A: BCE learns P(class 1 | x)
    np.testing.assert_allclose(signal_log_ratio_from_classifier(f, n_signal_train=n_s,
                                                                n_background_train=n_b),
                               np.log(ps / pb), rtol=1e-9, atol=1e-9)
    logit = np.log(f) - np.log1p(-f)
    np.testing.assert_allclose(signal_log_ratio_from_classifier(
        logit, logits=True, n_signal_train=n_s, n_background_train=n_b), np.log(ps / pb),
        rtol=1e-9, atol=1e-9)
    # S+B vs B (Eq. 3.9–3.10, 3.13): r_s = (λ − (1 − α))/α cancels where α·r_s ≪ 1, so
    # check it where the signal lives (α·r_s ≳ 10⁻³: relative rounding ≲ 10⁻¹³).
    alpha = 0.1
    x = np.linspace(1.0, 3.0, 11)
    ps, pb = norm.pdf(x, SIG_MEAN, SIG_WIDTH), norm.pdf(x)
    psb = alpha * ps + (1 - alpha) * pb
    f2 = n_s * psb / (n_s * psb + n_b * pb)
    np.testing.assert_allclose(signal_log_ratio_from_classifier(
        f2, kind="s_plus_b_vs_b", signal_fraction=alpha, n_signal_train=n_s,
        n_background_train=n_b), np.log(ps / pb), rtol=1e-6, atol=1e-6)


# -- (f) bad input --------------------------------------------------------------------------------
def _one_line(exc_info):
    assert "\n" not in str(exc_info.value)


def test_bad_input_is_rejected_in_one_line(rw):
    rng = np.random.default_rng(23)
    data = sample(rng)
    common = {"reweighter": rw, "signal_yield": NU_S, "background_yield": NU_B,
              "signal_log_ratio": log_rs}
    for sigma in (0.0, -1.0, float("nan")):
        with pytest.raises(InferenceError, match="sigma must be a positive") as exc:
            Nuisance("mu", sigma=sigma)
        _one_line(exc)
    with pytest.raises(InferenceError, match="not a parameter of the reweighter") as exc:
        ExtendedUnbinnedNLL(data, nuisances=[Nuisance("alpha_s", sigma=0.1)], **common)
    _one_line(exc)
    x = data.features.copy()
    x[5, 0] = np.nan
    with pytest.raises(InferenceError, match="NaN") as exc:
        ExtendedUnbinnedNLL(x, nuisances=["mu"], **common)
    _one_line(exc)
    bad_rs = log_rs(data)
    bad_rs[3] = np.nan
    with pytest.raises(InferenceError, match="NaN") as exc:
        ExtendedUnbinnedNLL(data, nuisances=["mu"], **{**common, "signal_log_ratio": bad_rs})
    _one_line(exc)
    with pytest.raises(InferenceError, match="positive") as exc:
        NormFactor(sigma=0.0)
    _one_line(exc)
    with pytest.raises(InferenceError, match="distinct") as exc:
        ExtendedUnbinnedNLL(data, nuisances=["mu"], poi="mu", **common)
    _one_line(exc)
    with pytest.raises(InferenceError, match="leave the reweighter's range") as exc:
        ExtendedUnbinnedNLL(data, nuisances=[Nuisance("mu", limits=(-3.0, 1.0))], **common)
    _one_line(exc)
    with pytest.raises(InferenceError, match="strictly inside") as exc:
        signal_log_ratio_from_classifier([0.2, 1.0])
    _one_line(exc)
    with pytest.raises(InferenceError, match="no expected events") as exc:
        ReweightedBinnedNLL([1, 2, 0], edges=[-1, 0, 8, 9], background=events(rng.normal(size=100)),
                  observable="x0", signal_template=[0, 0, 0], reweighter=rw, nuisances=["mu"])
    _one_line(exc)
