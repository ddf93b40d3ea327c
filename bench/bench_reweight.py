"""Benchmark of ``ratiofit reweight``: events/s on a 10^6-event parquet file against the
raw :meth:`Reweighter.log_ratio <ratiofit.reweighter.Reweighter.log_ratio>` on the same
events in memory, in the same process.

``python bench/bench_reweight.py`` writes ``bench/results/reweight.json`` (atomically)
and prints a summary (about a minute on 2 CPU cores). Not part of ``run_bench.py``.

The reweighter
    A small ``mlp`` (hidden [64, 64], swish) on three features with one parameter μ in
    [-2, 2], trained with ``bce`` for 1 epoch on 5·10^4 events per class (reference
    N(0, 1)³, target with x₀ ~ N(μ, 1)) and calibrated (normalisation, degree 2), saved
    and loaded as the command loads it. The benchmark measures throughput, not quality.

The file
    10^6 rows: the three features and two columns the reweighter does not read, float64,
    in row groups of 10^5 (pyarrow), in a temporary directory.

What is timed (:data:`REPEATS` times, the order alternated; medians reported)
    ``log_ratio_in_memory``: ``rw.log_ratio(features=x, theta={"mu": 0.5})`` of the loaded
    reweighter on the [10^6, 3] array already in memory, after a warm-up call (the
    in-run reference: the network's own speed on this machine now).
    ``reweight_parquet`` and ``reweight_root``: the ``reweight`` command in-process
    (click's ``CliRunner``, ``-q``, the default ``--step-size``): loading the reweighter,
    reading the file chunk by chunk, checking the values, evaluating, and writing
    ``log_w`` and ``w`` to a parquet file or a ROOT friend tree (temporary file, then
    renamed). ``cli_process``: the same command once as a separate process, so Python's
    start and the TensorFlow import are in it too. ``reweight_files_loaded``:
    :func:`ratiofit.apply.reweight_files` to parquet with the reweighter already loaded
    and traced (the command less its loading and tracing: reading, checking, evaluating
    and writing only).

Reported: events/s of each, ``ratio_reweight_parquet_over_log_ratio`` (the share of the
network's own speed that survives reading, checking and writing) and the ROOT one; the
machine's CPU count and load averages (other jobs on the cores distort the numbers).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_bench import machine_info, write_json  # one copy of the machine record

RESULTS = Path(__file__).resolve().parent / "results" / "reweight.json"
N_EVENTS = 1_000_000
N_TRAIN_PER_CLASS = 50_000
HIDDEN = [64, 64]
REPEATS = 3
THETA = 0.5
SEED = 20240801

__all__ = ["main", "make_file", "train"]


def train(directory: Path) -> Path:
    """The benchmark's reweighter, saved into ``directory``."""
    from ratiofit.events import EventSet
    from ratiofit.parameters import Parameter, ParameterSet
    from ratiofit.registry import get_registry
    from ratiofit.spec import TrainingSpec
    from ratiofit.training import train_reweighter

    reg = get_registry()
    rng = np.random.default_rng(SEED)
    n = N_TRAIN_PER_CLASS
    mu = rng.uniform(-2.0, 2.0, n)
    target = rng.standard_normal((n, 3))
    target[:, 0] += mu
    names = ("x0", "x1", "x2")
    tgt = EventSet(features=target, feature_names=names, theta=mu[:, None], theta_names=("mu",))
    ref = EventSet(features=rng.standard_normal((n, 3)), feature_names=names)
    rw = train_reweighter(
        reference=ref, target=tgt,
        parameters=ParameterSet([Parameter(name="mu", nominal=0.0, low=-2.0, high=2.0)]),
        architecture=reg.get("architecture", "mlp"),
        architecture_options={"hidden": HIDDEN, "activation": "swish", "theta_input": True},
        loss=reg.get("loss", "bce"), training=TrainingSpec(epochs=1, batch_size=1024),
        seed=SEED + 1)
    rw.calibrate(reference_features=ref, points=5, degree=2,
                 rng=np.random.default_rng(SEED + 2))
    return rw.save(directory / "reweighter")


def make_file(path: Path) -> np.ndarray:
    """The parquet file; returns its features as ``[n, 3]``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(SEED + 3)
    x = rng.standard_normal((N_EVENTS, 3))
    x[:, 0] += 0.3
    cols = {"event": np.arange(N_EVENTS, dtype=np.float64), "x0": x[:, 0], "x1": x[:, 1],
            "x2": x[:, 2], "unused": rng.standard_normal(N_EVENTS)}
    pq.write_table(pa.table(cols), path, row_group_size=100_000)
    return x


def main() -> dict[str, Any]:
    from click.testing import CliRunner

    from ratiofit.apply import reweight_files
    from ratiofit.cli import main as cli
    from ratiofit.reweighter import Reweighter

    info = machine_info()
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="ratiofit-bench-reweight-") as tmp:
        d = Path(tmp)
        rw_dir = train(d)
        src = d / "events.parquet"
        x = make_file(src)
        rw = Reweighter.load(rw_dir)
        rw.log_ratio(features=x[:10_000], theta={"mu": THETA})  # warm-up (tracing)

        def in_memory() -> float:
            t0 = time.perf_counter()
            rw.log_ratio(features=x, theta={"mu": THETA})
            return time.perf_counter() - t0

        def command(suffix: str) -> float:
            out = d / f"weights{suffix}"
            t0 = time.perf_counter()
            res = CliRunner().invoke(cli, ["reweight", "--reweighter", str(rw_dir), "--input",
                                           str(src), "--theta", f"mu={THETA}", "-o", str(out),
                                           "-q"])
            seconds = time.perf_counter() - t0
            if res.exit_code != 0:
                raise RuntimeError(f"ratiofit reweight failed: {res.output}")
            out.unlink()
            return seconds

        def files_only() -> float:
            out = d / "weights.parquet"
            t0 = time.perf_counter()
            reweight_files(rw, [str(src)], theta={"mu": THETA}, output=out)
            seconds = time.perf_counter() - t0
            out.unlink()
            return seconds

        times: dict[str, list[float]] = {"log_ratio_in_memory": [], "reweight_parquet": [],
                                          "reweight_root": [], "reweight_files_loaded": []}
        runs = [("log_ratio_in_memory", in_memory),
                ("reweight_parquet", lambda: command(".parquet")),
                ("reweight_root", lambda: command(".root")),
                ("reweight_files_loaded", files_only)]
        for k in range(REPEATS):
            for name, fn in runs if k % 2 == 0 else runs[::-1]:
                times[name].append(fn())
        out = d / "weights.parquet"
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "ratiofit.cli", "reweight",
                               "--reweighter", str(rw_dir), "--input", str(src), "--theta",
                               f"mu={THETA}", "-o", str(out), "-q"], capture_output=True,
                              text=True, check=False)
        process_seconds = time.perf_counter() - t0
        if proc.returncode != 0:
            raise RuntimeError(f"ratiofit reweight failed: {proc.stderr}")
    median = {k: float(np.median(v)) for k, v in times.items()}
    rate = {k: N_EVENTS / v for k, v in median.items()}
    rate["cli_process"] = N_EVENTS / process_seconds
    result = {
        "benchmark": "reweight",
        "description": "events/s of 'ratiofit reweight' (in-process: load the reweighter, "
                       "read a 10^6-event parquet file in chunks, check, evaluate, write "
                       "log_w and w to parquet or a ROOT friend tree) against the raw "
                       "Reweighter.log_ratio on the same events in memory, same process; "
                       "and the whole command as a separate process",
        "machine": info,
        "settings": {"n_events": N_EVENTS, "features": 3, "hidden": HIDDEN,
                     "activation": "swish", "calibrated": True, "theta": {"mu": THETA},
                     "step_size": "default (131072)", "row_group_size": 100_000,
                     "repeats": REPEATS, "seed": SEED, "statistic": "median"},
        "events_per_second": rate,
        "seconds_all": {**times, "cli_process": [process_seconds]},
        "ratio_reweight_parquet_over_log_ratio":
            rate["reweight_parquet"] / rate["log_ratio_in_memory"],
        "ratio_reweight_root_over_log_ratio":
            rate["reweight_root"] / rate["log_ratio_in_memory"],
        "ratio_reweight_files_loaded_over_log_ratio":
            rate["reweight_files_loaded"] / rate["log_ratio_in_memory"],
        "total_seconds": time.perf_counter() - t_start,
        "load_average_at_end": list(os.getloadavg()),
    }
    write_json(RESULTS, result)
    print(f"reweight: {rate['reweight_parquet']:.3g} events/s to parquet, "
          f"{rate['reweight_root']:.3g} to ROOT, log_ratio in memory "
          f"{rate['log_ratio_in_memory']:.3g} (ratio "
          f"{result['ratio_reweight_parquet_over_log_ratio']:.2f} / "
          f"{result['ratio_reweight_root_over_log_ratio']:.2f}; loaded reweighter "
          f"{result['ratio_reweight_files_loaded_over_log_ratio']:.2f}); whole process "
          f"{process_seconds:.1f} s")
    return result


if __name__ == "__main__":
    main()
