"""The ``inference`` stage on the unbinned backend (``backend: unbinned``): the spec's
channels as an :class:`~ratiofit.inference.unbinned_model.UnbinnedModel`, fitted with
iminuit.

Each channel's background (the sample listing the reweighter's nuisances) has the density
p_b0(x)·w(x, θ)/Z(θ); every other sample's density is taken relative to it through a θ-free
density ratio r_k(x) = p_k(x)/p_b0(x) — a saved reweighter (``ratio: DIR``) or one trained
here with the reweighter's architecture and loss and ``inference.ratio_training``
(:class:`~ratiofit.spec_sections.RatioTrainingSpec`), labels 0 = the
background sample, 1 = the sample (guide-searches.md Eq. 3.10–3.12, a classifier of S against
B). The fit, CLs, the upper limit and the impacts follow
:mod:`ratiofit.inference.unbinned_analysis`.

The learned ratios' own error: with ``uncertainty.replicas`` ≥ 2, every replica (the
reweighter's bootstrap replica K, and each trained density ratio retrained on Poisson(1)
bootstrap copies of its samples with its own seed) gives its own model, which is refitted
from the best fit; the spread of the fitted values is the ``reweighter`` component of each
parameter's error, added to the fit's own (``stat``) covariance with the Welch–Satterthwaite
t factor (:class:`ratiofit.uncertainty.ErrorBudget`). The reported ``errors`` and pulls are
the totals; ``errors_stat`` keeps the fit's own.

The learned model's bias: a bias common to every training (too few epochs) is invisible
to the replicas. Where the samples can be simulated (``uncertainty.correction:
simulation``, the default), the model is refitted to simulated data at the fitted point
and the reported values are corrected by the offset found there
(:mod:`ratiofit.unbinned_correction`); the learned fit's values stay in
``learned_values``, its POI intervals in ``poi_intervals_stat``, the correction in
``correction``, and its own noise is the ``simulation`` error component.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from .errors import DataError
from .events import EventSet
from .execution import Executor
from .log_normalisation import log_mean_ratio
from .parameters import ParameterSet
from .registry import Registry
from .reweighter import AveragedReweighter, Reweighter
from .seeding import derive_rng, derive_seed
from .spec import Spec
from .uncertainty import ErrorBudget, bootstrap
from .workflow import Samples

__all__ = ["run_unbinned"]


def _train_ratio(spec: Spec, registry: Registry, background: EventSet, target: EventSet, *,
                 key: str, replica: int | None, progress: bool) -> Reweighter:
    """A θ-free density ratio target/background: the reweighter's architecture and loss,
    trained as ``inference.ratio_training`` says."""
    from .training import train_reweighter

    rws = spec.reweighter
    assert rws is not None and spec.inference is not None  # the spec's validation asks

    if replica is None:
        seed = derive_seed(spec.seed, "ratio", key)
    else:
        rng = derive_rng(spec.seed, "ratio-bootstrap", key, replica)
        background, target = bootstrap(background, rng), bootstrap(target, rng)
        seed = derive_seed(spec.seed, "ratio-train", key, replica)
    return train_reweighter(
        reference=background, target=target, parameters=ParameterSet(()),
        architecture=registry.get("architecture", rws.architecture),
        architecture_options=rws.architecture_options, loss=registry.get("loss", rws.loss),
        training=spec.inference.ratio_training, seed=seed, checkpoint_dir=None,
        progress=progress)


def _ratio_closure(background: EventSet, target: EventSet, log_ratio: Any, *,
                   bins: int = 20) -> dict[str, Any]:
    """Does background × r̂ reproduce the target? Per feature, the background's events
    weighted by r̂ (normalised) against the target's, on the target's quantile bins, χ²
    with both Σw² (:func:`ratiofit.closure_gate.chi2_between`'s statistic); ``log_z`` is
    log E_b[r̂], which a calibrated ratio has near 0."""
    from scipy.stats import chi2 as chi2_dist

    lr = np.asarray(log_ratio(background), dtype=np.float64)
    w = background.event_weights * np.exp(lr - lr.max())
    log_z = log_mean_ratio(lr, weights=background.event_weights)[0]  # signed w0 allowed
    chi2, ndf = 0.0, 0
    for j, name in enumerate(target.feature_names):
        if name not in background.feature_names:
            continue
        xb = background.features[:, list(background.feature_names).index(name)]
        xt = target.features[:, j]
        edges = np.unique(np.quantile(xt, np.linspace(0, 1, bins + 1)))
        edges[0], edges[-1] = -np.inf, np.inf
        wt = target.event_weights
        hb, vb = (np.histogram(xb, edges, weights=v)[0] for v in (w, w * w))
        ht, vt = (np.histogram(xt, edges, weights=v)[0] for v in (wt, wt * wt))
        hb, vb = hb / w.sum(), vb / w.sum() ** 2
        ht, vt = ht / wt.sum(), vt / wt.sum() ** 2
        ok = (vb + vt) > 0
        chi2 += float(np.sum((hb - ht)[ok] ** 2 / (vb + vt)[ok]))
        ndf += int(ok.sum()) - 1
    p = float(chi2_dist.sf(chi2, max(ndf, 1)))
    return {"chi2": chi2, "ndf": ndf, "p_value": p, "log_mean_ratio_over_background": log_z}


def _log_ratio(rw: Reweighter) -> Any:
    def log_ratio(events: EventSet) -> np.ndarray:
        return np.asarray(rw.log_ratio(features=events, theta={}), dtype=np.float64)

    return log_ratio


def run_unbinned(spec: Spec, samples: Samples, registry: Registry, *, outdir: Path,
                 this: Reweighter | AveragedReweighter | None, executor: Executor | None = None,
                 progress: bool = False) -> dict[str, Any]:
    """Build, fit and test the unbinned model of the spec's ``inference`` section."""
    from . import inference as inf
    from .inference.unbinned_analysis import (
        fit_model,
        hypotest_model,
        impacts_model,
        profile_scan_model,
        upper_limit_model,
    )
    from .inference.unbinned_model import (
        UnbinnedChannel,
        UnbinnedComponent,
        UnbinnedModel,
        UnbinnedNuisance,
        concatenate_events,
    )
    from .inference_stage import _attempt, _inference_replicas, _tests
    from .refit_correction import correction_warnings
    from .unbinned_correction import cannot_simulate, simulation_correction

    ispec = spec.inference
    assert ispec is not None
    t0 = time.perf_counter()
    source = next(iter(ispec.nuisances.values())).reweighter
    if source == "this":
        if this is None:
            raise DataError("inference: no trained reweighter")
        rw = this
    else:
        d = Path(source)
        rw = Reweighter.load(d / "reweighter" if (d / "reweighter" / "metadata.json").is_file()
                             else d, registry=registry)
    nuisances = [UnbinnedNuisance(name=n, parameter=ns.parameter, nominal=ns.nominal,
                                  sigma=ns.sigma, measured=ns.measured)
                 for n, ns in ispec.nuisances.items()]
    fixed = {n: spec.parameters[n].nominal for n in rw.theta_names if n in spec.parameters}
    warnings: list[str] = []
    ratio_info: dict[str, Any] = {}
    ratios: dict[tuple[str, str], Reweighter] = {}  # (background, sample) → ratio

    def ratio_of(background: str, sample: str, given: str | None, replica: int | None
                 ) -> Reweighter:
        key = (background, sample) if replica is None else (background, f"{sample}#{replica}")
        if key not in ratios:
            t = time.perf_counter()
            if given is not None:
                ratios[key] = Reweighter.load(
                    Path(given) / "reweighter" if (Path(given) / "reweighter" /
                                                   "metadata.json").is_file() else given,
                    registry=registry)
            else:
                ratios[key] = _train_ratio(spec, registry, samples[background],
                                           samples[sample], key=f"{background}/{sample}",
                                           replica=replica, progress=progress)
            if replica is None:
                info: dict[str, Any] = {"given": given} if given is not None else {}
                if given is None:
                    d = outdir / "ratios" / f"{sample}-over-{background}"
                    ratios[key].save(d)
                    info = {"trained": str(d.relative_to(outdir)),
                            "train_seconds": time.perf_counter() - t}
                # the density ratio's closure: a miscalibrated ratio biases μ̂ in a way its
                # bootstrap replicas need not show (at a bound their spread is zero)
                c = _ratio_closure(samples[background], samples[sample],
                                   _log_ratio(ratios[key]))
                info["closure"] = c
                ratio_info[f"{sample}/{background}"] = info
                if c["p_value"] < spec.uncertainty.gate_level:
                    warnings.append(
                        f"the density ratio of '{sample}' to '{background}' does not close: "
                        f"the background weighted by it against '{sample}', chi2/ndf = "
                        f"{c['chi2']:.1f}/{c['ndf']} (p = {c['p_value']:.2g}), log E[r] = "
                        f"{c['log_mean_ratio_over_background']:+.2f}: the unbinned fit's "
                        "signal density is mismodelled and its POI is not to be trusted "
                        "(train the ratio longer or on more events)")
        return ratios[key]

    def build(reweighter: Any, replica: int | None) -> Any:
        channels = []
        for cname, cs in ispec.channels.items():
            background = cs.background
            assert background is not None  # the spec's validation
            bsample = cs.samples[background].sample
            comps = []
            for name, ss in cs.samples.items():
                events = samples[ss.sample]
                y = float(events.event_weights.sum()) if ss.yield_ is None else ss.yield_
                comps.append(UnbinnedComponent(
                    name=name, events=events, yield_=y, poi=ss.poi,
                    log_ratio=None if name == background else _log_ratio(
                        ratio_of(bsample, ss.sample, ss.ratio, replica)),
                    modifiers=tuple(inf.StandardModifier(kind=k, name=n, data=d)  # type: ignore[arg-type]
                                    for k, n, d in ss.modifiers)))
            data = concatenate_events([(samples[d], samples[d].event_weights)
                                       for d in cs.data])
            channels.append(UnbinnedChannel(name=cname, data=data, components=tuple(comps),
                                            nuisances=cs.samples[background].nuisances))
        return UnbinnedModel(channels=channels, reweighter=reweighter, nuisances=nuisances,
                             pois=list(ispec.pois), fixed=fixed)

    model = build(rw, None)
    fit = fit_model(model, intervals=True)
    result: dict[str, Any] = {
        "backend": "unbinned", "mode": "unbinned",
        "model": "extended unbinned likelihood (guide-searches.md Eq. 3.7-3.8): per channel, "
                 "the background density w(x, theta)/Z(theta) times the reference's, the other "
                 "samples' by their density ratios to it; yields with the standard modifiers "
                 "(ratiofit.inference.unbinned_model)",
        "channels": {c: {"data_events": len(ch.data), "samples": [x.name for x in
                                                                  ch.components]}
                     for c, ch in zip(ispec.channels, model.channels, strict=True)},
        "signal_ratios": ratio_info}
    fitd = fit.to_dict()
    fitd["errors_stat"] = list(fitd["errors"])
    # the learned ratios' own error from the replicas (module docstring)
    replicas, replica_info = _inference_replicas(spec, samples, registry, outdir=outdir,
                                                 this=this, executor=executor,
                                                 progress=progress)
    members = next(iter(replicas.values()))
    replica_models: list[Any] = []
    replica_fits: list[dict[str, float]] = []
    for k, rrw in enumerate(members, start=1):
        try:
            rmodel = build(rrw, k)
            rfit = fit_model(rmodel, start={n: fit.value(n) for n in fit.names},
                             minos=False)  # (its values only)
        except inf.InferenceError as exc:
            # one replica's fit that fails leaves its spread out: said, never hidden
            warnings.append(f"replica {k}: {exc}; left out of the learned ratios' error")
            continue
        replica_models.append(rmodel)
        replica_fits.append({n: rfit.value(n) for n in fit.names})
    # the learned model's bias at the fitted point, from simulated data there
    # (ratiofit.unbinned_correction); the replicas corrected the same way
    correction = None
    reason = cannot_simulate(spec, registry)
    if reason is None:
        try:
            correction = simulation_correction(spec, registry, model, fit,
                                               replica_models=replica_models,
                                               replica_values=replica_fits,
                                               fit_model=fit_model)
        except inf.InferenceError as exc:
            reason = f"the fit of the simulated data failed: {exc}"
    values = {n: fit.value(n) for n in fit.names}
    if correction is not None:
        fitd["correction"] = correction.to_dict()
        fitd["learned_values"] = list(fitd["values"])
        values = dict(zip(fit.names, (float(v) for v in correction.corrected), strict=True))
        fitd["values"] = [values[n] for n in fit.names]
        kept = []
        for k, (rv, b) in enumerate(zip(replica_fits, correction.replica_bias, strict=True),
                                    start=1):
            if b is None:
                warnings.append(f"replica {k}: its fit of the simulated data failed; left "
                                "out of the learned ratios' error")
                continue
            # its difference from the learned model mapped through J⁻¹ (the data's
            # error is): in the learned fit's units the spread would be J times too large
            got = correction.corrected_replica(np.array([rv[n] for n in fit.names]), b)
            kept.append({n: float(got[i]) for i, n in enumerate(fit.names)})
        replica_fits = kept
        for n, pull in fitd["pulls"].items():
            pull["value"] = values[n]
            pull["pull"] = (values[n] - pull["prefit"]) / pull["prefit_error"]
            if n in model.nuisances:
                pull["theta"] = model.nuisances[n].theta(values[n])
    else:
        fitd["correction"] = {"applied": False, "reason": reason}
    replica_values: dict[str, list[float]] = {n: [rv[n] for rv in replica_fits]
                                              for n in fit.names}
    stat = fit.covariance
    # the data's error through the correction (J⁻¹, widened; 1 without one)
    grow = np.ones(len(fit.names)) if correction is None else correction.error_scale()
    if correction is not None:
        stat = stat * np.outer(grow, grow)
        warnings.extend(correction_warnings(
            correction, poi=fit.poi, poi_error=fit.poi_error,
            inherit="the CLs, upper limit, impacts and scan",
            theta={n: nu.theta for n, nu in model.nuisances.items()}))
    budget = ErrorBudget.from_replicas(
        names=list(fit.names), stat=stat, reference=None,
        replica_values=replica_values,
        simulation=None if correction is None else correction.covariance)
    holder: dict[str, Any] = {"parameters": {n: {"value": values[n]} for n in fit.names}}
    budget.to_fit(holder)
    # the totals (stat, the replicas' spread where there are 2 or more, the correction's)
    fitd["errors"] = [holder["parameters"][n]["error"] for n in fit.names]
    for n, pull in fitd["pulls"].items():
        e = holder["parameters"][n]["error"]
        pull["error"] = e
        if pull.get("theta") is not None:
            pull["theta_error"] = ispec.nuisances[n].sigma * e
    if len(replica_values[fit.poi]) < 2:
        warnings.append(f"{len(replica_values[fit.poi])} replica fit(s) (uncertainty.replicas "
                        f"= {spec.uncertainty.replicas}): fewer than 2, so the errors leave out "
                        "the learned ratios' own error")
    units = {**dict.fromkeys(ispec.pois, 1.0), **{n: ns.sigma for n, ns in
                                                  ispec.nuisances.items()}}
    fitd["error_components"] = {
        n: {"total": units[n] * holder["parameters"][n]["error"],
            "without_learned_ratio": units[n] * fit.error(n),
            "learned_ratio": units[n] * holder["parameters"][n]["error_components"]
            ["reweighter"],
            "simulation": units[n] * holder["parameters"][n]["error_components"].get(
                "simulation", 0.0),
            "dof": holder["parameters"][n]["dof"]}
        for n in units}
    fitd["replica_values"] = replica_values
    if fit.poi_intervals is not None:
        # the POI's profile-likelihood intervals (fit_model), moved by the simulation
        # correction's bias and each side widened by the learned ratios' and the
        # correction's shares of the error (z·σ in quadrature, z = 1 and 1.96); the ends
        # stay within the POI's bound (the physical region)
        mu = values[fit.poi]
        comps = fitd["error_components"][fit.poi]
        bound = model.limits[fit.poi][0]
        fitd["poi_intervals_stat"] = {k: list(v) for k, v in fit.poi_intervals.items()}
        levels = zip(fit.poi_intervals.items(), (1.0, 1.959963984540054), strict=True)
        if correction is None:
            extra = float(comps["learned_ratio"])
            fitd["poi_intervals"] = {
                k: [max(bound, mu - float(np.hypot(mu - lo, z * extra))),
                    max(bound, mu + float(np.hypot(hi - mu, z * extra)))]
                for (k, (lo, hi)), z in levels}
        else:
            # the sides through the correction's Jacobian, around the corrected value or,
            # for a POI whose learned fit sits on its bound, around the span of values
            # fitted there (RefitCorrection.interval); the correction's noise without
            # that span in quadrature
            noise = correction.noise_error(fit.poi)
            extra = float(np.hypot(comps["learned_ratio"], noise))  # (a POI's unit is 1)
            fitd["poi_intervals"] = {
                k: [max(bound, e) for e in correction.interval(
                    fit.poi, learned=(lo, hi), z=z, extra=extra)]
                for (k, (lo, hi)), z in levels}
    else:
        warnings.append(f"MINOS found no profile-likelihood interval of {fit.poi}: its error "
                        "is HESSE's, symmetric, which under-covers where the likelihood is "
                        "not parabolic")
    result["fit"] = fitd
    result["learned_ratio"] = {"method": "refits with each bootstrap replica of the "
                                         "reweighter and of the trained density ratios",
                               **replica_info}
    result["yields"] = {"prefit": model.expected_yields({}),
                        "postfit": model.expected_yields(
                            {n: fit.value(n) for n in fit.names})}

    limit, ranking = _tests(
        ispec, result, warnings,
        hypotest=lambda poi_value: hypotest_model(
            model, poi_value=poi_value, calctype=ispec.hypotest_calctype,
            ntoys=ispec.hypotest_ntoys, seed=derive_seed(spec.seed, "hypotest"),
            executor=executor),
        upper_limit=lambda: upper_limit_model(model, best=fit),
        impacts=lambda: impacts_model(model, best=fit))
    if ispec.scan:
        mu, err = fit.poi_value, fit.poi_error
        lo, hi = model.limits[ispec.poi]
        points = np.clip(np.linspace(mu - 3 * err, mu + 3 * err, 13), lo, hi)
        result["scan"] = _attempt(warnings, "the profile scan", lambda: profile_scan_model(
            model, [float(v) for v in points], best=fit))
    if spec.outputs.plots and all(cs.edges for cs in ispec.channels.values()):
        # drawn as histograms of each channel's observable and bins, where it has them
        from .inference.plot_data import unbinned_plot_data

        result["plot_data"] = unbinned_plot_data(
            model, fit, binning={c: (cs.observable, list(cs.edges))
                                 for c, cs in ispec.channels.items()},
            upper_limit=limit, impacts=ranking)
    result["warnings"] = warnings
    result["seconds"] = time.perf_counter() - t0
    return result

