"""Strategy ``likelihood``: θ̂ = argmin −Σᵢ wᵢ log w(xᵢ, θ) (ensembles.md Eq. 24).

With a normalised ratio (E_reference[w] = 1, see the Reweighter's calibration) this is
the log-likelihood of the data up to a θ-independent constant, so HESSE with
errordef = 0.5 gives the usual errors; MINOS intervals and a likelihood landscape
(2ΔNLL around the minimum) are reported too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ratiofit.fitting import FitProblem, FitResult, Objective, landscape, minimise
from ratiofit.hookspecs import hookimpl
from ratiofit.options import Option


class Likelihood:
    name = "likelihood"
    options: Mapping[str, Option] = {
        "minos": Option(kind="bool", default=True, doc="compute MINOS intervals"),
        "landscape_points": Option(kind="int", default=21, minimum=0,
                                   doc="grid points per axis of the plotted landscape (0: none)"),
        "tolerance": Option(kind="float", default=0.5, minimum=0,
                                doc="MIGRAD tolerance (EDM goal 0.002·tol·errordef; float32 "
                                "networks make objectives noisy below ~1e-4)"),
    }

    def objective(self, problem: FitProblem, options: Mapping[str, Any]) -> Objective:
        rw, data = problem.reweighter, problem.data
        cols = [rw.theta_names.index(n) for n in problem.parameters.names]
        w = data.event_weights

        def nll(values: np.ndarray) -> tuple[float, np.ndarray]:
            lw, grad = rw.log_ratio_and_gradient(features=data.features,
                                                 theta=problem.theta(values))
            return float(-np.dot(w, lw)), -(w @ grad[:, cols])

        return Objective(nll, problem.parameters.names)

    def fit(self, *, problem: FitProblem, options: Mapping[str, Any]) -> FitResult:
        obj = self.objective(problem, options)
        _, result = minimise(obj, problem, strategy_name=self.name, errordef=0.5,
                             minos=options["minos"], tolerance=options["tolerance"])
        if options["landscape_points"]:
            land = landscape(obj, centre=result.values,
                             half_width={n: 4 * max(e, 1e-6) for n, e in result.errors.items()},
                             parameters=problem.parameters, points=options["landscape_points"])
            land["values"] = (2 * (np.asarray(land["values"]) - result.objective_min)).tolist()
            land["quantity"] = "2ΔNLL"
            result.landscape = land
        return result


@hookimpl
def ratiofit_strategies() -> list[Any]:
    return [Likelihood()]
