"""Benchmark of the ``pythia`` source: events/s against a bare PYTHIA loop, 1 and 2 processes.

Writes ``bench/results/pythia_source.json`` (atomically) and prints a summary; run alone
(``python bench/bench_pythia.py``, about 2 minutes on 2 idle cores) or as part of
``bench/run_bench.py`` (``make bench``). ``--quick`` (8000 events, one repeat) is for trying
the script out and writes nowhere unless ``--output`` is given.

Goals (issue 20, item 5): the source with one process at **≥ 0.8×** the speed of a bare
``pythia.next()`` loop, and **≥ 1.8×** its own one-process speed with two processes.

Measured in one process, :data:`REPEATS` times, the order of the runs alternated between
repeats (θ, seeds and sizes identical):

``bare_next``
    The reference: the source's process and quiet settings, one ``init()`` (not timed),
    then ``pythia.next()`` :data:`N_EVENTS` times, nothing read from the event: the
    generator's own speed on this machine now.
``bare_next_block_inits``
    The same loop with one PYTHIA instance and ``init()`` (timed) per block of the
    source's default ``block_size``, as the source must (one θ per block): the generator
    with the initialisations no source that varies θ per block can avoid.
``next_batch``
    The events of ``bare_next`` through ``pythia.nextBatch`` in the source's sub-batches
    (the event records converted to awkward arrays; init not timed): the cheapest way the
    Python interface offers to get particles out of PYTHIA.
``source_processes_1`` and ``source_processes_2``
    The whole ``Pythia.generate`` call for 2·:data:`N_EVENTS` jets (= N_EVENTS e+e-
    events) with ``TimeShower:alphaSvalue`` uniform in [0.10, 0.18], the default
    ``block_size`` and cache off: per block a PYTHIA instance and ``init()``, generation,
    particle extraction, FastJet clustering, preprocessing and the jet observables; with 2
    processes also the start of the two spawned workers (imports, PYTHIA's databases).
``stages``
    :data:`STAGE_BLOCKS` default-size blocks run stage by stage in-process with the
    source's internal functions: PYTHIA instance, ``init()``, ``nextBatch``, selection of
    the visible final state, clustering with constituent extraction, preprocessing and
    the jet observables; CPU microseconds per event of each, and their shares.
``worker_start``
    Wall seconds from creating a two-worker :class:`ratiofit.execution.ProcessExecutor`
    to both workers having imported the PYTHIA stack and built their PYTHIA template: the
    part of ``source_processes_2`` that does no generation.

Throughputs are e+e- events per second from the summed wall times over the repeats.
Reported ratios: ``ratio_source_p1_over_bare_next`` (the goal's), the same from CPU
seconds of this process (less sensitive to other jobs on the machine), the source against
``bare_next_block_inits``, the ceiling ``bare_next / (next_batch + block inits)`` (the time
per event of ``next_batch`` plus what the block initialisations add to the bare loop: what
the source would reach if clustering, preprocessing and the observables cost nothing), and
``scaling_p2_over_p1``. The machine's CPU count and load averages before and after every
measurement are recorded, and ``machine_busy`` is set when the 1-minute load at the start
exceeded a quarter of the cores: other jobs distort every number, the two-process scaling
most.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
N_EVENTS = 32_000  # e+e- events per measurement: 16 blocks of the default 2000
REPEATS = 2
STAGE_BLOCKS = 4
SEED = 20240611
ALPHA_S_RANGE = (0.10, 0.18)
GOALS = {"ratio_source_p1_over_bare_next": 0.8, "scaling_p2_over_p1": 1.8}


def _default_block_size() -> int:
    from ratiofit.plugins.sources.pythia import Pythia

    return int(Pythia.options["block_size"].default)


def _pythia(seed: int, *, init: bool = True) -> Any:
    """A PYTHIA instance set up exactly like one block of the source (at the nominal θ)."""
    from ratiofit.plugins.sources import pythia as src

    py = src._new_pythia()
    with src._silenced():
        for s in (*src.PROCESS_SETTINGS, "Beams:eCM = 91.188", "Random:setSeed = on",
                  f"Random:seed = {seed}"):
            if not py.readString(s, False):
                raise RuntimeError(f"PYTHIA rejected {s!r}")
        if init and not py.init():
            raise RuntimeError("PYTHIA init failed")
    return py


def _timed(seconds: float, cpu: float, n: int) -> dict[str, float]:
    return {"seconds": seconds, "cpu_seconds": cpu, "events_per_second": n / seconds,
            "load_1min_after": os.getloadavg()[0]}


def bare_next(n: int, seed: int) -> dict[str, float]:
    """``n`` calls of ``pythia.next()`` after one (untimed) init."""
    py = _pythia(seed)
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(n):
        py.next()
    return _timed(time.perf_counter() - t0, time.process_time() - c0, n)


def bare_next_block_inits(n: int, seed: int, block_size: int) -> dict[str, float]:
    """``n`` calls of ``pythia.next()``, a new instance and ``init()`` (timed) per block."""
    from ratiofit.plugins.sources import pythia as src

    t0, c0 = time.perf_counter(), time.process_time()
    for b, first in enumerate(range(0, n, block_size)):
        py = _pythia(src._block_seed(seed, b))
        for _ in range(min(block_size, n - first)):
            py.next()
    return _timed(time.perf_counter() - t0, time.process_time() - c0, n)


def next_batch(n: int, seed: int) -> dict[str, float]:
    """``n`` events as awkward arrays through ``nextBatch`` in the source's sub-batches."""
    from ratiofit.plugins.sources import pythia as src

    py = _pythia(seed)
    t0, c0 = time.perf_counter(), time.process_time()
    done = 0
    with src._silenced():
        while done < n:
            k = min(src._SUB_BATCH, n - done)
            py.nextBatch(k)
            done += k
    return _timed(time.perf_counter() - t0, time.process_time() - c0, n)


def stages(n_blocks: int, block_size: int, seed: int) -> dict[str, float]:
    """CPU seconds per stage of ``n_blocks`` default blocks, in-process, as the source runs
    them (CPU, not wall: on a busy machine the shares stay meaningful)."""
    from ratiofit.plugins.jets.preprocessing import preprocess_jets
    from ratiofit.plugins.sources import pythia as src

    spent = dict.fromkeys(("pythia_instance", "init", "next_batch", "visible_selection",
                           "clustering_and_constituents", "preprocessing",
                           "jet_observables"), 0.0)

    def lap(stage: str, t: float) -> float:
        now = time.process_time()
        spent[stage] += now - t
        return now

    for b in range(n_blocks):
        block = src._Block(index=b, n_events=block_size,
                           settings=(*src.PROCESS_SETTINGS, "Beams:eCM = 91.188"),
                           seed=src._block_seed(seed, b), jet_r=0.8, jet_p=-1.0, n_jets=2,
                           pid_encoding="remap", cache_path=None)
        t = time.process_time()
        py = _pythia(block.seed, init=False)
        t = lap("pythia_instance", t)
        with src._silenced():
            py.init()
        t = lap("init", t)
        visible = []
        for first in range(0, block_size, src._SUB_BATCH):
            with src._silenced():
                batch = py.nextBatch(min(src._SUB_BATCH, block_size - first))
            t = lap("next_batch", t)
            visible.append(src._visible(batch))
            t = lap("visible_selection", t)
        constituents, jets, _ = src._cluster(src._Visible.concatenate(visible), block)
        t = lap("clustering_and_constituents", t)
        particles = preprocess_jets(constituents, jet_eta=jets[:, 2], jet_phi=jets[:, 3])
        t = lap("preprocessing", t)
        src._observables(particles)
        lap("jet_observables", t)
    return spent


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
    t0, c0 = time.perf_counter(), time.process_time()
    ev = src.generate(n_events=n_jets, theta=theta, options=opts, rng=rng)
    out: dict[str, Any] = _timed(time.perf_counter() - t0, time.process_time() - c0, n_events)
    if processes > 1:  # the work is in the workers: this process's CPU time says nothing
        del out["cpu_seconds"]
    out.update({"jets_per_second": n_jets / out["seconds"],
                "n_blocks": ev.provenance["n_blocks"], "block_size": opts["block_size"],
                "mean_multiplicity": float(
                    ev.features[:, ev.feature_names.index("multiplicity")].mean())})
    return out


def _worker_probe() -> float:
    """In a spawned worker: import what a block needs and build the PYTHIA template."""
    import awkward  # noqa: F401
    import fastjet  # noqa: F401

    from ratiofit.plugins.sources import pythia as src

    src._new_pythia()
    return time.process_time()


def worker_start(workers: int = 2) -> dict[str, Any]:
    """Wall seconds until ``workers`` spawned workers are ready to generate a block."""
    from ratiofit.execution import Job, ProcessExecutor

    t0 = time.perf_counter()
    with ProcessExecutor(workers=workers) as pool:
        cpu = pool.run([Job(name=f"probe-{k}", function=_worker_probe) for k in range(workers)])
    return {"seconds": time.perf_counter() - t0, "worker_cpu_seconds": cpu}


def _sum_rate(runs: list[dict[str, Any]], n: int, key: str = "seconds") -> float:
    return n * len(runs) / sum(r[key] for r in runs)


def bench_pythia(info: dict[str, Any], *, n_events: int = N_EVENTS, repeats: int = REPEATS,
                 stage_blocks: int = STAGE_BLOCKS) -> dict[str, Any]:
    from importlib.metadata import version

    load_begin = list(os.getloadavg())
    block_size = _default_block_size()
    names = ("bare_next", "bare_next_block_inits", "next_batch", "source_processes_1",
             "source_processes_2")
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    stage_runs, starts = [], []
    for rep in range(repeats):
        seed = SEED + rep
        steps = {
            "bare_next": lambda s=seed: bare_next(n_events, s),
            "bare_next_block_inits": lambda s=seed: bare_next_block_inits(n_events, s,
                                                                          block_size),
            "next_batch": lambda s=seed: next_batch(n_events, s),
            "source_processes_1": lambda s=seed: source_run(n_events, 1, s),
            "source_processes_2": lambda s=seed: source_run(n_events, 2, s),
        }
        for name in (names if rep % 2 == 0 else names[::-1]):
            runs[name].append(steps[name]())
        stage_runs.append(stages(stage_blocks, block_size, seed))
        starts.append(worker_start())
        last = {k: v[-1]["events_per_second"] for k, v in runs.items()}
        print(f"  pythia rep {rep}: bare next {last['bare_next']:.0f} ev/s, with block inits "
              f"{last['bare_next_block_inits']:.0f}, nextBatch {last['next_batch']:.0f}, "
              f"source p=1 {last['source_processes_1']:.0f}, p=2 "
              f"{last['source_processes_2']:.0f} ev/s; load "
              f"{os.getloadavg()[0]:.2f}", flush=True)

    eps = {name: _sum_rate(runs[name], n_events) for name in names}
    cpu_eps = {name: _sum_rate(runs[name], n_events, "cpu_seconds")
               for name in ("bare_next", "bare_next_block_inits", "next_batch",
                            "source_processes_1")}
    n_staged = stage_blocks * block_size * repeats
    stage_us = {k: 1e6 * sum(r[k] for r in stage_runs) / n_staged for k in stage_runs[0]}
    # seconds per event the block initialisations add to the bare loop
    init_per_event = 1 / eps["bare_next_block_inits"] - 1 / eps["bare_next"]
    ceiling = (1 / eps["bare_next"]) / (1 / eps["next_batch"] + init_per_event)
    ratios = {
        "ratio_source_p1_over_bare_next": eps["source_processes_1"] / eps["bare_next"],
        "ratio_source_p1_over_bare_next_cpu": cpu_eps["source_processes_1"]
        / cpu_eps["bare_next"],
        "ratio_source_p1_over_bare_next_block_inits": eps["source_processes_1"]
        / eps["bare_next_block_inits"],
        "ratio_next_batch_over_bare_next": eps["next_batch"] / eps["bare_next"],
        "ceiling_ratio_next_batch_and_block_inits_over_bare_next": ceiling,
        "scaling_p2_over_p1": eps["source_processes_2"] / eps["source_processes_1"],
    }
    cores = info.get("cpu_affinity_count") or info.get("cpu_count") or 1
    return {
        "benchmark": "pythia_source",
        "description": "e+e- events/s of the pythia source (per block a PYTHIA instance and "
                       "init, generation, particle extraction, fastjet clustering, "
                       "preprocessing, jet observables) against a bare pythia.next() loop in "
                       "the same run, with 1 and 2 worker processes",
        "machine": {**info, "pythia8mc": version("pythia8mc"), "fastjet": version("fastjet")},
        "load_average_at_begin": load_begin,
        "machine_busy": load_begin[0] > 0.25 * cores,
        "settings": {"n_events": n_events, "jets_per_event": 2, "repeats": repeats,
                     "block_size": block_size, "seed": SEED,
                     "alpha_s": {"setting": "TimeShower:alphaSvalue",
                                 "uniform": list(ALPHA_S_RANGE)},
                     "cache": False, "stage_blocks": stage_blocks},
        "goals": GOALS,
        "goals_met": {k: bool(ratios[k] >= v) for k, v in GOALS.items()},
        "events_per_second": eps,
        "cpu_events_per_second": cpu_eps,
        **ratios,
        "stages_microseconds_per_event": stage_us,
        "stages_share": {k: v / sum(stage_us.values()) for k, v in stage_us.items()},
        "worker_start_seconds": float(np.mean([s["seconds"] for s in starts])),
        "runs": {**runs, "stages_seconds": stage_runs, "worker_start": starts},
    }


def main(argv: list[str] | None = None) -> int:
    from run_bench import machine_info, write_json  # bench/ is on sys.path as script dir

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="8000 events, one repeat, one staged block: trying it out")
    parser.add_argument("--output", type=Path, default=None,
                        help=f"where to write the JSON (default {RESULTS / 'pythia_source.json'};"
                             " --quick: nowhere)")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    info = machine_info()
    print(f"pythia source bench — {info['cpu_affinity_count'] or info['cpu_count']} CPU cores, "
          f"load {info['load_average_at_start'][0]:.2f}", flush=True)
    sizes = {"n_events": 8000, "repeats": 1, "stage_blocks": 1} if args.quick else {}
    out = bench_pythia(info, **sizes)
    out["total_seconds"] = time.perf_counter() - t0
    out["load_average_at_end"] = list(os.getloadavg())
    path = args.output or (None if args.quick else RESULTS / "pythia_source.json")
    if path is not None:
        write_json(path, out)
    summary(out, path)
    return 0


def summary(out: dict[str, Any], path: Path | None = RESULTS / "pythia_source.json") -> None:
    e = out["events_per_second"]
    met = out["goals_met"]
    print(f"  => source {e['source_processes_1']:.0f} ev/s (1 process), "
          f"{e['source_processes_2']:.0f} ev/s (2), bare next() {e['bare_next']:.0f} ev/s: "
          f"ratio {out['ratio_source_p1_over_bare_next']:.2f} (goal 0.8: "
          f"{'met' if met['ratio_source_p1_over_bare_next'] else 'NOT met'}; CPU "
          f"{out['ratio_source_p1_over_bare_next_cpu']:.2f}; ceiling with nextBatch and the "
          f"block inits {out['ceiling_ratio_next_batch_and_block_inits_over_bare_next']:.2f}),"
          f" scaling {out['scaling_p2_over_p1']:.2f} (goal 1.8: "
          f"{'met' if met['scaling_p2_over_p1'] else 'NOT met'}; worker start "
          f"{out['worker_start_seconds']:.2f} s)"
          + ("; MACHINE BUSY (1-min load "
             f"{out['load_average_at_begin'][0]:.2f})" if out["machine_busy"] else "")
          + (f"; wrote {path}" if path else ""), flush=True)


if __name__ == "__main__":
    sys.exit(main())
