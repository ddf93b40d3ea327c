"""Neural conditional reweighting (ncr.md): the ``ncr`` study (ratiofit-papers), its
training loop on ratiofit's ``ncr`` loss and ``ncr_trunk`` architecture, and its specs.

The loss, architecture and source themselves are ratiofit's own: tests/test_ncr.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from ratiofit_papers.studies.ncr import NCRStudy, chi2_per_ndf, fit_classifier, signature_for

from ratiofit.errors import SpecError
from ratiofit.plugins.architectures.ncr_trunk import NCRTrunk
from ratiofit.plugins.losses.ncr import diagonal_triples, ncr_pairs, triple_names
from ratiofit.plugins.sources.ncr_gaussian import NCRGaussian
from ratiofit.spec import load_spec_text
from ratiofit.testing import check_plugin
from ratiofit.workflow import run_spec

SPECS = Path(__file__).resolve().parent.parent / "specs"
GAUSS = NCRGaussian()


def _source_options(**given: float) -> dict[str, float]:
    opts = {"mean": 0.0, "width": 1.0, "hole_centre": 0.0, "hole_half_width": 0.0,
            "bias": 0.0, "resolution": 0.5}
    opts.update(given)
    return opts


# ---------------------------------------------------------------------------------------
# The trunk and loss trained with the study's loop (ncr.md Eq. 13–19, App. A)
# ---------------------------------------------------------------------------------------
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

    spec = load_spec(SPECS / f"{name}.yaml")
    (study,) = spec.studies
    assert study.study == "ncr" and study.options["members"] >= 2
