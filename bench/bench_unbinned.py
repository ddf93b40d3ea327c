"""Unbinned-fit benchmark: wall time vs number of data events, with and without caches.

``python bench/bench_unbinned.py`` writes ``bench/results/unbinned_fit.json`` (atomically)
and prints a summary. Not part of ``run_bench.py``.

What is timed
    :func:`ratiofit.inference.fit_unbinned` with ``minos=True, scan=False,
    with_fixed_theta=False`` — MIGRAD, HESSE and MINOS on the signal strength — of an
    :class:`~ratiofit.inference.ExtendedUnbinnedNLL` built fresh for every measurement
    (cold caches), on N = 10⁴, 10⁵, 10⁶ data events. One full analysis (plus the fit with
    θ fixed at θ₀ and both 2ΔNLL scans of μ, 21 points each) is timed at N = 10⁵, where
    repeated θ points are frequent.

The problem
    Background N(θ, 1) with θ_true = 0.2 (a nuisance constrained N(0, 0.5)), signal
    N(2, 0.3) at 5% of the events (μ_true = 1, exact log r_s), background yield ν_b = 0.95·N
    and signal yield ν_s = 0.05·N; Z(θ) from a 5·10⁴-event N(0, 1) reference sample.

Reweighters
    ``analytic``: :func:`ratiofit.testing.analytic_gaussian_reweighter` (the exact ratio as
    a one-op Keras model: measures everything but the network); ``mlp``: a ``mlp``/``bce``
    reweighter (hidden [64, 64, 64]) trained for the benchmark with
    :func:`ratiofit.training.train_reweighter` on 10⁵ events (5·10⁴ per class), 3 epochs —
    a realistic network cost per event.

Modes
    ``none`` (network at every call), ``lru`` (log w cached per θ), ``grid`` (log w on a
    21-node θ grid over [-2, 2], Catmull-Rom per event). For ``grid`` the table build is
    timed separately (``build_seconds``) and ``total_seconds`` = build + fit. Ratios are
    computed within the same run. Before timing, every data set passes once through the
    network (value and gradient) so TensorFlow's tracing is not charged to any mode.

Grid accuracy
    For the MLP, max and RMS of |log w_grid − log w_network| over the 10⁵-event data set
    at 17 θ values (node midpoints, where the interpolation error peaks, and random
    points), and the difference of the fitted μ̂ and θ̂ between ``grid`` and ``lru`` in
    units of their HESSE errors at every N.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_bench import machine_info, write_json  # one copy of the machine record

RESULTS = Path(__file__).resolve().parent / "results" / "unbinned_fit.json"
SIZES = (10_000, 100_000, 1_000_000)
MODES = ("none", "lru", "grid")
N_REFERENCE = 50_000
SIGNAL_FRACTION = 0.05
THETA_TRUE = 0.2
SIGNAL_MEAN, SIGNAL_WIDTH = 2.0, 0.3
GRID_POINTS = 21
HIDDEN = [64, 64, 64]
SEED = 20240701

__all__ = ["grid_accuracy", "log_signal_ratio", "main", "make_data",
           "time_fit", "train_mlp_reweighter"]


def log_signal_ratio(x: np.ndarray) -> np.ndarray:
    """Exact log N(x; 2, 0.3)/N(x; 0, 1)."""
    from scipy.stats import norm

    return norm.logpdf(x, SIGNAL_MEAN, SIGNAL_WIDTH) - norm.logpdf(x)


def make_data(n: int, rng: np.random.Generator) -> tuple[Any, np.ndarray]:
    """``n`` data events (5% signal) as an EventSet, and their log r_s."""
    from ratiofit.events import EventSet

    n_s = round(SIGNAL_FRACTION * n)
    x = np.concatenate([rng.normal(SIGNAL_MEAN, SIGNAL_WIDTH, n_s),
                        rng.normal(THETA_TRUE, 1.0, n - n_s)])
    return EventSet(features=x[:, None], feature_names=("x0",)), log_signal_ratio(x)


def train_mlp_reweighter(*, n_events: int = 100_000, epochs: int = 3, seed: int = SEED) -> Any:
    """An mlp/bce reweighter for N(μ, 1)/N(0, 1), μ ∈ [-2, 2], trained briefly."""
    from ratiofit.events import EventSet
    from ratiofit.parameters import Parameter, ParameterSet
    from ratiofit.registry import get_registry
    from ratiofit.spec import TrainingSpec
    from ratiofit.training import train_reweighter

    rng = np.random.default_rng(seed)
    half = n_events // 2
    mu = rng.uniform(-2, 2, half)
    reference = EventSet(features=rng.normal(size=(half, 1)), feature_names=("x0",))
    target = EventSet(features=rng.normal(mu, 1.0)[:, None], feature_names=("x0",),
                      theta=mu[:, None], theta_names=("mu",))
    reg = get_registry()
    return train_reweighter(
        reference=reference, target=target,
        parameters=ParameterSet([Parameter(name="mu", nominal=0.0, low=-2.0, high=2.0)]),
        architecture=reg.get("architecture", "mlp"),
        architecture_options={"hidden": HIDDEN, "activation": "swish", "theta_input": True},
        loss=reg.get("loss", "bce"),
        training=TrainingSpec(epochs=epochs, batch_size=1024, patience=epochs,
                              checkpoint=False, restore_best=False),
        seed=seed + 1)


def time_fit(rw: Any, data: Any, log_rs: np.ndarray, reference: Any, mode: str, *,
             full: bool = False) -> dict[str, Any]:
    """Build a cost with ``mode`` (grid build timed apart) and time one fit."""
    from ratiofit.inference import ExtendedUnbinnedNLL, Nuisance, fit_unbinned

    n = len(data)
    t0 = time.perf_counter()
    cost = ExtendedUnbinnedNLL(data, reweighter=rw,
                               nuisances=[Nuisance("mu", nominal=0.0, sigma=0.5)],
                               signal_yield=SIGNAL_FRACTION * n,
                               background_yield=(1 - SIGNAL_FRACTION) * n,
                               signal_log_ratio=log_rs, reference=reference, cache=mode,
                               grid_points=GRID_POINTS)
    build = time.perf_counter() - t0
    t1 = time.perf_counter()
    res = fit_unbinned(cost, minos=True, scan=full, with_fixed_theta=full)
    fit = time.perf_counter() - t1
    return {"mode": mode, "n_events": n, "build_seconds": build, "fit_seconds": fit,
            "total_seconds": build + fit, "n_evaluations": res.n_calls, "cache": res.cache,
            "valid": res.valid, "values": res.values, "errors": res.errors,
            "minos": res.minos.get("signal_strength")}


def grid_accuracy(rw: Any, data: Any, *, points: int = GRID_POINTS, seed: int = SEED
                  ) -> dict[str, Any]:
    """|log w_grid − log w_network| over ``data`` at node midpoints and random θ."""
    from ratiofit.inference import LogRatioGrid

    grid = LogRatioGrid.build(rw, data, name="mu", points=points)
    nodes = grid.nodes
    mids = (nodes[:-1] + nodes[1:]) / 2
    rng = np.random.default_rng(seed)
    thetas = np.concatenate([mids[::2][:10], rng.uniform(nodes[0], nodes[-1], 7)])
    max_err, sq, count = 0.0, 0.0, 0
    per_theta = []
    for t in thetas:
        direct = rw.log_ratio(features=data, theta={"mu": float(t)})
        err = np.abs(grid.evaluate(float(t))[0] - direct)
        per_theta.append({"theta": float(t), "max_abs": float(err.max()),
                          "rms": float(np.sqrt(np.mean(err ** 2)))})
        max_err = max(max_err, float(err.max()))
        sq += float(np.sum(err ** 2))
        count += err.size
    return {"events": len(data), "grid_points": points, "spacing": float(nodes[1] - nodes[0]),
            "max_abs_error": max_err, "rms_error": float(np.sqrt(sq / count)),
            "per_theta": per_theta}


def _summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    by = {r["mode"]: r for r in rows}
    out: dict[str, Any] = {}
    if "none" in by and "lru" in by:
        out["none_over_lru"] = by["none"]["total_seconds"] / by["lru"]["total_seconds"]
    if "none" in by and "grid" in by:
        out["none_over_grid_total"] = by["none"]["total_seconds"] / by["grid"]["total_seconds"]
        out["none_over_grid_fit_only"] = by["none"]["fit_seconds"] / by["grid"]["fit_seconds"]
    if "lru" in by and "grid" in by:
        errs = by["lru"]["errors"]
        out["grid_minus_lru_in_hesse_errors"] = {
            k: (by["grid"]["values"][k] - by["lru"]["values"][k]) / errs[k] for k in errs}
    return out


def main() -> dict[str, Any]:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from ratiofit.events import EventSet
    from ratiofit.testing import analytic_gaussian_reweighter

    info = machine_info()
    t_start = time.perf_counter()
    rng = np.random.default_rng(SEED + 2)
    datasets = {n: make_data(n, rng) for n in SIZES}
    reference = EventSet(features=rng.normal(size=(N_REFERENCE, 1)), feature_names=("x0",))
    t0 = time.perf_counter()
    mlp = train_mlp_reweighter()
    train_seconds = time.perf_counter() - t0
    payload: dict[str, Any] = {
        "benchmark": "unbinned_fit",
        "description": "fit_unbinned (MIGRAD+HESSE+MINOS on mu) wall time vs data size, "
                       "network caching modes none/lru/grid, analytic and trained-MLP "
                       "reweighters",
        "machine": info,
        "settings": {"sizes": list(SIZES), "modes": list(MODES), "n_reference": N_REFERENCE,
                     "signal_fraction": SIGNAL_FRACTION, "theta_true": THETA_TRUE,
                     "constraint": {"nominal": 0.0, "sigma": 0.5}, "grid_points": GRID_POINTS,
                     "mlp": {"hidden": HIDDEN, "loss": "bce", "train_events": 100_000,
                             "epochs": 3, "train_seconds": train_seconds}, "seed": SEED},
        "reweighters": {},
    }
    for name, rw in (("analytic", analytic_gaussian_reweighter()), ("mlp", mlp)):
        # Trace TensorFlow's functions for every input size outside the timings.
        for data, _ in [*datasets.values(), (reference, None)]:
            rw.log_ratio(features=data, theta={"mu": 0.1})
            rw.log_ratio_and_gradient(features=data, theta={"mu": 0.1})
        t0 = time.perf_counter()
        rw.log_ratio(features=datasets[SIZES[-1]][0], theta={"mu": 0.1})
        forward = time.perf_counter() - t0
        t0 = time.perf_counter()
        rw.log_ratio_and_gradient(features=datasets[SIZES[-1]][0], theta={"mu": 0.1})
        gradient = time.perf_counter() - t0
        entry: dict[str, Any] = {"forward_pass_1e6_seconds": forward,
                                 "gradient_pass_1e6_seconds": gradient, "by_size": {}}
        for n in SIZES:
            data, log_rs = datasets[n]
            rows = [time_fit(rw, data, log_rs, reference, mode) for mode in MODES]
            entry["by_size"][str(n)] = {"fits": rows, "ratios": _summarise(rows)}
            print(f"{name:8s} N={n:>8d} " + "  ".join(
                f"{r['mode']}: {r['total_seconds']:.2f}s ({r['n_evaluations']} ev, "
                f"{r['cache'].get('data_network_calls', 0)} net)" for r in rows), flush=True)
        data, log_rs = datasets[100_000]
        full = [time_fit(rw, data, log_rs, reference, mode, full=True) for mode in MODES]
        entry["full_analysis_1e5"] = {"fits": full, "ratios": _summarise(full)}
        print(f"{name:8s} full analysis N=1e5 " + "  ".join(
            f"{r['mode']}: {r['total_seconds']:.2f}s" for r in full), flush=True)
        if name == "mlp":
            entry["grid_accuracy"] = grid_accuracy(rw, datasets[100_000][0])
            acc = entry["grid_accuracy"]
            print(f"grid accuracy (mlp, h={acc['spacing']:.2f}): max |dlogw| = "
                  f"{acc['max_abs_error']:.2e}, rms = {acc['rms_error']:.2e}", flush=True)
        payload["reweighters"][name] = entry
    payload["total_seconds"] = time.perf_counter() - t_start
    payload["machine"]["load_average_at_end"] = list(os.getloadavg())
    write_json(RESULTS, payload)
    print(f"wrote {RESULTS} ({payload['total_seconds']:.0f} s)")
    return payload


if __name__ == "__main__":
    main()
