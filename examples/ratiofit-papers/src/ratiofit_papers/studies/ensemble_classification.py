"""Study ``ensemble_classification``: per-event vs per-ensemble classifiers
(ensembles.md Sec. III A 1 and III B, Figs. 1, 4 and 5).

From a reference sample (label 0) and a target sample (label 1), both generated at fixed
θ, the study trains the classifiers named in ``classifiers``:

- ``f1``: per-event classifier (architecture ``mlp``);
- ``f1_to_N``: f_{1→N}(x⃗) = Σᵢ log w₁(xᵢ), built from f1 with no training (Eq. 13);
- ``fN``: an ``mlp`` on the N concatenated events (in random order);
- ``fN_sort``: the same with the events of each ensemble sorted by ``sort_by``;
- ``fN_set``: ``deepsets_ensemble`` (Eq. 31);
- ``fN_set_fixed``: ``deepsets_ensemble`` with the fixed output of Eq. 32, f̃_N^set;
- ``fN_to_1``: its Φ used as a per-event classifier, f_{N→1} (Sec. III B, Fig. 5).

The per-ensemble networks train on ensembles drawn from the same training events as f1
(so every network sees the same events per epoch; ``augmentation`` > 1 draws extra
ensembles by re-partitioning them, footnote 5). All are evaluated on held-out test
ensembles made of the remaining events; per-event classifiers on the same events one by
one. When both samples' sources provide an exact log-density, the exact per-event
log-ratio gives the optimal classifiers on the same test events (``exact_1``,
``exact_N``) and a closed-form optimum: Σᵢ log w is normal for the Gaussian example, so
AUC = Φ(Δm/√(v_T + v_R)) with the per-event log-ratio's means and variances times N.

Per-epoch AUC and FPR at 50 % TPR on ``monitor_ensembles`` held-out ensembles per class
compare how fast f1 (read as f_{1→N}) and the set networks learn (Fig. 4 analogue).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ratiofit.events import EventSet
from ratiofit.hookspecs import hookimpl
from ratiofit.options import Option, resolve_options
from ratiofit.parameters import ParameterSet
from ratiofit.plugins.architectures.deepsets_ensemble import per_event_model
from ratiofit.training import train_reweighter
from ratiofit_papers.ensembles.roc import auc, auc_standard_error, normal_scores_auc, roc_curve
from ratiofit_papers.ensembles.sampling import draw_ensembles, ensemble_log_ratio
from ratiofit_papers.ensembles.studytools import (
    TRAINING_OPTION,
    EpochMonitor,
    check_training,
    exact_log_density,
    invalid_option,
    plot_lines,
    training_spec,
)

CLASSIFIERS = ("f1", "f1_to_N", "fN", "fN_sort", "fN_set", "fN_set_fixed", "fN_to_1")
#: What each classifier needs trained first.
NEEDS = {"f1_to_N": "f1", "fN_to_1": "fN_set_fixed"}
#: Classifiers that score single events (the rest score ensembles).
PER_EVENT = ("f1", "fN_to_1", "exact_1")
#: ROC curves are stored at these false-positive rates.
FPR_POINTS = np.linspace(0.0, 1.0, 201)


class EnsembleClassification:
    """Per-event, per-ensemble and deep-sets classifiers on held-out ensembles."""

    name = "ensemble_classification"
    options: Mapping[str, Option] = {
        "reference": Option(kind="str", required=True, doc="label-0 sample (fixed θ)"),
        "target": Option(kind="str", required=True, doc="label-1 sample (fixed θ)"),
        "ensemble_size": Option(kind="int", default=10, minimum=2, doc="events per ensemble N"),
        "train_events": Option(kind="int", default=50_000, minimum=10,
                               doc="events per class used for training (the rest are test "
                               "events)"),
        "classifiers": Option(kind="str_list", default=list(CLASSIFIERS),
                              doc=f"which of {', '.join(CLASSIFIERS)} to build"),
        "loss": Option(kind="str", default="bce", doc="loss plugin of every network"),
        "event_network": Option(kind="mapping", default={"hidden": [128, 128],
                                                         "activation": "relu"},
                                doc="mlp options of f1 (paper: two layers of 128, ReLU)"),
        "ensemble_network": Option(kind="mapping", default={"hidden": [128, 128],
                                                            "activation": "relu"},
                                   doc="mlp options of fN and fN_sort"),
        "set_network": Option(kind="mapping", default={"phi": [64, 64], "latent": 32,
                                                       "head": [64, 64]},
                              doc="deepsets_ensemble options of fN_set and fN_set_fixed"),
        "training": TRAINING_OPTION,
        "augmentation": Option(kind="int", default=1, minimum=1,
                               doc="partitions of the training events into ensembles "
                               "(footnote 5)"),
        "sort_by": Option(kind="str", default="x0", doc="feature that orders fN_sort's events"),
        "monitor_ensembles": Option(kind="int", default=20_000, minimum=0,
                                    doc="test ensembles per class scored after every epoch "
                                    "(0: no per-epoch curves)"),
    }

    def check(self, *, options: Mapping[str, Any], samples: Mapping[str, Any],
              parameters: Any) -> None:
        """Validate sample references, classifier names and training settings."""
        for key in ("reference", "target"):
            if options[key] not in samples:
                raise invalid_option(key, f"unknown sample {options[key]!r}")
            if getattr(samples[options[key]], "varied", []):
                raise invalid_option(key, f"sample {options[key]!r} varies θ per event; "
                                     "ensembles need a fixed-θ sample")
        unknown = [c for c in options["classifiers"] if c not in CLASSIFIERS]
        if unknown:
            raise invalid_option("classifiers", f"unknown classifier(s) {unknown}; use "
                                 f"{list(CLASSIFIERS)}")
        for name, needed in NEEDS.items():
            if name in options["classifiers"] and needed not in options["classifiers"]:
                raise invalid_option("classifiers", f"{name} needs {needed} in the list")
        check_training(options["training"])
        for key in ("reference", "target"):
            n_events = getattr(samples[options[key]], "n_events", None)
            needed = options["train_events"] + options["ensemble_size"]
            if n_events is not None and n_events < needed:
                raise invalid_option("train_events", f"sample {options[key]!r} has {n_events} "
                                     f"events; need more than train_events + one test ensemble")

    def run(self, *, context: Any, options: Mapping[str, Any]) -> Mapping[str, Any]:
        """Train, evaluate, plot; returns AUCs, ROC points and per-epoch curves."""
        n_ens = int(options["ensemble_size"])
        wanted = list(options["classifiers"])
        loss = context.registry.get("loss", options["loss"])
        samples: dict[str, tuple[EventSet, EventSet]] = {}
        for key in ("reference", "target"):
            events = context.sample(options[key])
            train, test = events.split(1.0 - options["train_events"] / len(events),
                                       rng=context.rng("split", key))
            samples[key] = (train, test)
        test_ens = {key: draw_ensembles(samples[key][1], ensemble_size=n_ens,
                                        rng=context.rng("test", key)) for key in samples}
        test_events = {key: ens.features.reshape(len(ens) * n_ens, -1)
                       for key, ens in test_ens.items()}
        d = test_events["reference"].shape[1]
        n_monitor = min(int(options["monitor_ensembles"]), *(len(e) for e in test_ens.values()))
        scores: dict[str, dict[str, np.ndarray]] = {}
        curves: dict[str, dict[str, list[float]]] = {}
        histories: dict[str, dict[str, Any]] = {}

        # Optimal classifiers from the exact densities, when the sources have them.
        exact_ref = self._exact(context, options, test_events["reference"])
        exact_tgt = self._exact(context, options, test_events["target"])
        closed_form = None
        if exact_ref is not None and exact_tgt is not None:
            ref_lw, tgt_lw = exact_ref[0] - exact_ref[1], exact_tgt[0] - exact_tgt[1]
            scores["exact_1"] = {"reference": ref_lw, "target": tgt_lw}
            scores["exact_N"] = {
                "reference": ensemble_log_ratio(ref_lw, ensemble_size=n_ens),
                "target": ensemble_log_ratio(tgt_lw, ensemble_size=n_ens)}
            closed_form = {
                "auc_1": normal_scores_auc(reference_mean=ref_lw.mean(),
                                           reference_variance=ref_lw.var(),
                                           target_mean=tgt_lw.mean(),
                                           target_variance=tgt_lw.var()),
                "auc_N": normal_scores_auc(reference_mean=n_ens * ref_lw.mean(),
                                           reference_variance=n_ens * ref_lw.var(),
                                           target_mean=n_ens * tgt_lw.mean(),
                                           target_variance=n_ens * tgt_lw.var())}

        def per_event_scores(model: Any, x: np.ndarray) -> np.ndarray:
            out = np.asarray(model.predict({"features": x.astype(np.float32)},
                                           batch_size=65536, verbose=0))
            return np.asarray(loss.log_ratio(out), dtype=np.float64).ravel()

        if "f1" in wanted:
            monitor_x = {k: test_events[k][: n_monitor * n_ens] for k in samples}

            def f1_to_n(model: Any) -> tuple[np.ndarray, np.ndarray]:
                return tuple(ensemble_log_ratio(per_event_scores(model, monitor_x[k]),  # type: ignore[return-value]
                                                ensemble_size=n_ens)
                             for k in ("reference", "target"))

            monitor = EpochMonitor(scores=f1_to_n) if n_monitor else None
            rw = self._train(context, options, name="f1", architecture="mlp",
                             arch_options=options["event_network"],
                             reference=samples["reference"][0], target=samples["target"][0],
                             monitor=monitor)
            histories["f1"] = self._history(rw)
            if monitor is not None:
                curves["f1_to_N"] = {"auc": monitor.auc, "fpr_at_tpr_0.5": monitor.fpr_at_half}
            lw = {k: rw.log_ratio(features=test_events[k]) for k in samples}
            scores["f1"] = lw
            if "f1_to_N" in wanted:
                scores["f1_to_N"] = {k: ensemble_log_ratio(v, ensemble_size=n_ens)
                                     for k, v in lw.items()}

        ensemble_kinds = {"fN": ("mlp", options["ensemble_network"], None),
                          "fN_sort": ("mlp", options["ensemble_network"], options["sort_by"]),
                          "fN_set": ("deepsets_ensemble",
                                     {**options["set_network"], "event_dim": d}, None),
                          "fN_set_fixed": ("deepsets_ensemble",
                                           {**options["set_network"], "event_dim": d,
                                            "fixed_output": True}, None)}
        for name, (arch, arch_options, sort_by) in ensemble_kinds.items():
            if name not in wanted:
                continue
            train = {k: draw_ensembles(samples[k][0], ensemble_size=n_ens,
                                       augmentation=options["augmentation"], sort_by=sort_by,
                                       rng=context.rng("train", name, k)) for k in samples}
            test = {k: draw_ensembles(samples[k][1], ensemble_size=n_ens, sort_by=sort_by,
                                      rng=context.rng("test", k)) for k in samples}
            monitor = None
            if n_monitor and name in ("fN_set", "fN_set_fixed"):
                monitor_x = {k: test[k].features[:n_monitor] for k in samples}

                def ensemble_scores(model: Any, xs: dict[str, np.ndarray] = monitor_x
                                    ) -> tuple[np.ndarray, np.ndarray]:
                    return tuple(per_event_scores(model, xs[k])  # type: ignore[return-value]
                                 for k in ("reference", "target"))

                monitor = EpochMonitor(scores=ensemble_scores)
            rw = self._train(context, options, name=name, architecture=arch,
                             arch_options=arch_options, reference=train["reference"],
                             target=train["target"], monitor=monitor)
            histories[name] = self._history(rw)
            if monitor is not None:
                curves[name] = {"auc": monitor.auc, "fpr_at_tpr_0.5": monitor.fpr_at_half}
            scores[name] = {k: rw.log_ratio(features=test[k].features) for k in samples}
            if name == "fN_set_fixed" and "fN_to_1" in wanted:
                phi = per_event_model(rw.model)
                scores["fN_to_1"] = {k: np.asarray(phi.predict(
                    {"features": test_events[k].astype(np.float32)}, batch_size=65536,
                    verbose=0), dtype=np.float64).ravel() for k in samples}

        result = self._summarise(scores, closed_form=closed_form, n_ens=n_ens)
        result.update({"ensemble_size": n_ens, "train_events": int(options["train_events"]),
                       "test_ensembles": {k: len(v) for k, v in test_ens.items()},
                       "epoch_curves": curves, "training": histories})
        self._plot(context, result, n_ens=n_ens)
        return result

    # -- pieces -----------------------------------------------------------------------
    @staticmethod
    def _exact(context: Any, options: Mapping[str, Any], x: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray] | None:
        """(log p_target(x), log p_reference(x)) from the sources' exact densities."""
        log_t = exact_log_density(context, sample=options["target"], features=x)
        log_r = exact_log_density(context, sample=options["reference"], features=x)
        if log_t is None or log_r is None:
            return None
        return log_t, log_r

    @staticmethod
    def _train(context: Any, options: Mapping[str, Any], *, name: str, architecture: str,
               arch_options: Mapping[str, Any], reference: EventSet, target: EventSet,
               monitor: EpochMonitor | None) -> Any:
        arch = context.registry.get("architecture", architecture)
        resolved = resolve_options(arch.options, dict(arch_options), where=architecture)
        training = training_spec(options["training"], n_examples=len(reference) + len(target))
        return train_reweighter(
            reference=reference, target=target, parameters=ParameterSet([]), architecture=arch,
            architecture_options=resolved, loss=context.registry.get("loss", options["loss"]),
            training=training, seed=int(context.rng("seed", name).integers(2**31)),
            extra_callbacks=[monitor.callback()] if monitor is not None else None)

    @staticmethod
    def _history(rw: Any) -> dict[str, Any]:
        meta = rw.metadata
        return {"epochs_run": meta["epochs_run"], "best_epoch": meta["best_epoch"],
                "train_seconds": meta["train_seconds"], "n_train": meta["n_train"],
                "val_loss": meta["history"].get("val_loss", [])}

    @staticmethod
    def _summarise(scores: Mapping[str, Mapping[str, np.ndarray]], *,
                   closed_form: Mapping[str, float] | None, n_ens: int) -> dict[str, Any]:
        aucs, errors, rocs = {}, {}, {}
        for name, s in scores.items():
            value = auc(reference_scores=s["reference"], target_scores=s["target"])
            aucs[name] = value
            errors[name] = auc_standard_error(auc_value=value, n_reference=len(s["reference"]),
                                              n_target=len(s["target"]))
            fpr, tpr, _ = roc_curve(reference_scores=s["reference"], target_scores=s["target"])
            rocs[name] = np.interp(FPR_POINTS, fpr, tpr).round(5).tolist()
        out: dict[str, Any] = {"auc": aucs, "auc_statistical_error": errors,
                               "roc": {"fpr": FPR_POINTS.tolist(), "tpr": rocs},
                               "per_event": [n for n in scores if n in PER_EVENT]}
        if closed_form is not None:
            out["analytic_auc"] = dict(closed_form)
            out["auc_minus_analytic"] = {
                n: v - closed_form["auc_1" if n in PER_EVENT else "auc_N"]
                for n, v in aucs.items()}
        return out

    @staticmethod
    def _plot(context: Any, result: Mapping[str, Any], *, n_ens: int) -> None:
        fpr = np.asarray(result["roc"]["fpr"])
        labels = label_map(n_ens)
        lines = {f"{labels.get(n, n)} (AUC {result['auc'][n]:.4f})": (fpr, np.asarray(t))
                 for n, t in result["roc"]["tpr"].items()}
        plot_lines(context.outdir / "roc.png", lines=lines, xlabel="false positive rate",
                   ylabel="true positive rate", diagonal=True)
        if result["epoch_curves"]:
            epoch_lines = {labels.get(n, n): (np.arange(1, len(c["fpr_at_tpr_0.5"]) + 1),
                                              np.asarray(c["fpr_at_tpr_0.5"]))
                           for n, c in result["epoch_curves"].items()}
            plot_lines(context.outdir / "epochs.png", lines=epoch_lines, xlabel="epoch",
                       ylabel="false positive rate at 50 % TPR")


def label_map(n_ens: int) -> dict[str, str]:
    """Plot labels in the paper's notation."""
    return {"f1": "f_1", "f1_to_N": f"f_1→{n_ens}", "fN": f"f_{n_ens}",
            "fN_sort": f"f_{n_ens}^sort", "fN_set": f"f_{n_ens}^set",
            "fN_set_fixed": f"f̃_{n_ens}^set", "fN_to_1": f"f_{n_ens}→1",
            "exact_1": "exact ratio, 1 event", "exact_N": f"exact ratio, {n_ens} events"}


@hookimpl
def ratiofit_studies() -> list[Any]:
    return [EnsembleClassification()]
