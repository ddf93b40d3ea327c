"""Pseudo-experiments of an :class:`~ratiofit.inference.UnbinnedModel` and the toy-based
CLs they give.

A toy at parameter values φ (:func:`sample_toy`): in each channel and for each sample k,
n_k ~ Poisson(ν_k(φ)) events drawn with replacement from the sample's own simulated
events, with probability ∝ its event weight w0ᵢ — for the channel's background
∝ w0ᵢ·w(xᵢ, θ(φ)), the densities the likelihood and :meth:`UnbinnedModel.asimov` assign
them; every toy event has weight 1. The auxiliary data (each constrained parameter's
centre) are drawn from N(φ_j, σ_j), the constraint terms' own distribution.

:func:`hypotest_toys` follows the procedure of pyhf's ``ToyCalculator``
(pyhf.infer.calculators): the test statistic q̃_μ (Cowan, Cranmer, Gross and Vitells,
Eur. Phys. J. C 71 (2011) 1554, Eq. 16) of the observed data, and its distributions over
toys generated under s+b (μ = ``poi_value``, the other parameters at the conditional fit
to the observed data with μ fixed there) and under b (μ = 0, the others at the μ = 0
conditional fit). CL_{s+b} and CL_b are the fractions of the s+b and b toys with
q̃_μ ≥ q̃_μ,obs, CLs = CL_{s+b}/CL_b (1 where no b toy reaches q̃_μ,obs, as the asymptotic
path has it where CL_b underflows); the expected band is the 2.3, 15.9, 50, 84.1 and
97.7 % quantiles (the −2σ … +2σ of a normal) of the CLs each b toy's own q̃_μ would give.
A toy's free fit starts from the values that generated it, its conditional fits from its
free fit's minimum (as for the observed q̃_μ).

The toys run in chunks, as jobs (:class:`~ratiofit.execution.Job`) through an
:class:`~ratiofit.execution.Executor`. Toy i of hypothesis h draws from its own generator,
seeded by ``derive_seed(seed, "unbinned-toys", h, i)``: the numbers do not depend on the
chunking, nor on the executor. A toy whose fits fail is counted, left out of the
distributions and reported (:attr:`ToyCLsResult.failed_toys`); more than 1 % failed raises
:class:`~ratiofit.inference.InferenceError`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..events import EventSet
from ..execution import Executor, Job, LocalExecutor
from ..seeding import derive_seed
from .binned_fit import _NORMAL_PERCENTILES, CLsResult
from .errors import InferenceError
from .unbinned_model import UnbinnedModel, UnbinnedModelNLL, concatenate_events

__all__ = ["ToyCLsResult", "hypotest_toys", "sample_toy"]

#: the largest fraction of toys whose fits may fail before the test is refused
MAX_FAILED_FRACTION = 0.01


@dataclass(frozen=True)
class ToyCLsResult(CLsResult):
    """A toy-based :class:`CLsResult` with the count of toys whose fits failed (left out
    of the distributions): ``(s+b, b)``."""

    failed_toys: tuple[int, int] = (0, 0)


class _ToySampler:
    """Yields, sampling weights (as cumulative sums) and constraint centres at fixed
    values: computed once, drawn from per toy."""

    def __init__(self, model: UnbinnedModel, values: Mapping[str, float]) -> None:
        at = {n: float(values.get(n, model.start[n])) for n in model.names}
        yields = model.expected_yields(at)
        theta = model.theta(at)
        self.channels: list[tuple[str, list[tuple[EventSet, float, np.ndarray]]]] = []
        for ch in model.channels:
            parts = []
            for c in ch.components:
                what = f"channel '{ch.name}', sample '{c.name}'"
                p = np.asarray(c.events.event_weights, dtype=np.float64).reshape(-1)
                if not np.all(np.isfinite(p)) or np.any(p < 0):
                    raise InferenceError(f"{what}: toys draw events with probability ∝ their "
                                         "weight, so they need finite, non-negative event "
                                         f"weights ({int(np.count_nonzero(~(p >= 0)))} are "
                                         "not); fits and asymptotic tests take negative ones")
                if c.log_ratio is None:
                    lw = np.asarray(model.reweighter.log_ratio(features=c.events, theta=theta),
                                    dtype=np.float64).reshape(-1)
                    if lw.shape != p.shape or np.any(np.isnan(lw) | (lw == np.inf)):
                        raise InferenceError(f"{what}: toys need a finite log w(x, θ) per "
                                             f"event at θ = {theta}")
                    top = float(lw.max()) if len(lw) else 0.0
                    p = p * np.exp(lw - (top if math.isfinite(top) else 0.0))
                cdf = np.cumsum(p)
                nu = float(yields[ch.name][c.name])
                if not (math.isfinite(nu) and nu >= 0):
                    raise InferenceError(f"{what}: the expected yield is {nu}")
                if nu > 0 and not (len(cdf) and cdf[-1] > 0 and math.isfinite(cdf[-1])):
                    raise InferenceError(f"{what}: toys need events with a positive total "
                                         "sampling weight")
                parts.append((c.events, nu, cdf))
            self.channels.append((ch.name, parts))
        self.constraints = [(n, at[n], float(sigma))
                            for n, (_, _, sigma) in model.constraints.items()]

    def draw(self, rng: np.random.Generator) -> tuple[dict[str, EventSet], dict[str, float]]:
        data: dict[str, EventSet] = {}
        for name, parts in self.channels:
            drawn = []
            for events, nu, cdf in parts:
                n = int(rng.poisson(nu))
                u = rng.random(n) * cdf[-1] if n else np.zeros(0)
                # row i is drawn for u in [cdf[i−1], cdf[i]): probability ∝ its weight
                idx = np.minimum(np.searchsorted(cdf, u, side="right"), len(cdf) - 1)
                drawn.append((EventSet(features=events.features[idx],
                                       feature_names=events.feature_names), np.ones(n)))
            data[name] = concatenate_events(drawn)
        centres = {n: float(rng.normal(mean, sigma)) for n, mean, sigma in self.constraints}
        return data, centres


def sample_toy(model: UnbinnedModel, values: Mapping[str, float], rng: np.random.Generator
               ) -> tuple[dict[str, EventSet], dict[str, float]]:
    """One pseudo-experiment of ``model`` at parameter ``values`` (missing ones at their
    start values): channel → events (weight 1 each) and the constraint centres (module
    docstring). Pass both to :meth:`UnbinnedModel.nll`."""
    return _ToySampler(model, values).draw(rng)


def _toy_qmu(model: UnbinnedModel, data: Mapping[str, EventSet], centres: Mapping[str, float],
             start: Mapping[str, float], poi_value: float) -> tuple[float, str | None]:
    """q̃_μ of one toy, its fits started from the generating values; NaN and why when a
    fit failed."""
    from .unbinned_analysis import _minimise, _qmu_tilde_fits

    try:
        cost = model.nll(data, constraint_centres=centres)
        best = _minimise(cost, start=start, hesse=False)
        if not best.valid:
            return math.nan, "the free fit did not converge"
        q, valid = _qmu_tilde_fits(cost, poi_value, best)
    except (InferenceError, RuntimeError, ArithmeticError, ValueError) as exc:
        return math.nan, f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"
    if not valid:
        return math.nan, "a conditional fit did not converge"
    if not math.isfinite(q):
        return math.nan, f"q̃ = {q}"
    return float(q), None


def _toy_chunk(model: UnbinnedModel, *, generate: Mapping[str, float], poi_value: float,
               seed: int, hypothesis: str, first: int, stop: int) -> dict[str, Any]:
    """Toys ``first`` … ``stop − 1`` of one hypothesis: their q̃_μ (NaN: failed), the
    count of failures and the first one's reason (a job's JSON-able result)."""
    sampler = _ToySampler(model, generate)
    q, failed, why = [], 0, None
    for i in range(first, stop):
        rng = np.random.default_rng(derive_seed(seed, "unbinned-toys", hypothesis, i))
        data, centres = sampler.draw(rng)
        value, reason = _toy_qmu(model, data, centres, generate, poi_value)
        if reason is not None:
            failed += 1
            why = why or f"toy {i}: {reason}"
        q.append(value)
    return {"q": q, "failed": failed, "why": why}


def _tail(sorted_q: np.ndarray, at: np.ndarray) -> np.ndarray:
    """The fraction of ``sorted_q`` at or above each value of ``at``."""
    n = len(sorted_q)
    return (n - np.searchsorted(sorted_q, at, side="left")) / n if n else np.full(len(at), 0.0)


def _cls_of(clsb: np.ndarray, clb: np.ndarray) -> np.ndarray:
    # CL_b = 0 (no b toy reaches q̃_obs): CLs is undefined; 1 (nothing excluded), as the
    # asymptotic path returns where CL_b underflows
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(clb > 0, clsb / np.where(clb > 0, clb, 1.0), 1.0)


def _executor_for(model: UnbinnedModel, executor: Executor | None) -> Executor:
    """``executor`` where it runs jobs in this process; otherwise an in-process one: the
    toys' jobs hold the model, whose reweighter (a Keras model with traced functions) is
    not shipped to other processes (the project does not pickle). Every toy has its own
    seed, so the numbers are the same; said in the log."""
    if executor is None:
        return LocalExecutor()
    if isinstance(executor, LocalExecutor):
        return executor
    from ..console import log

    log.warning("toy-based CLs: %s cannot ship the unbinned model to its workers (its "
                "networks are not serialised); the toys run in this process",
                type(executor).__name__)
    return LocalExecutor()


def hypotest_toys(model: UnbinnedModel, *, poi_value: float = 1.0, ntoys: int = 1000,
                  seed: int = 0, executor: Executor | None = None, chunk_size: int = 100,
                  cost: UnbinnedModelNLL | None = None) -> ToyCLsResult:
    """Toy-based CLs of μ = ``poi_value`` with the q̃_μ test statistic (module docstring).

    Parameters
    ----------
    model
        The model; its channels' data (or ``cost``'s) are the observed data.
    poi_value
        The tested value of the parameter of interest.
    ntoys
        Pseudo-experiments per hypothesis (s+b and b).
    seed
        Determines every toy (whatever ``chunk_size`` and ``executor``).
    executor
        Runs the chunks (default: :class:`~ratiofit.execution.LocalExecutor`). Each job
        carries the model, which is not shipped to other processes: with an executor
        that would run jobs elsewhere the toys run in this process, with a warning.
    chunk_size
        Toys per job.
    cost
        The cost of the observed data (default: ``model.nll()``).
    """
    from .unbinned_analysis import _minimise, _qmu_tilde_fits

    if not (isinstance(ntoys, int) and ntoys >= 1):
        raise InferenceError(f"ntoys must be a positive integer, got {ntoys!r}")
    if not (isinstance(chunk_size, int) and chunk_size >= 1):
        raise InferenceError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    poi = model.poi
    lo, hi = model.limits[poi]
    if not lo <= poi_value <= hi:
        raise InferenceError(f"poi_value {poi_value:g} is outside {poi}'s bounds "
                             f"[{lo:g}, {hi:g}]")
    cost = cost or model.nll()
    best = _minimise(cost, hesse=False)
    q_obs, valid = _qmu_tilde_fits(cost, poi_value, best)
    if not (best.valid and valid):
        raise InferenceError(f"the fits of the observed data at {poi} = {poi_value:g} did "
                             "not converge")
    generate = {}
    for hypothesis, mu in (("sb", float(poi_value)), ("b", 0.0)):
        cond = _minimise(cost, fixed={poi: mu}, hesse=False)
        if not cond.valid:
            raise InferenceError(f"the conditional fit of the observed data at {poi} = "
                                 f"{mu:g} (the toys' {hypothesis} hypothesis) did not converge")
        generate[hypothesis] = {n: float(cond.values[n]) for n in model.names}
    jobs = []
    for h in ("sb", "b"):
        for first in range(0, ntoys, chunk_size):
            stop = min(first + chunk_size, ntoys)
            jobs.append(Job(name=f"unbinned-toys-{poi}{poi_value:g}-{h}-{first}-{stop - 1}",
                            function=_toy_chunk, kwargs={
                                "model": model, "generate": generate[h],
                                "poi_value": float(poi_value), "seed": int(seed),
                                "hypothesis": h, "first": first, "stop": stop}))
    results = _executor_for(model, executor).run(jobs)
    q: dict[str, list[float]] = {"sb": [], "b": []}
    failed = {"sb": 0, "b": 0}
    why = None
    for job, res in zip(jobs, results, strict=True):
        h = job.kwargs["hypothesis"]
        q[h].extend(float(v) for v in res["q"])
        failed[h] += int(res["failed"])
        why = why or res["why"]
    if failed["sb"] + failed["b"] > MAX_FAILED_FRACTION * 2 * ntoys:
        raise InferenceError(
            f"toy-based CLs at {poi} = {poi_value:g}: the fits of {failed['sb']} of {ntoys} "
            f"s+b and {failed['b']} of {ntoys} b toys failed (more than "
            f"{MAX_FAILED_FRACTION:.0%}); first: {why}")
    q_sb = np.sort(np.array([v for v in q["sb"] if math.isfinite(v)]))
    q_b = np.sort(np.array([v for v in q["b"] if math.isfinite(v)]))
    at = np.array([q_obs])
    clsb, clb = float(_tail(q_sb, at)[0]), float(_tail(q_b, at)[0])
    cls = float(_cls_of(np.array([clsb]), np.array([clb]))[0])
    # the expected band: the CLs each b toy's q̃ gives, at the normal's ±1σ, ±2σ quantiles
    per_toy = _cls_of(_tail(q_sb, q_b), _tail(q_b, q_b))
    band = np.percentile(per_toy, _NORMAL_PERCENTILES, method="linear")
    return ToyCLsResult(poi_value=float(poi_value), cls_observed=cls, clsb=clsb, clb=clb,
                        cls_expected=tuple(float(v) for v in band), calctype="toybased",
                        test_stat="qtilde", ntoys=int(ntoys),
                        failed_toys=(failed["sb"], failed["b"]))
