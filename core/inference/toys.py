"""Toys and coverage of the unbinned fit.

:func:`generate_toy` draws Poisson-fluctuated pseudo-data from finite event pools (signal
and nominal background simulation; background at θ ≠ θ₀ by accept/reject with w(x, θ)),
and :func:`coverage` fits each toy (:mod:`ratiofit.inference.unbinned_fit`) and counts
how often the 68% interval contains the true μ (:class:`CoverageResult`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

from ..events import EventSet
from ..log_ratio import LogRatioModel
from .caches import CacheMode
from .costs import ExtendedUnbinnedNLL
from .errors import InferenceError
from .grid import LogRatioGrid
from .normalisation import ReferenceNormalisation
from .nuisances import NormFactor, Nuisance, _centre, _resolve_nuisances
from .unbinned_fit import FitCost, _conditional_min, _migrad, _minuit

__all__ = ["CoverageResult", "Toy", "coverage", "generate_toy"]


@dataclass
class Toy:
    """One pseudo-experiment: its events (signal rows first) and where they came from."""

    data: EventSet
    n_signal: int
    n_background: int
    signal_index: np.ndarray
    background_index: np.ndarray


def _draw(n_pool: int, n: int, log_weight: np.ndarray | None, w0: np.ndarray | None,
          rng: np.random.Generator, what: str) -> np.ndarray:
    """``n`` distinct pool rows, with probability ∝ w0·exp(log_weight) (accept/reject)."""
    if log_weight is None and w0 is None:
        if n > n_pool:
            raise InferenceError(f"{what}: toy needs {n} events, the pool has {n_pool}")
        return rng.choice(n_pool, size=n, replace=False)
    lw = np.zeros(n_pool) if log_weight is None else np.asarray(log_weight, dtype=np.float64)
    if lw.shape != (n_pool,) or not np.all(np.isfinite(lw)):
        raise InferenceError(f"{what}: log weights must be {n_pool} finite numbers")
    p = np.exp(lw - lw.max())
    if w0 is not None:
        if np.any(w0 < 0):
            raise InferenceError(f"{what}: accept/reject draws events with probability ∝ "
                                 f"their weight, so it needs weights >= 0 "
                                 f"({int(np.count_nonzero(w0 < 0))} are negative)")
        p = p * w0 / w0.max()
    # Accepting each row of a random permutation with probability p/max(p) and keeping
    # the first n accepted draws n distinct rows with inclusion ∝ p.
    perm = rng.permutation(n_pool)
    accepted = perm[rng.random(n_pool) < p[perm] / p.max()]
    if len(accepted) < n:
        raise InferenceError(f"{what}: the pool yields {len(accepted)} accepted events, the toy "
                             f"needs {n}; use a larger pool")
    return accepted[:n]


def generate_toy(*, signal_pool: EventSet, background_pool: EventSet, signal_yield: float,
                 background_yield: float, mu: float, rng: np.random.Generator,
                 background_log_weight: np.ndarray | None = None, norm: float = 1.0) -> Toy:
    """Poisson-fluctuated pseudo-data resampled from finite simulated pools.

    n_s ~ Poisson(μν_s) signal and n_b ~ Poisson(k·ν_b) background events are drawn
    *without replacement* from the pools (so no event repeats within a toy; toys share
    pool events, which correlates them by about toy size / pool size — keep pools ≥ 10×
    the toy). Background at θ ≠ θ₀: either pass a pool simulated at θ, or the nominal pool
    with ``background_log_weight`` = log w(x, θ) of its events (accept/reject with
    probability w/max w; compute it once per θ, not per toy). Pool event weights, when
    present, enter the acceptance too (they must be non-negative).

    Parameters
    ----------
    signal_pool, background_pool
        Simulated events with the same feature names.
    signal_yield, background_yield
        ν_s (at μ = 1) and ν_b.
    mu, norm
        True signal strength and background normalisation factor.
    rng
        Random generator (the only source of randomness).
    background_log_weight
        log w(x, θ_true) for the background pool events, or ``None``.
    """
    if signal_pool.feature_names != background_pool.feature_names:
        raise InferenceError(f"pools have different features: {signal_pool.feature_names} vs "
                             f"{background_pool.feature_names}")
    lam_s, lam_b = mu * signal_yield, norm * background_yield
    if not (lam_s >= 0 and lam_b >= 0 and math.isfinite(lam_s) and math.isfinite(lam_b)):
        raise InferenceError(f"expected toy yields must be non-negative, got {lam_s}, {lam_b}")
    n_s, n_b = int(rng.poisson(lam_s)), int(rng.poisson(lam_b))
    si = _draw(len(signal_pool), n_s, None, signal_pool.weights, rng, "signal pool")
    bi = _draw(len(background_pool), n_b, background_log_weight, background_pool.weights, rng,
               "background pool")
    feats = np.concatenate([signal_pool.features[si], background_pool.features[bi]])
    particles = None
    if signal_pool.particles is not None and background_pool.particles is not None:
        import awkward as ak

        particles = ak.concatenate([signal_pool.particles[si], background_pool.particles[bi]])
    data = EventSet(features=feats, feature_names=signal_pool.feature_names, particles=particles,
                    provenance={"origin": "toy"})
    return Toy(data=data, n_signal=n_s, n_background=n_b, signal_index=si, background_index=bi)


@dataclass
class CoverageResult:
    """Fraction of toys whose 68% interval for the poi contains its true value.

    ``error`` is the binomial standard error sqrt(f(1 − f)/n) over the ``n_valid`` toys
    whose fit and interval succeeded (failures are counted, not covered or uncovered).
    """

    fraction: float
    error: float
    n_toys: int
    n_valid: int
    n_failed: int
    mu_true: float
    method: str
    intervals: list[tuple[float, float]]
    estimates: list[float]
    seconds: float
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _interval(cost: FitCost, m: Any, method: str, tol: float) -> tuple[float, float] | None:
    poi = cost.poi
    if method == "minos":
        try:
            m.minos(poi)
        except RuntimeError:
            return None
        me = m.merrors[poi]
        if not me.is_valid:
            return None
        return float(m.values[poi] + me.lower), float(m.values[poi] + me.upper)
    from scipy.optimize import brentq

    best = {n: float(m.values[n]) for n in m.parameters}
    fmin, sigma = float(m.fval), float(m.errors[poi])
    def excess(v: float) -> float:
        return 2 * (_conditional_min(cost, {**best, poi: v}, [poi], tol)[0] - fmin) - 1

    out = []
    for sign in (-1, 1):
        step = sigma
        far = best[poi] + sign * step
        for _ in range(6):  # widen until 2ΔNLL > 1 is bracketed
            if excess(far) > 0:
                break
            step *= 2
            far = best[poi] + sign * step
        else:
            return None
        a, b = sorted((best[poi], far))
        out.append(float(brentq(excess, a, b, xtol=1e-4 * sigma)))
    return out[0], out[1]


def coverage(*, n_toys: int, reweighter: LogRatioModel, nuisances: Sequence[Nuisance],
             signal_pool: EventSet, background_pool: EventSet, signal_yield: float,
             background_yield: float,
             signal_log_ratio: Callable[[EventSet], Any] | tuple[np.ndarray, np.ndarray],
             mu_true: float, theta_true: Mapping[str, float] | None = None,
             reference: Any = None, norm: NormFactor | None = None, norm_true: float = 1.0,
             fixed: Mapping[str, float] | None = None, method: Literal["minos", "profile"]
             = "minos", randomise_constraints: bool = True, cache: CacheMode = "grid",
             grid_points: int = 21, poi: str = "signal_strength", seed: int = 0,
             tol: float = 0.1, executor: Any = None) -> CoverageResult:
    """Generate toys at (μ, θ) and count how often the 68% interval of μ covers μ.

    Toys come from :func:`generate_toy` (background at θ_true by accept/reject on the
    nominal pool with w(x, θ_true), computed once). With ``randomise_constraints`` each
    toy also draws its auxiliary measurements — the constraint centres θ₀ ~ N(θ_true, σ)
    and k₀ ~ N(k_true, σ_k) — as a frequentist ensemble must; otherwise they stay at the
    nominal values. Each toy is fitted (MIGRAD, HESSE) and its interval found by MINOS
    or by root-finding the profiled 2ΔNLL = 1 (``method='profile'``).

    With ``cache='grid'`` the per-event θ grids of both pools and of the reference are
    built once and every toy takes its rows, so a toy costs no network evaluation.

    Parameters
    ----------
    n_toys
        Number of pseudo-experiments.
    reweighter, nuisances, fixed, reference, norm, poi, cache, grid_points, tol
        As for :class:`ExtendedUnbinnedNLL` / :func:`fit_unbinned`.
    signal_pool, background_pool
        Simulated signal and nominal-background events to resample.
    signal_yield, background_yield
        ν_s, ν_b.
    signal_log_ratio
        A callable mapping an EventSet to log r_s, or a pair of arrays (for the signal
        pool, for the background pool) subset along with the events.
    mu_true, theta_true, norm_true
        The truth toys are generated at (θ default: the nuisances' nominal values).
    method
        ``minos`` or ``profile``.
    randomise_constraints
        Draw the constraint centres per toy (above).
    seed
        Seeds the toys: toy k draws from the k-th child of ``np.random.SeedSequence(seed)``.
    executor
        Runs the toys, one job each (:mod:`ratiofit.execution`; default: in this process,
        one after the other). A process or dask executor pickles the reweighter and the
        pools with each toy.
    """
    t0 = time.perf_counter()
    if n_toys < 1:
        raise InferenceError(f"n_toys must be positive, got {n_toys}")
    if method not in ("minos", "profile"):
        raise InferenceError(f"method must be 'minos' or 'profile', got {method!r}")
    resolved, fixed_all = _resolve_nuisances(reweighter, nuisances, fixed)
    truth = {nu.name: _centre(nu) for nu in resolved}
    for k, v in (theta_true or {}).items():
        if k not in truth:
            raise InferenceError(f"theta_true names '{k}', not a nuisance ({list(truth)})")
        truth[k] = float(v)
    ref_theta = {p.name: p.nominal for p in reweighter.parameters}
    at_nominal = all(truth[n] == ref_theta[n] for n in truth) and \
        all(fixed_all[n] == ref_theta[n] for n in fixed_all)
    bkg_lw = None if at_nominal else reweighter.log_ratio(
        features=background_pool, theta={**fixed_all, **truth})
    grids: tuple[LogRatioGrid, LogRatioGrid] | None = None
    if cache == "grid":
        if len(resolved) != 1:
            raise InferenceError("grid interpolation supports one nuisance; use cache='lru'")
        lim = resolved[0].limits
        sig_grid, bkg_grid = (LogRatioGrid.build(reweighter, pool, name=resolved[0].name,
                                                 points=grid_points, bounds=lim, fixed=fixed_all)
                              for pool in (signal_pool, background_pool))
        grids = (sig_grid, bkg_grid)
    if reference is not None and not isinstance(reference, ReferenceNormalisation):
        reference = ReferenceNormalisation(reweighter, reference, nuisances=resolved,
                                           fixed=fixed_all, cache=cache,
                                           grid_points=grid_points)
    from ..execution import Job, LocalExecutor

    # One job per toy, each with its own random stream (toy k: the k-th child of ``seed``),
    # so a toy's numbers do not depend on which executor ran it or in which order.
    streams = np.random.SeedSequence(seed).spawn(n_toys)
    shared = {"reweighter": reweighter, "resolved": resolved, "truth": truth,
              "fixed_all": fixed_all, "signal_pool": signal_pool,
              "background_pool": background_pool, "signal_yield": signal_yield,
              "background_yield": background_yield, "signal_log_ratio": signal_log_ratio,
              "mu_true": mu_true, "bkg_lw": bkg_lw, "norm": norm, "norm_true": norm_true,
              "randomise_constraints": randomise_constraints, "grids": grids,
              "reference": reference, "poi": poi, "cache": cache, "tol": tol,
              "method": method}
    jobs = [Job(name=f"toy-{k}", function=_one_toy,
                kwargs={**shared, "stream": streams[k]}) for k in range(n_toys)]
    outcomes = (executor or LocalExecutor()).run(jobs)
    intervals: list[tuple[float, float]] = []
    estimates: list[float] = []
    covered = failed = 0
    for out in outcomes:
        if out is None:
            failed += 1
            continue
        iv, estimate = out
        intervals.append(iv)
        estimates.append(estimate)
        covered += int(iv[0] <= mu_true <= iv[1])
    n_valid = n_toys - failed
    frac = covered / n_valid if n_valid else math.nan
    err = math.sqrt(frac * (1 - frac) / n_valid) if n_valid else math.nan
    return CoverageResult(
        fraction=frac, error=err, n_toys=n_toys, n_valid=n_valid, n_failed=failed,
        mu_true=mu_true, method=method, intervals=intervals, estimates=estimates,
        seconds=time.perf_counter() - t0,
        settings={"theta_true": truth, "norm_true": norm_true, "cache": cache,
                  "randomise_constraints": randomise_constraints, "seed": seed,
                  "signal_yield": signal_yield, "background_yield": background_yield})


def _one_toy(*, stream: np.random.SeedSequence, reweighter: LogRatioModel,
             resolved: Sequence[Nuisance], truth: Mapping[str, float],
             fixed_all: Mapping[str, float], signal_pool: EventSet, background_pool: EventSet,
             signal_yield: float, background_yield: float, signal_log_ratio: Any,
             mu_true: float, bkg_lw: np.ndarray | None, norm: NormFactor | None,
             norm_true: float, randomise_constraints: bool,
             grids: tuple[LogRatioGrid, LogRatioGrid] | None, reference: Any, poi: str,
             cache: CacheMode, tol: float, method: str
             ) -> tuple[tuple[float, float], float] | None:
    """One pseudo-experiment of :func:`coverage`: generate, fit, interval (``None`` where
    the fit or the interval fails)."""
    rng = np.random.default_rng(stream)
    toy = generate_toy(signal_pool=signal_pool, background_pool=background_pool,
                       signal_yield=signal_yield, background_yield=background_yield,
                       mu=mu_true, rng=rng, background_log_weight=bkg_lw, norm=norm_true)
    if callable(signal_log_ratio):
        log_rs = signal_log_ratio(toy.data)
    else:
        log_rs = np.concatenate([np.asarray(signal_log_ratio[0])[toy.signal_index],
                                 np.asarray(signal_log_ratio[1])[toy.background_index]])
    toy_nuis = []
    for nu in resolved:
        centre = _centre(nu)
        if randomise_constraints and nu.sigma is not None:
            centre = float(rng.normal(truth[nu.name], nu.sigma))
        toy_nuis.append(Nuisance(nu.name, nominal=centre, sigma=nu.sigma, limits=nu.limits))
    toy_norm = norm
    if norm is not None and randomise_constraints and norm.sigma is not None:
        toy_norm = NormFactor(norm.name, sigma=norm.sigma,
                              nominal=max(float(rng.normal(norm_true, norm.sigma)), 1e-3))
    data_grid = None if grids is None else LogRatioGrid.concatenate(
        [grids[0].take(toy.signal_index), grids[1].take(toy.background_index)])
    cost = ExtendedUnbinnedNLL(toy.data, reweighter=reweighter, nuisances=toy_nuis,
                               signal_yield=signal_yield, background_yield=background_yield,
                               signal_log_ratio=log_rs, reference=reference, norm=toy_norm,
                               fixed=fixed_all, poi=poi, poi_start=mu_true,
                               cache=cache, data_grid=data_grid)
    # Start the nuisances at the toy's constraint centres (what a real fit would do).
    m = _minuit(cost, None, tol, 1)
    _migrad(m)
    if not m.valid:
        return None
    m.hesse()
    iv = _interval(cost, m, method, tol)
    if iv is None:
        return None
    return iv, float(m.values[poi])
