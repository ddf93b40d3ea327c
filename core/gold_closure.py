"""Gold closure: a trained reweighter against the simulator's exact per-event weights.

Where the simulator can say how probable each generated event would have been at other
parameter values (:attr:`ratiofit.events.EventSet.alt_weights`, e.g. the ``pythia``
source's ``variations``), the ratio a reweighter learns has an exact ground truth on the
*same* events: for events generated at θ₀ and the column w_k = P(event|θ_k)/P(event|θ₀),

    E[w_k | x] = p(x|θ_k) / p(x|θ₀) = the ŵ(x, θ_k) of a perfect reweighter.

w_k is a *joint* ratio (the event's whole simulated history enters, not only x), so it is
noisy about that mean, more so away from θ₀. :func:`gold_closure` takes held-out events of
the reweighter's reference (generated at θ₀, never seen in training, so the learned weight
that moves them to θ_k is ŵ(x, θ_k) itself) and, at every grid point θ_k the reweighter is
parameterised in, measures three things.

**1. The reweighting, per feature** (every flat feature of the events). The histogram of
the events weighted by the learned ŵ(x, θ_k) against the histogram of the *same* events
weighted by w_k, both unit-normalised. The two share their events, so the χ² that treats
them as independent samples with each histogram's Σw² (``chi2_independent``, reported
for comparison with the ordinary closure's χ², :func:`ratiofit.closure_gate.chi2_between`)
is not χ²-distributed: under a perfect ŵ its expectation per bin is
ΣVar(w|x)/(Σŵ² + Σw²), between 0 (noise-free weights) and 1, so it sees little. The
test (``chi2``) uses the covariance of the *difference* of the two unit-normalised
histograms instead: with aᵢ = eᵢŵᵢ/Σeŵ and bᵢ = eᵢwᵢ/Σew (eᵢ the events' own weights)
and bin contents p_B = Σ_{i∈B} aᵢ, q_B = Σ_{i∈B} bᵢ, the first-order (delta-method)
influence of event i on p_B − q_B is ψᵢ_B = aᵢ(1[i∈B] − p_B) − bᵢ(1[i∈B] − q_B), and
Cov = Σᵢ ψᵢψᵢᵀ (:func:`ratiofit.weights.variance_of_mean`, for two self-normalised
means of the same events). Where ŵ(x) = E[w|x], p − q has mean 0 and χ² = Dᵀ Cov⁻¹ D is
χ²-distributed on the number of bins kept. The pairing cancels the events' own
fluctuation, so the test is as sensitive as the exact weights' noise Var(w|x) allows.
Bins are 20 equal-population bins of the unweighted events (one per value for integer
features, e.g. multiplicities); a bin with fewer than 25 Kish-effective entries under
either weighting joins a "rest" bin, and the rest bin (or, when empty, the last bin) is
left out of the χ² (the contents sum to 1 on both sides). The same χ² with ŵ = 1
(``chi2_nominal``: the unweighted events against the exact reweighting) says how far θ_k
moves the feature at all: a feature that the variation does not move closes trivially.

**2. Per event.** (i) *Calibration*: the same paired χ² on the histogram of the learned
log ŵ itself. If ŵ(x) = E[w|x] then E[w | ŵ(x)] = ŵ(x) (the tower property), so the exact
weights, averaged in bins of the learned one, must reproduce it; this needs no model of
E[w|x], but only sees whether ŵ is calibrated as a function of itself (a constant ŵ = 1
passes it). (ii) *Regression*: E[w|x] estimated as exp f̂(x), f̂ a linear or quadratic
polynomial in the standardised features (all pairwise products), fitted by minimising the
soft-label logistic loss Σᵢ eᵢ[wᵢ softplus(−fᵢ) + softplus(fᵢ)] (Newton's method, a tiny ridge).
Why this estimator: the loss's minimiser over all f is log E[w|x], so the noisy wᵢ enter
linearly and average out in the fit, instead of being regressed event by event (a least-
squares fit of log wᵢ would estimate E[log w|x] ≠ log E[w|x]); it is convex, so the
fit is unique and takes seconds; and it is small, because E[w|x] is learned from weights
whose effective number falls away from θ₀, and a flexible model would fit their noise.
(Quadratic only where, fitted on one half of the fitted events, it predicts the other
half better than a linear f̂, and those events' exact weights have 50 Kish-effective events
per quadratic term: measured on PYTHIA jets, 120 quadratic terms in 14 observables fitted
on 2.5·10⁴ jets overfit the heavy-tailed weights (|f̂| up to 45, a held-out loss above
no reweighting's) where the linear f̂ gained. The evaluated events' features are clipped
to the fitted ones' range, so the polynomial is never extrapolated.) Polynomials do not
hold every ratio; f̂ is fitted on half of the events and evaluated on the other half:
``rmse`` is the RMSE of log ŵ − f̂, beside ``rmse_regression``, the RMSE of f̂ itself (what
doing nothing, log ŵ = 0, scores), and their correlation. Because the loss's expectation
exceeds its minimum by a divergence between f and log E[w|x], the held-out *differences*
of the mean loss, learned − regression and learned − nominal (f = 0), with their paired
errors, rank the learned ratio, the regression and no reweighting by their distance to the
exact E[w|x] without estimating it, and without restricting the learned ratio to
polynomials: negative means the learned ratio is closer.

**3. The effective sample size** of the exact weights, Kish's (Σ e w)²/Σ(e w)²
(:func:`ratiofit.weights.kish_ess`), and its fraction of the events' own: the exact
weights grow heavy-tailed away from θ₀, and with them every error above.

A point passes where none of its χ² tests (features and calibration) has a p-value below
``level`` / (number of its tests) (Bonferroni). The χ² tests hold asymptotically; at an
ESS of a few per cent of the events their p-values are not to be trusted in the tails.

Examples
--------
>>> import numpy as np
>>> from ratiofit.testing import analytic_gaussian_reweighter, latent_gaussian_events
>>> events = latent_gaussian_events(4000, mus=(0.5,), rng=np.random.default_rng(1))
>>> exact = analytic_gaussian_reweighter(theta_scale=2 ** -0.5)  # E[w|x] exactly
>>> gold = gold_closure(exact, events, theta0={"mu": 0.0})
>>> gold.points[0].verdict, round(gold.points[0].ess_fraction, 2)  # expected: exp(-0.25)
('pass', 0.77)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .closure_gate import chi2_between
from .errors import DataError
from .events import EventSet
from .weights import kish_ess, variance_of_mean

__all__ = ["BinnedComparison", "GoldClosure", "GoldPoint", "PerEventAgreement",
           "gold_closure", "paired_chi2"]

#: Family-wise level of a point's χ² tests (Bonferroni over them).
LEVEL = 0.01
#: Equal-population bins per feature; bins need this many Kish-effective entries.
BINS, MIN_EFFECTIVE_ENTRIES = 20, 25.0
#: The regression may be quadratic only where its training events' exact weights have
#: this many Kish-effective events per term.
EVENTS_PER_TERM = 50


@dataclass(frozen=True)
class BinnedComparison:
    """One observable's learned-vs-exact reweighting of the same events (module docstring,
    1): the paired ``chi2`` on ``ndf`` bins and its ``p_value``; the same test of the
    unweighted events (``chi2_nominal``); and the χ² that treats the two histograms as
    independent, with each one's Σw² (``chi2_independent`` on ``ndf_independent``)."""

    observable: str
    chi2: float
    ndf: int
    p_value: float
    chi2_nominal: float
    p_value_nominal: float
    chi2_independent: float
    ndf_independent: int

    def to_dict(self) -> dict[str, Any]:
        return {"observable": self.observable, "chi2": self.chi2, "ndf": self.ndf,
                "chi2_ndf": self.chi2 / max(self.ndf, 1), "p_value": self.p_value,
                "chi2_nominal": self.chi2_nominal,
                "chi2_ndf_nominal": self.chi2_nominal / max(self.ndf, 1),
                "p_value_nominal": self.p_value_nominal,
                "chi2_independent": self.chi2_independent,
                "ndf_independent": self.ndf_independent,
                "chi2_ndf_independent": self.chi2_independent / max(self.ndf_independent, 1)}


@dataclass(frozen=True)
class PerEventAgreement:
    """The learned log ŵ against the polynomial soft-label regression f̂ ≈ log E[w|x],
    on the half of the events the regression did not see (module docstring, 2 ii)."""

    rmse: float
    rmse_regression: float
    correlation: float
    loss_learned_minus_regression: float
    loss_learned_minus_regression_error: float
    loss_learned_minus_nominal: float
    loss_learned_minus_nominal_error: float
    n_fit: int
    n_evaluated: int
    terms: int

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass(frozen=True)
class GoldPoint:
    """The gold closure at one grid point θ_k (``column``: its alternative weight)."""

    column: str
    theta: Mapping[str, float]
    n_events: int
    ess: float
    ess_fraction: float
    ess_learned_fraction: float
    features: tuple[BinnedComparison, ...]
    calibration: BinnedComparison | None
    regression: PerEventAgreement | None
    verdict: str
    failed: tuple[str, ...]
    per_test_level: float
    reason: str | None = None

    def worst(self) -> BinnedComparison | None:
        """The feature with the smallest p-value of the paired χ²."""
        tested = [f for f in self.features if f.ndf > 0]
        return min(tested, key=lambda f: f.p_value) if tested else None

    def to_dict(self) -> dict[str, Any]:
        worst = self.worst()
        return {"column": self.column, "theta": dict(self.theta), "n_events": self.n_events,
                "ess": self.ess, "ess_fraction": self.ess_fraction,
                "ess_learned_fraction": self.ess_learned_fraction,
                "verdict": self.verdict, "failed": list(self.failed),
                "per_test_level": self.per_test_level, "reason": self.reason,
                "worst_feature": None if worst is None else worst.observable,
                "features": [f.to_dict() for f in self.features],
                "calibration": None if self.calibration is None else
                self.calibration.to_dict(),
                "regression": None if self.regression is None else self.regression.to_dict()}


@dataclass(frozen=True)
class GoldClosure:
    """Every grid point's gold closure (:class:`GoldPoint`), the columns left out and why
    (``skipped``: column → reason), and the settings."""

    points: tuple[GoldPoint, ...]
    theta0: Mapping[str, float]
    n_events: int
    level: float
    bins: int
    min_effective_entries: float
    origin: str
    skipped: Mapping[str, str] = field(default_factory=dict)

    @property
    def verdict(self) -> str:
        """``pass`` where every point passes, ``fail`` otherwise (``none``: no point)."""
        if not self.points:
            return "none"
        return "pass" if all(p.verdict == "pass" for p in self.points) else "fail"

    def to_dict(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "events": self.origin, "n_events": self.n_events,
                "theta0": dict(self.theta0), "level": self.level, "bins": self.bins,
                "min_effective_entries": self.min_effective_entries,
                "points": [p.to_dict() for p in self.points], "skipped": dict(self.skipped)}


# -- binning and the paired χ² -----------------------------------------------------------


def _bin_index(x: np.ndarray, bins: int) -> np.ndarray:
    """Bin of every value (−1: outside every bin): one per integer for integer features
    within their 0.1–99.9 % quantiles (as the closure histograms), else ``bins``
    equal-population bins (fewer where quantiles coincide)."""
    lo, hi = np.quantile(x, [0.001, 0.999])
    if np.all(x == np.round(x)) and hi - lo < 4 * bins:
        inside = (x >= lo) & (x <= hi)
        return np.where(inside, np.round(x - lo), -1).astype(np.int64)
    edges = np.unique(np.quantile(x, np.linspace(0.0, 1.0, bins + 1)))
    if len(edges) < 2:
        return np.zeros(len(x), np.int64)
    return np.clip(np.searchsorted(edges, x, side="right") - 1, 0, len(edges) - 2)


def _kept_bins(index: np.ndarray, weights: Sequence[np.ndarray], min_effective: float
               ) -> np.ndarray:
    """``index`` renumbered over the bins with at least ``min_effective`` Kish-effective
    entries under every weighting in ``weights``; −1 for the rest, which is never empty
    (the last kept bin joins it where it would be)."""
    n_bins = int(index.max()) + 1 if len(index) and index.max() >= 0 else 0
    inside = index >= 0
    ok = np.ones(n_bins, bool)
    for w in weights:
        s = np.bincount(index[inside], weights=w[inside], minlength=n_bins)
        s2 = np.bincount(index[inside], weights=w[inside] ** 2, minlength=n_bins)
        with np.errstate(divide="ignore", invalid="ignore"):
            ok &= np.where(s2 > 0, s * s / s2, 0.0) >= min_effective
    kept = np.flatnonzero(ok)
    new = np.full(n_bins + 1, -1, np.int64)  # new[-1]: the rest stays the rest
    new[kept] = np.arange(len(kept))
    out = new[index]
    if len(kept) and np.all(out >= 0):
        out[out == len(kept) - 1] = -1
    return out


def paired_chi2(index: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[float, int]:
    """χ² of the difference of two unit-normalised histograms of the *same* events, bin
    ``index`` (−1: the rest bin, left out), weights ``a`` and ``b``: Dᵀ Cov⁺ D with the
    delta-method covariance Σᵢ ψᵢψᵢᵀ (module docstring, 1), on its rank.

    >>> x = np.arange(6) % 3 - 1
    >>> paired_chi2(x, np.ones(6), np.ones(6))
    (0.0, 0)
    """
    k = int(index.max()) + 1 if len(index) else 0
    if k <= 0:
        return 0.0, 0
    alpha, beta = a / a.sum(), b / b.sum()
    onehot = (index[:, None] == np.arange(k)).astype(np.float64)
    p, q = alpha @ onehot, beta @ onehot
    psi = onehot * (alpha - beta)[:, None] - np.outer(alpha, p) + np.outer(beta, q)
    cov = psi.T @ psi
    vals, vecs = np.linalg.eigh(cov)
    keep = vals > max(float(vals.max()), 0.0) * 1e-10 if len(vals) else vals > 0
    if not np.any(keep):
        return 0.0, 0
    proj = vecs[:, keep].T @ (p - q)
    return float(np.sum(proj ** 2 / vals[keep])), int(keep.sum())


class _Binned:
    """Unit-normalised contents and Σw² variances, as :func:`chi2_between` reads them."""

    def __init__(self, index: np.ndarray, w: np.ndarray) -> None:
        k = int(index.max()) + 1
        a = w / w.sum()
        inside = index >= 0
        self._values = np.bincount(index[inside], weights=a[inside], minlength=k)
        self._variances = np.bincount(index[inside], weights=a[inside] ** 2, minlength=k)

    def values(self) -> np.ndarray:
        return self._values

    def variances(self) -> np.ndarray:
        return self._variances


def _compare(name: str, x: np.ndarray, e: np.ndarray, learned: np.ndarray, exact: np.ndarray,
             *, bins: int, min_effective: float) -> BinnedComparison | None:
    """The paired, nominal and independent χ² of observable ``x`` (``None``: one bin)."""
    from scipy.stats import chi2 as chi2_dist

    a, b = e * learned, e * exact
    index = _kept_bins(_bin_index(x, bins), (a, b), min_effective)
    if index.max() < 0:
        return None
    chi2, ndf = paired_chi2(index, a, b)
    chi2_nom, ndf_nom = paired_chi2(index, e, b)
    chi2_ind, k = chi2_between(_Binned(index, a), _Binned(index, b))
    return BinnedComparison(
        observable=name, chi2=chi2, ndf=ndf,
        p_value=float(chi2_dist.sf(chi2, ndf)) if ndf else 1.0,
        chi2_nominal=chi2_nom,
        p_value_nominal=float(chi2_dist.sf(chi2_nom, ndf_nom)) if ndf_nom else 1.0,
        chi2_independent=chi2_ind, ndf_independent=max(k - 1, 1))


# -- the per-event regression ------------------------------------------------------------


def _design(z: np.ndarray, *, quadratic: bool) -> np.ndarray:
    """1, every standardised feature and (``quadratic``) every product of two."""
    d = z.shape[1]
    cols = [np.ones(len(z)), *z.T]
    if quadratic:
        cols += [z[:, i] * z[:, j] for i in range(d) for j in range(i, d)]
    return np.column_stack(cols)


def _soft_label_fit(x: np.ndarray, w: np.ndarray, e: np.ndarray, *, ridge: float = 1e-3,
                    iterations: int = 50) -> np.ndarray:
    """β minimising Σ eᵢ[wᵢ softplus(−xᵢβ) + softplus(xᵢβ)] + ridge |β|²/2: Newton steps
    (Hessian weights |eᵢ|(1 + wᵢ)pᵢ(1 − pᵢ)), halved until the loss falls."""
    from scipy.special import expit

    def loss(beta: np.ndarray) -> float:
        f = x @ beta
        return float(np.sum(e * (w * np.logaddexp(0.0, -f) + np.logaddexp(0.0, f)))
                     + 0.5 * ridge * beta @ beta)

    beta = np.zeros(x.shape[1])
    current = loss(beta)
    for _ in range(iterations):
        p = expit(x @ beta)
        grad = x.T @ (e * ((1.0 + w) * p - w)) + ridge * beta
        h = np.abs(e * (1.0 + w)) * p * (1.0 - p)
        step = np.linalg.solve((x * h[:, None]).T @ x + ridge * np.eye(len(beta)), grad)
        t = 1.0
        while t > 1e-6:
            trial = loss(beta - t * step)
            if trial <= current:
                break
            t /= 2
        else:
            break
        beta, current = beta - t * step, trial
        if np.max(np.abs(t * step)) < 1e-8:
            break
    return beta


def _per_event(x: np.ndarray, e: np.ndarray, learned_log: np.ndarray, exact: np.ndarray,
               rng: np.random.Generator) -> PerEventAgreement | None:
    n = len(x)
    order = rng.permutation(n)
    fit, ev = order[: n // 2], order[n // 2:]
    mean = np.average(x[fit], axis=0, weights=e[fit])
    std = np.sqrt(np.average((x[fit] - mean) ** 2, axis=0, weights=e[fit]))
    varies = std > 0
    if len(fit) < 10 or len(ev) < 10:
        return None
    # never extrapolated: the evaluated events' features are clipped to the fitted range
    z = (x[:, varies] - mean[varies]) / std[varies]
    z = np.clip(z, z[fit].min(axis=0), z[fit].max(axis=0))
    d = z.shape[1]
    e_fit = e / np.mean(np.abs(e[fit]))
    quadratic = False
    train, check = fit[: len(fit) // 2], fit[len(fit) // 2:]
    if kish_ess(e[train] * exact[train]) >= EVENTS_PER_TERM * (1 + d + d * (d + 1) // 2):
        # quadratic only where it predicts the fitted half's other half better than linear
        def held_out_loss(design: np.ndarray) -> float:
            f = design[check] @ _soft_label_fit(design[train], exact[train], e_fit[train])
            return float(e_fit[check] @ (exact[check] * np.logaddexp(0.0, -f)
                                         + np.logaddexp(0.0, f)))
        quadratic = held_out_loss(_design(z, quadratic=True)) < \
            held_out_loss(_design(z, quadratic=False))
    design = _design(z, quadratic=quadratic)
    beta = _soft_label_fit(design[fit], exact[fit], e_fit[fit])
    f_hat = design[ev] @ beta
    lw, w_ev, e_ev = learned_log[ev], exact[ev], e[ev]
    a = e_ev / e_ev.sum()

    def soft_loss(f: np.ndarray) -> np.ndarray:
        return w_ev * np.logaddexp(0.0, -f) + np.logaddexp(0.0, f)

    base = soft_loss(lw)
    d_reg, d_nom = base - soft_loss(f_hat), base - soft_loss(np.zeros_like(lw))
    cl, cf = lw - a @ lw, f_hat - a @ f_hat
    denom = np.sqrt((a @ cl ** 2) * (a @ cf ** 2))
    return PerEventAgreement(
        rmse=float(np.sqrt(a @ (lw - f_hat) ** 2)), rmse_regression=float(np.sqrt(a @ f_hat ** 2)),
        correlation=float(a @ (cl * cf) / denom) if denom > 0 else float("nan"),
        loss_learned_minus_regression=float(a @ d_reg),
        loss_learned_minus_regression_error=float(np.sqrt(variance_of_mean(d_reg, e_ev))),
        loss_learned_minus_nominal=float(a @ d_nom),
        loss_learned_minus_nominal_error=float(np.sqrt(variance_of_mean(d_nom, e_ev))),
        n_fit=len(fit), n_evaluated=len(ev), terms=design.shape[1])


# -- the whole closure -------------------------------------------------------------------


def _theta0(reweighter: Any, events: EventSet, theta0: Mapping[str, float] | None
            ) -> dict[str, float]:
    out: dict[str, float] = {}
    for name in reweighter.theta_names:
        if theta0 is not None and name in theta0:
            out[name] = float(theta0[name])
        elif name in events.theta_names:
            col = events.theta_matrix([name])[:, 0]
            if len(col) and np.ptp(col) > 0:
                raise DataError(f"gold closure: the events' θ '{name}' varies "
                                f"({col.min():.6g} to {col.max():.6g}); it needs events "
                                "generated at one θ (the reweighter's reference)")
            out[name] = float(col[0]) if len(col) else reweighter.parameters[name].nominal
        else:
            out[name] = float(reweighter.parameters[name].nominal)
    return out


def gold_closure(reweighter: Any, events: EventSet, *, theta0: Mapping[str, float] | None = None,
                 level: float = LEVEL, bins: int = BINS,
                 min_effective_entries: float = MIN_EFFECTIVE_ENTRIES, seed: int = 0
                 ) -> GoldClosure:
    """The gold closure of ``reweighter`` on ``events`` at every grid point of their
    alternative weights (module docstring).

    ``events`` are held-out events of the reweighter's reference, generated at ``theta0``
    (default: their θ columns, which must be constant, else the parameters' nominal
    values), with :attr:`~ratiofit.events.EventSet.alt_weights`. A column whose θ moves a
    parameter the reweighter does not know, or lies outside its range, is left out
    (``skipped``, with the reason); the reweighter's other parameters stay at ``theta0``.
    ``seed`` splits the events for the regression.
    """
    origin = str(events.provenance.get("origin", events.provenance.get("source", "events")))
    alt = events.alt_weights
    if alt is None:
        raise DataError(f"gold closure: {origin} has no exact alternative weights "
                        "(EventSet.alt_weights); declare them at the source, e.g. the pythia "
                        "source's 'variations' option")
    base = _theta0(reweighter, events, theta0)
    e = events.event_weights
    x = events.features
    ess_events = kish_ess(e)
    rng = np.random.default_rng(seed)
    points: list[GoldPoint] = []
    skipped: dict[str, str] = {}
    for column, moved in zip(alt.names, alt.theta, strict=True):
        unknown = sorted(set(moved) - set(reweighter.theta_names))
        if unknown:
            skipped[column] = (f"moves {', '.join(unknown)}, which the reweighter is not "
                               "parameterised in")
            continue
        theta = {**base, **moved}
        try:
            learned_log = np.asarray(reweighter.log_ratio(features=events, theta=theta),
                                     dtype=np.float64)
        except DataError as exc:  # outside the reweighter's range
            skipped[column] = str(exc)
            continue
        exact = alt.column(column)
        ess = kish_ess(e * exact)
        common: dict[str, Any] = {
            "column": column, "theta": dict(moved), "n_events": len(events), "ess": ess,
            "ess_fraction": ess / ess_events if ess_events > 0 else 0.0}
        with np.errstate(over="ignore"):
            learned = np.exp(learned_log)
        if not np.all(np.isfinite(learned)):
            bad = int(np.count_nonzero(~np.isfinite(learned)))
            points.append(GoldPoint(**common, ess_learned_fraction=0.0, features=(),
                                    calibration=None, regression=None, verdict="fail",
                                    failed=("weights",), per_test_level=level,
                                    reason=f"{bad} non-finite learned weights"))
            continue
        comparisons = [c for j, name in enumerate(events.feature_names)
                       if (c := _compare(name, x[:, j], e, learned, exact, bins=bins,
                                         min_effective=min_effective_entries)) is not None]
        calibration = _compare("log_w", learned_log, e, learned, exact, bins=bins,
                               min_effective=min_effective_entries)
        tests = [c for c in (*comparisons, calibration) if c is not None and c.ndf > 0]
        per_test = level / max(len(tests), 1)
        failed = tuple(c.observable for c in tests if c.p_value < per_test)
        points.append(GoldPoint(
            **common, ess_learned_fraction=kish_ess(e * learned) / ess_events
            if ess_events > 0 else 0.0,
            features=tuple(comparisons), calibration=calibration,
            regression=_per_event(x, e, learned_log, exact, rng), verdict="fail" if failed
            else "pass", failed=failed, per_test_level=per_test))
    return GoldClosure(points=tuple(points), theta0=base, n_events=len(events), level=level,
                       bins=bins, min_effective_entries=min_effective_entries, origin=origin,
                       skipped=skipped)
