"""Statistics on a binned (pyhf) model: fit, CLs hypothesis test, upper limit, impacts.

:func:`fit` maximises the likelihood of guide-searches.md Eq. 3.6 (times the constraints)
and reports each constrained parameter's :class:`Pull`, a reweighter nuisance's also in θ
units; :func:`hypotest` computes CLs = CL_{s+b}/CL_b (Eq. 3.4–3.5) with the profile
likelihood ratio (Eq. 3.3), asymptotic or from pseudo-experiments; :func:`upper_limit`
reads the POI's CLs limit from a scan; :func:`impacts` ranks the nuisances by their shift
of μ̂. Each takes a :class:`~ratiofit.inference.BinnedModel`
(:mod:`ratiofit.inference.pyhf_model`) or a bare pyhf model and data.

Fits use pyhf's numpy backend and the minuit optimizer (:func:`fit`, :func:`hypotest`,
:func:`upper_limit`, :func:`impacts`); each call sets them for its duration and restores
the previous backend afterwards.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from .binned_templates import ReweighterNuisance
from .errors import InferenceError
from .pyhf_model import BinnedModel, _indices, parameter_vector

__all__ = [
    "BinnedFitResult",
    "CLsResult",
    "Impact",
    "Pull",
    "UpperLimitResult",
    "fit",
    "hypotest",
    "impacts",
    "upper_limit",
]


@contextlib.contextmanager
def _numpy_minuit() -> Iterator[None]:
    """pyhf with the numpy backend and minuit for the duration, then the previous setting."""
    import pyhf

    before = pyhf.get_backend()
    switch = before[0].name != "numpy" or before[1].name != "minuit"
    if switch:
        pyhf.set_backend("numpy", "minuit")
    try:
        yield
    finally:
        if switch:
            pyhf.set_backend(*before)


def _unpack(model: Any, data: Any, nuisances: Mapping[str, ReweighterNuisance] | None
            ) -> tuple[Any, np.ndarray, dict[str, ReweighterNuisance]]:
    if isinstance(model, BinnedModel):
        nus = dict(model.nuisances if nuisances is None else nuisances)
        return model.model, np.asarray(model.data if data is None else data, np.float64), nus
    if data is None:
        raise InferenceError("data are required with a bare pyhf model")
    return model, np.asarray(data, dtype=np.float64), dict(nuisances or {})



@dataclass(frozen=True)
class Pull:
    """A constrained parameter after the fit.

    ``pull`` = (θ̂ − θ₀)/σ and ``constraint`` = σ̂/σ, with θ₀ and σ the prefit constraint's
    centre and width. For a reweighter nuisance, ``theta``/``theta_error`` are in θ units.
    """

    name: str
    value: float
    error: float
    prefit: float
    prefit_error: float
    pull: float
    constraint: float
    theta: float | None = None
    theta_error: float | None = None


@dataclass(frozen=True)
class BinnedFitResult:
    """A binned (pyhf) maximum-likelihood fit: best-fit values, Hesse errors, pulls,
    correlations (ratiofit.fitting.FitResult is a fit of θ, UnbinnedFitResult an unbinned one).

    Attributes
    ----------
    names
        Parameter names in the model's order (vector parameters as ``name[i]``).
    values, errors
        Best-fit values and their Hesse uncertainties (0 for fixed parameters).
    correlation
        ``[p, p]`` correlation matrix from minuit's covariance.
    twice_nll
        −2 log L at the minimum (guide-searches.md Eq. 3.6 times the constraints).
    poi
        The parameter of interest's name.
    pulls
        Constrained parameters by name.
    valid
        minuit's validity flag.
    nfev
        Objective evaluations.
    """

    names: tuple[str, ...]
    values: np.ndarray
    errors: np.ndarray
    correlation: np.ndarray
    twice_nll: float
    poi: str
    pulls: dict[str, Pull]
    valid: bool
    nfev: int
    #: the POI's profile-likelihood (MINOS) intervals where the fit made them:
    #: ``{"68": (lo, hi), "95": (lo, hi)}``, the lower end held at the POI's bound
    poi_intervals: dict[str, tuple[float, float]] | None = None

    def value(self, name: str) -> float:
        return float(self.values[self._index(name)])

    def error(self, name: str) -> float:
        return float(self.errors[self._index(name)])

    def _index(self, name: str) -> int:
        if name not in self.names:
            raise InferenceError(f"'{name}' is not a fitted parameter ({list(self.names)})")
        return self.names.index(name)

    @property
    def covariance(self) -> np.ndarray:
        """``[p, p]`` covariance, correlation × σᵢσⱼ (zero rows for fixed parameters)."""
        return self.correlation * np.outer(self.errors, self.errors)  # type: ignore[no-any-return]

    @property
    def poi_value(self) -> float:
        return self.value(self.poi)

    @property
    def poi_error(self) -> float:
        return self.error(self.poi)

    def to_dict(self) -> dict[str, Any]:
        return {"names": list(self.names), "values": self.values.tolist(),
                "errors": self.errors.tolist(), "correlation": self.correlation.tolist(),
                "twice_nll": self.twice_nll, "poi": self.poi, "valid": self.valid,
                "nfev": self.nfev,
                "pulls": {k: vars(p) for k, p in self.pulls.items()},
                **({"poi_intervals": {k: list(v) for k, v in self.poi_intervals.items()}}
                   if self.poi_intervals is not None else {})}


def _flat_names(model: Any) -> list[str]:
    return list(model.config.par_names)


def _constrained(model: Any) -> list[tuple[str, int, float, float]]:
    """(flat name, flat index, prefit centre, prefit width) of every constrained parameter."""
    cfg = model.config
    aux = list(cfg.auxdata)
    out = []
    start = 0
    for pname in cfg.auxdata_order:
        ps = cfg.param_set(pname)
        widths = ps.width()
        sl = cfg.par_slice(pname)
        for i in range(ps.n_parameters):
            flat = pname if ps.is_scalar else f"{pname}[{i}]"
            centre = aux[start + i]
            if ps.pdf_type == "poisson":
                centre = 1.0  # shapesys: the auxdatum is a count, the parameter a factor
            out.append((flat, sl.start + i, float(centre), float(widths[i])))
        start += ps.n_parameters
    return out


def _pulls(pdf: Any, values: np.ndarray, errors: np.ndarray,
           nuisances: Mapping[str, ReweighterNuisance]) -> dict[str, Pull]:
    """Every constrained parameter's :class:`Pull` at the fitted ``values``/``errors``
    (a reweighter nuisance's also in θ units)."""
    pulls = {}
    for flat, i, centre, width in _constrained(pdf):
        nu = nuisances.get(flat)
        pulls[flat] = Pull(
            name=flat, value=float(values[i]), error=float(errors[i]), prefit=centre,
            prefit_error=width, pull=(float(values[i]) - centre) / width,
            constraint=float(errors[i]) / width,
            theta=None if nu is None else float(nu.theta(values[i])),
            theta_error=None if nu is None else float(nu.sigma * errors[i]))
    return pulls


def _where_it_stopped(pdf: Any, exc: Any) -> str:
    """Which parameters a failed fit left at a bound or non-finite (its last point), as a
    clause for the one-line error; empty where none did or the point is unknown."""
    x = getattr(getattr(exc, "result", None), "x", None)
    if x is None:
        return ""
    x = np.asarray(x, dtype=np.float64).ravel()
    names = _flat_names(pdf)
    bounds = pdf.config.suggested_bounds()
    if len(x) != len(names) or len(bounds) != len(names):
        return ""
    notes = []
    for name, v, (lo, hi) in zip(names, x, bounds, strict=True):
        if not np.isfinite(v):
            notes.append(f"{name} = {v}")
        elif v <= lo + 1e-6 * (hi - lo) or v >= hi - 1e-6 * (hi - lo):
            notes.append(f"{name} = {v:.4g} at its bound [{lo:g}, {hi:g}]")
    return f"; at its last point {', '.join(notes)}" if notes else ""


class _FiniteLogpdf:
    """A pyhf model whose ``logpdf`` is :data:`_NO_LIKELIHOOD` where pyhf's is not finite,
    everything else the model's own. Large pulls of histosys modifiers (the learned-ratio
    ones at 4.5σ) can make a bin's expected count negative, where pyhf's Poisson term is
    NaN: MIGRAD then stepped every parameter to NaN (coverage-inference_analysis-0.25-
    bound-inset, repeat 44: 2NLL NaN at mean α = −2.4, width_learned_1 = 2.3). The
    likelihood of negative expected counts is zero, so −2 log L is +∞ there; a large
    finite value is the wall MIGRAD's line search backs off from."""

    def __init__(self, pdf: Any) -> None:
        self._pdf = pdf

    def __getattr__(self, name: str) -> Any:
        return getattr(self._pdf, name)

    def logpdf(self, pars: Any, data: Any) -> Any:
        value = np.asarray(self._pdf.logpdf(pars, data), dtype=np.float64)
        return np.where(np.isfinite(value), value, _NO_LIKELIHOOD)


#: log L where pyhf's is not finite (:class:`_FiniteLogpdf`)
_NO_LIKELIHOOD = -1e10


def _minimise(pdf: Any, data: Any, start: np.ndarray, is_fixed: list[bool],
              tolerance: float | None) -> Any:
    """pyhf's minuit MLE fit from ``start``; a failure is an :class:`InferenceError` (one
    line, with where it stopped; a NaN parameter surfaces as the modifiers' own)."""
    import pyhf

    with _numpy_minuit():
        try:
            return pyhf.infer.mle.fit(
                data, _FiniteLogpdf(pdf), init_pars=start.tolist(), fixed_params=is_fixed,
                return_uncertainties=True, return_correlations=True, return_fitted_val=True,
                return_result_obj=True,
                **({} if tolerance is None else {"tolerance": float(tolerance)}))
        except pyhf.exceptions.FailedMinimization as exc:
            raise InferenceError(f"the fit did not converge: {' '.join(str(exc).split())}"
                                 f"{_where_it_stopped(pdf, exc)}") from exc


def fit(model: Any, data: Any = None, *, nuisances: Mapping[str, ReweighterNuisance] | None = None,
        init: Mapping[str, Any] | None = None, fixed: Mapping[str, Any] | None = None,
        tolerance: float | None = None) -> BinnedFitResult:
    """Maximum-likelihood fit with minuit (numpy backend), with errors and correlations.

    Parameters
    ----------
    model
        A :class:`BinnedModel` or a :class:`pyhf.pdf.Model`.
    data
        Observations + auxiliary data (default: the BinnedModel's).
    nuisances
        Reweighter nuisances by name, to report α̂ as θ̂ (default: the BinnedModel's).
    init
        Starting values by parameter name.
    fixed
        Parameters held constant, by name, at the given values.
    tolerance
        MIGRAD's tolerance (EDM < 0.002·tolerance on 2NLL); default pyhf's 0.1, which can
        stop a few 10⁻³ of σ short of the minimum in μ̂. A small value (1e-6) converges
        fully, for comparing fits made with other minimisers.

    Returns
    -------
    BinnedFitResult
    """
    pdf, d, nus = _unpack(model, data, nuisances)
    start = parameter_vector(pdf, {**(init or {}), **(fixed or {})})
    is_fixed = list(pdf.config.suggested_fixed())
    for name in fixed or {}:
        for i in _indices(pdf, name):
            is_fixed[i] = True
    # A start on a bound (a previous fit's value at a range limit) is moved a thousandth
    # of the range inside: there MINUIT's bound transformation has zero slope. And a fit
    # from a given start that fails is tried once more from the suggested start: in the
    # pyhf coverage runs of specs/inference_analysis.yaml (51b127d, 7d2c15d), MIGRAD
    # from a previous fit's values (the learned fit from the fit without the learned-ratio
    # modifiers, a simulated data set's fit from the point it was simulated at) left a
    # reweighter nuisance NaN in 6 of 100 repeats; repeat 66's fit from the suggested
    # start converged (μ̂ = 3.3, truth 3.05)
    bounds = np.asarray(pdf.config.suggested_bounds(), dtype=np.float64)
    inset = 1e-3 * (bounds[:, 1] - bounds[:, 0])
    starts = [start]
    if init:
        starts.append(parameter_vector(pdf, fixed or {}))
    for k, at in enumerate(starts):
        at = np.where(np.asarray(is_fixed), at,
                      np.clip(at, bounds[:, 0] + inset, bounds[:, 1] - inset))
        try:
            pars, corr, twice_nll, res = _minimise(pdf, d, at, is_fixed, tolerance)
            break
        except InferenceError:
            if k == len(starts) - 1:
                raise
    pars = np.asarray(pars, dtype=np.float64)
    values, errors = pars[:, 0], pars[:, 1]
    names = _flat_names(pdf)
    return BinnedFitResult(names=tuple(names), values=values, errors=errors,
                     correlation=np.asarray(corr, dtype=np.float64),
                     twice_nll=float(np.asarray(twice_nll).reshape(-1)[0]),
                     poi=str(pdf.config.poi_name), pulls=_pulls(pdf, values, errors, nus),
                     valid=bool(res.success), nfev=int(res.nfev))


@dataclass(frozen=True)
class CLsResult:
    """CLs of guide-searches.md Eq. 3.4–3.5 at one POI value.

    ``cls_expected`` is the −2σ … +2σ band under the background-only hypothesis.
    """

    poi_value: float
    cls_observed: float
    clsb: float
    clb: float
    cls_expected: tuple[float, ...]
    calctype: str
    test_stat: str
    ntoys: int | None = None


def hypotest(model: Any, data: Any = None, *, poi_value: float = 1.0,
             calctype: Literal["asymptotics", "toybased"] = "asymptotics", ntoys: int = 1000,
             test_stat: Literal["q", "qtilde"] = "qtilde", seed: int | None = None) -> CLsResult:
    """CLs = CL_{s+b}/CL_b (guide-searches.md Eq. 3.4–3.5) with the profile likelihood
    ratio (Eq. 3.3) as test statistic, asymptotic or from pseudo-experiments.

    Parameters
    ----------
    model, data
        A :class:`BinnedModel` (data default to its own) or a pyhf model and data.
    poi_value
        The tested signal strength.
    calctype
        ``"asymptotics"`` (asymptotic formulae) or ``"toybased"``.
    ntoys
        Pseudo-experiments per hypothesis (toy-based only).
    test_stat
        ``"qtilde"`` (default, needs a POI bounded below by 0) or ``"q"``.
    seed
        Toys draw from numpy's global generator; a seed makes them reproducible and the
        global state is restored afterwards.
    """
    import pyhf

    pdf, d, _ = _unpack(model, data, None)
    if calctype not in ("asymptotics", "toybased"):
        raise InferenceError(f"calctype must be 'asymptotics' or 'toybased', got {calctype!r}")
    state = np.random.get_state() if seed is not None else None
    try:
        if seed is not None:
            np.random.seed(seed)
        with _numpy_minuit():
            if calctype == "asymptotics":
                obs, tails, expected = pyhf.infer.hypotest(
                    float(poi_value), d, pdf, test_stat=test_stat, calctype=calctype,
                    return_tail_probs=True, return_expected_set=True)
            else:
                obs, tails, expected = _toy_hypotest(float(poi_value), d, pdf, test_stat,
                                                     int(ntoys))
    except pyhf.exceptions.FailedMinimization as exc:
        raise InferenceError(f"a fit of the hypothesis test at {poi_value:g} did not "
                             f"converge: {str(exc).splitlines()[0]}") from exc
    finally:
        if state is not None:
            np.random.set_state(state)
    return CLsResult(poi_value=float(poi_value), cls_observed=float(obs),
                     clsb=float(tails[0]), clb=float(tails[1]),
                     cls_expected=tuple(float(e) for e in expected), calctype=calctype,
                     test_stat=test_stat, ntoys=int(ntoys) if calctype == "toybased" else None)


# percentiles of a standard normal at −2, −1, 0, +1, +2 σ
_NORMAL_PERCENTILES = [2.27501319, 15.86552539, 50.0, 84.13447461, 97.72498681]


def _toy_hypotest(poi_value: float, data: np.ndarray, pdf: Any, test_stat: str, ntoys: int
                  ) -> tuple[float, tuple[float, float], list[float]]:
    """pyhf's toy calculator, with the expected band computed here.

    ``pyhf.infer.hypotest(calctype="toybased")`` in pyhf 0.7.6 calls
    ``np.percentile(..., interpolation=...)``, a keyword numpy 2.4 removed (fixed in pyhf
    after 0.7, scikit-hep/pyhf#2652). The observed CLs uses only the calculator's public
    ``teststatistic``/``distributions``/``pvalues``; the expected band is the same
    percentiles of the background-only toys' CLs, taken with ``method="linear"``.
    """
    import pyhf

    calc = pyhf.infer.calculators.ToyCalculator(data, pdf, test_stat=test_stat, ntoys=ntoys,
                                                track_progress=False)
    observed = calc.teststatistic(poi_value)
    sb, b = calc.distributions(poi_value)
    clsb, clb, cls = (float(v) for v in calc.pvalues(observed, sb, b))
    per_toy = np.array([[float(v) for v in calc.pvalues(t, sb, b)] for t in b.samples])
    band = np.percentile(per_toy[:, 2], _NORMAL_PERCENTILES, method="linear")
    return cls, (clsb, clb), [float(v) for v in band]


@dataclass(frozen=True)
class UpperLimitResult:
    """The POI's CLs upper limit at ``1 − level`` and the scan it was read from."""

    observed: float
    expected: tuple[float, ...]
    level: float
    scan: np.ndarray
    cls_observed: np.ndarray
    cls_expected: np.ndarray


def upper_limit(model: Any, data: Any = None, *, scan: Any = None, level: float = 0.05,
                ) -> UpperLimitResult:
    """CLs upper limit on the POI (asymptotic), interpolated on a scan of POI values.

    Parameters
    ----------
    model, data
        A :class:`BinnedModel` or a pyhf model and data.
    scan
        POI values (default: 41 points from the lower POI bound to 5 postfit σ above μ̂).
    level
        1 − confidence level (0.05 → 95% CL).
    """
    import pyhf

    pdf, d, _ = _unpack(model, data, None)
    if scan is None:
        best = fit(pdf, d)
        lo, hi = pdf.config.suggested_bounds()[pdf.config.poi_index]
        top = min(hi, max(best.poi_value, lo) + 5 * best.poi_error + 1e-3)
        scan = np.linspace(lo, top, 41)
    grid = np.asarray(scan, dtype=np.float64)
    with _numpy_minuit():
        try:
            cls_obs, cls_exp = _scan_cls(pdf, d, grid)
        except pyhf.exceptions.FailedMinimization as exc:
            raise InferenceError(f"a fit of the upper-limit scan did not converge: "
                                 f"{str(exc).splitlines()[0]}") from exc

    def crossing(cls: np.ndarray) -> float:
        # CLs falls with the POI: pyhf's linear interpolation on the reversed scan
        return float(np.interp(level, cls[::-1], grid[::-1]))

    return UpperLimitResult(observed=crossing(cls_obs),
                            expected=tuple(crossing(cls_exp[:, j]) for j in range(5)),
                            level=float(level), scan=grid, cls_observed=cls_obs,
                            cls_expected=cls_exp)


def _scan_cls(pdf: Any, data: np.ndarray, grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The asymptotic q̃_μ CLs (observed, and the expected −2σ … +2σ band) at each POI
    value of ``grid``, as ``pyhf.infer.hypotest`` computes it point by point, with the
    fits that do not depend on the tested value done once: pyhf's asymptotic calculator
    runs five fits per point (the free fits of the data and of the background-only Asimov
    data, the μ = 0 fit that makes the Asimov data, and the two fits at the tested value),
    so a 41-point scan repeats three of them 40 times. The same fits with the same
    arguments give the same numbers (tests/test_inference_pyhf.py compares with pyhf's
    scan). CLs from q̃ and its Asimov value: :func:`ratiofit.inference.asymptotic.cls`."""
    import pyhf

    from .asymptotic import cls as asymptotic_cls

    cfg = pdf.config
    init, bounds, fixed = cfg.suggested_init(), cfg.suggested_bounds(), cfg.suggested_fixed()
    asimov = pyhf.infer.calculators.generate_asimov_data(0.0, data, pdf, init, bounds, fixed)
    sets = []
    for d in (data, asimov):
        free, free_val = pyhf.infer.mle.fit(d, pdf, init, bounds, fixed,
                                            return_fitted_val=True)
        sets.append((d, float(free[cfg.poi_index]), float(free_val)))

    def qtilde(mu: float, d: Any, mu_hat: float, free_val: float) -> float:
        # pyhf's q̃_μ (POI bounded below by 0): −2 ln λ(μ) clipped at 0, and 0 for μ̂ > μ
        _, fixed_val = pyhf.infer.mle.fixed_poi_fit(mu, d, pdf, init, bounds, fixed,
                                                    return_fitted_val=True)
        return 0.0 if mu_hat > mu else max(float(fixed_val) - free_val, 0.0)

    obs, exp = [], []
    for mu in grid:
        q, q_a = (qtilde(float(mu), *s) for s in sets)
        c = asymptotic_cls(q, q_a)
        obs.append(c.observed)
        exp.append(c.expected)
    return np.array(obs), np.array(exp)


@dataclass(frozen=True)
class Impact:
    """Shift of the POI when one nuisance is fixed at θ̂ ± its postfit and prefit σ."""

    name: str
    value: float
    postfit_error: float
    prefit_error: float
    postfit_up: float
    postfit_down: float
    prefit_up: float
    prefit_down: float

    @property
    def size(self) -> float:
        """The ranking key: the larger |Δμ| of the postfit variations."""
        return max(abs(self.postfit_up), abs(self.postfit_down))


def impacts(model: Any, data: Any = None, *, parameters: Sequence[str] | None = None,
            nominal: BinnedFitResult | None = None) -> list[Impact]:
    """Impact ranking: for each constrained nuisance, refit with it fixed at θ̂ ± σ̂
    (postfit) and θ̂ ± σ (prefit) and record Δμ̂; sorted by the postfit |Δμ̂|, largest first.

    Parameters
    ----------
    model, data
        A :class:`BinnedModel` or a pyhf model and data.
    parameters
        Scalar parameter names to rank (default: every scalar constrained parameter; vector
        ones such as ``staterror`` gammas are skipped unless named).
    nominal
        The unconstrained-nuisance fit, when already done.
    """
    pdf, d, nus = _unpack(model, data, None)
    best = nominal or fit(pdf, d, nuisances=nus)
    bounds = {n: b for n, b in zip(_flat_names(pdf), pdf.config.suggested_bounds(), strict=True)}
    constrained = {flat: (centre, width) for flat, _, centre, width in _constrained(pdf)}
    if parameters is None:
        names = [n for n in constrained if "[" not in n]
    else:
        names = list(parameters)
        unknown = [n for n in names if n not in constrained]
        if unknown:
            raise InferenceError(f"impacts: {unknown} are not constrained parameters "
                                 f"({sorted(constrained)})")
    mu0 = best.poi_value
    out = []
    for name in names:
        value, post = best.value(name), best.error(name)
        pre = constrained[name][1]
        lo, hi = bounds[name]
        shifts = []
        for target in (value + post, value - post, value + pre, value - pre):
            refit = fit(pdf, d, init=dict(zip(best.names, best.values, strict=True)),
                        fixed={name: float(np.clip(target, lo, hi))})
            shifts.append(refit.poi_value - mu0)
        out.append(Impact(name=name, value=value, postfit_error=post, prefit_error=pre,
                          postfit_up=shifts[0], postfit_down=shifts[1], prefit_up=shifts[2],
                          prefit_down=shifts[3]))
    return sorted(out, key=lambda i: i.size, reverse=True)
