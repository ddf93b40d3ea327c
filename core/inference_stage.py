"""The spec's ``inference`` stage: a binned (pyhf) or unbinned (iminuit) likelihood fit in
which trained reweighters are constrained nuisance parameters.

:func:`run_inference` builds the model the section declares — channels, samples with
yields, reweighter nuisances (with their learned-ratio and non-closure modifiers from the
reweighter's bootstrap replicas, :mod:`ratiofit.inference.learned`) and standard
HistFactory modifiers, optionally on top of an analysis's own pyhf workspace — fits it,
and computes CLs, the upper limit and the impacts. The binned model's portable
workspace is written to ``workspace.json`` whatever the mode (it runs with the ``pyhf``
command-line tool); the unbinned backend is :mod:`ratiofit.unbinned_stage`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from .errors import DataError
from .execution import Executor
from .registry import Registry
from .reweighter import AveragedReweighter, Reweighter
from .seeding import derive_seed
from .spec import Spec
from .workflow import Samples

__all__ = ["run_inference"]


def _attempt(warnings: list[str], label: str, compute: Callable[[], Any]) -> Any:
    """``compute()``, or ``{"failed": why}`` with a warning where it raises an
    InferenceError. A hypothesis test, limit, impact or scan is a set of further fits, at
    POI values far from the data's (a limit scan runs to 5σ above μ̂); where one of them
    does not converge, the fit itself still stands: that number is reported as failed."""
    from .inference import InferenceError

    try:
        return compute()
    except InferenceError as exc:
        warnings.append(f"{label} failed: {exc}")
        return {"failed": str(exc)}


def _tests(ispec: Any, result: dict[str, Any], warnings: list[str], *,
           hypotest: Callable[[float], Any], upper_limit: Callable[[], Any],
           impacts: Callable[[], list[Any]]) -> tuple[Any, list[Any] | None]:
    """The hypothesis test, upper limit and impacts the section asks for, written into
    ``result`` (either backend); returns the limit and the impacts that did not fail
    (``None`` otherwise), for the plots."""
    from .inference import UpperLimitResult

    if ispec.hypotest_poi is not None:
        hp = ispec.hypotest_poi
        result["hypotest"] = _attempt(warnings, "the hypothesis test",
                                      lambda: asdict(hypotest(hp)))
    limit = ranking = None
    if ispec.upper_limit:
        limit = _attempt(warnings, "the upper limit", upper_limit)
        result["upper_limit"] = asdict(limit) if isinstance(limit, UpperLimitResult) \
            else limit
    if ispec.impacts:
        ranking = _attempt(warnings, "the impacts", impacts)
        result["impacts"] = [asdict(i) for i in ranking] if isinstance(ranking, list) \
            else ranking
    return (limit if isinstance(limit, UpperLimitResult) else None,
            ranking if isinstance(ranking, list) else None)


def _inference_replicas(spec: Spec, samples: Samples, registry: Registry, *, outdir: Path,
                        this: Reweighter | AveragedReweighter | None,
                        executor: Executor | None, progress: bool
                        ) -> tuple[dict[str, list[Reweighter]], dict[str, Any]]:
    """Bootstrap replicas of each inference nuisance's reweighter: trained here for
    ``this`` (``uncertainty.replicas`` of them, through the executor), the ones saved
    beside a saved reweighter (``RUN/replicas/replica-K/reweighter``) otherwise."""
    ispec = spec.inference
    assert ispec is not None
    out: dict[str, list[Reweighter]] = {}
    info: dict[str, Any] = {}
    trained: list[Reweighter] | None = None
    for name, ns in ispec.nuisances.items():
        if ns.reweighter == "this":
            if trained is None:
                from .honest import train_replicas

                t0 = time.perf_counter()
                jobs = train_replicas(spec, samples, registry, outdir=outdir,
                                      executor=executor, progress=progress) \
                    if spec.uncertainty.replicas else []
                trained = [Reweighter.load(outdir / j["reweighter_dir"], registry=registry)
                           for j in jobs]
                info["train_seconds"] = time.perf_counter() - t0
                info["trained"] = [j["reweighter_dir"] for j in jobs]
            out[name] = trained
        else:
            d = Path(ns.reweighter)
            run_dir = d if (d / "reweighter" / "metadata.json").is_file() else d.parent
            dirs = sorted(run_dir.glob("replicas/replica-*/reweighter")) \
                if spec.uncertainty.replicas else []
            out[name] = [Reweighter.load(r, registry=registry) for r in dirs]
            info.setdefault("saved", {})[name] = [str(r) for r in dirs]
    return out, info


def _nonclosure_samples(spec: Spec, registry: Registry, nuisances: Sequence[Any]
                        ) -> dict[str, list[tuple[str, str]]]:
    """Nuisance → the inference samples whose non-closure at θ̂ can be simulated: those of
    the reweighter trained here (``this``) that are its reference sample, when
    ``uncertainty.correction`` is ``simulation`` and the target's source generates (a
    sample read from files cannot be made at θ̂)."""
    from .honest import _can_simulate

    ispec, rws = spec.inference, spec.reweighter
    assert ispec is not None
    if spec.uncertainty.correction != "simulation" or rws is None \
            or not _can_simulate(spec, registry):
        return {}
    out: dict[str, list[tuple[str, str]]] = {}
    for nu in nuisances:
        if ispec.nuisances[nu.name].reweighter != "this":
            continue
        pairs = [(c, n) for c, ch in ispec.channels.items() for n, ss in ch.samples.items()
                 if nu.name in ss.nuisances and ss.sample == rws.reference]
        if pairs:
            out[nu.name] = pairs
    return out


def _nonclosure(spec: Spec, registry: Registry, samples: Samples, channels: Sequence[Any],
                nu: Any, theta_hat: float, pairs: Sequence[tuple[str, str]]) -> Any:
    """The non-closure term of ``nu`` at θ̂ (:func:`ratiofit.inference.nonclosure_term`):
    the reweighter's target simulated at θ̂ with as many events as each sample it
    reweighs, on that sample's scale (the same yield per event)."""
    from . import inference as inf
    from .honest import simulate_at

    ispec = spec.inference
    assert ispec is not None
    simulated = {}
    for cname, name in pairs:
        ss = ispec.channels[cname].samples[name]
        ref = samples[ss.sample]
        # (the single channel's key is the one it had before channels existed)
        key = f"nonclosure-{nu.name}-{name}" if cname == "channel" else \
            f"nonclosure-{nu.name}-{cname}-{name}"
        sim = simulate_at(spec, registry, nu.theta_point(theta_hat), key=key, n=len(ref))
        scale = (ss.yield_ / float(ref.event_weights.sum())) if ss.yield_ is not None else 1.0
        simulated[(cname, name)] = (sim, sim.event_weights * scale)
    return inf.nonclosure_term(channels=channels, nuisance=nu, theta=theta_hat,
                               simulated=simulated, flow=ispec.flow)  # type: ignore[arg-type]


def _correct(spec: Spec, registry: Registry, result: dict[str, Any], warnings: list[str],
             cannot: str | None, *, model: Any, fit: Any, channels: Sequence[Any],
             nuisances: Sequence[Any], learned_names: Sequence[str]) -> None:
    """Replace ``result["fit"]`` by the simulation-corrected fit
    (:mod:`ratiofit.binned_correction`), keeping the learned one in
    ``result["fit_before_correction"]``; or say why there is none (``cannot``, or the
    simulated data's fit failed)."""
    from . import inference as inf
    from .binned_correction import (
        binned_simulation_correction,
        corrected_fit,
        tracked_parameters,
    )
    from .refit_correction import correction_warnings

    ispec = spec.inference
    assert ispec is not None
    correction = None
    if cannot is None:
        try:
            correction = binned_simulation_correction(
                spec, registry, model, fit, channels=channels, nuisances=nuisances,
                tracked=tracked_parameters(fit, learned=learned_names), flow=ispec.flow)
        except inf.InferenceError as exc:
            cannot = f"the fit of the simulated data failed: {exc}"
            warnings.append(f"no simulation correction: {cannot}")
    if correction is None:
        result["fit"]["correction"] = {"applied": False, "reason": cannot}
        return
    result["fit_before_correction"] = result["fit"]
    cfg = model.model.config
    fitd = corrected_fit(result["fit"], correction, {nu.name: nu for nu in nuisances},
                         poi_bound=float(cfg.suggested_bounds()[cfg.poi_index][0]))
    result["fit"] = fitd
    sim = np.sqrt(np.clip(np.diag(correction.covariance), 0.0, None))
    units = {ispec.poi: 1.0, **{nu.name: nu.sigma for nu in nuisances}}
    # (the learned fit keeps its own components; without learned-ratio modifiers the
    # learned fit's error is all "the rest")
    components = {k: dict(v) for k, v in (fitd.get("error_components") or {}).items()}
    for n, unit in units.items():
        if n in correction.names:
            k = correction.names.index(n)
            components[n] = {**components.get(n, {
                "without_learned_ratio": unit * fit.error(n), "learned_ratio": 0.0}),
                "total": unit * fitd["errors"][fitd["names"].index(n)],
                "simulation": unit * float(sim[k])}
    fitd["error_components"] = components
    warnings.extend(correction_warnings(
        correction, poi=ispec.poi, poi_error=fit.error(ispec.poi),
        inherit="the CLs, upper limit, impacts and plots",
        theta={nu.name: nu.theta for nu in nuisances}))


def run_inference(spec: Spec, samples: Samples, registry: Registry, *, outdir: Path,
                  this: Reweighter | AveragedReweighter | None, executor: Executor | None = None,
                  progress: bool = False) -> dict[str, Any]:
    """The spec's ``inference`` stage: templates, the learned-ratio modifiers from the
    reweighters' bootstrap replicas (:mod:`ratiofit.inference.learned`), a pyhf model
    (exact or portable), the fit, CLs, upper limit and impacts; the portable workspace,
    learned-ratio modifiers included, is written to ``outdir/workspace.json`` whatever the
    mode (it runs with the ``pyhf`` CLI)."""
    from . import inference as inf

    ispec = spec.inference
    assert ispec is not None
    if ispec.backend == "unbinned":
        from .unbinned_stage import run_unbinned

        return run_unbinned(spec, samples, registry, outdir=outdir, this=this,
                            executor=executor, progress=progress)
    t0 = time.perf_counter()
    rws: dict[str, Reweighter] = {}
    nuisances = []
    for name, ns in ispec.nuisances.items():
        if ns.reweighter == "this":
            if this is None:
                raise DataError(f"inference.nuisances.{name}: no trained reweighter")
            rw = this
        else:
            d = Path(ns.reweighter)
            rw = rws.setdefault(str(d), Reweighter.load(
                d / "reweighter" if (d / "reweighter" / "metadata.json").is_file() else d,
                registry=registry))
        fixed = {n: spec.parameters[n].nominal for n in rw.theta_names
                 if n != ns.parameter and n in spec.parameters}
        nuisances.append(inf.ReweighterNuisance(name=name, reweighter=rw, parameter=ns.parameter,
                                                nominal=ns.nominal, sigma=ns.sigma,
                                                fixed_theta=fixed, measured=ns.measured))
    channels = []
    for cname, cs in ispec.channels.items():
        chan_samples = []
        for name, ss in cs.samples.items():
            events = samples[ss.sample]
            w = events.event_weights
            if ss.yield_ is not None:
                w = w * (ss.yield_ / w.sum())
            # a signal of a further parameter of interest: a free normfactor of that name
            extra_poi: tuple[tuple[str, str, dict[str, Any]], ...] = () if ss.poi in (
                None, ispec.poi) else (("normfactor", str(ss.poi), {}),)
            chan_samples.append(inf.Sample(
                name=name, events=events, weights=w, signal=ss.poi == ispec.poi,
                nuisances=ss.nuisances, staterror=ispec.staterror,
                modifiers=tuple(inf.StandardModifier(kind=k, name=n, data=d)  # type: ignore[arg-type]
                                for k, n, d in (*ss.modifiers, *extra_poi))))
        # (with an analysis's workspace, its observations are the data)
        observed = np.zeros(len(cs.edges) - 1)
        for dname in cs.data:
            observed = observed + inf.histogram_template(
                events=samples[dname], observable=cs.observable, edges=list(cs.edges),
                flow=ispec.flow).values  # type: ignore[arg-type]
        channels.append(inf.Channel(name=cname, observable=cs.observable, edges=list(cs.edges),
                                    samples=tuple(chan_samples), observed=observed))
    templates = inf.build_templates(channels=channels, nuisances=nuisances,
                                    flow=ispec.flow,  # type: ignore[arg-type]
                                    morph=ispec.mode == "exact")
    if ispec.workspace is None:
        for ct in templates.channels:
            # a bin no simulated event fills, where data are observed: log L = −inf at
            # every parameter point, and MINUIT steps to NaN; said here, in one line
            total = np.sum([st.nominal.values for st in ct.samples], axis=0)
            empty = np.nonzero((total <= 0) & (ct.observed > 0))[0]
            if len(empty):
                b = int(empty[0])
                raise DataError(f"inference channel '{ct.name}': bin [{ct.edges[b]:g}, "
                                f"{ct.edges[b + 1]:g}) holds {ct.observed[b]:g} observed "
                                "events but no simulated one; widen or merge the bins, or "
                                "simulate more")

    start = ispec.workspace

    def model_of(tpl: Any, mode: str = ispec.mode) -> Any:
        if start is not None:
            from .inference.workspace_merge import add_learned_nuisances

            return add_learned_nuisances(start.spec, tpl, mode=mode,
                                         measurement=start.measurement,
                                         edges={c: list(cs.edges)
                                                for c, cs in ispec.channels.items()})
        return inf.exact_model(tpl, poi=ispec.poi, staterror=ispec.staterror) \
            if mode == "exact" else inf.portable_model(tpl, poi=ispec.poi,
                                                       staterror=ispec.staterror)

    result: dict[str, Any] = {"mode": ispec.mode, "workspace": "workspace.json",
                              # what `pyhf fit workspace.json` computes: never the exact
                              # mode's morphing, which is Python code in this process
                              "workspace_model": (
                                  "portable: each reweighter nuisance as a histosys of its "
                                  "templates at theta0 +- sigma (pyhf's interpolation "
                                  "between and beyond them), the learned-ratio and "
                                  "non-closure modifiers and the standard modifiers as "
                                  "written" + ("; the fit reported here is the exact "
                                               "mode's, which follows the reweighter's own "
                                               "theta dependence" if ispec.mode == "exact"
                                               else "; the fit reported here is this "
                                               "model's")),
                              "channels": {c: {"observable": cs.observable,
                                               "edges": list(cs.edges)}
                                           for c, cs in ispec.channels.items()}}
    if start is not None:
        result["workspace_model"] = (
            f"the analysis's workspace {start.file} (measurement '{start.measurement}') with "
            "each learned nuisance as a histosys of n_b h_b(theta0 -+ sigma)/h_b(theta0) on "
            "the samples named, and the learned-ratio and non-closure modifiers "
            "(ratiofit.inference.workspace_merge)")
        result["started_from"] = {"file": start.file, "measurement": start.measurement}
    if len(ispec.channels) == 1 and start is None:
        result.update(observable=ispec.observable, edges=list(ispec.edges))
    replicas, replica_info = _inference_replicas(spec, samples, registry, outdir=outdir,
                                                 this=this, executor=executor,
                                                 progress=progress)
    warnings: list[str] = []
    terms: list[Any] = []
    # the simulation correction (ratiofit.binned_correction) where the model can be
    # simulated at a fitted point: it removes the learned templates' bias at the fit, which
    # the non-closure modifier would only widen the errors by, so it replaces that modifier
    from .unbinned_correction import cannot_simulate

    cannot = cannot_simulate(spec, registry) if start is None else (
        "the model starts from an analysis's workspace, whose samples cannot be simulated")
    nonclosure = {} if cannot is None else _nonclosure_samples(spec, registry, nuisances)
    learned_fit = None
    if any(len(r) >= 2 for r in replicas.values()) or nonclosure:
        # The learned-ratio and non-closure modifiers are evaluated at θ̂ of the fit
        # without them.
        learned_fit = inf.fit(model_of(templates))
        for nu in nuisances:
            theta_hat = learned_fit.pulls[nu.name].theta
            assert theta_hat is not None
            if len(replicas[nu.name]) >= 2:
                terms.append(inf.learned_ratio_term(
                    channels=channels, nuisance=nu, replicas=replicas[nu.name],
                    theta=theta_hat, flow=ispec.flow))  # type: ignore[arg-type]
            if nu.name in nonclosure:
                terms.append(_nonclosure(spec, registry, samples, channels, nu, theta_hat,
                                         nonclosure[nu.name]))
        inf.add_learned_ratio(templates, terms)
    for nu in nuisances:
        if len(replicas[nu.name]) < 2:
            warnings.append(f"nuisance '{nu.name}': no reweighter replicas (uncertainty."
                            "replicas: 0, or fewer than 2 saved with the reweighter): the "
                            "fit leaves out the learned ratio's own error")
    nominal = {(ch.name, st.name): st.nominal.values for ch in templates.channels
               for st in ch.samples}
    result["learned_ratio"] = {
        "method": "principal components of the bootstrap replicas' template deviations at "
                  "the fitted theta, and the simulated-minus-predicted counts there "
                  "(non-closure), as constrained histosys modifiers "
                  "(ratiofit.inference.learned)",
        "terms": [t.summary(nominal) for t in terms if isinstance(t, inf.LearnedRatioTerm)],
        "nonclosure": [t.summary(nominal) for t in terms
                       if isinstance(t, inf.NonClosureTerm)], **replica_info}
    if start is None:
        workspace = inf.portable_workspace(templates, poi=ispec.poi, staterror=ispec.staterror)
    else:  # the portable merge needs no morphing
        workspace = model_of(templates, "portable").spec
    inf.write_workspace(workspace, outdir / "workspace.json")
    model = model_of(templates)
    # started where the fit without the learned-ratio modifiers ended: where the learned
    # shifts lie along the nuisance's own variation, the two are strongly correlated and
    # MIGRAD from the default start can wander to the bounds
    fit = inf.fit(model, init=None if learned_fit is None else {
        n: learned_fit.value(n) for n in learned_fit.names if "[" not in n})
    result["fit"] = fit.to_dict()
    for nu in nuisances:
        pull = fit.pulls[nu.name]
        p = nu.reweighter.parameters[nu.parameter]
        if pull.theta is not None and min(pull.theta - p.low, p.high - pull.theta) < \
                1e-3 * (p.high - p.low):
            warnings.append(f"nuisance '{nu.name}': the fit ends at {nu.parameter} = "
                            f"{pull.theta:.4g}, the edge of the reweighter's range "
                            f"[{p.low:g}, {p.high:g}]: the data pull it beyond what the "
                            "reweighter was trained on, and its error there is not reliable")
    learned_names = [n for t in terms for n in t.shifts]
    if learned_names:
        # The POI's error without the learned-ratio modifiers (fixed at 0), and the
        # learned ratio's share in quadrature.
        pinned = inf.fit(model, fixed=dict.fromkeys(learned_names, 0.0),
                        init={n: fit.value(n) for n in fit.names
                              if n not in learned_names and "[" not in n})
        components = {}
        units = {ispec.poi: 1.0, **{nu.name: nu.sigma for nu in nuisances}}  # θ units
        for n, unit in units.items():
            total, other = unit * fit.error(n), unit * pinned.error(n)
            components[n] = {"total": total, "without_learned_ratio": other,
                             "learned_ratio": float(np.sqrt(max(total**2 - other**2, 0.0)))}
        result["fit"]["error_components"] = components
    if learned_fit is not None:
        result["fit_without_learned_ratio"] = learned_fit.to_dict()
    _correct(spec, registry, result, warnings, cannot, model=model, fit=fit,
             channels=channels, nuisances=nuisances, learned_names=learned_names)

    limit, ranking = _tests(
        ispec, result, warnings,
        hypotest=lambda poi_value: inf.hypotest(
            model, poi_value=poi_value, calctype=ispec.hypotest_calctype,  # type: ignore[arg-type]
            ntoys=ispec.hypotest_ntoys, seed=derive_seed(spec.seed, "hypotest")),
        upper_limit=lambda: inf.upper_limit(model),
        impacts=lambda: inf.impacts(model, nominal=fit))
    # a failed limit or ranking is {"failed": ...}: the plots leave it out; a spec
    # without plots (coverage repeats) skips their Jacobians
    if spec.outputs.plots:
        result["plot_data"] = inf.plot_data(model, fit, upper_limit=limit, impacts=ranking)
    result["warnings"] = warnings
    result["seconds"] = time.perf_counter() - t0
    return result
