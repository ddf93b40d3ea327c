"""The learned ratio's own uncertainty in a fit: bootstrap replicas and the error budget.

A reweighter trained on finite samples is an estimate; a fit that uses it inherits its
error. ratiofit measures that error the way a frequentist would, by repeating what
produced it: ``R`` replicas of the reweighter are retrained on Poisson(1)-weighted
bootstrap replicas of the training samples (Efron's bootstrap with Poisson weights, so
every event keeps its place and only its weight changes), each with its own network
initialisation and shuffling, and each is refitted to the *same* data. The spread of the
replicas' θ̂ is the ``reweighter`` component of the error (training-sample statistics
and training noise together). The data's ``stat`` component is the strategy's own error,
and the ``reference`` component the MC error of the reference sample that normalises
the fit (``extra.mc_stat_covariance`` of the strategy, where it has one).

The components are independent estimates and add as covariances. The reweighter's is
estimated from only ``R`` replicas (``R − 1`` degrees of freedom), so the total's
effective degrees of freedom follow Welch–Satterthwaite,

    ν = (Σ_c s_c²)² / Σ_c (s_c⁴ / ν_c),   ν_stat = ν_reference = ∞,  ν_reweighter = R − 1,

and the reported ``error`` is the half-width of the 68.27 % interval, t_ν(0.8413) · s,
with ``interval_95`` from t_ν(0.975) (GUM, JCGM 100:2008, Annex G). With many replicas
this is the plain standard deviation; with three it is 1.31 s, which is what a 68 %
interval from three replicas must be to cover.

Refitting a replica does not need a full minimisation: its objective differs from the
main one by a small perturbation, so Newton steps from the main θ̂ with the main
objective's Hessian converge in two or three gradient evaluations (checked against a
full refit in the tests). Strategies without a smooth objective are refitted in full,
started at θ̂.

Examples
--------
>>> import numpy as np
>>> b = ErrorBudget(names=["mu"], stat=np.array([[1.0]]), reference=np.zeros((1, 1)),
...                 reweighter=np.array([[1.0]]), replicas=3)
>>> round(float(b.standard_deviation()[0]), 4), round(float(b.dof()[0]), 1)
(1.4142, 8.0)
>>> round(float(b.coverage_factor(0.6827)[0]), 3)
1.067
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from .events import EventSet

__all__ = ["ErrorBudget", "bootstrap", "objective_hessian", "refit"]

#: Two-sided coverage of a ±1σ Gaussian interval.
ONE_SIGMA = 0.682689492137086


def bootstrap(events: EventSet, rng: np.random.Generator) -> EventSet:
    """``events`` with every weight multiplied by an independent Poisson(1) count."""
    counts = rng.poisson(1.0, len(events)).astype(np.float64)
    return replace(events, weights=events.event_weights * counts)


def objective_hessian(gradient: Callable[[np.ndarray], np.ndarray], values: Sequence[float],
                      steps: Sequence[float]) -> np.ndarray:
    """Symmetrised central-difference Hessian from an objective's gradient."""
    x = np.asarray(values, dtype=np.float64)
    p = len(x)
    h = np.zeros((p, p))
    for j in range(p):
        e = np.zeros(p)
        e[j] = steps[j]
        h[:, j] = (np.asarray(gradient(x + e)) - np.asarray(gradient(x - e))) / (2 * steps[j])
    return 0.5 * (h + h.T)


def refit(gradient: Callable[[np.ndarray], np.ndarray], *, start: Sequence[float],
          hessian: np.ndarray, errors: Sequence[float], low: Sequence[float],
          high: Sequence[float], max_steps: int = 6) -> np.ndarray | None:
    """Newton steps θ ← θ − H⁻¹ ∇f(θ) from ``start`` until a step is below 10⁻³ of every
    ``error``; ``None`` when they do not converge or leave the range (refit in full)."""
    x = np.asarray(start, dtype=np.float64)
    h_inv = np.linalg.inv(hessian)
    tol = 1e-3 * np.asarray(errors, dtype=np.float64)
    for _ in range(max_steps):
        step = h_inv @ np.asarray(gradient(x), dtype=np.float64)
        x = x - step
        if np.any(x < np.asarray(low)) or np.any(x > np.asarray(high)):
            return None
        if np.all(np.abs(step) <= tol):
            return x
    return None


@dataclass
class ErrorBudget:
    """Covariance components of a fit, ordered as ``names``.

    ``stat``: the data's statistical covariance; ``reweighter``: the sample covariance of
    ``replicas`` refitted bootstrap replicas (zero when there are none); ``reference``: the
    reference sample's MC covariance.
    """

    names: list[str]
    stat: np.ndarray
    reweighter: np.ndarray
    reference: np.ndarray
    replicas: int
    #: The simulated sample's share (the simulation correction, ratiofit.correction).
    simulation: np.ndarray | None = None

    @classmethod
    def from_replicas(cls, *, names: Sequence[str], stat: Any, reference: Any | None,
                      replica_values: Mapping[str, Sequence[float]],
                      simulation: Any | None = None) -> ErrorBudget:
        p = len(names)
        values = np.array([list(replica_values[n]) for n in names], dtype=np.float64)
        r = values.shape[1] if values.size else 0
        rw = np.atleast_2d(np.cov(values, ddof=1)) if r >= 2 else np.zeros((p, p))
        ref = np.zeros((p, p)) if reference is None else np.asarray(reference, dtype=np.float64)
        sim = np.zeros((p, p)) if simulation is None else np.asarray(simulation, np.float64)
        return cls(names=list(names), stat=np.asarray(stat, dtype=np.float64), reweighter=rw,
                   reference=ref, replicas=r, simulation=sim)

    @property
    def total(self) -> np.ndarray:
        sim = 0.0 if self.simulation is None else self.simulation
        return self.stat + self.reweighter + self.reference + sim

    def standard_deviation(self) -> np.ndarray:
        return np.sqrt(np.clip(np.diag(self.total), 0.0, None))

    def dof(self) -> np.ndarray:
        """Welch–Satterthwaite effective degrees of freedom per parameter (``inf`` when
        the reweighter component is absent)."""
        var_rw = np.diag(self.reweighter)
        tot = np.diag(self.total)
        with np.errstate(divide="ignore", invalid="ignore"):
            nu = np.where(var_rw > 0, tot**2 / (var_rw**2 / max(self.replicas - 1, 1)), np.inf)
        return nu

    def coverage_factor(self, level: float) -> np.ndarray:
        """t_ν quantile over the Gaussian one: the factor that makes ±k·s a ``level``
        interval."""
        from scipy.stats import norm, t

        q = 0.5 + level / 2
        nu = self.dof()
        return np.array([t.ppf(q, n) / norm.ppf(q) if np.isfinite(n) else 1.0 for n in nu])

    def to_fit(self, fit: dict[str, Any]) -> dict[str, Any]:
        """Write the budget into a FitResult dict: every parameter's ``error`` becomes the
        total (68.27 % half-width), with ``error_components``, ``dof`` and ``interval_95``;
        ``covariance`` the total (scaled like the errors), ``covariance_components``."""
        s = self.standard_deviation()
        k68 = self.coverage_factor(ONE_SIGMA)
        k95 = self.coverage_factor(0.95) * 1.959963984540054
        nu = self.dof()
        for i, n in enumerate(self.names):
            entry = fit["parameters"][n]
            entry["error"] = float(k68[i] * s[i])
            entry["error_components"] = {
                "stat": float(np.sqrt(max(self.stat[i, i], 0.0))),
                "reweighter": float(np.sqrt(max(self.reweighter[i, i], 0.0))),
                "reference": float(np.sqrt(max(self.reference[i, i], 0.0)))}
            if self.simulation is not None and np.any(self.simulation):
                entry["error_components"]["simulation"] = float(
                    np.sqrt(max(self.simulation[i, i], 0.0)))
            entry["dof"] = float(nu[i]) if np.isfinite(nu[i]) else None
            v = entry["value"]
            entry["interval_95"] = [float(v - k95[i] * s[i]), float(v + k95[i] * s[i])]
        fit["covariance"] = (self.total * np.outer(k68, k68)).tolist()
        fit["covariance_components"] = {"stat": self.stat.tolist(),
                                        "reweighter": self.reweighter.tolist(),
                                        "reference": self.reference.tolist()}
        if self.simulation is not None and np.any(self.simulation):
            fit["covariance_components"]["simulation"] = self.simulation.tolist()
        fit["error_method"] = (
            f"total = stat + reweighter ({self.replicas} bootstrap replicas) + reference, "
            "68.27% half-width with Welch-Satterthwaite degrees of freedom"
            if self.replicas else "total = stat + reference (no reweighter replicas: the "
            "learned ratio's own error is NOT included)")
        return fit
