"""Strategy ``likelihood``: maximum likelihood with the learned ratio (ensembles.md Eq. 24).

The learned density of the data is p̂(x|θ) = p(x|θ₀) w(x, θ) / Z(θ). With
``normalisation: reference`` (the default when a reference sample is given) Z(θ) is
the weighted mean of w over the reference sample, evaluated exactly at every θ the
minimiser visits, so

    −log L(θ) = −Σᵢ wᵢ log w(xᵢ, θ) + (Σᵢ wᵢ) log Z(θ) + const.

With ``normalisation: calibration`` the reweighter's stored calibration (a polynomial fit
of log Z(θ) made after training) is used instead and no reference sample is needed. Either
way log w is the calibrated one: with the reference its c(θ) cancels in −log L, and a
moment calibration's tilt a(θ)·T(x) (ratiofit.reweighter) is part of the model.
HESSE with errordef = 0.5 gives the errors; MINOS intervals and a likelihood landscape
(2ΔNLL around the minimum) are reported too.

Weighted data (weights wᵢ, negative ones included): the weighted NLL above is an unbiased
estimating equation, but its inverse Hessian counts Σ w as events, which is the
covariance only for unit weights. For weighted data the reported covariance is the
sandwich H⁻¹ V H⁻¹ with V = Σᵢ wᵢ² uᵢ uᵢᵀ, uᵢ = ∂_θ log w(xᵢ, θ̂) − ∂_θ log Z(θ̂) the
per-event score (the variance of a sum of independent weighted terms); HESSE's H⁻¹ is
kept in ``extra.hesse_naive_errors``, and MINOS intervals, which assume a likelihood,
are left out. Unit-weight data keep HESSE (and MINOS).

With reference normalisation Z(θ) is itself an estimate from N_ref events, so θ̂ carries
a Monte Carlo error from the reference sample. Its covariance is reported as
``extra.mc_stat_covariance`` = H⁻¹ V H⁻¹, where V is the variance of the score term
N_data ∂_θ log Z(θ̂) over reference events (delta method for the ratio of means
Σ aᵣ wᵣ ∂log wᵣ / Σ aᵣ wᵣ), so the user can tell when the reference is too small: at a
shift μ from the nominal of a unit Gaussian this error is about σ_stat · √(e^{μ²}(1 + μ²)
N_data / N_ref).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ratiofit.fitting import FitProblem, FitResult, Objective, landscape, minimise
from ratiofit.hookspecs import hookimpl
from ratiofit.log_normalisation import log_mean_ratio
from ratiofit.options import Option
from ratiofit.weights import variance_of_mean


class Likelihood:
    name = "likelihood"
    options: Mapping[str, Option] = {
        "normalisation": Option(kind="str", default="reference",
                                choices=["reference", "calibration"],
                                doc="Z(θ) from the reference sample at every θ, or from the "
                                "reweighter's calibration"),
        "minos": Option(kind="bool", default=True, doc="compute MINOS intervals"),
        "landscape_points": Option(kind="int", default=21, minimum=0,
                                   doc="grid points per axis of the plotted landscape (0: none)"),
        "tolerance": Option(kind="float", default=0.5, minimum=0,
                            doc="MIGRAD tolerance (EDM goal 0.002·tol·errordef)"),
    }

    @staticmethod
    def _by_reference(problem: FitProblem, options: Mapping[str, Any]) -> bool:
        """Normalise with the reference sample (when one is given) or the calibration."""
        return options.get("normalisation", "reference") == "reference" \
            and problem.reference is not None

    def objective(self, problem: FitProblem, options: Mapping[str, Any]) -> Objective:
        rw, data, ref = problem.reweighter, problem.data, problem.reference
        cols = [rw.theta_names.index(n) for n in problem.parameters.names]
        w = data.event_weights
        by_reference = self._by_reference(problem, options)
        w_ref = ref.event_weights if by_reference and ref is not None else None  # once

        def nll(values: np.ndarray) -> tuple[float, np.ndarray]:
            theta = problem.theta(values)
            # The calibrated ratio throughout: its normalisation c(θ) cancels against
            # log Z(θ) with reference normalisation, and a moment calibration's tilt does not.
            lw, grad = rw.log_ratio_and_gradient(features=data, theta=theta)
            value, gradient = float(-np.dot(w, lw)), -(w @ grad[:, cols])
            if by_reference:
                assert ref is not None
                lw_r, g_r = rw.log_ratio_and_gradient(features=ref, theta=theta)
                log_z, d_log_z = log_mean_ratio(lw_r, weights=w_ref,
                                                gradient=g_r[:, cols])
                assert d_log_z is not None
                value += float(w.sum() * log_z)
                gradient = gradient + w.sum() * d_log_z
            return value, gradient

        return Objective(nll, problem.parameters.names)

    def fit(self, *, problem: FitProblem, options: Mapping[str, Any]) -> FitResult:
        obj = self.objective(problem, options)
        _, result = minimise(obj, problem, strategy_name=self.name, errordef=0.5,
                             minos=options["minos"], tolerance=options["tolerance"])
        by_reference = self._by_reference(problem, options)
        result.extra["normalisation"] = "reference" if by_reference else "calibration"
        w = problem.data.weights
        if w is not None and not np.all(w == 1.0):
            self._weighted_data_covariance(problem, result, by_reference=by_reference)
        if by_reference:
            mc = self._reference_covariance(problem, result)
            result.extra["mc_stat_covariance"] = mc.tolist()
            result.extra["mc_stat_errors"] = {
                n: float(np.sqrt(max(mc[i, i], 0.0))) for i, n in enumerate(result.names)}
        if options["landscape_points"]:
            land = landscape(obj, centre=result.values,
                             half_width={n: 4 * max(e, 1e-6) for n, e in result.errors.items()},
                             parameters=problem.parameters, points=options["landscape_points"])
            land["values"] = (2 * (np.asarray(land["values"]) - result.objective_min)).tolist()
            land["quantity"] = "2ΔNLL"
            result.landscape = land
        return result

    @staticmethod
    def _weighted_data_covariance(problem: FitProblem, result: FitResult, *,
                                  by_reference: bool) -> None:
        """Replace HESSE's covariance by the sandwich H⁻¹ (Σ wᵢ² uᵢ uᵢᵀ) H⁻¹ (module
        docstring), in place."""
        rw, ref = problem.reweighter, problem.reference
        cols = [rw.theta_names.index(n) for n in problem.parameters.names]
        theta = problem.theta([result.values[n] for n in result.names])
        _, g = rw.log_ratio_and_gradient(features=problem.data, theta=theta)
        u = g[:, cols]
        if by_reference:
            assert ref is not None
            lw_r, g_r = rw.log_ratio_and_gradient(features=ref, theta=theta)
            _, d_log_z = log_mean_ratio(lw_r, weights=ref.weights, gradient=g_r[:, cols])
            assert d_log_z is not None
            u = u - d_log_z[None, :]
        w = problem.data.event_weights
        wu = w[:, None] * u
        h_inv = np.asarray(result.covariance)
        cov = h_inv @ (wu.T @ wu) @ h_inv
        result.extra["hesse_naive_errors"] = {
            n: float(np.sqrt(h_inv[i, i])) for i, n in enumerate(result.names)}
        result.extra["error_method"] = ("sandwich H^-1 (sum w^2 u u^T) H^-1 (weighted data; "
                                        "MINOS left out)")
        result.covariance = cov.tolist()
        result.errors = {n: float(np.sqrt(cov[i, i])) for i, n in enumerate(result.names)}
        result.minos = {}

    @staticmethod
    def _reference_covariance(problem: FitProblem, result: FitResult) -> np.ndarray:
        """H⁻¹ V H⁻¹ with V the reference-sample variance of the normalisation score."""
        rw, ref = problem.reweighter, problem.reference
        assert ref is not None
        cols = [rw.theta_names.index(n) for n in problem.parameters.names]
        theta = problem.theta([result.values[n] for n in result.names])
        lw_r, g_r = rw.log_ratio_and_gradient(features=ref, theta=theta)
        a = ref.event_weights / ref.event_weights.sum()
        v = np.exp(lw_r - lw_r.max())  # w up to a constant, which cancels in the ratio
        u = v[:, None] * g_r[:, cols]
        mean_v = float(a @ v)
        ratio = (a @ u) / mean_v
        influence = (u - ratio[None, :] * v[:, None]) / mean_v
        # The variance of the weighted mean Σ aᵢ influenceᵢ, Σ aᵢ² (infl − mean)²: for unit
        # weights the sample variance over N_ref, and right also for signed weights and
        # weights correlated with the influence (:func:`ratiofit.weights.variance_of_mean`)
        var_ratio = variance_of_mean(influence, ref.event_weights)
        n_data = float(problem.data.event_weights.sum())
        h_inv = np.asarray(result.covariance)
        return h_inv @ (n_data**2 * var_ratio) @ h_inv


@hookimpl
def ratiofit_strategies() -> list[Any]:
    return [Likelihood()]
