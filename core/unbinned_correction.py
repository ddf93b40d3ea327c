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
* ``events_per_expected`` (default 10) events per expected event of the fitted model, each
  component's weights summing to its fitted yield, so the simulated set looks like the
  data's expectation with a tenth of its noise;
* the auxiliary measurements sit at the fitted values (the simulation's truth).

The same model fitted to it gives v_sim = f(v); f(v) − v is the model's bias at the
simulated point v. The corrected value solves f(v) = v̂: starting from v = v̂, one simulation
per step (the same seeds every step, so that steps differ by v alone), with Broyden's
secant Jacobian of f (:func:`simulation_correction`) — one step where the bias is constant
near v̂, a few where it grows with the parameters (a reweighter whose θ-dependence is 50 %
too strong, tests/test_unbinned_correction.py) or where the learned model's fit sits at a
bound. Measured in the first 21 repeats of the coverage run (docs/coverage.md), a learned
reweighter trained for 6 epochs on 2·10⁴ events put the simulated fits' width nuisance on
its range limit in several repeats, and plain fixed-point steps v ← v + (v̂ − f(v)) had not
converged after 4 simulations in 16 of them.

The errors: the data's statistical error maps through the correction as J⁻¹ (a model that
follows μ at half the rate doubles it); :meth:`UnbinnedCorrection.error_scale` widens, never
shrinks, each parameter's statistical error by it. The last simulated fit's noise is the
``simulation`` component, its covariance over ``events_per_expected`` (the weighted events'
sandwich covariance I⁻¹·(Σw²/Σw) with equal weights 1/K, bounded by the fit's covariance
over K because the constraints add curvature but no noise), plus the last step's size
where the steps did not converge. Each bootstrap replica is corrected by its own bias on
the last simulated set, so the replicas' spread is the learned ratio's error of the
*corrected* value. A POI below its bound is simulated at the bound (no negative yields).

The CLs, upper limit, impacts and profile scan are computed on the learned model as it
stands; :func:`simulation_correction` reports the POI's bias so that a run can say when
they inherit it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .events import EventSet
from .registry import Registry
from .sampling import make_sample
from .seeding import derive_seed
from .spec import SampleSpec, Spec

__all__ = ["UnbinnedCorrection", "cannot_simulate", "simulated_data", "simulation_correction"]

#: Simulated events per expected event of the fitted model (the correction's noise is a
#: 1/K share of the data's variance: 10 adds 5 % to a statistical error).
EVENTS_PER_EXPECTED = 10
#: At most this many simulated events per channel component.
MAX_EVENTS = 1_000_000


@dataclass
class UnbinnedCorrection:
    """The outcome of :func:`simulation_correction`: per parameter (model order) the fitted
    value v̂ and the corrected one (the bias of the learned model b = v̂ − corrected);
    ``covariance`` the correction's own (``simulation``)
    covariance; the replicas' biases."""

    names: list[str]
    values: np.ndarray
    corrected: np.ndarray
    covariance: np.ndarray
    events: dict[str, int]
    #: the simulations: the point each was made at and the fitted values there
    steps: list[dict[str, Any]] = field(default_factory=list)
    converged: bool = False
    #: the Jacobian ∂f/∂v of the learned model's fit of simulated data, from the steps
    jacobian: np.ndarray | None = None
    #: per replica its bias, ``None`` where its fit of the simulated data failed
    replica_bias: list[np.ndarray | None] = field(default_factory=list)

    @property
    def bias(self) -> np.ndarray:
        return self.values - self.corrected

    def error_scale(self) -> np.ndarray:
        """Per parameter, how much the data's statistical error grows through the
        correction: |(J⁻¹)ᵢᵢ| where the learned model follows the parameter less than
        one-to-one, at least 1 (never shrunk on a Jacobian from a few noisy steps) and at
        most 3 (a larger one says the steps did not determine J; ``jacobian`` shows it)."""
        p = len(self.names)
        if self.jacobian is None:
            return np.ones(p)
        try:
            inv = np.linalg.inv(self.jacobian)
        except np.linalg.LinAlgError:
            return np.ones(p)
        d = np.abs(np.diag(inv))
        return np.where(np.isfinite(d), np.clip(d, 1.0, 3.0), 1.0)

    def to_dict(self) -> dict[str, Any]:
        err = np.sqrt(np.clip(np.diag(self.covariance), 0.0, None))
        return {"applied": True, "events": self.events,
                "events_per_expected": EVENTS_PER_EXPECTED, "converged": self.converged,
                "steps": self.steps, "error_scale": self.error_scale().tolist(),
                "jacobian": None if self.jacobian is None else self.jacobian.tolist(),
                "parameters": {n: {"fitted": float(v), "bias": float(v - c),
                                   "corrected": float(c), "error": float(e)}
                               for n, v, c, e in zip(self.names, self.values, self.corrected,
                                                     err, strict=True)},
                "replica_bias": [None if b is None else b.tolist()
                                 for b in self.replica_bias]}


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
    assert ispec is not None
    out: dict[str, EventSet] = {}
    counts: dict[str, int] = {}
    for cname, cs in ispec.channels.items():
        parts = []
        for name, ss in cs.samples.items():
            nu = float(yields[cname][name])
            if nu <= 0:
                continue
            n = int(min(MAX_EVENTS, max(1, round(EVENTS_PER_EXPECTED * nu))))
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


#: At most this many simulations (steps) in the correction.
MAX_STEPS = 6
#: A step moves no parameter by more than this many of its errors.
MAX_STEP_ERRORS = 2.0


def simulation_correction(spec: Spec, registry: Registry, model: Any, fit: Any, *,
                          replica_models: Sequence[Any] = (),
                          replica_values: Sequence[Mapping[str, float]] = (),
                          fit_model: Callable[..., Any]) -> UnbinnedCorrection:
    """Correct ``fit``'s values for the learned model's bias (module docstring): solve
    f(v) = v̂ for v, f(v) the learned model's fit of data simulated at v. From v = v̂,
    each step simulates at v (the same seeds every step), fits, and moves by
    J⁻¹(v̂ − f(v)), J the Jacobian of f: the identity at first, then Broyden's rank-one
    update from the steps (the learned model may follow a parameter more or less than
    one-to-one, and a fit at a bound does not follow it at all); no step moves a parameter
    by more than :data:`MAX_STEP_ERRORS` of its errors. It stops when a step would move
    every parameter by less than a fifth of its error, or after :data:`MAX_STEPS`
    simulations (``converged`` False; the last step's size is then added to the
    correction's error). Each replica model is corrected by its own bias on the last
    simulated set. ``fit_model`` is :func:`ratiofit.inference.unbinned_analysis.fit_model`;
    where the main model's fit of simulated data fails its
    :class:`~ratiofit.inference.InferenceError` is raised, a replica's failure leaves
    ``None`` in :attr:`UnbinnedCorrection.replica_bias`."""
    from .inference.errors import InferenceError

    names = list(model.names)
    p = len(names)
    fitted = np.array([float(fit.value(n)) for n in names])
    errors = np.array([float(fit.error(n)) for n in names])
    scale = np.where(errors > 0, errors, np.inf)
    lo = np.array([model.limits[n][0] for n in names])
    hi = np.array([model.limits[n][1] for n in names])
    at = fitted.copy()
    jac = np.eye(p)
    steps: list[dict[str, Any]] = []
    converged = False
    previous: tuple[np.ndarray, np.ndarray] | None = None
    moved = np.zeros(p)
    for _ in range(MAX_STEPS):
        # simulated where the model is defined: a POI below its bound has no events
        point = np.clip(at, lo, hi)
        values = dict(zip(names, point.tolist(), strict=True))
        data, counts = simulated_data(spec, registry, model.expected_yields(values),
                                      model.theta(values))
        centres = {n: values[n] for n in model.constraints}
        sim = fit_model(model, model.nll(data, constraint_centres=centres), start=values)
        got = np.array([sim.value(n) for n in names])
        if previous is not None:
            dv, df = point - previous[0], got - previous[1]
            if float(dv @ dv) > 0:  # Broyden's update of J along the step
                jac = jac + np.outer(df - jac @ dv, dv) / float(dv @ dv)
        previous = (point, got)
        try:
            delta = np.linalg.solve(jac, fitted - got)
        except np.linalg.LinAlgError:
            delta = fitted - got
        if not np.all(np.isfinite(delta)):
            delta = fitted - got
        delta = np.clip(delta, -MAX_STEP_ERRORS * errors, MAX_STEP_ERRORS * errors)
        new = point + delta
        moved = np.abs(new - at)
        steps.append({"at": point.tolist(), "simulated_fit": got.tolist(),
                      "next": new.tolist()})
        at = new
        if np.all(moved <= 0.2 * scale):
            converged = True
            break
    cov = np.asarray(sim.covariance, dtype=np.float64) / EVENTS_PER_EXPECTED
    if not converged:  # still moving: the last step's size is part of the error
        cov = cov + np.diag(np.where(errors > 0, moved, 0.0) ** 2)
    corr = UnbinnedCorrection(names=names, values=fitted, corrected=at,
                              covariance=cov, events=counts, steps=steps, converged=converged,
                              jacobian=jac)
    for rmodel, rvalues in zip(replica_models, replica_values, strict=True):
        # the replica's bias on the last simulated set, whose truth is ``point``
        try:
            rsim = fit_model(rmodel, rmodel.nll(data, constraint_centres=centres),
                             start={n: float(rvalues[n]) for n in names})
        except InferenceError:
            corr.replica_bias.append(None)
            continue
        corr.replica_bias.append(np.array([rsim.value(n) for n in names]) - point)
    return corr
