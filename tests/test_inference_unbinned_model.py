"""The unbinned model of ``backend: unbinned`` (ratiofit.inference.unbinned_model) and its
fits, CLs, limits and impacts (ratiofit.inference.unbinned_analysis)."""

from __future__ import annotations

import numpy as np
import pytest

from ratiofit.events import EventSet
from ratiofit.inference import StandardModifier
from ratiofit.inference.unbinned_analysis import (
    fit_model,
    hypotest_model,
    impacts_model,
    upper_limit_model,
)
from ratiofit.inference.unbinned_model import (
    UnbinnedChannel,
    UnbinnedComponent,
    UnbinnedModel,
    UnbinnedNuisance,
)
from ratiofit.testing import analytic_gaussian_width_reweighter


def _events(x: np.ndarray, w: np.ndarray | None = None) -> EventSet:
    return EventSet(features=np.asarray(x, dtype=np.float64)[:, None], feature_names=("x0",),
                    weights=w)


def _signal_log_ratio(e: EventSet) -> np.ndarray:
    x = e.features[:, 0]  # N(2, 0.3) over N(0, 1), exactly
    return -np.log(0.3) - 0.5 * ((x - 2.0) / 0.3) ** 2 + 0.5 * x * x


@pytest.fixture(scope="module")
def reweighter():
    return analytic_gaussian_width_reweighter()


def _model(reweighter, *, data: EventSet, log_ratio=_signal_log_ratio, nuisances=True,
           normsys: tuple[float, float] | None = (0.95, 1.05), lumi: float | None = 0.02,
           seed: int = 1) -> UnbinnedModel:
    rng = np.random.default_rng(seed)
    bkg_mods = []
    if normsys is not None:
        bkg_mods.append(StandardModifier("normsys", "xsec", {"lo": normsys[0], "hi": normsys[1]}))
    if lumi is not None:
        bkg_mods.append(StandardModifier("lumi", "lumi", {"sigma": lumi}))
    sig_mods = [StandardModifier("lumi", "lumi", {"sigma": lumi})] if lumi is not None else []
    names = ("mean", "width") if nuisances else ()
    ch = UnbinnedChannel(name="SR", data=data, nuisances=names, components=(
        UnbinnedComponent(name="bkg", events=_events(rng.normal(0, 1, 40000)), yield_=5000.0,
                          modifiers=tuple(bkg_mods)),
        UnbinnedComponent(name="sig", events=_events(rng.normal(2, 0.3, 20000)), yield_=50.0,
                          log_ratio=log_ratio, poi="mu", modifiers=tuple(sig_mods))))
    nus = [UnbinnedNuisance("mean", "mu", 0.0, 0.1),
           UnbinnedNuisance("width", "sigma", 1.0, 0.05)] if nuisances else []
    return UnbinnedModel(channels=[ch], reweighter=reweighter, nuisances=nus, pois=["mu"])


def _data(seed: int, *, mean=0.1, width=1.05, n_sig=100) -> EventSet:
    rng = np.random.default_rng(seed)
    return _events(np.concatenate([rng.normal(mean, width, rng.poisson(5000)),
                                   rng.normal(2.0, 0.3, rng.poisson(n_sig))]))


def test_the_gradient_is_the_derivative_of_the_nll(reweighter):
    model = _model(reweighter, data=_data(2))
    cost = model.nll()
    x = np.array([model.start[n] for n in model.names]) + 0.1
    g = cost.grad(*x)
    # central differences with steps of 1e-3: the float32 network rounds θ at ~1e-7, so a
    # smaller step differences rounding; the truncation error is ~1e-6·|f'''| ≪ 1e-3·|g|
    for j in range(len(x)):
        e = np.zeros(len(x))
        e[j] = 1e-3
        numeric = (cost(*(x + e)) - cost(*(x - e))) / 2e-3
        assert numeric == pytest.approx(g[j], rel=2e-3, abs=0.05), model.names[j]


def test_identical_shapes_reduce_to_the_counting_experiment_pyhf_computes(reweighter):
    """With the signal's density equal to the background's (log r = 0) and no shape
    nuisance, the extended unbinned likelihood is a one-bin Poisson count: CLs, the
    limit and the fitted POI must be pyhf's for the same one-bin model (normsys code 1)."""
    import pyhf

    rng = np.random.default_rng(3)
    n_obs = 5060
    data = _events(rng.normal(0.0, 1.0, n_obs))
    model = _model(reweighter, data=data, log_ratio=lambda e: np.zeros(len(e)),
                   nuisances=False, lumi=None, normsys=(0.97, 1.03))
    bkg_yield = 5000.0
    pyhf.set_backend("numpy", "minuit")
    spec = {"channels": [{"name": "SR", "samples": [
        {"name": "sig", "data": [50.0],
         "modifiers": [{"name": "mu", "type": "normfactor", "data": None}]},
        {"name": "bkg", "data": [bkg_yield],
         "modifiers": [{"name": "xsec", "type": "normsys", "data": {"lo": 0.97, "hi": 1.03}}]}]}]}
    pdf = pyhf.Model(spec, poi_name="mu")
    obs = [float(n_obs), *pdf.config.auxdata]
    fitted = fit_model(model)
    best = pyhf.infer.mle.fit(obs, pdf, tolerance=1e-4)
    # both minimised to EDM ≲ 1e-5: the POIs agree to ~1 % of its error
    assert fitted.value("mu") == pytest.approx(float(best[pdf.config.poi_index]),
                                               abs=0.01 * fitted.error("mu"))
    ours = hypotest_model(model, poi_value=3.0)
    cls, expected = pyhf.infer.hypotest(3.0, obs, pdf, test_stat="qtilde",
                                        return_expected_set=True)
    # both minimise to MINUIT's tolerance: CLs agree to ~1e-4 absolute
    assert ours.cls_observed == pytest.approx(float(cls), abs=1e-3)
    assert ours.cls_expected == pytest.approx([float(e) for e in expected], abs=1e-3)


def test_the_fit_recovers_the_injected_signal_and_shape(reweighter):
    model = _model(reweighter, data=_data(4))
    fit = fit_model(model)
    assert fit.valid
    # μ = 2 injected (100 events for a yield of 50); 4σ windows for a test that can fail
    assert abs(fit.value("mu") - 2.0) < 4 * fit.error("mu")
    assert abs(fit.pulls["mean"].theta - 0.1) < 4 * fit.pulls["mean"].theta_error
    assert abs(fit.pulls["width"].theta - 1.05) < 4 * fit.pulls["width"].theta_error
    assert np.allclose(fit.correlation, fit.correlation.T)


def test_limit_bands_and_impacts_are_ordered(reweighter):
    model = _model(reweighter, data=_data(5, n_sig=0))
    fit = fit_model(model)
    limit = upper_limit_model(model, best=fit)
    assert list(limit.expected) == sorted(limit.expected)
    assert limit.expected[0] < limit.expected[2] < limit.expected[4]
    assert limit.observed > 0
    ranked = impacts_model(model, best=fit)
    assert [i.size for i in ranked] == sorted((i.size for i in ranked), reverse=True)
    assert {i.name for i in ranked} == {"mean", "width", "xsec", "lumi"}


def test_the_poi_intervals_are_where_the_profile_likelihood_crosses(reweighter):
    """fit_model(intervals=True): the 68 % and 95 % ends are where 2ΔNLL of the profile
    likelihood reaches 1 and 3.84 (Wilks), the lower end held at the bound 0 when the
    profile stays below there (few signal events: a lopsided interval)."""
    from ratiofit.inference.unbinned_analysis import profile_scan_model

    for n_sig, seed in ((100, 4), (3, 9)):
        model = _model(reweighter, data=_data(seed, n_sig=n_sig), normsys=None, lumi=None)
        fit = fit_model(model, intervals=True)
        assert fit.poi_intervals is not None
        assert fit.to_dict()["poi_intervals"]["68"] == list(fit.poi_intervals["68"])
        for key, level in (("68", 1.0), ("95", 3.841458820694124)):
            lo, hi = fit.poi_intervals[key]
            assert lo <= fit.poi_value <= hi
            ends = [hi] if lo == 0.0 else [lo, hi]
            scan = profile_scan_model(model, ends, best=fit)["twice_delta_nll"]
            # MINOS's own tolerance on the crossing: 2ΔNLL within 0.01 of the level
            # (its default is ~1e-3 of the error; the fits' EDM goal 2e-5 is far below)
            np.testing.assert_allclose(scan, level, atol=0.02)
            if lo == 0.0:  # held at the bound: the profile there is below the level
                assert profile_scan_model(model, [0.0], best=fit)["twice_delta_nll"][0] \
                    < level
        # the intervals nest, and the few-signal one is lopsided
        assert fit.poi_intervals["95"][0] <= fit.poi_intervals["68"][0]
        assert fit.poi_intervals["95"][1] >= fit.poi_intervals["68"][1]


def test_a_fit_without_minos_has_the_same_values_and_covariance(reweighter):
    """fit_model(minos=False), as the bootstrap replicas' refits use it (their values
    only): MINOS changes only the POI's reported error near its bound (few signal events
    here: μ̂ within 3σ of 0) and with it the POI's row of the correlations, never the
    values or the other errors and correlations. The
    same cost and start give the same MIGRAD, so they agree to the float64 rounding
    (rtol 1e-12)."""
    model = _model(reweighter, data=_data(9, n_sig=3), normsys=None, lumi=None)
    cost = model.nll()
    with_minos, without = fit_model(model, cost), fit_model(model, cost, minos=False)
    i = with_minos.names.index("mu")
    assert with_minos.values[i] - 0.0 < 3 * without.errors[i]  # MINOS ran in the first
    assert with_minos.errors[i] != without.errors[i]
    np.testing.assert_allclose(without.values, with_minos.values, rtol=1e-12, atol=1e-15)
    others = [k for k in range(len(without.names)) if k != i]
    np.testing.assert_allclose(without.errors[others], with_minos.errors[others],
                               rtol=1e-12)
    block = np.ix_(others, others)  # (the POI's row is divided by its error)
    np.testing.assert_allclose(without.correlation[block], with_minos.correlation[block],
                               rtol=1e-12, atol=1e-15)


def test_a_step_to_a_non_finite_point_is_a_failed_fit_not_bad_input(reweighter,
                                                                    monkeypatch):
    """The NLL at a NaN parameter (a minimiser's step, not user input) raises
    InferenceError, which every caller counts or skips; MINOS that hits it leaves HESSE's
    error and no intervals instead of stopping the run (a coverage run of 7b6b2aa stopped
    at repeat 36 on the reweighter's DataError for NaN θ from a replica refit's MINOS)."""
    from iminuit import Minuit

    from ratiofit.inference import InferenceError

    model = _model(reweighter, data=_data(9, n_sig=3), normsys=None, lumi=None)
    cost = model.nll()
    start = [float(model.start[n]) for n in model.names]
    with pytest.raises(InferenceError, match="non-finite point"):
        cost(*[np.nan, *start[1:]])
    with pytest.raises(InferenceError, match="non-finite point"):
        cost.grad(*[start[0], np.inf, *start[2:]])
    reference = fit_model(model, cost, minos=False)

    def minos_at_nan(self, *args, **kwargs):
        self.fcn([np.nan] * len(self.parameters))  # as a MINOS step to NaN would

    monkeypatch.setattr(Minuit, "minos", minos_at_nan)
    fit = fit_model(model, cost, intervals=True)
    assert fit.poi_intervals is None
    np.testing.assert_allclose(fit.values, reference.values, rtol=1e-12)
    np.testing.assert_allclose(fit.errors, reference.errors, rtol=1e-12)


def test_a_measured_constraint_is_centred_on_its_measurement(reweighter):
    """lumi and normsys constraints centred on their ``measured`` auxiliary data (1 and 0
    without): the NLL's difference at the same parameters is the two Gaussian terms'
    difference, (1.03 − 1)²/(2·0.02²) + (−0.7)²/2 at lumi = 1, xsec = 0."""
    data = _data(4)
    plain = _model(reweighter, data=data)
    moved = _model(reweighter, data=data)
    moved.channels[0] = type(moved.channels[0])(
        **{**moved.channels[0].__dict__, "components": tuple(
            type(c)(**{**c.__dict__, "modifiers": tuple(
                StandardModifier(m.kind, m.name, {**m.data, "measured": {"lumi": 1.03,
                                                                         "xsec": -0.7}[m.name]})
                for m in c.modifiers)}) for c in moved.channels[0].components)})
    moved = UnbinnedModel(channels=moved.channels, reweighter=reweighter,
                          nuisances=[UnbinnedNuisance("mean", "mu", 0.0, 0.1),
                                     UnbinnedNuisance("width", "sigma", 1.0, 0.05)],
                          pois=["mu"])
    assert moved.constraints["lumi"] == ("normal", 1.03, 0.02)
    assert moved.constraints["xsec"] == ("normal", -0.7, 1.0)
    assert plain.constraints["lumi"] == ("normal", 1.0, 0.02)
    x = [plain.start[n] for n in plain.names]
    expected = 0.03 ** 2 / (2 * 0.02 ** 2) + 0.7 ** 2 / 2
    assert moved.nll()(*x) - plain.nll()(*x) == pytest.approx(expected, rel=1e-6)
