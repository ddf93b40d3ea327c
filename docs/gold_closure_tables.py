"""Write docs/gold-closure.md from the runs' ``result.json["gold_closure"]``.

Each run in :data:`RUNS` is read from ``runs/<name>/result.json``; what the page needs of
it (the gold closure, the reweighter's training, the spec, the scale, the commit) is kept
under docs/data/gold_closure/<name>.json (committed), so the page is regenerated on a
machine without the run directories; a run with neither is listed as not made. The command
that makes each run is printed next to its tables. Nothing in the tables and the lines
under each command is typed in: every number is read from those files (the notes in
:data:`RUNS` are text).

Usage: ``python docs/gold_closure_tables.py`` (``make docs-tables`` runs it).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "gold-closure.md"
STORE = ROOT / "docs" / "data" / "gold_closure"

#: run directory → (the command that makes it, a note on the run)
RUNS: dict[str, tuple[str, str]] = {
    "dctr_pythia_gold": (
        "ratiofit run specs/dctr_pythia_gold.yaml -o runs/dctr_pythia_gold",
        "the spec as it stands, on 2 CPU cores shared with another job, with the PYTHIA "
        "samples cached by an earlier run of the same spec (which, generating them, took "
        "10.1 min in all)"),
    "dctr_pythia_gold-0.1": (
        "ratiofit run specs/dctr_pythia_gold.yaml --scale 0.1 -o runs/dctr_pythia_gold-0.1",
        "a tenth of the spec's samples (5000 jets each), on the same cores: a reweighter "
        "trained on too few jets, for contrast"),
}


def _summary(name: str) -> dict[str, Any] | None:
    """A run's summary: from runs/ (then kept in STORE), else the kept one."""
    path = ROOT / "runs" / name / "result.json"
    if path.exists():
        res = json.loads(path.read_text())
        if "gold_closure" not in res:
            raise SystemExit(f"{path}: no gold_closure (the reference carries no exact weights)")
        spec_path = ROOT / "runs" / name / "spec.yaml"
        keep = {"gold_closure": res["gold_closure"], "reweighter": res.get("reweighter", {}),
                "spec": res.get("spec"), "ratiofit_commit":
                res.get("ratiofit", {}).get("commit"),
                "total_seconds": res.get("timing", {}).get("total_seconds"),
                "samples": _sample_sizes(spec_path)}
        from ratiofit._atomic import write_text_atomic

        STORE.mkdir(parents=True, exist_ok=True)
        write_text_atomic(STORE / f"{name}.json",
                          json.dumps(keep, indent=1, sort_keys=True) + "\n")
        return keep
    stored = STORE / f"{name}.json"
    return json.loads(stored.read_text()) if stored.exists() else None


def _sample_sizes(spec_path: Path) -> dict[str, int]:
    """Events per sample of a run's resolved spec (after ``--scale``)."""
    import yaml

    if not spec_path.exists():
        return {}
    spec = yaml.safe_load(spec_path.read_text())
    return {n: s.get("n_events") for n, s in spec.get("samples", {}).items()}


def _theta(theta: dict[str, float]) -> str:
    return ", ".join(f"{k} = {v:g}" for k, v in theta.items())


def _chi2(c: dict[str, Any] | None, key: str = "chi2_ndf") -> str:
    return "–" if c is None else f"{c[key]:.2f}"


def point_rows(gold: dict[str, Any]) -> list[str]:
    """One row per grid point: ESS, the features' paired χ²/ndf (median, worst), the
    unweighted events' (how far θ_k moves the jets), calibration, regression, verdict."""
    import numpy as np

    rows = ["| θ_k | ESS of the exact weights | paired χ²/ndf, median over features (worst) "
            "| unweighted χ²/ndf, median (largest) | independent-Σw² χ²/ndf, largest | "
            "calibration χ²/ndf | RMSE(log w − f̂) / RMSE(f̂) | loss: learned − f̂ | "
            "loss: learned − nominal | verdict |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for p in gold["points"]:
        if p.get("reason"):
            rows.append(f"| {_theta(p['theta'])} | {100 * p['ess_fraction']:.0f} % | "
                        f"{p['reason']} | | | | | | | fail |")
            continue
        feats = [f for f in p["features"] if f["ndf"] > 0]
        worst = min(feats, key=lambda f: f["p_value"]) if feats else None
        paired = np.median([f["chi2_ndf"] for f in feats]) if feats else float("nan")
        nominal = [f["chi2_ndf_nominal"] for f in feats]
        largest_nominal = max(feats, key=lambda f: f["chi2_ndf_nominal"]) if feats else None
        independent = max((f["chi2_ndf_independent"] for f in p["features"]), default=np.nan)
        reg = p.get("regression")
        reg_cells = "– | – | –" if reg is None else (
            f"{reg['rmse']:.3f} / {reg['rmse_regression']:.3f} ({reg['terms']} terms) | "
            f"{reg['loss_learned_minus_regression']:+.5f} ± "
            f"{reg['loss_learned_minus_regression_error']:.5f} | "
            f"{reg['loss_learned_minus_nominal']:+.5f} ± "
            f"{reg['loss_learned_minus_nominal_error']:.5f}")
        verdict = p["verdict"] + (f" ({', '.join(p['failed'])})" if p["failed"] else "")
        rows.append(
            f"| {_theta(p['theta'])} | {p['ess']:.0f} ({100 * p['ess_fraction']:.0f} %) | "
            f"{paired:.2f} ({'–' if worst is None else worst['observable']} "
            f"{_chi2(worst)}) | "
            f"{np.median(nominal) if nominal else float('nan'):.2f} "
            f"({'–' if largest_nominal is None else largest_nominal['observable']} "
            f"{_chi2(largest_nominal, 'chi2_ndf_nominal')}) | {independent:.2f} | "
            f"{_chi2(p.get('calibration'))} | {reg_cells} | {verdict} |")
    return rows


def feature_rows(gold: dict[str, Any]) -> list[str]:
    """Features × grid points: paired χ²/ndf of the learned reweighting (in brackets, of
    the unweighted events)."""
    points = [p for p in gold["points"] if not p.get("reason")]
    if not points:
        return []
    names = [f["observable"] for f in points[0]["features"]]
    head = "| feature | " + " | ".join(_theta(p["theta"]) for p in points) + " |"
    rows = [head, "|---|" + "---|" * len(points)]
    for name in names:
        cells = []
        for p in points:
            f = next((f for f in p["features"] if f["observable"] == name), None)
            cells.append("–" if f is None or f["ndf"] == 0 else
                         f"{f['chi2_ndf']:.2f} ({f['chi2_ndf_nominal']:.1f})")
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    cal = ["–" if p.get("calibration") is None else
           f"{p['calibration']['chi2_ndf']:.2f} ({p['calibration']['chi2_ndf_nominal']:.1f})"
           for p in points]
    rows.append("| learned log w (calibration) | " + " | ".join(cal) + " |")
    return rows


INTRO = """\
# Gold closure: learned ratios against PYTHIA's exact weights

(generated by `python docs/gold_closure_tables.py` — do not edit)

PYTHIA can say, for every generated e+e- event, how probable its fragmentation history
would have been at other values of the Lund and flavour parameters (the `pythia` source's
`variations` option). For a jet x, the mean of that weight over the histories that give x
is p(x|θ_k)/p(x|θ₀), exactly the ratio a reweighter learns; so held-out Monash jets carrying
these weights are an exact, per-jet ground truth for the reweighter. A run whose
reweighter's reference sample carries them reports `result.json["gold_closure"]`
(`ratiofit.gold_closure`, whose docstring has the statistics) at every grid point θ_k:

* **paired χ²/ndf**, per jet observable: the held-out jets reweighted by the learned
  w(x, θ_k) against the *same* jets weighted by PYTHIA's exact weights, both unit-normalised
  and binned in 20 equal-population bins, with the covariance of the difference of the two
  histograms (they share their jets, so it cancels the jets' own fluctuation). Where the
  learned ratio is exact it is χ²-distributed: 1 ± √(2/ndf). The *unweighted* χ²/ndf is the
  same test with w = 1: how far θ_k moves the observable at all (a column near 1 says the
  observable cannot tell). The *independent-Σw²* χ²/ndf treats the two histograms as
  independent samples with each one's Σw², like the ordinary closure's: on the same jets it
  lies between 0 and 1 even for an exact ratio, so it sees little (shown for comparison).
* **calibration χ²/ndf**: the same paired test in bins of the learned log w itself (the
  exact weights averaged at fixed learned w must give that w back).
* **regression**: E[w|x] estimated by a linear function f̂ of the standardised jet
  observables (quadratic where that predicts held-out jets better; the number of terms is
  shown), fitted to the exact weights by the soft-label logistic loss (its minimiser is
  log E[w|x], so the noisy weights average out) on half of the jets; on the other half the
  RMSE of the learned log w − f̂ beside the RMSE of f̂ itself, and the mean loss of the learned
  log w minus that of f̂ and of no reweighting (w = 1), ± their errors: negative means the
  learned ratio is closer to the exact E[w|x] (these differences need no model of it).
* **ESS**: Kish's effective number of the exact weights (and its fraction of the jets): the
  weights grow heavy-tailed away from Monash.

A grid point passes where no paired test (features, calibration) has p < 0.01 / (number of
tests). The reweighter sees the jets' particles (pT fraction, Δη, Δφ, PID code), never the
observables tested here.

**Training on the exact weights.** The same weights can train the reweighter instead of a
varied sample (`reweighter.labels: exact`, `ratiofit.exact_labels`): every nominal jet x_i
is paired with every grid point θ_k (and with θ₀, weight 1) as one row with the soft label
y = w_ik/(1 + w_ik) and the weight 1 + w_ik, the folding of "class 0: the jet with weight 1,
class 1: the same jet with weight w_ik". Every loss of the form y A(f) + (1 − y) B(f) then
contributes w A(f) + B(f) per jet, whose expectation at fixed (x, θ_k) is that of a
classifier of p(x|θ₀) against E[w|x, θ_k] p(x|θ₀) = p(x|θ_k): BCE's optimum is the sigmoid
d = E[w|x,θ]/(1 + E[w|x,θ]), i.e. the logit is log E[w|x, θ] = log p(x|θ)/p(x|θ₀), the ratio
the gold closure tests (ALICE's soft-label cross-entropy, arXiv 1808.00973; `lr_direct`
instead regresses the ratio itself, ½(f − w)², the ROLR loss of arXiv 1805.12244 /
1805.00020, noisier where the weights are heavy-tailed). The label's noise is then that of
w given x, not of a 0/1 label, and every jet serves every grid point. `reweighter.labels:
both` adds the classification against the varied sample. How many jets BCE needs for the
gold closure the exact weights reach: [gold-efficiency.md](gold-efficiency.md)
(`specs/dctr_pythia_gold_exact.yaml`).
"""


def reading(res: dict[str, Any]) -> list[str]:
    """What the numbers say, counted from them: how well the classifier trained, and at
    how many points the learned ratio beats no reweighting / loses to the regression."""
    import math

    points = [p for p in res["gold_closure"]["points"] if p.get("regression")]
    regs = [p["regression"] for p in points]
    no_gain = sum(r["loss_learned_minus_nominal"] > -2 * r["loss_learned_minus_nominal_error"]
                  for r in regs)
    worse = sum(r["loss_learned_minus_nominal"] > 2 * r["loss_learned_minus_nominal_error"]
                for r in regs)
    lost = sum(r["loss_learned_minus_regression"]
               > 2 * r["loss_learned_minus_regression_error"] for r in regs)
    val = res.get("reweighter", {}).get("best_val_loss")
    out = []
    if val is not None:
        out.append(f"The classifier's best validation loss was {val:.5f} (ln 2 = "
                   f"{math.log(2):.5f} for one that tells the samples apart no better than "
                   "chance).")
    out.append(f"The learned ratio is no closer to the exact E[w|x] than no reweighting at "
               f"{no_gain} of {len(regs)} points (loss difference above −2σ; significantly "
               f"farther, above +2σ, at {worse}), and farther than the regression of "
               f"the exact weights at {lost} (above +2σ).")
    return [" ".join(out), ""]


def page() -> str:
    lines = [INTRO]
    for name, (command, note) in RUNS.items():
        res = _summary(name)
        lines += [f"## `{command}`", ""]
        if res is None:
            lines += ["Not run yet.", ""]
            continue
        gold, rw = res["gold_closure"], res.get("reweighter", {})
        sizes = ", ".join(f"{k} {v}" for k, v in res.get("samples", {}).items())
        made = [f"{gold['n_events']} held-out jets at {_theta(gold['theta0'])}",
                f"samples: {sizes}" if sizes else "",
                f"reweighter: {rw.get('architecture')} / {rw.get('loss')} in "
                f"{', '.join(rw.get('parameters', []))}, {rw.get('n_train')} training "
                f"examples, {rw.get('epochs_run')} epochs",
                f"ratiofit commit {res['ratiofit_commit']}" if res.get("ratiofit_commit")
                else "",
                f"{res['total_seconds'] / 60:.1f} min" if res.get("total_seconds") else ""]
        lines += ["; ".join(m for m in made if m) + f". {note[0].upper()}{note[1:]}." if note
                  else "; ".join(m for m in made if m) + ".", "",
                  *reading(res),
                  f"Verdict: **{gold['verdict']}**"
                  + (f"; columns left out: {gold['skipped']}" if gold.get("skipped") else "")
                  + ".", "", *point_rows(gold), "",
                  "Paired χ²/ndf of every observable (unweighted χ²/ndf in brackets):", "",
                  *feature_rows(gold), ""]
    return "\n".join(lines)


def main() -> None:
    PAGE.write_text(page())
    print(f"wrote {PAGE.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
