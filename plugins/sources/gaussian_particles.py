"""Source ``gaussian_particles``: toy jets with a known likelihood ratio.

Each event holds n ~ Poisson(``multiplicity``) particles (at least one), each with a
field ``x`` ~ N(``mean``, ``width``²) and a field ``y`` ~ N(0, 1) that carries no
information. ``multiplicity``, ``mean`` and ``width`` are numbers or parameter names, so
the exact per-event log-density is

    log p(event | θ) = log Poisson(n − 1; λ − 1) + Σᵢ log N(xᵢ; μ, σ²) + Σᵢ log N(yᵢ; 0, 1),

(n − 1 is Poisson with mean λ − 1, which keeps every event non-empty). It exercises the
particle path (padding, masking, bucketing) with a ratio to compare against, and cheaply.
Flat features: ``n_particles`` and ``x_sum``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ratiofit.hookspecs import hookimpl
from ratiofit.options import Option, check_positive
from ratiofit.sampling import resolve_parameter_value


class GaussianParticles:
    name = "gaussian_particles"
    options: Mapping[str, Option] = {
        "multiplicity": Option(kind="number_or_name", default=10.0,
                               doc="mean number of particles λ (> 1): number or parameter"),
        "mean": Option(kind="number_or_name", default=0.0,
                       doc="mean of the particle field x: number or parameter name"),
        "width": Option(kind="number_or_name", default=1.0,
                        doc="standard deviation of x: number or parameter name"),
    }

    def feature_names(self, options: Mapping[str, Any]) -> Sequence[str]:
        return ["n_particles", "x_sum"]

    def check(self, *, options: Mapping[str, Any],
              theta: Mapping[str, tuple[float, float]]) -> None:
        """At validation: a multiplicity and a width > 0 over their parameters' ranges."""
        check_positive(options, theta, "multiplicity")
        check_positive(options, theta, "width")

    def particle_fields(self, options: Mapping[str, Any]) -> Sequence[str]:
        return ["x", "y"]

    def _values(self, theta: Mapping[str, np.ndarray], options: Mapping[str, Any], n: int
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        lam = resolve_parameter_value(options["multiplicity"], theta, n)
        mean = resolve_parameter_value(options["mean"], theta, n)
        width = resolve_parameter_value(options["width"], theta, n)
        if np.any(lam <= 1):
            raise ValueError("option 'multiplicity' must be above 1")
        if np.any(width <= 0):
            raise ValueError("option 'width' must be positive")
        return lam, mean, width

    def generate(self, *, n_events: int, theta: Mapping[str, np.ndarray],
                 options: Mapping[str, Any], rng: np.random.Generator) -> Any:
        import awkward as ak

        from ratiofit.events import EventSet

        lam, mean, width = self._values(theta, options, n_events)
        counts = 1 + rng.poisson(lam - 1)
        total = int(counts.sum())
        x = np.repeat(mean, counts) + np.repeat(width, counts) * rng.standard_normal(total)
        y = rng.standard_normal(total)
        particles = ak.unflatten(ak.zip({"x": x, "y": y}), counts)
        starts = np.cumsum(counts) - counts
        x_sum = np.add.reduceat(x, starts) if total else np.zeros(n_events)
        return EventSet(features=np.stack([counts.astype(np.float64), x_sum], axis=1),
                        feature_names=("n_particles", "x_sum"), particles=particles)

    def event_log_density(self, *, events: Any, theta: Mapping[str, Any],
                          options: Mapping[str, Any]) -> np.ndarray:
        """Exact log p(event | θ) for an EventSet made by this source (up to θ-free terms
        that cancel in ratios: the y fields)."""
        import awkward as ak
        from scipy.special import gammaln

        n = len(events)
        th = {k: np.broadcast_to(np.asarray(v, dtype=np.float64), (n,)) for k, v in theta.items()}
        lam, mean, width = self._values(th, options, n)
        counts = ak.to_numpy(ak.num(events.particles, axis=1))
        k = counts - 1
        log_pois = k * np.log(lam - 1) - (lam - 1) - gammaln(k + 1)
        x = ak.to_numpy(ak.flatten(events.particles["x"]))
        z = (x - np.repeat(mean, counts)) / np.repeat(width, counts)
        per_particle = -0.5 * z * z - np.log(np.repeat(width, counts))
        starts = np.cumsum(counts) - counts
        return log_pois + np.add.reduceat(per_particle, starts)


@hookimpl
def ratiofit_sources() -> list[Any]:
    return [GaussianParticles()]
