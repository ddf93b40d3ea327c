"""Strategy ``dctr``: fit θ by minimising the frozen classifier's cross-entropy (dctr.md Eq. 3).

In ratiofit's convention (label 0 = reference, label 1 = data) with f = σ(log w(x, θ)):

    L(θ) = Σ_ref w'ᵣ softplus(log w(xᵣ, θ)) + Σ_data w_d softplus(−log w(x_d, θ)),

with reference weights w' normalised to the data's total weight (balanced classes, as
in training). Gradients in θ come from TensorFlow; MIGRAD minimises.

L is not a log-likelihood, so its inverse Hessian is not the covariance. The reported
covariance is the sandwich H⁻¹ V H⁻¹ with V the variance of the per-event data
gradients (data statistics); the same with reference-event gradients is reported as the
MC-statistics covariance of the reference sample, and the naive H⁻¹ is kept for comparison.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy.special import expit

from ratiofit.errors import DataError
from ratiofit.fitting import FitProblem, FitResult, Objective, landscape, minimise
from ratiofit.hookspecs import hookimpl
from ratiofit.options import Option


def _softplus(z: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, z)


class DCTR:
    name = "dctr"
    options: Mapping[str, Option] = {
        "landscape_points": Option(kind="int", default=21, minimum=0,
                                   doc="grid points per axis of the plotted landscape (0: none)"),
        "tolerance": Option(kind="float", default=0.5, minimum=0,
                                doc="MIGRAD tolerance (EDM goal 0.002·tol·errordef; float32 "
                                "networks make objectives noisy below ~1e-4)"),
    }

    def _terms(self, problem: FitProblem, values: np.ndarray
               ) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
        """Objective, gradient, per-event data gradients, per-event reference gradients."""
        rw, data, ref = problem.reweighter, problem.data, problem.reference
        assert ref is not None
        cols = [rw.theta_names.index(n) for n in problem.parameters.names]
        theta = problem.theta(values)
        w_d = data.event_weights
        w_r = ref.event_weights * (w_d.sum() / ref.event_weights.sum())
        lw_d, g_d = rw.log_ratio_and_gradient(features=data, theta=theta)
        lw_r, g_r = rw.log_ratio_and_gradient(features=ref, theta=theta)
        value = float(np.dot(w_r, _softplus(lw_r)) + np.dot(w_d, _softplus(-lw_d)))
        per_d = -(w_d * expit(-lw_d))[:, None] * g_d[:, cols]
        per_r = (w_r * expit(lw_r))[:, None] * g_r[:, cols]
        return value, per_d.sum(axis=0) + per_r.sum(axis=0), per_d, per_r

    def objective(self, problem: FitProblem, options: Mapping[str, Any]) -> Objective:
        if problem.reference is None:
            raise DataError("strategy 'dctr' needs a reference sample (fit.reference)")
        return Objective(lambda v: self._terms(problem, v)[:2], problem.parameters.names)

    def fit(self, *, problem: FitProblem, options: Mapping[str, Any]) -> FitResult:
        obj = self.objective(problem, options)
        _, result = minimise(obj, problem, strategy_name=self.name, errordef=0.5,
                             tolerance=options["tolerance"])
        h_inv = np.asarray(result.covariance)
        _, _, per_d, per_r = self._terms(problem, np.array(list(result.values.values())))

        def sandwich(per_event: np.ndarray) -> np.ndarray:
            centred = per_event - per_event.mean(axis=0)
            return h_inv @ (centred.T @ centred) @ h_inv

        cov = sandwich(per_d)
        mc = sandwich(per_r)
        names = result.names
        result.extra.update({
            "error_method": "sandwich H^-1 V H^-1 (data statistics)",
            "hesse_naive_errors": {n: float(np.sqrt(h_inv[i, i])) for i, n in enumerate(names)},
            "mc_stat_errors": {n: float(np.sqrt(mc[i, i])) for i, n in enumerate(names)},
            "mc_stat_covariance": mc.tolist(),
        })
        result.covariance = cov.tolist()
        result.errors = {n: float(np.sqrt(cov[i, i])) for i, n in enumerate(names)}
        if options["landscape_points"]:
            result.landscape = landscape(
                obj, centre=result.values,
                half_width={n: 4 * max(e, 1e-6) for n, e in result.errors.items()},
                parameters=problem.parameters, points=options["landscape_points"])
            result.landscape["quantity"] = "classifier loss"
        result.n_evaluations = len(obj.trace)
        return result


@hookimpl
def ratiofit_strategies() -> list[Any]:
    return [DCTR()]
