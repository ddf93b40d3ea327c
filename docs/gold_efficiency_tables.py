"""Write docs/gold-efficiency.md: exact-weight training against BCE at equal jet counts,
scored by the gold closure (issue 20, item 3).

Each method (:data:`METHODS`: a spec) is run at each jet count N of :data:`SIZES`: its
reference and target samples at N jets each (the same seed, so the smaller samples are the
first jets of the larger ones and the PYTHIA blocks come from the cache), its calibration
on those N reference jets, and the gold closure on the spec's own held-out jets
(``outputs.closure_events``, the same 5·10⁴ jets in every run: every row is scored on the
same events). BCE trains on 2N jets (N nominal, N varied), the exact weights on the N
nominal jets and their PYTHIA weights; the varied sample of the exact-weight spec only
declares the parameters.

Scores per run, from ``result.json["gold_closure"]`` (:mod:`ratiofit.gold_closure`):

- **ΔL**: the mean over the grid points of the held-out soft-label loss of the learned
  ratio minus that of no reweighting (``loss_learned_minus_nominal``). Its expectation is
  D(learned) − D(none), D a divergence from the exact E[w|x], so lower is closer (the loss is
  a proper score: no estimate of E[w|x] enters, and it favours no training loss: its
  minimiser is the exact ratio whatever trained the network). Error: the mean of the
  points' errors (they share the held-out jets, so their errors are correlated; this is
  the fully correlated bound).
- the median over grid points and jet observables of the paired χ²/ndf (1 for an exact
  ratio), and the number of grid points that pass.

**Jets needed for equal gold closure**: for every exact-weight run, the BCE jet count with
the same ΔL (and the same median χ²/ndf), read off BCE's runs by linear interpolation in
log N (the first crossing from the smallest N; "> N_max" where BCE never gets as close
within its runs), and the ratio of the jets each trains on.

Each run's summary is kept under docs/data/gold_efficiency/<method>-<N>.json (committed),
so the page is regenerated without the run directories; a run with neither is listed as
not made. Nothing in the tables is typed in.

Usage::

    python docs/gold_efficiency_tables.py            # the page from the kept summaries
    python docs/gold_efficiency_tables.py --run      # first make the missing runs
                                                     # (runs/gold_efficiency/<method>-<N>)
    python docs/gold_efficiency_tables.py --check DIR  # the whole pipeline at toy size
        # (N = 400, 800; 1 epoch; 800 held-out jets), everything under DIR, docs untouched

Each run is its own process (``--one``), so a long measurement resumes where it stopped:
runs with a ``result.json`` are kept.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "gold-efficiency.md"
STORE = ROOT / "docs" / "data" / "gold_efficiency"
RUNS = ROOT / "runs" / "gold_efficiency"
COMMAND = "python docs/gold_efficiency_tables.py --run"

#: method → (spec, what it trains on)
METHODS: dict[str, tuple[str, str]] = {
    "bce": ("specs/dctr_pythia_gold.yaml", "BCE, nominal against varied"),
    "exact": ("specs/dctr_pythia_gold_exact.yaml", "exact weights (soft-label BCE)"),
}
#: Jets per training sample.
SIZES = (5_000, 15_000, 50_000)
#: The toy sizes of ``--check``: jets per sample, epochs, held-out jets (about 1400 PYTHIA
#: events in all).
CHECK = ((400, 800), 1, 800)


def sized_spec(method: str, n_jets: int, *, epochs: int | None = None,
               held_out: int | None = None) -> Any:
    """The method's spec with its reference and target samples (and calibration) at
    ``n_jets``; ``epochs`` and ``held_out`` (closure_events) replaced where given."""
    from ratiofit.spec import load_spec

    spec = load_spec(ROOT / METHODS[method][0])
    rw = spec.reweighter
    assert rw is not None
    samples = dict(spec.samples)
    for role in (rw.reference, rw.target):
        samples[role] = replace(samples[role], n_events=n_jets)
    calibration = None if rw.calibration is None else replace(rw.calibration, events=n_jets)
    training = rw.training if epochs is None else replace(rw.training, epochs=epochs)
    outputs = replace(spec.outputs, plots=False, closure_events=held_out
                      or spec.outputs.closure_events)
    return replace(spec, samples=samples, outputs=outputs,
                   reweighter=replace(rw, calibration=calibration, training=training))


def run_one(method: str, n_jets: int, out: Path, *, epochs: int | None,
            held_out: int | None) -> None:
    """One run (``--one``): the sized spec into ``out``."""
    from ratiofit.workflow import run_spec

    run_spec(sized_spec(method, n_jets, epochs=epochs, held_out=held_out), out, plots=False)


def make_runs(runs: Path, sizes: tuple[int, ...], *, epochs: int | None = None,
              held_out: int | None = None) -> None:
    """Every (method, size) run missing under ``runs``, each in its own process, BCE first
    (its samples then fill the PYTHIA cache the exact-weight runs read)."""
    for method in METHODS:
        for n in sizes:
            out = runs / f"{method}-{n}"
            if (out / "result.json").exists():
                print(f"kept {out}", flush=True)
                continue
            cmd = [sys.executable, str(Path(__file__).resolve()), "--one", method, str(n),
                   str(out)]
            if epochs is not None:
                cmd += ["--epochs", str(epochs)]
            if held_out is not None:
                cmd += ["--held-out", str(held_out)]
            t0 = time.perf_counter()
            print(f"running {method} at {n} jets per sample into {out}", flush=True)
            subprocess.run(cmd, check=True, cwd=ROOT,
                           env={"TF_CPP_MIN_LOG_LEVEL": "3", **os.environ})
            print(f"  {(time.perf_counter() - t0) / 60:.1f} min", flush=True)


# -- summaries -----------------------------------------------------------------------------


def _median(values: list[float]) -> float:
    import numpy as np

    return float(np.median(values)) if values else float("nan")


def summarise(method: str, n_jets: int, result: dict[str, Any]) -> dict[str, Any]:
    """What the page needs of a run (the module docstring's scores, per grid point and
    over them)."""
    gold = result["gold_closure"]
    points = []
    for p in gold["points"]:
        reg = p.get("regression") or {}
        feats = [f["chi2_ndf"] for f in p.get("features", []) if f["ndf"] > 0]
        points.append({
            "theta": p["theta"], "verdict": p["verdict"], "failed": p["failed"],
            "ess_fraction": p["ess_fraction"],
            "loss_learned_minus_nominal": reg.get("loss_learned_minus_nominal"),
            "loss_learned_minus_nominal_error": reg.get("loss_learned_minus_nominal_error"),
            "loss_learned_minus_regression": reg.get("loss_learned_minus_regression"),
            "loss_learned_minus_regression_error":
                reg.get("loss_learned_minus_regression_error"),
            "chi2_ndf_features": feats,
            "chi2_ndf_calibration": (p.get("calibration") or {}).get("chi2_ndf")})
    deltas = [p["loss_learned_minus_nominal"] for p in points
              if p["loss_learned_minus_nominal"] is not None]
    errors = [p["loss_learned_minus_nominal_error"] for p in points
              if p["loss_learned_minus_nominal_error"] is not None]
    rw = result.get("reweighter", {})
    return {
        "method": method, "spec": METHODS[method][0], "n_jets": n_jets,
        "labels": rw.get("labels", "sample"), "loss": rw.get("loss"),
        "training_jets": n_jets if rw.get("labels") == "exact" else 2 * n_jets,
        "held_out_jets": gold["n_events"], "verdict": gold["verdict"],
        "delta_loss": sum(deltas) / len(deltas) if deltas else None,
        "delta_loss_error": sum(errors) / len(errors) if errors else None,
        "median_chi2_ndf": _median([c for p in points for c in p["chi2_ndf_features"]]),
        "points_passed": sum(p["verdict"] == "pass" for p in points),
        "points": points,
        "training": {k: rw.get(k) for k in ("epochs_run", "best_epoch", "best_val_loss",
                                            "train_seconds", "n_train", "n_validation")},
        "total_seconds": result.get("timing", {}).get("total_seconds"),
        "ratiofit_commit": result.get("ratiofit", {}).get("commit"),
    }


def collect(runs: Path, store: Path, sizes: tuple[int, ...]) -> dict[tuple[str, int], Any]:
    """Every (method, size)'s summary: from its run (then kept in ``store``), else the kept
    one; missing ones are left out."""
    from ratiofit._atomic import write_text_atomic

    out: dict[tuple[str, int], Any] = {}
    for method in METHODS:
        for n in sizes:
            name = f"{method}-{n}"
            path = runs / name / "result.json"
            if path.exists():
                result = json.loads(path.read_text())
                if "gold_closure" not in result:
                    raise SystemExit(f"{path}: no gold_closure (the reference carries no "
                                     "exact weights)")
                summary = summarise(method, n, result)
                store.mkdir(parents=True, exist_ok=True)
                write_text_atomic(store / f"{name}.json",
                                  json.dumps(summary, indent=1, sort_keys=True) + "\n")
                out[(method, n)] = summary
            elif (store / f"{name}.json").exists():
                out[(method, n)] = json.loads((store / f"{name}.json").read_text())
    return out


def equal_closure(curve: list[tuple[int, float]], value: float) -> tuple[str, float | None]:
    """The N at which the piecewise-linear-in-log-N ``curve`` (N, score; lower is better)
    first reaches ``value``, scanning from its smallest N: its text and value (``None``
    where it is out of the measured range: "> N_max", or "≤ N_min" where the smallest N is
    already as good).

    >>> equal_closure([(1000, 3.0), (10000, 1.0)], 2.0)[0]
    '3162'
    >>> equal_closure([(1000, 3.0), (10000, 1.0)], 0.5)
    ('> 10000', None)
    """
    pts = sorted((n, s) for n, s in curve if s is not None and math.isfinite(s))
    if not pts:
        return "–", None
    if pts[0][1] <= value:
        return f"≤ {pts[0][0]}", None
    for (n0, s0), (n1, s1) in itertools.pairwise(pts):
        if s1 <= value:
            t = (s0 - value) / (s0 - s1)
            n = math.exp(math.log(n0) + t * (math.log(n1) - math.log(n0)))
            return f"{n:.0f}", n
    return f"> {pts[-1][0]}", None


# -- the page ------------------------------------------------------------------------------


INTRO = """\
# Exact weights against BCE: jets needed for equal gold closure

(generated by `python docs/gold_efficiency_tables.py` — do not edit)

The parameterised PFN of [gold-closure.md](gold-closure.md) (`specs/dctr_pythia_gold.yaml`,
BCE: Monash jets against jets with (a_lund, prob_s_ud) uniform over their ranges) against the
same network trained on PYTHIA's exact per-jet hadronization weights
(`specs/dctr_pythia_gold_exact.yaml`, `reweighter.labels: exact`): every Monash jet at every
grid point θ_k of its weights (8 variations and Monash itself), soft label w/(1 + w) and
weight 1 + w, so that the logit learns log E[w|x, θ] = log p(x|θ)/p(x|Monash)
(`ratiofit.exact_labels`; ALICE's soft-label cross-entropy, arXiv 1808.00973). Both are run
at the same numbers N of jets per training sample (BCE trains on N Monash and N varied jets,
the exact weights on the N Monash jets alone) with the specs' training settings, and scored
by the gold closure on the same 5·10⁴ held-out Monash jets:

* **ΔL**: the mean over the 8 grid points of the held-out soft-label loss of the learned
  ratio minus that of no reweighting. It measures the distance from the exact E[w|x] (a
  proper score, whatever loss trained the network): lower is closer, 0 is no better than
  w = 1. ± the mean of the points' errors (they share the jets: a correlated bound).
* **median χ²/ndf**: the paired χ²/ndf of the 14 jet observables at the 8 points
  (learned against exact reweighting of the same jets; 1 for an exact ratio), and the number
  of points that pass the gold closure.

"Jets needed for equal gold closure" reads, for every exact-weight run, the BCE jet count
with the same score off BCE's runs (linear in log N between them).
"""


def _fmt(x: float | None, spec: str) -> str:
    return "–" if x is None or not math.isfinite(x) else format(x, spec)


def run_rows(summaries: dict[tuple[str, int], Any], sizes: tuple[int, ...]) -> list[str]:
    rows = ["| method | jets per sample | jets trained on | ΔL | median χ²/ndf | points "
            "passed | best val. loss | epochs | training | run |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for method, (_, what) in METHODS.items():
        for n in sizes:
            s = summaries.get((method, n))
            if s is None:
                rows.append(f"| {what} | {n} | | not run | | | | | | |")
                continue
            t = s["training"]
            rows.append(
                f"| {what} | {n} | {s['training_jets']} | "
                f"{_fmt(s['delta_loss'], '+.5f')} ± {_fmt(s['delta_loss_error'], '.5f')} | "
                f"{_fmt(s['median_chi2_ndf'], '.2f')} | {s['points_passed']} of "
                f"{len(s['points'])} | {_fmt(t.get('best_val_loss'), '.5f')} | "
                f"{t.get('epochs_run')} | {_fmt((t.get('train_seconds') or 0) / 60, '.1f')} min "
                f"| `runs/gold_efficiency/{method}-{n}` |")
    return rows


def needed_rows(summaries: dict[tuple[str, int], Any], sizes: tuple[int, ...]) -> list[str]:
    bce = [summaries[("bce", n)] for n in sizes if ("bce", n) in summaries]
    exact = [summaries[("exact", n)] for n in sizes if ("exact", n) in summaries]
    if not bce or not exact:
        return [f"Not measured yet: `{COMMAND}` makes the six runs (estimated at about half "
                "an hour on 2 free CPU cores with the PYTHIA samples of "
                "`specs/dctr_pythia_gold.yaml` in the cache, about 10 minutes more without "
                "them; most of it the exact-weight training at 5·10⁴ jets, which has 4.5× "
                "BCE's rows per epoch), then writes this table from them."]
    rows = ["| exact weights: jets per sample | ΔL | BCE jets per sample for equal ΔL | "
            "jets trained on, BCE / exact | median χ²/ndf | BCE jets per sample for equal "
            "χ²/ndf |", "|---|---|---|---|---|---|"]
    for s in exact:
        text, n_b = equal_closure([(b["n_jets"], b["delta_loss"]) for b in bce],
                                  s["delta_loss"])
        chi_text, _ = equal_closure([(b["n_jets"], b["median_chi2_ndf"]) for b in bce],
                                    s["median_chi2_ndf"])
        ratio = "–" if n_b is None else f"{2 * n_b / s['training_jets']:.1f}"
        rows.append(f"| {s['n_jets']} | {_fmt(s['delta_loss'], '+.5f')} | {text} | {ratio} | "
                    f"{_fmt(s['median_chi2_ndf'], '.2f')} | {chi_text} |")
    return rows


def page(summaries: dict[tuple[str, int], Any], sizes: tuple[int, ...]) -> str:
    made = sorted({s["ratiofit_commit"] for s in summaries.values() if s.get("ratiofit_commit")})
    lines = [INTRO, "## Jets needed for equal gold closure", "", f"Made by `{COMMAND}`.", "",
             *needed_rows(summaries, sizes), "", "## Every run", "",
             *run_rows(summaries, sizes), ""]
    if made:
        lines += [f"ratiofit commit(s): {', '.join(made)}.", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0], allow_abbrev=False)
    parser.add_argument("--run", action="store_true", help="make the missing runs first")
    parser.add_argument("--check", metavar="DIR", help="the pipeline at toy size under DIR")
    parser.add_argument("--one", nargs=3, metavar=("METHOD", "N", "OUT"), help=argparse.SUPPRESS)
    parser.add_argument("--epochs", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--held-out", type=int, default=None, help=argparse.SUPPRESS)
    args, _ = parser.parse_known_args()  # make docs-tables passes its own flags
    if args.one:
        method, n, out = args.one
        run_one(method, int(n), Path(out), epochs=args.epochs, held_out=args.held_out)
        return
    if args.check:
        base = Path(args.check).resolve()
        sizes, epochs, held_out = CHECK
        make_runs(base / "runs", sizes, epochs=epochs, held_out=held_out)
        target, text = base / "gold-efficiency.md", page(
            collect(base / "runs", base / "store", sizes), sizes)
    else:
        if args.run:
            make_runs(RUNS, SIZES)
        target, text = PAGE, page(collect(RUNS, STORE, SIZES), SIZES)
    target.write_text(text)
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
