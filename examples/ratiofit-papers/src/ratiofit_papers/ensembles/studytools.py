"""Shared pieces of the ensembles.md study plugins: training settings, exact ratios,
per-epoch monitoring and plotting."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ratiofit.errors import DataError
from ratiofit.options import Option, resolve_options
from ratiofit.spec import TrainingSpec

__all__ = ["TRAINING_OPTION", "EpochMonitor", "exact_log_density", "invalid_option",
           "plot_lines", "training_spec"]

#: Training settings shared by every network of a study (ensembles.md Sec. III A 1:
#: Adam, batch = 10 % of the training set, early stopping with patience 20).
TRAINING_DEFAULTS: dict[str, Any] = {"epochs": 300, "batch_fraction": 0.1,
                                     "learning_rate": 1e-3, "patience": 20,
                                     "validation_fraction": 0.5, "schedule": "constant"}

TRAINING_OPTION = Option(kind="mapping", default={},
                         doc="epochs, batch_fraction, learning_rate, patience, "
                         "validation_fraction, schedule of every network trained")


def invalid_option(field: str, message: str) -> ValueError:
    """A ValueError whose ``field`` attribute points the spec error at an option."""
    exc = ValueError(message)
    exc.field = field  # type: ignore[attr-defined]
    return exc


def check_training(values: Mapping[str, Any]) -> None:
    """Refuse unknown or out-of-range training settings (raised with ``field``)."""
    unknown = sorted(set(values) - set(TRAINING_DEFAULTS))
    if unknown:
        raise invalid_option("training", f"unknown training setting(s) {unknown}; use "
                             f"{sorted(TRAINING_DEFAULTS)}")
    merged = {**TRAINING_DEFAULTS, **values}
    if not 0 < float(merged["batch_fraction"]) <= 1:
        raise invalid_option("training", "batch_fraction must be in (0, 1]")
    if not 0 < float(merged["validation_fraction"]) < 1:
        raise invalid_option("training", "validation_fraction must be in (0, 1)")
    if int(merged["epochs"]) < 1 or int(merged["patience"]) < 1:
        raise invalid_option("training", "epochs and patience must be ≥ 1")
    if merged["schedule"] not in ("constant", "cosine"):
        raise invalid_option("training", "schedule must be 'constant' or 'cosine'")


def training_spec(values: Mapping[str, Any], *, n_examples: int) -> TrainingSpec:
    """A :class:`~ratiofit.spec.TrainingSpec` whose batch is ``batch_fraction`` of the
    ``n_examples`` training examples (both classes, after the validation split)."""
    merged = {**TRAINING_DEFAULTS, **values}
    n_fit = n_examples * (1.0 - float(merged["validation_fraction"]))
    return TrainingSpec(epochs=int(merged["epochs"]),
                        batch_size=max(1, math.ceil(float(merged["batch_fraction"]) * n_fit)),
                        learning_rate=float(merged["learning_rate"]),
                        schedule=str(merged["schedule"]),
                        validation_fraction=float(merged["validation_fraction"]),
                        patience=int(merged["patience"]), checkpoint=False)


def exact_log_density(context: Any, *, sample: str, features: np.ndarray) -> np.ndarray | None:
    """log p(x) of a spec sample generated at fixed θ, from its source's ``log_density``
    (``None`` when the source has none or the sample varies θ per event)."""
    spec_sample = context.spec.samples[sample]
    if spec_sample.varied:
        return None
    source = context.registry.get("source", spec_sample.source)
    if not callable(getattr(source, "log_density", None)):
        return None
    theta = {p.name: p.nominal for p in context.spec.parameters}
    theta.update({n: t.value for n, t in spec_sample.theta.items() if t.kind == "fixed"})
    options = resolve_options(source.options, spec_sample.options, where=spec_sample.source)
    return np.asarray(source.log_density(features=features, theta=theta, options=options),
                      dtype=np.float64)


class EpochMonitor:
    """A Keras callback factory recording AUC and FPR at 50 % TPR after every epoch
    (ensembles.md Fig. 4: performance vs training epoch)."""

    def __init__(self, *, scores: Callable[[Any], tuple[np.ndarray, np.ndarray]]) -> None:
        self.scores = scores
        self.auc: list[float] = []
        self.fpr_at_half: list[float] = []

    def callback(self) -> Any:
        """The ``keras.callbacks.Callback`` to pass to training."""
        import keras

        from ratiofit_papers.ensembles.roc import auc, fpr_at_tpr

        monitor = self

        class _Callback(keras.callbacks.Callback):  # type: ignore[misc]
            def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
                reference, target = monitor.scores(self.model)
                if not (np.all(np.isfinite(reference)) and np.all(np.isfinite(target))):
                    raise DataError("network scores became non-finite during training")
                monitor.auc.append(auc(reference_scores=reference, target_scores=target))
                monitor.fpr_at_half.append(fpr_at_tpr(reference_scores=reference,
                                                      target_scores=target, tpr_value=0.5))

        return _Callback()


def plot_lines(path: Path, *, lines: Mapping[str, tuple[Any, Any]], xlabel: str, ylabel: str,
               diagonal: bool = False, title: str | None = None) -> None:
    """Draw labelled curves (x, y) into ``path`` with mplhep's style."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import mplhep

    plt.style.use(mplhep.style.ROOT)
    fig, ax = plt.subplots(figsize=(8, 7))
    colours = plt.get_cmap("tab10")
    for i, (label, (x, y)) in enumerate(lines.items()):
        ax.plot(x, y, label=label, lw=2, color=colours(i % 10), ls="-" if i < 10 else "--")
    if diagonal:
        ax.plot([0, 1], [0, 1], color="grey", ls=":", lw=1, label="random")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=16)
    ax.legend(fontsize=13)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
