"""Figures of the ``ncr`` study in the layout of ncr.md Figs. 2–4 and 8 (hist + mplhep).

Histograms are normalised to unit area; the ratio panels show reweighted / target with
the statistical errors of both (Σw² storage).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

_LEVELS = (("truth", 0, "truth T (particle level)"), ("reco", 1, "reco R (detector level)"))


def _density(values: np.ndarray, weights: np.ndarray, edges: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray]:
    """Normalised bin contents and their errors (hist with Weight storage)."""
    import hist

    h = hist.Hist(hist.axis.Variable(edges), storage=hist.storage.Weight())
    h.fill(values, weight=weights)
    norm = float(np.sum(weights)) * np.diff(edges)
    return h.values() / norm, np.sqrt(h.variances()) / norm


def _panel(ax: Any, rax: Any, *, curves: Sequence[tuple[str, np.ndarray, np.ndarray]],
           reweighted: tuple[str, np.ndarray, np.ndarray], target: np.ndarray,
           edges: np.ndarray, xlabel: str) -> None:
    import mplhep

    tgt, tgt_err = _density(target, np.ones(len(target)), edges)
    for label, values, weights in curves:
        dens, _ = _density(values, weights, edges)
        mplhep.histplot(dens, edges, ax=ax, label=label, histtype="step")
    mplhep.histplot(tgt, edges, ax=ax, label="target", histtype="fill", alpha=0.3,
                    color="grey")
    label, values, weights = reweighted
    rw, rw_err = _density(values, weights, edges)
    mplhep.histplot(rw, edges, yerr=rw_err, ax=ax, label=label, histtype="errorbar",
                    color="black", markersize=3)
    ax.legend(fontsize=7)
    ax.set_ylabel("normalised")
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = rw / tgt
        err = ratio * np.sqrt((rw_err / rw) ** 2 + (tgt_err / tgt) ** 2)
    centres = 0.5 * (edges[1:] + edges[:-1])
    rax.errorbar(centres, ratio, yerr=err, fmt="o", markersize=2, color="black")
    rax.axhline(1.0, color="grey", lw=0.8)
    rax.set_ylim(0.5, 1.5)
    rax.set_ylabel("rw / target")
    rax.set_xlabel(xlabel)


def comparison_figure(*, path: Path, test: Mapping[str, tuple[np.ndarray, np.ndarray]],
                      logs: Mapping[str, np.ndarray], scheme: str,
                      edges: Mapping[str, np.ndarray]) -> None:
    """ncr.md Figs. 2–4: marginal (top) and conditional (bottom), truth left, reco right."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(4, 2, figsize=(10, 10), sharex="col",
                             gridspec_kw={"height_ratios": [3, 1, 3, 1]})
    ones = {k: np.ones(len(v[0])) for k, v in test.items()}
    for col, (level, idx, xlabel) in enumerate(_LEVELS):
        values = {k: v[idx][:, 0] for k, v in test.items()}
        _panel(axes[0, col], axes[1, col],
               curves=[("(I)", values["sample_I"], ones["sample_I"]),
                       ("(III)", values["sample_III"], ones["sample_III"])],
               reweighted=("(I) marginally reweighted", values["sample_I"],
                           np.exp(logs["marginal"])),
               target=values["target"], edges=edges[level], xlabel=xlabel)
        _panel(axes[2, col], axes[3, col],
               curves=[("(II)", values["sample_II"], ones["sample_II"]),
                       ("(III)", values["sample_III"], ones["sample_III"])],
               reweighted=(f"(III) conditionally reweighted [{scheme}]",
                           values["sample_III"], np.exp(logs[scheme])),
               target=values["target"], edges=edges[level], xlabel=xlabel)
        axes[0, col].set_title(f"marginal, {level}")
        axes[2, col].set_title(f"conditional, {level}")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def schemes_figure(*, path: Path, test: Mapping[str, tuple[np.ndarray, np.ndarray]],
                   logs: Mapping[str, np.ndarray], schemes: Sequence[str],
                   edges: Mapping[str, np.ndarray]) -> None:
    """ncr.md Fig. 8: each scheme's conditionally reweighted (III) against the target."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(10, 6), sharex="col",
                             gridspec_kw={"height_ratios": [3, 1]})
    centres = {k: 0.5 * (e[1:] + e[:-1]) for k, e in edges.items()}
    for col, (level, idx, xlabel) in enumerate(_LEVELS):
        target = test["target"][idx][:, 0]
        tgt, _ = _density(target, np.ones(len(target)), edges[level])
        import mplhep

        mplhep.histplot(tgt, edges[level], ax=axes[0, col], label="target", histtype="fill",
                        alpha=0.3, color="grey")
        for scheme in schemes:
            rw, _ = _density(test["sample_III"][idx][:, 0], np.exp(logs[scheme]),
                                  edges[level])
            mplhep.histplot(rw, edges[level], ax=axes[0, col], label=scheme, histtype="step")
            with np.errstate(divide="ignore", invalid="ignore"):
                axes[1, col].plot(centres[level], rw / tgt, drawstyle="steps-mid", label=scheme)
        axes[0, col].legend(fontsize=7)
        axes[0, col].set_title(f"conditional schemes, {level}")
        axes[1, col].axhline(1.0, color="grey", lw=0.8)
        axes[1, col].set_ylim(0.5, 1.5)
        axes[1, col].set_xlabel(xlabel)
        axes[1, col].set_ylabel("rw / target")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
