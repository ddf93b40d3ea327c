"""The binned model through iminuit (HistFactoryNLL): the same likelihood as pyhf's logpdf,
written out in numpy, and the same fit.

The model has every kind of term the cost writes out: two channels, a reweighter nuisance
(the exact analytic Gaussian reweighter, ratiofit.testing) on the background of both, a
``lumi`` on signal and background, a ``normsys``, a free ``normfactor``, per-channel
``staterror`` (normal constraints of width σ_b) and per-channel ``shapesys`` (Poisson
constraints). Both pyhf modes are checked: exact (custom ``ratiofit_morph`` modifier) and
portable (standard ``histosys``).

Tolerances: −log L is O(60) at the best fit and up to O(10⁵) at the random points; the
cost and pyhf sum the same float64 terms in another order, so they agree to ~10⁻¹⁰ — the
1e-6 bound only a wrong term (a missing constant, a wrong σ or τ) exceeds. The fits
minimise the same function from the same start with the same MINUIT settings, so their
POIs agree far better than the 10⁻³ of the POI error asked; fully converged fits
(tolerance 1e-6) from different starts agree within it too.
"""

from __future__ import annotations

import numpy as np
import pytest
from iminuit import Minuit

from ratiofit.events import EventSet
from ratiofit.inference import (
    BinnedModel,
    Channel,
    HistFactoryNLL,
    ReweighterNuisance,
    Sample,
    StandardModifier,
    build_templates,
    exact_model,
    fit,
    fit_binned_iminuit,
    portable_model,
)
from ratiofit.testing import analytic_gaussian_reweighter

LUMI_SIGMA = 0.03
SHAPESYS_RELATIVE = 0.05


def _events(x: np.ndarray, total: float) -> EventSet:
    return EventSet(features=x[:, None], feature_names=("x0",),
                    weights=np.full(len(x), total / len(x)))


def _channel(rng: np.random.Generator, name: str, edges: np.ndarray, yields: tuple[float, ...]
             ) -> Channel:
    """Signal N(1, 0.4), background N(0, 1) with the reweighter nuisance, another
    background N(−1, 1.2) with a free normalisation; data drawn near the prediction."""
    n_sig, n_bkg, n_other = yields
    lumi = StandardModifier("lumi", "lumi", {"sigma": LUMI_SIGMA})
    clip = (edges[0] + 1e-9, edges[-1] - 1e-9)

    def counts(mean: float, width: float, n: float) -> np.ndarray:
        return np.histogram(np.clip(rng.normal(mean, width, int(n)), *clip), edges)[0]

    observed = (counts(0.1, 1.0, n_bkg) + counts(1.0, 0.4, 0.8 * n_sig)
                + counts(-1.0, 1.2, n_other)).astype(float)
    return Channel(name=name, observable="x0", edges=edges, observed=observed, samples=(
        Sample(name="signal", events=_events(rng.normal(1.0, 0.4, 5_000), n_sig), signal=True,
               modifiers=(lumi,)),
        Sample(name="bkg", events=_events(rng.normal(0.0, 1.0, 20_000), n_bkg),
               nuisances=("theta_shape",),
               modifiers=(lumi, StandardModifier("normsys", "bkg_xsec",
                                                 {"lo": 0.92, "hi": 1.1}))),
        Sample(name="other", events=_events(rng.normal(-1.0, 1.2, 8_000), n_other),
               modifiers=(StandardModifier("normfactor", "k_other"),
                          StandardModifier("shapesys", f"other_mc_{name}",
                                           {"relative": SHAPESYS_RELATIVE})))))


@pytest.fixture(scope="module")
def templates():
    rng = np.random.default_rng(7)
    nu = ReweighterNuisance(name="theta_shape", reweighter=analytic_gaussian_reweighter(),
                            parameter="mu", nominal=0.0, sigma=0.2)
    channels = [_channel(rng, "SR", np.linspace(-4.0, 4.0, 9), (80.0, 1500.0, 300.0)),
                _channel(rng, "CR", np.linspace(-3.0, 5.0, 6), (10.0, 800.0, 600.0))]
    return build_templates(channels=channels, nuisances=[nu], flow="fold")


@pytest.fixture(scope="module", params=["exact", "portable"])
def model(request, templates) -> BinnedModel:
    return exact_model(templates) if request.param == "exact" else portable_model(templates)


@pytest.fixture(scope="module")
def pyhf_fit(model):
    return fit(model)


def _points(model: BinnedModel, best) -> list[np.ndarray]:
    """Nominal (pyhf's inits), the pyhf best fit, and five random points (fixed seed): each
    parameter uniform within ±3 postfit σ of the best fit, clipped to its bounds (points
    far out in every parameter at once make histosys expectations negative, where pyhf's
    logpdf and the cost are both NaN)."""
    cfg = model.model.config
    lo, hi = np.asarray(cfg.suggested_bounds(), dtype=np.float64).T
    rng = np.random.default_rng(2024)
    points = [np.asarray(cfg.suggested_init(), dtype=np.float64), best.values]
    for _ in range(5):
        x = best.values + rng.uniform(-3.0, 3.0, len(lo)) * best.errors
        points.append(np.clip(x, lo, hi))
    return points


def test_the_cost_is_minus_pyhfs_logpdf(model, pyhf_fit):
    cost = HistFactoryNLL(model)
    cfg = model.model.config
    assert cost.errordef == Minuit.LIKELIHOOD == 0.5
    assert cost.parameter_names == list(cfg.par_names)
    assert cost.ndata == cfg.nmaindata
    assert "staterror_SR[3]" in cost.parameter_names and "other_mc_CR[4]" in cost.parameter_names
    assert list(cost.limits.values()) == [tuple(b) for b in cfg.suggested_bounds()]
    assert list(cost.start.values()) == list(cfg.suggested_init())
    points = _points(model, pyhf_fit)
    worst = 0.0
    main, aux = model.data[:cfg.nmaindata], model.data[cfg.nmaindata:]
    for p in points:
        ours = cost(*p)
        theirs = -float(model.model.logpdf(p, model.data)[0])
        assert np.isfinite(ours)
        assert abs(ours - theirs) < 1e-6, (p, ours, theirs)
        worst = max(worst, abs(ours - theirs))
        # each half on its own: the Poisson terms and the constraint terms
        assert cost.main_nll(p) == pytest.approx(-float(model.model.mainlogpdf(main, p)),
                                                 abs=1e-6)
        assert cost.constraint_nll(p) == pytest.approx(
            -float(model.model.constraint_logpdf(aux, p)), abs=1e-6)
    print(f"\n{model.mode}: max |NLL_iminuit − (−logpdf_pyhf)| over {len(points)} points "
          f"= {worst:.3g}")


def test_the_constraint_widths_are_the_histfactory_ones(templates):
    """σ and τ of the cost's constraints, against the HistFactory definitions computed
    from the templates (pyhf docs, "Modifiers"): lumi σ = σ_lumi; staterror
    σ_b = √(Σ_s δ²_sb)/Σ_s ν_sb; shapesys τ_b = (ν_b/δ_b)² = 1/r²; α's σ = 1."""
    model = portable_model(templates)
    cost = HistFactoryNLL(model)
    names = cost.parameter_names
    sigma = {names[i]: s for i, s in zip(cost.normal_index, cost.normal_sigma, strict=True)}
    tau = {names[i]: t for i, t in zip(cost.poisson_index, cost.poisson_tau, strict=True)}
    assert sigma["lumi"] == LUMI_SIGMA
    assert sigma["theta_shape"] == sigma["bkg_xsec"] == 1.0
    empty = []
    for ch in templates.channels:
        nominal = sum(st.nominal.values for st in ch.samples)
        variance = sum(st.nominal.variances for st in ch.samples)
        other = next(st for st in ch.samples if st.name == "other").nominal.values
        for b, expected in enumerate(np.sqrt(variance) / nominal):
            assert sigma[f"staterror_{ch.name}[{b}]"] == pytest.approx(expected, rel=1e-12)
            name = f"other_mc_{ch.name}[{b}]"
            if other[b] > 0:
                assert tau[name] == pytest.approx(1.0 / SHAPESYS_RELATIVE**2, rel=1e-9)
                assert not cost.fixed[name]
            else:  # no MC events: pyhf fixes γ_b = 1 with τ_b = 1 (its term is a constant)
                assert tau[name] == 1.0 and cost.fixed[name]
                empty.append(name)
    assert empty == ["other_mc_CR[4]"]  # the far tail of N(−1, 1.2): a fixed parameter too
    assert set(sigma) | set(tau) == {n for n in names if n not in ("mu", "k_other")}


def test_migrad_on_the_cost_finds_pyhfs_minimum(model, pyhf_fit):
    ours = fit_binned_iminuit(model)
    assert ours.valid and ours.names == pyhf_fit.names
    shift = abs(ours.poi_value - pyhf_fit.poi_value)
    print(f"\n{model.mode}: μ̂ iminuit {ours.poi_value:.8f} pyhf {pyhf_fit.poi_value:.8f} "
          f"(Δ = {shift / pyhf_fit.poi_error:.2g} σ); 2NLL {ours.twice_nll:.8f} vs "
          f"{pyhf_fit.twice_nll:.8f}")
    assert shift < 1e-3 * pyhf_fit.poi_error
    assert ours.poi_error == pytest.approx(pyhf_fit.poi_error, rel=1e-2)
    assert ours.twice_nll == pytest.approx(pyhf_fit.twice_nll, abs=1e-6)
    pull = ours.pulls["theta_shape"]
    assert pull.theta == pytest.approx(0.2 * pull.value)  # θ = θ₀ + σα with θ₀ = 0, σ = 0.2
    # converged fits from another start: the same minimum, not only the same MINUIT path
    # (pyhf's default tolerance 0.1 stops some 10⁻⁴ σ short of it)
    far = fit_binned_iminuit(model, init={"mu": 2.0, "theta_shape": -1.0}, tolerance=1e-6)
    tight = fit(model, tolerance=1e-6)
    print(f"converged from μ = 2: Δμ̂ = {(far.poi_value - tight.poi_value) / tight.poi_error:.2g} σ")
    assert abs(far.poi_value - tight.poi_value) < 1e-3 * tight.poi_error
    assert far.twice_nll == pytest.approx(tight.twice_nll, abs=1e-6)
    assert far.twice_nll <= ours.twice_nll + 1e-9
    # a fit with the POI fixed, as in a profile likelihood ratio
    fixed = fit_binned_iminuit(model, fixed={"mu": 0.0})
    reference = fit(model, fixed={"mu": 0.0})
    assert fixed.value("mu") == 0.0 and fixed.error("mu") == 0.0
    assert fixed.twice_nll == pytest.approx(reference.twice_nll, abs=1e-6)
    assert fixed.twice_nll > ours.twice_nll
