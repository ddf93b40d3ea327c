"""Benchmark of the ``pythia`` source: events/s against a bare PYTHIA loop, 1 and 2 processes.

Writes ``bench/results/pythia_source.json`` (atomically) and prints a summary; run alone
(``python bench/bench_pythia.py``) or as part of ``bench/run_bench.py``.

Measured in one process, in this order, :data:`REPEATS` times with the order of the
source runs alternated:

``bare_next``
    A bare PYTHIA loop: the source's process and quiet settings, one ``init()`` (not
    timed), then ``pythia.next()`` :data:`N_EVENTS` times, nothing read from the event.
    This is the in-run reference: the generator's own speed on this machine now.
``next_batch``
    The same events through ``pythia.nextBatch`` in sub-batches of 1000, as the source
    reads them (the event records converted to awkward arrays; init not timed). The
    difference to ``bare_next`` is the cost of getting the particles out of PYTHIA.
``stages_one_block``
    One default block (8000 events) run stage by stage in-process with the source's
    internal functions: PYTHIA construction + init, ``nextBatch``, selection of the
    visible final state, clustering (with constituent extraction), preprocessing and the
    jet observables; the seconds of each (mean over the repeats) and their shares.
``source_processes_1`` and ``source_processes_2``
    The whole ``Pythia.generate`` call for 2·:data:`N_EVENTS` jets (= N_EVENTS e+e-
    events) with ``TimeShower:alphaSvalue`` uniform in [0.10, 0.18], the default
    ``block_size`` (so every block pays one PYTHIA construction + init), cache off:
    generation, particle extraction, FastJet clustering, preprocessing and the jet
    observables; with 2 processes also the start of the spawned workers.

Throughputs are e+e- events per second (one event gives two jets), from the summed
times over the repeats. Reported ratios: source (1 process) / bare loop, i.e. the share of
the generator's own speed that survives the whole pipeline, and 2 processes / 1 process
(ideally 2 on two idle cores). The machine's CPU count and load averages are recorded:
other jobs on the cores distort the numbers.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
N_EVENTS = 32_000  # e+e- events per measurement: four blocks of the default 8000
REPEATS = 2
SEED = 20240611
ALPHA_S_RANGE = (0.10, 0.18)


def _pythia(seed: int) -> Any:
    """A PYTHIA instance set up exactly like one block of the source (at the nominal θ)."""
    from ratiofit.plugins.sources import pythia as src

    py = src._new_pythia()
    with src._silenced():
        for s in (*src.PROCESS_SETTINGS, "Beams:eCM = 91.188", "Random:setSeed = on",
                  f"Random:seed = {seed}"):
            if not py.readString(s, False):
                raise RuntimeError(f"PYTHIA rejected {s!r}")
        if not py.init():
            raise RuntimeError("PYTHIA init failed")
    return py


def bare_next(n: int, seed: int) -> float:
    """Seconds for ``n`` calls of ``pythia.next()`` after init."""
    py = _pythia(seed)
    t0 = time.perf_counter()
    for _ in range(n):
        py.next()
    return time.perf_counter() - t0


def next_batch(n: int, seed: int) -> float:
    """Seconds to get ``n`` events as awkward arrays with ``nextBatch`` (sub-batches of 1000)."""
    from ratiofit.plugins.sources import pythia as src

    py = _pythia(seed)
    t0 = time.perf_counter()
    done = 0
    with src._silenced():
        while done < n:
            k = min(1000, n - done)
            py.nextBatch(k)
            done += k
    return time.perf_counter() - t0


def stages(n: int, seed: int) -> dict[str, float]:
    """Seconds per stage of one block of ``n`` events, in-process, as the source runs it."""
    import awkward as ak

    from ratiofit.plugins.jets.preprocessing import preprocess_jets
    from ratiofit.plugins.sources import pythia as src

    block = src._Block(index=0, n_events=n, settings=(*src.PROCESS_SETTINGS,
                                                      "Beams:eCM = 91.188"),
                       seed=seed, jet_r=0.8, jet_p=-1.0, n_jets=2, pid_encoding="remap",
                       cache_path=None)
    t0 = time.perf_counter()
    py = _pythia(seed)
    t1 = time.perf_counter()
    batches = []
    with src._silenced():
        for first in range(0, n, 1000):
            batches.append(py.nextBatch(min(1000, n - first)))
    t2 = time.perf_counter()
    visible = ak.concatenate([src._visible(b) for b in batches], axis=0)
    t3 = time.perf_counter()
    constituents, jets, _ = src._cluster(visible, block)
    t4 = time.perf_counter()
    particles = preprocess_jets(constituents, jet_eta=jets[:, 2], jet_phi=jets[:, 3])
    t5 = time.perf_counter()
    src._observables(particles)
    t6 = time.perf_counter()
    return {"construct_and_init": t1 - t0, "next_batch": t2 - t1, "visible_selection": t3 - t2,
            "clustering_and_constituents": t4 - t3, "preprocessing": t5 - t4,
            "jet_observables": t6 - t5}


def source_run(n_events: int, processes: int, seed: int) -> dict[str, Any]:
    """Time one ``Pythia.generate`` call for ``2 * n_events`` jets."""
    from ratiofit.options import resolve_options
    from ratiofit.plugins.sources.pythia import Pythia

    src = Pythia()
    opts = resolve_options(src.options, {"parameters": {"alpha_s": "TimeShower:alphaSvalue"},
                                         "processes": processes, "cache": False},
                           where="bench")
    n_jets = 2 * n_events
    rng = np.random.default_rng(seed)
    theta = {"alpha_s": rng.uniform(*ALPHA_S_RANGE, size=n_jets)}
    t0 = time.perf_counter()
    ev = src.generate(n_events=n_jets, theta=theta, options=opts, rng=rng)
    secs = time.perf_counter() - t0
    return {"seconds": secs, "events_per_second": n_events / secs,
            "jets_per_second": n_jets / secs, "n_blocks": ev.provenance["n_blocks"],
            "block_size": opts["block_size"],
            "mean_multiplicity": float(ev.features[:, ev.feature_names.index("multiplicity")]
                                       .mean())}


def bench_pythia(info: dict[str, Any]) -> dict[str, Any]:
    from importlib.metadata import version

    runs: dict[str, list[dict[str, Any]]] = {
        "bare_next": [], "next_batch": [], "source_processes_1": [], "source_processes_2": []}
    for rep in range(REPEATS):
        seed = SEED + rep
        secs = bare_next(N_EVENTS, seed)
        runs["bare_next"].append({"seconds": secs, "events_per_second": N_EVENTS / secs})
        secs = next_batch(N_EVENTS, seed)
        runs["next_batch"].append({"seconds": secs, "events_per_second": N_EVENTS / secs})
        order = (1, 2) if rep % 2 == 0 else (2, 1)
        for p in order:
            runs[f"source_processes_{p}"].append(source_run(N_EVENTS, p, seed))
        runs.setdefault("stages_one_block", []).append(stages(8000, seed))
        print(f"  pythia rep {rep}: bare next {runs['bare_next'][-1]['events_per_second']:.0f}"
              f" ev/s, nextBatch {runs['next_batch'][-1]['events_per_second']:.0f} ev/s, source"
              f" p=1 {runs['source_processes_1'][-1]['events_per_second']:.0f} ev/s, p=2 "
              f"{runs['source_processes_2'][-1]['events_per_second']:.0f} ev/s", flush=True)

    def rate(name: str) -> float:  # from summed times over the repeats
        return N_EVENTS * len(runs[name]) / sum(r["seconds"] for r in runs[name])

    eps = {name: rate(name) for name in runs if name != "stages_one_block"}
    stage_s = {k: float(np.mean([r[k] for r in runs["stages_one_block"]]))
               for k in runs["stages_one_block"][0]}
    return {
        "benchmark": "pythia_source",
        "description": "e+e- events/s of the pythia source (generation, particle extraction, "
                       "fastjet clustering, preprocessing, jet observables; one PYTHIA init "
                       "per block) against a bare pythia.next() loop in the same run, with 1 "
                       "and 2 worker processes",
        "machine": {**info, "pythia8mc": version("pythia8mc"), "fastjet": version("fastjet")},
        "settings": {"n_events": N_EVENTS, "jets_per_event": 2, "repeats": REPEATS,
                     "seed": SEED, "alpha_s": {"setting": "TimeShower:alphaSvalue",
                                               "uniform": list(ALPHA_S_RANGE)},
                     "cache": False},
        "events_per_second": eps,
        "ratio_source_p1_over_bare_next": eps["source_processes_1"] / eps["bare_next"],
        "ratio_next_batch_over_bare_next": eps["next_batch"] / eps["bare_next"],
        "scaling_p2_over_p1": eps["source_processes_2"] / eps["source_processes_1"],
        "stages_one_block_8000_events_seconds": stage_s,
        "stages_one_block_share": {k: v / sum(stage_s.values()) for k, v in stage_s.items()},
        "runs": runs,
    }


def main() -> int:
    from run_bench import machine_info, write_json  # bench/ is on sys.path as script dir

    t0 = time.perf_counter()
    info = machine_info()
    print(f"pythia source bench — {info['cpu_affinity_count'] or info['cpu_count']} CPU cores, "
          f"load {info['load_average_at_start'][0]:.2f}", flush=True)
    out = bench_pythia(info)
    out["total_seconds"] = time.perf_counter() - t0
    out["load_average_at_end"] = list(os.getloadavg())
    write_json(RESULTS / "pythia_source.json", out)
    summary(out)
    return 0


def summary(out: dict[str, Any]) -> None:
    e = out["events_per_second"]
    print(f"  => source {e['source_processes_1']:.0f} ev/s (1 process), "
          f"{e['source_processes_2']:.0f} ev/s (2), bare next() {e['bare_next']:.0f} ev/s: "
          f"ratio {out['ratio_source_p1_over_bare_next']:.2f}, scaling "
          f"{out['scaling_p2_over_p1']:.2f}; wrote {RESULTS / 'pythia_source.json'}",
          flush=True)


if __name__ == "__main__":
    sys.exit(main())
