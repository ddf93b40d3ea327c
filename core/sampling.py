"""Turn a sample declaration into an :class:`~ratiofit.events.EventSet` via its source plugin."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from .errors import DataError, PluginError
from .events import EventSet
from .parameters import ParameterSet
from .registry import Registry, get_registry
from .seeding import derive_rng
from .spec import SampleSpec

__all__ = ["draw_theta", "make_sample", "resolve_parameter_value"]


def draw_theta(sample: SampleSpec, parameters: ParameterSet, n: int, rng: np.random.Generator
               ) -> dict[str, np.ndarray]:
    """Per-event θ for every declared parameter: fixed values or uniform draws (θ read
    from a column, ``kind == "column"``, comes with the source's events instead)."""
    out = {}
    for p in parameters:
        t = sample.theta[p.name]
        if t.kind == "uniform":
            assert t.low is not None and t.high is not None
            out[p.name] = rng.uniform(t.low, t.high, size=n)
        elif t.kind == "fixed":
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
    """Generate (or read) ``sample``; its random stream depends only on ``seed`` and the
    sample name.

    A file sample without ``n_events`` reads every row (the source is called with
    ``n_events=None`` and an empty ``theta``) and keeps the first ``sample.fraction`` of
    them; θ of kind ``column`` is taken from the θ columns of the source's EventSet
    (:data:`~ratiofit.plugin_api.THETA_COLUMNS`), checked against the parameter's range.
    The source's particles, event weights and alternative weights
    (:class:`~ratiofit.events.AltWeights`) are kept.
    """
    reg = registry or get_registry()
    source = reg.get("source", sample.source)
    rng = derive_rng(seed, "sample", sample.name)
    n_asked = sample.n_events
    theta = {} if n_asked is None else draw_theta(sample, parameters, n_asked, rng)
    try:
        made = source.generate(n_events=n_asked, theta=theta, options=sample.options,
                               rng=rng)
        # an EventSet names its features (a file source would open a file again to say)
        names = () if isinstance(made, EventSet) else tuple(
            source.feature_names(sample.options))
    except (PluginError, DataError, ValueError, KeyError, TypeError) as exc:
        # (DataError: e.g. an EventSet the source built with NaN/inf weights)
        raise PluginError(f"source '{sample.source}' failed for sample '{sample.name}': "
                          f"{type(exc).__name__}: {exc}") from exc
    n = len(made)
    if n_asked is not None and n != n_asked:
        raise PluginError(f"source '{sample.source}' made {n} events for sample "
                          f"'{sample.name}', which asked for {n_asked}")
    if n_asked is None:
        if sample.fraction != 1.0:  # --scale below 1 on a sample that reads every row
            n = max(1, round(sample.fraction * n))
            made = made.take(np.arange(n)) if isinstance(made, EventSet) else made[:n]
        theta = draw_theta(sample, parameters, n, rng)  # the fixed values
    varied = sample.varied
    particles = weights = alt_weights = None
    checked: tuple[str, ...] = ()  # the parts whose NaN/inf check is made already
    if isinstance(made, EventSet):
        checked = ("features", "weights", "particles")  # by made's own construction
        for name in varied:
            if name in made.theta_names:  # θ the generator actually used, or read from files
                theta[name] = made.theta_matrix([name])[:, 0]
        features, names, particles = made.features, made.feature_names, made.particles
        weights, alt_weights = made.weights, made.alt_weights
        extra_provenance = dict(made.provenance)
    else:
        features, extra_provenance = np.asarray(made), {}
    for name in varied:
        t = sample.theta[name]
        if t.kind != "column":
            continue
        if name not in theta:
            raise PluginError(f"source '{sample.source}' returned no theta column for "
                              f"'{name}' (sample '{sample.name}' reads it from column "
                              f"'{t.column}'; see ratiofit.plugin_api.Source)")
        assert t.low is not None and t.high is not None
        outside = (theta[name] < t.low) | (theta[name] > t.high)
        if outside.any():
            j = int(np.argmax(outside))
            raise PluginError(f"source '{sample.source}' gave sample '{sample.name}' theta "
                              f"'{name}' = {theta[name][j]:g} at event {j}, outside "
                              f"[{t.low:g}, {t.high:g}]")
    if weights is not None and not float(np.sum(weights)) > 0:
        raise PluginError(f"source '{sample.source}' gave sample '{sample.name}' weights "
                          f"that sum to {float(np.sum(weights)):g}; a sample's total weight "
                          "must be positive")
    return EventSet(
        features=features, feature_names=names,
        theta=np.stack([theta[n] for n in varied], axis=1) if varied else None,  # type: ignore[arg-type]
        theta_names=tuple(varied), particles=particles, weights=weights,
        _finite_checked=checked,
        alt_weights=alt_weights,
        provenance={**extra_provenance, "origin": f"sample '{sample.name}'",
                    "source": sample.source, "options": dict(sample.options), "seed": seed,
                    "sample": sample.name,
                    "theta": {n: (t.__dict__) for n, t in sample.theta.items()}})
