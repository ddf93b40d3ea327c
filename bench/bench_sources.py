"""Benchmark of the file sources: events/s of the ``root`` source against plain
``uproot.iterate`` and of the ``parquet`` source against plain pyarrow reading, on the
same files, in the same process.

``python bench/bench_sources.py`` writes ``bench/results/sources.json`` (atomically) and
prints a summary (about 40 s on 2 busy CPU cores). Not part of ``run_bench.py``.

The files (written by the benchmark into a temporary directory, fixed seed)
    10^6 events in 4 files of 2.5·10^5: ten flat float32 branches ``x0`` ... ``x9``, a
    float32 weight ``w`` (10 % negative), and one particle branch set of 1 + Poisson(4)
    particles per event (float32 ``part_pt``, ``part_eta``, ``part_phi``; 5·10^6 particles
    in all). ROOT: tree ``events`` written with uproot (its default compression, one
    basket per branch per 25 000 entries). Parquet: the same columns, the particles as
    list columns, pyarrow's default compression, row groups of 50 000 rows.

What is timed (:data:`REPEATS` times, the order alternated; medians reported)
    ``source``: the source as a spec uses it: :func:`ratiofit.sampling.make_sample` on a
    sample of a spec loaded from YAML (``files`` a glob, every event, the default
    ``step_size`` of 100 000), so it includes opening every file to check its columns,
    the chunked read, the NaN/inf checks, the conversion to float64 and the EventSet.
    ``uproot_iterate``: ``for _ in uproot.iterate({file: "events", ...}, expressions,
    step_size=100_000): pass`` over the same branches (uproot's default ``library="ak"``:
    the arrays decompressed and built, nothing else).
    ``uproot_iterate_numpy``: the same, each chunk turned into what a network needs, as
    a user would without ratiofit: a float64 ``[n, 10]`` feature matrix, the weights,
    and the particles' counts and flat float64 values, joined at the end.
    ``pyarrow_iter_batches``: ``ParquetFile.iter_batches(batch_size=100_000, columns)``
    over the files (the source's own chunking, Arrow arrays only).
    ``pyarrow_read_table``: ``pq.read_table(file, columns)`` per file (whole files,
    pyarrow's threads).

    Each is measured twice: ``flat`` (the ten features and the weight) and ``particles``
    (the same and the three particle fields). Every file is read once before the timing,
    so all read from the page cache. Wall time and the process's CPU time
    (``time.process_time``, all threads) are recorded; the ratio of CPU times is the less
    disturbed one where other jobs share the cores.

Reported: events/s of each, ``ratio_root_source_over_uproot_iterate`` (goal ≥ 0.8) and
``ratio_parquet_source_over_pyarrow`` (against ``iter_batches``, the same chunking; the
ratio to ``read_table`` beside it), per case, by wall and by CPU time; the machine's CPU
count and load averages (other jobs on the cores distort the numbers).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_bench import machine_info, write_json  # one copy of the machine record

RESULTS = Path(__file__).resolve().parent / "results" / "sources.json"
N_EVENTS = 1_000_000
N_FILES = 4
N_FLAT = 10
PARTICLE_FIELDS = ("pt", "eta", "phi")
MEAN_EXTRA_PARTICLES = 4.0
BASKET_ENTRIES = 25_000
ROW_GROUP = 50_000
STEP_SIZE = 100_000  # the sources' default step_size, and the references'
REPEATS = 3
SEED = 20240901

FEATURES = [f"x{i}" for i in range(N_FLAT)]
PARTICLES = {f: f"part_{f}" for f in PARTICLE_FIELDS}

__all__ = ["main", "write_files"]


def _file_columns(n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """One file's columns: flat float32 arrays, ``counts`` and the flat particle values."""
    cols: dict[str, np.ndarray] = {c: rng.standard_normal(n, dtype=np.float32)
                                   for c in FEATURES}
    sign = np.where(rng.random(n) < 0.1, -1.0, 1.0)
    cols["w"] = (sign * rng.uniform(0.5, 1.5, n)).astype(np.float32)
    counts = 1 + rng.poisson(MEAN_EXTRA_PARTICLES, n)
    cols["counts"] = counts.astype(np.int64)
    total = int(counts.sum())
    cols["pt"] = (rng.exponential(5.0, total) + 1.0).astype(np.float32)
    cols["eta"] = rng.standard_normal(total, dtype=np.float32)
    cols["phi"] = rng.uniform(-np.pi, np.pi, total).astype(np.float32)
    return cols


def write_files(directory: Path) -> tuple[list[Path], list[Path], int]:
    """The ROOT and parquet files; returns their paths and the number of particles."""
    import awkward as ak
    import pyarrow as pa
    import pyarrow.parquet as pq
    import uproot

    rng = np.random.default_rng(SEED)
    per_file = N_EVENTS // N_FILES
    roots, parquets, particles = [], [], 0
    for k in range(N_FILES):
        cols = _file_columns(per_file, rng)
        counts = cols["counts"]
        particles += int(counts.sum())
        offsets = np.concatenate([[0], np.cumsum(counts)])
        root_path = directory / f"events_{k}.root"
        with uproot.recreate(root_path) as f:
            part_type = ak.zip({p: ak.unflatten(cols[p][:1], [1]) for p in PARTICLE_FIELDS})
            f.mktree("events", {**{c: np.float32 for c in [*FEATURES, "w"]},
                                "part": part_type.type})
            for start in range(0, per_file, BASKET_ENTRIES):
                stop = min(start + BASKET_ENTRIES, per_file)
                lo, hi = offsets[start], offsets[stop]
                part = ak.zip({p: ak.unflatten(cols[p][lo:hi], counts[start:stop])
                               for p in PARTICLE_FIELDS})
                f["events"].extend({**{c: cols[c][start:stop] for c in [*FEATURES, "w"]},
                                    "part": part})
        roots.append(root_path)
        table = {c: cols[c] for c in [*FEATURES, "w"]}
        for p in PARTICLE_FIELDS:
            table[f"part_{p}"] = pa.ListArray.from_arrays(
                pa.array(offsets.astype(np.int32)), pa.array(cols[p]))
        pq_path = directory / f"events_{k}.parquet"
        pq.write_table(pa.table(table), pq_path, row_group_size=ROW_GROUP)
        parquets.append(pq_path)
    return roots, parquets, particles


def _spec_sample(directory: Path, source: str, *, particles: bool) -> Any:
    """A sample of a spec (YAML, loaded as ``ratiofit run`` loads it) reading every event."""
    import yaml

    from ratiofit.spec import load_spec_text

    options: dict[str, Any] = {"files": f"events_*.{'root' if source == 'root' else 'parquet'}",
                               "features": FEATURES, "weight": "w", "step_size": STEP_SIZE}
    if source == "root":
        options["tree"] = "events"
    if particles:
        options["particles"] = PARTICLES
    text = yaml.safe_dump({"seed": 1,
                           "parameters": {"mu": {"nominal": 0.0, "range": [-1.0, 1.0]}},
                           "samples": {"events": {"source": source, "options": options}}},
                          sort_keys=False)
    spec = load_spec_text(text, path=str(directory / "spec.yaml"))
    return spec.samples["events"], spec.parameters


def _branches(particles: bool) -> list[str]:
    return [*FEATURES, "w", *(PARTICLES.values() if particles else ())]


def main() -> dict[str, Any]:
    import awkward as ak
    import pyarrow.parquet as pq
    import uproot

    from ratiofit.sampling import make_sample

    info = machine_info()
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="ratiofit-bench-sources-") as tmp:
        d = Path(tmp)
        t0 = time.perf_counter()
        roots, parquets, n_particles = write_files(d)
        write_seconds = time.perf_counter() - t0
        sizes = {"root_bytes": sum(p.stat().st_size for p in roots),
                 "parquet_bytes": sum(p.stat().st_size for p in parquets)}

        def source_read(source: str, particles: bool) -> Callable[[], int]:
            sample, parameters = _spec_sample(d, source, particles=particles)

            def run() -> int:
                ev = make_sample(sample, parameters=parameters, seed=1)
                return len(ev)
            return run

        def uproot_iterate(particles: bool) -> Callable[[], int]:
            def run() -> int:
                n = 0
                for arrays in uproot.iterate({str(p): "events" for p in roots},
                                             expressions=_branches(particles),
                                             step_size=STEP_SIZE):
                    n += len(arrays)
                return n
            return run

        def uproot_iterate_numpy(particles: bool) -> Callable[[], int]:
            def run() -> int:
                feats, weights, counts = [], [], []
                values: dict[str, list[np.ndarray]] = {f: [] for f in PARTICLES}
                for arrays in uproot.iterate({str(p): "events" for p in roots},
                                             expressions=_branches(particles),
                                             step_size=STEP_SIZE):
                    feats.append(np.stack([ak.to_numpy(arrays[c]) for c in FEATURES],
                                          axis=1).astype(np.float64))
                    weights.append(ak.to_numpy(arrays["w"]).astype(np.float64))
                    if particles:
                        counts.append(ak.to_numpy(ak.num(arrays["part_pt"], axis=1)))
                        for f, c in PARTICLES.items():
                            values[f].append(ak.to_numpy(ak.flatten(arrays[c]))
                                             .astype(np.float64))
                x = np.concatenate(feats)
                np.concatenate(weights)
                if particles:
                    np.concatenate(counts)
                    for f in PARTICLES:
                        np.concatenate(values[f])
                return len(x)
            return run

        def pyarrow_iter_batches(particles: bool) -> Callable[[], int]:
            def run() -> int:
                n = 0
                for path in parquets:
                    for batch in pq.ParquetFile(path).iter_batches(
                            batch_size=STEP_SIZE, columns=_branches(particles)):
                        n += batch.num_rows
                return n
            return run

        def pyarrow_read_table(particles: bool) -> Callable[[], int]:
            def run() -> int:
                return sum(pq.read_table(path, columns=_branches(particles)).num_rows
                           for path in parquets)
            return run

        cases: dict[str, dict[str, Callable[[], int]]] = {}
        for label, particles in (("flat", False), ("particles", True)):
            cases[f"root_{label}"] = {
                "source": source_read("root", particles),
                "uproot_iterate": uproot_iterate(particles),
                "uproot_iterate_numpy": uproot_iterate_numpy(particles)}
            cases[f"parquet_{label}"] = {
                "source": source_read("parquet", particles),
                "pyarrow_iter_batches": pyarrow_iter_batches(particles),
                "pyarrow_read_table": pyarrow_read_table(particles)}

        wall: dict[str, dict[str, list[float]]] = {}
        cpu: dict[str, dict[str, list[float]]] = {}
        for case, runs in cases.items():
            for name, fn in runs.items():  # warm-up: the page cache, imports, tracing
                n = fn()
                if n != N_EVENTS:
                    raise RuntimeError(f"{case}/{name} read {n} events, not {N_EVENTS}")
            wall[case] = {name: [] for name in runs}
            cpu[case] = {name: [] for name in runs}
            order = list(runs.items())
            for k in range(REPEATS):
                for name, fn in order if k % 2 == 0 else order[::-1]:
                    w0, c0 = time.perf_counter(), time.process_time()
                    fn()
                    wall[case][name].append(time.perf_counter() - w0)
                    cpu[case][name].append(time.process_time() - c0)
            print(f"{case}: " + ", ".join(f"{name} {N_EVENTS / np.median(v):.3g}/s"
                                          for name, v in wall[case].items()), flush=True)

    def rates(times: dict[str, dict[str, list[float]]]) -> dict[str, dict[str, float]]:
        return {case: {name: N_EVENTS / float(np.median(v)) for name, v in runs.items()}
                for case, runs in times.items()}

    rate, cpu_rate = rates(wall), rates(cpu)
    ratios: dict[str, dict[str, float]] = {}
    for case in cases:
        ref, extra = (("uproot_iterate", "uproot_iterate_numpy") if case.startswith("root")
                      else ("pyarrow_iter_batches", "pyarrow_read_table"))
        ratios[case] = {
            f"source_over_{ref}": rate[case]["source"] / rate[case][ref],
            f"source_over_{ref}_cpu": cpu_rate[case]["source"] / cpu_rate[case][ref],
            f"source_over_{extra}": rate[case]["source"] / rate[case][extra],
            f"source_over_{extra}_cpu": cpu_rate[case]["source"] / cpu_rate[case][extra],
        }
    result = {
        "benchmark": "sources",
        "description": "events/s of the root source (make_sample on a spec's sample: "
                       "checks, chunked read, NaN/inf checks, float64 EventSet) against "
                       "plain uproot.iterate over the same branches of the same files, and "
                       "of the parquet source against plain pyarrow (iter_batches with the "
                       "same batch size; read_table), same process; 10^6 events in 4 files, "
                       "10 flat float32 branches + a weight, with and without one jagged "
                       "particle branch set of 3 fields",
        "machine": info,
        "settings": {"n_events": N_EVENTS, "files": N_FILES, "flat_branches": N_FLAT,
                     "weight": "w (float32, 10% negative)",
                     "particle_fields": list(PARTICLE_FIELDS), "particles": n_particles,
                     "basket_entries": BASKET_ENTRIES, "row_group_size": ROW_GROUP,
                     "step_size": STEP_SIZE, "repeats": REPEATS, "seed": SEED,
                     "statistic": "median", **sizes,
                     "write_seconds": write_seconds},
        "goal": "root source >= 0.8 x uproot.iterate",
        "events_per_second": rate,
        "events_per_cpu_second": cpu_rate,
        "seconds_all": wall,
        "cpu_seconds_all": cpu,
        "ratios": ratios,
        "ratio_root_source_over_uproot_iterate": {
            label: ratios[f"root_{label}"]["source_over_uproot_iterate"]
            for label in ("flat", "particles")},
        "ratio_parquet_source_over_pyarrow": {
            label: ratios[f"parquet_{label}"]["source_over_pyarrow_iter_batches"]
            for label in ("flat", "particles")},
        "total_seconds": time.perf_counter() - t_start,
        "load_average_at_end": list(os.getloadavg()),
    }
    write_json(RESULTS, result)
    r, q = (result["ratio_root_source_over_uproot_iterate"],
            result["ratio_parquet_source_over_pyarrow"])
    print(f"sources: root source / uproot.iterate {r['flat']:.2f} flat, "
          f"{r['particles']:.2f} with particles (goal >= 0.8); parquet source / pyarrow "
          f"iter_batches {q['flat']:.2f} flat, {q['particles']:.2f} with particles; "
          f"{result['total_seconds']:.0f} s")
    return result


if __name__ == "__main__":
    main()
