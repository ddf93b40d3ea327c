"""The simulation correction of a binned (pyhf) inference fit.

The binned model's reweighter nuisances enter through templates of the reference sample
reweighted by the learned w(x, θ); where the learned θ dependence is off near θ̂, the fit
moves the nuisances (and, through their correlation, the POI) by the same amount whatever
the data statistics, and the bootstrap replicas' learned-ratio modifiers cannot see it
(the bias is common to every training of the network on the same number of events).
Measured before this correction (docs/coverage.md, ``specs/inference_analysis.yaml`` at
``--scale 0.25``, pyhf exact, 100 repeats): the width nuisance covered its truth in 42 ± 5 %
of the repeats at 68 %, pull width 2.6, with the learned-ratio and non-closure modifiers.

As in the unbinned fit (:mod:`ratiofit.unbinned_correction`), the fitted model is
therefore refitted to **simulated data at a point v** and the corrected values solve
f(v) = v̂ (:func:`ratiofit.refit_correction.solve_refit_correction`). The simulated data
at v:

* per channel, each sample with reweighter nuisances is the reweighter's target generated
  at θ(v) (:func:`ratiofit.honest.simulate_at`), every other sample a new draw of its own
  declaration (its own seed; drawn once, since its shape does not depend on v), each with
  ``uncertainty.correction_events`` (K, default 10) events per expected event, weighted
  to the sample's expected count at v (the model's, with the standard modifiers at v) and
  histogrammed in the channel's bins: the data's expectation at v with 1/K of its
  variance;
* the auxiliary data at v (pyhf's Asimov auxiliary data: each constraint's centre at its
  parameter's value at v).

The samples' totals are the model's own at v: the correction removes a wrong *shape* of
the learned θ dependence, not a wrong normalisation of it (which the reweighter's
calibration sets; a source's events carry no cross-section to compare it with).

v holds the scalar parameters (POIs, reweighter nuisances, lumi, normsys, normfactors);
the per-bin ones (staterror's γ) and the learned-ratio modifiers' are kept at their fitted
values and refitted with the rest. The correction's error (``simulation``) is the last
simulated fit's covariance over K.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .events import EventSet
from .refit_correction import RefitCorrection, solve_refit_correction
from .registry import Registry
from .sampling import make_sample
from .seeding import derive_seed
from .spec import SampleSpec, Spec

__all__ = ["binned_simulation_correction", "corrected_fit", "tracked_parameters"]

#: At most this many simulated events per channel sample.
MAX_EVENTS = 1_000_000


def tracked_parameters(fit: Any, *, learned: Sequence[str] = ()) -> list[str]:
    """The parameters the correction solves for: the fit's scalar free parameters (no
    per-bin ``name[i]`` ones) other than the learned-ratio modifiers' (``learned``)."""
    return [n for n, e in zip(fit.names, fit.errors, strict=True)
            if "[" not in n and n not in learned and e > 0]


def binned_simulation_correction(spec: Spec, registry: Registry, model: Any, fit: Any, *,
                                 channels: Sequence[Any], nuisances: Sequence[Any],
                                 tracked: Sequence[str], flow: str) -> RefitCorrection:
    """Correct the binned ``fit`` of ``model`` (a :class:`ratiofit.inference.BinnedModel`)
    for its learned templates' bias (module docstring). ``channels`` are the
    :class:`ratiofit.inference.Channel` the templates were built from, ``nuisances`` the
    :class:`ratiofit.inference.ReweighterNuisance` (all of the reweighter trained here:
    :func:`ratiofit.unbinned_correction.cannot_simulate` says when the spec allows it),
    ``tracked`` the parameters solved for (:func:`tracked_parameters`). A failed fit of
    the simulated data raises its :class:`~ratiofit.inference.InferenceError`."""
    from .honest import simulate_at
    from .inference import asimov_data, expected_by_sample, histogram_template
    from .inference import fit as binned_fit

    ispec = spec.inference
    k = spec.uncertainty.correction_events
    assert ispec is not None
    pdf = model.model
    cfg = pdf.config
    fitted_all = {n: float(fit.value(n)) for n in fit.names}
    by_name = {ch.name: ch for ch in channels}
    bounds = cfg.suggested_bounds()
    flat = list(cfg.par_names)
    index = [flat.index(n) for n in tracked]
    fixed: dict[str, float] = {}
    for nu in nuisances:
        fixed.update(nu.fixed_theta)
    shapes: dict[tuple[str, str], np.ndarray] = {}

    def histogram(ch: Any, events: EventSet, total: float) -> np.ndarray:
        w = events.event_weights.astype(np.float64)
        return np.asarray(histogram_template(
            events=events, observable=ch.observable, edges=list(ch.edges),
            weights=w * (total / float(w.sum())), flow=flow).values,  # type: ignore[arg-type]
            dtype=np.float64)

    def simulate_fit(point: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
        values = {**fitted_all, **dict(zip(tracked, point.tolist(), strict=True))}
        theta = {**fixed, **{nu.parameter: float(nu.theta(values[nu.name]))
                             for nu in nuisances}}
        per = expected_by_sample(pdf, values)
        main = []
        counts: dict[str, int] = {}
        for cname in cfg.channels:
            ch = by_name[cname]
            sl = cfg.channel_slices[cname]
            observed = np.zeros(sl.stop - sl.start)
            for s in ch.samples:
                nu = float(per[s.name][sl].sum()) if s.name in per else 0.0
                if nu <= 0:
                    continue
                n = int(min(MAX_EVENTS, max(1, round(k * nu))))
                counts[f"{cname}/{s.name}"] = n
                if s.nuisances:
                    ev = simulate_at(spec, registry, theta,
                                     key=f"binned-correction-{cname}-{s.name}", n=n)
                    observed += histogram(ch, ev, nu)
                    continue
                if (cname, s.name) not in shapes:  # its shape does not depend on v
                    sd = spec.samples[ispec.channels[cname].samples[s.name].sample]
                    ev = make_sample(SampleSpec(name=f"binned-correction-{sd.name}",
                                                source=sd.source, n_events=n, theta=sd.theta,
                                                options=sd.options),
                                     parameters=spec.parameters,
                                     seed=derive_seed(spec.seed, "binned-correction", cname,
                                                      s.name),
                                     registry=registry)
                    shapes[(cname, s.name)] = histogram(ch, ev, 1.0)
                observed += nu * shapes[(cname, s.name)]
            main.append(observed)
        aux = asimov_data(pdf, values)[cfg.nmaindata:]
        data = np.concatenate([*main, aux])
        sim = binned_fit(model, data=data, init=values)
        got = np.array([sim.value(n) for n in tracked])
        return got, np.asarray(sim.covariance)[np.ix_(index, index)], counts

    return solve_refit_correction(
        names=tracked, fitted=np.array([fitted_all[n] for n in tracked]),
        errors=np.array([float(fit.error(n)) for n in tracked]),
        lower=np.array([bounds[i][0] for i in index], dtype=np.float64),
        upper=np.array([bounds[i][1] for i in index], dtype=np.float64),
        simulate_fit=simulate_fit, events_per_expected=k,
        range_limited=[nu.name for nu in nuisances],
        bounded=[n for n in tracked if n == ispec.poi],
        # J is one along the POI and the standard modifiers (exact templates)
        learned=[nu.name for nu in nuisances])


def corrected_fit(fitd: dict[str, Any], correction: RefitCorrection,
                  nuisances: Mapping[str, Any], *, poi_bound: float | None = None
                  ) -> dict[str, Any]:
    """``fitd`` (a :meth:`BinnedFitResult.to_dict`) with the tracked parameters' values
    replaced by the corrected ones and their errors by the corrected fit's: the data's
    error (with the learned-ratio modifiers) mapped through the correction
    (:meth:`RefitCorrection.error_scale`) and the correction's own in quadrature; the
    pulls (and θ of the reweighter nuisances) follow. The learned fit's values and errors
    stay in ``learned_values`` / ``learned_errors``.

    Where the POI is corrected, its 68 % and 95 % intervals (``poi_intervals``) are the
    learned fit's ±1 and ±1.96 errors (held at ``poi_bound``, its lower bound) through
    :meth:`RefitCorrection.interval`, the correction's noise in quadrature: around the
    corrected value, or from the bound to the span's edge plus the upper side where the
    learned fit sits on the bound (:mod:`ratiofit.refit_correction`), which ±error around
    the span's middle would not reach."""
    out = dict(fitd)
    names = list(fitd["names"])
    values, errors = list(fitd["values"]), list(fitd["errors"])
    out["learned_values"], out["learned_errors"] = list(values), list(errors)
    grow = correction.error_scale()
    sim = np.sqrt(np.clip(np.diag(correction.covariance), 0.0, None))
    for k, n in enumerate(correction.names):
        i = names.index(n)
        values[i] = float(correction.corrected[k])
        errors[i] = float(np.hypot(grow[k] * errors[i], sim[k]))
    out["values"], out["errors"] = values, errors
    pulls = {}
    for n, pull in fitd["pulls"].items():
        p = dict(pull)
        if n in correction.names:
            i = names.index(n)
            p["value"], p["error"] = values[i], errors[i]
            p["pull"] = (values[i] - p["prefit"]) / p["prefit_error"]
            p["constraint"] = errors[i] / p["prefit_error"]
            if n in nuisances:
                p["theta"] = float(nuisances[n].theta(values[i]))
                p["theta_error"] = float(nuisances[n].sigma * errors[i])
        pulls[n] = p
    out["pulls"] = pulls
    out["correction"] = correction.to_dict()
    poi = fitd.get("poi")
    if poi in correction.names:
        k, i = correction.names.index(poi), names.index(poi)
        v, e = float(correction.values[k]), float(out["learned_errors"][i])
        noise = correction.noise_error(poi)
        low = -np.inf if poi_bound is None else float(poi_bound)
        out["poi_intervals"] = {
            key: [max(low, end) for end in correction.interval(
                poi, learned=(max(low, v - z * e), v + z * e), z=z, extra=noise)]
            for key, z in (("68", 1.0), ("95", 1.959963984540054))}
    return out
