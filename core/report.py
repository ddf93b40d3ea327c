"""Plots from ``result.json``: plot data live in the result, drawing happens here.

* ``summary.md`` — closure χ²/ndf before/after, weight diagnostics, fit values (tables)
* ``chi2_vs_theta.png`` — χ²/ndf per feature against θ, before and after reweighting
* ``closure_<k>_<feature>.png`` — nominal, reweighted nominal and target with a ratio
  panel and χ²/ndf (dctr.md Fig. 1 style);
* ``logw_<k>.png`` — learned vs analytic log w;
* ``landscape.png`` — the fit objective around the fitted point;
* of an inference run (``result["inference"]`` with ``plot_data``): pre-/post-fit
  channels, pulls, correlations, the CLs scan and impacts, and the summary's inference
  section (drawn by :mod:`ratiofit.inference_report`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .inference_report import inference_markdown, make_inference_plots

__all__ = ["draw_chi2_vs_theta", "make_plots", "report_directory", "summary_markdown"]


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _theta_label(theta: Mapping[str, float]) -> str:
    return ", ".join(f"{k} = {v:g}" for k, v in theta.items())


def draw_closure(h: Mapping[str, Any], theta: Mapping[str, float], path: Path) -> None:
    import mplhep

    plt = _plt()
    edges = np.asarray(h["edges"])
    fig, (ax, rax) = plt.subplots(2, 1, sharex=True, figsize=(6, 5.5),
                                  gridspec_kw={"height_ratios": [3, 1], "hspace": 0.05})
    styles: dict[str, dict[str, Any]] = {
        "nominal": dict(color="grey", ls="--"), "reweighted": dict(color="C0"),
        "target": dict(color="k", histtype="errorbar", markersize=3)}
    for key, style in styles.items():
        vals = np.asarray(h[f"{key}_values"])
        errs = np.sqrt(np.asarray(h[f"{key}_variances"]))
        label = {"nominal": "nominal", "reweighted": f"nominal × w ({_theta_label(theta)})",
                 "target": f"target ({_theta_label(theta)})"}[key]
        mplhep.histplot(vals, edges, yerr=errs, ax=ax, label=label, **style)
    ax.set_ylabel("fraction of events")
    ax.legend(title=f"χ²/ndf = {h['chi2']:.1f}/{h['ndf']}", fontsize=8)
    target = np.asarray(h["target_values"])
    ok = target > 0
    for key, color in (("nominal", "grey"), ("reweighted", "C0")):
        r = np.full_like(target, np.nan)
        r[ok] = np.asarray(h[f"{key}_values"])[ok] / target[ok]
        rax.stairs(r, edges, color=color)
    rax.axhline(1.0, color="k", lw=0.8)
    rax.set_ylim(0.8, 1.2)
    rax.set_ylabel("/ target")
    rax.set_xlabel(h["feature"])
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def draw_log_ratio(point: Mapping[str, Any], path: Path) -> None:
    plt = _plt()
    c = point["curve"]
    fig, ax = plt.subplots(figsize=(5.5, 4))
    ax.plot(c["x"], c["analytic"], "k-", label="analytic")
    ax.plot(c["x"], c["learned"], "C0--", label="learned")
    ax.set_xlabel("first feature")
    ax.set_ylabel("log w")
    ax.set_title(f"{_theta_label(point['theta'])}: RMSE = {point['rmse']:.4f}")
    ax.legend()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def draw_landscape(fit: Mapping[str, Any], path: Path) -> None:
    plt = _plt()
    land = fit["landscape"]
    names = land["names"]
    fig, ax = plt.subplots(figsize=(5.5, 4))
    if len(names) == 1:
        ax.plot(land["axes"][0], land["values"], "C0-")
        ax.axvline(fit["parameters"][names[0]]["value"], color="C1", label="fit")
        analytic = fit["parameters"][names[0]].get("analytic")
        if analytic is not None:
            ax.axvline(analytic, color="k", ls=":", label="analytic MLE")
        ax.set_xlabel(names[0])
        ax.set_ylabel(land.get("quantity", "objective"))
        ax.legend()
    elif len(names) == 2:
        vals = np.asarray(land["values"]).T
        cs = ax.contourf(land["axes"][0], land["axes"][1], vals, levels=20)
        fig.colorbar(cs, ax=ax, label=land.get("quantity", "objective"))
        ax.plot([fit["parameters"][names[0]]["value"]], [fit["parameters"][names[1]]["value"]],
                "r*", label="fit")
        ax.set_xlabel(names[0])
        ax.set_ylabel(names[1])
        ax.legend()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def draw_chi2_vs_theta(points: list[Mapping[str, Any]], path: Path) -> None:
    """χ²/ndf of each feature against θ (one parameter): nominal (dashed) and reweighted
    nominal (solid) compared with the target at that θ (dctr.md Fig. 1, lower right)."""
    plt = _plt()
    name = next(iter(points[0]["theta"]))
    theta = [p["theta"][name] for p in points]
    order = np.argsort(theta)
    fig, ax = plt.subplots(figsize=(6, 4))
    for j, h in enumerate(points[0]["histograms"]):
        before = [points[i]["histograms"][j]["chi2_ndf_nominal"] for i in order]
        after = [points[i]["histograms"][j]["chi2_ndf"] for i in order]
        xs = [theta[i] for i in order]
        line, = ax.plot(xs, after, "o-", label=f"{h['feature']} reweighted")
        ax.plot(xs, before, "s--", color=line.get_color(), alpha=0.6,
                label=f"{h['feature']} nominal")
    ax.axhline(1.0, color="k", lw=0.8)
    ax.set_yscale("log")
    ax.set_xlabel(name)
    ax.set_ylabel(r"$\chi^2$/ndf vs target")
    ax.legend(fontsize=6, ncol=2)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def summary_markdown(result: Mapping[str, Any]) -> str:
    """Closure χ²/ndf before/after reweighting, weight diagnostics, fit values and the
    inference section (:func:`ratiofit.inference_report.inference_markdown`) as markdown
    (all numbers from ``result.json``)."""
    lines = []
    points = result.get("closure", {}).get("points", [])
    if points:
        lines += ["## Closure", "",
                  "| θ | feature | χ²/ndf nominal | χ²/ndf reweighted | ndf |",
                  "|---|---|---|---|---|"]
        for p in points:
            for h in p.get("histograms", []):
                lines.append(f"| {_theta_label(p['theta'])} | {h['feature']} | "
                             f"{h.get('chi2_ndf_nominal', float('nan')):.2f} | "
                             f"{h['chi2_ndf']:.2f} | {h['ndf']} |")
        lines += ["", "## Weights (held-out nominal reweighted to θ)", "",
                  "| θ | ESS fraction | max weight | mean weight | non-finite | clipped |",
                  "|---|---|---|---|---|---|"]
        for p in points:
            w = p.get("weights")
            if w:
                lines.append(f"| {_theta_label(p['theta'])} | {w['ess_fraction']:.3f} | "
                             f"{w['max_weight']:.3g} | {w['mean_weight']:.4f} | "
                             f"{w['n_nonfinite']} | {w['n_clipped']} |")
    fit = result.get("fit")
    if fit:
        lines += ["", "## Fit", "", "| parameter | value | error |", "|---|---|---|"]
        for n, e in fit["parameters"].items():
            lines.append(f"| {n} | {e['value']:.6g} | {e['error']:.2g} |")
    ens = result.get("ensemble")
    if ens:
        lines += ["", f"## Ensemble ({ens['members']} trainings)", "",
                  "| parameter | mean | std |", "|---|---|---|"]
        for n in ens["mean"]:
            lines.append(f"| {n} | {ens['mean'][n]:.6g} | {ens['std'][n]:.2g} |")
    inference = result.get("inference")
    if inference:
        lines += [*([""] if lines else []), *inference_markdown(inference).splitlines()]
    return "\n".join(lines) + "\n"


def make_plots(result: Mapping[str, Any], outdir: str | Path) -> list[Path]:
    """Draw every plot the result has data for; returns the files written."""
    out = Path(outdir) / "plots"
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for k, point in enumerate(result.get("closure", {}).get("points", [])):
        for h in point.get("histograms", []):
            p = out / f"closure_{k}_{h['feature']}.png"
            draw_closure(h, point["theta"], p)
            written.append(p)
        if "curve" in point:
            p = out / f"logw_{k}.png"
            draw_log_ratio(point, p)
            written.append(p)
    points = result.get("closure", {}).get("points", [])
    if len(points) >= 2 and len(points[0]["theta"]) == 1 and points[0].get("histograms") \
            and "chi2_ndf_nominal" in points[0]["histograms"][0]:
        p = out / "chi2_vs_theta.png"
        draw_chi2_vs_theta(points, p)
        written.append(p)
    inference = result.get("inference")
    if inference and inference.get("plot_data"):
        written += make_inference_plots(inference, out)
    p = out / "summary.md"
    p.write_text(summary_markdown(result))
    written.append(p)
    fit = result.get("fit")
    if fit and fit.get("landscape") and fit["landscape"].get("axes"):
        p = out / "landscape.png"
        draw_landscape(fit, p)
        written.append(p)
    return written


def report_directory(outdir: str | Path) -> list[Path]:
    """Redraw the plots of a run directory from its ``result.json``."""
    from .errors import RatiofitError

    path = Path(outdir) / "result.json"
    try:
        result = json.loads(path.read_text())
    except FileNotFoundError:
        raise RatiofitError(f"{path}: no result.json (run 'ratiofit run' first)") from None
    except json.JSONDecodeError as exc:
        raise RatiofitError(f"{path}: corrupt result: {exc}") from None
    return make_plots(result, outdir)
