"""Cost of the learned ratio's uncertainty estimate, as a ratio to one training (issue 15).

``python bench/bench_uncertainty.py [SCALE]`` runs ``specs/quickstart.yaml`` (scaled by
SCALE, default 1: the user's ``make run``) with its default ``uncertainty`` section and
reads from the run's own timings, all measured in this one process: the main training,
the main fit, the replicas' trainings and refits, the simulation correction and the
closure gate. Written to
``bench/results/uncertainty.json``.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


def main() -> int:
    sys.path.insert(0, str(ROOT / "bench"))
    from run_bench import machine_info, write_json

    from ratiofit.spec import load_spec, scale_spec
    from ratiofit.workflow import run_spec

    scale = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
    spec = load_spec(ROOT / "specs" / "quickstart.yaml")
    if scale != 1.0:
        spec = scale_spec(spec, scale)
    with tempfile.TemporaryDirectory() as tmp:
        result = run_spec(spec, Path(tmp) / "run", plots=False)
    timing = result["timing"]
    train = timing["train_seconds"][0]
    reps = timing["replicas"]
    rep_train = sum(r["train_seconds"] for r in reps)
    rep_fit = sum(r["fit_seconds"] for r in reps)
    out = {
        "machine": machine_info(), "spec": "specs/quickstart.yaml", "scale": scale,
        "replicas": len(reps),
        "refit_methods": [r["refit"] for r in result["fit"]["uncertainty"]["replicas"]],
        "seconds": {"training": train, "fit": result["timing"]["fit_seconds"][0],
                    "replica_trainings": rep_train, "replica_refits": rep_fit,
                    "uncertainty_total": timing["uncertainty_seconds"],
                    "correction": timing.get("correction_seconds"),
                    "gate": timing["gate_seconds"],
                    "run_total": result["timing"]["total_seconds"]},
        "ratio_uncertainty_to_one_training": timing["uncertainty_seconds"] / train,
        "ratio_refits_to_one_fit": rep_fit / max(result["timing"]["fit_seconds"][0], 1e-9),
        "ratio_gate_to_one_training": timing["gate_seconds"] / train,
        "ratio_correction_to_one_training": (timing.get("correction_seconds") or 0.0) / train,
    }
    write_json(RESULTS / "uncertainty.json", out)
    print(f"uncertainty: {out['ratio_uncertainty_to_one_training']:.2f}x one training "
          f"({len(reps)} replicas); refits {out['ratio_refits_to_one_fit']:.2f}x one fit; "
          f"gate {out['ratio_gate_to_one_training']:.2f}x one training")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
