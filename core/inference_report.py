"""Plots and summary of a binned inference run, drawn from its ``result.json`` block.

The numbers come from ``result["inference"]`` (``plot_data`` is
:func:`ratiofit.inference.plot_data`'s output); nothing here runs pyhf, so
``ratiofit report`` redraws them from the JSON alone. Files (under ``plots/``):

* ``prefit_<channel>.png``, ``postfit_<channel>.png`` — data with Poisson (Garwood) error
  bars against the stacked samples, the model's uncertainty band hatched, and a
  data/model ratio panel with the band;
* ``pulls.png`` — (θ̂ − θ₀)/σ ± σ̂/σ of each constrained parameter;
* ``correlation.png`` — the fit's correlation matrix;
* ``cls_scan.png`` — observed CLs, the expected median with its ±1σ (green) and ±2σ
  (yellow) band, the CLs level and the limits;
* ``impacts.png`` — Δμ̂ of each nuisance fixed at θ̂ ± σ, pre-fit and post-fit, ranked.

:func:`inference_markdown` is the run summary's inference section.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["draw_channel", "draw_cls_scan", "draw_correlation", "draw_impacts", "draw_pulls",
           "inference_markdown", "make_inference_plots"]

#: impacts drawn at most (the JSON keeps all): more bars are unreadable
_MAX_IMPACTS = 30
#: the five expected-band keys of plot_data's CLs scan, −2σ … +2σ
_BAND = ("minus2", "minus1", "median", "plus1", "plus2")
#: a 1σ central interval
_ONE_SIGMA = math.erf(1 / math.sqrt(2))


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> Path:
    fig.savefig(path, dpi=110, bbox_inches="tight")
    _plt().close(fig)
    return path


def _file_part(name: str) -> str:
    """A channel name as part of a file name (anything but letters, digits, ``_.-`` → _)."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def _poisson_interval(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Garwood's central 68.27% interval of a Poisson mean for each observed count
    (lower bound 0 at n = 0): the usual error bars of observed counts, asymmetric where a
    √n bar would be wrong (few events)."""
    from scipy.stats import chi2

    n = np.asarray(counts, dtype=np.float64)
    tail = (1 - _ONE_SIGMA) / 2
    with np.errstate(invalid="ignore"):
        lo = np.where(n > 0, 0.5 * chi2.ppf(tail, 2 * np.maximum(n, 1e-300)), 0.0)
    hi = 0.5 * chi2.ppf(1 - tail, 2 * (n + 1))
    return lo, hi


def _stack_order(stage: Mapping[str, Any], signal: Sequence[str]) -> list[str]:
    """Backgrounds largest yield first (at the bottom), then the signal on top."""
    samples = stage["samples"]
    backgrounds = sorted((s for s in samples if s not in signal),
                         key=lambda s: -float(np.sum(samples[s])))
    return backgrounds + [s for s in samples if s in signal]


def _band(ax: Any, edges: np.ndarray, centre: np.ndarray, half: np.ndarray,
          label: str | None) -> None:
    ax.stairs(centre + half, edges, baseline=centre - half, fill=True, facecolor="none",
              edgecolor="0.35", hatch="////", linewidth=0, label=label)


def draw_channel(channel: Mapping[str, Any], stage: str, path: Path, *, name: str,
                 xlabel: str, poi: Mapping[str, Any] | None = None) -> Path:
    """One channel before or after the fit: data with Poisson error bars, the stacked
    samples, the total's uncertainty band (hatched) and a data/model ratio panel.

    Parameters
    ----------
    channel
        ``plot_data["channels"][name]``.
    stage
        ``"prefit"`` or ``"postfit"``.
    path
        The PNG to write.
    name, xlabel
        The channel's name (title) and the x axis label.
    poi
        ``plot_data["poi"]``, quoted in a post-fit title.

    Returns
    -------
    Path
        ``path``.
    """
    import mplhep

    plt = _plt()
    edges = np.asarray(channel["edges"], dtype=np.float64)
    centres = 0.5 * (edges[1:] + edges[:-1])
    st = channel[stage]
    total = np.asarray(st["total"], dtype=np.float64)
    band = np.asarray(st["band"], dtype=np.float64)
    observed = np.asarray(channel["observed"], dtype=np.float64)
    lo, hi = _poisson_interval(observed)
    fig, (ax, rax) = plt.subplots(2, 1, sharex=True, figsize=(6, 5.5),
                                  gridspec_kw={"height_ratios": [3, 1], "hspace": 0.05})
    order = _stack_order(st, channel.get("signal_samples", []))
    if order:
        mplhep.histplot([np.asarray(st["samples"][s]) for s in order], edges, ax=ax,
                        stack=True, histtype="fill", label=order, alpha=0.8)
    _band(ax, edges, total, band, "model uncertainty")
    ax.errorbar(centres, observed, yerr=[observed - lo, hi - observed], fmt="ko",
                markersize=3, label="data")
    ax.set_ylabel("events")
    ax.set_ylim(0, 1.3 * max(float(np.max(hi, initial=0)), float(np.max(total + band,
                                                                          initial=0)), 1.0))
    title = f"{name}: pre-fit" if stage == "prefit" else f"{name}: post-fit"
    if stage == "postfit" and poi is not None:
        title += f" ({poi['name']} = {poi['value']:.3g} ± {poi['error']:.2g})"
    ax.set_title(title)
    ax.legend(fontsize=8)
    # the ratio panel: bins the model predicts nothing in have no ratio
    ok = total > 0
    ratio = np.full_like(total, np.nan)
    rel = np.zeros_like(total)
    ratio[ok] = observed[ok] / total[ok]
    rel[ok] = band[ok] / total[ok]
    _band(rax, edges, np.ones_like(total), rel, None)
    rax.errorbar(centres[ok], ratio[ok], yerr=[(observed - lo)[ok] / total[ok],
                                               (hi - observed)[ok] / total[ok]],
                 fmt="ko", markersize=3)
    rax.axhline(1.0, color="k", lw=0.8)
    finite = np.abs(ratio[ok] - 1)
    span = max(0.1, float(np.max(finite, initial=0)), float(np.max(rel, initial=0)))
    rax.set_ylim(max(0.0, 1 - 1.2 * span), 1 + 1.2 * span)
    rax.set_ylabel("data / model")
    rax.set_xlabel(xlabel)
    return _save(fig, path)


def draw_pulls(pulls: Sequence[Mapping[str, Any]], path: Path) -> Path:
    """(θ̂ − θ₀)/σ with error bars σ̂/σ for each fitted constrained parameter, against
    the ±1σ (green) and ±2σ (yellow) bands of the prior; returns ``path``."""
    plt = _plt()
    # a parameter held fixed (a staterror γ of a bin without simulated events) has
    # error 0: it was not fitted, so it has no pull to show
    pulls = [p for p in pulls if p["error"] > 0]
    n = len(pulls)
    fig, ax = plt.subplots(figsize=(6, 1.0 + 0.3 * max(n, 1)))
    y = np.arange(n)[::-1]
    ax.axvspan(-2, 2, color="yellow", alpha=0.6, lw=0)
    ax.axvspan(-1, 1, color="limegreen", alpha=0.6, lw=0)
    ax.axvline(0, color="k", lw=0.8)
    ax.errorbar([p["pull"] for p in pulls], y, xerr=[p["constraint"] for p in pulls],
                fmt="ko", markersize=4)
    ax.set_yticks(y, [p["name"] for p in pulls], fontsize=8)
    ax.set_ylim(-0.7, n - 0.3)
    reach = max([2.5] + [abs(p["pull"]) + p["constraint"] + 0.3 for p in pulls
                         if np.isfinite(p["pull"]) and np.isfinite(p["constraint"])])
    ax.set_xlim(-reach, reach)
    ax.set_xlabel(r"$(\hat\theta - \theta_0)/\Delta\theta$")
    ax.set_title("pulls (error bar: post-fit / pre-fit σ)")
    return _save(fig, path)


def draw_correlation(correlation: Mapping[str, Any], path: Path) -> Path:
    """The fit's correlation matrix of the floating parameters (values written where
    they fit); returns ``path``."""
    plt = _plt()
    names = list(correlation["names"])
    matrix = np.asarray(correlation["matrix"], dtype=np.float64)
    n = len(names)
    size = min(4.0 + 0.45 * n, 16.0)
    fig, ax = plt.subplots(figsize=(size + 1.0, size))
    im = ax.imshow(matrix, cmap="RdBu_r", vmin=-1, vmax=1)
    fig.colorbar(im, ax=ax, label="correlation", fraction=0.046, pad=0.04)
    ax.set_xticks(range(n), names, rotation=90, fontsize=7)
    ax.set_yticks(range(n), names, fontsize=7)
    if n <= 15:
        for i in range(n):
            for j in range(n):
                ax.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", fontsize=6,
                        color="w" if abs(matrix[i, j]) > 0.6 else "k")
    ax.set_title("correlation")
    return _save(fig, path)


def draw_cls_scan(scan: Mapping[str, Any], path: Path, *, poi: str) -> Path:
    """CLs against the POI: observed, expected median, ±1σ (green) and ±2σ (yellow)
    bands, the CLs level and the observed and expected limits; returns ``path``."""
    plt = _plt()
    x = np.asarray(scan["poi_values"], dtype=np.float64)
    exp = {k: np.asarray(scan["cls_expected"][k], dtype=np.float64) for k in _BAND}
    level = float(scan["level"])
    fig, ax = plt.subplots(figsize=(6, 4.5))
    ax.fill_between(x, exp["minus2"], exp["plus2"], color="yellow", label=r"expected ±2σ")
    ax.fill_between(x, exp["minus1"], exp["plus1"], color="limegreen", label=r"expected ±1σ")
    ax.plot(x, exp["median"], "k--", label="expected median")
    ax.plot(x, scan["cls_observed"], "k-", marker="o", markersize=2.5, label="observed")
    ax.axhline(level, color="r", lw=1, label=f"CLs = {level:g}")
    obs, med = float(scan["limit_observed"]), float(scan["limit_expected"]["median"])
    ax.axvline(obs, color="C0", lw=1, label=f"observed limit {obs:.3g}")
    ax.axvline(med, color="C0", lw=1, ls=":", label=f"expected limit {med:.3g}")
    ax.set_xlabel(poi)
    ax.set_ylabel("CLs")
    ax.set_ylim(0, 1.05)
    ax.set_xlim(float(x.min()), float(x.max()))
    ax.set_title(f"{100 * (1 - level):.0f}% CL upper limit on {poi}")
    ax.legend(fontsize=7)
    return _save(fig, path)


def draw_impacts(impacts: Sequence[Mapping[str, Any]], path: Path, *, poi: str) -> Path:
    """Δ(POI) when each nuisance is fixed at θ̂ ± σ: post-fit σ̂ filled, pre-fit σ open,
    ranked by the post-fit effect (largest at the top, at most 30); returns ``path``."""
    plt = _plt()
    ranked = sorted(impacts, key=lambda i: max(abs(i["postfit_up"]), abs(i["postfit_down"])),
                    reverse=True)[:_MAX_IMPACTS]
    n = len(ranked)
    y = np.arange(n)[::-1]
    fig, ax = plt.subplots(figsize=(6.5, 1.2 + 0.35 * max(n, 1)))
    h = 0.38
    for key, style in (("prefit", dict(fill=False, lw=1.0)), ("postfit", dict(alpha=0.8))):
        for sign, colour in (("up", "C3"), ("down", "C0")):
            values = [i[f"{key}_{sign}"] for i in ranked]
            label = f"{key.replace('fit', '-fit')} θ̂ {'+' if sign == 'up' else '−'} σ"
            ax.barh(y, values, height=2 * h if key == "prefit" else h, edgecolor=colour,
                    color=colour if key == "postfit" else "none", label=label,
                    **style)  # type: ignore[arg-type]
    ax.axvline(0, color="k", lw=0.8)
    ax.set_yticks(y, [i["name"] for i in ranked], fontsize=8)
    ax.set_xlabel(f"Δ{poi}")
    ax.set_title(f"impacts on {poi}" + (f" (top {n} of {len(impacts)})"
                                         if len(impacts) > n else ""))
    # outside the axes: the bars fill them on both sides
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _save(fig, path)


def make_inference_plots(inference: Mapping[str, Any], out: str | Path) -> list[Path]:
    """Draw every inference plot ``inference["plot_data"]`` has data for, into ``out``.

    Returns
    -------
    list of Path
        The files written: ``prefit_<channel>.png`` and ``postfit_<channel>.png`` per
        channel, ``pulls.png`` (where there are constrained parameters),
        ``correlation.png``, and ``cls_scan.png``/``impacts.png`` where the run computed
        an upper limit/impacts.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    pd = inference["plot_data"]
    poi = pd["poi"]
    observables = inference.get("channels", {})
    written = []
    for name, channel in pd["channels"].items():
        # edges of a model without a binning are bin numbers
        xlabel = observables.get(name, {}).get("observable", "bin")
        for stage in ("prefit", "postfit"):
            written.append(draw_channel(channel, stage, out / f"{stage}_{_file_part(name)}.png",
                                        name=name, xlabel=xlabel, poi=poi))
    if pd.get("pulls"):
        written.append(draw_pulls(pd["pulls"], out / "pulls.png"))
    if pd.get("correlation", {}).get("names"):
        written.append(draw_correlation(pd["correlation"], out / "correlation.png"))
    if pd.get("cls_scan"):
        written.append(draw_cls_scan(pd["cls_scan"], out / "cls_scan.png", poi=poi["name"]))
    if pd.get("impacts"):
        written.append(draw_impacts(pd["impacts"], out / "impacts.png", poi=poi["name"]))
    return written


# -- the summary ---------------------------------------------------------------------------
def _g(value: Any, fmt: str = ".4g") -> str:
    """A number for a table (— where there is none)."""
    return "—" if value is None else format(float(value), fmt)


def _fitted(fit: Mapping[str, Any], key: str, name: str) -> float:
    """``fit[key]`` of parameter ``name``: a list in ``names`` order (a binned fit's
    ``BinnedFitResult.to_dict``) or a mapping by name (an unbinned fit's)."""
    values = fit[key]
    return float(values[name] if isinstance(values, Mapping)
                 else values[list(fit["names"]).index(name)])


def _fit_lines(fit: Mapping[str, Any]) -> list[str]:
    poi = fit["poi"]
    twice_nll = fit.get("twice_nll", 2 * fit["nll_min"] if "nll_min" in fit else None)
    return [f"- {poi} = {_fitted(fit, 'values', poi):.4g} ± {_fitted(fit, 'errors', poi):.2g}"
            f" (fit {'valid' if fit.get('valid') else 'NOT valid'}"
            + ("" if twice_nll is None else f", −2 log L = {twice_nll:.6g}") + ")"]


def _component_lines(components: Mapping[str, Mapping[str, float]]) -> list[str]:
    """The errors with and without the learned-ratio modifiers (in θ units)."""
    lines = ["", "### Errors and the learned ratio's share", "",
             "| parameter | total error | without the learned ratio | "
             "learned ratio (quadrature) |", "|---|---|---|---|"]
    return lines + [f"| {n} | {c['total']:.3g} | {c['without_learned_ratio']:.3g} | "
                    f"{c['learned_ratio']:.3g} |" for n, c in components.items()]


def _hypotest_lines(hyp: Mapping[str, Any]) -> list[str]:
    if "failed" in hyp:
        return [f"- hypothesis test: failed ({hyp['failed']})"]
    band = hyp["cls_expected"]
    how = hyp["calctype"] + (f", {hyp['ntoys']} toys" if hyp.get("ntoys") else "")
    return [f"- hypothesis test at {hyp['poi_value']:g} ({how}, {hyp['test_stat']}): "
            f"CLs = {hyp['cls_observed']:.4g} observed, {band[2]:.4g} expected "
            f"(±1σ [{band[1]:.4g}, {band[3]:.4g}], ±2σ [{band[0]:.4g}, {band[4]:.4g}])"]


def _limit_lines(ul: Mapping[str, Any], poi: str) -> list[str]:
    if "failed" in ul:
        return [f"- upper limit: failed ({ul['failed']})"]
    e = ul["expected"]
    return [f"- {100 * (1 - ul['level']):.0f}% CL upper limit on {poi}: "
            f"{ul['observed']:.4g} observed, {e[2]:.4g} expected "
            f"(±1σ [{e[1]:.4g}, {e[3]:.4g}], ±2σ [{e[0]:.4g}, {e[4]:.4g}])"]


def _pull_lines(pulls: Mapping[str, Mapping[str, Any]]) -> list[str]:
    lines = ["", "### Pulls", "",
             "| parameter | fitted | error | pre-fit | pull | constraint | θ̂ | σ(θ̂) |",
             "|---|---|---|---|---|---|---|---|"]
    for n, p in pulls.items():
        lines.append(f"| {n} | {p['value']:.4g} | {p['error']:.3g} | {p['prefit']:.3g} ± "
                     f"{p['prefit_error']:.3g} | {p['pull']:+.2f} | {p['constraint']:.2f} | "
                     f"{_g(p.get('theta'))} | {_g(p.get('theta_error'), '.3g')} |")
    return lines


def _impact_lines(impacts: Any, poi: str, top: int = 10) -> list[str]:
    if isinstance(impacts, Mapping):  # {"failed": ...}
        return ["", f"Impacts: failed ({impacts.get('failed')})"]
    ranked = sorted(impacts, key=lambda i: max(abs(i["postfit_up"]), abs(i["postfit_down"])),
                    reverse=True)[:top]
    lines = ["", f"### Impacts on {poi} (top {len(ranked)} of {len(impacts)})", "",
             "| parameter | Δ post-fit + | Δ post-fit − | Δ pre-fit + | Δ pre-fit − |",
             "|---|---|---|---|---|"]
    lines += [f"| {i['name']} | {i['postfit_up']:+.3g} | {i['postfit_down']:+.3g} | "
              f"{i['prefit_up']:+.3g} | {i['prefit_down']:+.3g} |" for i in ranked]
    return lines


def _learned_lines(learned: Mapping[str, Any]) -> list[str]:
    lines = []
    for t in learned.get("terms", []):
        shifts = t.get("modifiers", {}).values()
        biggest = max((m["max_abs_shift"] for m in shifts), default=0.0)
        rel = max((m.get("max_relative_shift") or 0.0 for m in shifts), default=0.0)
        lines.append(f"- learned ratio of `{t['nuisance']}` at θ̂ = {t['theta']:.4g}: "
                     f"{t['replicas']} replicas, {len(t.get('modifiers', {}))} modifiers, "
                     f"largest shift {biggest:.3g} events (at most {100 * rel:.2g}% of a bin's "
                     "nominal count)")
    for t in learned.get("nonclosure", []):
        lines.append(f"- non-closure of `{t['nuisance']}` at θ̂ = {t['theta']:.4g}: "
                     f"χ²/ndf = {t['chi2']:.3g}/{t['ndf']}, largest shift "
                     f"{max((m['max_abs_shift'] for m in t['modifiers'].values()), default=0):.3g}"
                     f" events, {t.get('capped_bins', 0)} bins capped")
    return ["", "### Learned ratio", "", *lines] if lines else []


def inference_markdown(inference: Mapping[str, Any]) -> str:
    """The inference section of ``summary.md`` from ``result["inference"]``.

    Returns
    -------
    str
        Markdown: the POI's fitted value ± error (and the learned ratio's share of the
        errors), the hypothesis test's CLs, the upper limit observed and expected, the
        pulls table, the top impacts, the learned-ratio and non-closure terms and the
        warnings; a section is left out where the run did not compute it.
    """
    fit = inference.get("fit")
    lines = ["## Inference", ""]
    if inference.get("mode"):
        lines.append(f"- mode: {inference['mode']} (portable workspace: "
                     f"{inference.get('workspace', 'workspace.json')})")
    poi = fit["poi"] if fit else "POI"
    if fit:
        lines += _fit_lines(fit)
    if inference.get("hypotest"):
        lines += _hypotest_lines(inference["hypotest"])
    if inference.get("upper_limit"):
        lines += _limit_lines(inference["upper_limit"], poi)
    if fit and fit.get("error_components"):
        lines += _component_lines(fit["error_components"])
    if fit and isinstance(fit.get("pulls"), Mapping) and fit["pulls"]:
        lines += _pull_lines(fit["pulls"])
    if inference.get("impacts"):
        lines += _impact_lines(inference["impacts"], poi)
    lines += _learned_lines(inference.get("learned_ratio") or {})
    if inference.get("warnings"):
        lines += ["", "### Warnings", "", *(f"- {w}" for w in inference["warnings"])]
    return "\n".join(lines) + "\n"
