"""docs/ensembles.md: per-event vs per-ensemble learning (ensembles.md) from run results.

Reads ``runs/ensembles_{classification,fN1,regression,mi}/result.json`` (written by
``ratiofit run examples/ratiofit-papers/specs/ensembles_<name>.yaml -o
runs/ensembles_<name>``), writes the tables into docs/ensembles.md and redraws the figures
into docs/figures/ensembles/. Every number comes from those files; a missing run is
reported as missing, never filled in.
Usage: ``python docs/ensembles_tables.py``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
#: The specs, shipped with the ratiofit-papers distribution (relative to ROOT).
SPECS = "examples/ratiofit-papers/specs"
FIGURES = ROOT / "docs" / "figures" / "ensembles"
RUNS = {"classification": "gaussian_ensembles", "fN1": "f_N_to_1",
        "regression": "gaussian_mean", "mi": "mi_scan"}


def _study(name: str) -> dict[str, Any] | None:
    path = ROOT / "runs" / f"ensembles_{name}" / "result.json"
    if not path.exists():
        return None
    result: dict[str, Any] = json.loads(path.read_text())["studies"][RUNS[name]]
    return result


def _missing(name: str) -> list[str]:
    return [f"*No result yet: run `ratiofit run {SPECS}/ensembles_{name}.yaml -o "
            f"runs/ensembles_{name}`.*", ""]


def classification_section(name: str, title: str, figure_stem: str) -> list[str]:
    """AUC table, ROC and per-epoch figures of one ``ensemble_classification`` run."""
    from ratiofit_papers.ensembles.studytools import plot_lines
    from ratiofit_papers.studies.ensemble_classification import PER_EVENT, label_map

    out = [f"## {title}", ""]
    r = _study(name)
    if r is None:
        return out + _missing(name)
    n_ens = r["ensemble_size"]
    labels = label_map(n_ens)
    analytic = r.get("analytic_auc", {})
    n_test = r["test_ensembles"]["reference"]
    out += [f"{r['train_events']} training events per class; {n_test} test ensembles of "
            f"{n_ens} events per class ({n_test * n_ens} test events). Analytic optimum "
            "(Σ log w of the exact ratio is normal; closed form Φ(Δm/√(v_T + v_R)) with the "
            "exact per-event log-ratio's moments measured on the test events): "
            f"AUC₁ = {analytic.get('auc_1', float('nan')):.4f}, "
            f"AUC_{n_ens} = {analytic.get('auc_N', float('nan')):.4f}. In one dimension every "
            "per-event score monotonic in x has the optimal single-event AUC, so f_1 and "
            f"f_{n_ens}→1 match the exact ratio once they are monotonic; the ensemble AUCs "
            "test the shape of the learned log w.", "",
            "| classifier | scores | AUC | ± stat. | AUC − analytic optimum | "
            "AUC − exact ratio on the same test set |", "|---|---|---|---|---|---|"]
    for key, value in r["auc"].items():
        per_event = key in PER_EVENT
        exact = r["auc"].get("exact_1" if per_event else "exact_N")
        diff = r.get("auc_minus_analytic", {}).get(key)
        out.append(f"| {labels.get(key, key)} | {'single events' if per_event else 'ensembles'} "
                   f"| {value:.4f} | {r['auc_statistical_error'][key]:.4f} | "
                   f"{'' if diff is None else f'{diff:+.4f}'} | "
                   f"{'' if exact is None else f'{value - exact:+.4f}'} |")
    if "f1_to_N" in r["auc"] and "auc_N" in analytic:
        gap = abs(r["auc"]["f1_to_N"] - analytic["auc_N"])
        out += ["", f"f_1→{n_ens} vs the analytic optimum: |ΔAUC| = {gap:.4f} "
                f"({'within' if gap <= 0.005 else 'NOT within'} 0.005)."]
    fpr = np.asarray(r["roc"]["fpr"])
    lines = {f"{labels.get(k, k)} ({r['auc'][k]:.3f})": (fpr, np.asarray(t))
             for k, t in r["roc"]["tpr"].items()}
    plot_lines(FIGURES / f"{figure_stem}_roc.png", lines=lines, xlabel="false positive rate",
               ylabel="true positive rate", diagonal=True)
    out += ["", f"![ROC curves](figures/ensembles/{figure_stem}_roc.png)", ""]
    curves = r.get("epoch_curves", {})
    if curves:
        plot_lines(FIGURES / f"{figure_stem}_epochs.png",
                   lines={labels.get(k, k): (np.arange(1, len(c["fpr_at_tpr_0.5"]) + 1),
                                             np.asarray(c["fpr_at_tpr_0.5"]))
                          for k, c in curves.items()},
                   xlabel="epoch", ylabel="false positive rate at 50 % TPR")
        out += ["Training curves (ensembles.md Fig. 4 analogue): false-positive rate at 50 % "
                "true-positive rate on held-out ensembles after each epoch; every network sees "
                "the same training events per epoch.", "",
                "| classifier | epochs run | FPR@50 % after epoch 1 | after epoch 5 | best | "
                "epoch of best |", "|---|---|---|---|---|---|"]
        for k, c in curves.items():
            f = np.asarray(c["fpr_at_tpr_0.5"])
            at5 = f"{f[4]:.4f}" if len(f) > 4 else ""
            out.append(f"| {labels.get(k, k)} | {len(f)} | {f[0]:.4f} | {at5} | "
                       f"{f.min():.4f} | {int(f.argmin()) + 1} |")
        out += ["", f"![per-epoch](figures/ensembles/{figure_stem}_epochs.png)", ""]
    return out


def regression_section() -> list[str]:
    """Bias/spread table and Fig. 7 analogue."""
    from ratiofit_papers.ensembles.studytools import plot_lines

    out = ["## Regression of a Gaussian mean (ensembles.md Sec. III C 1, Fig. 7)", ""]
    r = _study("regression")
    if r is None:
        return out + _missing("regression")
    out += [f"μ ~ U{tuple(r['prior_range'])}, {r['events_per_ensemble']} events per ensemble, "
            f"{r['test_ensembles']} test ensembles; grid of {r['grid_points']} points. The "
            f"analytic MLE (sample mean) has spread 1/√N = {r['analytic_mle_spread']:.3f} "
            "(before the prior's edges pull the grid methods inwards).", "",
            "| method | ensembles | bias | ± | spread | RMSE |", "|---|---|---|---|---|---|"]
    for method, m in r["metrics"].items():
        out.append(f"| {method} | {m['n']} | {m['bias']:+.4f} | {m['bias_error']:.4f} | "
                   f"{m['spread']:.4f} | {m['rmse']:.4f} |")
    checks = r.get("strategy_checks", {})
    if checks:
        out += ["", "Registered strategies vs the vectorised estimates on the same ensembles "
                "(max |difference|): " + ", ".join(f"{k}: {v:.2g}" for k, v in checks.items())
                + "."]
    if r.get("continuous_vs_grid_max_abs_difference") is not None:
        out += [f"Continuous `likelihood` (iminuit) vs grid likelihood: max |Δμ| = "
                f"{r['continuous_vs_grid_max_abs_difference']:.4f} over all continuously "
                "fitted ensembles (a maximum beyond the outermost grid cell centre stops there "
                "on the grid but at the parameter bound in the continuous fit)."]
        inside = r.get("continuous_vs_grid_inside_grid") or {}
        if inside.get("max_abs_difference") is not None:
            out += [f"For the {inside['ensembles']} of them whose maximum lies inside the grid: "
                    f"max |Δμ| = {inside['max_abs_difference']:.2g}."]
    if r.get("correlation_regression_vs_deepsets") is not None:
        out += [f"Correlation of per-instance (posterior mean) and per-ensemble (deep sets) "
                f"direct regression: {r['correlation_regression_vs_deepsets']:.4f} "
                "(ensembles.md Fig. 8b)."]
    edges = np.asarray(r["bin_edges"])
    centres = 0.5 * (edges[:-1] + edges[1:])
    lines = {m: (centres, np.asarray(v["per_bin"]["mean_estimate"], dtype=float))
             for m, v in r["metrics"].items() if v["n"] == r["test_ensembles"]}
    lines["truth"] = (centres, centres)
    plot_lines(FIGURES / "regression.png", lines=lines, xlabel="true μ",
               ylabel="mean predicted μ")
    spreads = {m: (centres, np.asarray(v["per_bin"]["spread"], dtype=float))
               for m, v in r["metrics"].items() if v["n"] == r["test_ensembles"]}
    plot_lines(FIGURES / "regression_spread.png", lines=spreads, xlabel="true μ",
               ylabel="spread of predicted μ")
    out += ["", "![regression](figures/ensembles/regression.png) "
            "![spread](figures/ensembles/regression_spread.png)", ""]
    return out


def mi_section() -> list[str]:
    """MI scan table and Fig. 9 analogue."""
    from ratiofit_papers.ensembles.studytools import plot_lines

    out = ["## Mutual information (ensembles.md Sec. III D, Fig. 9)", ""]
    r = _study("mi")
    if r is None:
        return out + _missing("mi")
    out += ["I(X; Y) in nats for X ~ N(±ε, 1) by label Y; estimate = MLC loss value of the "
            "trained classifier on held-out events; 'exact ratio' = the same loss with the true "
            "p(x, y)/(p(x)p(y)) on the same events (statistical part of the deviation only).",
            "", "| ε | analytic | estimate | ± stat. | relative deviation | exact ratio | "
            f"> {r['threshold']:g} nats | within 5 % |", "|---|---|---|---|---|---|---|---|"]
    for row in r["rows"]:
        out.append(f"| {row['epsilon']:g} | {row['analytic']:.5f} | {row['estimate']:.5f} | "
                   f"{row['statistical_error']:.5f} | {row['relative_deviation']:+.3f} | "
                   f"{row['exact_ratio_estimate']:.5f} | "
                   f"{'yes' if row['above_threshold'] else 'no'} | "
                   f"{'yes' if row['within_5_percent'] else 'no'} |")
    out += ["", "All ε with MI above the threshold within 5 %: "
            f"{'yes' if r['all_above_threshold_within_5_percent'] else 'NO'}."]
    failing = [row for row in r["rows"] if row["above_threshold"] and not row["within_5_percent"]]
    if failing:
        out += ["Above the threshold but outside 5 %: " + ", ".join(
            f"ε = {row['epsilon']:g} ({100 * row['relative_deviation']:+.1f} %, statistical "
            f"error {100 * row['statistical_error'] / row['analytic']:.1f} %, exact ratio on "
            f"the same events "
            f"{100 * (row['exact_ratio_estimate'] / row['analytic'] - 1):+.1f} %)"
            for row in failing) + "."]
    below = [row for row in r["rows"] if not row["above_threshold"]]
    if below:
        out += ["Below the threshold: " + ", ".join(
            f"ε = {row['epsilon']:g}: estimate {row['estimate']:.2e} vs {row['analytic']:.2e} "
            f"nats ({100 * row['relative_deviation']:+.0f} %, statistical error "
            f"{row['statistical_error']:.1e})" for row in below) + ". The loss value of a "
            "learned ratio lies above the loss minimum (Eq. 9), so the estimate is biased low; "
            "at MI ≲ 10⁻³ nats that training deficit, not the statistical error, dominates."]
    out += ["",
            "Divergences between N(+ε, 1) and N(−ε, 1) from the Table I loss values of the same "
            "network's class-conditional ratio (estimate / exact):", "",
            "| ε | Jensen–Shannon | triangular | Hellinger² | Kullback–Leibler |",
            "|---|---|---|---|---|"]
    for row in r["rows"]:
        d = row["divergences"]
        cells = [f"{d[k]['estimate']:.5f} / {d[k]['analytic']:.5f}"
                 for k in ("jensen_shannon", "triangular", "hellinger_squared",
                           "kullback_leibler")]
        out.append(f"| {row['epsilon']:g} | " + " | ".join(cells) + " |")
    eps = np.array([row["epsilon"] for row in r["rows"]])
    plot_lines(FIGURES / "mutual_information.png",
               lines={"analytic": (eps, [row["analytic"] for row in r["rows"]]),
                      "MLC estimate": (eps, [row["estimate"] for row in r["rows"]])},
               xlabel="ε", ylabel="I(X; Y) [nats]")
    out += ["", "![MI](figures/ensembles/mutual_information.png)", ""]
    return out


def ensembles_markdown() -> str:
    """The whole page."""
    out = ["# Learning from many events at once (generated by `docs/ensembles_tables.py` — "
           "do not edit)", "",
           "Per-event vs per-ensemble classifiers, regression strategies and mutual "
           "information on the Gaussian examples of ensembles.md. Sizes are stated in each "
           "spec's header comment (cut from the paper's to run on a shared 2-CPU machine).", ""]
    out += classification_section("classification", "Two Gaussians, N = 10 (ensembles.md "
                                  "Sec. III A 1, Figs. 1 and 4)", "classification")
    out += classification_section("fN1", "Per-event classifier from a per-ensemble one "
                                  "(ensembles.md Sec. III B, Fig. 5; MLC-exp loss, Eq. 14)",
                                  "fN1")
    out += regression_section()
    out += mi_section()
    return "\n".join(out) + "\n"


def main() -> None:
    """Write docs/ensembles.md."""
    FIGURES.mkdir(parents=True, exist_ok=True)
    (ROOT / "docs" / "ensembles.md").write_text(ensembles_markdown())


if __name__ == "__main__":
    main()
