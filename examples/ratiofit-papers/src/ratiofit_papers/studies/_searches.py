"""Shared pieces of the guide-searches.md studies (``search_*`` study plugins).

Not a plugin itself: sample checks, exact likelihood ratios of the ``bumphunt`` toy,
the extended likelihood in the signal strength μ with fixed per-event ratios, test
statistics, ROC curves and their Monte Carlo errors.

Exact ratios
------------
The full-information ratio r(y₀, y₁) = p_S/p_B comes from the source's exact
``log_density`` (guide-searches.md Sec. 2). The reconstructed mass u = (Y₀ + Y₁) mod 1
has closed-form marginals: since wrapping commutes with addition,
u = (X + Z₀ + Z₁) mod 1, so

* background: u is uniform on [−0.5, 0.5) for every σ (X is uniform on a full period);
* signal (X = 0): u is a wrapped normal with standard deviation √(σ₀² + σ₁²) = √2 σ.

Hence r(u | σ) = w_{√2σ}(u) (the wrapped normal density), the "classifier using
Y₀ + Y₁ and σ" of guide-searches.md Sec. 3.3. For σ uniform on [a, b] and not observed
(the classifier using Y₀ + Y₁ only), r(u) = (b − a)⁻¹ ∫ₐᵇ w_{√2σ}(u) dσ, which for each
image term has the closed form (with c = (u + k)², substituting t = c/(4σ²))

    ∫ₐᵇ φ_{√2σ}(u + k) dσ = [E₁(c/(4b²)) − E₁(c/(4a²))] / (4√π),

E₁ the exponential integral (E₁(∞) = 0 for a = 0).

Extended likelihood with fixed ratios
-------------------------------------
With known yields ν_s (at μ = 1) and ν_b and per-event r_i = p_S(x_i)/p_B(x_i), the
negative log of Eq. 3.7, up to a constant, is

    NLL(μ) = μν_s − Σᵢ log(μν_s rᵢ + ν_b),

convex in μ (a sum of −log of affine functions plus a linear term), so its score
∂NLL/∂μ = ν_s − Σᵢ ν_s rᵢ/(μν_s rᵢ + ν_b) is increasing and concave. The simple
likelihood ratio of Eq. 3.8 at μ = 1 against μ = 0 is log λ = −ν_s + Σᵢ log(1 + ν_s rᵢ/ν_b).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import exp1, logsumexp

from ratiofit.options import OptionError

__all__ = [
    "RocCurve",
    "auc",
    "binned_log_lambda",
    "binomial_error",
    "check_bumphunt_sample",
    "check_positive",
    "concatenate_toy_values",
    "exact_log_ratio",
    "extended_nll",
    "fit_signal_strength",
    "fit_signal_strengths",
    "log_lambda_unbinned",
    "log_ratio_mass",
    "log_ratio_mass_marginal",
    "profile_interval",
    "q0_asymptotic_p_value",
    "q0_values",
    "roc_curve",
    "sample_theta",
    "source_events",
]

_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)


# -- spec checks ---------------------------------------------------------------------------
def check_bumphunt_sample(*, field: str, name: str, samples: Mapping[str, Any],
                          process: str | None = None, features: Sequence[str] = ()) -> None:
    """Raise :class:`~ratiofit.options.OptionError` unless ``name`` is a bumphunt sample.

    Parameters
    ----------
    field
        The study option that names the sample (reported in the one-line spec error).
    name
        The sample name given.
    samples
        The spec's samples (name → SampleSpec).
    process
        Required ``process`` option of the sample (``None``: any).
    features
        Derived features the sample must provide (e.g. ``y0_plus_y1``).
    """
    if name not in samples:
        raise OptionError(field, f"unknown sample {name!r}; the spec defines "
                                 f"{', '.join(sorted(samples)) or 'none'}")
    sample = samples[name]
    if sample.source != "bumphunt":
        raise OptionError(field, f"sample {name!r} comes from source {sample.source!r}; this "
                                 f"study needs the 'bumphunt' source (guide-searches.md Sec. 2)")
    given = sample.options.get("process", "background")
    if process is not None and given != process:
        raise OptionError(field, f"sample {name!r} has process {given!r}; this option needs "
                                 f"a {process!r} sample")
    derived = list(sample.options.get("derived_features", []))
    for feat in features:
        if feat not in derived:
            raise OptionError(field, f"sample {name!r} lacks derived feature {feat!r}; add it "
                                     f"to the sample's options.derived_features")


def check_positive(options: Mapping[str, Any], *names: str) -> None:
    """Raise for a non-positive or non-finite number among ``options[names]``."""
    for n in names:
        v = options[n]
        if not (isinstance(v, int | float) and math.isfinite(v) and v > 0):
            raise OptionError(n, f"must be a positive number, got {v!r}")


def sample_theta(context: Any, name: str, events: Any) -> dict[str, np.ndarray]:
    """Per-event θ of the spec sample ``name``: varied columns of the events, fixed values.

    Parameters
    ----------
    context
        The :class:`~ratiofit.study.StudyContext`.
    name
        Spec sample name.
    events
        The sample's (or a subset's) EventSet.
    """
    spec = context.spec.samples[name]
    out: dict[str, np.ndarray] = {}
    for pname, t in spec.theta.items():
        if t.kind == "uniform":
            out[pname] = events.theta_matrix([pname])[:, 0]
        else:
            out[pname] = np.full(len(events), float(t.value))
    return out


def source_events(context: Any, name: str, *, n_events: int, theta: Mapping[str, Any],
                  rng: np.random.Generator) -> Any:
    """Draw ``n_events`` from the source of spec sample ``name`` at chosen per-event θ.

    Used where a study needs the sample's physics at θ values a spec sample cannot
    express (a discrete set of σ, guide-searches.md Sec. 4.3).

    Returns
    -------
    ratiofit.events.EventSet
        Features of the sample's source and options; θ columns for the names given.
    """
    from ratiofit.events import EventSet

    spec = context.spec.samples[name]
    source = context.registry.get("source", spec.source)
    th = {k: np.broadcast_to(np.asarray(v, dtype=np.float64), (n_events,)).copy()
          for k, v in theta.items()}
    feats = source.generate(n_events=n_events, theta=th, options=spec.options, rng=rng)
    names = tuple(th)
    return EventSet(features=feats, feature_names=tuple(source.feature_names(spec.options)),
                    theta=np.stack([th[n] for n in names], axis=1) if names else None,
                    theta_names=names, provenance={"origin": f"study draw of '{name}'",
                                                   "source": spec.source})


# -- exact ratios --------------------------------------------------------------------------
def exact_log_ratio(context: Any, name: str, events: Any, *,
                    sigma: float | None = None) -> np.ndarray:
    """log p_S(y₀, y₁)/p_B(y₀, y₁) from the bumphunt source's exact ``log_density``.

    Parameters
    ----------
    context
        The study context (registry and spec).
    name
        Spec sample whose source options (σ, location) define p_S and p_B.
    events
        Events with ``y0``, ``y1`` as the first feature columns.
    sigma
        A resolution overriding the sample's (the density of a wrong σ', a mis-specified
        classifier); default: the sample's own σ (number, or per-event θ).

    Returns
    -------
    numpy.ndarray
        ``[n]`` log r (guide-searches.md Eq. 3.8, second factor, per event).
    """
    spec = context.spec.samples[name]
    source = context.registry.get("source", spec.source)
    th = sample_theta(context, name, events)
    opts = {k: v for k, v in spec.options.items() if k != "signal_fraction"}
    if sigma is not None:
        opts["sigma"] = float(sigma)
    x = events.feature_columns(["y0", "y1"])
    log_s = source.log_density(features=x, theta=th, options={**opts, "process": "signal"})
    log_b = source.log_density(features=x, theta=th, options={**opts, "process": "background"})
    return np.asarray(log_s - log_b)


def log_ratio_mass(u: np.ndarray, sigma: Any) -> np.ndarray:
    """log r(u | σ) = log w_{√2σ}(u): signal over background in the reconstructed mass.

    The background density of u is 1 on [−0.5, 0.5) (module docstring), so the ratio is
    the wrapped normal density of width √2σ, summed over images |k| ≤ ⌈9·√2σ⌉ + 1 (the
    dropped terms are below 10⁻¹⁷ relative, as in the bumphunt source).

    Parameters
    ----------
    u
        Reconstructed masses (Y₀ + Y₁) mod 1, ``[n]``.
    sigma
        Per-event or scalar resolution σ > 0.
    """
    u = np.asarray(u, dtype=np.float64)
    s = np.broadcast_to(np.sqrt(2.0) * np.asarray(sigma, dtype=np.float64), u.shape)
    if s.size and not np.all(s > 0):
        raise ValueError("log_ratio_mass: σ must be positive")
    k_max = math.ceil(9.0 * float(s.max(initial=0.0))) + 1
    shifts = np.arange(-k_max, k_max + 1, dtype=np.float64)
    t = (u[:, None] + shifts) / s[:, None]
    return np.asarray(logsumexp(-0.5 * t * t, axis=1) - np.log(s) - _LOG_SQRT_2PI)


def log_ratio_mass_marginal(u: np.ndarray, *, low: float, high: float) -> np.ndarray:
    """log r(u) for σ ~ Uniform[low, high] not observed (closed form, module docstring).

    Parameters
    ----------
    u
        Reconstructed masses, ``[n]``; u = 0 exactly (probability zero) has r = ∞ and is
        refused.
    low, high
        The σ prior, 0 ≤ low < high ≤ 1.
    """
    if not 0.0 <= low < high <= 1.0:
        raise ValueError(f"σ prior must satisfy 0 <= low < high <= 1, got [{low}, {high}]")
    u = np.asarray(u, dtype=np.float64)
    if np.any(u == 0.0):
        raise ValueError("log_ratio_mass_marginal: u = 0 has an infinite ratio")
    k_max = math.ceil(9.0 * math.sqrt(2.0) * high) + 1
    total = np.zeros_like(u)
    for k in range(-k_max, k_max + 1):
        c = (u + k) ** 2
        upper = exp1(c / (4.0 * high * high))
        lower = exp1(c / (4.0 * low * low)) if low > 0 else 0.0
        total += upper - lower
    return np.asarray(np.log(total) - math.log(4.0 * math.sqrt(math.pi) * (high - low)))


# -- likelihood ----------------------------------------------------------------------------
def extended_nll(mu: float, *, ratio: np.ndarray, signal_yield: float,
                 background_yield: float) -> float:
    """NLL(μ) = μν_s − Σ log(μν_s rᵢ + ν_b) (guide-searches.md Eq. 3.7, module docstring)."""
    d = mu * signal_yield * ratio + background_yield
    if np.any(d <= 0):
        return math.inf
    return float(mu * signal_yield - np.sum(np.log(d)))


def _score(mu: float, ratio: np.ndarray, signal_yield: float, background_yield: float) -> float:
    sr = signal_yield * ratio
    return float(signal_yield - np.sum(sr / (mu * sr + background_yield)))


def fit_signal_strength(*, ratio: np.ndarray, signal_yield: float, background_yield: float,
                        lower: float | None = None) -> float:
    """μ̂ minimising :func:`extended_nll`, by a root of the increasing score (scipy brentq).

    Parameters
    ----------
    ratio
        Per-event r = p_S/p_B (≥ 0) of the pseudo-experiment.
    signal_yield, background_yield
        ν_s and ν_b.
    lower
        Lower limit of μ (e.g. 0 for a discovery test); ``None``: only the boundary where
        some event's density μν_s rᵢ + ν_b reaches 0 (there the score is −∞).
    """
    r_max = float(ratio.max(initial=0.0))
    if r_max <= 0:
        if lower is None:
            raise ValueError("fit_signal_strength: no event has signal density; μ̂ = −∞")
        return float(lower)
    floor = -background_yield / (signal_yield * r_max)
    if lower is not None and lower > floor:
        a = float(lower)
        if _score(a, ratio, signal_yield, background_yield) >= 0:
            return a
    else:
        a = floor + 1e-9 * max(1.0, abs(floor))
        while _score(a, ratio, signal_yield, background_yield) >= 0:
            a = floor + 1e-3 * (a - floor)
    b = max(a, 0.0) + 1.0
    while _score(b, ratio, signal_yield, background_yield) <= 0:
        b = 2 * b + 1.0
    from scipy.optimize import brentq

    return float(brentq(_score, a, b, args=(ratio, signal_yield, background_yield),
                        xtol=1e-12, rtol=1e-12))


def profile_interval(*, ratio: np.ndarray, signal_yield: float, background_yield: float,
                     mu_hat: float, level: float = 1.0) -> tuple[float, float]:
    """The interval {μ : 2[NLL(μ) − NLL(μ̂)] ≤ level} (level 1: 68.3% CL for one parameter).

    NLL is convex, so each side has one crossing; it is bracketed by doubling a step of
    the curvature-based error (halving back towards μ̂ where a step leaves the domain of
    positive densities, on which NLL = +∞) and found by scipy brentq.
    """
    from scipy.optimize import brentq

    def nll(mu: float) -> float:
        return extended_nll(mu, ratio=ratio, signal_yield=signal_yield,
                            background_yield=background_yield)

    f_min = nll(mu_hat)
    sr = signal_yield * ratio
    curvature = float(np.sum((sr / (mu_hat * sr + background_yield)) ** 2))
    first = 1.0 / math.sqrt(curvature) if curvature > 0 else 1.0

    def excess(mu: float) -> float:
        return 2.0 * (nll(mu) - f_min) - level

    out = []
    for sign in (-1.0, 1.0):
        step = first
        far = mu_hat + sign * step
        for _ in range(200):
            value = excess(far)
            if math.isinf(value):
                step *= 0.5
            elif value < 0:
                step *= 2.0
            else:
                break
            far = mu_hat + sign * step
        else:
            raise ValueError("profile_interval: no crossing of the likelihood level found")
        out.append(float(brentq(excess, *sorted((mu_hat, far)), xtol=1e-10)))
    return out[0], out[1]


def fit_signal_strengths(*, ratio: np.ndarray, toy_index: np.ndarray, n_toys: int,
                         signal_yield: float, background_yield: float) -> np.ndarray:
    """μ̂ ≥ 0 of many pseudo-experiments at once (the discovery fits of Sec. 4.2).

    Events of all toys are concatenated (``toy_index`` says which toy each belongs to).
    Toys whose score at μ = 0 is ≥ 0 have μ̂ = 0. For the others, Newton's method
    (scipy ``newton`` on arrays) starting at μ = 0 converges monotonically from below:
    the score is increasing and concave, so every tangent step stays left of the root.
    """
    sr = signal_yield * ratio
    # Score at μ = 0: ν_s − Σ ν_s rᵢ/ν_b per toy.
    positive = signal_yield - np.bincount(toy_index, sr, minlength=n_toys) / background_yield < 0
    out = np.zeros(n_toys)
    if not positive.any():
        return out
    keep = positive[toy_index]
    ti = (np.cumsum(positive) - 1)[toy_index[keep]]
    srs = sr[keep]
    m = int(positive.sum())

    def score(mu: np.ndarray) -> np.ndarray:
        d = mu[ti] * srs + background_yield
        return np.asarray(signal_yield - np.bincount(ti, srs / d, minlength=m))

    def slope(mu: np.ndarray) -> np.ndarray:
        d = mu[ti] * srs + background_yield
        return np.asarray(np.bincount(ti, (srs / d) ** 2, minlength=m))

    from scipy.optimize import newton

    out[positive] = newton(score, np.zeros(m), fprime=slope, tol=1e-10, maxiter=200)
    return out


def log_lambda_unbinned(*, ratio: np.ndarray, toy_index: np.ndarray, n_toys: int,
                        signal_yield: float, background_yield: float,
                        mu: float = 1.0) -> np.ndarray:
    """log λ of Eq. 3.8 for μ against μ = 0, per toy: −μν_s + Σ log(1 + μν_s rᵢ/ν_b)."""
    terms = np.log1p(mu * signal_yield * ratio / background_yield)
    return np.asarray(np.bincount(toy_index, terms, minlength=n_toys) - mu * signal_yield)


def q0_values(*, ratio: np.ndarray, toy_index: np.ndarray, n_toys: int,
              signal_yield: float, background_yield: float) -> tuple[np.ndarray, np.ndarray]:
    """Discovery statistic q₀ = 2[NLL(0) − NLL(μ̂)] with μ̂ ≥ 0 per toy, and μ̂."""
    mu_hat = fit_signal_strengths(ratio=ratio, toy_index=toy_index, n_toys=n_toys,
                                  signal_yield=signal_yield, background_yield=background_yield)
    log_l = np.log1p(mu_hat[toy_index] * signal_yield * ratio / background_yield)
    q0 = 2.0 * (np.bincount(toy_index, log_l, minlength=n_toys) - mu_hat * signal_yield)
    return np.maximum(q0, 0.0), mu_hat


def q0_asymptotic_p_value(q0: Any) -> np.ndarray:
    """p₀ = 1 − Φ(√q₀): the half-χ²₁ law of q₀ under μ = 0 (Wilks; Ref. [67] of
    guide-searches.md Sec. 4.2)."""
    from scipy.stats import norm

    return np.asarray(norm.sf(np.sqrt(np.maximum(np.asarray(q0, dtype=np.float64), 0.0))))


def binned_log_lambda(*, counts: np.ndarray, signal: np.ndarray, background: np.ndarray
                      ) -> np.ndarray:
    """log λ of Eq. 3.6 for μ = 1 against 0: Σ_b [n_b log(1 + S_b/B_b) − S_b] per toy.

    Parameters
    ----------
    counts
        ``[n_toys, K]`` observed counts.
    signal, background
        ``[K]`` expected yields; every B_b must be positive.
    """
    if np.any(background <= 0):
        raise ValueError("binned_log_lambda: a bin has no expected background")
    return np.asarray(counts @ np.log1p(signal / background) - signal.sum())


# -- ROC curves -----------------------------------------------------------------------------
@dataclass(frozen=True)
class RocCurve:
    """Power against type-I error of the test 'reject μ = 0 when t ≥ c', over all c.

    ``size[j]`` = P₀(t ≥ c_j) and ``power[j]`` = P₁(t ≥ c_j) estimated from n₀ and n₁
    pseudo-experiments; thresholds run over all distinct values, so for a discrete t
    (counting) the curve has the steps a non-randomised test can reach.
    """

    size: np.ndarray
    power: np.ndarray
    n_null: int
    n_alt: int

    def power_at(self, alpha: float) -> float:
        """Largest power of a threshold whose estimated size is ≤ α."""
        ok = self.size <= alpha + 1e-12
        return float(self.power[ok].max()) if ok.any() else 0.0

    def power_error(self, alpha: float) -> float:
        """MC error of :meth:`power_at`: binomial error of the power plus the threshold's.

        The threshold is a quantile of the n₀ null toys, uncertain in size by
        √(α(1−α)/n₀); it moves the power by the slope of the curve times that
        (slope from the curve over ±2 such errors).
        """
        p = self.power_at(alpha)
        d_alpha = math.sqrt(alpha * (1 - alpha) / self.n_null)
        lo, hi = max(alpha - 2 * d_alpha, 0.0), min(alpha + 2 * d_alpha, 1.0)
        slope = (self.power_at(hi) - self.power_at(lo)) / (hi - lo) if hi > lo else 0.0
        return math.sqrt(p * (1 - p) / self.n_alt + (slope * d_alpha) ** 2)

    def area(self) -> float:
        """Area under the curve (probability that t₁ > t₀, ties counted half)."""
        s = np.concatenate([[0.0], self.size, [1.0]])
        p = np.concatenate([[0.0], self.power, [1.0]])
        return float(np.trapezoid(p, s))


def roc_curve(t_null: np.ndarray, t_alt: np.ndarray) -> RocCurve:
    """:class:`RocCurve` of statistics ``t_null`` (μ = 0 toys) and ``t_alt`` (μ = 1 toys)."""
    t0, t1 = np.sort(np.asarray(t_null)), np.sort(np.asarray(t_alt))
    if not (np.all(np.isfinite(t0)) and np.all(np.isfinite(t1))):
        raise ValueError("roc_curve: test statistics must be finite")
    c = np.unique(np.concatenate([t0, t1]))[::-1]
    size = 1.0 - np.searchsorted(t0, c, side="left") / len(t0)
    power = 1.0 - np.searchsorted(t1, c, side="left") / len(t1)
    return RocCurve(size=size, power=power, n_null=len(t0), n_alt=len(t1))


def auc(score_signal: np.ndarray, score_background: np.ndarray) -> float:
    """ROC AUC of a score (Mann–Whitney: P(score_S > score_B), ties half), via ranks."""
    from ratiofit.auc import weighted_auc  # the one AUC

    return weighted_auc(target_scores=np.asarray(score_signal, dtype=np.float64),
                        reference_scores=np.asarray(score_background, dtype=np.float64))


def binomial_error(p: float, n: int) -> float:
    """√(p(1 − p)/n), the standard error of a fraction from n trials."""
    return math.sqrt(max(p * (1 - p), 0.0) / n) if n > 0 else math.nan


def concatenate_toy_values(toys: Sequence[Any], signal_values: np.ndarray,
                           background_values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-event pool values of every toy, concatenated, and each event's toy index."""
    parts, index = [], []
    for j, toy in enumerate(toys):
        v = np.concatenate([signal_values[toy.signal_index],
                            background_values[toy.background_index]])
        parts.append(v)
        index.append(np.full(len(v), j, dtype=np.int64))
    if not parts:
        return np.zeros(0), np.zeros(0, dtype=np.int64)
    return np.concatenate(parts), np.concatenate(index)
