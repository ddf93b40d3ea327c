r"""Strategy ``grid_parabola``: a coarse then fine likelihood scan, refined by a parabola.

For one fitted parameter θ the objective is the negative log-likelihood of the data with
the learned density p̂(x|θ) = p(x|θ₀) w(x, θ) / Z(θ) (ensembles.md Eq. 24):

.. math::

    -\log L(\theta) = -\sum_i a_i \log w(x_i, \theta) + \Bigl(\sum_i a_i\Bigr) \log Z(\theta),

with event weights aᵢ and Z(θ) the weighted mean of w over the reference sample (when the
fit has one; otherwise the reweighter's calibration stands in for it).

1. ``coarse`` points over the whole range locate the minimum (no starting value needed,
   no gradient: robust against a bumpy or flat objective);
2. ``fine`` points over ± two grid steps around the current minimum, repeated (each time
   around the new minimum, with the new, smaller step) until at least five fine points lie
   within ``window`` of the minimum, at most ``zooms`` times;
3. a least-squares parabola through those points gives θ̂ = −b/2a and, with errordef ½,
   σ = √(1/(2a)).

A parabola that does not open upwards, or a minimum outside the last scanned interval,
leaves θ̂ at the grid minimum with an undefined error and ``valid = False``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ratiofit.errors import PluginError
from ratiofit.fitting import FitProblem, FitResult
from ratiofit.hookspecs import hookimpl
from ratiofit.options import Option

__all__ = ["GridParabola", "ratiofit_strategies"]


class GridParabola:
    """Grid scan of −log L in one parameter, then a parabola through the minimum."""

    name = "grid_parabola"
    options: Mapping[str, Option] = {
        "coarse": Option(kind="int", default=21, minimum=3, doc="points of the coarse scan"),
        "fine": Option(kind="int", default=15, minimum=3, doc="points of the fine scan"),
        "window": Option(kind="float", default=4.5, minimum=0,
                         doc="fit the parabola to fine points within this Δ(−log L) of "
                         "the minimum (4.5: ±3σ)"),
        "zooms": Option(kind="int", default=4, minimum=1, doc="most fine scans"),
    }

    def objective(self, problem: FitProblem) -> Any:
        """−log L as a function of the fitted parameter's value (plus a trace of calls)."""
        rw, data, ref = problem.reweighter, problem.data, problem.reference
        a = data.event_weights
        trace: list[dict[str, Any]] = []
        name = problem.parameters.names[0]

        def nll(value: float) -> float:
            theta = problem.theta([value])
            if ref is not None:
                lw = rw.log_ratio(features=data, theta=theta, calibrated=False)
                lw_r = rw.log_ratio(features=ref, theta=theta, calibrated=False)
                b = ref.event_weights / ref.event_weights.sum()
                m = float(lw_r.max())
                log_z = m + float(np.log(np.dot(b, np.exp(lw_r - m))))
                out = float(-np.dot(a, lw) + a.sum() * log_z)
            else:
                out = float(-np.dot(a, rw.log_ratio(features=data, theta=theta)))
            trace.append({"theta": {name: float(value)}, "objective": out})
            return out

        nll.trace = trace  # type: ignore[attr-defined]
        return nll

    def fit(self, *, problem: FitProblem, options: Mapping[str, Any]) -> FitResult:
        """Scan, refine and fit the parabola; see the module docstring."""
        names = problem.parameters.names
        if len(names) != 1:
            raise PluginError(f"strategy '{self.name}' fits exactly one parameter, got {names}")
        p = problem.parameters[names[0]]
        nll = self.objective(problem)
        coarse = np.linspace(p.low, p.high, options["coarse"])
        coarse_vals = np.array([nll(v) for v in coarse])
        centre, step = float(coarse[int(np.argmin(coarse_vals))]), float(coarse[1] - coarse[0])
        for _ in range(options["zooms"]):
            lo, hi = max(p.low, centre - 2 * step), min(p.high, centre + 2 * step)
            fine = np.linspace(lo, hi, options["fine"])
            fine_vals = np.array([nll(v) for v in fine])
            j = int(np.argmin(fine_vals))
            near = fine_vals - fine_vals[j] <= options["window"]
            centre, step = float(fine[j]), float(fine[1] - fine[0])
            if near.sum() >= 5:
                break
        best, error, valid = centre, float("nan"), False
        if near.sum() >= 3:
            # Centred and offset, so the least-squares problem is well conditioned.
            a2, a1, _ = np.polyfit(fine[near] - centre, fine_vals[near] - fine_vals[j], 2)
            if a2 > 0 and lo <= centre - a1 / (2 * a2) <= hi:
                best, error, valid = centre - a1 / (2 * a2), float(np.sqrt(0.5 / a2)), True
        objective_min = float(nll(best))
        at_limit = valid and min(best - p.low, p.high - best) < 2 * error
        extra: dict[str, Any] = {
            "coarse": {"axis": coarse.tolist(), "values": coarse_vals.tolist()},
            "fit_points": int(near.sum()),
            "normalisation": "reference" if problem.reference is not None else "calibration"}
        if at_limit:
            extra["at_limit"] = [p.name]
        return FitResult(
            strategy=self.name, names=names, values={p.name: best}, errors={p.name: error},
            covariance=[[error**2]], objective_min=objective_min, valid=valid,
            n_evaluations=len(nll.trace), trace=nll.trace,
            landscape={"names": names, "axes": [fine.tolist()],
                       "values": (2 * (fine_vals - objective_min)).tolist(),
                       "quantity": "2ΔNLL"},
            extra=extra)


@hookimpl
def ratiofit_strategies() -> list[Any]:
    """The strategies of this module."""
    return [GridParabola()]
