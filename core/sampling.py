"""Turn a sample declaration into an :class:`~ratiofit.events.EventSet` via its source plugin."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from .errors import PluginError
from .events import EventSet
from .parameters import ParameterSet
from .registry import Registry, get_registry
from .seeding import derive_rng
from .spec import SampleSpec

__all__ = ["draw_theta", "make_sample", "resolve_parameter_value"]


def draw_theta(sample: SampleSpec, parameters: ParameterSet, n: int, rng: np.random.Generator
               ) -> dict[str, np.ndarray]:
    """Per-event θ for every declared parameter: fixed values or uniform draws."""
    out = {}
    for p in parameters:
        t = sample.theta[p.name]
        if t.kind == "uniform":
            assert t.low is not None and t.high is not None
            out[p.name] = rng.uniform(t.low, t.high, size=n)
        else:
            assert t.value is not None
            out[p.name] = np.full(n, t.value)
    return out


def resolve_parameter_value(value: Any, theta: Mapping[str, np.ndarray], n: int) -> np.ndarray:
    """A source option that is a number or a parameter name → per-event array ``[n]``."""
    if isinstance(value, str):
        return np.asarray(theta[value], dtype=np.float64)
    return np.full(n, float(value))


def make_sample(sample: SampleSpec, *, parameters: ParameterSet, seed: int,
                registry: Registry | None = None) -> EventSet:
    """Generate ``sample``; its random stream depends only on ``seed`` and the sample name."""
    reg = registry or get_registry()
    source = reg.get("source", sample.source)
    rng = derive_rng(seed, "sample", sample.name)
    theta = draw_theta(sample, parameters, sample.n_events, rng)
    try:
        made = source.generate(n_events=sample.n_events, theta=theta, options=sample.options,
                               rng=rng)
        names = tuple(source.feature_names(sample.options))
    except (PluginError, ValueError, KeyError, TypeError) as exc:
        raise PluginError(f"source '{sample.source}' failed for sample '{sample.name}': "
                          f"{type(exc).__name__}: {exc}") from exc
    varied = sample.varied
    particles = None
    if isinstance(made, EventSet):
        if len(made) != sample.n_events:
            raise PluginError(f"source '{sample.source}' made {len(made)} events for sample "
                              f"'{sample.name}', which asked for {sample.n_events}")
        for name in varied:
            if name in made.theta_names:  # θ the generator actually used (e.g. per block)
                theta[name] = made.theta_matrix([name])[:, 0]
        features, names, particles = made.features, made.feature_names, made.particles
        extra_provenance = dict(made.provenance)
    else:
        features, extra_provenance = np.asarray(made), {}
    return EventSet(
        features=features, feature_names=names,
        theta=np.stack([theta[n] for n in varied], axis=1) if varied else None,  # type: ignore[arg-type]
        theta_names=tuple(varied), particles=particles,
        provenance={**extra_provenance, "origin": f"sample '{sample.name}'",
                    "source": sample.source, "options": dict(sample.options), "seed": seed,
                    "sample": sample.name,
                    "theta": {n: (t.__dict__) for n, t in sample.theta.items()}})
