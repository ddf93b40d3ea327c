"""The learned ratio's own error as constrained modifiers of a binned fit.

A reweighter nuisance's templates h_b(θ) come from a learned ratio, which carries its own
error (finite training samples, training noise). Bootstrap replicas of the reweighter
(:func:`ratiofit.uncertainty.bootstrap`: retrained on Poisson(1)-weighted copies of the
training samples) measure it. With the additive morphing B_b(θ) = n_b + h_b(θ) − h_b(θ₀)
(:mod:`ratiofit.inference.pyhf_bridge`), replica r predicts

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
from .templates import FlowPolicy, reweighted_template

__all__ = ["LearnedRatioTerm", "coverage_factor", "learned_ratio_term", "principal_shifts",
           "unbinned_replica_budget"]

#: Components smaller than this fraction of the largest are dropped (numerical zeros).
_RELATIVE_CUTOFF = 1e-6


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
    from .unbinned import fit_unbinned

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
