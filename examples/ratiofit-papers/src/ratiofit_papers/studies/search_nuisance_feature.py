"""Study ``search_nuisance_feature``: the μ interval with and without σ (guide-searches.md Fig. 5).

Per-event resolutions σ are drawn uniformly (the spec samples' θ, [0, 0.29] in the
paper) and recorded as the feature ``sigma``. Two classifiers are compared, both exact
(the paper's networks approximate them):

``with_sigma``
    uses the reconstructed mass u = Y₀ + Y₁ and σ: r(u | σ) = w_{√2σ}(u), the wrapped
    normal over the uniform background (see ``_searches`` for the derivation from the
    model of Sec. 2);
``without_sigma``
    uses u only: r(u) = p_S(u)/p_B(u) with σ marginalised over its uniform prior
    (closed form with the exponential integral).

σ carries no signal information by itself (its distribution is the same for signal and
background), but it tells each event's resolution — a "nuisance feature" (Sec. 3.3).
Each of ``n_toys`` pseudo-experiments (Poisson ν_b background plus μν_s signal events,
resampled from the pools by :func:`ratiofit.inference.generate_toy`) is fitted with the
extended likelihood (Eq. 3.7) in μ for each classifier, and the 68% interval
{2ΔNLL ≤ 1} is found. The study reports interval widths, the bias and spread of μ̂ and
the interval coverage for both, and draws the 2ΔNLL curves of the first toy (Fig. 5).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ratiofit.hookspecs import hookimpl
from ratiofit.options import Option, OptionError
from ratiofit_papers.studies._searches import (
    binomial_error,
    check_bumphunt_sample,
    check_positive,
    extended_nll,
    fit_signal_strength,
    log_ratio_mass,
    log_ratio_mass_marginal,
    profile_interval,
)

__all__ = ["SearchNuisanceFeature"]

CLASSIFIERS = ("with_sigma", "without_sigma")


class SearchNuisanceFeature:
    """μ intervals from classifiers with and without the nuisance feature σ (Fig. 5)."""

    name = "search_nuisance_feature"
    options: Mapping[str, Option] = {
        "signal": Option(kind="str", default="signal",
                         doc="bumphunt signal sample with per-event σ (pool)"),
        "background": Option(kind="str", default="background",
                             doc="bumphunt background sample with per-event σ (pool)"),
        "signal_yield": Option(kind="float", default=10000.0, doc="ν_s at μ = 1"),
        "background_yield": Option(kind="float", default=9000.0, doc="ν_b"),
        "mu_true": Option(kind="float", default=0.1, minimum=0.0,
                          doc="true signal strength of the pseudo-experiments"),
        "n_toys": Option(kind="int", default=200, minimum=1, doc="pseudo-experiments"),
        "figures": Option(kind="bool", default=True,
                          doc="draw the study's figures into its output directory"),
    }

    def check(self, *, options: Mapping[str, Any], samples: Mapping[str, Any],
              parameters: Any) -> None:
        """Both samples: bumphunt, σ a parameter drawn uniformly, σ and u as features."""
        for field, process in (("signal", "signal"), ("background", "background")):
            name = options[field]
            check_bumphunt_sample(field=field, name=name, samples=samples, process=process,
                                  features=["y0_plus_y1"])
            _sigma_prior(samples[name], field)
        check_positive(options, "signal_yield", "background_yield")
        prior_s = _sigma_prior(samples[options["signal"]], "signal")
        prior_b = _sigma_prior(samples[options["background"]], "background")
        if prior_s != prior_b:
            raise OptionError("background", f"σ prior {prior_b} differs from the signal "
                                            f"sample's {prior_s}")

    def run(self, *, context: Any, options: Mapping[str, Any]) -> Mapping[str, Any]:
        """Fits of every toy with both classifiers; table numbers and ``intervals.png``."""
        from ratiofit.inference import generate_toy

        sig_name, bkg_name = options["signal"], options["background"]
        low, high = _sigma_prior(context.spec.samples[sig_name], "signal")
        pools = {"signal": context.sample(sig_name), "background": context.sample(bkg_name)}
        log_r: dict[str, dict[str, np.ndarray]] = {c: {} for c in CLASSIFIERS}
        for role, pool in pools.items():
            u = pool.feature_columns(["y0_plus_y1"])[:, 0]
            sigma = pool.feature_columns(["sigma"])[:, 0]
            log_r["with_sigma"][role] = log_ratio_mass(u, sigma)
            log_r["without_sigma"][role] = log_ratio_mass_marginal(u, low=low, high=high)
        nu_s, nu_b = float(options["signal_yield"]), float(options["background_yield"])
        mu_true = float(options["mu_true"])
        rng = context.rng("toys")
        fits: dict[str, dict[str, list[float]]] = {
            c: {"mu_hat": [], "low": [], "high": []} for c in CLASSIFIERS}
        first: dict[str, np.ndarray] = {}
        for j in range(int(options["n_toys"])):
            toy = generate_toy(signal_pool=pools["signal"], background_pool=pools["background"],
                               signal_yield=nu_s, background_yield=nu_b, mu=mu_true, rng=rng)
            for c in CLASSIFIERS:
                ratio = np.exp(np.concatenate([log_r[c]["signal"][toy.signal_index],
                                               log_r[c]["background"][toy.background_index]]))
                mu_hat = fit_signal_strength(ratio=ratio, signal_yield=nu_s,
                                             background_yield=nu_b)
                lo, hi = profile_interval(ratio=ratio, signal_yield=nu_s,
                                          background_yield=nu_b, mu_hat=mu_hat)
                fits[c]["mu_hat"].append(mu_hat)
                fits[c]["low"].append(lo)
                fits[c]["high"].append(hi)
                if j == 0:
                    first[c] = ratio
        result = _summary(fits, mu_true)
        result.update({"signal_yield": nu_s, "background_yield": nu_b, "mu_true": mu_true,
                       "sigma_prior": [low, high], "n_toys": int(options["n_toys"]),
                       "first_toy": _curves(first, fits, nu_s, nu_b)})
        if options["figures"]:
            plot_intervals(context.outdir / "intervals.png", result)
        return result


def _sigma_prior(sample: Any, field: str) -> tuple[float, float]:
    """(low, high) of the uniform σ of a sample whose option ``sigma`` names a parameter."""
    sigma = sample.options.get("sigma")
    if not isinstance(sigma, str) or sigma not in sample.theta or \
            sample.theta[sigma].kind != "uniform":
        raise OptionError(field, f"sample {sample.name!r} must draw σ per event: option "
                                 f"sigma = a parameter name with theta {{<name>: uniform}}")
    if not sample.options.get("sigma_feature", False):
        raise OptionError(field, f"sample {sample.name!r} must record σ (sigma_feature: true)")
    t = sample.theta[sigma]
    return float(t.low), float(t.high)


def _summary(fits: Mapping[str, Mapping[str, list[float]]], mu_true: float) -> dict[str, Any]:
    out: dict[str, Any] = {"classifiers": {}}
    widths = {}
    for c, f in fits.items():
        mu_hat, lo, hi = (np.asarray(f[k]) for k in ("mu_hat", "low", "high"))
        w = hi - lo
        widths[c] = w
        covered = float(np.mean((lo <= mu_true) & (mu_true <= hi)))
        n = len(w)
        out["classifiers"][c] = {
            "mean_width": float(w.mean()), "mean_width_error": float(w.std(ddof=1) / np.sqrt(n))
            if n > 1 else float("nan"),
            "median_width": float(np.median(w)),
            "mean_mu_hat": float(mu_hat.mean()),
            "mean_mu_hat_error": float(mu_hat.std(ddof=1) / np.sqrt(n)) if n > 1 else
            float("nan"),
            "std_mu_hat": float(mu_hat.std(ddof=1)) if n > 1 else float("nan"),
            "coverage": covered, "coverage_error": binomial_error(covered, n),
        }
    ratio = widths["without_sigma"] / widths["with_sigma"]
    out["width_ratio_without_over_with"] = {
        "mean": float(ratio.mean()),
        "error": float(ratio.std(ddof=1) / np.sqrt(len(ratio))) if len(ratio) > 1 else
        float("nan")}
    out["fraction_with_sigma_narrower"] = float(np.mean(ratio > 1))
    return out


def _curves(first: Mapping[str, np.ndarray], fits: Mapping[str, Mapping[str, list[float]]],
            nu_s: float, nu_b: float) -> dict[str, Any]:
    """2ΔNLL(μ) of the first toy for both classifiers on a common grid (for the figure)."""
    lows = [fits[c]["low"][0] for c in first]
    highs = [fits[c]["high"][0] for c in first]
    span = max(highs) - min(lows)
    grid = np.linspace(min(lows) - 0.5 * span, max(highs) + 0.5 * span, 121)
    out: dict[str, Any] = {"mu": grid.tolist()}
    for c, ratio in first.items():
        f_min = extended_nll(fits[c]["mu_hat"][0], ratio=ratio, signal_yield=nu_s,
                             background_yield=nu_b)
        out[c] = {"two_delta_nll": [2 * (extended_nll(float(m), ratio=ratio, signal_yield=nu_s,
                                                      background_yield=nu_b) - f_min)
                                    for m in grid],
                  "interval": [fits[c]["low"][0], fits[c]["high"][0]],
                  "mu_hat": fits[c]["mu_hat"][0]}
    return out


LABELS = {"with_sigma": r"classifier with $Y_0 + Y_1$ and $\sigma$",
          "without_sigma": r"classifier with $Y_0 + Y_1$"}


def plot_intervals(path: Path, result: Mapping[str, Any]) -> None:
    """Fig. 5 layout: 2ΔNLL of the first toy with shaded 68% intervals, and the widths.

    Parameters
    ----------
    path
        Output PNG.
    result
        The study's result (``first_toy`` curves, ``classifiers`` summaries).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import mplhep

    plt.style.use(mplhep.style.ROOT)
    fig, ax = plt.subplots(figsize=(7, 5.5))
    first = result["first_toy"]
    mu = np.asarray(first["mu"])
    for j, c in enumerate(CLASSIFIERS):
        color = f"C{j}"
        ax.plot(mu, first[c]["two_delta_nll"], color=color, label=LABELS[c])
        ax.axvspan(*first[c]["interval"], color=color, alpha=0.2)
    ax.axhline(1.0, ls=":", color="black")
    ax.axvline(result["mu_true"], ls="--", color="grey", label="true μ")
    ax.set_ylim(0, 4)
    ax.set_xlabel("signal strength μ")
    ax.set_ylabel(r"$-2\,\Delta \log L$")
    n_events = result["signal_yield"] * result["mu_true"] + result["background_yield"]
    ax.set_title(f"|Y| ≈ {n_events:.0f}, σ ~ U{tuple(result['sigma_prior'])}", fontsize=11)
    ax.legend(fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


@hookimpl
def ratiofit_studies() -> list[Any]:
    return [SearchNuisanceFeature()]
