"""Plots and summary of a binned inference run: the numbers of
:func:`ratiofit.inference.plot_data` against pyhf and against hand computations, and the
files that ratiofit.report draws from them (also from result.json alone).

The model: a signal region (signal + background with a reweighter shape nuisance, a
normsys and a staterror) and a control region (background only, another binning), both
from fixed-seed Gaussian samples with the analytic reweighter of ratiofit.testing.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

from ratiofit.events import EventSet
from ratiofit.inference import (
    Channel,
    ReweighterNuisance,
    Sample,
    StandardModifier,
    build_templates,
    exact_model,
    fit,
    hypotest,
    impacts,
    plot_data,
    portable_model,
    upper_limit,
)
from ratiofit.report import make_plots, report_directory, summary_markdown
from ratiofit.testing import analytic_gaussian_reweighter
from ratiofit.workflow import write_json

SR_EDGES = np.linspace(-4.0, 4.0, 9)
CR_EDGES = np.linspace(-4.0, 4.0, 5)
POI = "mu_sig"
XSEC_LO, XSEC_HI = 0.9, 1.1


def _events(x: np.ndarray, total: float) -> EventSet:
    return EventSet(features=x[:, None], feature_names=("x0",),
                    weights=np.full(len(x), total / len(x)))


def _observed(rng: np.random.Generator, edges: np.ndarray, *parts: tuple[float, float, int]
              ) -> np.ndarray:
    """Counts of Gaussian parts (mean, width, n), the tails folded into the outer bins."""
    x = np.concatenate([rng.normal(m, w, n) for m, w, n in parts])
    return np.histogram(np.clip(x, edges[0] + 1e-9, edges[-1] - 1e-9), edges)[0].astype(float)


@pytest.fixture(scope="module")
def model():
    """Two channels sharing the shape nuisance and the background normsys."""
    rng = np.random.default_rng(21)
    bkg = _events(rng.normal(0.0, 1.0, 20_000), 1000.0)
    sig = _events(rng.normal(1.0, 0.4, 5_000), 60.0)
    control = _events(rng.normal(0.0, 1.0, 20_000), 2000.0)
    nu = ReweighterNuisance(name="shape", reweighter=analytic_gaussian_reweighter(),
                            parameter="mu", nominal=0.0, sigma=0.1)
    xsec = StandardModifier("normsys", "xsec", {"lo": XSEC_LO, "hi": XSEC_HI})
    sr = Channel(name="SR", observable="x0", edges=SR_EDGES,
                 observed=_observed(rng, SR_EDGES, (0.05, 1.0, 1000), (1.0, 0.4, 40)),
                 samples=(Sample(name="signal", events=sig, signal=True),
                          Sample(name="bkg", events=bkg, nuisances=("shape",),
                                 modifiers=(xsec,))))
    cr = Channel(name="CR", observable="x0", edges=CR_EDGES,
                 observed=_observed(rng, CR_EDGES, (0.05, 1.0, 2000)),
                 samples=(Sample(name="bkg", events=control, nuisances=("shape",),
                                 modifiers=(xsec,)),))
    templates = build_templates(channels=[sr, cr], nuisances=[nu], flow="fold", morph=False)
    return portable_model(templates, poi=POI)


@pytest.fixture(scope="module")
def fitted(model):
    best = fit(model)
    limit = upper_limit(model, scan=np.linspace(0.0, 4.0, 9))
    ranking = impacts(model, nominal=best)
    return best, limit, ranking, plot_data(model, best, upper_limit=limit, impacts=ranking)


def test_plot_data_is_plain_json(fitted):
    # no numpy scalars or arrays, no NaN: json.dumps without a default accepts it
    pd = fitted[3]
    assert json.loads(json.dumps(pd, allow_nan=False)) == pd


def test_postfit_totals_are_pyhfs_expected_counts_per_channel(model, fitted):
    best, *_, pd = fitted
    cfg = model.model.config
    expected = np.asarray(model.model.expected_actualdata(best.values))
    observed = np.asarray(model.data)[:cfg.nmaindata]
    # the analysis's channel order; pyhf's data vector has them sorted (CR first), so
    # each channel's slice is not where its order would put it
    assert list(pd["channels"]) == ["SR", "CR"] and list(cfg.channels) == ["CR", "SR"]
    for name, edges in (("SR", SR_EDGES), ("CR", CR_EDGES)):
        ch = pd["channels"][name]
        sl = cfg.channel_slices[name]
        np.testing.assert_allclose(ch["postfit"]["total"], expected[sl], rtol=1e-12)
        np.testing.assert_allclose(np.sum(list(ch["postfit"]["samples"].values()), axis=0),
                                   ch["postfit"]["total"], rtol=1e-12)
        np.testing.assert_array_equal(ch["observed"], observed[sl])
        np.testing.assert_array_equal(ch["edges"], edges)
    # the control region has no signal sample; the signal region's is the POI's
    assert set(pd["channels"]["CR"]["postfit"]["samples"]) == {"bkg"}
    assert pd["channels"]["SR"]["signal_samples"] == ["signal"]
    assert pd["poi"] == {"name": POI, "value": best.poi_value, "error": best.poi_error}


def _code4(lo: float, hi: float) -> np.ndarray:
    """a₁…a₆ of HistFactory's normsys interpolation for |α| < 1 (pyhf's default, code4):
    f(α) = 1 + Σᵢ aᵢ αⁱ with f, f′ and f″ equal to those of hi^α at α = 1 and of lo^−α at
    α = −1 (the exponential extrapolation outside), solved here from those six
    conditions."""
    rows, rhs = [], []
    for x, value, log in ((1.0, hi, np.log(hi)), (-1.0, lo, -np.log(lo))):
        # value·log^k is the k-th derivative of value^(±α) at α = ±1
        for k in range(3):
            rows.append([np.prod(range(i - k + 1, i + 1)) * x ** (i - k) if i >= k else 0.0
                         for i in range(1, 7)])
            rhs.append(value * log ** k - (1.0 if k == 0 else 0.0))
    return np.linalg.solve(np.array(rows), np.array(rhs))


def test_prefit_band_of_a_single_normsys_is_the_hand_computed_one():
    """Background × a normsys, signal × a free POI, no staterror: before the fit only the
    normsys (prior width 1) moves the total, so σ_b = B_b · f′(0) = B_b · a₁; after it,
    σ_b² = J C Jᵀ with J = (S_b, B_b · f′(α̂)) and C the fit's covariance of (μ, α)."""
    rng = np.random.default_rng(5)
    edges = np.linspace(-3.0, 3.0, 7)
    ch = Channel(name="SR", observable="x0", edges=edges,
                 observed=_observed(rng, edges, (0.0, 1.0, 500)),
                 samples=(Sample(name="signal", events=_events(rng.normal(0.5, 0.5, 2000), 30.0),
                                 signal=True),
                          Sample(name="bkg", events=_events(rng.normal(0.0, 1.0, 5000), 500.0),
                                 modifiers=(StandardModifier("normsys", "xsec",
                                                             {"lo": XSEC_LO, "hi": XSEC_HI}),))))
    model = portable_model(build_templates(channels=[ch], nuisances=[], flow="fold"),
                           poi=POI, staterror=False)
    best = fit(model)
    sr = plot_data(model, best)["channels"]["SR"]
    a = _code4(XSEC_LO, XSEC_HI)
    background = np.asarray(sr["prefit"]["samples"]["bkg"])  # α = 0: the nominal
    signal = np.asarray(sr["prefit"]["samples"]["signal"])  # μ = 1: the nominal
    np.testing.assert_allclose(sr["prefit"]["band"], background * a[0], rtol=1e-6)
    alpha = best.value("xsec")
    assert 1e-3 < abs(alpha) < 1  # inside the polynomial, away from the nominal
    slope = sum((i + 1) * a[i] * alpha ** i for i in range(6))
    i, j = best.names.index(POI), best.names.index("xsec")
    cov = best.covariance[np.ix_([i, j], [i, j])]
    jac = np.stack([signal, background * slope], axis=1)
    hand = np.sqrt(np.einsum("bi,ij,bj->b", jac, cov, jac))
    np.testing.assert_allclose(sr["postfit"]["band"], hand, rtol=1e-6)


def test_exact_mode_prefit_band_follows_the_reweighter():
    """The exact model (the reweighter's own θ dependence): with log w = μx − μ²/2, the
    background's derivative at θ₀ = 0 is ∂h_b/∂θ = Σ_{i∈b} w₀ᵢ xᵢ, so the pre-fit band of a
    background-only nuisance of width σ is σ·|Σ_{i∈b} w₀ᵢ xᵢ| (tails folded into the outer
    bins, as the templates fold them); the post-fit total is pyhf's."""
    rng = np.random.default_rng(8)
    x = rng.normal(0.0, 1.0, 20_000)
    total = 1000.0
    ch = Channel(name="SR", observable="x0", edges=SR_EDGES,
                 observed=_observed(rng, SR_EDGES, (0.05, 1.0, 1000)),
                 samples=(Sample(name="signal", events=_events(rng.normal(1.0, 0.4, 5000), 60.0),
                                 signal=True),
                          Sample(name="bkg", events=_events(x, total), nuisances=("shape",),
                                 staterror=False)))
    nu = ReweighterNuisance(name="shape", reweighter=analytic_gaussian_reweighter(),
                            parameter="mu", nominal=0.0, sigma=0.1)
    model = exact_model(build_templates(channels=[ch], nuisances=[nu], flow="fold"), poi=POI,
                        staterror=False)
    best = fit(model)
    sr = plot_data(model, best)["channels"]["SR"]
    bins = np.clip(np.digitize(x, SR_EDGES) - 1, 0, len(SR_EDGES) - 2)
    hand = 0.1 * np.abs(np.bincount(bins, weights=x * total / len(x), minlength=len(SR_EDGES) - 1))
    # the morphing is a fit of h_b(θ) on a θ grid: its slope is the reweighter's to ~1e-5
    np.testing.assert_allclose(sr["prefit"]["band"], hand, rtol=1e-4)
    np.testing.assert_allclose(sr["postfit"]["total"],
                               model.model.expected_actualdata(best.values), rtol=1e-12)


def test_correlation_is_symmetric_with_unit_diagonal(fitted):
    best, *_, pd = fitted
    names, matrix = pd["correlation"]["names"], np.asarray(pd["correlation"]["matrix"])
    assert matrix.shape == (len(names), len(names))
    assert {POI, "shape", "xsec"} <= set(names) and set(names) <= set(best.names)
    np.testing.assert_allclose(matrix, matrix.T, atol=1e-12)
    np.testing.assert_allclose(np.diag(matrix), 1.0, atol=1e-9)
    assert np.all(np.abs(matrix) <= 1 + 1e-9)
    # the POI and the background normalisation compete for the same events
    assert matrix[names.index(POI), names.index("xsec")] != 0.0


def test_pulls_are_the_fits(fitted):
    best, *_, pd = fitted
    assert [p["name"] for p in pd["pulls"]] == list(best.pulls)
    for p in pd["pulls"]:
        assert p["value"] == best.value(p["name"]) and p["error"] == best.error(p["name"])
        assert p["pull"] == pytest.approx((p["value"] - p["prefit"]) / p["prefit_error"])
    shape = next(p for p in pd["pulls"] if p["name"] == "shape")
    assert shape["theta"] == pytest.approx(0.1 * best.value("shape"))


def test_cls_scan_and_its_expected_band_are_ordered(fitted):
    _, limit, ranking, pd = fitted
    scan = pd["cls_scan"]
    band = np.asarray([scan["cls_expected"][k]
                       for k in ("minus2", "minus1", "median", "plus1", "plus2")])
    assert band.shape == (5, len(scan["poi_values"])) == (5, 9)
    assert np.all(np.diff(band, axis=0) >= -1e-12), band
    np.testing.assert_array_equal(scan["cls_observed"], limit.cls_observed)
    assert scan["limit_observed"] == limit.observed
    assert list(scan["limit_expected"].values()) == list(limit.expected)
    sizes = [i["size"] for i in pd["impacts"]]
    assert sizes == sorted(sizes, reverse=True) and len(sizes) == len(ranking) == 2


def _write_result(model, fitted, path: Path) -> None:
    """result.json with an inference block as run_inference makes it."""
    best, limit, ranking, pd = fitted
    inference = {"mode": "portable", "workspace": "workspace.json",
                 "channels": {"SR": {"observable": "x0", "edges": SR_EDGES.tolist()},
                              "CR": {"observable": "x0", "edges": CR_EDGES.tolist()}},
                 "fit": best.to_dict(),
                 "hypotest": asdict(hypotest(model, poi_value=1.0)),
                 "upper_limit": asdict(limit), "impacts": [asdict(i) for i in ranking],
                 "warnings": ["a warning for the summary"], "plot_data": pd}
    write_json(path, {"inference": inference})


PLOTS = {"prefit_SR.png", "postfit_SR.png", "prefit_CR.png", "postfit_CR.png", "pulls.png",
         "correlation.png", "cls_scan.png", "impacts.png", "summary.md"}


def test_make_plots_draws_the_inference_plots_and_summary(model, fitted, tmp_path: Path):
    _write_result(model, fitted, tmp_path / "result.json")
    result = json.loads((tmp_path / "result.json").read_text())
    written = make_plots(result, tmp_path)
    assert {p.name for p in written} == PLOTS
    for p in written:
        assert p.stat().st_size > 0
    best = fitted[0]
    text = summary_markdown(result)
    assert "## Inference" in text
    assert f"{POI} = {best.poi_value:.4g} ± {best.poi_error:.2g}" in text
    assert f"{fitted[1].observed:.4g} observed" in text
    assert "| xsec |" in text and "a warning for the summary" in text
    assert (tmp_path / "plots" / "summary.md").read_text() == text


def test_report_directory_redraws_from_result_json_alone(model, fitted, tmp_path: Path):
    _write_result(model, fitted, tmp_path / "result.json")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.json"]
    written = report_directory(tmp_path)
    assert {p.name for p in written} == PLOTS
    assert {p.name for p in (tmp_path / "plots").iterdir()} == PLOTS
