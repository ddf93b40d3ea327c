"""Binned fit wall time: exact-mode morphing modifier vs the portable histosys workspace.

The setup of ``docs/inference.md`` (10⁵ background events, 16 bins, one reweighter
nuisance, the exact Gaussian reweighter so that the network cost does not enter): the
pyhf model is built once per mode, then the MLE fit (numpy backend, minuit) is timed on
Asimov data at θ₀ + 1.5σ, 7 repetitions, median. Writes
``bench/results/binned_fit.json``. Usage: ``python bench/bench_binned.py``.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_bench import RESULTS, machine_info, write_json

REPEATS = 7


def main() -> int:
    from ratiofit.events import EventSet
    from ratiofit.inference import (
        Channel,
        ReweighterNuisance,
        Sample,
        build_templates,
        exact_model,
        expected_by_sample,
        fit,
        portable_model,
    )
    from ratiofit.testing import analytic_gaussian_reweighter

    edges = np.linspace(-4.0, 4.0, 17)

    def events(x: np.ndarray, total: float) -> EventSet:
        return EventSet(features=x[:, None], feature_names=("x0",),
                        weights=np.full(len(x), total / len(x)))

    rw = analytic_gaussian_reweighter()
    bkg = events(np.random.default_rng(11).normal(0.0, 1.0, 100_000), 5000.0)
    sig = events(np.random.default_rng(12).normal(1.0, 0.4, 20_000), 250.0)
    nuisance = ReweighterNuisance(name="theta", reweighter=rw, parameter="mu", nominal=0.0,
                                  sigma=0.1)
    channel = Channel(name="SR", observable="x0", edges=edges,
                      samples=(Sample(name="signal", events=sig, signal=True),
                               Sample(name="background", events=bkg, nuisances=("theta",))),
                      observed=np.zeros(len(edges) - 1))
    t0 = time.perf_counter()
    templates = build_templates(channels=[channel], nuisances=[nuisance], flow="fold")
    build = time.perf_counter() - t0
    out: dict[str, Any] = {"machine": machine_info(), "template_build_seconds": build,
                           "repeats": REPEATS, "modes": {}}
    for mode, make in (("exact", exact_model), ("portable", portable_model)):
        t0 = time.perf_counter()
        model = make(templates, staterror=True)
        model_seconds = time.perf_counter() - t0
        expected = expected_by_sample(model.model, {"theta": 1.5, "mu": 1.0})
        main_counts = expected["background"] + expected["signal"]
        aux = model.data[len(main_counts):]
        data = np.concatenate([main_counts, aux])
        times = []
        for _ in range(REPEATS):
            t0 = time.perf_counter()
            result = fit(model, data)
            times.append(time.perf_counter() - t0)
        out["modes"][mode] = {"model_build_seconds": model_seconds,
                              "fit_seconds_median": statistics.median(times),
                              "fit_seconds_all": times, "nfev": result.nfev,
                              "valid": result.valid}
    out["ratio_exact_over_portable"] = (out["modes"]["exact"]["fit_seconds_median"]
                                        / out["modes"]["portable"]["fit_seconds_median"])
    write_json(RESULTS / "binned_fit.json", out)
    print(f"exact {out['modes']['exact']['fit_seconds_median']:.3f} s, portable "
          f"{out['modes']['portable']['fit_seconds_median']:.3f} s per fit; ratio "
          f"{out['ratio_exact_over_portable']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
