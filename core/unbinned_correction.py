"""The simulation correction of an unbinned fit (``uncertainty.correction: simulation``).

A learned background model w(x, θ) that is wrong near the fitted point moves every fitted
value by the same amount, whatever the data statistics; where the signal lies in the
background's tail, an error of the learned width dependence is absorbed by the POI. The
bootstrap replicas cannot see such a bias: it is common to every training of the same
network on the same number of events (too few epochs, too small a network). Measured on
``specs/inference_analysis.yaml`` at ``--scale 0.1`` (``python docs/unbinned_bias.py
--summary``: the coverage repeats' data fitted with the exact (mean, width) ratio and with
learned pieces swapped in): the learned reweighter moved μ̂ by −0.59 ± 0.14 on average (27
repeats; a POI error is 1–2) while a learned signal ratio moved it by +0.01 ± 0.02 (35
repeats), and the exact model's μ̂ − truth averaged −0.06 ± 0.15 (100 repeats).

Where the sources can simulate, the fit is therefore repeated on **simulated data at the
fitted point** v̂ (a parametric-bootstrap bias correction):

* each channel's background is the reweighter's target generated at θ̂ (the reweighter's
  parameters at the fitted nuisances, :func:`ratiofit.honest.simulate_at`), every other
  sample a new draw of its own declaration (its own seed, never the events its density
  ratio was trained on);
* ``uncertainty.correction_events`` (K, default 10) events per expected event of the
  fitted model, each component's weights summing to its fitted yield, so the simulated
  set looks like the data's expectation with 1/K of its variance;
* the auxiliary measurements sit at the fitted values (the simulation's truth).

The same model fitted to it gives v_sim = f(v); f(v) − v is the model's bias at the
simulated point v. The corrected value solves f(v) = v̂: starting from v = v̂, one
simulation per step (the same seeds every step, so that steps differ by v alone), with
Broyden's secant Jacobian of f (:mod:`ratiofit.refit_correction`, shared with the binned
fit) — one step where the bias is constant near v̂, a few where it grows with the
parameters (a reweighter whose θ-dependence is 50 % too strong,
tests/test_unbinned_correction.py) or where the learned model's fit sits at a bound.
Measured in the first 21 repeats of the coverage run (docs/coverage.md), a learned
reweighter trained for 6 epochs on 2·10⁴ events put the simulated fits' width nuisance on
its range limit in several repeats, and plain fixed-point steps v ← v + (v̂ − f(v)) had
not converged after 4 simulations in 16 of them.

The errors: the data's statistical error maps through the correction as J⁻¹ (a model
that follows μ at half the rate doubles it);
:meth:`~ratiofit.refit_correction.RefitCorrection.error_scale` scales each parameter's
statistical error by it (shrinking one only where a probe measured J above the noise).
The last simulated fit's noise, mapped the same way, is the ``simulation`` component,
its covariance over K (the weighted events' sandwich covariance I⁻¹·(Σw²/Σw) with equal
weights 1/K, bounded by the fit's covariance over K because the constraints add
curvature but no noise), plus the last step's size where the steps did not converge.
Each bootstrap replica is corrected by its own bias on the simulated set nearest the
corrected point, and its difference from the learned model's one-step correction on that
set is mapped through J⁻¹ as the data's error is
(:meth:`~ratiofit.refit_correction.RefitCorrection.corrected_replica`), so the replicas'
spread is the learned ratio's error of the *corrected* value in its units (before this,
the spread stayed in the learned fit's units, J times too large). A POI below its bound
is simulated at the bound (no negative yields); a learned μ̂ on its bound that the
simulation there returns to is probed like a range limit
(:mod:`ratiofit.refit_correction`), and the POI's intervals run from the bound to the
edge of that span plus the learned upper side.

The CLs, upper limit, impacts and profile scan are computed on the learned model as it
stands; :func:`simulation_correction` reports the POI's bias so that a run can say when
they inherit it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from .events import EventSet
from .refit_correction import RefitCorrection, solve_refit_correction
from .registry import Registry
from .sampling import make_sample
from .seeding import derive_seed
from .spec import SampleSpec, Spec

__all__ = ["UnbinnedCorrection", "cannot_simulate", "simulated_data", "simulation_correction"]

#: At most this many simulated events per channel component.
MAX_EVENTS = 1_000_000


#: The unbinned backend's correction (:class:`ratiofit.refit_correction.RefitCorrection`).
UnbinnedCorrection = RefitCorrection


def cannot_simulate(spec: Spec, registry: Registry) -> str | None:
    """Why the spec's unbinned model cannot be simulated at a fitted point (``None`` where
    it can): every nuisance must be the reweighter trained here, every channel's background
    the reweighter's reference process, and every sample's source must generate."""
    ispec, rws = spec.inference, spec.reweighter
    assert ispec is not None
    if spec.uncertainty.correction != "simulation":
        return "uncertainty.correction is none"
    if rws is None or any(ns.reweighter != "this" for ns in ispec.nuisances.values()):
        return ("a nuisance's reweighter is a saved one: its target sample cannot be "
                "generated at the fitted point")
    ref = spec.samples[rws.reference]

    def reads_files(sample: SampleSpec) -> bool:
        return bool(getattr(registry.get("source", sample.source), "reads_files", False))

    if reads_files(spec.samples[rws.target]):
        return "the reweighter's target sample reads files"
    for cname, cs in ispec.channels.items():
        for name, ss in cs.samples.items():
            sd = spec.samples[ss.sample]
            if name == cs.background:
                if (sd.source, dict(sd.options)) != (ref.source, dict(ref.options)):
                    return (f"channel '{cname}': its background '{ss.sample}' is not the "
                            f"reweighter's reference process '{rws.reference}'")
            elif reads_files(sd):
                return f"channel '{cname}': sample '{ss.sample}' reads files"
    return None


def simulated_data(spec: Spec, registry: Registry, yields: Mapping[str, Mapping[str, float]],
                   theta: Mapping[str, float], *, key: str = "unbinned-correction"
                   ) -> tuple[dict[str, EventSet], dict[str, int]]:
    """Channel → weighted simulated events at the fitted point (module docstring):
    ``yields`` the fitted model's expected events per channel and sample, ``theta`` the
    reweighter's parameters there. Also returns the events drawn per component."""
    from .honest import simulate_at
    from .inference.unbinned_model import concatenate_events

    ispec = spec.inference
    k = spec.uncertainty.correction_events
    assert ispec is not None
    out: dict[str, EventSet] = {}
    counts: dict[str, int] = {}
    for cname, cs in ispec.channels.items():
        parts = []
        for name, ss in cs.samples.items():
            nu = float(yields[cname][name])
            if nu <= 0:
                continue
            n = int(min(MAX_EVENTS, max(1, round(k * nu))))
            if name == cs.background:
                ev = simulate_at(spec, registry, theta, key=f"{key}-{cname}-{name}", n=n)
            else:
                sd = spec.samples[ss.sample]
                ev = make_sample(SampleSpec(name=f"{key}-{sd.name}", source=sd.source,
                                            n_events=n, theta=sd.theta, options=sd.options),
                                 parameters=spec.parameters,
                                 seed=derive_seed(spec.seed, key, cname, name),
                                 registry=registry)
            w = ev.event_weights.astype(np.float64)
            parts.append((ev, w * (nu / float(w.sum()))))
            counts[f"{cname}/{name}"] = len(ev)
        out[cname] = concatenate_events(parts)
    return out, counts


def simulation_correction(spec: Spec, registry: Registry, model: Any, fit: Any, *,
                          replica_models: Sequence[Any] = (),
                          replica_values: Sequence[Mapping[str, float]] = (),
                          fit_model: Callable[..., Any]) -> RefitCorrection:
    """Correct ``fit``'s values for the learned model's bias (module docstring): solve
    f(v) = v̂ for v (:func:`ratiofit.refit_correction.solve_refit_correction`), f(v) the
    learned model's fit of data simulated at v (:func:`simulated_data`, the same seeds
    every step). Each replica model is corrected by its own bias on the last simulated
    set. ``fit_model`` is :func:`ratiofit.inference.unbinned_analysis.fit_model`; where the
    main model's fit of simulated data fails its
    :class:`~ratiofit.inference.InferenceError` is raised, a replica's failure leaves
    ``None`` in :attr:`RefitCorrection.replica_bias`."""
    from .inference.errors import InferenceError

    names = list(model.names)
    simulated: list[dict[str, Any]] = []

    def simulate_fit(point: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
        values = dict(zip(names, point.tolist(), strict=True))
        data, counts = simulated_data(spec, registry, model.expected_yields(values),
                                      model.theta(values))
        centres = {n: values[n] for n in model.constraints}
        sim = fit_model(model, model.nll(data, constraint_centres=centres), start=values)
        got = np.array([sim.value(n) for n in names])
        simulated.append({"point": point, "data": data, "centres": centres, "got": got})
        return got, np.asarray(sim.covariance, dtype=np.float64), counts

    corr = solve_refit_correction(
        names=names, fitted=np.array([float(fit.value(n)) for n in names]),
        errors=np.array([float(fit.error(n)) for n in names]),
        lower=np.array([model.limits[n][0] for n in names]),
        upper=np.array([model.limits[n][1] for n in names]),
        simulate_fit=simulate_fit, events_per_expected=spec.uncertainty.correction_events,
        range_limited=list(model.nuisances), bounded=list(model.pois),
        learned=[*model.nuisances, *model.pois])
    # the replicas' biases on the simulated set nearest the corrected point (in errors;
    # the probes of J and a held parameter's edge simulate farther out)
    scale = np.array([max(float(fit.error(n)), 1e-12) for n in names])
    nearest = min(simulated, key=lambda s: float(np.sum(
        np.square((s["point"] - corr.corrected) / scale))))
    point, data, centres = nearest["point"], nearest["data"], nearest["centres"]
    corr.replica_reference = nearest["got"] - point
    for rmodel, rvalues in zip(replica_models, replica_values, strict=True):
        # the replica's bias on that simulated set, whose truth is ``point``
        try:
            rsim = fit_model(rmodel, rmodel.nll(data, constraint_centres=centres),
                             start={n: float(rvalues[n]) for n in names},
                             minos=False)  # (its values only)
        except InferenceError:
            corr.replica_bias.append(None)
            continue
        corr.replica_bias.append(np.array([rsim.value(n) for n in names]) - point)
    return corr
