"""Source ``gaussian``: independent Gaussian features with means and widths set by θ.

``mean`` and ``width`` are a number, a parameter name, or a list of those (one per
dimension; a scalar is broadcast to ``dim``). The exact log-density is available, so
closure checks compare learned ratios with the analytic one, e.g. for N(μ, 1)/N(0, 1):
log w = μx − μ²/2 (srgn.md Eq. 10, Eq. 11 for a varied width).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ratiofit.hookspecs import hookimpl
from ratiofit.options import Option, OptionError, check_positive
from ratiofit.sampling import resolve_parameter_value


class Gaussian:
    name = "gaussian"
    options: Mapping[str, Option] = {
        "dim": Option(kind="int", default=1, minimum=1, doc="number of features"),
        "mean": Option(kind="number_or_name_list", default=0.0,
                       doc="mean per dimension: number or parameter name"),
        "width": Option(kind="number_or_name_list", default=1.0,
                        doc="standard deviation per dimension: number or parameter name"),
    }

    def feature_names(self, options: Mapping[str, Any]) -> Sequence[str]:
        return [f"x{i}" for i in range(options["dim"])]

    def check(self, *, options: Mapping[str, Any],
              theta: Mapping[str, tuple[float, float]]) -> None:
        """At validation: one mean and width per dimension (or one for all), and a width
        > 0 over the range of any parameter it follows."""
        mean = options["mean"]
        if isinstance(mean, list) and len(mean) != options["dim"]:
            raise OptionError("mean", f"has {len(mean)} entries; expected dim = "
                                      f"{options['dim']}")
        check_positive(options, theta, "width", length=options["dim"])

    def _moments(self, theta: Mapping[str, np.ndarray], options: Mapping[str, Any], n: int
                 ) -> tuple[np.ndarray, np.ndarray]:
        dim = options["dim"]
        cols = []
        for key in ("mean", "width"):
            vals = options[key] if isinstance(options[key], list) else [options[key]] * dim
            if len(vals) != dim:
                raise ValueError(f"option '{key}' has {len(vals)} entries for dim={dim}")
            cols.append(np.stack([resolve_parameter_value(v, theta, n) for v in vals], axis=1))
        mean, width = cols
        if np.any(width <= 0):
            raise ValueError("option 'width' must be positive")
        return mean, width

    def generate(self, *, n_events: int, theta: Mapping[str, np.ndarray],
                 options: Mapping[str, Any], rng: np.random.Generator) -> np.ndarray:
        mean, width = self._moments(theta, options, n_events)
        return mean + width * rng.standard_normal(size=mean.shape)

    def log_density(self, *, features: np.ndarray, theta: Mapping[str, Any],
                    options: Mapping[str, Any]) -> np.ndarray:
        x = np.asarray(features, dtype=np.float64)
        n = len(x)
        th = {k: np.broadcast_to(np.asarray(v, dtype=np.float64), (n,)) for k, v in theta.items()}
        mean, width = self._moments(th, options, n)
        z = (x - mean) / width
        return np.sum(-0.5 * z * z - np.log(width) - 0.5 * np.log(2 * np.pi), axis=1)


@hookimpl
def ratiofit_sources() -> list[Any]:
    return [Gaussian()]
