"""The stages of ``ratiofit run``: samples → training → calibration → closure → fit → report.

Each stage persists what it makes in the output directory: ``reweighter/`` (member 0;
``ensemble/member-K/reweighter/`` for the others), ``result.json``, ``spec.yaml`` and
plots. Every random stream derives from the spec seed, so the same spec and seed give
the same numbers.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ._atomic import json_default, write_text_atomic
from .closure_gate import reweighted_histograms
from .console import stage
from .errors import DataError
from .events import EventSet
from .execution import Executor, Job, LocalExecutor
from .fitting import FitProblem, FitResult
from .registry import Registry, get_registry
from .reweighter import AveragedReweighter, Reweighter
from .sampling import make_sample
from .seeding import derive_rng, derive_seed
from .spec import SampleSpec, Spec, ThetaSpec, resolved_dict
from .training import train_reweighter
from .uncertainty import ErrorBudget, bootstrap

__all__ = ["analytic_fit", "calibrate_from_spec", "closure", "fit_problem", "fit_reweighter",
           "gold_closure_from_spec", "run_inference", "run_spec", "run_studies",
           "train_from_spec", "with_analytic", "write_json"]


def write_json(path: str | Path, payload: Mapping[str, Any]) -> None:
    """Write JSON atomically (temporary file renamed into place)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps(payload, indent=2, default=json_default, allow_nan=True))




class Samples:
    """Lazily generated samples of a spec (each generated once per run)."""

    def __init__(self, spec: Spec, registry: Registry) -> None:
        self.spec, self.registry = spec, registry
        self._cache: dict[str, EventSet] = {}

    def __getitem__(self, name: str) -> EventSet:
        if name not in self._cache:
            self._cache[name] = make_sample(self.spec.samples[name],
                                            parameters=self.spec.parameters, seed=self.spec.seed,
                                            registry=self.registry)
        return self._cache[name]

    def for_member(self, name: str, member: int) -> EventSet:
        """Sample ``name`` as ensemble member ``member`` sees it: the shared one, or (with
        ``training_samples: independent``, member > 0) one generated from the member's own
        seed — not cached, so members do not pile up in memory."""
        if not self.spec.ensemble_independent_samples or member == 0:
            return self[name]
        return make_sample(self.spec.samples[name], parameters=self.spec.parameters,
                           seed=derive_seed(self.spec.seed, "ensemble-member", member),
                           registry=self.registry)


def train_from_spec(spec: Spec, samples: Samples, *, member: int, checkpoint_dir: Path | None,
                    progress: bool, registry: Registry, replica: int | None = None) -> Reweighter:
    """Train (and calibrate) ensemble member ``member`` of the spec's reweighter, or (with
    ``replica=K``) bootstrap replica K of member 0: the same samples with Poisson(1) event
    weights and its own seed (:mod:`ratiofit.uncertainty`)."""
    rws = spec.reweighter
    assert rws is not None
    reference = samples.for_member(rws.reference, member)
    target = samples.for_member(rws.target, member)
    if replica is None:
        seed = derive_seed(spec.seed, "train", member)
    else:
        rng = derive_rng(spec.seed, "replica-bootstrap", replica)
        reference, target = bootstrap(reference, rng), bootstrap(target, rng)
        seed = derive_seed(spec.seed, "replica-train", replica)
    rw = train_reweighter(
        reference=reference, target=target, parameters=spec.parameters.subset(rws.parameters),
        architecture=registry.get("architecture", rws.architecture),
        architecture_options=rws.architecture_options, loss=registry.get("loss", rws.loss),
        training=rws.training, seed=seed, checkpoint_dir=checkpoint_dir, progress=progress,
        features=rws.features, particles=rws.particles, labels=rws.labels)
    rw.metadata["spec_seed"] = spec.seed
    rw.metadata["member"] = member
    if replica is not None:
        rw.metadata["replica"] = replica
    return calibrate_from_spec(spec, rw, samples, member=member, reference=reference,
                               target=target)


def calibrate_from_spec(spec: Spec, rw: Reweighter, samples: Samples, *, member: int,
                        reference: EventSet | None = None, target: EventSet | None = None
                        ) -> Reweighter:
    """Apply the spec's calibration to member ``member``'s reweighter (in place), with the
    member's own reference (and, for a moment calibration, target) sample — generated
    here unless given."""
    rws = spec.reweighter
    assert rws is not None
    if reference is None:
        reference = samples.for_member(rws.reference, member)
    cal = rws.calibration
    if cal is not None:
        n = min(cal.events, len(reference))
        moments = cal.moments if cal.method == "moments" else 0
        rw.metadata["normalisation"] = rw.calibrate(
            reference_features=reference.take(np.arange(n)), points=cal.points,
            degree=cal.degree,
            rng=derive_rng(spec.seed, "calibration", member), apply=True, moments=moments,
            target=(target if target is not None else samples.for_member(rws.target, member))
            if moments else None,
            moment_degree=cal.moment_degree)
    else:
        # Measured anyway so the θ-dependent normalisation error is always visible.
        n = min(200_000, len(reference))
        rw.metadata["normalisation"] = rw.calibrate(
            reference_features=reference.take(np.arange(n)), points=11, degree=4,
            rng=derive_rng(spec.seed, "calibration", member), apply=False)
    return rw


def _source_density(spec: Spec, sample: SampleSpec, registry: Registry) -> Any:
    src = registry.get("source", sample.source)
    return src if hasattr(src, "log_density") else None


def _held_out_reference(spec: Spec, registry: Registry) -> EventSet:
    """``outputs.closure_events`` events declared as the reweighter's reference, from an
    independent seed: events the network never saw."""
    rws = spec.reweighter
    assert rws is not None
    ref_spec = spec.samples[rws.reference]
    held_out = SampleSpec(name="closure-reference", source=ref_spec.source,
                          n_events=spec.outputs.closure_events, theta=dict(ref_spec.theta),
                          options=ref_spec.options)
    return make_sample(held_out, parameters=spec.parameters,
                       seed=derive_seed(spec.seed, "closure-reference"), registry=registry)


def closure(spec: Spec, rw: Reweighter, samples: Samples, registry: Registry, *,
            reference: EventSet | None = None) -> dict[str, Any]:
    """Learned vs analytic log w at the spec's closure points, and reweighted-vs-target
    histograms (plot data) at each point.

    The RMSE of (learned − analytic) log w is taken over the central 95% of the target
    distribution (2.5–97.5% quantiles of every feature). Histograms reweight a held-out
    nominal sample (same declaration as the reference, an independent seed; ``reference``
    where it is made already), so the χ²/ndf tests the reweighting on events the network
    never saw.
    """
    rws = spec.reweighter
    assert rws is not None
    out: dict[str, Any] = {"points": []}
    closure_pts = spec.outputs.closure
    if not closure_pts:
        return out
    target_spec = spec.samples[rws.target]
    ref_spec = spec.samples[rws.reference]
    src = _source_density(spec, target_spec, registry)
    if reference is None:
        reference = _held_out_reference(spec, registry)
    n_pts = len(next(iter(closure_pts.values())))
    nominal_theta = {n: t.value for n, t in ref_spec.theta.items()}
    for k in range(n_pts):
        theta = {n: closure_pts[n][k] if n in closure_pts else
                 spec.parameters[n].nominal for n in rw.theta_names}
        fixed = dict(target_spec.theta)
        for n, v in theta.items():
            fixed[n] = ThetaSpec(kind="fixed", value=v)
        tspec = SampleSpec(name=f"closure-{k}", source=target_spec.source,
                           n_events=spec.outputs.closure_events, theta=fixed,
                           options=target_spec.options)
        target = make_sample(tspec, parameters=spec.parameters, seed=derive_seed(spec.seed, "cl"),
                             registry=registry)
        point: dict[str, Any] = {"theta": theta}
        x = target.features
        if src is not None:
            lo, hi = np.quantile(x, [0.025, 0.975], axis=0)
            central = np.all((x >= lo) & (x <= hi), axis=1)
            inside = target.take(np.flatnonzero(central))
            learned = rw.log_ratio(features=inside, theta=theta)
            raw = rw.log_ratio(features=inside, theta=theta, calibrated=False)
            th_target = {n: t.value for n, t in fixed.items()}
            analytic = (src.log_density(features=x[central], theta=th_target,
                                        options=target_spec.options)
                        - src.log_density(features=x[central], theta=nominal_theta,
                                          options=ref_spec.options))
            diff = learned - analytic
            point.update({
                "rmse": float(np.sqrt(np.mean(diff ** 2))),
                "mean_offset": float(np.mean(diff)),
                "rmse_uncalibrated": float(np.sqrt(np.mean((raw - analytic) ** 2))),
                "curve": _curve(x[central], learned, analytic),
            })
        point["histograms"] = reweighted_histograms(
            reference, target, rw.weights(features=reference, theta=theta))
        point["weights"] = rw.diagnostics(features=reference, theta=theta,
                                          event_weights=reference.event_weights)
        out["points"].append(point)
    return out


def _curve(x: np.ndarray, learned: np.ndarray, analytic: np.ndarray, n: int = 60
           ) -> dict[str, Any]:
    """Binned means of learned and analytic log w along the first feature (plot data)."""
    edges = np.quantile(x[:, 0], np.linspace(0, 1, n + 1))
    idx = np.clip(np.searchsorted(edges, x[:, 0], side="right") - 1, 0, n - 1)
    count = np.bincount(idx, minlength=n)
    ok = count > 0
    mean = lambda v: np.bincount(idx, weights=v, minlength=n)[ok] / count[ok]  # noqa: E731
    return {"x": mean(x[:, 0]).tolist(), "learned": mean(learned).tolist(),
            "analytic": mean(analytic).tolist()}


def fit_problem(spec: Spec, rw: Reweighter | AveragedReweighter, samples: Samples, *,
                member: int) -> FitProblem:
    """The spec's fit of the data with reweighter ``rw``."""
    fs = spec.fit
    assert fs is not None
    fitted = spec.parameters.subset(fs.parameters)
    missing = [n for n in fitted.names if n not in rw.theta_names]
    if missing:
        raise DataError(f"the reweighter is not parameterised in {missing} "
                        f"(it has {rw.theta_names})")
    fixed = {n: spec.parameters[n].nominal for n in rw.theta_names if n not in fitted}
    return FitProblem(reweighter=rw, data=samples[fs.data],
                      reference=samples[fs.reference] if fs.reference else None,
                      parameters=fitted, fixed=fixed, start=fs.start,
                      seed=derive_seed(spec.seed, "fit", member))


def fit_reweighter(spec: Spec, rw: Reweighter | AveragedReweighter, samples: Samples,
                   registry: Registry, *, member: int) -> FitResult:
    """Run the spec's fit strategy with a trained reweighter."""
    fs = spec.fit
    assert fs is not None
    problem = fit_problem(spec, rw, samples, member=member)
    return registry.get("strategy", fs.strategy).fit(problem=problem, options=fs.options)


def with_analytic(fit: dict[str, Any], analytic: dict[str, Any] | None) -> dict[str, Any]:
    """``fit`` (a FitResult dict) with the analytic MLE, its error and the truth added to
    every parameter entry (unchanged when there is no analytic fit)."""
    if analytic is not None:
        for n, entry in fit["parameters"].items():
            entry["analytic"] = analytic["values"][n]
            entry["analytic_error"] = analytic["errors"][n]
            entry["truth"] = analytic["truth"][n]
    return fit


def analytic_fit(spec: Spec, samples: Samples, registry: Registry) -> dict[str, Any] | None:
    """Maximum-likelihood fit with the source's exact density (the statistical reference)."""
    fs = spec.fit
    if fs is None:
        return None
    dspec = spec.samples[fs.data]
    src = _source_density(spec, dspec, registry)
    if src is None or dspec.varied:
        return None
    from iminuit import Minuit

    data = samples[fs.data]
    base = {n: t.value for n, t in dspec.theta.items()}
    names = list(fs.parameters)
    w = data.event_weights

    def nll(vals: np.ndarray) -> float:
        th = dict(base)
        th.update({n: float(v) for n, v in zip(names, vals, strict=True)})
        return float(-np.dot(w, src.log_density(features=data.features, theta=th,
                                                options=dspec.options)))

    m = Minuit(nll, np.array([spec.parameters[n].nominal for n in names]), name=names)
    m.errordef = 0.5
    for n in names:
        p = spec.parameters[n]
        m.limits[n] = (p.low, p.high)
    m.migrad()
    m.hesse()
    return {"values": {n: float(m.values[n]) for n in names},
            "errors": {n: float(m.errors[n]) for n in names},
            "truth": {n: base[n] for n in names}}


def gold_closure_from_spec(spec: Spec, rw: Reweighter, held_out: EventSet) -> dict[str, Any]:
    """The gold closure (:func:`ratiofit.gold_closure.gold_closure`) of ``rw`` on the
    held-out reference events ``held_out``, generated at the reference sample's fixed θ
    (where it varies one, the gold closure refuses it), as ``result.json["gold_closure"]``."""
    from .gold_closure import gold_closure

    rws = spec.reweighter
    assert rws is not None
    theta0 = {n: float(t.value) for n, t in spec.samples[rws.reference].theta.items()
              if t.kind == "fixed" and t.value is not None and n in rw.theta_names}
    return gold_closure(rw, held_out, theta0=theta0,
                        seed=derive_seed(spec.seed, "gold-closure")).to_dict()


def _member(spec: Spec, samples: Samples, registry: Registry, *, member: int, outdir: Path,
            progress: bool) -> dict[str, Any]:
    t0 = time.perf_counter()
    sub = outdir / "reweighter" if member == 0 else outdir / "ensemble" / f"member-{member}" / \
        "reweighter"
    with stage(f"training member {member}"):
        rw = train_from_spec(spec, samples, member=member,
                             checkpoint_dir=outdir / "checkpoints" / f"member-{member}",
                             progress=progress, registry=registry)
    t_train = time.perf_counter() - t0
    rw.save(sub)
    out: dict[str, Any] = {"member": member, "reweighter_dir": str(sub.relative_to(outdir)),
                           "training": {k: rw.metadata[k] for k in (
                               "epochs_run", "best_epoch", "best_val_loss", "train_seconds",
                               "n_train", "n_validation", "seed")},
                           "history": rw.metadata["history"],
                           "normalisation": rw.metadata.get("normalisation")}
    if "exact_weights" in rw.metadata:  # what the exact-weight labels trained on
        out["training"]["exact_weights"] = rw.metadata["exact_weights"]
    if member == 0:
        t1 = time.perf_counter()
        # the gold closure where the reference carries exact weights (ratiofit.gold_closure)
        assert spec.reweighter is not None
        gold = samples[spec.reweighter.reference].alt_weights is not None
        held_out = _held_out_reference(spec, registry) \
            if gold or spec.outputs.closure else None
        with stage("closure"):
            out["closure"] = closure(spec, rw, samples, registry, reference=held_out)
        out["closure_seconds"] = time.perf_counter() - t1
        if gold:
            assert held_out is not None
            t1 = time.perf_counter()
            with stage("gold closure"):
                out["gold_closure"] = gold_closure_from_spec(spec, rw, held_out)
            out["gold_closure"]["seconds"] = time.perf_counter() - t1
    if spec.fit is not None:
        t2 = time.perf_counter()
        with stage(f"fit (member {member})"):
            out["fit"] = fit_reweighter(spec, rw, samples, registry, member=member).to_dict()
        out["fit_seconds"] = time.perf_counter() - t2
    out["train_seconds"] = t_train
    return out


def run_inference(spec: Spec, samples: Samples, registry: Registry, *, outdir: Path,
                  this: Reweighter | AveragedReweighter | None, executor: Executor | None = None,
                  progress: bool = False) -> dict[str, Any]:
    """The spec's ``inference`` stage (:func:`ratiofit.inference_stage.run_inference`)."""
    from .inference_stage import run_inference as run

    return run(spec, samples, registry, outdir=outdir, this=this, executor=executor,
               progress=progress)


def run_studies(spec: Spec, samples: Samples, registry: Registry, *, outdir: Path,
                reweighter: Reweighter | None, executor: Executor | None = None,
                progress: bool = False) -> dict[str, Any]:
    """Run the spec's ``studies`` in order; each returns a JSON-able mapping, also written
    to ``outdir/studies/<label>/result.json``."""
    from .study import StudyContext

    out: dict[str, Any] = {}
    for st in spec.studies:
        impl = registry.get("study", st.study)
        sdir = outdir / "studies" / st.label
        sdir.mkdir(parents=True, exist_ok=True)
        context = StudyContext(label=st.label, spec=spec, samples=samples, registry=registry,
                               outdir=sdir, seed=derive_seed(spec.seed, "study", st.label),
                               reweighter=reweighter, executor=executor, progress=progress)
        t0 = time.perf_counter()
        payload = {"study": st.study, **dict(impl.run(context=context, options=st.options))}
        payload["seconds"] = time.perf_counter() - t0
        write_json(sdir / "result.json", payload)
        out[st.label] = payload
    return out


def _remove_empty_tree(path: Path) -> None:
    """Drop checkpoint directories that completed trainings left empty."""
    if not path.is_dir():
        return
    for sub in sorted(path.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if sub.is_dir() and not any(sub.iterdir()):
            sub.rmdir()
    if not any(path.iterdir()):
        path.rmdir()


def run_spec(spec: Spec, outdir: str | Path, *, progress: bool = False,
             executor: Executor | None = None, registry: Registry | None = None,
             plots: bool | None = None, fingerprint: str | None = None) -> dict[str, Any]:
    """Run everything the spec declares and write ``outdir/result.json`` (returned too).

    ``outdir`` is a :class:`~ratiofit.run_directory.RunDirectory`: locked for the run,
    cleared of a previous run with another ``fingerprint`` (default: a digest of the
    resolved spec; the CLI adds ratiofit's code), marked ``FAILED`` where the run raises.
    """
    from .run_directory import RunDirectory

    text = yaml.safe_dump(resolved_dict(spec), sort_keys=False, allow_unicode=True)
    if fingerprint is None:
        import hashlib

        fingerprint = hashlib.sha256(text.encode()).hexdigest()[:20]
    with RunDirectory(outdir, fingerprint=fingerprint):
        return _run_spec(spec, Path(outdir), text, progress=progress, executor=executor,
                         registry=registry, plots=plots)


def _run_spec(spec: Spec, out: Path, spec_text: str, *, progress: bool,
              executor: Executor | None, registry: Registry | None, plots: bool | None
              ) -> dict[str, Any]:
    t0 = time.perf_counter()
    reg = registry or get_registry()
    # The resolved spec (every default filled in) — rerunnable as it stands.
    write_text_atomic(out / "spec.yaml", spec_text)
    samples = Samples(spec, reg)
    with stage(f"samples ({', '.join(spec.samples)})"):
        for name in spec.samples:  # generate/read every sample first: bad data fail fast
            samples[name]
    from .provenance import provenance

    result: dict[str, Any] = {"ratiofit": provenance(), "spec": spec.path, "seed": spec.seed,
                              "parameters": spec.parameters.to_list()}
    if spec.reweighter is None:
        if spec.inference is not None:
            result["inference"] = run_inference(spec, samples, reg, outdir=out, this=None,
                                                executor=executor, progress=progress)
        elif not spec.studies:
            for name in spec.samples:
                samples[name].to_parquet(out / "samples" / f"{name}.parquet")
        if spec.studies:
            result["studies"] = run_studies(spec, samples, reg, outdir=out, reweighter=None,
                                            executor=executor, progress=progress)
        result["timing"] = {"total_seconds": time.perf_counter() - t0}
        write_json(out / "result.json", result)
        return result
    jobs = [Job(name=f"member-{k}", function=_member,
                kwargs={"spec": spec, "samples": samples, "registry": reg, "member": k,
                        "outdir": out, "progress": progress})
            for k in range(spec.ensemble)]
    members = (executor or LocalExecutor()).run(jobs)
    first = members[0]
    result["reweighter"] = {"dir": first["reweighter_dir"], **first["training"],
                            "architecture": spec.reweighter.architecture,
                            "loss": spec.reweighter.loss,
                            "labels": spec.reweighter.labels,
                            "parameters": list(spec.reweighter.parameters),
                            "inputs": {"features": "all" if spec.reweighter.features is None
                                       else list(spec.reweighter.features),
                                       "particles": list(spec.reweighter.particles)}}
    result["history"] = first["history"]
    result["normalisation"] = first["normalisation"]
    result["closure"] = first.get("closure", {"points": []})
    if "gold_closure" in first:
        result["gold_closure"] = first["gold_closure"]
    timing: dict[str, Any] = {}
    if spec.fit is not None:
        analytic = analytic_fit(spec, samples, reg)
        fit = first["fit"]
        rw0 = Reweighter.load(out / first["reweighter_dir"], registry=reg)
        from .honest import finish_fit, flag_fit

        timing = finish_fit(spec, rw0, samples, reg, fit, outdir=out, executor=executor,
                            progress=progress, saved_replicas=None, train=True)
        result["fit"] = with_analytic(fit, analytic)
    if spec.ensemble > 1 and spec.fit is not None:
        names = list(spec.fit.parameters)
        values = {n: [m["fit"]["parameters"][n]["value"] for m in members] for n in names}
        result["ensemble"] = {
            "members": spec.ensemble, "values": values,
            "training_samples": "independent" if spec.ensemble_independent_samples
            else "shared",
            "mean": {n: float(np.mean(v)) for n, v in values.items()},
            "std": {n: float(np.std(v, ddof=1)) for n, v in values.items()},
            "closure_rmse_member0": [p.get("rmse") for p in result["closure"]["points"]]}
        if spec.ensemble_average_fit:
            t_fit = time.perf_counter()
            averaged = AveragedReweighter(members=[
                Reweighter.load(out / m["reweighter_dir"], registry=reg) for m in members])
            from .honest import flag_fit

            avg = fit_reweighter(spec, averaged, samples, reg, member=0).to_dict()
            # The members' spread is not this average's error (they share the samples):
            # the budget here is stat + reference, and says so.
            ErrorBudget.from_replicas(
                names=avg["names"], stat=avg["covariance"],
                reference=avg["extra"].get("mc_stat_covariance"),
                replica_values={n: [] for n in avg["names"]}).to_fit(avg)
            avg = with_analytic(flag_fit(avg), analytic)
            avg["fit_seconds"] = time.perf_counter() - t_fit
            result["ensemble"]["average_fit"] = avg
    if spec.inference is not None or spec.studies:
        this = Reweighter.load(out / first["reweighter_dir"], registry=reg)
        if spec.inference is not None:
            # an ensemble's inference uses its members' mean log-ratio: each member's
            # training noise averages down (ensembles.md); the learned ratio's error still
            # comes from member 0's bootstrap replicas, a single member's (the average's
            # is smaller), so its coverage errs on the safe side
            model: Reweighter | AveragedReweighter = this if spec.ensemble < 2 else \
                AveragedReweighter(members=[Reweighter.load(out / m["reweighter_dir"],
                                                            registry=reg) for m in members])
            with stage("inference"):
                result["inference"] = run_inference(spec, samples, reg, outdir=out,
                                                    this=model, executor=executor,
                                                    progress=progress)
                result["inference"]["reweighter"] = {
                    "members_averaged": spec.ensemble,
                    "learned_ratio_error_from": "member 0's bootstrap replicas"}
        if spec.studies:
            with stage("studies"):
                result["studies"] = run_studies(spec, samples, reg, outdir=out,
                                                reweighter=this, executor=executor,
                                                progress=progress)
    _remove_empty_tree(out / "checkpoints")
    result["timing"] = {
        **timing, "total_seconds": time.perf_counter() - t0,
        "train_seconds": [m["train_seconds"] for m in members],
        "fit_seconds": [m.get("fit_seconds") for m in members],
        "closure_seconds": first.get("closure_seconds"),
        **({"gold_closure_seconds": first["gold_closure"]["seconds"]}
           if "gold_closure" in first else {})}
    write_json(out / "result.json", result)
    if spec.outputs.plots if plots is None else plots:
        from .report import make_plots

        with stage("plots"):
            make_plots(result, out)
    return result
