"""SRGN fit wall time: ratiofit's defaults vs the paper's procedure, measured in one run.

The 1-D Gaussian of srgn.md Sec. III A (X_G ~ N(μ, 1), X_S = X_G + N(0, 0.5²), data at
μ = 0.7), with the exact generator-level reweighter (srgn.md Eq. 10) so that only the
fitting step is timed. For ``--repeats`` independent data/simulation pairs (seeds 0, 1,
…) every configuration fits the same events:

``paper``
    srgn.md Fig. 5: scipy Powell (xtol = ftol = 1e-4, ≤ 100 iterations, bounds [−2, 2]),
    every objective call a fresh 2×128 ReLU network built, compiled and trained from
    scratch with :func:`ratiofit.training.train_reweighter` (batch 1000, Adam 1e-3, up to
    200 epochs, early-stopping patience 5).
``ratiofit``
    the strategy's defaults: a smoothed scan (5 coarse points over the range, then two
    rounds of 9 fine points, ±1 coarse step and ±½ step around the last vertex, hyperbola fit),
    g (2×64 ReLU) built once and reset to the same initial weights at every point, batch
    4096, ≤ 20 epochs, patience 3, one compiled function per epoch.
``ratiofit_warm``
    the same scan with warm starts from the previous point (measured bias and speed).
``ratiofit_cross_fit``
    the defaults with ``cross_fit: true`` (a second g per point, trained on the held-out
    split and measured on the training split; every event enters the objective).
``powell_reinit``
    Powell with ratiofit's reset-to-initial-weights classifier (the optimiser's share).

Reported per configuration: wall time per fit and per objective call, objective calls
and epochs per fit, the fitted values, their RMS deviation from the truth and their
spread; ratios against ``paper`` from the same run.

Precision is compared on the same events, not only through the spread over a few
repeats (which is dominated by the data's and simulation's own fluctuations, common to
all configurations). For each event pair the *ideal* value is the μ at which the
simulation, weighted with the exact ratio, has the data's mean at simulation level (the
mean is sufficient for a Gaussian shift, so this is what a perfect classifier finds),
computed on the held-out events the AUC is evaluated on (``ideal_held_out``; every
configuration uses the same split) and on all events (``ideal_all_events``). A
configuration's ``ideal`` is the first, or the second for ``cross_fit`` (whose objective
uses every event); its RMS deviation from ``ideal`` is the noise its own classifier
training adds. The RMS deviation from the truth over the repeats adds the data's and
simulation's statistics, which is where evaluating on half of the events costs.

A grid of 9 points is also run with the local executor and a 2-worker dask cluster
(parallel vs sequential).

Writes ``bench/results/srgn.json``. Usage: ``python bench/bench_srgn.py [--events N]
[--repeats R]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_bench import RESULTS, machine_info, write_json

TRUTH = 0.7

CONFIGS: dict[str, dict[str, Any]] = {
    "ratiofit": {},
    "ratiofit_warm": {"initialisation": "warm"},
    "ratiofit_cross_fit": {"cross_fit": True},
    "powell_reinit": {"optimizer": "powell"},
    "paper": {"optimizer": "powell", "rebuild": True, "epochs": 200, "patience": 5,
              "batch_size": 1000, "learning_rate": 1e-3,
              "architecture_options": {"hidden": [128, 128], "activation": "relu"}},
}


def _events(n: int, seed: int) -> tuple[Any, Any]:
    from ratiofit.events import EventSet
    from ratiofit.options import resolve_options
    from ratiofit.plugins.sources.gaussian_detector import GaussianDetector

    src = GaussianDetector()
    rng = np.random.default_rng(seed)
    opts = resolve_options(src.options, {"mean": "mu"}, where="bench")
    data_opts = resolve_options(src.options, {"mean": "mu", "levels": ["sim"]}, where="bench")
    reference = src.generate(n_events=n, theta={"mu": np.zeros(n)}, options=opts, rng=rng)
    data = src.generate(n_events=n, theta={"mu": np.full(n, TRUTH)}, options=data_opts, rng=rng)
    return (EventSet(features=data, feature_names=tuple(src.feature_names(data_opts))),
            EventSet(features=reference, feature_names=tuple(src.feature_names(opts))))


def _moment_match(x_data: np.ndarray, x_gen: np.ndarray, x_sim: np.ndarray) -> float:
    """μ where the exactly reweighted simulation's mean x_S equals the data's."""
    from scipy.optimize import brentq

    target = float(x_data.mean())

    def gap(mu: float) -> float:
        log_w = mu * x_gen  # exact log w up to a μ-only constant, which cancels
        w = np.exp(log_w - log_w.max())
        return float(np.dot(w, x_sim) / w.sum()) - target

    return float(brentq(gap, -2.0, 2.0, xtol=1e-10))


def _ideal(n: int, seed: int, held_out_fraction: float) -> tuple[float, float]:
    """Ideal μ on the fit's held-out events and on all events (see the module docstring)."""
    from ratiofit.plugins.strategies.srgn import held_out_split, split_rng

    data, reference = _events(n, seed)
    x_data = data.feature_columns(["sim_x0"])[:, 0]
    x_gen, x_sim = (reference.feature_columns([c])[:, 0] for c in ("gen_x0", "sim_x0"))
    _, d_held, _, r_held = held_out_split(split_rng(seed), n_data=len(x_data),
                                          n_reference=len(x_gen), fraction=held_out_fraction)
    return (_moment_match(x_data[d_held], x_gen[r_held], x_sim[r_held]),
            _moment_match(x_data, x_gen, x_sim))


def _fit(config: dict[str, Any], *, n: int, seed: int) -> dict[str, Any]:
    from ratiofit.fitting import FitProblem
    from ratiofit.options import resolve_options
    from ratiofit.plugins.strategies.srgn import SRGN
    from ratiofit.testing import analytic_gaussian_reweighter

    data, reference = _events(n, seed)
    rw = analytic_gaussian_reweighter()
    problem = FitProblem(reweighter=rw, data=data, reference=reference,
                         parameters=rw.parameters, seed=seed)
    strategy = SRGN()
    options = resolve_options(strategy.options, config, where="bench")
    t0 = time.perf_counter()
    result = strategy.fit(problem=problem, options=options)
    wall = time.perf_counter() - t0
    ideal_held, ideal_all = _ideal(n, seed, options["held_out_fraction"])
    ideal = ideal_all if options["cross_fit"] else ideal_held
    return {"seed": seed, "value": result.values["mu"], "error": result.errors["mu"],
            "ideal_held_out": ideal_held, "ideal_all_events": ideal_all, "ideal": ideal,
            "deviation_from_ideal": result.values["mu"] - ideal,
            "wall_seconds": wall, "calls": result.n_evaluations,
            "epochs": result.extra["epochs_total"], "valid": result.valid,
            "seconds_per_call": wall / max(result.n_evaluations, 1)}


def _summary(fits: list[dict[str, Any]]) -> dict[str, Any]:
    values = np.array([f["value"] for f in fits])
    return {"fits": fits,
            "wall_seconds_per_fit": float(np.mean([f["wall_seconds"] for f in fits])),
            "seconds_per_call": float(np.mean([f["seconds_per_call"] for f in fits])),
            "calls_per_fit": float(np.mean([f["calls"] for f in fits])),
            "epochs_per_fit": float(np.mean([f["epochs"] for f in fits])),
            "mean": float(values.mean()),
            "rms_deviation_from_truth": float(np.sqrt(np.mean((values - TRUTH) ** 2))),
            "rms_deviation_from_ideal": float(np.sqrt(np.mean(
                [f["deviation_from_ideal"] ** 2 for f in fits]))),
            "rms_ideal_deviation_from_truth": float(np.sqrt(np.mean(
                [(f["ideal"] - TRUTH) ** 2 for f in fits]))),
            "std": float(values.std(ddof=1)) if len(values) > 1 else float("nan")}


def _grid_parallel(n: int) -> dict[str, Any]:
    """The same 9-point grid with the local executor and a 2-worker dask cluster."""
    out: dict[str, Any] = {}
    for name, extra in (("sequential", {"executor": "local"}),
                        ("dask_2_workers", {"executor": "dask", "workers": 2})):
        try:
            fit = _fit({"optimizer": "grid", "grid_points": 9, **extra}, n=n, seed=0)
        except Exception as exc:  # dask missing or no cluster: report, do not fail the bench
            out[name] = {"error": f"{type(exc).__name__}: {exc}"}
            continue
        out[name] = fit
    if all("wall_seconds" in v for v in out.values()):
        out["speedup"] = out["sequential"]["wall_seconds"] / out["dask_2_workers"]["wall_seconds"]
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000,
                        help="data and simulated events (each)")
    parser.add_argument("--repeats", type=int, default=3, help="independent event pairs")
    parser.add_argument("--paper-repeats", type=int, default=None,
                        help="event pairs for the (slow) paper configuration (default: --repeats)")
    parser.add_argument("--configs", nargs="*", default=list(CONFIGS))
    parser.add_argument("--no-parallel", action="store_true", help="skip the executor comparison")
    args = parser.parse_args()
    info = machine_info()
    results: dict[str, Any] = {}
    for name in args.configs:
        fits = []
        repeats = args.paper_repeats if name == "paper" and args.paper_repeats else args.repeats
        for seed in range(repeats):
            fits.append(_fit(CONFIGS[name], n=args.events, seed=seed))
            write_json(RESULTS / "srgn.partial.json", {"results": results, name: fits})
            print(f"{name} seed {seed}: mu = {fits[-1]['value']:.4f} in "
                  f"{fits[-1]['wall_seconds']:.1f} s ({fits[-1]['calls']} calls, "
                  f"{fits[-1]['epochs']} epochs)", flush=True)
        results[name] = _summary(fits)
        write_json(RESULTS / "srgn.partial.json", {"results": results})  # progress so far
    ratios = {}
    if "paper" in results:
        base = results["paper"]
        for name, res in results.items():
            ratios[name] = {
                "speedup_wall_per_fit": base["wall_seconds_per_fit"] / res["wall_seconds_per_fit"],
                "speedup_per_call": base["seconds_per_call"] / res["seconds_per_call"],
                "rms_ratio_to_paper": res["rms_deviation_from_truth"]
                / base["rms_deviation_from_truth"],
                "ideal_rms_ratio_to_paper": res["rms_deviation_from_ideal"]
                / base["rms_deviation_from_ideal"]}
    payload: dict[str, Any] = {
        "benchmark": "srgn_fit",
        "description": __doc__.splitlines()[0],
        "machine": info,
        "settings": {"events": args.events, "repeats": args.repeats,
                     "paper_repeats": args.paper_repeats or args.repeats, "truth": TRUTH,
                     "configs": {k: CONFIGS[k] for k in args.configs}},
        "results": results, "ratios_vs_paper": ratios}
    if not args.no_parallel:
        payload["grid_parallel"] = _grid_parallel(args.events)
    write_json(RESULTS / "srgn.json", payload)
    (RESULTS / "srgn.partial.json").unlink(missing_ok=True)
    print(f"wrote {RESULTS / 'srgn.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
