"""Study ``search_parameterised_sigma``: a classifier parameterised in σ, profiled in a fit.

guide-searches.md Sec. 4.3 and Fig. 7. Three steps:

1. **Training.** A classifier f(u, σ) of signal against background in the reconstructed
   mass u = Y₀ + Y₁ (as in the paper, Fig. 3 and 7), trained with ratiofit's
   :func:`~ratiofit.training.train_reweighter` on events at the discrete
   σ ∈ ``train_sigmas`` (0.02, 0.04, 0.08, 0.16, 0.32 in the paper), with
   reference = background (label 0) and target = signal (label 1), so
   log w(u, σ) = log p_S(u|σ)/p_B(u) (DESIGN.md convention). The training pairs each
   background event with a σ drawn from the signal events (DCTR pairing); that is exact
   here because the background density of u is uniform for every σ.
2. **Interpolation check** (Fig. 7 left) at σ ∈ ``test_sigmas`` not seen in training
   (0.03, 0.06): RMSE of log w against the exact log r(u|σ) = log w_{√2σ}(u) over
   signal events and over background events in the signal region (exact r > 0.1,
   where the likelihood uses them), and the ROC AUC of the network and of the exact
   ratio on the same test events.
3. **Fits.** (a) Fig. 7 right: for each true σ in ``true_sigmas``, pseudo-experiments
   (ν_b background plus μν_s signal, ``mu_true`` = 0.1, |Y| ≈ 10⁴ as in the paper) are
   fitted in μ with the classifier evaluated at a chosen σ' (not profiled), for every
   σ' in ``scan_sigmas``. A wrong σ' biases μ̂ by a response factor E[μ̂]/μ, so the
   precision compared is that of the calibrated estimate, std(μ̂)·μ/E[μ̂]; it is smallest
   near σ' = σ. (b) σ profiled: the unbinned extended likelihood of
   :mod:`ratiofit.inference.costs` with σ a nuisance constrained by an auxiliary
   measurement N(σ_aux, ``constraint_width``) (σ_aux drawn around the true σ per toy),
   compared with σ fixed at its true value and at ``wrong_sigma``; coverage of the 68%
   MINOS interval of μ over ``n_profile_toys`` toys.

How 3(b) uses :class:`~ratiofit.inference.ExtendedUnbinnedNLL`: that cost varies the
*background* shape, p_b(x|θ) = p_b0(x)·w(x, θ)/Z(θ), with a fixed signal ratio. Here σ
changes the *signal* shape. With p_b0 = p_B (the uniform background) the roles are
exchanged exactly: the cost's "background" term is our signal (w = the parameterised
classifier, Z(σ) = E_B[w(u, σ)] over background events keeps it normalised, its yield
ν_s times a free :class:`~ratiofit.inference.NormFactor` named ``signal_strength`` = μ),
and its "signal" term is our background (log r = 0, yield ν_b, its strength fixed at 1).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ratiofit.hookspecs import hookimpl
from ratiofit.options import Option, OptionError
from ratiofit_papers.studies._searches import (
    auc,
    binomial_error,
    check_bumphunt_sample,
    check_positive,
    fit_signal_strength,
    log_ratio_mass,
    profile_interval,
    source_events,
)

__all__ = ["SearchParameterisedSigma"]

MASS = "y0_plus_y1"
_BACKGROUND_STRENGTH = "background_strength"
_SIGNAL_STRENGTH = "signal_strength"


class SearchParameterisedSigma:
    """Parameterised classifier f(u, σ): training, interpolation check, profiled fits."""

    name = "search_parameterised_sigma"
    options: Mapping[str, Option] = {
        "signal": Option(kind="str", default="signal",
                         doc="bumphunt signal sample whose option sigma names the parameter"),
        "background": Option(kind="str", default="background",
                             doc="bumphunt background sample, same σ parameter"),
        "train_sigmas": Option(kind="float_list", default=[0.02, 0.04, 0.08, 0.16, 0.32],
                               minimum=1e-6, doc="σ values of the training events"),
        "n_train": Option(kind="int", default=100000, minimum=100,
                          doc="training events per σ and class"),
        "hidden": Option(kind="int_list", default=[10, 20, 50], minimum=1,
                         doc="mlp hidden layers (10, 20, 50 in the paper)"),
        "activation": Option(kind="str", default="elu",
                             choices=["relu", "gelu", "swish", "tanh", "elu"],
                             doc="hidden activation (ELU in the paper)"),
        "epochs": Option(kind="int", default=5, minimum=1, doc="training epochs"),
        "batch_size": Option(kind="int", default=256, minimum=1, doc="training batch size"),
        "learning_rate": Option(kind="float", default=0.002, minimum=0.0,
                                doc="Adam learning rate (cosine decay)"),
        "test_sigmas": Option(kind="float_list", default=[0.03, 0.06], minimum=1e-6,
                              doc="σ values not seen in training for the check"),
        "n_test": Option(kind="int", default=100000, minimum=100,
                         doc="test events per σ and class"),
        "signal_yield": Option(kind="float", default=10000.0, doc="ν_s at μ = 1"),
        "background_yield": Option(kind="float", default=9000.0, doc="ν_b"),
        "mu_true": Option(kind="float", default=0.1, minimum=0.0,
                          doc="true signal strength of the pseudo-experiments"),
        "pool_signal": Option(kind="int", default=100000, minimum=100,
                              doc="signal pool events per true σ"),
        "pool_background": Option(kind="int", default=200000, minimum=100,
                                  doc="background pool events per true σ"),
        "true_sigmas": Option(kind="float_list", default=[0.04, 0.08, 0.16], minimum=1e-6,
                              doc="true σ of the pseudo-experiments in the σ' scan"),
        "scan_sigmas": Option(kind="float_list",
                              default=[0.02, 0.03, 0.04, 0.06, 0.08, 0.11, 0.16, 0.22, 0.32],
                              minimum=1e-6, doc="σ' at which the classifier is evaluated"),
        "n_scan_toys": Option(kind="int", default=50, minimum=2,
                              doc="pseudo-experiments per true σ in the scan"),
        "profile_sigma_true": Option(kind="float", default=0.06, minimum=1e-6,
                                     doc="true σ of the profiled-fit pseudo-experiments"),
        "constraint_width": Option(kind="float", default=0.01, minimum=1e-6,
                                   doc="width of the normal constraint on σ"),
        "wrong_sigma": Option(kind="float", default=0.08, minimum=1e-6,
                              doc="σ at which the 'fixed, wrong σ' fit holds the classifier"),
        "n_profile_toys": Option(kind="int", default=100, minimum=1,
                                 doc="pseudo-experiments of the profiled fit"),
        "grid_points": Option(kind="int", default=33, minimum=4,
                              doc="σ nodes of the log w interpolation grid in the fit"),
        "figures": Option(kind="bool", default=True,
                          doc="draw the study's figures into its output directory"),
    }

    def check(self, *, options: Mapping[str, Any], samples: Mapping[str, Any],
              parameters: Any) -> None:
        """Samples, the σ parameter and every σ value inside the parameter's range."""
        names = []
        for field, process in (("signal", "signal"), ("background", "background")):
            check_bumphunt_sample(field=field, name=options[field], samples=samples,
                                  process=process, features=[MASS])
            sigma = samples[options[field]].options.get("sigma")
            if not isinstance(sigma, str):
                raise OptionError(field, f"sample {options[field]!r} must set option sigma to "
                                         f"a parameter name (σ is the classifier's θ)")
            names.append(sigma)
        if names[0] != names[1]:
            raise OptionError("background", f"signal and background vary different σ "
                                            f"parameters ({names[0]!r}, {names[1]!r})")
        if names[0] not in parameters:
            raise OptionError("signal", f"σ parameter {names[0]!r} is not defined")
        p = parameters[names[0]]
        check_positive(options, "signal_yield", "background_yield")
        for field in ("train_sigmas", "test_sigmas", "true_sigmas", "scan_sigmas"):
            values = options[field]
            if not values:
                raise OptionError(field, "needs at least one value")
            bad = [v for v in values if not p.low <= v <= p.high]
            if bad:
                raise OptionError(field, f"values {bad} leave the range [{p.low}, {p.high}] of "
                                         f"parameter {p.name!r}")
        for field in ("profile_sigma_true", "wrong_sigma"):
            if not p.low <= options[field] <= p.high:
                raise OptionError(field, f"{options[field]} leaves the range [{p.low}, "
                                         f"{p.high}] of parameter {p.name!r}")
        if len(options["train_sigmas"]) < 2:
            raise OptionError("train_sigmas", "a parameterised classifier needs at least two "
                                              "training values of σ")

    # -- run -------------------------------------------------------------------------------
    def run(self, *, context: Any, options: Mapping[str, Any]) -> Mapping[str, Any]:
        """Train, check at unseen σ, scan σ' and profile σ; writes two figures."""
        sigma_name = context.spec.samples[options["signal"]].options["sigma"]
        reweighter = self._train(context, options, sigma_name)
        reweighter.save(context.outdir / "reweighter")
        partial: dict[str, Any] = {"training": _training_summary(reweighter)}

        def checkpoint(key: str, value: Any) -> Any:
            # Each phase's numbers are kept in partial.json as soon as they exist.
            partial[key] = value
            (context.outdir / "partial.json").write_text(json.dumps(partial))
            return value

        check = checkpoint("interpolation",
                           _interpolation_check(context, options, reweighter, sigma_name))
        pools: dict[float, tuple[Any, Any]] = {}
        for s in [*options["true_sigmas"], options["profile_sigma_true"]]:
            if s not in pools:
                pools[s] = _pools(context, options, sigma_name, s)
        scan = checkpoint("scan", _sigma_scan(context, options, reweighter, sigma_name, pools))
        profile = _profile(context, options, reweighter, sigma_name,
                           pools[options["profile_sigma_true"]])
        result = {"training": _training_summary(reweighter), "interpolation": check,
                  "scan": scan, "profile": profile, "sigma_parameter": sigma_name,
                  "signal_yield": float(options["signal_yield"]),
                  "background_yield": float(options["background_yield"]),
                  "mu_true": float(options["mu_true"])}
        if options["figures"]:
            plot_interpolation(context.outdir / "interpolation.png", check)
            plot_scan(context.outdir / "sigma_scan.png", scan)
        return result

    def _train(self, context: Any, options: Mapping[str, Any], sigma_name: str) -> Any:
        """f(u, σ) on ``n_train`` events per σ and class (reference background)."""
        from ratiofit.spec import TrainingSpec
        from ratiofit.training import train_reweighter

        n = int(options["n_train"])
        sig = np.repeat(np.asarray(options["train_sigmas"], dtype=np.float64), n)
        target = source_events(context, options["signal"], n_events=len(sig),
                               theta={sigma_name: sig}, rng=context.rng("train", "signal"))
        reference = source_events(context, options["background"], n_events=len(sig),
                                  theta={sigma_name: sig},
                                  rng=context.rng("train", "background"))
        arch = context.registry.get("architecture", "mlp")
        arch_options = {**context.options_of("architecture", "mlp"),
                        "hidden": list(options["hidden"]), "activation": options["activation"]}
        training = TrainingSpec(epochs=int(options["epochs"]),
                                batch_size=int(options["batch_size"]),
                                learning_rate=float(options["learning_rate"]),
                                validation_fraction=0.1, patience=int(options["epochs"]),
                                checkpoint=False)
        from ratiofit.seeding import derive_seed

        return train_reweighter(reference=reference, target=target,
                                parameters=context.spec.parameters.subset([sigma_name]),
                                architecture=arch, architecture_options=arch_options,
                                loss=context.registry.get("loss", "bce"), training=training,
                                seed=derive_seed(context.seed, "train"), features=[MASS])


def _training_summary(reweighter: Any) -> dict[str, Any]:
    meta = reweighter.metadata
    return {k: meta.get(k) for k in ("epochs_run", "best_epoch", "best_val_loss",
                                     "train_seconds", "n_train", "n_validation")}


def _mass(events: Any) -> np.ndarray:
    return np.asarray(events.feature_columns([MASS])[:, 0])


def _interpolation_check(context: Any, options: Mapping[str, Any], reweighter: Any,
                         sigma_name: str) -> dict[str, Any]:
    """RMSE and AUC of f(u, σ) against the exact ratio at test (and training) σ."""
    n = int(options["n_test"])
    grid = np.linspace(-0.5, 0.5, 401)[1:-1]
    edges = np.linspace(-0.5, 0.5, 51)
    out: dict[str, Any] = {"u_grid": grid.tolist(), "edges": edges.tolist(), "points": {}}
    test = [("test", s) for s in options["test_sigmas"]]
    train = [("train", s) for s in options["train_sigmas"]]
    for kind, s in [*test, *train]:
        sig = source_events(context, options["signal"], n_events=n, theta={sigma_name: s},
                            rng=context.rng("test", "signal", repr(s)))
        bkg = source_events(context, options["background"], n_events=n, theta={sigma_name: s},
                            rng=context.rng("test", "background", repr(s)))
        u_s, u_b = _mass(sig), _mass(bkg)
        nn_s = reweighter.log_ratio(features=sig, theta={sigma_name: s})
        nn_b = reweighter.log_ratio(features=bkg, theta={sigma_name: s})
        ex_s, ex_b = log_ratio_mass(u_s, s), log_ratio_mass(u_b, s)
        region = ex_b > math.log(0.1)
        h_s = np.histogram(u_s, bins=edges)[0].astype(np.float64)
        h_b = np.histogram(u_b, bins=edges)[0].astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            binned = np.where(h_b > 0, h_s / h_b, np.nan)
            binned_err = binned * np.sqrt(1 / h_s + 1 / h_b)
        auc_network, auc_exact = auc(nn_s, nn_b), auc(ex_s, ex_b)
        entry = {
            "sigma": float(s), "seen_in_training": kind == "train",
            "rmse_log_ratio_signal": float(np.sqrt(np.mean((nn_s - ex_s) ** 2))),
            "rmse_log_ratio_background_signal_region":
                float(np.sqrt(np.mean((nn_b[region] - ex_b[region]) ** 2))),
            "mean_bias_log_ratio_signal": float(np.mean(nn_s - ex_s)),
            "auc_network": auc_network, "auc_exact": auc_exact,
            # Var(AUC) ≤ A(1 − A)/min(n_S, n_B) for any continuous score (Birnbaum–Klose
            # bound); both AUCs use the same events, so their difference is far more
            # precise than either.
            "auc_error_bound": math.sqrt(auc_exact * (1 - auc_exact) / n),
            "curve_network": reweighter.log_ratio(features=grid[:, None],
                                                  theta={sigma_name: s}).tolist(),
            "curve_exact": log_ratio_mass(grid, s).tolist(),
            "binned_ratio": [None if not math.isfinite(v) else float(v) for v in binned],
            "binned_ratio_error": [None if not math.isfinite(v) else float(v)
                                   for v in binned_err],
        }
        out["points"][f"{s:g}"] = entry
    return out


def _pools(context: Any, options: Mapping[str, Any], sigma_name: str, sigma: float
           ) -> tuple[Any, Any]:
    """Signal and background pools at the true σ for the pseudo-experiments."""
    sig = source_events(context, options["signal"], n_events=int(options["pool_signal"]),
                        theta={sigma_name: sigma}, rng=context.rng("pool", "signal", repr(sigma)))
    bkg = source_events(context, options["background"],
                        n_events=int(options["pool_background"]), theta={sigma_name: sigma},
                        rng=context.rng("pool", "background", repr(sigma)))
    return sig, bkg


def _sigma_scan(context: Any, options: Mapping[str, Any], reweighter: Any, sigma_name: str,
                pools: Mapping[float, tuple[Any, Any]]) -> dict[str, Any]:
    """Fig. 7 right: spread of μ̂ and interval width when testing with f(·, σ')."""
    from ratiofit.inference import generate_toy

    nu_s, nu_b = float(options["signal_yield"]), float(options["background_yield"])
    mu_true = float(options["mu_true"])
    scan = [float(s) for s in options["scan_sigmas"]]
    out: dict[str, Any] = {"scan_sigmas": scan, "true": {}}
    for s_true in options["true_sigmas"]:
        sig, bkg = pools[s_true]
        rng = context.rng("scan", repr(s_true))
        toys = [generate_toy(signal_pool=sig, background_pool=bkg, signal_yield=nu_s,
                             background_yield=nu_b, mu=mu_true, rng=rng)
                for _ in range(int(options["n_scan_toys"]))]
        rows: dict[str, list[dict[str, float]]] = {"network": [], "exact": []}
        for s in scan:
            w_sig = np.exp(reweighter.log_ratio(features=sig, theta={sigma_name: s}))
            w_bkg = np.exp(reweighter.log_ratio(features=bkg, theta={sigma_name: s}))
            # Normalised as ExtendedUnbinnedNLL does: p_S(u|σ') = p_B(u)·w(u, σ')/Z(σ'),
            # Z = E_B[w] over the background pool.
            z = float(np.mean(w_bkg))
            ratios = {
                "network": (w_sig / z, w_bkg / z),
                "exact": (np.exp(log_ratio_mass(_mass(sig), s)),
                          np.exp(log_ratio_mass(_mass(bkg), s)))}
            for label, (r_s, r_b) in ratios.items():
                rows[label].append(_fit_toys(toys, r_s, r_b, nu_s, nu_b, mu_true) | {
                    "sigma_prime": s})
        out["true"][f"{s_true:g}"] = rows
    return out


def _fit_toys(toys: Sequence[Any], r_sig: np.ndarray, r_bkg: np.ndarray, nu_s: float,
              nu_b: float, mu_true: float) -> dict[str, float]:
    """μ̂ and 68% intervals of every toy with fixed per-event ratios; summary numbers."""
    mu_hat, width, covered = [], [], []
    for toy in toys:
        ratio = np.concatenate([r_sig[toy.signal_index], r_bkg[toy.background_index]])
        m = fit_signal_strength(ratio=ratio, signal_yield=nu_s, background_yield=nu_b)
        lo, hi = profile_interval(ratio=ratio, signal_yield=nu_s, background_yield=nu_b,
                                  mu_hat=m)
        mu_hat.append(m)
        width.append(hi - lo)
        covered.append(lo <= mu_true <= hi)
    mh, w = np.asarray(mu_hat), np.asarray(width)
    n = len(mh)
    mean, std = float(mh.mean()), float(mh.std(ddof=1))
    mean_err, std_err = std / math.sqrt(n), std / math.sqrt(2 * (n - 1))
    # With f(·, σ') ≠ the true ratio, μ̂ is biased by a response factor E[μ̂]/μ (the ratio
    # is normalised, so μ = 0 still gives μ̂ ≈ 0). A calibrated measurement divides by it:
    # its uncertainty std(μ̂)·μ/E[μ̂] is the precision that Fig. 7 right compares.
    calibrated = std * mu_true / mean if mean > 0 else math.nan
    calibrated_err = calibrated * math.hypot(std_err / std, mean_err / mean) \
        if mean > 0 else math.nan
    return {"mean_mu_hat": mean, "mean_mu_hat_error": mean_err, "std_mu_hat": std,
            "std_mu_hat_error": std_err, "calibrated_std": calibrated,
            "calibrated_std_error": calibrated_err, "mean_half_width": float(w.mean() / 2),
            "coverage": float(np.mean(covered))}


def _profile(context: Any, options: Mapping[str, Any], reweighter: Any, sigma_name: str,
             pools: tuple[Any, Any]) -> dict[str, Any]:
    """σ profiled (constrained) vs fixed at truth vs fixed wrong, with ExtendedUnbinnedNLL."""
    from iminuit import Minuit

    from ratiofit.inference import (
        ExtendedUnbinnedNLL,
        InferenceError,
        LogRatioGrid,
        NormFactor,
        Nuisance,
        ReferenceNormalisation,
        generate_toy,
    )

    sig, bkg = pools
    nu_s, nu_b = float(options["signal_yield"]), float(options["background_yield"])
    mu_true = float(options["mu_true"])
    s_true, width = float(options["profile_sigma_true"]), float(options["constraint_width"])
    wrong = float(options["wrong_sigma"])
    p = reweighter.parameters[sigma_name]
    limits = (max(p.low, min(s_true, wrong) - 6 * width), min(p.high, max(s_true, wrong)
                                                              + 6 * width))
    points = int(options["grid_points"])
    grids = [LogRatioGrid.build(reweighter, pool, name=sigma_name, points=points, bounds=limits)
             for pool in (sig, bkg)]
    base = Nuisance(sigma_name, nominal=s_true, sigma=width, limits=limits)
    reference = ReferenceNormalisation(reweighter, bkg, nuisances=[base], cache="grid",
                                       grid=grids[1])
    rng = context.rng("profile")
    variants: dict[str, list[dict[str, float]]] = {"profiled": [], "fixed_true": [],
                                                   "fixed_wrong": []}
    failed = dict.fromkeys(variants, 0)
    reasons: dict[str, list[str]] = {v: [] for v in variants}
    for _ in range(int(options["n_profile_toys"])):
        toy = generate_toy(signal_pool=sig, background_pool=bkg, signal_yield=nu_s,
                           background_yield=nu_b, mu=mu_true, rng=rng)
        aux = float(rng.normal(s_true, width))  # the auxiliary measurement of σ
        if not limits[0] < aux < limits[1]:
            raise OptionError("constraint_width", f"auxiliary σ = {aux} left the fit range "
                                                  f"{limits}")
        grid = LogRatioGrid.concatenate([grids[0].take(toy.signal_index),
                                         grids[1].take(toy.background_index)])
        for variant in variants:
            centre = {"profiled": aux, "fixed_true": s_true, "fixed_wrong": wrong}[variant]
            cost = ExtendedUnbinnedNLL(
                toy.data, reweighter=reweighter,
                nuisances=[Nuisance(sigma_name, nominal=centre, sigma=width, limits=limits)],
                # roles exchanged (module docstring): our background is the cost's signal
                signal_yield=nu_b, background_yield=nu_s,
                signal_log_ratio=np.zeros(len(toy.data)), reference=reference,
                norm=NormFactor(_SIGNAL_STRENGTH, sigma=None, nominal=max(mu_true, 1e-3)),
                poi=_BACKGROUND_STRENGTH, poi_start=1.0, cache="grid", data_grid=grid)
            # The cost's finite-difference Hessian gives wrong HESSE errors when a
            # parameter is fixed (measured: σ(μ) off by 2× against MINOS and a direct 1-D
            # profile); the grid-interpolated likelihood is smooth in float64, so MINUIT's
            # own second differences are reliable here.
            cost.has_hessian = False
            m = Minuit(cost, **cost.start)
            m.fixed[_BACKGROUND_STRENGTH] = True
            if variant != "profiled":
                m.fixed[sigma_name] = True
            try:
                m.migrad()
                fit = _minos(m, sigma_name)
            except (InferenceError, RuntimeError, ValueError) as exc:
                # A fit that fails is counted (as in ratiofit.inference.coverage) and its
                # reason kept; it neither covers nor misses.
                reasons[variant].append(f"{type(exc).__name__}: {exc}")
                fit = None
            if fit is None:
                failed[variant] += 1
                continue
            variants[variant].append(fit)
    out: dict[str, Any] = {"sigma_true": s_true, "constraint_width": width,
                           "wrong_sigma": wrong, "limits": list(limits),
                           "grid_points": points, "variants": {}}
    for variant, fits in variants.items():
        n = len(fits)
        mu_hat = np.array([f["mu_hat"] for f in fits])
        lo, hi = np.array([f["low"] for f in fits]), np.array([f["high"] for f in fits])
        cov = float(np.mean((lo <= mu_true) & (mu_true <= hi))) if n else math.nan
        out["variants"][variant] = {
            "n_valid": n, "n_failed": failed[variant],
            "failure_reasons": sorted(set(reasons[variant]))[:5],
            "mean_mu_hat": float(mu_hat.mean()) if n else math.nan,
            "mean_mu_hat_error": float(mu_hat.std(ddof=1) / math.sqrt(n)) if n > 1 else
            math.nan,
            "std_mu_hat": float(mu_hat.std(ddof=1)) if n > 1 else math.nan,
            "mean_width": float(np.mean(hi - lo)) if n else math.nan,
            "coverage": cov, "coverage_error": binomial_error(cov, n),
            "mean_sigma_hat": float(np.mean([f["sigma_hat"] for f in fits])) if n else math.nan,
            "first_fit": fits[0] if n else None,
        }
    return out


def _minos(m: Any, sigma_name: str) -> dict[str, float] | None:
    """HESSE and MINOS of μ after MIGRAD; ``None`` for an invalid fit or interval."""
    if not m.valid:
        return None
    m.hesse()
    try:
        m.minos(_SIGNAL_STRENGTH)
    except RuntimeError:
        return None
    me = m.merrors[_SIGNAL_STRENGTH]
    if not me.is_valid:
        return None
    mu = float(m.values[_SIGNAL_STRENGTH])
    return {"mu_hat": mu, "low": mu + float(me.lower), "high": mu + float(me.upper),
            "hesse_error": float(m.errors[_SIGNAL_STRENGTH]),
            "sigma_hat": float(m.values[sigma_name]),
            "sigma_error": float(m.errors[sigma_name])}


# -- figures ---------------------------------------------------------------------------------
def plot_interpolation(path: Path, check: Mapping[str, Any]) -> None:
    """Fig. 7 left: f(u, σ) at the unseen σ with the exact and binned ratios.

    Parameters
    ----------
    path
        Output PNG.
    check
        The ``interpolation`` part of the study result.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import mplhep

    plt.style.use(mplhep.style.ROOT)
    fig, ax = plt.subplots(figsize=(7, 5.5))
    u = np.asarray(check["u_grid"])
    edges = np.asarray(check["edges"])
    centres = 0.5 * (edges[1:] + edges[:-1])
    j = 0
    for key, entry in check["points"].items():
        if entry["seen_in_training"]:
            continue
        color = f"C{j}"
        j += 1
        ax.plot(u, np.exp(entry["curve_network"]), color=color,
                label=f"network, σ = {key} (unseen)")
        ax.plot(u, np.exp(entry["curve_exact"]), color=color, ls="--",
                label=f"exact, σ = {key}")
        binned = np.array([np.nan if v is None else v for v in entry["binned_ratio"]])
        err = np.array([np.nan if v is None else v for v in entry["binned_ratio_error"]])
        ax.errorbar(centres, binned, yerr=err, fmt="o", ms=3, color=color,
                    label=f"binned ratio, σ = {key}")
    ax.set_xlabel(r"$y = y_0 + y_1$")
    ax.set_ylabel(r"$p_S(y \mid \sigma) / p_B(y)$")
    ax.set_xlim(-0.5, 0.5)
    ax.legend(fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_scan(path: Path, scan: Mapping[str, Any]) -> None:
    """Fig. 7 right: calibrated uncertainty of μ against the σ' of the classifier.

    Parameters
    ----------
    path
        Output PNG.
    scan
        The ``scan`` part of the study result.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import mplhep

    plt.style.use(mplhep.style.ROOT)
    fig, ax = plt.subplots(figsize=(7, 5.5))
    for j, (key, rows) in enumerate(scan["true"].items()):
        color = f"C{j}"
        for label, style in (("network", "-o"), ("exact", ":")):
            x = [r["sigma_prime"] for r in rows[label]]
            y = [r["calibrated_std"] for r in rows[label]]
            e = [r["calibrated_std_error"] for r in rows[label]]
            if label == "network":
                ax.errorbar(x, y, yerr=e, fmt=style, color=color, ms=4,
                            label=f"f(·, σ'), true σ = {key}")
            else:
                ax.plot(x, y, style, color=color, label=f"exact r(·|σ'), true σ = {key}")
        ax.axvline(float(key), ls="--", color=color, lw=1)
    ax.set_xscale("log")
    ticks = [float(s) for s in scan["scan_sigmas"]]
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks], fontsize=11)
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    ax.set_xlabel("σ' of the classifier", fontsize=16)
    ax.set_ylabel(r"$\mu\,\sigma(\hat{\mu}) / E[\hat{\mu}]$", fontsize=16)
    ax.legend(fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


@hookimpl
def ratiofit_studies() -> list[Any]:
    return [SearchParameterisedSigma()]
