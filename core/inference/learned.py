"""The learned ratio's own error as constrained modifiers of a binned fit.

A reweighter nuisance's templates h_b(θ) come from a learned ratio, which carries its own
error (finite training samples, training noise). Bootstrap replicas of the reweighter
(:func:`ratiofit.uncertainty.bootstrap`: retrained on Poisson(1)-weighted copies of the
training samples) measure it. With the additive morphing B_b(θ) = n_b + h_b(θ) − h_b(θ₀)
(:mod:`ratiofit.inference.pyhf_model`), replica r predicts

    D_rb(θ) = [h_rb(θ) − h_rb(θ₀)] − [h_b(θ) − h_b(θ₀)]

more (or less) than the main reweighter; it vanishes at θ₀, where the prediction is the
nominal histogram whatever the ratio, and grows with |θ − θ₀|. The covariance of the
replicas' D(θ̂) over all bins of all samples that carry the nuisance, at the fitted θ̂, is
written as its principal components, each a ``histosys`` modifier with a unit normal
constraint and ±1σ = ± k·√λ·v (the standard eigenvector decomposition of a template
covariance). Their number is at most the number of replicas − 1.

Two documented approximations:

- the covariance is evaluated at θ̂ of a fit without these modifiers (linearised there):
  where the profiled θ of a hypothesis test moves by a fraction of σ, the learned error
  changes at second order;
- with R replicas the variances have R − 1 degrees of freedom; each component is scaled by
  k = t_{R−1}(0.8413)/z(0.8413) (1.32 for 3 replicas), the factor that makes a ±1σ interval
  of a t-distributed estimate cover 68.27 % (the same factor as the fits' error budget,
  :class:`ratiofit.uncertainty.ErrorBudget`, when this component dominates).

The modifiers are plain HistFactory ``histosys``: they are in the portable workspace and
in the exact-mode model alike, so every fit, CLs value, upper limit and impact includes
them.

An unbinned fit (:func:`~ratiofit.inference.fit_unbinned`) has no templates to shift:
there :func:`unbinned_replica_budget` refits the data with each replica's cost and adds
the replicas' spread to the fit's covariance, as a learned fit's error budget does
(:class:`ratiofit.uncertainty.ErrorBudget`: Welch–Satterthwaite degrees of freedom and
the t factor) — a documented inflation of the interval, not a term in the likelihood
(profile scans and MINOS intervals of the cost do not include it).

Examples
--------
Two bins, three replicas whose predictions differ from the main one by ±2 and 0 events in
the first bin give one component of √(k²·4) events there:

>>> import numpy as np
>>> d = np.array([[2.0, 0.0], [-2.0, 0.0], [0.0, 0.0]])
>>> shifts = principal_shifts(d, factor=1.0)
>>> [round(abs(float(x)), 6) for x in shifts[0]]
[2.0, 0.0]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import InferenceError
from .templates import FlowPolicy, histogram_template, reweighted_template

__all__ = ["LearnedRatioTerm", "NonClosureTerm", "coverage_factor", "learned_ratio_term",
           "nonclosure_term", "principal_shifts", "unbinned_replica_budget"]

#: Components smaller than this fraction of the largest are dropped (numerical zeros).
_RELATIVE_CUTOFF = 1e-6
#: The non-closure shift of a bin is at most this fraction of its nominal count, so that
#: the expectation stays positive to α = ±2 (reported as ``capped_bins``).
_MAX_RELATIVE_SHIFT = 0.5


def coverage_factor(replicas: int) -> float:
    """t_{R−1}(0.8413)/z(0.8413): the width factor for a variance from ``replicas``
    replicas (R − 1 degrees of freedom)."""
    from scipy.stats import norm, t

    if replicas < 2:
        raise InferenceError(f"the learned-ratio term needs at least 2 replicas, got {replicas}")
    q = norm.cdf(1.0)
    return float(t.ppf(q, replicas - 1) / norm.ppf(q))


def principal_shifts(deviations: Any, *, factor: float) -> list[np.ndarray]:
    """The principal components of the replicas' ``deviations`` (``[R, bins]``) about their
    mean, each as the ±1σ shift ``factor``·√λ·v, largest first; sign fixed so that the
    largest entry of each is positive."""
    d = np.asarray(deviations, dtype=np.float64)
    if d.ndim != 2 or d.shape[0] < 2:
        raise InferenceError(f"deviations must be [replicas ≥ 2, bins], got shape {d.shape}")
    centred = (d - d.mean(axis=0)) / np.sqrt(d.shape[0] - 1)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    # Bins where no replica deviates (e.g. no events there) stay exactly unshifted: the
    # decomposition's rounding (~1e-17) would otherwise make an empty bin's expectation
    # negative at a negative modifier value, and its Poisson term undefined.
    still = np.all(centred == 0.0, axis=0)
    out = []
    for sk, v in zip(s, vt, strict=True):
        if sk <= _RELATIVE_CUTOFF * s[0] or sk == 0:
            continue
        shift = factor * sk * v
        shift[still] = 0.0
        if shift[np.argmax(np.abs(shift))] < 0:
            shift = -shift
        out.append(shift)
    return out


@dataclass
class LearnedRatioTerm:
    """The learned-ratio modifiers of one reweighter nuisance.

    Attributes
    ----------
    nuisance
        The reweighter nuisance's name.
    theta
        θ̂ at which the replicas' deviations were evaluated.
    replicas
        Number of replicas.
    factor
        The width factor k (:func:`coverage_factor`).
    shifts
        Modifier name → {(channel, sample): ±1σ shift of that sample's counts per bin}.
    """

    nuisance: str
    theta: float
    replicas: int
    factor: float
    shifts: dict[str, dict[tuple[str, str], np.ndarray]] = field(default_factory=dict)

    def summary(self, nominal: Mapping[tuple[str, str], np.ndarray] | None = None
                ) -> dict[str, Any]:
        """JSON-ready: θ̂, replicas, k, and per modifier the largest |shift| (and relative
        to the nominal count where ``nominal`` is given)."""
        mods = {}
        for name, per in self.shifts.items():
            entry: dict[str, Any] = {"max_abs_shift": float(max(np.max(np.abs(v))
                                                            for v in per.values()))}
            if nominal is not None:
                with np.errstate(divide="ignore", invalid="ignore"):
                    rel = [np.abs(v) / nominal[k] for k, v in per.items() if k in nominal]
                entry["max_relative_shift"] = float(max(
                    np.max(np.where(np.isfinite(r), r, 0.0)) for r in rel)) if rel else None
            mods[name] = entry
        return {"nuisance": self.nuisance, "theta": self.theta, "replicas": self.replicas,
                "factor": self.factor, "modifiers": mods}


def _change(rw: Any, channel: Any, sample: Any, at: Mapping[str, float],
            ref: Mapping[str, float], flow: FlowPolicy) -> np.ndarray:
    """h_b(θ̂) − h_b(θ₀) of one sample with reweighter ``rw``."""
    def template(theta: Mapping[str, float]) -> np.ndarray:
        return reweighted_template(reweighter=rw, events=sample.events,
                                   observable=channel.observable, edges=channel.edges,
                                   theta=theta, weights=sample.weights, flow=flow).values

    return template(at) - template(ref)


def learned_ratio_term(*, channels: Sequence[Any], nuisance: Any, replicas: Sequence[Any],
                       theta: float, flow: FlowPolicy = "error") -> LearnedRatioTerm:
    """The learned-ratio modifiers of ``nuisance`` (a
    :class:`~ratiofit.inference.ReweighterNuisance`) from its ``replicas`` (reweighters of
    the same parameters), at θ = ``theta``, over the samples of ``channels`` that carry it.

    Modifier names are ``<nuisance>_learned_<k>``, k = 1, 2, …
    """
    reps = list(replicas)
    factor = coverage_factor(len(reps))
    at, ref = nuisance.theta_point(theta), nuisance.theta_point(nuisance.nominal)
    keys: list[tuple[str, str]] = []
    sizes: list[int] = []
    rows: list[list[np.ndarray]] = [[] for _ in reps]
    for ch in channels:
        for s in ch.samples:
            if nuisance.name not in s.nuisances:
                continue

            main = _change(nuisance.reweighter, ch, s, at, ref, flow)
            for r, rw in enumerate(reps):
                rows[r].append(_change(rw, ch, s, at, ref, flow) - main)
            keys.append((ch.name, s.name))
            sizes.append(len(main))
    term = LearnedRatioTerm(nuisance=nuisance.name, theta=float(theta), replicas=len(reps),
                            factor=factor)
    if not keys:
        return term
    deviations = np.array([np.concatenate(r) for r in rows])
    bounds = np.cumsum([0, *sizes])
    for k, shift in enumerate(principal_shifts(deviations, factor=factor), start=1):
        term.shifts[f"{nuisance.name}_learned_{k}"] = {
            key: shift[bounds[i]:bounds[i + 1]] for i, key in enumerate(keys)}
    return term


@dataclass
class NonClosureTerm:
    """The non-closure modifier of one reweighter nuisance: simulated minus predicted
    counts at θ̂.

    Attributes
    ----------
    nuisance
        The reweighter nuisance's name.
    theta
        θ̂ at which the samples were simulated.
    shifts
        Modifier name (``<nuisance>_nonclosure``) → {(channel, sample): ±1σ shift per bin}.
    chi2, ndf
        Σ_b Δ_b²/Var(Δ_b) over bins with a non-zero variance, and their number: how far the
        difference is beyond the two samples' Monte-Carlo noise (χ²/ndf ≈ 1: the modifier
        is mostly noise, and only widens the interval).
    capped_bins, capped_excess
        Bins whose |Δ_b| exceeded half their nominal count, and the summed excess: the
        shift there is half the nominal count (a larger one would make the expectation
        negative within α = ±2); such bins have a few Monte-Carlo events, whose noise the
        staterror carries.
    """

    nuisance: str
    theta: float
    shifts: dict[str, dict[tuple[str, str], np.ndarray]] = field(default_factory=dict)
    chi2: float = 0.0
    ndf: int = 0
    capped_bins: int = 0
    capped_excess: float = 0.0

    def summary(self, nominal: Mapping[tuple[str, str], np.ndarray] | None = None
                ) -> dict[str, Any]:
        """JSON-ready: θ̂, χ²/ndf and the largest |shift| of the modifier."""
        shift = max((float(np.max(np.abs(v))) for per in self.shifts.values()
                     for v in per.values()), default=0.0)
        return {"nuisance": self.nuisance, "theta": self.theta, "chi2": self.chi2,
                "ndf": self.ndf, "capped_bins": self.capped_bins,
                "capped_excess": self.capped_excess,
                "modifiers": {n: {"max_abs_shift": shift} for n in self.shifts}}


def nonclosure_term(*, channels: Sequence[Any], nuisance: Any, theta: float,
                    simulated: Mapping[tuple[str, str], tuple[Any, Any]],
                    flow: FlowPolicy = "error") -> NonClosureTerm:
    """The non-closure modifier of ``nuisance`` at θ = ``theta``.

    ``simulated`` maps (channel, sample) to (events, weights) generated at θ̂ (the
    nuisance's parameter at ``theta``, the reweighter's others fixed as in the nuisance),
    with weights on the same scale as the nominal sample's (the same yield per event).
    For every sample of ``channels`` that carries the nuisance and has a simulated
    counterpart, the difference

        Δ_b = S_b(θ̂) − [n_b + h_b(θ̂) − h_b(θ₀)]

    between the simulated counts and the model's additive prediction is the error of the
    learned ratio at θ̂ that the bootstrap replicas cannot see (a bias common to every
    training of the same network, e.g. from too few epochs). It becomes one ``histosys``
    modifier ``<nuisance>_nonclosure`` with ±1σ = ±Δ across all those samples, the usual
    non-closure uncertainty of a data-driven or reweighted template. Its size includes the
    two samples' Monte-Carlo noise; ``chi2``/``ndf`` says how much of it is beyond that.
    A bin's shift is at most half its nominal count (:class:`NonClosureTerm`,
    ``capped_bins``).

    >>> import numpy as np
    >>> from ratiofit.events import EventSet
    >>> from ratiofit.inference import Channel, ReweighterNuisance, Sample
    >>> from ratiofit.testing import analytic_gaussian_reweighter
    >>> rng = np.random.default_rng(0)
    >>> nominal = EventSet(features=rng.normal(0, 1, (50000, 1)), feature_names=("x0",))
    >>> sim = EventSet(features=rng.normal(0.2, 1, (50000, 1)), feature_names=("x0",))
    >>> nu = ReweighterNuisance(name="shape", reweighter=analytic_gaussian_reweighter(),
    ...                         parameter="mu", nominal=0.0, sigma=0.1)
    >>> ch = Channel(name="c", observable="x0", edges=[-8, -1, 0, 1, 8], observed=[1, 1, 1, 1],
    ...              samples=(Sample(name="bkg", events=nominal, nuisances=("shape",)),))
    >>> term = nonclosure_term(channels=[ch], nuisance=nu, theta=0.2,
    ...                        simulated={("c", "bkg"): (sim, None)})
    >>> 0.3 < term.chi2 / term.ndf < 3   # the exact ratio: Δ is Monte-Carlo noise only
    True
    """
    at, ref = nuisance.theta_point(theta), nuisance.theta_point(nuisance.nominal)
    term = NonClosureTerm(nuisance=nuisance.name, theta=float(theta))
    per: dict[tuple[str, str], np.ndarray] = {}
    chi2, ndf = 0.0, 0
    for ch in channels:
        for s in ch.samples:
            key = (ch.name, s.name)
            if nuisance.name not in s.nuisances or key not in simulated:
                continue

            def reweighted(theta: Mapping[str, float], s: Any = s, ch: Any = ch) -> Any:
                return reweighted_template(reweighter=nuisance.reweighter, events=s.events,
                                           observable=ch.observable, edges=ch.edges,
                                           theta=theta, weights=s.weights, flow=flow)

            nominal = histogram_template(events=s.events, observable=ch.observable,
                                         edges=ch.edges, weights=s.weights, flow=flow)
            moved = reweighted(at)
            predicted = nominal.values + moved.values - reweighted(ref).values
            events, weights = simulated[key]
            sim = histogram_template(events=events, observable=ch.observable, edges=ch.edges,
                                     weights=weights, flow=flow)
            delta = sim.values - predicted
            var = sim.variances + moved.variances
            used = var > 0
            chi2 += float(np.sum(delta[used] ** 2 / var[used]))
            ndf += int(np.count_nonzero(used))
            # A histosys shift as large as the nominal count makes the expectation
            # negative at α = −1 and the Poisson term undefined (a hypothesis test's fit
            # then ends in NaN): in the sparse tail bins where that happens the difference
            # is Monte-Carlo noise of a few events, which the staterror already carries.
            limit = _MAX_RELATIVE_SHIFT * np.maximum(nominal.values, 0.0)
            capped = np.abs(delta) > limit
            term.capped_bins += int(np.count_nonzero(capped))
            term.capped_excess += float(np.sum(np.abs(delta[capped]) - limit[capped]))
            per[key] = np.clip(delta, -limit, limit)
    if per:
        term.shifts[f"{nuisance.name}_nonclosure"] = per
    term.chi2, term.ndf = chi2, ndf
    return term


def unbinned_replica_budget(result: Any, *, replica_costs: Sequence[Any],
                            **fit_options: Any) -> dict[str, Any]:
    """The error budget of an unbinned fit ``result`` (:class:`UnbinnedFitResult`) with
    the learned ratio's error: each of ``replica_costs`` (the same cost built with a
    bootstrap replica of the reweighter) is fitted from ``result``'s values (MIGRAD +
    HESSE, no MINOS or scans), and the spread of the fitted values is the ``reweighter``
    component beside the fit's own (``stat``) covariance.

    Returns a FitResult-style dict: ``parameters.<name>`` with ``value``, the total
    ``error`` (68.27 % half-width with the t factor), ``error_components``, ``dof`` and
    ``interval_95``; ``covariance``, ``covariance_components`` and ``replica_values``.
    """
    from ..uncertainty import ErrorBudget
    from .unbinned_fit import fit_unbinned

    names = list(result.names)
    replica_values: dict[str, list[float]] = {n: [] for n in names}
    options = {"minos": False, "scan": False, "with_fixed_theta": False, **fit_options}
    for cost in replica_costs:
        r = fit_unbinned(cost, start=dict(result.values), **options)
        if not r.valid:
            raise InferenceError("a replica's unbinned fit did not converge")
        for n in names:
            replica_values[n].append(float(r.values[n]))
    out: dict[str, Any] = {"names": names,
                           "parameters": {n: {"value": float(result.values[n])} for n in names},
                           "replica_values": replica_values}
    ErrorBudget.from_replicas(names=names, stat=np.asarray(result.covariance), reference=None,
                              replica_values=replica_values).to_fit(out)
    return out
