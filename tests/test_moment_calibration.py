"""Moment calibration: a tilt a(θ)·T(x) so that the reweighted reference reproduces the
target's feature moments as functions of θ (ratiofit.calibration, module docstring)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import N_PER_CLASS, assert_float32_close, gaussian_events

from ratiofit.calibration import Calibration, Tilt, _moment_match
from ratiofit.errors import DataError
from ratiofit.reweighter import Reweighter


def test_moment_match_reaches_the_target_mean() -> None:
    rng = np.random.default_rng(0)
    stats = rng.normal(size=(5000, 2))
    log_w = 0.3 * stats[:, 0] + rng.normal(scale=0.1, size=5000)
    target = np.array([0.2, -0.1])
    a = _moment_match(log_w, stats, target)
    q = np.exp(log_w + stats @ a - np.max(log_w + stats @ a))
    np.testing.assert_allclose(q @ stats / q.sum(), target, atol=1e-10)


def test_moment_match_refuses_an_unreachable_target() -> None:
    # Every statistic is below 1, so no tilt makes their mean 2.
    stats = np.linspace(-1, 1, 100)[:, None]
    with pytest.raises(DataError, match="did not converge"):
        _moment_match(np.zeros(100), stats, np.array([2.0]))


def _calibration_with_tilt() -> Calibration:
    rng = np.random.default_rng(1)
    exps = Calibration.exponent_list(2, 2)
    tilt = Tilt(moments=2, exponents=exps, coefficients=rng.normal(size=(len(exps), 2)),
                feature_centre=[0.1], feature_scale=[1.3])
    return Calibration(degree=2, exponents=exps, coefficients=rng.normal(size=len(exps)).tolist(),
                       half_width=np.array([2.0, 0.75]), centre=np.array([0.0, 1.25]),
                       measured={}, tilt=tilt)


def test_offset_gradient_matches_finite_differences() -> None:
    cal = _calibration_with_tilt()
    flat = np.random.default_rng(2).normal(size=(7, 1))
    theta = np.array([0.4, 0.9])
    grad = cal.offset_gradient(theta, flat)
    h = 1e-6
    for j in range(2):
        up, down = theta.copy(), theta.copy()
        up[j] += h
        down[j] -= h
        numeric = (cal.offset(np.tile(up, (7, 1)), flat)
                   - cal.offset(np.tile(down, (7, 1)), flat)) / (2 * h)
        np.testing.assert_allclose(grad[:, j], numeric, rtol=1e-6, atol=1e-8)


def test_offset_per_event_theta_matches_one_point() -> None:
    cal = _calibration_with_tilt()
    flat = np.random.default_rng(3).normal(size=(4, 1))
    th = np.array([[0.4, 0.9], [0.4, 0.9], [-1.0, 1.5], [0.4, 0.9]])
    mixed = cal.offset(th, flat)
    one = cal.offset(np.tile(th[0], (4, 1)), flat)
    np.testing.assert_allclose(mixed[[0, 1, 3]], one[[0, 1, 3]], rtol=1e-12)
    np.testing.assert_allclose(mixed[2], cal.offset(th[2:3], flat[2:3])[0], rtol=1e-12)


def test_tilt_round_trips_through_json() -> None:
    cal = _calibration_with_tilt()
    again = Calibration.from_dict(cal.to_dict())
    flat = np.random.default_rng(4).normal(size=(5, 1))
    th = np.tile([0.3, 1.1], (5, 1))
    np.testing.assert_array_equal(again.offset(th, flat), cal.offset(th, flat))


@pytest.fixture(scope="module")
def moment_calibrated(trained_1d: Reweighter) -> tuple[Reweighter, dict]:
    # A new object around the session's model, so the shared fixture keeps its calibration.
    rw = Reweighter(model=trained_1d.model, loss=trained_1d.loss,
                    parameters=trained_1d.parameters, signature=trained_1d.signature,
                    metadata=trained_1d.metadata)
    # The fixture's own training target (same seeds as conftest.trained_1d).
    mu = np.random.default_rng(3).uniform(-2, 2, N_PER_CLASS)
    target = gaussian_events(N_PER_CLASS, mu, seed=2, theta=True)
    reference = gaussian_events(400_000, 0.0, seed=4, theta=False)
    measured = rw.calibrate(reference_features=reference.features, points=21, degree=6,
                            rng=np.random.default_rng(0), moments=1, target=target,
                            moment_degree=3)
    return rw, measured


def test_moment_calibration_reproduces_the_mean(moment_calibrated) -> None:
    rw, measured = moment_calibrated
    assert rw.calibration is not None and rw.calibration.tilt is not None
    moments = measured["moments"]
    assert moments["statistics"] == ["x0^1"]
    # On its own reference the calibrated ratio reproduces the regression's moments up to
    # the polynomial fit of a(θ) (smooth; degree 6 on 21 points), far below the learned
    # ratio's own moment error, which the metadata records for comparison.
    assert moments["max_abs_moment_error_after"] < 1e-3
    assert moments["max_abs_moment_error_after"] < 0.1 * moments["max_abs_moment_error_before"]
    # Independent reference events: the reweighted mean of x must be the true mean μ within
    # the calibration's own noise. The cubic regression of x (unit variance) on μ has sd
    # sqrt(h(μ)), h the leverage φ(μ)ᵀ(ΦᵀΦ)⁻¹φ(μ) of the training target's design; the
    # calibration's and this test's references each add the error of a reweighted mean,
    # sqrt(e^{μ²}(1 + μ²)/n). Bound: 4 sd of the three in quadrature.
    mu_t = np.random.default_rng(3).uniform(-2, 2, N_PER_CLASS) / 2
    design = np.stack([mu_t**k for k in range(4)], axis=1)
    inv = np.linalg.inv(design.T @ design)
    x = gaussian_events(400_000, 0.0, seed=41, theta=False).features
    for mu in (-1.5, -1.0, -0.3, 0.5, 1.0, 1.5):
        phi = (mu / 2) ** np.arange(4)
        mc = np.sqrt(np.exp(mu**2) * (1 + mu**2) / len(x))
        bound = 4 * np.sqrt(phi @ inv @ phi + 2 * mc**2)
        w = rw.weights(features=x, theta={"mu": mu})
        mean = float(w @ x[:, 0] / w.sum())
        assert abs(mean - mu) < bound, (mu, mean, bound)
        # The normalisation is still calibrated (test_statistics' bound for 4·10⁵ events).
        assert abs(np.log(w.mean())) < 5 * np.sqrt(np.expm1(mu**2) / len(x)) + 0.01


def test_moment_calibration_is_kept_by_save_and_load(moment_calibrated, tmp_path: Path) -> None:
    rw, _ = moment_calibrated
    x = np.linspace(-3, 3, 50)[:, None]
    again = Reweighter.load(rw.save(tmp_path / "tilted"))
    assert_float32_close(again.log_ratio(features=x, theta={"mu": 0.7}),
                         rw.log_ratio(features=x, theta={"mu": 0.7}))
    lw, grad = again.log_ratio_and_gradient(features=x, theta={"mu": 0.7})
    np.testing.assert_allclose(lw, rw.log_ratio(features=x, theta={"mu": 0.7}), rtol=1e-6,
                               atol=1e-6)
    # The tilt's θ-derivative is part of the gradient the fits use.
    h = 1e-3
    numeric = (again.log_ratio(features=x, theta={"mu": 0.7 + h})
               - again.log_ratio(features=x, theta={"mu": 0.7 - h})) / (2 * h)
    np.testing.assert_allclose(grad[:, 0], numeric, atol=2e-3)


def test_moment_calibration_needs_a_varied_target(trained_1d: Reweighter) -> None:
    rw = Reweighter(model=trained_1d.model, loss=trained_1d.loss,
                    parameters=trained_1d.parameters, signature=trained_1d.signature)
    fixed = gaussian_events(1000, 0.5, seed=9, theta=True)
    ref = gaussian_events(1000, 0.0, seed=10, theta=False)
    with pytest.raises(DataError, match="varied per event"):
        rw.calibrate(reference_features=ref.features, points=5, degree=2,
                     rng=np.random.default_rng(0), moments=1, target=fixed)
    with pytest.raises(DataError, match="needs the target"):
        rw.calibrate(reference_features=ref.features, points=5, degree=2,
                     rng=np.random.default_rng(0), moments=1)


SPEC = """\
seed: 3
parameters:
  mu: {nominal: 0.0, range: [-2.0, 2.0]}
samples:
  nominal: {source: gaussian, n_events: 20000, options: {mean: mu, width: 1.0}}
  varied: {source: gaussian, n_events: 20000, theta: {mu: uniform},
           options: {mean: mu, width: 1.0}}
reweighter:
  loss: bce
  reference: nominal
  target: varied
  calibration: moments
"""


def test_spec_moment_calibration_goes_through_the_workflow(trained_1d: Reweighter) -> None:
    from ratiofit.registry import get_registry
    from ratiofit.spec import load_spec_text
    from ratiofit.workflow import Samples, calibrate_from_spec

    reg = get_registry()
    spec = load_spec_text(SPEC, registry=reg)
    assert spec.reweighter is not None and spec.reweighter.calibration is not None
    assert spec.reweighter.calibration.method == "moments"
    assert spec.reweighter.calibration.moments == 1
    rw = Reweighter(model=trained_1d.model, loss=trained_1d.loss,
                    parameters=trained_1d.parameters, signature=trained_1d.signature)
    calibrate_from_spec(spec, rw, Samples(spec, reg), member=0)
    assert rw.calibration is not None and rw.calibration.tilt is not None
    moments = rw.metadata["normalisation"]["moments"]
    assert moments["target_events"] == 20000
    assert moments["max_abs_moment_error_after"] < moments["max_abs_moment_error_before"]


def test_moment_regression_error_is_reported(moment_calibrated) -> None:
    # x has unit variance at every μ and the reference's standardisation scale is ≈ 1, so
    # the sandwich error of the cubic regression must equal sqrt(h(μ)) (the leverage, see
    # above) up to the sandwich's own noise (relative sd ≈ sqrt(2/n) per residual moment,
    # well below the 10% allowed).
    _, measured = moment_calibrated
    moments = measured["moments"]
    grid = np.asarray(measured["theta"])[:, 0]
    errors = np.asarray(moments["target_moment_errors"])[:, 0]
    mu_t = np.random.default_rng(3).uniform(-2, 2, N_PER_CLASS) / 2
    design = np.stack([mu_t**k for k in range(4)], axis=1)
    inv = np.linalg.inv(design.T @ design)
    phi = (grid[:, None] / 2) ** np.arange(4)[None, :]
    leverage = np.sqrt(np.einsum("pi,ij,pj->p", phi, inv, phi))
    np.testing.assert_allclose(errors, leverage, rtol=0.1)


def test_moment_regression_weights_by_the_local_variance() -> None:
    from ratiofit.calibration import _moment_regression

    # T = sin(θ) + s(θ) ε with s from 0.1 (θ = 0) to 2 (|θ| = 1): the weighted fit's error at
    # θ = 0 must be well below the unweighted one and match the scatter over repetitions.
    exps = Calibration.exponent_list(1, 4)
    at = Calibration.design(np.array([[0.0]]), exps)
    values, errors, ols_errors = [], [], []
    for seed in range(20):
        rng = np.random.default_rng(seed)
        theta = rng.uniform(-1, 1, size=(20_000, 1))
        scale = 0.1 + 1.9 * theta[:, 0] ** 2
        stat = (np.sin(theta[:, 0]) + scale * rng.normal(size=len(theta)))[:, None]
        m, e, _ = _moment_regression(design=lambda c, th=theta: Calibration.design(th[c], exps),
                                     statistics=lambda c, t=stat: t[c],
                                     weights=np.ones(len(theta)), n_basis=len(exps), k=1,
                                     at=at)
        values.append(m[0, 0])
        errors.append(e[0, 0])
        phi = Calibration.design(theta, exps)
        bread = np.linalg.solve(phi.T @ phi, at[0])
        ols_errors.append(np.sqrt(np.sum((phi @ bread) ** 2 * scale**2)))
    values_arr = np.asarray(values)
    # Unbiased (sin(0) = 0): the mean of 20 fits within 4 standard errors of the mean.
    assert abs(values_arr.mean()) < 4 * np.mean(errors) / np.sqrt(20)
    # The reported error describes the scatter: a 20-sample sd has ≈ 16% relative noise.
    assert 0.6 < values_arr.std(ddof=1) / np.mean(errors) < 1.4
    assert np.mean(errors) < 0.5 * np.mean(ols_errors)
