"""Coverage: repeat a whole pipeline with fresh samples, training and data; count how often
the reported intervals contain the truth.

Each repeat ``k`` runs the spec with its own seed (``derive_seed(seed, "coverage", k)``,
so every sample, every training and the data are new) and, with ``truths="range"``, the
data's fitted parameters set to a truth drawn uniformly from ``truth_range`` (default:
the central 90 % of each parameter's range, so that a fit a few errors from a hard limit
is not truncated by it). The repeats go through the executor, so ``--workers`` or a dask
scheduler spreads them.

Reported per parameter: the pulls (θ̂ − θ_true)/σ with their mean and standard deviation
(with the standard errors of both), the fraction of repeats whose ±1σ interval and whose
95 % interval (``interval_95`` where the fit has it, ±1.96σ otherwise) contain the truth,
with binomial errors √(c(1−c)/N), and the median ratio of the total error to the analytic
one where the source has an exact likelihood. Where the fits are simulation-corrected
(:mod:`ratiofit.correction`), the learned fits before the correction are summarised too
(``summary[name]["learned"]``).

Examples
--------
>>> summarise([0.0, 1.0, -1.0, 0.5], [1.0, 1.0, 1.0, 1.0], [0.1, 0.2, -2.5, 0.3])["covered_68"]
0.75
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from .errors import RatiofitError
from .execution import Executor, Job, LocalExecutor
from .inference.errors import InferenceError
from .registry import get_registry
from .seeding import derive_rng, derive_seed
from .spec import Spec, ThetaSpec

__all__ = ["COMPARISONS", "POI_TRUTHS", "plot_pulls", "repeat_inference_spec", "repeat_spec",
           "run_coverage", "summarise", "summarise_runs", "truth_ranges"]


def repeat_spec(spec: Spec, k: int, truth: dict[str, float] | None) -> Spec:
    """Repeat ``k`` of ``spec``: its own seed and (optionally) new truths for the data."""
    assert spec.fit is not None
    samples = dict(spec.samples)
    if truth:
        data = samples[spec.fit.data]
        theta = dict(data.theta)
        theta.update({n: ThetaSpec(kind="fixed", value=float(v)) for n, v in truth.items()})
        samples[spec.fit.data] = replace(data, theta=theta)
    outputs = replace(spec.outputs, plots=False, closure={})
    return replace(spec, seed=derive_seed(spec.seed, "coverage", k), samples=samples,
                   outputs=outputs)


def _one(spec: Spec, k: int, truth: dict[str, float] | None, outdir: str) -> dict[str, Any]:
    from .workflow import run_spec

    rep = repeat_spec(spec, k, truth)
    result = run_spec(rep, Path(outdir) / f"repeat-{k}", plots=False, registry=get_registry())
    fit = result["fit"]
    data = rep.samples[rep.fit.data] if rep.fit else None
    out: dict[str, Any] = {"repeat": k, "seed": rep.seed, "parameters": {}}
    for n, e in fit["parameters"].items():
        t = e.get("truth", truth.get(n) if truth else None)
        if t is None and data is not None and n in data.theta:
            t = data.theta[n].value
        out["parameters"][n] = {
            "truth": t, "value": e["value"], "error": e["error"],
            "interval_95": e.get("interval_95"), "components": e.get("error_components"),
            "analytic": e.get("analytic"), "analytic_error": e.get("analytic_error")}
        learned = (fit.get("learned") or {}).get("parameters", {}).get(n)
        if learned is not None:  # the learned fit before the simulation correction
            out["parameters"][n]["learned"] = {
                "value": learned["value"], "error": learned["error"],
                "interval_95": learned.get("interval_95"),
                "components": learned.get("error_components")}
    out["gate"] = (fit.get("gate") or {}).get("verdict")
    out["warnings"] = fit.get("warnings", [])
    out["seconds"] = result["timing"]["total_seconds"]
    return out


#: Fits of the same repeats summarised beside the reported one: the learned fit before the
#: simulation correction, and an inference fit without the learned-ratio modifiers.
COMPARISONS = ("learned", "without_learned_ratio")


def repeat_inference_spec(spec: Spec, k: int, truth: dict[str, float] | None) -> Spec:
    """Repeat ``k`` of an inference spec: its own seed; with ``truth``, the data's θ of each
    nuisance at its truth, a Poisson-drawn number of data events, a signal sample of
    Poisson(POI·yield) events added to the data (signal injection), and each nuisance's
    auxiliary measurement drawn from N(θ_true, σ), and each lumi and normsys constraint's
    from N(nominal, σ) (the data's truth is their nominal) unless the spec sets it."""
    ispec = spec.inference
    assert ispec is not None
    seed = derive_seed(spec.seed, "coverage", k)
    samples = dict(spec.samples)
    # a repeat's fits are what coverage measures: its hypothesis test, limit scan, impacts
    # and profile scan (tens of further fits each) are left out
    ispec = replace(ispec, hypotest_poi=None, upper_limit=False, impacts=False, scan=False)
    if not truth:
        return replace(spec, seed=seed, inference=ispec,
                       outputs=replace(spec.outputs, plots=False))
    rng = derive_rng(seed, "coverage-pseudo-data")
    nuisances = {}
    for name, ns in ispec.nuisances.items():
        nuisances[name] = replace(ns, measured=float(truth[name] + ns.sigma * rng.normal()))
    channels = {}
    drawn: set[str] = set()
    j = 0
    for cname, ch in ispec.channels.items():
        data_names = list(ch.data)
        for d in data_names:
            if d in drawn:  # a data sample two channels bin: drawn once
                continue
            drawn.add(d)
            sd = samples[d]
            if sd.n_events is None:
                raise RatiofitError(f"{spec.path}: coverage redraws the data sample '{d}' at "
                                    "each repeat's truth, and it reads its files' rows: give "
                                    "the data as a generated sample")
            theta = dict(sd.theta)
            for name, ns in ispec.nuisances.items():
                theta[ns.parameter] = ThetaSpec(kind="fixed", value=float(truth[name]))
            samples[d] = replace(sd, theta=theta, n_events=int(rng.poisson(sd.n_events)))
        for ss in (s for s in ch.samples.values() if s.signal):
            src = samples[ss.sample]
            if ss.yield_ is None and src.n_events is None:
                raise RatiofitError(f"{spec.path}: coverage injects the signal sample "
                                    f"'{ss.sample}' by its number of events, and it reads "
                                    "every row of its files: give the sample a yield")
            expected = truth[ss.poi or ispec.poi] * (ss.yield_ if ss.yield_ is not None
                                                     else float(src.n_events or 0))
            n = int(rng.poisson(expected))
            if n > 0:
                name = f"coverage-signal-{j}"
                samples[name] = replace(src, name=name, n_events=n)
                data_names.append(name)
            j += 1
        channels[cname] = replace(ch, data=tuple(data_names))
    # the standard constraints' auxiliary measurements drawn around their truth (the
    # nominal, at which the data are simulated): a fit's error holds their uncertainty,
    # so repeats with them fixed at nominal leave out a fluctuation the error counts
    # (for specs/inference_analysis.yaml a small one: its control region fixes the
    # normalisation, and the POI moved by a few hundredths of its error with them,
    # docs/coverage.md's -0.25-aux run). Their own stream: the other draws stay as
    # they were.
    aux_rng = derive_rng(seed, "coverage-standard-auxdata")
    drawn_aux: dict[str, float] = {}
    for cname, ch in list(channels.items()):
        samples_out = {}
        for sname, ss in ch.samples.items():
            mods = []
            for kind, mname, mdata in ss.modifiers:
                if kind in ("lumi", "normsys") and "measured" not in mdata:
                    if mname not in drawn_aux:
                        drawn_aux[mname] = float(
                            1.0 + float(mdata["sigma"]) * aux_rng.normal() if kind == "lumi"
                            else aux_rng.normal())
                    mdata = {**mdata, "measured": drawn_aux[mname]}
                mods.append((kind, mname, mdata))
            samples_out[sname] = replace(ss, modifiers=tuple(mods))
        channels[cname] = replace(ch, samples=samples_out)
    inference = replace(ispec, channels=channels, nuisances=nuisances)
    return replace(spec, seed=seed, samples=samples, inference=inference,
                   outputs=replace(spec.outputs, plots=False, closure={}))


def _one_inference(spec: Spec, k: int, truth: dict[str, float] | None, outdir: str
                   ) -> dict[str, Any]:
    from .workflow import run_spec

    rep = repeat_inference_spec(spec, k, truth)
    ispec = rep.inference
    assert ispec is not None
    try:
        result = run_spec(rep, Path(outdir) / f"repeat-{k}", plots=False,
                          registry=get_registry())
    except InferenceError as exc:
        # a fit that fails in one repeat is a result of the pipeline, not of the machine:
        # kept (and counted as not covering), never dropped or retried
        return {"repeat": k, "seed": rep.seed, "failed": str(exc), "parameters": {
            n: {"truth": (truth or {}).get(n)} for n in [*(ispec.pois or (ispec.poi,)),
                                                         *ispec.nuisances]},
            "gate": None, "warnings": [], "seconds": None}
    inf = result["inference"]
    out: dict[str, Any] = {"repeat": k, "seed": rep.seed, "parameters": {},
                           "measured": {n: ns.measured for n, ns in ispec.nuisances.items()}}

    def entry(fit: dict[str, Any], name: str, truth: float | None) -> dict[str, Any]:
        i = fit["names"].index(name)
        value, error = fit["values"][i], fit["errors"][i]
        if name in ispec.nuisances:  # in θ units
            pull = fit["pulls"][name]
            value, error = pull["theta"], pull["theta_error"]
        intervals = fit.get("poi_intervals") if name == fit.get("poi") else None
        if intervals is not None and truth is not None:
            # an asymmetric (profile-likelihood) interval: the error is the side towards
            # the truth, so |pull| <= 1 exactly where the 68 % interval holds the truth
            lo, hi = intervals["68"]
            return {"value": value, "error": (value - lo) if value > truth else (hi - value),
                    "error_hesse": error, "interval_68": [lo, hi],
                    "interval_95": list(intervals["95"])}
        z = 1.959963984540054
        return {"value": value, "error": error, "interval_95": [value - z * error,
                                                                value + z * error]}

    if truth is None:  # the spec's own data: background only, θ as the data sample has it
        data = rep.samples[ispec.data[0]]
        truth = dict.fromkeys(ispec.pois or (ispec.poi,), 0.0)
        for n, ns in ispec.nuisances.items():
            value = data.theta[ns.parameter].value if ns.parameter in data.theta else None
            if value is not None:
                truth[n] = value
    for name in [*(ispec.pois or (ispec.poi,)), *ispec.nuisances]:
        row = {"truth": truth.get(name), **entry(inf["fit"], name, truth.get(name)),
               "components": (inf["fit"].get("error_components") or {}).get(name)}
        if "fit_without_learned_ratio" in inf:
            row["without_learned_ratio"] = entry(inf["fit_without_learned_ratio"], name,
                                                 truth.get(name))
        if "fit_before_correction" in inf:  # the binned fit's simulation correction
            row["learned"] = entry(inf["fit_before_correction"], name, truth.get(name))
        corr = inf["fit"].get("correction") or {}
        if corr.get("applied") and name in corr.get("parameters", {}):
            # how the correction scaled this parameter's statistical error, and the slope
            # of the learned fit in it (J's diagonal): the coverage's diagnosis
            j = list(corr["parameters"]).index(name)
            row["correction"] = {
                "error_scale": corr["error_scale"][j],
                "jacobian": None if corr.get("jacobian") is None else corr["jacobian"][j][j],
                "at_limit": name in (corr.get("at_limit") or {})}
        out["parameters"][name] = row
    out["gate"] = None
    out["warnings"] = inf.get("warnings", [])
    out["seconds"] = result["timing"]["total_seconds"]
    return out


def summarise(values: Sequence[float], errors: Sequence[float], truths: Sequence[float],
              intervals_95: Sequence[Sequence[float] | None] | None = None,
              analytic_errors: Sequence[float | None] | None = None, failed: int = 0
              ) -> dict[str, Any]:
    """Pull mean and width, 68 %/95 % coverage with binomial errors, error/analytic.
    ``failed`` repeats (a fit that did not converge) count as not covering."""
    v, e, t = (np.asarray(a, dtype=np.float64) for a in (values, errors, truths))
    n_ok = len(v)
    n = n_ok + failed
    pulls = (v - t) / e
    c68 = float(np.sum(np.abs(pulls) <= 1.0) / n)
    if intervals_95 is not None and all(i is not None for i in intervals_95):
        iv = np.asarray(intervals_95, dtype=np.float64)
        inside95 = (iv[:, 0] <= t) & (t <= iv[:, 1])
    else:
        inside95 = np.abs(pulls) <= 1.959963984540054
    c95 = float(np.sum(inside95) / n)
    width = float(np.std(pulls, ddof=1)) if n_ok > 1 else float("nan")
    out: dict[str, Any] = {
        "repeats": n, "failed": failed, "pulls": pulls.tolist(),
        "pull_mean": float(np.mean(pulls)), "pull_mean_error": width / np.sqrt(n_ok),
        "pull_width": width, "pull_width_error": width / np.sqrt(2 * max(n_ok - 1, 1)),
        "covered_68": c68, "covered_68_error": float(np.sqrt(c68 * (1 - c68) / n)),
        "covered_95": c95, "covered_95_error": float(np.sqrt(c95 * (1 - c95) / n)),
        "max_abs_pull": float(np.max(np.abs(pulls)))}
    if analytic_errors is not None and all(a is not None for a in analytic_errors):
        out["median_error_over_analytic"] = float(np.median(
            e / np.asarray(analytic_errors, dtype=np.float64)))
    return out


def truth_ranges(spec: Spec) -> dict[str, tuple[float, float]]:
    """The default range of each parameter whose coverage is measured: the central 90 % of
    a fitted parameter's range; for an inference, :data:`POI_TRUTHS` for the POI and the
    central 90 % of θ₀ ± 2σ of each nuisance (within the parameter's range)."""
    out: dict[str, tuple[float, float]] = {}

    def central(lo: float, hi: float) -> tuple[float, float]:
        return lo + 0.05 * (hi - lo), hi - 0.05 * (hi - lo)

    if spec.fit is not None:
        for n in spec.fit.parameters:
            p = spec.parameters[n]
            out[n] = central(p.low, p.high)
    elif spec.inference is not None:
        for q in spec.inference.pois or (spec.inference.poi,):
            out[q] = POI_TRUTHS
        for n, ns in spec.inference.nuisances.items():
            lo, hi = ns.nominal - 2 * ns.sigma, ns.nominal + 2 * ns.sigma
            if ns.parameter in spec.parameters.names:
                p = spec.parameters[ns.parameter]
                lo, hi = max(lo, p.low), min(hi, p.high)
            out[n] = central(lo, hi)
    return out


#: Default truths of an inference's POI (signal strength): well inside the bounds [0, 10]
#: of ratiofit's pyhf models, so that a fit a few errors away is not truncated by them.
POI_TRUTHS = (0.5, 5.0)


def run_coverage(spec: Spec, *, repeats: int, outdir: str | Path, truths: str = "range",
                 truth_range: dict[str, tuple[float, float]] | None = None,
                 executor: Executor | None = None) -> dict[str, Any]:
    """Run ``repeats`` repeats of the spec's pipeline; summarise each fitted parameter (a
    ``fit``'s parameters, or an ``inference``'s POI and reweighter nuisances)."""
    if spec.fit is None and spec.inference is None:
        raise RatiofitError(f"{spec.path}: coverage needs a 'fit' or an 'inference' section")
    from .provenance import provenance

    made_by = provenance()  # the code the repeats run (before they start: HEAD may move on)
    ranges = {**truth_ranges(spec), **(truth_range or {})}
    names = list(ranges)
    rng = derive_rng(spec.seed, "coverage-truths")
    jobs = []
    for k in range(repeats):
        truth = None
        if truths == "range":
            truth = {n: float(rng.uniform(*ranges[n])) for n in names}
        function = _one if spec.fit is not None else _one_inference
        jobs.append(Job(name=f"repeat-{k}", function=function,
                        kwargs={"spec": spec, "k": k, "truth": truth, "outdir": str(outdir)}))
    runs = (executor or LocalExecutor()).run(jobs)
    return {"ratiofit": made_by, "spec": spec.path, "repeats": repeats, "truths": truths,
            "ratiofit_commit": made_by["commit"],
            "truth_range": {n: list(v) for n, v in (truth_range or {}).items()},
            "summary": summarise_runs(runs, names),
            "gate_failures": sum(r["gate"] == "fail" for r in runs), "runs": runs}


def summarise_runs(runs: Sequence[dict[str, Any]], names: Sequence[str] | None = None
                   ) -> dict[str, Any]:
    """:func:`summarise` of each parameter over repeat results (``_one``'s), with the
    :data:`COMPARISONS` fits beside it where every repeat has them."""
    summary: dict[str, Any] = {}
    failed = sum("failed" in r for r in runs)
    runs = [r for r in runs if "failed" not in r]
    for n in names if names is not None else list(runs[0]["parameters"]):
        rows = [r["parameters"][n] for r in runs]
        truths = [r["truth"] for r in rows]
        analytic = [r.get("analytic_error") for r in rows]
        summary[n] = summarise([r["value"] for r in rows], [r["error"] for r in rows], truths,
                               [r["interval_95"] for r in rows], analytic, failed=failed)
        for other in COMPARISONS:
            if all(other in r for r in rows):
                summary[n][other] = summarise(
                    [r[other]["value"] for r in rows], [r[other]["error"] for r in rows],
                    truths, [r[other]["interval_95"] for r in rows], analytic, failed=failed)
    return summary


def plot_pulls(result: dict[str, Any], path: str | Path) -> Path:
    """Histogram of each parameter's pulls with the unit Gaussian (hist + mplhep)."""
    import hist
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import mplhep

    names = list(result["summary"])
    fig, axes = plt.subplots(1, len(names), figsize=(5 * len(names), 4), squeeze=False)
    for ax, n in zip(axes[0], names, strict=True):
        s = result["summary"][n]
        h: Any = hist.Hist(hist.axis.Regular(16, -4, 4, name="pull"))
        h.fill(np.clip(s["pulls"], -3.999, 3.999))  # plot only: over/underflow in edge bins
        mplhep.histplot(h, ax=ax, histtype="errorbar", label=f"{s['repeats']} repeats")
        x = np.linspace(-4, 4, 200)
        ax.plot(x, s["repeats"] * 0.5 * np.exp(-x**2 / 2) / np.sqrt(2 * np.pi), label="N(0, 1)")
        ax.set_xlabel(f"pull of {n}")
        ax.set_title(f"68%: {s['covered_68']:.2f} ± {s['covered_68_error']:.2f}, "
                     f"width {s['pull_width']:.2f}")
        ax.legend()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(path)
    return path
