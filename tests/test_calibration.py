"""The calibration averages over the reference with its event weights (ratiofit.calibration):
E_reference[w] of a weighted sample is the weighted mean."""

from __future__ import annotations

import numpy as np
import pytest

from ratiofit.calibration import calibrate
from ratiofit.errors import DataError
from ratiofit.events import EventSet
from ratiofit.testing import analytic_gaussian_reweighter


def _reference(weights: np.ndarray | None, x: np.ndarray) -> EventSet:
    return EventSet(features=x[:, None], feature_names=("x0",), weights=weights)


def test_a_weighted_reference_is_averaged_with_its_weights() -> None:
    """N(0, 1) events weighted by exp(0.3x − 0.045) stand for N(0.3, 1); with the exact
    ratio exp(μx − μ²/2), E[w] over them is exp(0.3μ): log c(μ) = 0.3μ. The unweighted
    mean would give 0. Checked within 5 standard errors of a weighted mean of w (its
    spread estimated from the sample itself)."""
    rw = analytic_gaussian_reweighter(mu_range=(-0.5, 0.5))
    x = np.random.default_rng(3).normal(0.0, 1.0, 100_000)
    w0 = np.exp(0.3 * x - 0.045)
    table = calibrate(rw, reference_features=_reference(w0, x), points=5, degree=2,
                      rng=np.random.default_rng(0), apply=False)
    mu = np.asarray(table["theta"])[:, 0]
    got = np.asarray(table["log_norm"])
    a = w0 / w0.sum()
    for m, c in zip(mu, got, strict=True):
        w = np.exp(m * x - m * m / 2)
        mean = a @ w
        se = np.sqrt(a**2 @ (w - mean) ** 2) / mean  # of log(mean), delta method
        assert abs(c - 0.3 * m) < 5 * se + 1e-12


def test_equal_weights_change_nothing_and_bad_weights_are_refused() -> None:
    rw = analytic_gaussian_reweighter(mu_range=(-0.5, 0.5))
    x = np.random.default_rng(4).normal(0.0, 1.0, 5000)
    plain = calibrate(rw, reference_features=_reference(None, x), points=5, degree=2,
                      rng=np.random.default_rng(0), apply=False)
    doubled = calibrate(rw, reference_features=_reference(np.full(len(x), 2.0), x), points=5,
                        degree=2, rng=np.random.default_rng(0), apply=False)
    assert doubled["log_norm"] == plain["log_norm"]
    # a bootstrap replica's Poisson(1) weights: zeros drop those events
    poisson = np.random.default_rng(5).poisson(1.0, len(x)).astype(np.float64)
    kept = poisson > 0
    replica = calibrate(rw, reference_features=_reference(poisson, x), points=5, degree=2,
                        rng=np.random.default_rng(0), apply=False)
    expanded = calibrate(rw, reference_features=_reference(poisson[kept], x[kept]),
                         points=5, degree=2, rng=np.random.default_rng(0), apply=False)
    np.testing.assert_allclose(replica["log_norm"], expanded["log_norm"], rtol=0, atol=1e-12)
    # negative weights are averaged with their sign (tests/test_weights.py); a total that
    # is not positive is refused in one line
    bad = -np.ones(len(x))
    bad[7] = 1.0
    with pytest.raises(DataError, match="total weight must be positive") as info:
        calibrate(rw, reference_features=_reference(bad, x), points=5, degree=2,
                  rng=np.random.default_rng(0), apply=False)
    assert "\n" not in str(info.value)
