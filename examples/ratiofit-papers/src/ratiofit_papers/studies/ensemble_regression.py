"""Study ``ensemble_regression``: regression of θ from ensembles of N events with a
parameterised per-event classifier vs a per-ensemble network (ensembles.md Sec. III C 1,
Fig. 7).

The spec trains the parameterised reweighter f(x, θ) = p(x|θ)/p(x|θ₀) (Eq. 23; its target
sample varies θ uniformly, which is the prior p(θ)). The study draws ``test_ensembles``
ensembles of ``events_per_ensemble`` events, each at its own true θ ~ U(prior), from the
target sample's source, and estimates θ per ensemble with:

- ``likelihood_grid``: argmax of Σᵢ log f(xᵢ, θ) − N log Z(θ) on the grid (Eq. 24; the
  paper scans 20 points), refined by a parabola through the best point;
- ``likelihood``: the ``likelihood`` strategy (iminuit, continuous θ) on the first
  ``continuous_fits`` ensembles;
- ``classifier_loss`` / ``classifier_loss_bce``: the ``classifier_loss`` strategy's
  estimate (Eqs. 25–26) with the MLC / BCE loss;
- ``regression``: the posterior mean of the ``regression`` strategy (Eqs. 28–29);
- ``deepsets_regression``: a per-ensemble ``deepsets_ensemble`` network g_N trained with
  the MSE loss (Eq. 27) on ``regression_train_ensembles`` fresh ensembles, inputs and
  outputs standardised;
- references: the sample mean (the analytic MLE of a Gaussian mean, spread 1/√N) and the
  posterior mean computed with the exact density ratio (the optimal direct regression).

Reported per method: bias, spread (standard deviation) and RMSE of the estimate − true
θ overall and in bins of the true θ (Fig. 7's bands).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ratiofit.errors import DataError
from ratiofit.events import EventSet
from ratiofit.fitting import FitProblem
from ratiofit.hookspecs import hookimpl
from ratiofit.options import Option, resolve_options
from ratiofit.plugin_api import InputSignature
from ratiofit.plugins.strategies.classifier_loss import (
    classifier_loss_estimate,
    data_loss_table,
    parabola_extremum,
    reference_loss_table,
)
from ratiofit.plugins.strategies.regression import (
    ensemble_log_likelihood,
    log_normalisation,
    log_ratio_grid,
    posterior_moments,
    theta_grid,
)
from ratiofit_papers.ensembles.sampling import concatenated_feature_names
from ratiofit_papers.ensembles.studytools import (
    TRAINING_OPTION,
    check_training,
    invalid_option,
    plot_lines,
    training_spec,
)

METHODS = ("likelihood_grid", "likelihood", "classifier_loss", "classifier_loss_bce",
           "regression", "deepsets_regression")


class EnsembleRegression:
    """Bias and spread of ensemble regression methods vs the true θ."""

    name = "ensemble_regression"
    options: Mapping[str, Option] = {
        "reference": Option(kind="str", required=True,
                            doc="the reweighter's reference sample (θ₀), for Z(θ) and the "
                            "classifier-loss θ′ samples"),
        "target": Option(kind="str", required=True,
                         doc="the reweighter's target sample; its source makes the test "
                         "ensembles"),
        "parameter": Option(kind="str", required=True, doc="the regressed parameter"),
        "events_per_ensemble": Option(kind="int", default=100, minimum=1, doc="N"),
        "test_ensembles": Option(kind="int", default=2000, minimum=10,
                                 doc="test ensembles, true θ uniform in the prior range"),
        "grid_points": Option(kind="int", default=41, minimum=3,
                              doc="θ grid points for the grid methods"),
        "reference_events": Option(kind="int", default=100_000, minimum=100,
                                   doc="reference events used for Z(θ) and the θ′ samples"),
        "methods": Option(kind="str_list", default=list(METHODS),
                          doc=f"which of {', '.join(METHODS)} to run"),
        "continuous_fits": Option(kind="int", default=100, minimum=0,
                                  doc="ensembles fitted with the continuous likelihood "
                                  "strategy"),
        "continuous_reference_events": Option(kind="int", default=20_000, minimum=100,
                                              doc="reference events normalising each "
                                              "continuous fit (each MIGRAD step evaluates "
                                              "the network on all of them)"),
        "strategy_checks": Option(kind="int", default=3, minimum=0,
                                  doc="ensembles on which the registered regression and "
                                  "classifier_loss strategies are compared with the "
                                  "vectorised estimates"),
        "regression_train_ensembles": Option(kind="int", default=10_000, minimum=10,
                                             doc="training ensembles of the deep-sets g_N"),
        "regression_network": Option(kind="mapping", default={"phi": [64, 64], "latent": 32,
                                                              "head": [64, 64]},
                                     doc="deepsets_ensemble options of g_N"),
        "training": TRAINING_OPTION,
        "bins": Option(kind="int", default=10, minimum=1, doc="bins of the true θ"),
    }

    def check(self, *, options: Mapping[str, Any], samples: Mapping[str, Any],
              parameters: Any) -> None:
        """Validate sample, parameter and method references."""
        for key in ("reference", "target"):
            if options[key] not in samples:
                raise invalid_option(key, f"unknown sample {options[key]!r}")
        names = list(getattr(parameters, "names", parameters))
        if options["parameter"] not in names:
            raise invalid_option("parameter", f"unknown parameter {options['parameter']!r} "
                                 f"(have {names})")
        if options["parameter"] not in getattr(samples[options["target"]], "varied", []):
            raise invalid_option("target", f"sample {options['target']!r} must vary "
                                 f"{options['parameter']!r} per event (the training prior)")
        unknown = [m for m in options["methods"] if m not in METHODS]
        if unknown:
            raise invalid_option("methods", f"unknown method(s) {unknown}; use {list(METHODS)}")
        check_training(options["training"])

    def run(self, *, context: Any, options: Mapping[str, Any]) -> Mapping[str, Any]:
        """Estimate θ on every test ensemble with every method; summarise and plot."""
        rw = context.reweighter
        if rw is None:
            raise DataError("ensemble_regression needs the spec's reweighter (a 'reweighter' "
                            "section training f(x, θ))")
        name = options["parameter"]
        if list(rw.theta_names) != [name]:
            raise DataError(f"ensemble_regression: the reweighter is parameterised in "
                            f"{list(rw.theta_names)}, expected [{name!r}]")
        parameters = rw.parameters
        spec_target = context.spec.samples[options["target"]]
        prior = spec_target.theta[name]
        low, high = float(prior.low), float(prior.high)
        n_per, n_test = int(options["events_per_ensemble"]), int(options["test_ensembles"])
        methods = list(options["methods"])

        source = context.registry.get("source", spec_target.source)
        source_options = resolve_options(source.options, spec_target.options,
                                         where=spec_target.source)
        truth = context.rng("truth").uniform(low, high, n_test)
        x = self._generate(source, source_options, name=name, truth=truth, n_per=n_per,
                           rng=context.rng("test events"))  # [M, N, d]
        flat = x.reshape(n_test * n_per, -1)
        reference = context.sample(options["reference"])
        n_ref = min(int(options["reference_events"]), len(reference))
        reference = reference.take(context.rng("reference").permutation(len(reference))[:n_ref])

        grid = theta_grid(parameters=parameters, points=options["grid_points"],
                          ranges={name: (low, high)})
        axis = grid[:, 0]
        lw = log_ratio_grid(reweighter=rw, events=flat, grid=grid, names=[name])
        lw = lw.reshape(n_test, n_per, len(grid))
        lw_ref = log_ratio_grid(reweighter=rw, events=reference, grid=grid, names=[name])
        log_norm = log_normalisation(reference_log_ratio=lw_ref,
                                     reference_weights=reference.event_weights)
        loglike = ensemble_log_likelihood(log_ratio=lw, log_norm=log_norm)  # [M, K]
        estimates: dict[str, np.ndarray] = {}
        estimates["sample_mean"] = x[:, :, 0].mean(axis=1)
        exact = self._exact_log_likelihood(source, source_options, name=name, x=x, axis=axis)
        if exact is not None:
            estimates["exact_posterior_mean"] = posterior_moments(
                log_likelihood=exact, grid=grid)[0][:, 0]
        if "likelihood_grid" in methods:
            estimates["likelihood_grid"] = parabola_extremum(loglike, grid=axis,
                                                             maximum=True)[0]
        if "regression" in methods:
            estimates["regression"] = posterior_moments(log_likelihood=loglike,
                                                        grid=grid)[0][:, 0]
        for method, loss in (("classifier_loss", "mlc"), ("classifier_loss_bce", "bce")):
            if method in methods:
                ref_table = reference_loss_table(loss=loss, reference_log_ratio=lw_ref,
                                                 reference_weights=reference.event_weights)
                estimates[method] = np.concatenate([
                    classifier_loss_estimate(
                        data_table=data_loss_table(loss=loss, data_log_ratio=lw[i:i + 50]),
                        reference_table=ref_table, grid=axis)["theta"]
                    for i in range(0, n_test, 50)])
        partial: dict[str, np.ndarray] = {}
        if "likelihood" in methods and options["continuous_fits"]:
            small = reference.take(np.arange(min(len(reference),
                                                 options["continuous_reference_events"])))
            partial["likelihood"] = self._continuous(context, rw, x, small, name=name,
                                                     parameters=parameters,
                                                     n_fits=min(n_test,
                                                                options["continuous_fits"]))
        checks = self._strategy_checks(context, rw, x, reference, name=name,
                                       parameters=parameters, estimates=estimates,
                                       n_checks=min(n_test, options["strategy_checks"]),
                                       points=options["grid_points"])
        regression_training: dict[str, Any] = {}
        if "deepsets_regression" in methods:
            estimates["deepsets_regression"], regression_training = self._deepsets(
                context, options, source, source_options, name=name, low=low, high=high,
                n_per=n_per, x_test=x)
        edges = np.linspace(low, high, options["bins"] + 1)
        summary = {m: self._metrics(v, truth, edges) for m, v in estimates.items()}
        summary.update({m: self._metrics(v, truth[:len(v)], edges) for m, v in partial.items()})
        result: dict[str, Any] = {
            "parameter": name, "prior_range": [low, high], "events_per_ensemble": n_per,
            "test_ensembles": n_test, "grid_points": int(options["grid_points"]),
            "analytic_mle_spread": float(1.0 / np.sqrt(n_per)),
            "metrics": summary, "bin_edges": edges.tolist(), "strategy_checks": checks,
            "deepsets_training": regression_training,
            "continuous_vs_grid_max_abs_difference": None,
            "continuous_vs_grid_inside_grid": None}
        if "likelihood" in partial and "likelihood_grid" in estimates:
            n_cont = len(partial["likelihood"])
            difference = np.abs(partial["likelihood"] - estimates["likelihood_grid"][:n_cont])
            # A maximum beyond the outermost grid cell centre stops there on the grid but at
            # the parameter bound in the continuous fit; compare the others separately.
            best = np.argmax(loglike[:n_cont], axis=1)
            inside = (best > 0) & (best < len(axis) - 1)
            result["continuous_vs_grid_max_abs_difference"] = float(difference.max())
            result["continuous_vs_grid_inside_grid"] = {
                "ensembles": int(inside.sum()),
                "max_abs_difference": float(difference[inside].max()) if inside.any() else None}
        if "regression" in estimates and "deepsets_regression" in estimates:
            result["correlation_regression_vs_deepsets"] = float(
                np.corrcoef(estimates["regression"], estimates["deepsets_regression"])[0, 1])
        self._plot(context, result)
        return result

    # -- pieces -----------------------------------------------------------------------
    @staticmethod
    def _generate(source: Any, source_options: Mapping[str, Any], *, name: str,
                  truth: np.ndarray, n_per: int, rng: np.random.Generator) -> np.ndarray:
        """Ensembles ``[M, N, d]``: N events of the target's source at each true θ."""
        theta = np.repeat(truth, n_per)
        made = source.generate(n_events=len(theta), theta={name: theta}, options=source_options,
                               rng=rng)
        feats = made.features if isinstance(made, EventSet) else np.asarray(made, float)
        return np.asarray(feats, dtype=np.float64).reshape(len(truth), n_per, -1)

    @staticmethod
    def _exact_log_likelihood(source: Any, source_options: Mapping[str, Any], *, name: str,
                              x: np.ndarray, axis: np.ndarray) -> np.ndarray | None:
        """Σᵢ log p(xᵢ|θ_k) from the source's exact density, ``[M, K]`` (None without one)."""
        if not callable(getattr(source, "log_density", None)):
            return None
        flat = x.reshape(-1, x.shape[-1])
        cols = [np.asarray(source.log_density(features=flat, theta={name: float(t)},
                                              options=source_options)).reshape(x.shape[:2])
                .sum(axis=1) for t in axis]
        return np.stack(cols, axis=1)

    @staticmethod
    def _problem(rw: Any, x: np.ndarray, reference: EventSet, *, name: str,
                 parameters: Any) -> FitProblem:
        data = EventSet(features=x, feature_names=rw.signature.feature_names)
        return FitProblem(reweighter=rw, data=data, reference=reference, parameters=parameters,
                          start={name: 0.0})

    def _continuous(self, context: Any, rw: Any, x: np.ndarray, reference: EventSet, *,
                    name: str, parameters: Any, n_fits: int) -> np.ndarray:
        """The registered ``likelihood`` strategy (iminuit) on the first ``n_fits`` ensembles."""
        strategy = context.registry.get("strategy", "likelihood")
        opts = resolve_options(strategy.options, {"minos": False, "landscape_points": 0},
                               where="likelihood")
        return np.array([strategy.fit(problem=self._problem(rw, x[i], reference, name=name,
                                                            parameters=parameters),
                                      options=opts).values[name] for i in range(n_fits)])

    def _strategy_checks(self, context: Any, rw: Any, x: np.ndarray, reference: EventSet, *,
                         name: str, parameters: Any, estimates: Mapping[str, np.ndarray],
                         n_checks: int, points: int) -> dict[str, float]:
        """Largest |strategy − vectorised| over the first ensembles, per strategy."""
        out: dict[str, float] = {}
        for method, strategy_name, extra in (("regression", "regression", {}),
                                             ("classifier_loss", "classifier_loss",
                                              {"loss": "mlc"})):
            if method not in estimates or not n_checks:
                continue
            strategy = context.registry.get("strategy", strategy_name)
            opts = resolve_options(strategy.options, {"points": points, **extra},
                                   where=strategy_name)
            values = [strategy.fit(problem=self._problem(rw, x[i], reference, name=name,
                                                         parameters=parameters),
                                   options=opts).values[name] for i in range(n_checks)]
            out[method] = float(np.max(np.abs(np.asarray(values)
                                              - estimates[method][:n_checks])))
        return out

    @staticmethod
    def _deepsets(context: Any, options: Mapping[str, Any], source: Any,
                  source_options: Mapping[str, Any], *, name: str, low: float, high: float,
                  n_per: int, x_test: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
        """Per-ensemble direct regression g_N with MSE (ensembles.md Eq. 27)."""
        import keras

        n_train = int(options["regression_train_ensembles"])
        truth = context.rng("regression truth").uniform(low, high, n_train)
        x = EnsembleRegression._generate(source, source_options, name=name, truth=truth,
                                         n_per=n_per, rng=context.rng("regression events"))
        d = x.shape[-1]
        per_feature = x.reshape(-1, d)
        names = concatenated_feature_names(feature_names=[f"x{i}" for i in range(d)],
                                           ensemble_size=n_per)
        mean, std = per_feature.mean(axis=0), per_feature.std(axis=0)
        signature = InputSignature(feature_names=names,
                                   feature_mean=tuple(np.tile(mean, n_per).tolist()),
                                   feature_std=tuple(np.tile(std, n_per).tolist()),
                                   theta_names=(), theta_centre=(), theta_half_width=())
        arch = context.registry.get("architecture", "deepsets_ensemble")
        arch_options = resolve_options(arch.options, {**options["regression_network"],
                                                      "event_dim": d},
                                       where="deepsets_ensemble")
        training = training_spec(options["training"], n_examples=n_train)
        keras.utils.set_random_seed(int(context.rng("regression seed").integers(2**31)))
        model = arch.build(signature=signature, output_activation="linear",
                           options=arch_options)
        model.compile(optimizer=keras.optimizers.Adam(learning_rate=training.learning_rate),
                      loss="mse")
        centre, half = 0.5 * (low + high), 0.5 * (high - low)
        target = ((truth - centre) / half).astype(np.float32)  # standardised output
        stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=training.patience,
                                             restore_best_weights=True)
        n_val = round(training.validation_fraction * n_train)
        flat_x = x.reshape(n_train, -1).astype(np.float32)
        history = model.fit({"features": flat_x[n_val:]}, target[n_val:],
                            validation_data=({"features": flat_x[:n_val]}, target[:n_val]),
                            batch_size=training.batch_size, epochs=training.epochs,
                            callbacks=[stop], verbose=0)
        pred = np.asarray(model.predict({"features": x_test.reshape(len(x_test), -1)
                                         .astype(np.float32)}, batch_size=4096, verbose=0))
        val_loss = [float(v) for v in history.history.get("val_loss", [])]
        return centre + half * pred.ravel().astype(np.float64), {
            "epochs_run": len(val_loss), "best_val_loss": min(val_loss) if val_loss else None,
            "train_ensembles": n_train - n_val, "batch_size": training.batch_size}

    @staticmethod
    def _metrics(estimate: np.ndarray, truth: np.ndarray, edges: np.ndarray) -> dict[str, Any]:
        residual = np.asarray(estimate) - truth
        which = np.clip(np.digitize(truth, edges) - 1, 0, len(edges) - 2)
        per_bin: dict[str, list[Any]] = {"mean_estimate": [], "spread": [], "bias": [],
                                         "count": []}
        for b in range(len(edges) - 1):
            sel = which == b
            per_bin["count"].append(int(sel.sum()))
            per_bin["mean_estimate"].append(float(np.mean(estimate[sel])) if sel.any() else None)
            per_bin["spread"].append(float(np.std(estimate[sel])) if sel.sum() > 1 else None)
            per_bin["bias"].append(float(np.mean(residual[sel])) if sel.any() else None)
        return {"n": len(residual), "bias": float(residual.mean()),
                "bias_error": float(residual.std() / np.sqrt(len(residual))),
                "spread": float(residual.std()), "rmse": float(np.sqrt(np.mean(residual ** 2))),
                "per_bin": per_bin}

    @staticmethod
    def _plot(context: Any, result: Mapping[str, Any]) -> None:
        edges = np.asarray(result["bin_edges"])
        centres = 0.5 * (edges[:-1] + edges[1:])
        lines = {}
        for method, m in result["metrics"].items():
            est = m["per_bin"]["mean_estimate"]
            if m["n"] == result["test_ensembles"] and None not in est:
                lines[f"{method} (σ={m['spread']:.3f})"] = (centres, np.asarray(est))
        lines["truth"] = (centres, centres)
        plot_lines(context.outdir / "regression.png", lines=lines,
                   xlabel=f"true {result['parameter']}",
                   ylabel=f"mean predicted {result['parameter']}")


@hookimpl
def ratiofit_studies() -> list[Any]:
    return [EnsembleRegression()]
