"""The honest-fit stage: everything that follows a learned fit in ``ratiofit run`` and
``ratiofit fit``.

1. The reweighter's bootstrap replicas are trained (through the executor) and refitted to
   the same data; their spread is the learned fit's ``reweighter`` error
   (:mod:`ratiofit.uncertainty`).
2. Where the source can simulate, the simulation correction replaces the learned value by
   one Newton step of the simulation's estimating equation at θ̂ (:mod:`ratiofit.correction`);
   the replicas, corrected the same way, give its ``reweighter`` error.
3. The closure gate tests the reweighting at the final θ (:mod:`ratiofit.closure_gate`).
4. Range limits, a failed gate and a missing correction become the fit's ``warnings``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .closure_gate import closure_gate
from .console import stage
from .events import EventSet
from .execution import Executor, Job, LocalExecutor
from .registry import Registry
from .reweighter import AveragedReweighter, Reweighter
from .sampling import make_sample
from .seeding import derive_seed
from .spec import SampleSpec, Spec, ThetaSpec
from .uncertainty import ErrorBudget, objective_hessian, refit
from .workflow import Samples, fit_problem, train_from_spec

__all__ = ["finish_fit", "flag_fit", "gate_at_fit", "reweighter_uncertainty", "simulate_at",
           "simulation_correction", "train_replicas"]


def _smooth_objective(strategy: Any) -> Any:
    """The strategy's optional ``objective(problem, options)`` hook (ratiofit.plugin_api
    Strategy), or ``None`` when it has none of that signature."""
    import inspect

    fn = getattr(strategy, "objective", None)
    if not callable(fn):
        return None
    try:
        params = list(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return None
    return fn if params[:2] == ["problem", "options"] and len(params) == 2 else None


def main_hessian(spec: Spec, rw: Reweighter | AveragedReweighter, samples: Samples,
                 registry: Registry, fit: Mapping[str, Any]) -> list[list[float]] | None:
    """The Hessian of the strategy's objective at the fitted θ̂ (for the replicas' Newton
    refits), or ``None`` when the strategy has no smooth objective."""
    fs = spec.fit
    assert fs is not None
    objective = _smooth_objective(registry.get("strategy", fs.strategy))
    if objective is None:
        return None
    problem = fit_problem(spec, rw, samples, member=0)
    obj = objective(problem, fs.options)
    names = problem.parameters.names
    values = [fit["parameters"][n]["value"] for n in names]
    steps = [0.1 * max(fit["parameters"][n]["error"], 1e-6 * p.half_width)
             for n, p in zip(names, problem.parameters, strict=True)]
    if any(v - d < p.low or v + d > p.high
           for v, d, p in zip(values, steps, problem.parameters, strict=True)):
        return None  # at a range limit: central differences would leave the range
    h = objective_hessian(obj.gradient, values, steps)
    if not np.all(np.isfinite(h)) or np.any(np.linalg.eigvalsh(h) <= 0):
        return None
    return h.tolist()


def refit_replica(spec: Spec, rw: Reweighter, samples: Samples, registry: Registry, *,
                  fit: Mapping[str, Any], hessian: list[list[float]] | None
                  ) -> tuple[dict[str, float], str]:
    """θ̂ of the spec's data with replica ``rw``: Newton steps from the main θ̂ with the main
    Hessian where the strategy has an objective, a full fit started at θ̂ otherwise."""
    from dataclasses import replace

    fs = spec.fit
    assert fs is not None
    strategy = registry.get("strategy", fs.strategy)
    problem = fit_problem(spec, rw, samples, member=0)
    names = problem.parameters.names
    start = [fit["parameters"][n]["value"] for n in names]
    objective = _smooth_objective(strategy)
    if hessian is not None and objective is not None:
        obj = objective(problem, fs.options)
        x = refit(obj.gradient, start=start, hessian=np.asarray(hessian),
                  errors=[fit["parameters"][n]["error"] for n in names],
                  low=[p.low for p in problem.parameters],
                  high=[p.high for p in problem.parameters])
        if x is not None:
            return dict(zip(names, map(float, x), strict=True)), "newton"
    problem = replace(problem, start=dict(zip(names, start, strict=True)))
    options = dict(fs.options)
    if "landscape_points" in options:
        options["landscape_points"] = 0
    res = strategy.fit(problem=problem, options=options)
    return dict(res.values), "fit"


def _replica(spec: Spec, samples: Samples, registry: Registry, *, replica: int, outdir: Path,
             fit: dict[str, Any] | None, hessian: list[list[float]] | None, progress: bool
             ) -> dict[str, Any]:
    """Train bootstrap replica ``replica``, save it, refit the data with it (``fit``)."""
    t0 = time.perf_counter()
    rw = train_from_spec(spec, samples, member=0, replica=replica,
                         checkpoint_dir=outdir / "checkpoints" / f"replica-{replica}",
                         progress=progress, registry=registry)
    t_train = time.perf_counter() - t0
    sub = outdir / "replicas" / f"replica-{replica}" / "reweighter"
    rw.save(sub)
    out = {"replica": replica, "reweighter_dir": str(sub.relative_to(outdir)),
           "train_seconds": t_train}
    if fit is not None:
        t1 = time.perf_counter()
        out["values"], out["refit"] = refit_replica(spec, rw, samples, registry, fit=fit,
                                                    hessian=hessian)
        out["fit_seconds"] = time.perf_counter() - t1
    return out


def train_replicas(spec: Spec, samples: Samples, registry: Registry, *, outdir: Path,
                   executor: Executor | None, progress: bool) -> list[dict[str, Any]]:
    """Train and save the spec's ``uncertainty.replicas`` bootstrap replicas of its
    reweighter (executor jobs ``replica-K``) without refitting: for stages that use the
    replicas themselves, like the inference's learned-ratio modifiers. Each entry has the
    ``reweighter_dir`` (relative to ``outdir``) and ``train_seconds``."""
    jobs = [Job(name=f"replica-{k}", function=_replica,
                kwargs={"spec": spec, "samples": samples, "registry": registry,
                        "replica": k, "outdir": outdir, "fit": None, "hessian": None,
                        "progress": progress})
            for k in range(1, spec.uncertainty.replicas + 1)]
    return list((executor or LocalExecutor()).run(jobs)) if jobs else []


def reweighter_uncertainty(spec: Spec, samples: Samples, registry: Registry, *,
                           rw: Reweighter | AveragedReweighter, fit: dict[str, Any],
                           outdir: Path,
                           executor: Executor | None, progress: bool,
                           saved_replicas: list[Path] | None = None, train: bool = True
                           ) -> list[dict[str, float]]:
    """Train (``train``) and refit the spec's bootstrap replicas (through the executor), or
    refit the ``saved_replicas`` reweighter directories of an earlier run, and write the
    error budget into ``fit`` (a FitResult dict, changed in place). Returns each replica's
    training and refit seconds (timings stay out of the fit, which is the same numbers
    for the same spec and seed)."""
    names = list(fit["names"])
    replicas: list[dict[str, Any]] = []
    hessian = main_hessian(spec, rw, samples, registry, fit) \
        if saved_replicas or (train and spec.uncertainty.replicas) else None
    if saved_replicas:
        for k, d in enumerate(saved_replicas, start=1):
            t0 = time.perf_counter()
            values, how = refit_replica(spec, Reweighter.load(d, registry=registry), samples,
                                        registry, fit=fit, hessian=hessian)
            replicas.append({"replica": k, "reweighter_dir": str(d), "values": values,
                             "refit": how, "train_seconds": 0.0,
                             "fit_seconds": time.perf_counter() - t0})
    elif train and spec.uncertainty.replicas:
        jobs = [Job(name=f"replica-{k}", function=_replica,
                    kwargs={"spec": spec, "samples": samples, "registry": registry,
                            "replica": k, "outdir": outdir, "fit": fit, "hessian": hessian,
                            "progress": progress})
                for k in range(1, spec.uncertainty.replicas + 1)]
        replicas = (executor or LocalExecutor()).run(jobs)
    stat = np.asarray(fit["covariance"], dtype=np.float64)
    budget = ErrorBudget.from_replicas(
        names=names, stat=stat, reference=fit.get("extra", {}).get("mc_stat_covariance"),
        replica_values={n: [r["values"][n] for r in replicas] for n in names})
    budget.to_fit(fit)
    fit["uncertainty"] = {
        "replicas": [{k: r[k] for k in ("replica", "reweighter_dir", "values", "refit")}
                     for r in replicas],
        "method": "bootstrap (Poisson(1) event weights), retrained and refitted"}
    if not replicas:
        fit.setdefault("warnings", []).append(
            "no reweighter replicas (uncertainty.replicas: 0, or none saved with the "
            "reweighter): the error leaves out the learned ratio's own error")
    return [{"train_seconds": r["train_seconds"], "fit_seconds": r["fit_seconds"]}
            for r in replicas]


def _simulation_events(spec: Spec, samples: Samples) -> int:
    """Events simulated at the fitted θ (correction) and per side of the gate: four times
    the data, at most 10⁶ — the score test then sees a bias of ~2 statistical errors half
    of the time at its per-test level (z·√(N_data(1/n + 1/n)), z ≈ 2.9 for 4 tests)."""
    fs = spec.fit
    assert fs is not None
    return spec.uncertainty.gate_events or min(4 * len(samples[fs.data]), 1_000_000)


def _can_simulate(spec: Spec, registry: Registry) -> bool:
    rws = spec.reweighter
    assert rws is not None
    return not getattr(registry.get("source", spec.samples[rws.target].source), "reads_files",
                       False)


def simulate_at(spec: Spec, registry: Registry, theta: Mapping[str, float], *, key: str,
                n: int) -> EventSet:
    """``n`` events of the reweighter's target sample generated at ``theta`` (seeded by
    ``key``; every θ the target draws that ``theta`` does not name keeps its draw)."""
    rws = spec.reweighter
    assert rws is not None
    target_spec = spec.samples[rws.target]
    fixed = dict(target_spec.theta)
    for name, v in theta.items():
        fixed[name] = ThetaSpec(kind="fixed", value=float(v))
    tspec = SampleSpec(name=f"simulated-{key}", source=target_spec.source, n_events=n,
                       theta=fixed, options=target_spec.options)
    return make_sample(tspec, parameters=spec.parameters, seed=derive_seed(spec.seed, key),
                       registry=registry)


#: At most this many simulations (Newton steps) in the simulation correction.
_MAX_STEPS = 5


def simulation_correction(spec: Spec, rw: Reweighter | AveragedReweighter, samples: Samples,
                          registry: Registry, fit: dict[str, Any], *,
                          replica_dirs: list[Path]) -> None:
    """Replace the learned fit's values and budget by the simulation correction
    (:mod:`ratiofit.correction`) from θ̂, iterated (one simulation per step, common random
    numbers, secant Jacobian) until a step moves θ by less than a fifth of an error; the
    replicas (``replica_dirs``), corrected with their own scores on the last simulation,
    give the reweighter component. The learned fit is kept in
    ``fit["learned"]``; ``fit["correction"]`` records the steps (or why none was taken)."""
    from .correction import OneStep, one_step, score_mean, secant_jacobian
    from .errors import RatiofitError

    fs = spec.fit
    assert fs is not None
    problem = fit_problem(spec, rw, samples, member=0)
    names = list(problem.parameters.names)
    if not _can_simulate(spec, registry):
        fit["correction"] = {"applied": False,
                             "reason": "the reweighter's target source reads files"}
        return
    data = samples[fs.data]
    n = _simulation_events(spec, samples)
    steps: list[OneStep] = []
    values = np.array([fit["parameters"][p]["value"] for p in names], dtype=np.float64)
    converged = False
    jacobian = None
    previous: tuple[np.ndarray, Any, Any] | None = None  # θ, its simulation, its θ dict
    try:
        for _ in range(_MAX_STEPS):
            theta0 = problem.theta(values.tolist())
            # One seed for every step (common random numbers): where the source maps the
            # same random draws to events at another θ, the steps' simulations differ by θ
            # alone, so a step's size measures convergence, not simulation noise.
            sim = simulate_at(spec, registry, theta0, key="correction", n=n)
            if previous is not None:
                # The simulator's change of E[s_prev] from the previous θ to this one, used
                # where it stands 4 standard deviations above independent-sample noise.
                th_prev, sim_prev, theta_prev = previous
                change = (score_mean(rw, sim, theta_prev, names)
                          - score_mean(rw, sim_prev, theta_prev, names))
                jac_prev = np.asarray(steps[-1].jacobian)
                delta = values - th_prev
                u = delta / np.linalg.norm(delta)
                signal = abs(float(u @ jac_prev @ delta))
                noise = float(np.sqrt(max(2 * u @ jac_prev @ u / n, 0.0)))
                if signal > 4 * noise:
                    jacobian = secant_jacobian(jac_prev, step=delta, change=change)
            step = one_step(rw, data=data, sim=sim, theta=theta0, names=names,
                            jacobian=jacobian)
            steps.append(step)
            err = np.sqrt(np.diag(np.asarray(step.covariance)))
            moved = np.abs(np.asarray(step.values) - values)
            if np.all(moved <= 0.2 * err):
                converged = True
                break
            if not all(p.contains(v) for p, v in zip(problem.parameters, step.values,
                                                     strict=True)):
                break
            previous = (values, sim, theta0)
            values = np.asarray(step.values, dtype=np.float64)
    except RatiofitError as exc:  # e.g. data without the reweighter's features (SRGN)
        fit["correction"] = {"applied": False, "reason": str(exc)}
        return
    outside = [p.name for p, v in zip(problem.parameters, step.values, strict=True)
               if not p.contains(v)]
    if outside:
        fit["correction"] = {"applied": False, "steps": [st.to_dict() for st in steps],
                             "outside_range": outside,
                             "reason": f"the corrected {', '.join(outside)} falls outside the "
                                       "parameter range, where the reweighter is undefined"}
        return
    replica_values: dict[str, list[float]] = {p: [] for p in names}
    for d in replica_dirs:
        rk = one_step(Reweighter.load(d, registry=registry), data=data, sim=sim, theta=theta0,
                      names=names, jacobian=jacobian)
        for p, v in zip(names, rk.values, strict=True):
            replica_values[p].append(float(v))
    fit["learned"] = {"parameters": {p: dict(fit["parameters"][p]) for p in names},
                      "covariance": fit["covariance"],
                      "covariance_components": fit["covariance_components"],
                      "error_method": fit["error_method"]}
    for p, v in zip(names, step.values, strict=True):
        fit["parameters"][p] = {"value": float(v)}
    ErrorBudget.from_replicas(names=names, stat=step.covariance_data, reference=None,
                              replica_values=replica_values,
                              simulation=step.covariance_simulation).to_fit(fit)
    fit["error_method"] = ("simulation-corrected (one Newton step of the simulation's "
                           "estimating equation in the learned score at the fitted theta): "
                           + fit["error_method"])
    convergence = "step below a fifth of an error" if converged else "not converged"
    if not converged and len(steps) >= 2:
        # Where the source cannot reuse its random numbers at another θ (PYTHIA: a changed
        # parameter changes every later draw), consecutive simulations are independent and
        # a step moves by ~√2 of the simulation's error even at the fixed point; a last
        # step within twice that is converged as far as the simulation can tell.
        sim_err = np.sqrt(np.diag(np.asarray(step.covariance_simulation)))
        if np.all(moved <= 2 * np.sqrt(2) * sim_err):
            converged = True
            convergence = "last step within the simulation's noise (2·√2·its error)"
    fit["correction"] = {"applied": True, "events": n, "converged": converged,
                         "convergence": convergence,
                         "steps": [st.to_dict() for st in steps],
                         "replica_values": replica_values}


def gate_at_fit(spec: Spec, rw: Reweighter | AveragedReweighter, samples: Samples,
                registry: Registry, fit: dict[str, Any]) -> dict[str, Any]:
    """The closure gate (:mod:`ratiofit.closure_gate`) at the fitted θ̂: a held-out reference
    sample reweighted to θ̂ against target events at θ̂ (generated there, or the varied
    sample's events near θ̂ for a source that reads files)."""
    rws, fs = spec.reweighter, spec.fit
    assert rws is not None and fs is not None
    unc = spec.uncertainty
    n = _simulation_events(spec, samples)
    problem = fit_problem(spec, rw, samples, member=0)
    theta = problem.theta([fit["parameters"][p]["value"] for p in problem.parameters.names])
    ref_spec = spec.samples[rws.reference]
    if getattr(registry.get("source", ref_spec.source), "reads_files", False):
        return {"verdict": "not run", "theta": theta,
                "reason": f"the reference sample '{rws.reference}' reads files: there are no "
                          "held-out reference events (the network saw the file's events)"}
    held_out = SampleSpec(name="gate-reference", source=ref_spec.source, n_events=n,
                          theta=dict(ref_spec.theta), options=ref_spec.options)
    reference = make_sample(held_out, parameters=spec.parameters,
                            seed=derive_seed(spec.seed, "gate-reference"), registry=registry)
    if not _can_simulate(spec, registry):
        varied = samples[rws.target]
        th = varied.theta_matrix(list(theta))
        near = np.ones(len(varied), dtype=bool)
        for j, (name, v) in enumerate(theta.items()):
            p = spec.parameters[name]
            near &= np.abs(th[:, j] - v) <= 0.025 * (p.high - p.low)
        target = varied.take(np.flatnonzero(near))
        method = "varied events within 2.5% of the range around the fitted theta"
        if len(target) < 100:
            return {"verdict": "not run", "theta": theta,
                    "reason": f"only {len(target)} varied events near the fitted theta"}
    else:
        target = simulate_at(spec, registry, theta, key="gate-target", n=n)
        method = "generated at the fitted theta"
    names = list(problem.parameters.names)
    # The learned fit's reweighter error: is the learned ratio at θ off by more than that?
    rw_cov = np.asarray(fit.get("learned", fit)["covariance_components"]["reweighter"])
    return closure_gate(reweighter=rw, reference=reference, target=target, theta=theta,
                        level=unc.gate_level, n_data=float(samples[fs.data].event_weights.sum()),
                        seed=derive_seed(spec.seed, "gate"), target_method=method,
                        fitted=names, reweighter_covariance=rw_cov,
                        stat_errors=np.array([fit["parameters"][n]["error_components"]["stat"]
                                              for n in names]))


def finish_fit(spec: Spec, rw: Reweighter | AveragedReweighter, samples: Samples,
               registry: Registry, fit: dict[str, Any], *, outdir: Path,
               executor: Executor | None, progress: bool, saved_replicas: list[Path] | None,
               train: bool) -> dict[str, Any]:
    """Everything after the learned fit: the replicas' budget, the simulation correction,
    the closure gate, the warnings. Changes ``fit`` in place; returns timings."""
    timing: dict[str, Any] = {}
    t0 = time.perf_counter()
    timing["replicas"] = reweighter_uncertainty(
        spec, samples, registry, rw=rw, fit=fit, outdir=outdir, executor=executor,
        progress=progress, saved_replicas=saved_replicas, train=train)
    timing["uncertainty_seconds"] = time.perf_counter() - t0
    if spec.uncertainty.correction == "simulation":
        t1 = time.perf_counter()
        dirs = list(saved_replicas or []) or [
            outdir / r["reweighter_dir"] for r in fit["uncertainty"]["replicas"]]
        with stage("simulation correction at the fitted theta"):
            simulation_correction(spec, rw, samples, registry, fit, replica_dirs=dirs)
        timing["correction_seconds"] = time.perf_counter() - t1
    if spec.uncertainty.gate:
        t2 = time.perf_counter()
        with stage("closure gate at the fitted theta"):
            fit["gate"] = gate_at_fit(spec, rw, samples, registry, fit)
        timing["gate_seconds"] = time.perf_counter() - t2
    flag_fit(fit)
    return timing


def flag_fit(fit: dict[str, Any]) -> dict[str, Any]:
    """Collect the fit's warnings (range limit, failed gate) into ``fit["warnings"]``."""
    warnings = fit.setdefault("warnings", [])
    corrected = (fit.get("correction") or {}).get("applied", False)
    for name in fit.get("extra", {}).get("at_limit", []):
        warnings.append(f"{name} is at its range limit: not a measurement" if not corrected
                        else f"the learned fit of {name} was at its range limit (the value "
                        "is the simulation-corrected one)")
    correction = fit.get("correction") or {}
    if correction.get("outside_range"):
        warnings.append(f"no simulation correction: {correction['reason']}")
    if corrected and not correction.get("converged", True):
        warnings.append(f"the simulation correction did not converge in "
                        f"{len(correction['steps'])} steps (the last still moved theta by "
                        "more than a fifth of an error)")
    gate = fit.get("gate")
    if gate is not None and gate.get("verdict") == "fail" and corrected:
        warnings.append(f"closure gate failed at the fitted theta "
                        f"({', '.join(gate.get('failed', []))}): the learned ratio alone is off "
                        "there; the value and error are the simulation-corrected ones, which "
                        "do not rely on it, but a better-trained reweighter would fit more "
                        "precisely")
    elif gate is not None and gate.get("verdict") == "fail":
        failed = gate.get("failed", [])
        if "score" in failed or not failed:
            warnings.append("closure gate failed at the fitted theta (score"
                            f"{': ' + gate['reason'] if gate.get('reason') else ''}): the "
                            "learned ratio there is off by more than its stated error; do "
                            "not trust this fit")
        else:
            warnings.append(f"closure gate failed at the fitted theta ({', '.join(failed)}): "
                            "the reweighted reference differs from the target there at the "
                            "gate's precision; the implied bias is within the reweighter "
                            "error, but more training events or epochs would shrink it")
    if not fit.get("valid", True):
        warnings.append("the minimiser did not converge")
    return fit
