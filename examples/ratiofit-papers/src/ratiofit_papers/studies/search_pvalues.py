"""Study ``search_pvalues``: asymptotic vs pseudo-experiment p-values (guide-searches.md Sec. 4.2).

The discovery test of μ = 0 with the unbinned extended likelihood (Eq. 3.7–3.8) and the
profile statistic q₀ = 2[NLL(0) − NLL(μ̂)] for μ̂ ≥ 0 (0 otherwise). Its p-value is
computed two ways:

* asymptotically, p₀ = 1 − Φ(√q₀) (the half-χ²₁ law of Wilks' theorem, Ref. [67] of the
  paper), which needs the ratio in the likelihood to describe the data under μ = 0;
* from ``n_null_toys`` background-only pseudo-experiments, p₀ = fraction with
  q₀ ≥ q₀ᵒᵇˢ, with its binomial error √(p(1 − p)/n).

For each signal strength μ in ``signal_strengths`` the "observed" q₀ is the median over
``n_alt_toys`` pseudo-experiments at μ (the expected significance).

Pseudo-experiments are drawn *fresh* from the samples' source (Poisson ν_b background
and μν_s signal events each), not resampled from finite pools: a pool's mean ratio
E_pool[r] misses 1 by ~√(Var r/N_pool), which shifts q₀ under μ = 0 by a fraction
√(ν_b/N_pool) of its width — measurable at the p-value precision this study aims at.
The classifier is the one of the paper's figures, a function of the reconstructed mass
u = Y₀ + Y₁ only: ``exact`` is r(u|σ) = w_{√2σ}(u) (see ``_searches``), cheap enough for
10⁷–10⁸ events. Two kinds of imperfect classifiers (Sec. 4.2: λ̃ ≠ λ):

``wrong_sigmas``
    r(u|σ') at a wrong σ' — a wrong shape but still normalised, E_B[r'] = 1 (u is
    uniform under background): the test loses power, yet q₀ under μ = 0 keeps its
    asymptotic law, since μ = 0 still describes the data exactly;
``ratio_scales``
    c·r(u|σ) — the ratio of an S-vs-B classifier whose class-prior factor (Eq. 3.12, the
    ratio of training sample sizes) was not corrected: E_B[r'] = c ≠ 1, and the
    asymptotic p-values are biased while the pseudo-experiment ones stay valid.
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
    log_ratio_mass,
    q0_asymptotic_p_value,
    q0_values,
    source_events,
)

__all__ = ["SearchPValues"]


class SearchPValues:
    """Wilks vs toys for the unbinned discovery test (Sec. 4.2)."""

    name = "search_pvalues"
    options: Mapping[str, Option] = {
        "signal": Option(kind="str", default="signal", doc="bumphunt signal sample (pool)"),
        "background": Option(kind="str", default="background",
                             doc="bumphunt background sample (pool)"),
        "signal_yield": Option(kind="float", default=30.0, doc="ν_s at μ = 1"),
        "background_yield": Option(kind="float", default=1000.0, doc="ν_b"),
        "signal_strengths": Option(kind="float_list", default=[0.5, 1.0, 1.5, 2.0],
                                   minimum=0.0, doc="true μ of the 'observed' datasets"),
        "n_null_toys": Option(kind="int", default=20000, minimum=10,
                              doc="background-only pseudo-experiments"),
        "n_alt_toys": Option(kind="int", default=1000, minimum=1,
                             doc="pseudo-experiments per μ for the median q₀"),
        "wrong_sigmas": Option(kind="float_list", default=[], minimum=1e-6, maximum=1.0,
                               doc="σ' of mis-shaped classifiers r(u|σ')"),
        "ratio_scales": Option(kind="float_list", default=[], minimum=1e-6,
                               doc="c of mis-normalised classifiers c·r(u|σ)"),
        "chunk_toys": Option(kind="int", default=2000, minimum=1,
                             doc="pseudo-experiments generated at once (memory)"),
        "figures": Option(kind="bool", default=True,
                          doc="draw the study's figures into its output directory"),
    }

    def check(self, *, options: Mapping[str, Any], samples: Mapping[str, Any],
              parameters: Any) -> None:
        """Reject unknown or non-bumphunt samples, σ given as a parameter, bad yields."""
        for field in ("signal", "background"):
            check_bumphunt_sample(field=field, name=options[field], samples=samples,
                                  process=field, features=["y0_plus_y1"])
            sigma = samples[options[field]].options.get("sigma", 0.08)
            if not isinstance(sigma, int | float):
                raise OptionError(field, f"sample {options[field]!r} needs one fixed numeric "
                                         f"sigma (the exact r(u|σ) is evaluated at it)")
        check_positive(options, "signal_yield", "background_yield")

    def run(self, *, context: Any, options: Mapping[str, Any]) -> Mapping[str, Any]:
        """q₀ distributions, the p-value table and ``q0_null.png``."""
        sigma = float(context.spec.samples[options["signal"]].options.get("sigma", 0.08))
        classifiers: dict[str, tuple[float, float]] = {"exact": (sigma, 1.0)}
        for s in options["wrong_sigmas"]:
            classifiers[f"sigma'={s:g}"] = (float(s), 1.0)
        for c in options["ratio_scales"]:
            classifiers[f"scale={c:g}"] = (sigma, float(c))
        nu_s, nu_b = float(options["signal_yield"]), float(options["background_yield"])
        n_null, n_alt = int(options["n_null_toys"]), int(options["n_alt_toys"])
        chunk = int(options["chunk_toys"])
        null_q0, mu_hat_null = self._q0(context, options, classifiers, 0.0, n_null, "null",
                                        chunk)
        out: dict[str, Any] = {}
        for label in classifiers:
            zero = float(np.mean(mu_hat_null[label] == 0.0))
            out[label] = {"sigma": classifiers[label][0], "scale": classifiers[label][1],
                          "rows": [], "null_fraction_mu_hat_zero": zero,
                          "null_fraction_error": binomial_error(zero, n_null),
                          "null_size_at_asymptotic": _sizes(null_q0[label])}
        for mu in options["signal_strengths"]:
            alt_q0, _ = self._q0(context, options, classifiers, float(mu), n_alt, f"mu={mu}",
                                 chunk)
            for label in classifiers:
                out[label]["rows"].append(_row(float(mu), float(np.median(alt_q0[label])),
                                               null_q0[label]))
        if options["figures"]:
            _figure(context.outdir / "q0_null.png", null_q0)
        return {"signal_yield": nu_s, "background_yield": nu_b, "sigma": sigma,
                "n_null_toys": n_null, "n_alt_toys": n_alt, "classifiers": out}

    @staticmethod
    def _q0(context: Any, options: Mapping[str, Any],
            classifiers: Mapping[str, tuple[float, float]], mu: float, n_toys: int, key: str,
            chunk: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """q₀ and μ̂ of ``n_toys`` fresh pseudo-experiments at μ for every classifier."""
        nu_s, nu_b = float(options["signal_yield"]), float(options["background_yield"])
        rng = context.rng("toys", key)
        q0: dict[str, list[np.ndarray]] = {c: [] for c in classifiers}
        mu_hat: dict[str, list[np.ndarray]] = {c: [] for c in classifiers}
        for start in range(0, n_toys, chunk):
            m = min(chunk, n_toys - start)
            n_b = rng.poisson(nu_b, m)
            n_s = rng.poisson(mu * nu_s, m)
            u = []
            for role, counts in (("background", n_b), ("signal", n_s)):
                events = source_events(context, options[role], n_events=int(counts.sum()),
                                       theta={}, rng=rng)
                u.append(events.feature_columns(["y0_plus_y1"])[:, 0])
            mass = np.concatenate(u)
            index = np.concatenate([np.repeat(np.arange(m), n_b), np.repeat(np.arange(m), n_s)])
            by_sigma = {sigma: np.exp(log_ratio_mass(mass, sigma))
                        for sigma in {sigma for sigma, _ in classifiers.values()}}
            for label, (sigma, scale) in classifiers.items():
                ratio = scale * by_sigma[sigma]
                q, mh = q0_values(ratio=ratio, toy_index=index, n_toys=m, signal_yield=nu_s,
                                  background_yield=nu_b)
                q0[label].append(q)
                mu_hat[label].append(mh)
        return ({c: np.concatenate(v) for c, v in q0.items()},
                {c: np.concatenate(v) for c, v in mu_hat.items()})


def _row(mu: float, q0_obs: float, q0_null: np.ndarray) -> dict[str, float]:
    """One table row: asymptotic and toy p-values of the median q₀ at μ."""
    from scipy.stats import norm  # here: loading the plugin must stay light

    p_asym = float(q0_asymptotic_p_value(q0_obs))
    n = len(q0_null)
    p_toy = float(np.mean(q0_null >= q0_obs))
    err = binomial_error(p_toy, n)
    return {"mu": float(mu), "median_q0": q0_obs, "p_asymptotic": p_asym,
            "z_asymptotic": float(np.sqrt(q0_obs)), "p_toys": p_toy, "p_toys_error": err,
            "z_toys": float(norm.isf(p_toy)) if 0 < p_toy < 1 else float("nan"),
            "pull": (p_toy - p_asym) / err if err > 0 else float("nan")}


def _sizes(q0_null: np.ndarray) -> dict[str, float]:
    """Fraction of null toys beyond the asymptotic critical value of each nominal size."""
    from scipy.stats import norm  # here: loading the plugin must stay light

    out = {}
    for alpha in (0.1, 0.05, 0.01, 0.001):
        crit = float(norm.isf(alpha)) ** 2
        out[str(alpha)] = float(np.mean(q0_null >= crit))
    return out


def _figure(path: Path, null_q0: Mapping[str, np.ndarray]) -> None:
    """Survival function of q₀ under μ = 0 against the asymptotic ½χ²₁ law."""
    plot_q0_survival(path, {k: np.sort(v) for k, v in null_q0.items()})


def plot_q0_survival(path: Path, sorted_q0: Mapping[str, np.ndarray]) -> None:
    """P(q₀ ≥ x) of null toys per classifier, with 1 − Φ(√x) (shared with the docs).

    Parameters
    ----------
    path
        Output PNG.
    sorted_q0
        Classifier label → sorted q₀ of the background-only toys.
    """
    import matplotlib
    from scipy.stats import norm  # here: loading the plugin must stay light

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import mplhep

    plt.style.use(mplhep.style.ROOT)
    fig, ax = plt.subplots(figsize=(7, 5.5))
    x = np.linspace(0, 16, 400)
    for label, q in sorted_q0.items():
        surv = 1.0 - np.searchsorted(q, x, side="left") / len(q)
        ax.step(x, surv, where="post", label=f"toys, {label}")
    ax.plot(x, norm.sf(np.sqrt(x)), ls="--", color="black",
            label=r"asymptotic $1 - \Phi(\sqrt{q_0})$")
    ax.set_yscale("log")
    ax.set_ylim(max(0.3 / max(len(q) for q in sorted_q0.values()), 1e-6), 1)
    ax.set_xlabel(r"$q_0$")
    ax.set_ylabel(r"$P(q_0 \geq x \mid \mu = 0)$")
    ax.legend(fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


@hookimpl
def ratiofit_studies() -> list[Any]:
    return [SearchPValues()]
