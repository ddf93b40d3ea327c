"""The simulation correction: a one-step estimator that removes the learned ratio's bias.

A fit with a learned ratio finds θ̂ where the *learned* model matches the data; an error
of the learned ratio near θ̂ moves θ̂ by the same amount, whatever the data statistics.
When the source can simulate, one sample at θ₀ = θ̂ removes that bias. With the learned
score s(x) = ∂_θ log w(x, θ₀) as a statistic, the estimating equation

    g(θ) = mean_data[s] − E_θ[s] = 0

is unbiased for *any* s (a method of moments in the statistic s; the simulator supplies
E_θ[s], not the learned ratio). One Newton step from θ₀, with E_θ₀[s] and the Jacobian
−∂_θ E_θ[s] ≈ −Cov_θ₀(s) from the simulated sample, gives

    θ₁ = θ₀ + J⁻¹ (mean_data[s] − mean_sim[s]),   J = Cov_sim(s),

with covariance J⁻¹ (V_data + V_sim) J⁻¹, V_data = Cov_data(s)/N_data and V_sim =
Cov_sim(s)/N_sim for unit weights (for weighted events Σ aᵢ² (sᵢ − m)(sᵢ − m)ᵀ, aᵢ = wᵢ/Σw,
:func:`ratiofit.weights.variance_of_mean`). When s is the true score, J is the Fisher
information and θ₁ is as efficient as the maximum-likelihood estimate up to the simulated
sample's share V_sim; an imperfect s only costs efficiency. The true Jacobian is
∂_θ E_θ[s] = Cov_θ(s, score), which Cov(s) only approximates; the workflow therefore
iterates (a new simulation at each new θ) until a step is below a fifth of an error,
replacing the Jacobian along each step by the simulator's own change of E[s] (a secant,
Broyden's update), and says so when it does not converge. The bootstrap replicas, each
corrected with its own s on the same samples, measure what the learned ratio still adds.

Examples
--------
>>> import numpy as np
>>> from ratiofit.testing import analytic_gaussian_reweighter
>>> from ratiofit.events import EventSet
>>> rng = np.random.default_rng(1)
>>> data = EventSet(features=rng.normal(0.3, 1, (20000, 1)), feature_names=("x0",))
>>> sim = EventSet(features=rng.normal(0.0, 1, (200000, 1)), feature_names=("x0",))
>>> step = one_step(analytic_gaussian_reweighter(), data=data, sim=sim,
...                 theta={"mu": 0.0}, names=["mu"])
>>> bool(abs(step.values[0] - 0.3) < 4 * np.sqrt(step.covariance[0][0]))
True
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .events import EventSet
from .weights import variance_of_mean

__all__ = ["OneStep", "one_step", "score_mean", "secant_jacobian"]


@dataclass
class OneStep:
    """θ₁ (ordered as ``names``) with the data and simulation parts of its covariance."""

    names: list[str]
    theta0: list[float]
    values: list[float]
    covariance_data: list[list[float]]
    covariance_simulation: list[list[float]]
    jacobian: list[list[float]]

    @property
    def covariance(self) -> list[list[float]]:
        return (np.asarray(self.covariance_data)
                + np.asarray(self.covariance_simulation)).tolist()

    def to_dict(self) -> dict[str, Any]:
        return {"names": self.names, "theta0": self.theta0, "values": self.values,
                "covariance_data": self.covariance_data,
                "covariance_simulation": self.covariance_simulation,
                "jacobian": self.jacobian}


def _mean_cov(s: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The weighted mean of ``s``, its weighted covariance and the covariance of the mean
    (Σ aᵢ² (sᵢ − m)(sᵢ − m)ᵀ: Cov/N for unit weights, right also for signed weights)."""
    a = w / w.sum()
    m = a @ s
    c = ((s - m).T * a) @ (s - m)
    return m, np.atleast_2d(c), np.atleast_2d(variance_of_mean(s, w))


def score_mean(reweighter: Any, events: EventSet, theta: Mapping[str, float],
               names: Sequence[str]) -> np.ndarray:
    """The weighted mean over ``events`` of the learned score ∂_θ log w at ``theta``."""
    cols = [reweighter.theta_names.index(n) for n in names]
    _, g = reweighter.log_ratio_and_gradient(features=events, theta=dict(theta))
    return _mean_cov(g[:, cols], events.event_weights)[0]


def secant_jacobian(jacobian: np.ndarray, *, step: np.ndarray, change: np.ndarray
                    ) -> np.ndarray:
    """Broyden's rank-one update of ``jacobian`` so that it maps ``step`` (θ₁ − θ₀) onto
    ``change`` (the simulated mean of one fixed statistic at θ₁ minus that at θ₀): the
    simulator's own ∂_θ E_θ[s] along the step, where Cov(s) is only its approximation."""
    step = np.asarray(step, dtype=np.float64)
    return jacobian + np.outer(np.asarray(change) - jacobian @ step, step) / float(step @ step)


def one_step(reweighter: Any, *, data: EventSet, sim: EventSet, theta: Mapping[str, float],
             names: Sequence[str], jacobian: Any = None) -> OneStep:
    """One Newton step of the simulation's estimating equation from ``theta`` (module
    docstring); ``sim`` is generated at ``theta``, ``names`` are the fitted parameters.
    ``jacobian`` replaces Cov_sim(s) (e.g. a secant update from earlier steps)."""
    cols = [reweighter.theta_names.index(n) for n in names]
    _, g_d = reweighter.log_ratio_and_gradient(features=data, theta=dict(theta))
    _, g_s = reweighter.log_ratio_and_gradient(features=sim, theta=dict(theta))
    m_d, _, v_d = _mean_cov(g_d[:, cols], data.event_weights)
    m_s, c_s, v_s = _mean_cov(g_s[:, cols], sim.event_weights)
    jac = c_s if jacobian is None else np.atleast_2d(np.asarray(jacobian, dtype=np.float64))
    j_inv = np.linalg.inv(jac)
    theta0 = np.array([theta[n] for n in names], dtype=np.float64)
    values = theta0 + j_inv @ (m_d - m_s)
    return OneStep(names=list(names), theta0=theta0.tolist(), values=values.tolist(),
                   covariance_data=(j_inv @ v_d @ j_inv).tolist(),
                   covariance_simulation=(j_inv @ v_s @ j_inv).tolist(),
                   jacobian=jac.tolist())
