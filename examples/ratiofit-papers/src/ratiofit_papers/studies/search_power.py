"""Study ``search_power``: cuts vs bins vs the unbinned likelihood (guide-searches.md Fig. 4).

Pseudo-experiments under the background-only hypothesis (μ = 0) and under signal plus
background (μ = 1) are drawn from the spec's signal and background pools with
:func:`ratiofit.inference.generate_toy` (Poisson yields ν_s, ν_b). Every toy is tested
with five statistics, all the log of the simple likelihood ratio λ of μ = 1 against
μ = 0 (guide-searches.md Eq. 3.2), computed on the same toys:

``inclusive``
    the event count only (Eq. 3.1);
``fixed_cut``
    the count of events with r(y) = p_S/p_B ≥ ``cut`` (0.5 in the paper), i.e. a window
    in the reconstructed mass |Y₀ + Y₁| (r falls monotonically with |Y₀ + Y₁|);
``two_bins``
    counts in r ∈ [b₀, b₁) and [b₁, ∞) (b = 0.5, 2 in the paper), Eq. 3.6;
``many_bins``
    ``many_bins`` equal bins of r over ``many_bins_range`` ([0, 3], 20 bins in the paper;
    values above the range are counted in the last bin);
``optimal``
    the unbinned extended likelihood ratio of Eq. 3.8 with the exact per-event ratio
    r = p_S/p_B from the source's ``log_density`` (the optimal classifier);
``trained`` (with ``trained_classifier: true``)
    Eq. 3.8 with the ratio of an ``mlp`` classifier trained by
    :func:`~ratiofit.training.train_reweighter` on fresh events (reference = background,
    target = signal, class-balanced, so log w estimates log p_S/p_B without the prior
    correction of Eq. 3.12).

The expected per-bin yields S_b, B_b are the pools' fractions times ν_s, ν_b (the pools
are the population the toys are drawn from, so the binned models are exact for them).
Rejecting μ = 0 when log λ ≥ c traces power against type-I error as c varies.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ratiofit.hookspecs import hookimpl
from ratiofit.options import Option, OptionError
from ratiofit_papers.studies._searches import (
    RocCurve,
    binned_log_lambda,
    check_bumphunt_sample,
    check_positive,
    concatenate_toy_values,
    exact_log_ratio,
    log_lambda_unbinned,
    log_ratio_mass,
    roc_curve,
)

__all__ = ["SearchPower"]

METHODS = ("inclusive", "fixed_cut", "two_bins", "many_bins", "optimal")
#: Type-I errors at which the stored curves are tabulated (log-spaced, for figures).
CURVE_ALPHAS = np.unique(np.concatenate([np.geomspace(1e-4, 1.0, 81), np.linspace(0, 1, 51)]))


class SearchPower:
    """Power vs type-I error of counting, cut, binned and unbinned tests (Fig. 4)."""

    name = "search_power"
    options: Mapping[str, Option] = {
        "signal": Option(kind="str", default="signal",
                         doc="bumphunt signal sample (pool of signal events)"),
        "background": Option(kind="str", default="background",
                             doc="bumphunt background sample (pool of background events)"),
        "signal_yield": Option(kind="float", default=50.0, doc="expected signal events ν_s"),
        "background_yield": Option(kind="float", default=1000.0,
                                   doc="expected background events ν_b"),
        "n_toys": Option(kind="int", default=10000, minimum=10,
                         doc="pseudo-experiments per hypothesis (10⁴ in the paper)"),
        "cut": Option(kind="float", default=0.5, doc="fixed cut on r = p_S/p_B"),
        "two_bins": Option(kind="float_list", default=[0.5, 2.0],
                           doc="lower edges of the two bins in r"),
        "many_bins": Option(kind="int", default=20, minimum=1, doc="number of equal r bins"),
        "many_bins_range": Option(kind="float_list", default=[0.0, 3.0],
                                  doc="range of the equal r bins (overflow → last bin)"),
        "trained_classifier": Option(kind="bool", default=False,
                                     doc="add Eq. 3.8 with a classifier trained by ratiofit"),
        "train_features": Option(kind="str_list", default=["y0", "y1"],
                                 doc="features the trained classifier sees"),
        "n_train": Option(kind="int", default=200000, minimum=100,
                          doc="training events per class (fresh draws from the samples)"),
        "train_epochs": Option(kind="int", default=3, minimum=1, doc="training epochs"),
        "hidden": Option(kind="int_list", default=[10, 20, 50], minimum=1,
                         doc="mlp hidden layers (10, 20, 50 with ELU in the paper)"),
        "type_one_errors": Option(kind="float_list", default=[0.01, 0.05, 0.1, 0.2],
                                  minimum=0.0, maximum=1.0,
                                  doc="type-I errors at which the power is tabulated"),
        "figures": Option(kind="bool", default=True,
                          doc="draw the study's figures into its output directory"),
    }

    def check(self, *, options: Mapping[str, Any], samples: Mapping[str, Any],
              parameters: Any) -> None:
        """Reject unknown or non-bumphunt samples and inconsistent binnings."""
        check_bumphunt_sample(field="signal", name=options["signal"], samples=samples,
                              process="signal")
        check_bumphunt_sample(field="background", name=options["background"], samples=samples,
                              process="background")
        check_positive(options, "signal_yield", "background_yield", "cut")
        two = options["two_bins"]
        if len(two) != 2 or not 0 <= two[0] < two[1]:
            raise OptionError("two_bins", f"needs two increasing non-negative edges, got {two}")
        for feat in options["train_features"]:
            names = ["y0", "y1", *samples[options["signal"]].options.get("derived_features",
                                                                          [])]
            if feat not in names:
                raise OptionError("train_features", f"unknown feature {feat!r}; the signal "
                                                    f"sample has {names}")
        rng_ = options["many_bins_range"]
        if len(rng_) != 2 or not 0 <= rng_[0] < rng_[1]:
            raise OptionError("many_bins_range", f"needs [low, high] with 0 <= low < high, "
                                                 f"got {rng_}")

    def run(self, *, context: Any, options: Mapping[str, Any]) -> Mapping[str, Any]:
        """Toys, the five statistics, their ROC curves, a table and ``power.png``."""
        signal_pool = context.sample(options["signal"])
        background_pool = context.sample(options["background"])
        r_sig = np.exp(exact_log_ratio(context, options["signal"], signal_pool))
        r_bkg = np.exp(exact_log_ratio(context, options["background"], background_pool))
        unbinned = {"optimal": (r_sig, r_bkg)}
        training: dict[str, Any] | None = None
        if options["trained_classifier"]:
            reweighter = _train(context, options)
            unbinned["trained"] = (np.exp(reweighter.log_ratio(features=signal_pool)),
                                   np.exp(reweighter.log_ratio(features=background_pool)))
            meta = reweighter.metadata
            training = {k: meta.get(k) for k in ("epochs_run", "best_val_loss",
                                                 "train_seconds", "n_train")}
        nu_s, nu_b = float(options["signal_yield"]), float(options["background_yield"])
        n_toys = int(options["n_toys"])
        binnings = _binnings(options)
        methods = [*METHODS, *(["trained"] if "trained" in unbinned else [])]
        stats: dict[str, dict[str, np.ndarray]] = {m: {} for m in methods}
        from ratiofit.inference import generate_toy

        for hypothesis, mu in (("null", 0.0), ("alt", 1.0)):
            rng = context.rng("toys", hypothesis)
            toys = [generate_toy(signal_pool=signal_pool, background_pool=background_pool,
                                 signal_yield=nu_s, background_yield=nu_b, mu=mu, rng=rng)
                    for _ in range(n_toys)]
            for method, (rs, rb) in unbinned.items():
                values, index = concatenate_toy_values(toys, rs, rb)
                stats[method][hypothesis] = log_lambda_unbinned(
                    ratio=values, toy_index=index, n_toys=n_toys, signal_yield=nu_s,
                    background_yield=nu_b)
            ratio, index = concatenate_toy_values(toys, r_sig, r_bkg)
            for method, edges in binnings.items():
                s_b, b_b = _expected(edges, r_sig, r_bkg, nu_s, nu_b)
                counts = _counts(edges, ratio, index, n_toys)
                stats[method][hypothesis] = binned_log_lambda(counts=counts, signal=s_b,
                                                              background=b_b)
        curves = {m: roc_curve(stats[m]["null"], stats[m]["alt"]) for m in methods}
        result = _summary(curves, binnings, options, r_sig, r_bkg, nu_s, nu_b)
        if training is not None:
            result["training"] = training
        result["mass_window_of_cut"] = _mass_window(context, options)
        if options["figures"]:
            _figure(context.outdir / "power.png", curves, result)
        return result


def _train(context: Any, options: Mapping[str, Any]) -> Any:
    """An ``mlp`` S-vs-B classifier trained with ratiofit on fresh events (no θ)."""
    from ratiofit.parameters import ParameterSet
    from ratiofit.seeding import derive_seed
    from ratiofit.spec import TrainingSpec
    from ratiofit.training import train_reweighter
    from ratiofit_papers.studies._searches import source_events

    n = int(options["n_train"])
    target = source_events(context, options["signal"], n_events=n, theta={},
                           rng=context.rng("train", "signal"))
    reference = source_events(context, options["background"], n_events=n, theta={},
                              rng=context.rng("train", "background"))
    arch_options = {**context.options_of("architecture", "mlp"),
                    "hidden": list(options["hidden"]), "activation": "elu"}
    epochs = int(options["train_epochs"])
    training = TrainingSpec(epochs=epochs, batch_size=512, learning_rate=0.002,
                            validation_fraction=0.1, patience=epochs, checkpoint=False)
    return train_reweighter(reference=reference, target=target, parameters=ParameterSet(),
                            architecture=context.registry.get("architecture", "mlp"),
                            architecture_options=arch_options,
                            loss=context.registry.get("loss", "bce"), training=training,
                            seed=derive_seed(context.seed, "train"),
                            features=list(options["train_features"]))


def _binnings(options: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Edges in r per binned method; the last edge is +∞ (overflow kept)."""
    lo, hi = options["many_bins_range"]
    many = np.linspace(lo, hi, int(options["many_bins"]) + 1)
    many[-1] = np.inf
    return {"inclusive": np.array([-np.inf, np.inf]),
            "fixed_cut": np.array([float(options["cut"]), np.inf]),
            "two_bins": np.array([*options["two_bins"], np.inf], dtype=np.float64),
            "many_bins": many}


def _expected(edges: np.ndarray, r_sig: np.ndarray, r_bkg: np.ndarray, nu_s: float,
              nu_b: float) -> tuple[np.ndarray, np.ndarray]:
    """S_b, B_b: pool fractions in each bin times the yields (edges may be ±∞)."""
    k = len(edges) - 1

    def fractions(r: np.ndarray) -> np.ndarray:
        b = np.searchsorted(edges, r, side="right") - 1
        return np.bincount(b[(b >= 0) & (b < k)], minlength=k) / len(r)

    s, b = fractions(r_sig) * nu_s, fractions(r_bkg) * nu_b
    if np.any(b <= 0):
        raise OptionError("many_bins", f"a bin of r holds no background pool event (edges "
                                       f"{edges.tolist()}); use fewer bins or a larger pool")
    return s, b


def _counts(edges: np.ndarray, ratio: np.ndarray, index: np.ndarray, n_toys: int
            ) -> np.ndarray:
    """``[n_toys, K]`` counts per bin (events outside the edges are dropped)."""
    k = len(edges) - 1
    b = np.searchsorted(edges, ratio, side="right") - 1
    inside = (b >= 0) & (b < k)
    flat = np.bincount(index[inside] * k + b[inside], minlength=n_toys * k)
    return flat.reshape(n_toys, k).astype(np.float64)


def _summary(curves: Mapping[str, RocCurve], binnings: Mapping[str, np.ndarray],
             options: Mapping[str, Any], r_sig: np.ndarray, r_bkg: np.ndarray, nu_s: float,
             nu_b: float) -> dict[str, Any]:
    alphas = [float(a) for a in options["type_one_errors"]]
    methods: dict[str, Any] = {}
    for m, c in curves.items():
        entry: dict[str, Any] = {
            "power": {str(a): c.power_at(a) for a in alphas},
            "power_error": {str(a): c.power_error(a) for a in alphas},
            "area": c.area(),
            "curve_type_one_error": CURVE_ALPHAS.tolist(),
            "curve_power": [c.power_at(float(a)) for a in CURVE_ALPHAS],
        }
        if m in binnings:
            edges = binnings[m]
            s_b, b_b = _expected(edges, r_sig, r_bkg, nu_s, nu_b)
            entry.update({"edges": [e if math.isfinite(e) else None for e in edges.tolist()],
                          "signal_per_bin": s_b.tolist(), "background_per_bin": b_b.tolist()})
        methods[m] = entry
    return {"signal_yield": nu_s, "background_yield": nu_b, "n_toys": int(options["n_toys"]),
            "pool_sizes": {"signal": len(r_sig), "background": len(r_bkg)},
            "type_one_errors": alphas, "methods": methods}


def _mass_window(context: Any, options: Mapping[str, Any]) -> float | None:
    """Half-width w of the |Y₀ + Y₁| < w window equivalent to r ≥ cut (fixed σ only).

    Solves r(u | σ) = cut with the mass-only ratio (:func:`log_ratio_mass`); ``None`` when
    σ varies per event (then no single window corresponds to the cut).
    """
    from scipy.optimize import brentq

    sigma = context.spec.samples[options["signal"]].options.get("sigma", 0.08)
    if isinstance(sigma, list):
        sigma = sigma[0] if len(set(map(str, sigma))) == 1 else None
    if not isinstance(sigma, int | float):
        return None
    cut = math.log(float(options["cut"]))

    def excess(u: float) -> float:
        return float(log_ratio_mass(np.array([u]), float(sigma))[0]) - cut

    if excess(0.0) < 0 or excess(0.5) > 0:
        return None
    return float(brentq(excess, 0.0, 0.5, xtol=1e-10))


def _figure(path: Path, curves: Mapping[str, RocCurve], result: Mapping[str, Any]) -> None:
    """Power vs type-I error in the layout of guide-searches.md Fig. 4."""
    plot_power_curves(path, {m: (np.asarray(result["methods"][m]["curve_type_one_error"]),
                                 np.asarray(result["methods"][m]["curve_power"]))
                             for m in curves},
                      title=f"ν_s = {result['signal_yield']:g}, "
                            f"ν_b = {result['background_yield']:g}, "
                            f"{result['n_toys']} toys per hypothesis")


LABELS = {"inclusive": "Inclusive", "fixed_cut": "Fixed cut", "two_bins": "Two bins",
          "many_bins": "Many bins", "optimal": "Optimal (Eq. 3.8)",
          "trained": "Trained classifier (Eq. 3.8)"}


def plot_power_curves(path: Path, curves: Mapping[str, tuple[np.ndarray, np.ndarray]], *,
                      title: str) -> None:
    """Draw power against type-I error curves (shared with docs/searches_tables.py).

    Parameters
    ----------
    path
        Output PNG.
    curves
        Method → (type-I errors, power).
    title
        Figure title.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import mplhep

    plt.style.use(mplhep.style.ROOT)
    fig, ax = plt.subplots(figsize=(7, 6))
    for m, (alpha, power) in curves.items():
        ax.step(alpha, power, where="post", label=LABELS.get(m, m))
    ax.plot([0, 1], [0, 1], ls=":", color="grey", label="random guess")
    ax.axvline(0.05, ls=":", color="black")
    ax.set_xlabel("type I error")
    ax.set_ylabel("power (1 − type II error)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_title(title, fontsize=11)
    ax.legend(fontsize=11, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


@hookimpl
def ratiofit_studies() -> list[Any]:
    return [SearchPower()]
