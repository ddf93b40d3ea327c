"""Ensemble wall time in-process vs a 2-worker dask LocalCluster (issue 8).

``python bench/bench_dask.py`` runs ``specs/quickstart.yaml`` scaled to 2·10⁴ events per
sample with an 8-member ensemble, once with the in-process ``LocalExecutor`` and once
with ``DaskExecutor(workers=2)`` (cluster start-up included, as a user pays it), in the
same process, checks that both give the same fitted values, and writes
``bench/results/dask_ensemble.json``. On 2 cores the ideal ratio is 2; each worker is a
separate TensorFlow process whose own thread pool competes for the same two cores.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
MEMBERS = 8


def main() -> int:
    sys.path.insert(0, str(ROOT / "bench"))
    from run_bench import machine_info, write_json

    from ratiofit.execution import DaskExecutor, LocalExecutor
    from ratiofit.spec import load_spec, scale_spec
    from ratiofit.workflow import run_spec

    spec = load_spec(ROOT / "specs" / "quickstart.yaml")
    largest = max(s.n_events for s in spec.samples.values())
    spec = replace(scale_spec(spec, 20_000 / largest), ensemble=MEMBERS)
    out: dict = {"machine": machine_info(), "members": MEMBERS,
                 "events_per_sample": {k: s.n_events for k, s in spec.samples.items()}}
    values = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label in ("in_process", "local_cluster_2_workers"):
            t0 = time.perf_counter()
            if label == "in_process":
                res = run_spec(spec, Path(tmp) / label, executor=LocalExecutor(), plots=False)
            else:
                with DaskExecutor(workers=2) as executor:
                    res = run_spec(spec, Path(tmp) / label, executor=executor, plots=False)
            out[f"{label}_seconds"] = time.perf_counter() - t0
            values[label] = res["ensemble"]["values"]
            print(f"{label}: {out[f'{label}_seconds']:.1f} s", flush=True)
    out["values"] = values
    out["identical_results"] = values["in_process"] == values["local_cluster_2_workers"]
    out["max_abs_difference"] = max(
        abs(a - b) for name in values["in_process"]
        for a, b in zip(values["in_process"][name], values["local_cluster_2_workers"][name],
                        strict=True))
    out["speedup_cluster_over_in_process"] = \
        out["in_process_seconds"] / out["local_cluster_2_workers_seconds"]
    out["load_average_at_end"] = list(os.getloadavg())
    write_json(RESULTS / "dask_ensemble.json", out)
    print(f"speed-up {out['speedup_cluster_over_in_process']:.2f}x, identical: "
          f"{out['identical_results']}")
    return 0 if out["identical_results"] else 1


if __name__ == "__main__":
    sys.exit(main())
