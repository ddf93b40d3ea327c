"""Fits of θ: the problem a strategy receives, the result it returns, and shared machinery.

A strategy plugin turns a :class:`FitProblem` into a :class:`FitResult`. Strategies
that minimise a smooth objective build an :class:`Objective` (value and gradient in θ)
and call :func:`minimise`, which runs iminuit's MIGRAD within the parameter ranges and
HESSE (and MINOS on request) and records every evaluation in the trace.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .events import EventSet
from .parameters import ParameterSet
from .reweighter import AveragedReweighter, Reweighter
from .weights import check_weights

__all__ = ["FitProblem", "FitResult", "Objective", "landscape", "minimise"]


@dataclass
class FitProblem:
    """Everything a strategy needs.

    Parameters
    ----------
    reweighter
        The frozen reweighter w(x, θ).
    data
        The events θ is fitted to (label 1 in DCTR's classifier).
    reference
        The nominal sample the reweighter maps from (label 0), when the strategy needs it.
    parameters
        The fitted parameters; every other θ of the reweighter stays at ``fixed``.
    fixed
        Values of the reweighter's θ that are not fitted.
    start
        Starting values (default: nominal).
    seed
        For strategies with random steps.
    """

    reweighter: Reweighter | AveragedReweighter
    data: EventSet
    reference: EventSet | None
    parameters: ParameterSet
    fixed: dict[str, float] = field(default_factory=dict)
    start: dict[str, float] = field(default_factory=dict)
    seed: int = 0

    def __post_init__(self) -> None:
        # weights given through the Python API: finite with a positive total (samples from
        # a spec were checked when they were made; negative weights are allowed)
        for role, events in (("data", self.data), ("reference", self.reference)):
            if events is not None and events.weights is not None:
                origin = (events.provenance or {}).get("origin", "events")
                check_weights(events.weights, n=len(events), what=f"fit {role} {origin}")

    def theta(self, values: Sequence[float]) -> dict[str, float]:
        """Fitted values (in ``parameters`` order) plus the fixed ones → named θ."""
        out = dict(self.fixed)
        out.update({p.name: float(v) for p, v in zip(self.parameters, values, strict=True)})
        return out

    def start_values(self) -> list[float]:
        return [self.start.get(p.name, p.nominal) for p in self.parameters]


@dataclass
class FitResult:
    """Typed result of a fit.

    ``values``/``errors`` are keyed by parameter name; ``covariance`` is ordered as
    ``names``. ``trace`` lists every objective evaluation (θ, value); ``landscape`` holds
    plot data (grid axes and objective values), drawn separately by :mod:`ratiofit.report`.
    """

    strategy: str
    names: list[str]
    values: dict[str, float]
    errors: dict[str, float]
    covariance: list[list[float]]
    objective_min: float
    valid: bool
    n_evaluations: int
    minos: dict[str, tuple[float, float]] = field(default_factory=dict)
    trace: list[dict[str, Any]] = field(default_factory=list)
    landscape: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def value(self, name: str) -> float:
        """The fitted value of ``name`` (:class:`ratiofit.results.ParameterFit`)."""
        return float(self.values[name])

    def error(self, name: str) -> float:
        """The error of ``name`` (:class:`ratiofit.results.ParameterFit`)."""
        return float(self.errors[name])

    def to_dict(self) -> dict[str, Any]:
        params = {}
        for n in self.names:
            entry: dict[str, Any] = {"value": self.values[n], "error": self.errors[n]}
            if n in self.minos:
                entry["minos"] = list(self.minos[n])
            params[n] = entry
        return {"strategy": self.strategy, "parameters": params, "names": self.names,
                "covariance": self.covariance, "objective_min": self.objective_min,
                "valid": self.valid, "n_evaluations": self.n_evaluations,
                "trace": self.trace, "landscape": self.landscape, "extra": self.extra}


class Objective:
    """A scalar objective of the fitted θ with its gradient, recording a trace.

    ``function(values) -> (value, gradient)`` where ``values`` follows the fitted
    parameter order.
    """

    def __init__(self, function: Callable[[np.ndarray], tuple[float, np.ndarray]],
                 names: Sequence[str]) -> None:
        self._function = function
        self.names = list(names)
        self.trace: list[dict[str, Any]] = []
        self._cache: tuple[tuple[float, ...], float, np.ndarray] | None = None

    def evaluate(self, values: Sequence[float] | np.ndarray) -> tuple[float, np.ndarray]:
        key = tuple(float(v) for v in values)
        if self._cache is not None and self._cache[0] == key:
            return self._cache[1], self._cache[2]
        value, grad = self._function(np.asarray(key))
        self._cache = (key, float(value), np.asarray(grad, dtype=np.float64))
        self.trace.append({"theta": dict(zip(self.names, key, strict=True)),
                           "objective": float(value)})
        return self._cache[1], self._cache[2]

    def value(self, values: Sequence[float] | np.ndarray) -> float:
        return self.evaluate(values)[0]

    def gradient(self, values: Sequence[float] | np.ndarray) -> np.ndarray:
        return self.evaluate(values)[1]


def minimise(objective: Objective, problem: FitProblem, *, strategy_name: str, errordef: float,
             minos: bool = False, tolerance: float = 0.5) -> tuple[Any, FitResult]:
    """MIGRAD + HESSE (+ MINOS) on ``objective`` within the parameter ranges.

    ``errordef`` is 0.5 for objectives of the form −log L.
    """
    from iminuit import Minuit

    names = problem.parameters.names
    def fcn(values: np.ndarray) -> float:
        return objective.value(values)

    def grad(values: np.ndarray) -> np.ndarray:
        return objective.gradient(values)

    m = Minuit(fcn, np.asarray(problem.start_values(), dtype=np.float64), grad=grad, name=names)
    m.errordef = errordef
    m.tol = tolerance
    # Objectives are sums of float32 network outputs: tell MINUIT their relative precision,
    # or it chases rounding noise with hundreds of function-only calls.
    m.precision = 1e-6
    for p in problem.parameters:
        m.limits[p.name] = (p.low, p.high)
        m.errors[p.name] = p.step / 10
    m.migrad()
    m.hesse()
    minos_out: dict[str, tuple[float, float]] = {}
    if minos and m.valid:
        try:
            m.minos()
            minos_out = {n: (float(m.merrors[n].lower), float(m.merrors[n].upper)) for n in names}
        except RuntimeError:
            minos_out = {}
    # A minimum on a range limit is not a measurement (e.g. a flat objective from a ratio
    # that learned nothing): flag it. MINUIT's HESSE there works in its bounded internal
    # coordinate, whose derivative vanishes at the limit, and reports an error of ~0
    # (docs/results.md once showed a_lund = 0.9000 ± 0.0000); the curvature of the
    # objective itself, from HESSE without limits at the same point, is reported instead.
    at_limit = [p.name for p in problem.parameters
                if min(m.values[p.name] - p.low, p.high - m.values[p.name])
                < max(1e-3 * (p.high - p.low), 2 * float(m.errors[p.name]))]
    cov = np.asarray(m.covariance) if m.covariance is not None else np.full((len(names),) * 2,
                                                                            np.nan)
    if at_limit:
        cov = _inward_covariance(objective, problem, np.asarray(m.values), errordef)
    result = FitResult(
        strategy=strategy_name, names=names,
        values={n: float(m.values[n]) for n in names},
        errors={n: float(np.sqrt(cov[i, i])) for i, n in enumerate(names)},
        covariance=cov.tolist(), objective_min=float(m.fval), valid=bool(m.valid),
        n_evaluations=len(objective.trace), minos=minos_out, trace=objective.trace)
    if at_limit:
        result.extra["at_limit"] = at_limit
    return m, result


def _inward_covariance(objective: Objective, problem: FitProblem, values: np.ndarray,
                       errordef: float) -> np.ndarray:
    """2·errordef·H⁻¹ with H from one-sided gradient differences stepping into the range
    (1e-3 of each range); a non-positive curvature gives an infinite error."""
    p = len(values)
    g0 = objective.gradient(values)
    h = np.zeros((p, p))
    for j, par in enumerate(problem.parameters):
        step = 1e-3 * (par.high - par.low)
        direction = -1.0 if values[j] + step > par.high else 1.0
        x = values.copy()
        x[j] += direction * step
        h[:, j] = (objective.gradient(x) - g0) / (direction * step)
    h = 0.5 * (h + h.T)
    if not np.all(np.isfinite(h)) or np.any(np.linalg.eigvalsh(h) <= 0):
        return np.diag(np.where(np.diag(h) > 0, 2 * errordef / np.abs(np.diag(h)), np.inf))
    return 2 * errordef * np.linalg.inv(h)


def landscape(objective: Objective, *, centre: Mapping[str, float], half_width: Mapping[str, float],
              parameters: ParameterSet, points: int) -> dict[str, Any]:
    """Objective on a grid around ``centre`` (clipped to the parameter ranges) for plotting.

    1-D: ``points`` values; 2-D: a ``points × points`` grid; more dimensions: none.
    """
    names = parameters.names
    if len(names) > 2:
        return {"names": names, "axes": [], "values": []}
    if len(names) == 2:
        points = min(points, 9)  # each grid point is a full pass over the events
    axes = []
    for p in parameters:
        lo = max(p.low, centre[p.name] - half_width[p.name])
        hi = min(p.high, centre[p.name] + half_width[p.name])
        axes.append(np.linspace(lo, hi, points))
    mesh = np.meshgrid(*axes, indexing="ij")
    flat = np.stack([g.ravel() for g in mesh], axis=1)
    vals = np.array([objective.value(row) for row in flat]).reshape(mesh[0].shape)
    return {"names": names, "axes": [a.tolist() for a in axes], "values": vals.tolist()}
