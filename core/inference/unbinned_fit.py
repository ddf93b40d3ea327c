"""The unbinned fit driver: MIGRAD, HESSE, MINOS and profile scans of a cost.

Results
-------
:func:`fit_unbinned` runs MIGRAD, HESSE and MINOS on μ of an
:class:`~ratiofit.inference.ExtendedUnbinnedNLL` (or a
:class:`~ratiofit.inference.ReweightedBinnedNLL`, :mod:`ratiofit.inference.costs`) and
returns a typed :class:`UnbinnedFitResult`, including the 2ΔNLL profile of μ with θ
profiled and with θ fixed at its constraint centre (:class:`ProfileScan`, the "with and
without the nuisance" comparison of guide-searches.md Fig. 5). ``_minuit`` builds the
Minuit every fit here (and every toy fit of :mod:`ratiofit.inference.toys`) starts from;
with parameters fixed it does not pass the cost's analytic Hessian to Minuit2
(root-project/root#20954, see ``_minuit``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .costs import ExtendedUnbinnedNLL, ReweightedBinnedNLL
from .errors import InferenceError
from .nuisances import _centre

__all__ = ["ProfileScan", "UnbinnedFitResult", "fit_unbinned"]

FitCost = ExtendedUnbinnedNLL | ReweightedBinnedNLL


@dataclass
class ProfileScan:
    """2ΔNLL of the parameter of interest, profiled and with θ fixed.

    ``profiled`` is relative to the global minimum (all nuisances free); ``fixed`` holds
    the reweighter's nuisances at ``fixed_at`` (their constraint centres), relative to the
    minimum of that conditional fit. ``interval_*`` are the crossings of 2ΔNLL = 1
    (linear interpolation between scan points; ``None`` when the scan does not cross).
    """

    parameter: str
    values: list[float]
    profiled: list[float]
    fixed: list[float]
    fixed_at: dict[str, float]
    interval_profiled: tuple[float, float] | None
    interval_fixed: tuple[float, float] | None


@dataclass
class UnbinnedFitResult:
    """Result of :func:`fit_unbinned`.

    ``minos`` holds (lower, upper) *offsets* from the value (lower < 0), as iminuit and
    :class:`ratiofit.fitting.FitResult` do; :meth:`interval` gives absolute bounds.
    ``fixed_theta`` is the same fit with the reweighter's nuisances fixed at their
    constraint centres (values, errors, minos of the poi, nll_min).
    """

    poi: str
    names: list[str]
    values: dict[str, float]
    errors: dict[str, float]
    covariance: list[list[float]]
    correlation: list[list[float]]
    minos: dict[str, tuple[float, float]]
    nll_min: float
    valid: bool
    n_calls: int
    seconds: float
    fixed_theta: dict[str, Any] = field(default_factory=dict)
    scan: ProfileScan | None = None
    cache: dict[str, Any] = field(default_factory=dict)

    def value(self, name: str) -> float:
        """The fitted value of ``name`` (:class:`ratiofit.results.ParameterFit`)."""
        return float(self.values[name])

    def error(self, name: str) -> float:
        """The error of ``name`` (:class:`ratiofit.results.ParameterFit`)."""
        return float(self.errors[name])

    def interval(self, name: str | None = None) -> tuple[float, float]:
        """Absolute MINOS interval of ``name`` (default: the poi)."""
        n = name or self.poi
        lo, hi = self.minos[n]
        return self.values[n] + lo, self.values[n] + hi

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _minuit(cost: FitCost, start: Mapping[str, float] | None, tol: float, strategy: int,
            *, analytic_hessian: bool = True) -> Any:
    """A Minuit on ``cost``. Pass ``analytic_hessian=False`` when parameters will be fixed:
    the Minuit2 bundled with iminuit ≤ 2.33 maps an external Hessian to the wrong
    parameters once some are fixed (root-project/root#20954), which gave HESSE errors 2×
    off and poor MIGRAD seeds; MINUIT's own numerical Hessian is used then."""
    from iminuit import Minuit

    values = dict(cost.start)
    for k, v in (start or {}).items():
        if k not in values:
            raise InferenceError(f"start value for unknown parameter '{k}' (parameters: "
                                 f"{list(values)})")
        values[k] = float(v)
    m = Minuit(cost, **values) if analytic_hessian else Minuit(cost, hessian=False, **values)
    m.tol = tol
    m.strategy = strategy
    m.print_level = 0
    for nu in cost.nuisances:
        lo, hi = nu.limits if nu.limits is not None else (-1.0, 1.0)
        m.errors[nu.name] = nu.sigma if nu.sigma is not None else 0.1 * (hi - lo)
    if cost.norm is not None:
        m.errors[cost.norm.name] = cost.norm.sigma or 0.1
    m.errors[cost.poi] = max(0.1 * abs(values[cost.poi]), 0.1)
    return m


def _migrad(m: Any) -> None:
    m.migrad()
    if not m.valid:  # one retry from where it stopped, as iminuit's `iterate` does
        m.migrad()


def _crossings(x: np.ndarray, y: np.ndarray, centre: float) -> tuple[float, float] | None:
    """Where y = 1 left and right of ``centre`` by linear interpolation."""
    order = np.argsort(x)
    x, y = x[order], y[order]
    i0 = int(np.argmin(np.abs(x - centre)))
    lo = hi = None
    for i in range(i0, 0, -1):
        if y[i] < 1 <= y[i - 1]:
            lo = x[i] + (1 - y[i]) * (x[i - 1] - x[i]) / (y[i - 1] - y[i])
            break
    for i in range(i0, len(x) - 1):
        if y[i] < 1 <= y[i + 1]:
            hi = x[i] + (1 - y[i]) * (x[i + 1] - x[i]) / (y[i + 1] - y[i])
            break
    return None if lo is None or hi is None else (float(lo), float(hi))


def _half_width(minos: tuple[float, float] | None, hesse: float) -> float:
    return max(abs(minos[0]), abs(minos[1])) if minos is not None else hesse


def _conditional_min(cost: FitCost, values: Mapping[str, float], fix: Sequence[str],
                     tol: float) -> tuple[float, dict[str, float]]:
    """Minimum over the parameters not in ``fix`` (held at ``values``) and where it is.

    A fresh Minuit per point, warm-started from ``values``: reusing one across points
    carries over step sizes and error estimates of a previous (possibly failed)
    minimisation, which can send MIGRAD to NaN.
    """
    m = _minuit(cost, values, tol, 0, analytic_hessian=not fix)
    for name in fix:
        m.fixed[name] = True
    if all(m.fixed):
        return float(cost(*m.values)), dict(values)
    _migrad(m)
    return float(m.fval), {n: float(m.values[n]) for n in m.parameters}


def _profile_curve(cost: FitCost, best: Mapping[str, float], grid: np.ndarray,
                   fix: Sequence[str], tol: float) -> np.ndarray:
    """min over the free parameters at each poi value, walking out from the best fit."""
    out = np.empty(len(grid))
    centre = int(np.argmin(np.abs(grid - best[cost.poi])))
    for idx in (range(centre, len(grid)), range(centre - 1, -1, -1)):
        values = dict(best)
        for i in idx:
            values[cost.poi] = float(grid[i])
            out[i], values = _conditional_min(cost, values, [*fix, cost.poi], tol)
    return out


def fit_unbinned(cost: FitCost, *, start: Mapping[str, float] | None = None,
                 minos: bool = True, scan: bool = True, scan_points: int = 21,
                 scan_width: float = 2.0, with_fixed_theta: bool = True, tol: float = 0.1,
                 strategy: int = 1) -> UnbinnedFitResult:
    """MIGRAD + HESSE (+ MINOS on the poi, + scans) of an :class:`ExtendedUnbinnedNLL` (or
    :class:`ReweightedBinnedNLL`).

    Parameters
    ----------
    cost
        The likelihood.
    start
        Start values overriding ``cost.start``.
    minos
        MINOS interval of the poi (with θ profiled, and with θ fixed).
    scan
        2ΔNLL profile of the poi over ``scan_points`` values spanning ``scan_width`` times
        the larger MINOS (or HESSE) half-width on each side, with θ profiled and fixed.
    with_fixed_theta
        Also fit with the reweighter's nuisances fixed at their constraint centres (the
        interval "without the nuisance", guide-searches.md Fig. 5).
    tol, strategy
        MIGRAD's tolerance (EDM < 0.002·tol·0.5) and strategy.

    Returns
    -------
    UnbinnedFitResult
    """
    t0 = time.perf_counter()
    calls0 = cost.n_evaluations
    m = _minuit(cost, start, tol, strategy)
    _migrad(m)
    fixes = cost.hessian_fixes
    m.hesse()
    # An indefinite Hessian at the reported minimum means it is no minimum.
    hesse_ok = cost.hessian_fixes == fixes
    names = list(m.parameters)
    poi = cost.poi
    minos_out: dict[str, tuple[float, float]] = {}
    if minos and m.valid:
        try:
            m.minos(poi)
            me = m.merrors[poi]
            if me.is_valid:
                minos_out[poi] = (float(me.lower), float(me.upper))
        except RuntimeError:
            pass
    cov = np.asarray(m.covariance) if m.covariance is not None else \
        np.full((len(names),) * 2, np.nan)
    sd = np.sqrt(np.diag(cov))
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = cov / np.outer(sd, sd)
    best = {n: float(m.values[n]) for n in names}
    fixed_at = {nu.name: _centre(nu) for nu in cost.nuisances}
    fixed_info: dict[str, Any] = {}
    fmin_fixed = math.nan
    if with_fixed_theta:
        mf = _minuit(cost, {**best, **fixed_at}, tol, strategy, analytic_hessian=False)
        for n in fixed_at:
            mf.fixed[n] = True
        _migrad(mf)
        mf.hesse()
        fmin_fixed = float(mf.fval)
        fixed_info = {"values": {n: float(mf.values[n]) for n in names},
                      "errors": {n: float(mf.errors[n]) for n in names},
                      "nll_min": fmin_fixed, "valid": bool(mf.valid), "minos": None,
                      "fixed_at": fixed_at}
        if minos and mf.valid:
            try:
                mf.minos(poi)
                me = mf.merrors[poi]
                if me.is_valid:
                    fixed_info["minos"] = (float(me.lower), float(me.upper))
            except RuntimeError:
                pass
    scan_out = None
    if scan and m.valid:
        # Span both curves: the fit with θ fixed can sit away from the profiled one.
        spans = [(best[poi], _half_width(minos_out.get(poi), float(m.errors[poi])))]
        if fixed_info.get("valid"):
            spans.append((fixed_info["values"][poi],
                          _half_width(fixed_info["minos"], fixed_info["errors"][poi])))
        lo = min(c - scan_width * h for c, h in spans)
        hi = max(c + scan_width * h for c, h in spans)
        lim = m.limits[poi]
        grid = np.linspace(max(lo, lim[0]), min(hi, lim[1]), scan_points)
        prof = 2 * (_profile_curve(cost, best, grid, [], tol) - float(m.fval))
        if with_fixed_theta and math.isfinite(fmin_fixed):
            fixed_vals = 2 * (_profile_curve(cost, {**fixed_info["values"]}, grid,
                                             list(fixed_at), tol) - fmin_fixed)
            interval_fixed = _crossings(grid, fixed_vals,
                                        fixed_info["values"][poi])
        else:
            fixed_vals, interval_fixed = np.full(len(grid), np.nan), None
        scan_out = ProfileScan(parameter=poi, values=grid.tolist(), profiled=prof.tolist(),
                               fixed=fixed_vals.tolist(), fixed_at=fixed_at,
                               interval_profiled=_crossings(grid, prof, best[poi]),
                               interval_fixed=interval_fixed)
    return UnbinnedFitResult(
        poi=poi, names=names, values=best,
        errors={n: float(np.sqrt(cov[i, i])) for i, n in enumerate(names)},
        covariance=cov.tolist(), correlation=corr.tolist(), minos=minos_out,
        nll_min=float(m.fval), valid=bool(m.valid) and hesse_ok,
        n_calls=cost.n_evaluations - calls0, seconds=time.perf_counter() - t0,
        fixed_theta=fixed_info, scan=scan_out, cache=cost.cache_info())
