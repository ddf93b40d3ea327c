"""Strategy ``scan``: evaluate another strategy's objective on a grid over the full range.

The objective comes from the strategy named in ``objective`` (any strategy exposing an
``objective(problem, options)`` method, e.g. ``likelihood`` or ``dctr``). The value is the
grid minimum refined by a parabola through it and its neighbours along each axis; for a
−log L objective the parabola's curvature gives the error (errordef 0.5).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ratiofit.fitting import FitProblem, FitResult
from ratiofit.hookspecs import hookimpl
from ratiofit.options import Option, resolve_options
from ratiofit.registry import get_registry


class Scan:
    name = "scan"
    options: Mapping[str, Option] = {
        "objective": Option(kind="str", default="likelihood",
                            doc="strategy whose objective is scanned"),
        "points": Option(kind="int", default=41, minimum=3, doc="grid points per axis"),
    }

    def fit(self, *, problem: FitProblem, options: Mapping[str, Any]) -> FitResult:
        inner = get_registry().get("strategy", options["objective"])
        obj = inner.objective(problem, resolve_options(inner.options, {}, where="scan"))
        axes = [np.linspace(p.low, p.high, options["points"]) for p in problem.parameters]
        mesh = np.meshgrid(*axes, indexing="ij")
        flat = np.stack([g.ravel() for g in mesh], axis=1)
        vals = np.array([obj.value(row) for row in flat]).reshape(mesh[0].shape)
        idx = np.unravel_index(int(np.argmin(vals)), vals.shape)
        values, errors = {}, {}
        for k, p in enumerate(problem.parameters):
            i = int(np.clip(idx[k], 1, len(axes[k]) - 2))
            sl: list[Any] = list(idx)
            sl[k] = slice(i - 1, i + 2)
            a, b, _ = np.polyfit(axes[k][i - 1:i + 2], vals[tuple(sl)], 2)
            best = -b / (2 * a) if a > 0 else axes[k][idx[k]]
            values[p.name] = float(np.clip(best, p.low, p.high))
            errors[p.name] = float(np.sqrt(0.5 / a)) if a > 0 else float("nan")
        names = problem.parameters.names
        cov = np.diag([errors[n] ** 2 for n in names])
        return FitResult(
            strategy=self.name, names=names, values=values, errors=errors, covariance=cov.tolist(),
            objective_min=float(vals.min()), valid=bool(np.all(np.isfinite(list(errors.values())))),
            n_evaluations=len(obj.trace), trace=obj.trace,
            landscape={"names": names, "axes": [a.tolist() for a in axes],
                       "values": (vals - vals.min()).tolist(),
                       "quantity": f"Δ {options['objective']} objective"},
            extra={"objective": options["objective"]})


@hookimpl
def ratiofit_strategies() -> list[Any]:
    return [Scan()]
