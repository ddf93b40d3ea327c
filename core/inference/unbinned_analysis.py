"""Fits, CLs, upper limits, impacts and profile scans of an :class:`UnbinnedModel`.

The same questions the binned backend answers with pyhf (:mod:`ratiofit.inference.binned_fit`),
answered with iminuit on :class:`UnbinnedModelNLL`, and reported in the same types
(:class:`BinnedFitResult`'s fields, :class:`CLsResult`, :class:`UpperLimitResult`,
:class:`Impact`) so the two backends' results read alike:

* :func:`fit_model`: MIGRAD and HESSE (the Hessian from central differences of the
  analytic gradient, :mod:`ratiofit.inference.costs`), pulls of the constrained parameters;
* :func:`hypotest_model`: asymptotic CLs with the bounded test statistic q̃_μ of Cowan,
  Cranmer, Gross and Vitells, Eur. Phys. J. C 71 (2011) 1554, Eq. 16 and 65–66 (the
  formulae pyhf's asymptotic calculator uses, guide-searches.md Eq. 3.4–3.5); the
  background-only Asimov data are the weighted Asimov events of
  :meth:`UnbinnedModel.asimov` at the conditional (μ = 0) fit; or, with
  ``calctype="toybased"``, CLs from pseudo-experiments
  (:mod:`ratiofit.inference.unbinned_toys`);
* :func:`upper_limit_model`: the CLs = level crossing on a scan, observed and expected,
  from the asymptotic CLs;
* :func:`impacts_model`: Δμ̂ with each constrained parameter fixed at θ̂ ± its postfit and
  prefit σ;
* :func:`profile_scan_model`: 2ΔNLL of the POI, profiled.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..execution import Executor
from .binned_fit import BinnedFitResult, CLsResult, Impact, Pull, UpperLimitResult
from .errors import InferenceError
from .unbinned_model import UnbinnedModel, UnbinnedModelNLL

__all__ = ["fit_model", "hypotest_model", "impacts_model", "profile_scan_model",
           "upper_limit_model"]


def _minimise(cost: UnbinnedModelNLL, *, fixed: Mapping[str, float] | None = None,
              start: Mapping[str, float] | None = None, hesse: bool = True) -> Any:
    """MIGRAD (and HESSE) on ``cost``, with the cost's Hessian (central differences of the
    analytic gradient): at 10⁶ events MINUIT's own second differences see the network's
    float32 rounding, not the curvature (costs.py; bench_inference.py: EDM 1e-3 against
    1e-5), and it needs 5× fewer calls (18 against 98 in a test fit). MINUIT's own is
    used with parameters fixed — Minuit2 (iminuit ≤ 2.33) maps an external Hessian to the
    wrong parameters then (root-project/root#20954, inference/unbinned_fit.py) — and
    where the first try ends invalid, or HESSE spoils its minimum: at a POI on its bound
    of 0 the bound's transformation does (EDM 4e-7 → 7.8 in a background-only fit)."""
    from iminuit import Minuit

    model = cost.model
    values = {n: float(model.start[n]) for n in model.names}
    values.update({k: float(v) for k, v in (start or {}).items() if k in values})
    values.update({k: float(v) for k, v in (fixed or {}).items()})

    def attempt(own_hessian: bool, at: Mapping[str, float]) -> Any:
        m = Minuit(cost, hessian=False, **at) if own_hessian else Minuit(cost, **at)
        m.print_level = 0
        m.strategy = 1
        # EDM < 2e-5: the POI then sits within ~0.006 of its error of the minimum (MINUIT's
        # default 0.1 left it 0.02σ off along the μ–normsys valley of a counting experiment)
        m.tol = 0.01
        for n in model.names:
            lo, hi = model.limits[n]
            m.errors[n] = 0.1 * min(1.0, hi - lo) if n in model.pois else \
                (model.constraints[n][2] if n in model.constraints else 0.1)
        for k in fixed or {}:
            m.fixed[k] = True
        m.migrad()
        if not m.valid:  # a retry from where it stopped
            m.migrad()
        return m

    m = attempt(bool(fixed), values)
    if not m.valid and not fixed:  # again from the start, with MINUIT's own Hessian
        m = attempt(True, values)
        if not m.valid:
            m.strategy = 2
            m.migrad()
    if hesse and m.valid:
        m.hesse()
        if not m.valid and not fixed:
            # HESSE with the external Hessian at a POI on its bound spoils the minimum's
            # EDM (4e-7 → 7.8): from that minimum, MINUIT's own
            m = attempt(True, {n: float(m.values[n]) for n in model.names})
            if m.valid:
                m.hesse()
    return m


#: the confidence levels of the POI's profile-likelihood intervals (``fit_model``)
INTERVAL_LEVELS = {"68": 0.6826894921370859, "95": 0.95}


def _poi_intervals(m: Any, poi: str, bound: float) -> dict[str, tuple[float, float]] | None:
    """MINOS intervals of the POI at :data:`INTERVAL_LEVELS`: where 2ΔNLL of the profile
    likelihood crosses the χ²₁ quantile (Wilks), the lower end held at the POI's bound
    where the profile does not cross above it; ``None`` where MINOS fails."""
    out = {}
    value = float(m.values[poi])
    for key, cl in INTERVAL_LEVELS.items():
        try:
            m.minos(poi, cl=cl)
        except (RuntimeError, InferenceError):  # (a step to a non-finite point: costs.py)
            return None
        me = m.merrors[poi]
        if not me.upper_valid:
            return None
        lo = value + me.lower if me.lower_valid and not me.at_lower_limit else bound
        out[key] = (max(lo, bound), value + me.upper)
    return out


def fit_model(model: UnbinnedModel, cost: UnbinnedModelNLL | None = None, *,
              fixed: Mapping[str, float] | None = None,
              start: Mapping[str, float] | None = None,
              intervals: bool = False, minos: bool = True) -> BinnedFitResult:
    """Maximum-likelihood fit (MIGRAD + HESSE) of the model to its data (or ``cost``'s).

    Returns the binned fit's result type: names in :attr:`UnbinnedModel.names` order, Hesse
    errors (0 for fixed parameters), correlations, 2·NLL at the minimum (without the
    constant Σ log p_b0(xᵢ)), and pulls of the constrained parameters; a reweighter
    nuisance's pull carries θ̂ ± σ̂ in θ units. With ``intervals`` the POI's 68 % and 95 %
    profile-likelihood intervals too (``poi_intervals``): with a few signal events the
    likelihood is far from parabolic and HESSE's error, taken at μ̂, shrinks with μ̂, so
    ±σ̂ under-covers below the truth (coverage-inference_analysis-unbinned-0.1-hesse in
    docs/coverage.md: repeats with μ̂ three HESSE errors below the truth had 2ΔNLL there of
    2.4–3.7).

    ``minos=False`` leaves out the POI's MINOS error near its bound (below), for fits
    whose values alone are used (the bootstrap replicas' refits of the data and of the
    simulation correction's simulated set): MINOS changes only the POI's error (and its
    row of the covariance), never the values, and its two profile fits per call are
    costly near the bound.
    """
    cost = cost or model.nll()
    m = _minimise(cost, fixed=fixed, start=start)
    if not m.valid:
        at = [n for n in model.names if not m.fixed[n] and (
            math.isclose(m.values[n], model.limits[n][0], abs_tol=1e-6)
            or math.isclose(m.values[n], model.limits[n][1], abs_tol=1e-6))]
        f = m.fmin
        why = "the call limit" if f.has_reached_call_limit else \
            f"EDM {f.edm:.2g} above {f.edm_goal:.2g}" if f.is_above_max_edm else \
            "HESSE failed" if f.hesse_failed else "MIGRAD's minimum is not valid"
        raise InferenceError(f"the unbinned fit did not converge ({why})" + (
            f"; {', '.join(at)} at a bound" if at else "") + ", at " + ", ".join(
            f"{n} = {m.values[n]:.4g}" for n in model.names))
    names = list(model.names)
    values = np.array([m.values[n] for n in names])
    errors = np.array([0.0 if m.fixed[n] else m.errors[n] for n in names])
    poi = model.poi
    lo_poi = model.limits[poi][0]
    if minos and not m.fixed[poi] and m.values[poi] - lo_poi < 3 * m.errors[poi]:
        # MINOS on the POI within 3σ of its bound at 0 (a background-only fit): there
        # HESSE's error of a bounded parameter is far too small (0.08 against a profile
        # width of ~1.5); away from it HESSE's stands (MINOS's two fits cost two Hessians
        # of 10⁶ events, bench_inference.py)
        try:
            m.minos(poi)
            me = m.merrors[poi]
            at_bound = math.isclose(m.values[poi], model.limits[poi][0], abs_tol=1e-3 * max(
                me.upper, 1e-12))
            if me.is_valid or (at_bound and me.upper_valid):
                i = names.index(poi)
                errors[i] = me.upper if at_bound else 0.5 * (me.upper - me.lower)
        except (RuntimeError, InferenceError):
            pass  # MINOS failed (or stepped to a non-finite point): HESSE's error stands
    poi_intervals = None
    if intervals and not m.fixed[poi]:
        poi_intervals = _poi_intervals(m, poi, lo_poi)
    cov = np.zeros((len(names), len(names)))
    if m.covariance is not None:
        cov = np.asarray(m.covariance, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = cov / np.outer(errors, errors)
    corr = np.where(np.isfinite(corr), corr, 0.0)
    np.fill_diagonal(corr, [1.0 if e > 0 else 0.0 for e in errors])
    pulls = {}
    for n, (_, centre, sigma) in model.constraints.items():
        v, e = float(m.values[n]), float(errors[names.index(n)])
        nu = model.nuisances.get(n)
        pulls[n] = Pull(name=n, value=v, error=e, prefit=centre, prefit_error=sigma,
                        pull=(v - centre) / sigma, constraint=e / sigma,
                        theta=None if nu is None else nu.theta(v),
                        theta_error=None if nu is None else nu.sigma * e)
    return BinnedFitResult(names=tuple(names), values=values, errors=errors, correlation=corr,
                           twice_nll=2.0 * float(m.fval), poi=model.poi, pulls=pulls,
                           valid=bool(m.valid), nfev=int(m.nfcn),
                           poi_intervals=poi_intervals)


def _qmu_tilde(cost: UnbinnedModelNLL, mu: float, best: Any) -> float:
    """q̃_μ (Cowan et al. Eq. 16): 0 for μ̂ > μ; against the μ = 0 conditional fit where
    μ̂ < 0 (the unbinned POI may go negative while every event's density stays positive)."""
    return _qmu_tilde_fits(cost, mu, best)[0]


def _qmu_tilde_fits(cost: UnbinnedModelNLL, mu: float, best: Any) -> tuple[float, bool]:
    """:func:`_qmu_tilde` and whether the conditional fits it needed converged (the toys
    count a toy whose fits did not as failed)."""
    model = cost.model
    mu_hat = best.values[model.poi]
    if mu_hat > mu:
        return 0.0, True
    start = dict(best.values.to_dict())
    valid = True
    if mu_hat >= 0:
        reference = best.fval
    else:
        ref = _minimise(cost, fixed={model.poi: 0.0}, start=start, hesse=False)
        reference, valid = ref.fval, bool(ref.valid)
    cond = _minimise(cost, fixed={model.poi: mu}, start=start, hesse=False)
    return max(2.0 * (cond.fval - reference), 0.0), valid and bool(cond.valid)


def _asimov_cost(model: UnbinnedModel, cost: UnbinnedModelNLL) -> UnbinnedModelNLL:
    """The background-only Asimov cost: data and auxiliary data at the μ = 0 fit."""
    cond = _minimise(cost, fixed={model.poi: 0.0}, hesse=False)
    values = {n: float(cond.values[n]) for n in model.names}
    data, centres = model.asimov(values)
    return model.nll(data, constraint_centres=centres)


def hypotest_model(model: UnbinnedModel, *, poi_value: float = 1.0,
                   calctype: str = "asymptotics", ntoys: int = 1000, seed: int = 0,
                   executor: Executor | None = None, cost: UnbinnedModelNLL | None = None,
                   asimov: UnbinnedModelNLL | None = None) -> CLsResult:
    """CLs of μ = ``poi_value`` with the q̃_μ test statistic and its expected −2σ … +2σ
    band (background only).

    ``calctype="asymptotics"`` (default): the asymptotic formulae, as pyhf's asymptotic
    calculator computes them (``ntoys``, ``seed``, ``executor`` unused).
    ``calctype="toybased"``: ``ntoys`` pseudo-experiments per hypothesis, seeded by
    ``seed`` and run as jobs through ``executor``
    (:func:`ratiofit.inference.unbinned_toys.hypotest_toys`; ``asimov`` unused).
    """
    if calctype == "toybased":
        from .unbinned_toys import hypotest_toys

        return hypotest_toys(model, poi_value=poi_value, ntoys=ntoys, seed=seed,
                             executor=executor, cost=cost)
    if calctype != "asymptotics":
        raise InferenceError(f"calctype must be 'asymptotics' or 'toybased', got {calctype!r}")
    cost = cost or model.nll()
    asimov = asimov or _asimov_cost(model, cost)
    return _hypotest(cost, asimov, _minimise(cost, hesse=False),
                     _minimise(asimov, hesse=False), poi_value)


def _hypotest(cost: UnbinnedModelNLL, asimov: UnbinnedModelNLL, best: Any, best_a: Any,
              poi_value: float) -> CLsResult:
    from .asymptotic import cls

    c = cls(_qmu_tilde(cost, poi_value, best), _qmu_tilde(asimov, poi_value, best_a))
    return CLsResult(poi_value=float(poi_value), cls_observed=c.observed, clsb=c.clsb,
                     clb=c.clb, cls_expected=c.expected, calctype="asymptotics",
                     test_stat="qtilde")


def upper_limit_model(model: UnbinnedModel, *, scan: Sequence[float] | None = None,
                      level: float = 0.05, best: BinnedFitResult | None = None
                      ) -> UpperLimitResult:
    """The POI's CLs upper limit at 1 − ``level``: the crossing of CLs = level, linearly
    interpolated on the scan, observed and for the expected band, from the asymptotic CLs
    (toy-based CLs is for one tested value: :func:`hypotest_model`). The default scan has 21
    points from 0 to μ̂ + 5σ̂, widened (twice as far, up to the POI's bound) until the
    observed CLs and the expected +2σ band fall below the level."""
    cost = model.nll()
    asimov = _asimov_cost(model, cost)
    best_m, best_a = _minimise(cost, hesse=False), _minimise(asimov, hesse=False)
    lo_bound, hi_bound = model.limits[model.poi]
    if scan is not None:
        grids = [np.asarray(scan, dtype=np.float64)]
    else:
        best = best or fit_model(model, cost)
        top = min(hi_bound, max(best.poi_value, 0.0) + 5 * best.poi_error + 1e-3)
        grids = []
        while True:
            grids.append(np.linspace(max(lo_bound, 0.0), top, 21))
            if top >= hi_bound or len(grids) > 6:
                break
            top = min(hi_bound, 2 * top)
    for grid in grids:
        results = [_hypotest(cost, asimov, best_m, best_a, float(mu)) for mu in grid]
        obs = np.array([r.cls_observed for r in results])
        exp = np.array([r.cls_expected for r in results])
        if obs[-1] < level and exp[-1, -1] < level:
            break

    def crossing(cls: np.ndarray) -> float:
        below = np.nonzero(cls < level)[0]
        if len(below) == 0:
            return float("nan")
        i = int(below[0])
        if i == 0:
            return float(grid[0])
        x0, x1, y0, y1 = grid[i - 1], grid[i], cls[i - 1], cls[i]
        return float(x0 + (level - y0) * (x1 - x0) / (y1 - y0))

    observed = crossing(obs)
    if not math.isfinite(observed):
        raise InferenceError(f"CLs does not fall below {level} on the scan up to "
                             f"{grid[-1]:g} (the POI's bound is {hi_bound:g})")
    return UpperLimitResult(observed=observed,
                            expected=tuple(crossing(exp[:, j]) for j in range(exp.shape[1])),
                            level=float(level), scan=grid, cls_observed=obs, cls_expected=exp)


def impacts_model(model: UnbinnedModel, *, best: BinnedFitResult | None = None
                  ) -> list[Impact]:
    """For each constrained parameter, Δμ̂ with it fixed at θ̂ ± σ̂ (postfit) and θ̂ ± σ
    (prefit); sorted by the larger postfit |Δμ̂|."""
    cost = model.nll()
    best = best or fit_model(model, cost)
    start = {n: best.value(n) for n in model.names}
    out = []
    for name, (_, _, prefit) in model.constraints.items():
        value, post = best.value(name), best.error(name)
        lo, hi = model.limits[name]
        shifts = []
        for target in (value + post, value - post, value + prefit, value - prefit):
            m = _minimise(cost, fixed={name: float(np.clip(target, lo, hi))}, start=start,
                          hesse=False)
            shifts.append(float(m.values[model.poi]) - best.poi_value)
        out.append(Impact(name=name, value=value, postfit_error=post, prefit_error=prefit,
                          postfit_up=shifts[0], postfit_down=shifts[1], prefit_up=shifts[2],
                          prefit_down=shifts[3]))
    return sorted(out, key=lambda i: -i.size)


def profile_scan_model(model: UnbinnedModel, values: Sequence[float], *,
                       best: BinnedFitResult | None = None) -> dict[str, Any]:
    """2ΔNLL of the POI at ``values``, every other parameter profiled."""
    cost = model.nll()
    best = best or fit_model(model, cost)
    start = {n: best.value(n) for n in model.names}
    twice = []
    for mu in values:
        m = _minimise(cost, fixed={model.poi: float(mu)}, start=start, hesse=False)
        twice.append(2.0 * float(m.fval) - best.twice_nll)
    return {"parameter": model.poi, "values": [float(v) for v in values],
            "twice_delta_nll": twice}
