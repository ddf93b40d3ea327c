"""Neural conditional reweighting (ncr.md), the parts ratiofit itself ships: loss pairing
and optimum, the ``ncr_trunk`` architecture, the ``ncr_gaussian`` source.

The ``ncr`` study, the trunk trained with its loop, and the specs are in the
ratiofit-papers distribution: examples/ratiofit-papers/tests/test_papers_ncr.py."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate

from ratiofit.errors import DataError
from ratiofit.plugin_api import InputSignature
from ratiofit.plugins.architectures.ncr_trunk import SCHEMES, NCRTrunk
from ratiofit.plugins.losses.ncr import NCRLoss, diagonal_triples, ncr_pairs, triple_names
from ratiofit.plugins.sources.ncr_gaussian import NCRGaussian
from ratiofit.testing import check_plugin

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
