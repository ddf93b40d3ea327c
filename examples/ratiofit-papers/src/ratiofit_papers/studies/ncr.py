"""Study ``ncr``: conditional vs marginal reweighting (ncr.md Fig. 1, Sec. III, App. A).

Four samples of two-level events (``gen_<truth>``, ``sim_<reco>`` features) are named in
the options:

- (I) ``sample_I``: coarse generator ⇒ precise simulator;
- (II) ``sample_II``: coarse generator ⇒ coarse simulator;
- (III) ``sample_III``: precise generator ⇒ coarse simulator;
- ``target``: precise generator ⇒ precise simulator (only compared with, ncr.md Eq. 25–26).

Every sample is split into a training and a test half (``test_fraction``, ncr.md Sec. III:
"a 50% test-train split"). For each ensemble member:

- **marginal** reweighting (ncr.md Eq. 7, Fig. 1 top): a classifier on the truth of (I)
  (reference, label 0) vs (III) (target, label 1); its weights are applied to (I);
- **conditional** reweighting (ncr.md Eq. 3, Fig. 1 bottom): w(x|x') = p_I(x|x')/p_II(x|x')
  learned from (II) (reference) vs (I) (target) and applied to (III), with each scheme
  of ``schemes``: ``nominal`` (NCR loss + ``ncr_trunk``, ncr.md Eq. 13–19), ``1f-2NN``
  and ``1f`` (NCR loss, App. A) and ``2f`` (joint over marginal classifier, ncr.md Eq. 9).

Both reweighted samples are compared with the target at truth and reco level by a χ²
per degree of freedom of normalised histograms (:func:`chi2_per_ndf`), and the weights
are summarised (Kish ESS fraction, max weight). When all samples come from the source
``ncr_gaussian`` the exact log w is known and the learned one is compared with it (RMS
over the test events), and the χ² of the *exact* weights is given as the floor set by
the finite samples. Figures follow the layout of ncr.md Figs. 2–4 (top row marginal,
bottom row conditional, truth left, reco right, ratio panels); a second figure compares
the schemes (ncr.md Fig. 8).

The training loop is local to this study (:func:`fit_classifier`): NCR triples pair rows
of two samples, which the core's single-EventSet training path does not build.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ratiofit.errors import DataError
from ratiofit.events import EventSet
from ratiofit.hookspecs import hookimpl
from ratiofit.options import Option
from ratiofit.plugin_api import InputSignature

#: Conditional-reweighting schemes (ncr.md Sec. II D and App. A).
SCHEMES = ("nominal", "1f-2NN", "1f", "2f")
_SAMPLE_OPTIONS = ("sample_I", "sample_II", "sample_III", "target")


def _option_error(field: str, message: str) -> ValueError:
    exc = ValueError(message)
    exc.field = field  # type: ignore[attr-defined]
    return exc


# ---------------------------------------------------------------------------------------
# Metrics
# ---------------------------------------------------------------------------------------
def chi2_per_ndf(*, values: np.ndarray, weights: np.ndarray, target: np.ndarray,
                 edges: np.ndarray) -> float:
    """χ²/ndf between a weighted sample and an unweighted target, both normalised to 1.

    Each histogram is divided by its total weight (all events, including those outside
    ``edges``); bin variances are Σw²/(Σw)² and n/N². χ² = Σ (a − b)²/(σ_a² + σ_b²) over
    the bins where either histogram has entries, and ndf is the number of those bins.

    Parameters
    ----------
    values, weights
        ``[n]`` values of the reweighted sample and their weights.
    target
        ``[m]`` values of the target sample (unit weights).
    edges
        Bin edges.
    """
    import hist

    def normalised(x: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h = hist.Hist(hist.axis.Variable(edges), storage=hist.storage.Weight())
        h.fill(x, weight=w)
        total = float(np.sum(w))
        return h.values() / total, h.variances() / total**2

    a, var_a = normalised(values, weights)
    b, var_b = normalised(target, np.ones(len(target)))
    used = (var_a + var_b) > 0
    if not np.any(used):
        return float("nan")
    return float(np.sum((a[used] - b[used]) ** 2 / (var_a[used] + var_b[used])) / used.sum())


def weight_summary(log_w: np.ndarray) -> dict[str, float]:
    """Kish effective-sample-size fraction, max, std and mean of w = exp(log w)."""
    w = np.exp(np.asarray(log_w, dtype=np.float64))
    if not np.all(np.isfinite(w)):
        raise DataError("ncr study: a learned weight is not finite")
    return {"ess_fraction": float(w.sum() ** 2 / np.sum(w**2) / len(w)),
            "max_weight": float(w.max()), "std_weight": float(w.std()),
            "mean_weight": float(w.mean())}


# ---------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------
def signature_for(*, features: np.ndarray, names: Sequence[str]) -> InputSignature:
    """Input signature (names, training means and widths) without θ."""
    std = features.std(axis=0)
    return InputSignature(feature_names=tuple(names), feature_mean=tuple(features.mean(axis=0)),
                          feature_std=tuple(np.where(std > 0, std, 1.0)), theta_names=(),
                          theta_centre=(), theta_half_width=())


def fit_classifier(*, model: Any, features: np.ndarray, labels: np.ndarray,
                   training: Mapping[str, Any], seed: int) -> dict[str, Any]:
    """Train ``model`` (logit output) with BCE on (features, labels); return its history.

    Rows are shuffled with a seeded permutation *before* the validation split, the two
    classes get equal total weight (so the logit is the density ratio, ncr.md Eq. 6
    without prior factor), Adam (ncr.md Sec. II D) with early stopping on the
    validation loss, restoring the best epoch.

    Parameters
    ----------
    model
        An uncompiled Keras model with a ``features`` input and a logit output.
    features, labels
        ``[n, d]`` inputs and ``[n]`` labels (0 = reference, 1 = target).
    training
        ``validation_fraction``, ``learning_rate``, ``patience``, ``batch_size``, ``epochs``.
    seed
        Seeds the shuffle and Keras (same seed and data → same weights).

    Returns
    -------
    dict
        ``epochs_run``, ``best_epoch`` and ``best_val_loss``.
    """
    import keras

    rng = np.random.default_rng(seed)
    order = rng.permutation(len(labels))
    x, y = features[order].astype(np.float32), labels[order].astype(np.float32)
    n_target = float(y.sum())
    weights = np.where(y == 1, len(y) / (2 * n_target), len(y) / (2 * (len(y) - n_target)))
    n_val = round(training["validation_fraction"] * len(y))
    keras.utils.set_random_seed(seed)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=training["learning_rate"]),
                  loss=keras.losses.BinaryCrossentropy(from_logits=True))
    stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=training["patience"],
                                         restore_best_weights=True)
    hist = model.fit({"features": x[n_val:]}, y[n_val:], sample_weight=weights[n_val:],
                     validation_data=({"features": x[:n_val]}, y[:n_val], weights[:n_val]),
                     batch_size=training["batch_size"], epochs=training["epochs"],
                     shuffle=True, verbose=0, callbacks=[stop])
    val = [float(v) for v in hist.history["val_loss"]]
    return {"epochs_run": len(val), "best_epoch": int(np.argmin(val)) + 1,
            "best_val_loss": float(min(val))}


def predict_logit(model: Any, features: np.ndarray) -> np.ndarray:
    """The model's logit for ``[n, d]`` features, as float64 ``[n]``."""
    out = model.predict({"features": features.astype(np.float32)}, batch_size=65536, verbose=0)
    return np.asarray(out, dtype=np.float64)[:, 0]


# ---------------------------------------------------------------------------------------
# The study
# ---------------------------------------------------------------------------------------
class NCRStudy:
    """Marginal vs conditional reweighting of ncr.md Fig. 1 with numbers and figures."""

    name = "ncr"
    options: Mapping[str, Option] = {
        "sample_I": Option(kind="str", required=True,
                           doc="(I) coarse generator ⇒ precise simulator (ncr.md Fig. 1)"),
        "sample_II": Option(kind="str", required=True,
                            doc="(II) coarse generator ⇒ coarse simulator"),
        "sample_III": Option(kind="str", required=True,
                             doc="(III) precise generator ⇒ coarse simulator"),
        "target": Option(kind="str", required=True,
                         doc="precise generator ⇒ precise simulator, for comparison only"),
        "truth": Option(kind="str_list", default=["t"],
                        doc="truth features (gen_<name>), x' of ncr.md Eq. 3"),
        "reco": Option(kind="str_list", default=["r"],
                       doc="reco features (sim_<name>), x of ncr.md Eq. 3"),
        "schemes": Option(kind="str_list", default=["nominal"],
                          doc=f"conditional schemes among {list(SCHEMES)} (ncr.md App. A)"),
        "members": Option(kind="int", default=5, minimum=1,
                          doc="ensemble members (independent trainings) per method"),
        "test_fraction": Option(kind="float", default=0.5, minimum=0.05, maximum=0.95,
                                doc="fraction of each sample kept for evaluation"),
        "validation_fraction": Option(kind="float", default=0.2, minimum=0.01, maximum=0.5,
                                      doc="fraction of the training rows for early stopping"),
        "epochs": Option(kind="int", default=50, minimum=1, doc="maximum epochs"),
        "patience": Option(kind="int", default=10, minimum=1, doc="early-stopping patience"),
        "batch_size": Option(kind="int", default=1000, minimum=1, doc="batch size"),
        "learning_rate": Option(kind="float", default=1e-3, minimum=0.0,
                                doc="Adam learning rate"),
        "marginal_hidden": Option(kind="int_list", default=[50, 50, 50], minimum=1,
                                  doc="hidden ReLU widths of the marginal (and 2f) classifiers"),
        "bins": Option(kind="int", default=50, minimum=2, doc="histogram bins per panel"),
        "plots": Option(kind="bool", default=True, doc="write the figures"),
    }

    def check(self, *, options: Mapping[str, Any], samples: Mapping[str, Any],
              parameters: Any) -> None:
        """Undefined samples or unknown schemes are spec errors naming the option."""
        for key in _SAMPLE_OPTIONS:
            if options[key] not in samples:
                raise _option_error(key, f"unknown sample {options[key]!r} (samples: "
                                    f"{', '.join(samples)})")
        bad = [s for s in options["schemes"] if s not in SCHEMES]
        if bad or not options["schemes"]:
            raise _option_error("schemes", f"unknown scheme(s) {bad}; use some of "
                                f"{list(SCHEMES)}")
        if not options["truth"] or not options["reco"]:
            raise _option_error("truth" if not options["truth"] else "reco",
                                "at least one feature is needed")

    # -- data ---------------------------------------------------------------------------
    def _columns(self, events: EventSet, options: Mapping[str, Any]
                 ) -> tuple[np.ndarray, np.ndarray]:
        truth = events.feature_columns([f"gen_{n}" for n in options["truth"]])
        reco = events.feature_columns([f"sim_{n}" for n in options["reco"]])
        return truth, reco

    def run(self, *, context: Any, options: Mapping[str, Any]) -> Mapping[str, Any]:
        self.check(options=options, samples=context.spec.samples, parameters=None)
        train: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        test: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for key in _SAMPLE_OPTIONS:
            events = context.sample(options[key])
            if key == "target":  # never trained on: all of it is compared with
                test[key] = self._columns(events, options)
                continue
            fit_part, test_part = events.split(options["test_fraction"],
                                               rng=context.rng("split", key))
            train[key], test[key] = (self._columns(fit_part, options),
                                     self._columns(test_part, options))
        exact = self._exact(context, options, test)
        edges = self._edges(test, options)
        members: list[dict[str, Any]] = []
        first: dict[str, np.ndarray] = {}
        for member in range(options["members"]):
            logs, record = self._member(context, options, train, test, member)
            record.update(self._scores(logs, test, edges, exact))
            members.append(record)
            if member == 0:
                first = logs
            # Completed members so far, readable while a long ensemble is still running.
            (context.outdir / "partial.json").write_text(json.dumps(
                {"members_done": len(members), "summary": _summarise(members)}, indent=1))
        result: dict[str, Any] = {
            "schemes": list(options["schemes"]), "members": options["members"],
            "n_train": {k: len(v[0]) for k, v in train.items()},
            "n_test": {k: len(v[0]) for k, v in test.items()},
            "binning": {"truth": [float(edges["truth"][0]), float(edges["truth"][-1])],
                        "reco": [float(edges["reco"][0]), float(edges["reco"][-1])],
                        "bins": options["bins"]},
            "unweighted": self._unweighted(test, edges),
            "summary": _summarise(members),
            "per_member": members,
        }
        if exact is not None:
            # The floor set by finite samples: the same metrics with the exact weights.
            result["exact_weights"] = self._scores(exact, test, edges, None)
        if options["plots"]:
            self._plots(context.outdir, options, test, first, edges)
        return result

    def _edges(self, test: Mapping[str, tuple[np.ndarray, np.ndarray]],
               options: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Binning of the first truth and reco feature: the 0.1–99.9% range of all samples."""
        out = {}
        for level, col in (("truth", 0), ("reco", 1)):
            vals = np.concatenate([test[k][col][:, 0] for k in _SAMPLE_OPTIONS])
            lo, hi = np.quantile(vals, [0.001, 0.999])
            out[level] = np.linspace(lo, hi, options["bins"] + 1)
        return out

    def _exact(self, context: Any, options: Mapping[str, Any],
               test: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, np.ndarray] | None:
        """Exact log w when every sample comes from ``ncr_gaussian`` (one truth, one reco)."""
        specs = {k: context.spec.samples[options[k]] for k in _SAMPLE_OPTIONS}
        if any(s.source != "ncr_gaussian" for s in specs.values()) \
                or options["truth"] != ["t"] or options["reco"] != ["r"]:
            return None
        src = context.registry.get("source", "ncr_gaussian")
        opt = {k: s.options for k, s in specs.items()}
        t1, _ = test["sample_I"]
        t3, r3 = test["sample_III"]
        marginal = (src.log_truth_density(truth=t1[:, 0], options=opt["sample_III"])
                    - src.log_truth_density(truth=t1[:, 0], options=opt["sample_I"]))
        conditional = (src.log_response(truth=t3[:, 0], reco=r3[:, 0], options=opt["sample_I"])
                       - src.log_response(truth=t3[:, 0], reco=r3[:, 0],
                                          options=opt["sample_II"]))
        return {"marginal": marginal, "conditional": conditional}

    def _unweighted(self, test: Mapping[str, tuple[np.ndarray, np.ndarray]],
                    edges: Mapping[str, np.ndarray]) -> dict[str, dict[str, float]]:
        out = {}
        for key in ("sample_I", "sample_III"):
            out[key] = {level: chi2_per_ndf(values=test[key][col][:, 0],
                                            weights=np.ones(len(test[key][col])),
                                            target=test["target"][col][:, 0],
                                            edges=edges[level])
                        for level, col in (("truth", 0), ("reco", 1))}
        return out

    def _scores(self, logs: Mapping[str, np.ndarray],
                test: Mapping[str, tuple[np.ndarray, np.ndarray]],
                edges: Mapping[str, np.ndarray],
                exact: Mapping[str, np.ndarray] | None) -> dict[str, Any]:
        """χ²/ndf at truth and reco, weight summary and (if known) RMS of log w − exact."""
        out: dict[str, Any] = {}
        for method, log_w in logs.items():
            applied = "sample_I" if method == "marginal" else "sample_III"
            w = np.exp(log_w)
            scores: dict[str, Any] = {
                f"chi2_ndf_{level}": chi2_per_ndf(values=test[applied][col][:, 0], weights=w,
                                                  target=test["target"][col][:, 0],
                                                  edges=edges[level])
                for level, col in (("truth", 0), ("reco", 1))}
            scores.update(weight_summary(log_w))
            if exact is not None:
                ref = exact["marginal" if method == "marginal" else "conditional"]
                scores["rms_log_w_error"] = float(np.sqrt(np.mean((log_w - ref) ** 2)))
            out[method] = scores
        return out

    # -- one ensemble member --------------------------------------------------------------
    def _member(self, context: Any, options: Mapping[str, Any],
                train: Mapping[str, tuple[np.ndarray, np.ndarray]],
                test: Mapping[str, tuple[np.ndarray, np.ndarray]], member: int
                ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        from ratiofit.plugins.losses.ncr import diagonal_triples, ncr_pairs, triple_names

        training = {k: options[k] for k in ("validation_fraction", "learning_rate", "patience",
                                            "batch_size", "epochs")}
        truth_names = tuple(options["truth"])
        reco_names = tuple(options["reco"])

        def seed(*keys: str | int) -> int:
            return int(context.rng("train", member, *keys).integers(2**31 - 1))

        logs: dict[str, np.ndarray] = {}
        record: dict[str, Any] = {"member": member, "training": {}}
        # Marginal (ncr.md Eq. 7): truth of (I) = reference, (III) = target; applied to (I).
        t1, r1 = train["sample_I"]
        t2, r2 = train["sample_II"]
        t3, _ = train["sample_III"]
        model, record["training"]["marginal"] = self._mlp(
            context, options, np.concatenate([t1, t3]),
            np.concatenate([np.zeros(len(t1)), np.ones(len(t3))]),
            [f"gen_{n}" for n in truth_names], training, seed("marginal"))
        logs["marginal"] = predict_logit(model, test["sample_I"][0])
        t3_test, r3_test = test["sample_III"]
        for scheme in options["schemes"]:
            if scheme == "2f":  # ncr.md Eq. 9: joint (x, x') over marginal x', (II) → (I)
                joint, rec_joint = self._mlp(
                    context, options, np.concatenate([np.hstack([r2, t2]), np.hstack([r1, t1])]),
                    np.concatenate([np.zeros(len(t2)), np.ones(len(t1))]),
                    [f"sim_{n}" for n in reco_names] + [f"gen_{n}" for n in truth_names],
                    training, seed(scheme, "joint"))
                marg, rec_marg = self._mlp(
                    context, options, np.concatenate([t2, t1]),
                    np.concatenate([np.zeros(len(t2)), np.ones(len(t1))]),
                    [f"gen_{n}" for n in truth_names], training, seed(scheme, "truth"))
                logs[scheme] = (predict_logit(joint, np.hstack([r3_test, t3_test]))
                                - predict_logit(marg, t3_test))
                record["training"][scheme] = {"joint": rec_joint, "truth": rec_marg}
                continue
            # NCR loss (ncr.md Eq. 13): (II) = reference p, (I) = target q.
            triples, labels = ncr_pairs(reference_reco=r2, reference_truth=t2,
                                        target_reco=r1, target_truth=t1,
                                        rng=context.rng("pairs", member, scheme))
            arch = context.registry.get("architecture", "ncr_trunk")
            arch_options = {**context.options_of("architecture", "ncr_trunk"), "scheme": scheme}
            names = triple_names(reco=reco_names, truth=truth_names)
            import keras

            keras.utils.set_random_seed(seed(scheme))
            model = arch.build(signature=signature_for(features=triples, names=names),
                               output_activation="linear", options=arch_options)
            record["training"][scheme] = fit_classifier(
                model=model, features=triples, labels=labels, training=training,
                seed=seed(scheme))
            loss = context.registry.get("loss", "ncr")
            logs[scheme] = np.asarray(loss.log_ratio(predict_logit(
                model, diagonal_triples(reco=r3_test, truth=t3_test))))
        return logs, record

    def _mlp(self, context: Any, options: Mapping[str, Any], features: np.ndarray,
             labels: np.ndarray, names: Sequence[str], training: Mapping[str, Any], seed: int
             ) -> tuple[Any, dict[str, Any]]:
        """An ``mlp`` (ReLU, ``marginal_hidden``) classifier trained by :func:`fit_classifier`."""
        import keras

        arch = context.registry.get("architecture", "mlp")
        arch_options = {**context.options_of("architecture", "mlp"),
                        "hidden": list(options["marginal_hidden"]), "activation": "relu"}
        keras.utils.set_random_seed(seed)
        model = arch.build(signature=signature_for(features=features, names=names),
                           output_activation="linear", options=arch_options)
        return model, fit_classifier(model=model, features=features, labels=labels,
                                     training=training, seed=seed)

    # -- figures --------------------------------------------------------------------------
    def _plots(self, outdir: Path, options: Mapping[str, Any],
               test: Mapping[str, tuple[np.ndarray, np.ndarray]],
               logs: Mapping[str, np.ndarray], edges: Mapping[str, np.ndarray]) -> None:
        from ratiofit_papers.studies.ncr_plots import comparison_figure, schemes_figure

        comparison_figure(path=outdir / "marginal_vs_conditional.png", test=test, logs=logs,
                          scheme=options["schemes"][0], edges=edges)
        if len(options["schemes"]) > 1:
            schemes_figure(path=outdir / "schemes.png", test=test, logs=logs,
                           schemes=options["schemes"], edges=edges)


def _summarise(members: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, dict[str, float]]]:
    """Mean and standard deviation over members of every numeric score per method."""
    methods = [m for m in members[0] if m not in ("member", "training")]
    out: dict[str, dict[str, dict[str, float]]] = {}
    for method in methods:
        out[method] = {}
        for key in members[0][method]:
            vals = np.array([m[method][key] for m in members], dtype=np.float64)
            out[method][key] = {"mean": float(vals.mean()),
                                "std": float(vals.std(ddof=1)) if len(vals) > 1 else 0.0}
    return out


@hookimpl
def ratiofit_studies() -> list[Any]:
    return [NCRStudy()]
