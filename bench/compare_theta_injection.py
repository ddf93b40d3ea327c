"""Measured choice of the ``pfn`` default ``theta_injection`` (per particle vs latent).

Trains the same PFN twice on the same PYTHIA αs samples (nominal vs αs ~ U[0.10, 0.18]),
changing only where θ enters, and compares (a) the best validation loss (a lower BCE
is a better estimate of the ratio: the loss is minimised by the true ratio), (b) the
closure χ²/ndf of the observables after reweighting a held-out nominal sample to a
held-out αs = 0.16 sample, and (c) the training time. Writes
``bench/results/pfn_theta_injection.json``. About 15 minutes on 2 CPU cores.

Usage: ``python bench/compare_theta_injection.py [n_jets_per_sample]``
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_bench import RESULTS, machine_info, write_json

SPEC = """
seed: 17
parameters:
  alpha_s: {{nominal: 0.1365, range: [0.10, 0.18]}}
samples:
  nominal: {{source: pythia, n_events: {n}, options: {{parameters: {{alpha_s:
    "TimeShower:alphaSvalue"}}, processes: 2, block_size: 500}}}}
  varied: {{source: pythia, n_events: {n}, theta: {{alpha_s: uniform}}, options: {{
    parameters: {{alpha_s: "TimeShower:alphaSvalue"}}, processes: 2, block_size: 500}}}}
reweighter:
  architecture: {{name: pfn, options: {{theta_injection: {mode}}}}}
  reference: nominal
  target: varied
  inputs: {{features: none, particles: [z, deta, dphi, pid_code]}}
  training: {{epochs: {epochs}, batch_size: 256, patience: 4}}
  calibration: none
outputs:
  closure: {{alpha_s: [0.16]}}
  closure_events: {n_closure}
"""


def main() -> int:
    from ratiofit.registry import get_registry
    from ratiofit.spec import load_spec_text
    from ratiofit.workflow import Samples, closure, train_from_spec

    n = int(sys.argv[1]) if len(sys.argv) > 1 else 60_000
    epochs = int(sys.argv[2]) if len(sys.argv) > 2 else 8
    reg = get_registry()
    out: dict[str, Any] = {"machine": machine_info(), "n_jets_per_sample": n, "epochs": epochs,
                           "modes": {}}
    for mode in ("particle", "latent"):
        spec = load_spec_text(SPEC.format(n=n, mode=mode, epochs=epochs, n_closure=n),
                              path=f"<compare {mode}>")
        samples = Samples(spec, reg)
        t0 = time.perf_counter()
        rw = train_from_spec(spec, samples, member=0, checkpoint_dir=None, progress=False,
                             registry=reg)
        seconds = time.perf_counter() - t0
        cl = closure(spec, rw, samples, reg)
        hists = cl["points"][0]["histograms"]
        chi2 = {h["feature"]: h["chi2_ndf"] for h in hists
                if h["feature"] not in ("jet_e", "jet_pt", "jet_eta", "jet_phi")}
        out["modes"][mode] = {
            "best_val_loss": rw.metadata["best_val_loss"], "best_epoch": rw.metadata["best_epoch"],
            "val_loss_history": rw.metadata["history"]["val_loss"], "train_seconds": seconds,
            "closure_chi2_ndf": chi2, "closure_chi2_ndf_mean": float(np.mean(list(chi2.values()))),
        }
        m = out["modes"][mode]
        print(mode, m["best_val_loss"], m["closure_chi2_ndf_mean"], f"{seconds:.0f} s",
              flush=True)
    p, lat = out["modes"]["particle"], out["modes"]["latent"]
    out["val_loss_difference_particle_minus_latent"] = p["best_val_loss"] - lat["best_val_loss"]
    out["verdict"] = "particle" if p["best_val_loss"] <= lat["best_val_loss"] else "latent"
    write_json(RESULTS / "pfn_theta_injection.json", out)
    print("wrote", RESULTS / "pfn_theta_injection.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
