"""Neural conditional reweighting (ncr.md): loss pairing, optimum, trunk, source, study."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import integrate

from ratiofit.errors import DataError, SpecError
from ratiofit.plugin_api import InputSignature
from ratiofit.plugins.architectures.ncr_trunk import SCHEMES, NCRTrunk
from ratiofit.plugins.losses.ncr import NCRLoss, diagonal_triples, ncr_pairs, triple_names
from ratiofit.plugins.sources.ncr_gaussian import NCRGaussian
from ratiofit.plugins.studies.ncr import NCRStudy, chi2_per_ndf, fit_classifier, signature_for
from ratiofit.spec import load_spec_text
from ratiofit.testing import check_plugin
from ratiofit.workflow import run_spec

GAUSS = NCRGaussian()


def _source_options(**given: float) -> dict[str, float]:
    opts = {"mean": 0.0, "width": 1.0, "hole_centre": 0.0, "hole_half_width": 0.0,
            "bias": 0.0, "resolution": 0.5}
    opts.update(given)
    return opts


# ---------------------------------------------------------------------------------------
# Loss: pairing and optimum (ncr.md Eq. 13–15)
# ---------------------------------------------------------------------------------------
def test_pairs_have_the_marginals_of_eq13() -> None:
    rng = np.random.default_rng(0)
    ref_truth, ref_reco = rng.normal(size=(5000, 1)), rng.normal(size=(5000, 1))
    tgt_truth, tgt_reco = rng.normal(3, 1, size=(5000, 1)), rng.normal(3, 1, size=(5000, 1))
    triples, labels = ncr_pairs(reference_reco=ref_reco, reference_truth=ref_truth,
                                target_reco=tgt_reco, target_truth=tgt_truth,
                                rng=np.random.default_rng(1))
    ref_rows, tgt_rows = triples[labels == 0], triples[labels == 1]
    # label 0 ~ p(x, x') q(y'): the reference rows unchanged, y' a permutation of q's truth.
    np.testing.assert_array_equal(ref_rows[:, :2], np.hstack([ref_reco, ref_truth]))
    np.testing.assert_array_equal(np.sort(ref_rows[:, 2]), np.sort(tgt_truth[:, 0]))
    # label 1 ~ p(x') q(y, y'): the target rows unchanged, x' a permutation of p's truth.
    np.testing.assert_array_equal(tgt_rows[:, [0, 2]], np.hstack([tgt_reco, tgt_truth]))
    np.testing.assert_array_equal(np.sort(tgt_rows[:, 1]), np.sort(ref_truth[:, 0]))
    # The partner is independent of the row: correlation 0 within 5/sqrt(n).
    for rows, a, b in ((ref_rows, 1, 2), (tgt_rows, 1, 2), (tgt_rows, 0, 1)):
        assert abs(np.corrcoef(rows[:, a], rows[:, b])[0, 1]) < 5 / np.sqrt(len(rows))


def test_pairs_with_unequal_samples_use_partners_evenly() -> None:
    triples, labels = ncr_pairs(reference_reco=np.zeros(10), reference_truth=np.arange(10.0),
                                target_reco=np.ones(3), target_truth=100 + np.arange(3.0),
                                rng=np.random.default_rng(2))
    partners = triples[labels == 0, 2]
    counts = np.unique(partners, return_counts=True)[1]
    assert counts.max() - counts.min() <= 1 and len(counts) == 3


def test_pairs_refuse_bad_input() -> None:
    with pytest.raises(DataError, match="NaN"):
        ncr_pairs(reference_reco=np.array([np.nan]), reference_truth=np.zeros(1),
                  target_reco=np.zeros(1), target_truth=np.zeros(1), rng=np.random.default_rng())
    with pytest.raises(DataError, match="length"):
        ncr_pairs(reference_reco=np.zeros(2), reference_truth=np.zeros(1),
                  target_reco=np.zeros(1), target_truth=np.zeros(1), rng=np.random.default_rng())


def test_bce_optimum_on_pairs_is_the_conditional_ratio() -> None:
    """Non-parametric check of ncr.md Eq. 14–15 on discrete variables.

    A free classifier's BCE optimum in each cell (x, x', y') is the empirical log-odds
    log(n₁/n₀) (equal class sizes). On the diagonal y' = x' it must equal
    log q(x|x')/p(x|x') although p(x') ≠ q(x'); the tolerance is 5 binomial standard
    errors sqrt(1/n₁ + 1/n₀) per cell.
    """
    rng = np.random.default_rng(11)
    n = 200_000
    p_truth, q_truth = np.array([0.5, 0.3, 0.2]), np.array([0.2, 0.3, 0.5])
    p_reco1, q_reco1 = np.array([0.2, 0.5, 0.7]), np.array([0.4, 0.5, 0.3])  # P(x = 1 | x')

    def draw(truth_p: np.ndarray, reco1: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        truth = rng.choice(3, size=n, p=truth_p)
        return (rng.random(n) < reco1[truth]).astype(float), truth.astype(float)

    ref_reco, ref_truth = draw(p_truth, p_reco1)
    tgt_reco, tgt_truth = draw(q_truth, q_reco1)
    triples, labels = ncr_pairs(reference_reco=ref_reco, reference_truth=ref_truth,
                                target_reco=tgt_reco, target_truth=tgt_truth, rng=rng)
    for a in range(3):
        for z in (0, 1):
            cell = (triples[:, 0] == z) & (triples[:, 1] == a) & (triples[:, 2] == a)
            n1, n0 = int(np.sum(cell & (labels == 1))), int(np.sum(cell & (labels == 0)))
            exact = np.log((q_reco1[a] if z else 1 - q_reco1[a])
                           / (p_reco1[a] if z else 1 - p_reco1[a]))
            assert abs(np.log(n1 / n0) - exact) < 5 * np.sqrt(1 / n1 + 1 / n0), (a, z)


def test_loss_conforms_and_maps_logit_to_log_w() -> None:
    check_plugin(NCRLoss(), kind="loss")
    np.testing.assert_array_equal(NCRLoss().log_ratio(np.array([[0.3]])), [[0.3]])
    np.testing.assert_array_equal(diagonal_triples(reco=np.array([1.0]), truth=np.array([2.0])),
                                  [[1.0, 2.0, 2.0]])


# ---------------------------------------------------------------------------------------
# Architecture (ncr.md Eq. 17–19, App. A)
# ---------------------------------------------------------------------------------------
def _triple_signature(theta: bool) -> InputSignature:
    return InputSignature(feature_names=triple_names(reco=("r",), truth=("t",)),
                          feature_mean=(0.0, 0.1, 0.3), feature_std=(1.0, 1.0, 1.2),
                          theta_names=("mu",) if theta else (),
                          theta_centre=(0.0,) if theta else (),
                          theta_half_width=(1.0,) if theta else ())


@pytest.mark.parametrize("scheme", SCHEMES)
def test_trunk_conforms(scheme: str) -> None:
    for theta in (False, True):
        check_plugin(NCRTrunk(), kind="architecture", options={"scheme": scheme},
                     signature=_triple_signature(theta))


def test_trunk_logit_is_f1_minus_f0() -> None:
    """Nominal scheme with both heads given the same weights: f₀ ≡ f₁, so the logit
    f₁(x, y') − f₀(x, x') must flip sign under x' ↔ y' (one trunk g, ncr.md Eq. 17–19)."""
    model = NCRTrunk().build(signature=_triple_signature(False), output_activation="linear",
                             options={"scheme": "nominal", "trunk": [8], "head": 4,
                                      "independent": [8]})
    model.get_layer("f1_hidden").set_weights(model.get_layer("f0_hidden").get_weights())
    model.get_layer("f1_out").set_weights(model.get_layer("f0_out").get_weights())
    x = np.random.default_rng(0).normal(size=(6, 3)).astype(np.float32)
    swapped = x[:, [0, 2, 1]]
    out, out_swapped = np.asarray(model({"features": x})), np.asarray(model({"features": swapped}))
    np.testing.assert_allclose(out, -out_swapped, atol=1e-5)


def test_trunk_refuses_features_that_are_not_triples() -> None:
    sig = InputSignature(feature_names=("x0", "x1"), feature_mean=(0.0, 0.0),
                         feature_std=(1.0, 1.0), theta_names=(), theta_centre=(),
                         theta_half_width=())
    with pytest.raises(ValueError, match="triples"):
        NCRTrunk().build(signature=sig, output_activation="linear",
                         options={"scheme": "nominal", "trunk": [4], "head": 4,
                                  "independent": [4]})


def _conditional_gaussian_fit(*, n: int, scheme: str, epochs: int, seed: int
                              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Train on p: T ~ N(0, 1), R = T + N(0.2, 0.3) vs q: T ~ N(0.3, 1.2), R = T + N(0, 0.5)
    (different truth marginals on purpose). Returns, on fresh reference events, the
    learned log w, the exact one, and a 20-bin histogram estimate in d = r − t built from
    the same training events (the ratio depends on d only, which the histogram is told
    and the network is not): its error is the scale the network is measured against."""
    ref_opts = _source_options(bias=0.2, resolution=0.3)
    tgt_opts = _source_options(mean=0.3, width=1.2, resolution=0.5)
    rng = np.random.default_rng(seed)
    ref = GAUSS.generate(n_events=n, theta={}, options=ref_opts, rng=rng)
    tgt = GAUSS.generate(n_events=n, theta={}, options=tgt_opts, rng=rng)
    triples, labels = ncr_pairs(reference_reco=ref[:, 1], reference_truth=ref[:, 0],
                                target_reco=tgt[:, 1], target_truth=tgt[:, 0], rng=rng)
    import keras

    keras.utils.set_random_seed(seed)
    model = NCRTrunk().build(
        signature=signature_for(features=triples, names=triple_names(reco=("r",), truth=("t",))),
        output_activation="linear", options={**{k: o.default for k, o in
                                                NCRTrunk.options.items()}, "scheme": scheme})
    fit_classifier(model=model, features=triples, labels=labels, seed=seed,
                   training={"validation_fraction": 0.2, "learning_rate": 2e-3, "patience": 3,
                             "batch_size": 512, "epochs": epochs})
    test = GAUSS.generate(n_events=4000, theta={}, options=ref_opts, rng=rng)
    learned = np.asarray(model.predict({"features": diagonal_triples(
        reco=test[:, 1], truth=test[:, 0]).astype(np.float32)}, verbose=0))[:, 0]
    exact = (GAUSS.log_response(truth=test[:, 0], reco=test[:, 1], options=tgt_opts)
             - GAUSS.log_response(truth=test[:, 0], reco=test[:, 1], options=ref_opts))
    d_ref, d_tgt = ref[:, 1] - ref[:, 0], tgt[:, 1] - tgt[:, 0]
    low, high = np.quantile(np.concatenate([d_ref, d_tgt]), [0.005, 0.995])
    edges = np.linspace(float(low), float(high), 21)
    counts_ref, counts_tgt = np.histogram(d_ref, edges)[0], np.histogram(d_tgt, edges)[0]
    index = np.clip(np.searchsorted(edges, test[:, 1] - test[:, 0]) - 1, 0, 19)
    binned = np.log(np.maximum(counts_tgt, 1) / np.maximum(counts_ref, 1))[index]
    return learned, exact, binned


def _bulk_rms(estimate: np.ndarray, exact: np.ndarray) -> float:
    """RMS of estimate − exact over the central 98% of exact log w (both samples populated)."""
    bulk = (exact > np.quantile(exact, 0.01)) & (exact < np.quantile(exact, 0.99))
    return float(np.sqrt(np.mean((estimate[bulk] - exact[bulk]) ** 2)))


def test_trunk_learns_the_analytic_conditional_ratio() -> None:
    """ncr_trunk + ncr loss reach log q(r|t)/p(r|t) on a small Gaussian (2·10⁴ events each).

    Tolerance: the RMS error of a 20-bin histogram estimate in d = r − t from the same
    events (statistics + binning, with the advantage of knowing the ratio depends on d
    only). The network adds initialisation/optimisation noise on top of the statistics:
    over seeds 3, 4, 5 its RMS was 1.6, 1.7 and 2.2 times the histogram's, so the bound
    is 3 times. A wrong pairing or sign gives an RMS of order std(exact) ≈ 0.43, about
    five times the histogram error, and fails.
    """
    learned, exact, binned = _conditional_gaussian_fit(n=20_000, scheme="nominal", epochs=8,
                                                       seed=3)
    rms, rms_binned = _bulk_rms(learned, exact), _bulk_rms(binned, exact)
    assert rms < 3 * rms_binned, (rms, rms_binned)
    assert np.std(exact) > 3 * rms


@pytest.mark.slow
@pytest.mark.parametrize("scheme", ["nominal", "1f-2NN", "1f"])
def test_every_ncr_scheme_learns_the_ratio_with_more_data(scheme: str) -> None:
    """10⁵ events per class, each NCR scheme: same criterion as the fast test."""
    learned, exact, binned = _conditional_gaussian_fit(n=100_000, scheme=scheme, epochs=15,
                                                       seed=5)
    assert _bulk_rms(learned, exact) < 3 * _bulk_rms(binned, exact)


# ---------------------------------------------------------------------------------------
# Source (ncr.md Sec. III)
# ---------------------------------------------------------------------------------------
def test_source_conforms() -> None:
    check_plugin(GAUSS, kind="source", options=_source_options(hole_centre=0.5,
                                                               hole_half_width=0.2))


def test_source_moments_without_hole() -> None:
    """n = 2·10⁵: sample means within 5σ/√n, widths within 5σ/√(2n)."""
    opts = _source_options(mean=0.3, width=1.8, bias=0.2, resolution=0.3)
    n = 200_000
    x = GAUSS.generate(n_events=n, theta={}, options=opts, rng=np.random.default_rng(4))
    truth, smear = x[:, 0], x[:, 1] - x[:, 0]
    for values, mean, width in ((truth, 0.3, 1.8), (smear, 0.2, 0.3)):
        assert abs(values.mean() - mean) < 5 * width / np.sqrt(n)
        assert abs(values.std() - width) < 5 * width / np.sqrt(2 * n)
    assert abs(np.corrcoef(truth, smear)[0, 1]) < 5 / np.sqrt(n)


def test_source_hole_is_exact_and_densities_are_normalised() -> None:
    """ncr.md Eq. 34: no event in the hole; the mean of T matches the truncated density's
    (numerical integral) within 5σ/√n; truth and reco densities integrate to 1."""
    opts = _source_options(mean=0.0, width=1.5, hole_centre=1.75, hole_half_width=0.25,
                           bias=0.2, resolution=0.3)
    n = 200_000
    x = GAUSS.generate(n_events=n, theta={}, options=opts, rng=np.random.default_rng(5))
    assert not np.any(np.abs(x[:, 0] - 1.75) < 0.25)
    assert np.any(np.abs(x[:, 0] - 1.75) < 0.3)  # the hole edge is populated

    def density(t: float) -> float:
        return float(np.exp(GAUSS.log_truth_density(truth=np.array([t]), options=opts))[0])

    pieces = [(-12.0, 1.5), (1.5, 2.0), (2.0, 12.0)]
    norm = sum(integrate.quad(density, a, b)[0] for a, b in pieces)
    mean = sum(integrate.quad(lambda t: t * density(t), a, b)[0] for a, b in pieces)
    assert abs(norm - 1) < 1e-6
    assert abs(x[:, 0].mean() - mean) < 5 * 1.5 / np.sqrt(n)
    grid = np.linspace(-12, 12, 20001)
    reco_norm = np.trapezoid(np.exp(GAUSS.log_reco_density(reco=grid, options=opts)), grid)
    assert abs(reco_norm - 1) < 1e-6
    # The reco density against the sample: the fraction in [1.2, 2.2] within 5 binomial σ.
    mask = (grid >= 1.2) & (grid <= 2.2)
    expected = np.trapezoid(np.exp(GAUSS.log_reco_density(reco=grid[mask], options=opts)),
                            grid[mask])
    observed = np.mean((x[:, 1] >= 1.2) & (x[:, 1] <= 2.2))
    assert abs(observed - expected) < 5 * np.sqrt(expected * (1 - expected) / n)


def test_source_refuses_bad_options() -> None:
    with pytest.raises(ValueError, match="positive") as err:
        GAUSS.check(options=_source_options(width=0.0), theta={})
    assert err.value.field == "width"  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="hole"):
        GAUSS.check(options=_source_options(hole_half_width=10.0), theta={})


# ---------------------------------------------------------------------------------------
# Study and specs
# ---------------------------------------------------------------------------------------
def test_chi2_of_two_samples_of_one_distribution_is_about_one() -> None:
    """χ²/ndf with 40 bins has standard deviation sqrt(2/40) ≈ 0.22; allow 5 of those."""
    rng = np.random.default_rng(6)
    edges = np.linspace(-3, 3, 41)
    value = chi2_per_ndf(values=rng.normal(size=50_000), weights=np.ones(50_000),
                         target=rng.normal(size=50_000), edges=edges)
    assert abs(value - 1) < 5 * np.sqrt(2 / 40)
    shifted = chi2_per_ndf(values=rng.normal(0.1, 1, 50_000), weights=np.ones(50_000),
                           target=rng.normal(size=50_000), edges=edges)
    assert shifted > 1 + 5 * np.sqrt(2 / 40)


TINY = """
seed: 4
samples:
  I: {source: ncr_gaussian, n_events: 3000, options: {resolution: 0.5, hole_centre: 1.0,
      hole_half_width: 0.3}}
  II: {source: ncr_gaussian, n_events: 3000, options: {bias: 0.2, resolution: 0.3,
       hole_centre: 1.0, hole_half_width: 0.3}}
  III: {source: ncr_gaussian, n_events: 3000, options: {mean: 0.3, width: 1.3, bias: 0.2,
        resolution: 0.3}}
  target: {source: ncr_gaussian, n_events: 3000, options: {mean: 0.3, width: 1.3,
           resolution: 0.5}}
studies:
  tiny:
    study: ncr
    options: {sample_I: I, sample_II: II, sample_III: %s, target: target,
              schemes: %s, members: 2, epochs: 2, batch_size: 500, bins: 20}
"""


def test_study_check_and_spec_errors() -> None:
    check_plugin(NCRStudy(), kind="study", options={"sample_I": "I", "sample_II": "II",
                                                    "sample_III": "III", "target": "target"})
    with pytest.raises(SpecError) as err:
        load_spec_text(TINY % ("nope", "[nominal]"), path="n.yaml")
    assert "studies.tiny.options.sample_III" in str(err.value) and "nope" in str(err.value)
    with pytest.raises(SpecError, match=r"studies\.tiny\.options\.schemes.*unknown scheme"):
        load_spec_text(TINY % ("III", "[nominal, 3f]"), path="n.yaml")
    with pytest.raises(SpecError, match="sample_I"):
        load_spec_text((TINY % ("III", "[nominal]")).replace("sample_I: I, ", ""),
                       path="n.yaml")


def test_every_scheme_runs_end_to_end_reproducibly(tmp_path: Path) -> None:
    spec = load_spec_text(TINY % ("III", "[nominal, 1f-2NN, 1f, 2f]"), path="t.yaml")
    first: Any = run_spec(spec, tmp_path / "a")["studies"]["tiny"]
    for method in ("marginal", "nominal", "1f-2NN", "1f", "2f"):
        scores = first["summary"][method]
        assert np.isfinite(scores["chi2_ndf_reco"]["mean"])
        assert 0 < scores["ess_fraction"]["mean"] <= 1
        assert "rms_log_w_error" in scores  # all samples are ncr_gaussian: exact log w known
    assert set(first["exact_weights"]) == {"marginal", "conditional"}
    assert first["n_train"]["sample_I"] == 1500 and first["n_test"]["target"] == 3000
    outdir = tmp_path / "a" / "studies" / "tiny"
    assert (outdir / "marginal_vs_conditional.png").stat().st_size > 0
    assert (outdir / "schemes.png").stat().st_size > 0
    again: Any = run_spec(load_spec_text(TINY % ("III", "[nominal]"), path="t.yaml"),
                          tmp_path / "b")["studies"]["tiny"]
    # Same seed → same numbers (the marginal and nominal trainings do not depend on
    # which other schemes run).
    for method in ("marginal", "nominal"):
        assert again["per_member"][1][method] == first["per_member"][1][method]


@pytest.mark.parametrize("name", ["ncr_overlap", "ncr_extrapolation", "ncr_interpolation",
                                  "ncr_interpolation_schemes", "ncr_small", "ncr_overlap_long",
                                  "ncr_extrapolation_long", "ncr_interpolation_long"])
def test_shipped_specs_validate(name: str) -> None:
    from ratiofit.spec import load_spec

    spec = load_spec(Path(__file__).resolve().parent.parent / "specs" / f"{name}.yaml")
    (study,) = spec.studies
    assert study.study == "ncr" and study.options["members"] >= 2
