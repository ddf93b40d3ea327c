"""Inference benchmark: the unbinned model's fit with three nuisances at 10⁶ events, and the
binned model's exact (morphing) vs portable (histosys) modes.

``python bench/bench_inference.py`` writes ``bench/results/inference.json`` (atomically,
with the machine record of ``run_bench.py``) and prints a summary; about 2½ minutes on
2 CPU cores (most of it in the 10⁶-event fits and the two upper limits). ``--quick``
(10⁴/10⁵ events, a smaller training, no JSON unless ``--output``) is for trying the script
out.

The problem
    Background N(μ_b, σ_b²), modelled by a reweighter in (mu, sigma) against its nominal
    N(0, 1); signal N(2, 0.3) with its exact log ratio to N(0, 1), expected yield 5% of
    N; background yield 0.95·N with a normsys ``bkg_norm`` (lo/hi 0.95/1.05). Nuisances:
    ``mean`` (θ = mu, θ₀ = 0, σ = 0.1), ``width`` (θ = sigma, θ₀ = 1, σ = 0.05) and
    ``bkg_norm`` — three nuisances and the POI ``mu_sig``. Data: N events, 5% from the
    signal and 95% from N(0.05, 1.02²) (μ_b = 0.05, σ_b = 1.02). Simulated samples: 2·10⁵
    N(0, 1) background events (Z(θ) and the templates) and 2·10⁴ signal events.

Reweighters
    ``mlp``: the ``mlp`` architecture (hidden [64, 64, 64], swish, θ as input) with the
    ``bce`` loss, both from ``ratiofit.registry.get_registry()``, trained for the benchmark
    with :func:`ratiofit.training.train_reweighter` on 2·10⁵ events per class (reference
    N(0, 1); target N(mu, sigma²) with mu ~ U[-1, 1], sigma ~ U[0.7, 1.4] per event), 3
    epochs, batch 1024 (training time recorded, not part of any ratio). ``analytic``: the
    exact ratio (:func:`ratiofit.testing.analytic_gaussian_width_reweighter`, a one-op
    Keras model: the same code path without the network's cost).

1. Unbinned fit (``unbinned``)
    For N = 10⁵ and 10⁶ data events and each reweighter, a fresh
    :class:`~ratiofit.inference.unbinned_model.UnbinnedModel` (cold caches) is built and
    ``fit_model(model)`` — MIGRAD + HESSE — is timed, split into the cost's construction
    (``model.nll()``: log r_s of the data, Z(θ₀) from one pass over the background sample)
    and the minimisation (``fit_model(model, cost)``); ``fit_seconds`` is their sum, i.e.
    what ``fit_model(model)`` costs. Each is repeated ``REPEATS`` times (fresh model each
    time); the headline is the mean. Recorded: MINUIT's ``nfcn`` (value calls), the cost's
    ``n_evaluations`` (distinct parameter points evaluated, value or gradient, including
    the Hessian's central differences), the network passes (forward / forward+gradient,
    over the data and over the background sample, counted and timed by a thin wrapper
    around the reweighter's two methods), the number of Hessians computed and the time
    spent in them. Before any timing every event set is passed once through both methods
    so TensorFlow's tracing is not charged to a fit.

    In-run reference: one plain network evaluation, ``rw.log_ratio_and_gradient(features=
    data, theta={mu: 0.05, sigma: 1.02})`` on the same 10⁶ data events — median of 3 after
    a warm-up call — and ``fit_seconds / one_evaluation_seconds``. The forward-only
    ``rw.log_ratio`` and both calls over the 2·10⁵ background events are timed the same way
    (for the breakdown in ``notes``). Goal (the issue): the trained reweighter's fit of 10⁶
    events with three nuisances under ``goal_seconds`` = 30 s on 2 cores (``goal_met``).

2. Binned exact vs portable (``binned``)
    One channel, 32 bins on [-4, 4] (tails folded into the end bins, so that every bin
    has simulated events), the same background (with the mlp's
    ``mean`` and ``width`` as :class:`~ratiofit.inference.ReweighterNuisance` and the
    normsys), signal and 10⁶-event data histogram. Timed, each the median of
    ``BINNED_REPEATS``: ``build_templates`` with ``morph=True`` (nominal, ±1σ and the
    13-point morphing grid per nuisance) and ``morph=False`` (nominal and ±1σ only);
    the model construction (``exact_model`` / ``portable_model``, staterror on; the first
    call in the process is reported apart: ``exact_model``'s carries a one-time set-up of
    ~0.6 s, later calls, on any templates, take milliseconds); one MLE
    fit (``ratiofit.inference.fit``, pyhf numpy backend + minuit, after one warm-up fit);
    and one asymptotic CLs upper limit (``ratiofit.inference.upper_limit``) on the same
    explicit 11-point POI scan in both modes (in-run reference: pyhf's own
    ``upper_limit`` on that scan, which repeats the three fits that do not depend on the
    tested value at every point; ``upper_limit_over_pyhf_scan``), [μ̂ − σ̂, μ̂ + 4σ̂] of
    the exact fit (the data hold a 5% signal, so only the observed limit is read; the
    background-only expected band lies below the scan). Ratios are exact / portable (for
    the build: morph=True / morph=False).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_bench import machine_info, write_json  # one copy of the machine record

RESULTS = Path(__file__).resolve().parent / "results" / "inference.json"
SEED = 20240801
SIZES = (100_000, 1_000_000)
REPEATS = 2
N_BACKGROUND = 200_000
N_SIGNAL_SAMPLE = 20_000
SIGNAL_FRACTION = 0.05
SIGNAL_MEAN, SIGNAL_WIDTH = 2.0, 0.3
DATA_MEAN, DATA_WIDTH = 0.05, 1.02
MEAN_SIGMA, WIDTH_SIGMA = 0.1, 0.05
NORMSYS = {"lo": 0.95, "hi": 1.05}
MU_RANGE, SIGMA_RANGE = (-1.0, 1.0), (0.7, 1.4)
HIDDEN = [64, 64, 64]
TRAIN_PER_CLASS, TRAIN_EPOCHS = 200_000, 3
GOAL_SECONDS = 30.0
EDGES = np.linspace(-4.0, 4.0, 33)
BINNED_REPEATS = 3
LIMIT_SCAN_POINTS = 11

__all__ = ["NetworkMeter", "main", "make_model", "time_unbinned_fit", "train_mlp"]


# -- inputs ----------------------------------------------------------------------------------
def _events(x: np.ndarray, total: float | None = None) -> Any:
    from ratiofit.events import EventSet

    w = None if total is None else np.full(len(x), total / len(x))
    return EventSet(features=np.asarray(x, dtype=np.float64)[:, None], feature_names=("x0",),
                    weights=w)


def log_signal_ratio(events: Any) -> np.ndarray:
    """Exact log N(x; 2, 0.3)/N(x; 0, 1)."""
    x = events.features[:, 0]
    return (-np.log(SIGNAL_WIDTH) - 0.5 * ((x - SIGNAL_MEAN) / SIGNAL_WIDTH) ** 2
            + 0.5 * x * x)


def make_data(n: int, rng: np.random.Generator) -> Any:
    n_s = round(SIGNAL_FRACTION * n)
    return _events(np.concatenate([rng.normal(SIGNAL_MEAN, SIGNAL_WIDTH, n_s),
                                   rng.normal(DATA_MEAN, DATA_WIDTH, n - n_s)]))


def train_mlp(*, per_class: int = TRAIN_PER_CLASS, epochs: int = TRAIN_EPOCHS,
              seed: int = SEED) -> Any:
    """An mlp/bce reweighter for N(mu, sigma²)/N(0, 1), trained briefly."""
    from ratiofit.events import EventSet
    from ratiofit.parameters import Parameter, ParameterSet
    from ratiofit.registry import get_registry
    from ratiofit.spec import TrainingSpec
    from ratiofit.training import train_reweighter

    rng = np.random.default_rng(seed)
    mu = rng.uniform(*MU_RANGE, per_class)
    sigma = rng.uniform(*SIGMA_RANGE, per_class)
    reference = EventSet(features=rng.normal(size=(per_class, 1)), feature_names=("x0",))
    target = EventSet(features=rng.normal(mu, sigma)[:, None], feature_names=("x0",),
                      theta=np.stack([mu, sigma], axis=1), theta_names=("mu", "sigma"))
    reg = get_registry()
    return train_reweighter(
        reference=reference, target=target,
        parameters=ParameterSet([
            Parameter(name="mu", nominal=0.0, low=MU_RANGE[0], high=MU_RANGE[1]),
            Parameter(name="sigma", nominal=1.0, low=SIGMA_RANGE[0], high=SIGMA_RANGE[1])]),
        architecture=reg.get("architecture", "mlp"),
        architecture_options={"hidden": HIDDEN, "activation": "swish", "theta_input": True},
        loss=reg.get("loss", "bce"),
        training=TrainingSpec(epochs=epochs, batch_size=1024, patience=epochs,
                              checkpoint=False, restore_best=False),
        seed=seed + 1)


def make_model(rw: Any, data: Any, background: Any, signal: Any) -> Any:
    """The unbinned model: POI mu_sig, nuisances mean, width (the reweighter's) and the
    background's normsys bkg_norm."""
    from ratiofit.inference import StandardModifier
    from ratiofit.inference.unbinned_model import (
        UnbinnedChannel,
        UnbinnedComponent,
        UnbinnedModel,
        UnbinnedNuisance,
    )

    n = len(data)
    channel = UnbinnedChannel(name="SR", data=data, nuisances=("mean", "width"), components=(
        UnbinnedComponent(name="background", events=background,
                          yield_=(1 - SIGNAL_FRACTION) * n,
                          modifiers=(StandardModifier("normsys", "bkg_norm", NORMSYS),)),
        UnbinnedComponent(name="signal", events=signal, yield_=SIGNAL_FRACTION * n,
                          log_ratio=log_signal_ratio, poi="mu_sig")))
    return UnbinnedModel(channels=[channel], reweighter=rw, pois=["mu_sig"], nuisances=[
        UnbinnedNuisance("mean", "mu", 0.0, MEAN_SIGMA),
        UnbinnedNuisance("width", "sigma", 1.0, WIDTH_SIGMA)])


# -- instrumentation ---------------------------------------------------------------------------
class NetworkMeter:
    """Counts and times the reweighter's ``log_ratio`` (forward) and
    ``log_ratio_and_gradient`` (gradient) calls per event-set size, by shadowing the two
    bound methods on the instance (a dictionary look-up and two clock reads per call)."""

    def __init__(self, rw: Any) -> None:
        self.rw = rw
        self.stats: dict[tuple[str, int], list[float]] = {}
        for kind, attr in (("forward", "log_ratio"), ("gradient", "log_ratio_and_gradient")):
            setattr(rw, attr, self._wrap(kind, getattr(rw, attr)))

    def _wrap(self, kind: str, fn: Any) -> Any:
        def call(*, features: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(features=features, **kwargs)
            finally:
                entry = self.stats.setdefault((kind, len(features)), [0, 0.0])
                entry[0] += 1
                entry[1] += time.perf_counter() - t0
        return call

    def reset(self) -> None:
        self.stats = {}

    def seconds(self) -> float:
        return float(sum(s for _, s in self.stats.values()))

    def summary(self, names: dict[int, str]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for (kind, n), (calls, seconds) in sorted(self.stats.items()):
            out[f"{names.get(n, str(n))}_{kind}"] = {"events": n, "calls": int(calls),
                                                     "seconds": seconds}
        return out

    def detach(self) -> None:
        for attr in ("log_ratio", "log_ratio_and_gradient"):
            self.rw.__dict__.pop(attr, None)


def _median_time(fn: Any, repeats: int = 3) -> tuple[float, list[float]]:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times


def time_unbinned_fit(rw: Any, meter: NetworkMeter, data: Any, background: Any,
                      signal: Any) -> dict[str, Any]:
    """Build a fresh model and time ``model.nll()`` + ``fit_model(model, cost)``."""
    from ratiofit.inference import InferenceError
    from ratiofit.inference.unbinned_analysis import fit_model

    model = make_model(rw, data, background, signal)
    meter.reset()
    t0 = time.perf_counter()
    cost = model.nll()
    build = time.perf_counter() - t0
    build_network = meter.seconds()
    hessians = {"calls": 0, "seconds": 0.0, "network_seconds": 0.0}
    inner = cost.hessian

    def hessian(*args: float) -> np.ndarray:
        t, net = time.perf_counter(), meter.seconds()
        try:
            return inner(*args)
        finally:
            hessians["calls"] += 1
            hessians["seconds"] += time.perf_counter() - t
            hessians["network_seconds"] += meter.seconds() - net

    cost.hessian = hessian  # instance attribute: iminuit looks it up on the cost
    t1 = time.perf_counter()
    result, error = None, None
    try:
        result = fit_model(model, cost)
    except InferenceError as exc:  # recorded, so one failed fit does not lose the run
        error = str(exc)
    minimise = time.perf_counter() - t1
    st = cost._channels[0]
    names = {len(data): "data", len(background): "background"}
    row: dict[str, Any] = {
        "n_events": len(data), "fit_seconds": build + minimise, "build_seconds": build,
        "minimise_seconds": minimise, "nfcn": None if result is None else result.nfev,
        "cost_evaluations": cost.n_evaluations,
        "data_network_calls": st.source.network_calls,
        "background_network_calls": st.reference.network_calls,
        "network": meter.summary(names),
        "network_seconds": meter.seconds(),
        "build_network_seconds": build_network,
        "hessians": hessians, "hessian_fixes": cost.hessian_fixes,
        "valid": False if result is None else bool(result.valid), "error": error}
    # after the counts above: these evaluations are not part of the fit
    start = np.array([model.start[n] for n in model.names])
    row["arithmetic_ms_per_evaluation"] = _arithmetic_ms(
        cost, start if result is None else result.values)
    if result is not None:
        row.update({
            "values": dict(zip(result.names, map(float, result.values), strict=True)),
            "errors": dict(zip(result.names, map(float, result.errors), strict=True)),
            "theta_hat": {n: p.theta for n, p in result.pulls.items() if p.theta is not None}})
    return row


def _arithmetic_ms(cost: Any, values: np.ndarray, repeats: int = 5) -> dict[str, float]:
    """The likelihood's own arithmetic per evaluation (ms, median), without the network:
    at the fitted θ (LRU hits for log w and Z) with the POI moved a little per call so the
    cost's one-point memo does not answer."""
    out = {}
    for label, gradient in (("value", False), ("value_and_gradient", True)):
        times = []
        for k in range(repeats):
            x = np.array(values, dtype=np.float64)
            x[0] += 1e-6 * (k + 1) * (1 if gradient else -1)
            t0 = time.perf_counter()
            cost._evaluate(x, gradient)
            times.append(time.perf_counter() - t0)
        out[label] = 1e3 * statistics.median(times)
    return out


def _mean_row(rows: list[dict[str, Any]]) -> dict[str, Any]:
    keys = ("fit_seconds", "build_seconds", "minimise_seconds", "network_seconds")
    return {k: statistics.fmean(r[k] for r in rows) for k in keys}


# -- 1. unbinned -------------------------------------------------------------------------------
def unbinned_section(reweighters: dict[str, Any], datasets: dict[int, Any], background: Any,
                     signal: Any, repeats: int) -> dict[str, Any]:
    big = datasets[max(datasets)]
    theta = {"mu": DATA_MEAN, "sigma": DATA_WIDTH}
    out: dict[str, Any] = {}
    for name, rw in reweighters.items():
        # trace TensorFlow's functions for every event set outside the timings
        for events in [*datasets.values(), background, signal]:
            rw.log_ratio(features=events, theta=theta)
            rw.log_ratio_and_gradient(features=events, theta=theta)
        reference: dict[str, Any] = {}
        for label, events in (("data", big), ("background", background)):
            for kind, fn in (("gradient", rw.log_ratio_and_gradient),
                             ("forward", rw.log_ratio)):
                med, times = _median_time(lambda fn=fn, events=events: fn(
                    features=events, theta=theta))
                reference[f"{label}_{kind}"] = {"events": len(events), "median_seconds": med,
                                                "all_seconds": times}
        one = reference["data_gradient"]["median_seconds"]
        meter = NetworkMeter(rw)
        entry: dict[str, Any] = {
            "one_evaluation": {"call": "rw.log_ratio_and_gradient(features=data, theta="
                                       f"{theta}) on {len(big)} events, median of 3",
                               "seconds": one},
            "reference_passes": reference, "by_size": {}}
        try:
            for n, data in datasets.items():
                rows = [time_unbinned_fit(rw, meter, data, background, signal)
                        for _ in range(repeats)]
                mean = _mean_row(rows)
                entry["by_size"][str(n)] = {
                    "fits": rows, "mean": mean,
                    "fit_over_one_evaluation": mean["fit_seconds"] / one if n == len(big)
                    else None}
                r = rows[-1]
                print(f"unbinned {name:8s} N={n:>8d}: fit {mean['fit_seconds']:6.2f} s "
                      f"(network {mean['network_seconds']:.2f} s; nfcn {r['nfcn']}, "
                      f"{r['cost_evaluations']} cost evaluations, "
                      f"{r['data_network_calls']} data / {r['background_network_calls']} "
                      f"background network passes, {r['hessians']['calls']} Hessians)",
                      flush=True)
        finally:
            meter.detach()
        out[name] = entry
    return out


def _breakdown(entry: dict[str, Any], n: int) -> dict[str, Any]:
    """Where the time of the last fit at ``n`` went (seconds)."""
    r = entry["by_size"][str(n)]["fits"][-1]
    net = {k: v["seconds"] for k, v in r["network"].items()}
    calls = {k: v["calls"] for k, v in r["network"].items()}
    return {"fit_seconds": r["fit_seconds"],
            "network_seconds": r["network_seconds"],
            "network_fraction": r["network_seconds"] / r["fit_seconds"],
            "network_seconds_by_pass": net, "network_calls_by_pass": calls,
            "in_hessians_seconds": r["hessians"]["seconds"],
            "in_hessians_network_seconds": r["hessians"]["network_seconds"],
            "hessians": r["hessians"]["calls"],
            "cost_evaluations": r["cost_evaluations"],
            "arithmetic_ms_per_evaluation": r["arithmetic_ms_per_evaluation"],
            "likelihood_arithmetic_and_minuit_seconds":
                r["fit_seconds"] - r["network_seconds"]}


# -- 2. binned ---------------------------------------------------------------------------------
def binned_section(rw: Any, data: Any, background_x: np.ndarray, signal_x: np.ndarray,
                   repeats: int) -> dict[str, Any]:
    import pyhf

    from ratiofit.inference import (
        Channel,
        ReweighterNuisance,
        Sample,
        StandardModifier,
        build_templates,
        exact_model,
        fit,
        portable_model,
        upper_limit,
    )
    from ratiofit.inference.binned_fit import _numpy_minuit

    n = len(data)
    bkg = _events(background_x, (1 - SIGNAL_FRACTION) * n)
    sig = _events(signal_x, SIGNAL_FRACTION * n)
    nuisances = [ReweighterNuisance(name="mean", reweighter=rw, parameter="mu", nominal=0.0,
                                    sigma=MEAN_SIGMA),
                 ReweighterNuisance(name="width", reweighter=rw, parameter="sigma",
                                    nominal=1.0, sigma=WIDTH_SIGMA)]
    channel = Channel(name="SR", observable="x0", edges=EDGES, observed=data, samples=(
        Sample(name="signal", events=sig, signal=True),
        Sample(name="background", events=bkg, nuisances=("mean", "width"),
               modifiers=(StandardModifier("normsys", "bkg_norm", NORMSYS),))))

    def timed(fn: Any) -> tuple[float, list[float], Any]:
        times, out = [], None
        for _ in range(repeats):
            t0 = time.perf_counter()
            out = fn()
            times.append(time.perf_counter() - t0)
        return statistics.median(times), times, out

    build_templates(channels=[channel], nuisances=nuisances, flow="fold")  # warm-up
    result: dict[str, Any] = {"bins": len(EDGES) - 1, "range": [EDGES[0], EDGES[-1]],
                              "data_events": n, "repeats": repeats, "modes": {}}
    tpl: dict[bool, Any] = {}
    for morph in (True, False):
        med, times, tpl[morph] = timed(lambda morph=morph: build_templates(
            channels=[channel], nuisances=nuisances, flow="fold", morph=morph))
        result[f"template_build_morph_{str(morph).lower()}"] = {"median_seconds": med,
                                                                "all_seconds": times}
    fits: dict[str, Any] = {}
    for mode, make, templates in (("exact", exact_model, tpl[True]),
                                  ("portable", portable_model, tpl[False])):
        t0 = time.perf_counter()
        make(templates, poi="mu_sig")
        first_model = time.perf_counter() - t0
        med_model, model_times, model = timed(lambda make=make, templates=templates: make(
            templates, poi="mu_sig"))
        fit(model)  # warm-up (pyhf's first call per model builds its tensors)
        med_fit, fit_times, best = timed(lambda model=model: fit(model))
        fits[mode] = best
        result["modes"][mode] = {
            "model_build_first_call_seconds": first_model,
            "model_build_median_seconds": med_model, "model_build_all_seconds": model_times,
            "fit_median_seconds": med_fit, "fit_all_seconds": fit_times,
            "nfev": best.nfev, "valid": best.valid, "poi_value": best.poi_value,
            "poi_error": best.poi_error}
    # one POI scan for both modes: around the exact fit, to well past the limit
    b = fits["exact"]
    scan = np.linspace(max(0.0, b.poi_value - 1.0 * b.poi_error),
                       b.poi_value + 4.0 * b.poi_error, LIMIT_SCAN_POINTS)
    result["limit_scan"] = [float(v) for v in scan]
    for mode, make, templates in (("exact", exact_model, tpl[True]),
                                  ("portable", portable_model, tpl[False])):
        model = make(templates, poi="mu_sig")
        t0 = time.perf_counter()
        ul = upper_limit(model, scan=scan)
        seconds = time.perf_counter() - t0
        # in-run reference: pyhf's own scan of the same model (five fits per point)
        with _numpy_minuit():
            t0 = time.perf_counter()
            pyhf_obs, _ = pyhf.infer.intervals.upper_limits.upper_limit(
                model.data, model.model, scan)
            pyhf_seconds = time.perf_counter() - t0
        result["modes"][mode].update({
            "upper_limit_seconds": seconds, "upper_limit_observed": ul.observed,
            "pyhf_upper_limit_seconds": pyhf_seconds,
            "pyhf_upper_limit_observed": float(pyhf_obs),
            "upper_limit_over_pyhf": seconds / pyhf_seconds})
    ex, po = result["modes"]["exact"], result["modes"]["portable"]
    result["ratios_exact_over_portable"] = {
        "template_build_morph_true_over_false":
            result["template_build_morph_true"]["median_seconds"]
            / result["template_build_morph_false"]["median_seconds"],
        "model_build": ex["model_build_median_seconds"] / po["model_build_median_seconds"],
        "model_build_first_call":
            ex["model_build_first_call_seconds"] / po["model_build_first_call_seconds"],
        "fit": ex["fit_median_seconds"] / po["fit_median_seconds"],
        "upper_limit": ex["upper_limit_seconds"] / po["upper_limit_seconds"]}
    result["upper_limit_over_pyhf_scan"] = {m: result["modes"][m]["upper_limit_over_pyhf"]
                                            for m in ("exact", "portable")}
    return result


# -- main --------------------------------------------------------------------------------------
def _notes(unbinned: dict[str, Any], goal: dict[str, Any], n: int) -> list[str]:
    notes = []
    for name in ("mlp", "analytic"):
        if name not in unbinned:
            continue
        b = _breakdown(unbinned[name], n)
        by = b["network_seconds_by_pass"]
        calls = b["network_calls_by_pass"]
        parts = ", ".join(f"{k} {calls[k]}x {by[k]:.1f} s" for k in sorted(by))
        ar = b["arithmetic_ms_per_evaluation"]
        notes.append(
            f"{name}, N={n}: of {b['fit_seconds']:.1f} s, {b['network_seconds']:.1f} s "
            f"({100 * b['network_fraction']:.0f}%) are network passes ({parts}); "
            f"{b['hessians']} Hessians (central differences of the analytic gradient) took "
            f"{b['in_hessians_seconds']:.1f} s, {b['in_hessians_network_seconds']:.1f} s of "
            f"it in the network; the rest, {b['likelihood_arithmetic_and_minuit_seconds']:.1f}"
            f" s, is mostly the likelihood's numpy arithmetic over the events "
            f"({ar['value']:.0f} ms per value, {ar['value_and_gradient']:.0f} ms with the "
            f"gradient, x {b['cost_evaluations']} cost evaluations) and MINUIT.")
    notes.append(
        "How the passes arise: every new θ point costs a forward pass over the data and one "
        "over the background sample (Z(θ)); at MIGRAD's accepted points the gradient is "
        "asked for afterwards, which reruns the forward pass inside a gradient pass (value "
        "first is still the cheaper policy: most line-search points never need a "
        "gradient). MIGRAD's seed Hessian at the start and its final Hessian at the minimum "
        "need 2 gradient passes per reweighter nuisance each (4 per Hessian here); HESSE's "
        "Hessian at the same minimum and all POI/normsys columns are LRU hits, so the third "
        "Hessian costs only arithmetic. The floor is therefore set by the network: about "
        f"nfcn forward passes plus (accepted points + 8) gradient passes over "
        f"{n + N_BACKGROUND:.2g} events.")
    failed = [f"{name} N={n}: {r['error']}" for name, e in unbinned.items()
              for n, size in e["by_size"].items() for r in size["fits"] if not r["valid"]]
    if failed:
        notes.append("fits that failed: " + "; ".join(failed))
    notes.append(f"goal: {goal['description']}: "
                 f"{'met' if goal['goal_met'] else 'NOT met'} "
                 f"({goal['measured_seconds']:.1f} s vs {goal['goal_seconds']:.0f} s).")
    return notes


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="small sizes and training, for trying the script out")
    parser.add_argument("--output", type=Path, default=None,
                        help=f"where to write the JSON (default {RESULTS}; --quick: none)")
    parser.add_argument("--skip-binned", action="store_true")
    args = parser.parse_args(argv)

    from ratiofit.testing import analytic_gaussian_width_reweighter

    sizes = (10_000, 100_000) if args.quick else SIZES
    per_class, epochs = (20_000, 1) if args.quick else (TRAIN_PER_CLASS, TRAIN_EPOCHS)
    repeats = 1 if args.quick else REPEATS
    info = machine_info()
    t_start = time.perf_counter()
    rng = np.random.default_rng(SEED + 2)
    datasets = {n: make_data(n, rng) for n in sizes}
    background_x = rng.normal(0.0, 1.0, N_BACKGROUND)
    signal_x = rng.normal(SIGNAL_MEAN, SIGNAL_WIDTH, N_SIGNAL_SAMPLE)
    background, signal = _events(background_x), _events(signal_x)
    t0 = time.perf_counter()
    mlp = train_mlp(per_class=per_class, epochs=epochs)
    train_seconds = time.perf_counter() - t0
    print(f"trained the mlp reweighter in {train_seconds:.1f} s", flush=True)
    reweighters = {"mlp": mlp,
                   "analytic": analytic_gaussian_width_reweighter(mu_range=MU_RANGE,
                                                                  sigma_range=SIGMA_RANGE)}
    unbinned = unbinned_section(reweighters, datasets, background, signal, repeats)
    n_big = max(sizes)
    measured = unbinned["mlp"]["by_size"][str(n_big)]["mean"]["fit_seconds"]
    converged = all(r["valid"] for r in unbinned["mlp"]["by_size"][str(n_big)]["fits"])
    goal = {"description": f"fit_model (MIGRAD+HESSE) of {n_big} events with three nuisances "
                           "and the trained (mlp) reweighter under 30 s on 2 cores",
            "goal_seconds": GOAL_SECONDS, "measured_seconds": measured,
            "goal_met": bool(converged and measured < GOAL_SECONDS),
            "all_fits_valid": converged,
            "analytic_seconds": unbinned["analytic"]["by_size"][str(n_big)]["mean"][
                "fit_seconds"],
            "cpu_count": info.get("cpu_count"),
            "cpu_affinity_count": info.get("cpu_affinity_count")}
    payload: dict[str, Any] = {
        "benchmark": "inference",
        "description": "unbinned fit_model (MIGRAD+HESSE, POI + mean/width reweighter "
                       "nuisances + normsys) at 1e5/1e6 events with a trained mlp and the "
                       "analytic reweighter; binned exact vs portable template build, fit "
                       "and upper limit",
        "machine": info,
        "settings": {
            "sizes": list(sizes), "repeats": repeats, "n_background_sample": N_BACKGROUND,
            "n_signal_sample": N_SIGNAL_SAMPLE, "signal_fraction": SIGNAL_FRACTION,
            "signal": {"mean": SIGNAL_MEAN, "width": SIGNAL_WIDTH},
            "data_background": {"mean": DATA_MEAN, "width": DATA_WIDTH},
            "nuisances": {"mean": {"parameter": "mu", "nominal": 0.0, "sigma": MEAN_SIGMA},
                          "width": {"parameter": "sigma", "nominal": 1.0,
                                    "sigma": WIDTH_SIGMA},
                          "bkg_norm": {"normsys": NORMSYS}},
            "mlp": {"hidden": HIDDEN, "activation": "swish", "loss": "bce",
                    "train_events_per_class": per_class, "epochs": epochs,
                    "mu_range": list(MU_RANGE), "sigma_range": list(SIGMA_RANGE),
                    "train_seconds": train_seconds},
            "quick": bool(args.quick), "seed": SEED},
        "goal_seconds": GOAL_SECONDS,
        "goal_met": goal["goal_met"],
        "goal": goal,
        "unbinned": unbinned,
        "unbinned_breakdown": {name: _breakdown(unbinned[name], n_big) for name in unbinned},
    }
    if not args.skip_binned:
        t0 = time.perf_counter()
        payload["binned"] = binned_section(mlp, datasets[n_big], background_x, signal_x,
                                           1 if args.quick else BINNED_REPEATS)
        payload["binned"]["section_seconds"] = time.perf_counter() - t0
        bn = payload["binned"]
        print("binned exact/portable: " + ", ".join(
            f"{k} {v:.2f}" for k, v in bn["ratios_exact_over_portable"].items()), flush=True)
    payload["notes"] = _notes(unbinned, goal, n_big)
    payload["total_seconds"] = time.perf_counter() - t_start
    payload["machine"]["load_average_at_end"] = list(os.getloadavg())
    for line in payload["notes"]:
        print("note:", line)
    output = args.output if args.output is not None else (None if args.quick else RESULTS)
    if output is not None:
        write_json(output, payload)
        print(f"wrote {output} ({payload['total_seconds']:.0f} s)")
    return payload


if __name__ == "__main__":
    main()
