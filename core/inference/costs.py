"""The costs: iminuit likelihoods in which a trained reweighter is a profiled nuisance parameter.

The extended unbinned likelihood (guide-searches.md Eq. 3.7–3.8)
------------------------------------------------------------------
Data events xᵢ (i = 1 … N, optional weights wᵢᵈ) are described by a signal with expected
yield μ·ν_s (μ: the signal strength, the parameter of interest) on top of a background
with expected yield k·ν_b (k: an optional normalisation factor, :class:`NormFactor`).
Both densities are given *relative to the nominal background* p_b0(x), the reference
sample a ratiofit reweighter was trained against:

* background ``p_b(x|θ) = p_b0(x) · w(x, θ) / Z(θ)``, with ``log w`` from a
  :class:`~ratiofit.reweighter.Reweighter` and θ its nuisance parameter(s), each with a
  normal constraint (θ₀, σ) or free (:class:`Nuisance`);
* signal ``p_s(x) = p_b0(x) · r_s(x)``, with ``log r_s`` an array, a callable, or from an
  S-vs-B classifier (:func:`signal_log_ratio_from_classifier`, Eq. 3.10–3.14).

The common factor p_b0(xᵢ) does not depend on the parameters and drops out of every
likelihood ratio, so :class:`ExtendedUnbinnedNLL` returns

    NLL(μ, θ, k) = μν_s + kν_b − Σᵢ wᵢᵈ log(μν_s r_s(xᵢ) + kν_b w(xᵢ, θ)/Z(θ))
                   + Σⱼ (θⱼ − θⱼ₀)² / (2σⱼ²) + (k − 1)² / (2σ_k²),

which is −log L of Eq. 3.7 up to the constant Σᵢ wᵢᵈ log p_b0(xᵢ) + log N!. It is an
:class:`iminuit.cost.Cost` with ``errordef = 0.5`` (a negative log-likelihood) and an
analytic gradient that uses the reweighter's θ-gradient ∂log w/∂θ. Z(θ), computed
exactly at every θ from a reference sample (:class:`ReferenceNormalisation`), is
described in :mod:`ratiofit.inference.normalisation`; the caching of the network
(``cache=``) in :mod:`ratiofit.inference.caches`.

The θ-gradient is computed only when MIGRAD asks for it (``eager_gradient=False``):
MINUIT calls the value far more often than the gradient, and a value-only network pass
is 2–3× cheaper. HESSE and MIGRAD's seed use :meth:`ExtendedUnbinnedNLL.hessian`, central
differences of the analytic gradient (:func:`_fd_hessian`): MINUIT's own second
differences of function values resolve the float32 rounding of a network summed over
10⁶ events, not the curvature, and fail.

Binned data
-----------
:class:`ReweightedBinnedNLL` is the Poisson counterpart with templates
h_b(θ) = Σ_{i∈b} w0ᵢ·w(xᵢ, θ) (guide-searches.md Eq. 3.6), recomputed from the network per
θ (with the same LRU) or interpolated per bin on a θ grid.

Fitting a cost: :mod:`ratiofit.inference.unbinned_fit`; toys and coverage:
:mod:`ratiofit.inference.toys`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import numpy as np
from iminuit.cost import Cost

from ..events import EventSet
from ..log_ratio import LogRatioModel
from .caches import _CACHE_MODES, CacheMode, _make_source, _NetworkSource, _Source, _weighted_sum
from .errors import InferenceError
from .grid import LogRatioGrid, _catmull_rom, _check_nodes, _with_ghosts
from .normalisation import ReferenceNormalisation
from .nuisances import NormFactor, Nuisance, _as_events, _centre, _resolve_nuisances

__all__ = [
    "ExtendedUnbinnedNLL",
    "ReweightedBinnedNLL",
    "signal_log_ratio_from_classifier",
]

_LIKELIHOOD = 0.5  # errordef of a negative log-likelihood (Minuit.LIKELIHOOD)
# Densities below this fraction of their natural scale are continued linearly in log
# (see _safe_log): log(1e-10) = −23 per event, far beyond any interval of interest.
_DENSITY_FLOOR = 1e-10


def _fd_hessian(cost: Any, args: Sequence[float]) -> np.ndarray:
    """Symmetrised central differences of ``cost.grad`` with steps 10⁻⁴ of each nuisance's
    range (of max(1, |value|) for μ and k), kept inside the limits.

    MINUIT's own HESSE differences function values with steps set by the machine
    precision; a float32 network makes the NLL a staircase in θ (its θ input is rounded to
    float32, steps ~10⁻⁸) on top of a sum of ~N rounding errors, and for N ≳ 10⁶ such
    second differences are noise (HESSE failed, invalid fits). Differencing the gradient
    over 10⁻⁴ of the range is far above that resolution and, since the likelihood varies
    on the scale of the nuisance's physics range, far below the scale of its third
    derivatives (truncation ~10⁻⁸ relative). With an LRU cache, the μ and k columns reuse
    the network output.
    """
    x = np.asarray(args, dtype=np.float64)
    names = list(cost._parameters)
    n = len(x)
    h = np.zeros((n, n))
    for j, name in enumerate(names):
        lim = cost._parameters[name]
        lo, hi = (-np.inf, np.inf) if lim is None else lim
        step = 1e-4 * (hi - lo) if np.isfinite(hi - lo) else 1e-4 * max(1.0, abs(x[j]))
        a, b = x.copy(), x.copy()
        a[j], b[j] = max(lo, x[j] - step), min(hi, x[j] + step)
        h[:, j] = (cost.grad(*b) - cost.grad(*a)) / (b[j] - a[j])
    h = 0.5 * (h + h.T)
    eig, vec = np.linalg.eigh(h)
    if eig.min() <= 0:
        # Away from the minimum (MIGRAD's seed at a poor start) the Hessian can be
        # indefinite; MINUIT needs a positive-definite one there (iminuit 2.33 fails with
        # "'NoneType' object is not callable" otherwise). Mirror the negative curvatures
        # (|λ|, a saddle-free Newton step), floored at 1e-8 of the largest.
        cost.hessian_fixes += 1
        lam = np.maximum(np.abs(eig), 1e-8 * max(float(np.abs(eig).max()), 1e-300))
        h = (vec * lam) @ vec.T
    return h


def _safe_log(d: np.ndarray, floor: Any) -> tuple[np.ndarray, np.ndarray]:
    """log d, continued linearly below ``floor`` (and 1/d, frozen there).

    Where μ < 0 (or k → 0) makes an event's density non-positive the likelihood does not
    exist; a finite, C¹, steeply rising continuation lets MIGRAD's line search back away
    instead of receiving inf/NaN. Above the floor it is exactly log d.
    """
    ok = d >= floor
    dd = np.where(ok, d, floor)
    return np.log(dd) + np.where(ok, 0.0, (d - dd) / dd), 1.0 / dd


# -- the unbinned cost ----------------------------------------------------------------------------
SignalLogRatio = np.ndarray | Callable[[EventSet], Any]


def _signal_log_ratio(value: Any, events: EventSet, what: str) -> np.ndarray:
    arr = np.asarray(value(events) if callable(value) else value, dtype=np.float64)
    if arr.shape != (len(events),):
        raise InferenceError(f"{what}: signal log-ratio has shape {arr.shape}, expected "
                             f"({len(events)},)")
    # −inf is allowed (no signal density there); NaN and +inf are not.
    bad = int(np.count_nonzero(np.isnan(arr) | (arr == np.inf)))
    if bad:
        raise InferenceError(f"{what}: signal log-ratio contains {bad} NaN/+inf value(s)")
    return arr


class _ReweighterCost(Cost):
    """What both costs share: a likelihood (errordef 0.5) with an analytic gradient from
    ``_evaluate(args, gradient) -> (value, gradient | None)`` and a Hessian from central
    differences of that gradient."""

    _parameters: Any
    eager_gradient: bool
    cache: str

    def _errordef(self) -> float:
        return _LIKELIHOOD

    def _evaluate(self, args: Sequence[float], gradient: bool
                  ) -> tuple[float, np.ndarray | None]:
        raise NotImplementedError

    def _has_grad(self) -> bool:
        return True

    #: iminuit uses :meth:`hessian` for HESSE and MIGRAD's seed when this is true. If you
    #: fix parameters on your own ``Minuit(cost, ...)``, build it with ``hessian=False``:
    #: Minuit2 (iminuit ≤ 2.33) maps an external Hessian wrongly when parameters are fixed
    #: (root-project/root#20954).
    has_hessian = True
    #: How often :meth:`hessian` had to make an indefinite Hessian positive definite.
    hessian_fixes = 0

    def hessian(self, *args: float) -> np.ndarray:
        """Hessian by central differences of the analytic gradient (:func:`_fd_hessian`)."""
        return _fd_hessian(self, args)

    def _value(self, args: Sequence[float]) -> float:
        self._check_finite(args)
        return self._evaluate(args, self.eager_gradient and self.cache != "none")[0]

    def _grad(self, args: Sequence[float]) -> np.ndarray:
        self._check_finite(args)
        g = self._evaluate(args, True)[1]
        assert g is not None
        return g

    def _check_finite(self, args: Sequence[float]) -> None:
        """A minimiser's step to a non-finite point (MINOS stepping along a flat profile
        produced one in a coverage repeat's replica refit) is a failed fit, said as
        :class:`InferenceError` (callers count or skip it), not the reweighter's refusal of
        NaN θ as bad input (which stopped the whole coverage run)."""
        bad = [n for n, a in zip(self._parameters, args, strict=True) if not math.isfinite(a)]
        if bad:
            raise InferenceError("the minimiser asked for the NLL at a non-finite point ("
                                 + ", ".join(f"{n} = {a}" for n, a in zip(
                                     self._parameters, args, strict=True)) + ")")

    @property
    def parameter_names(self) -> list[str]:
        return list(self._parameters)


class ExtendedUnbinnedNLL(_ReweighterCost):
    """Extended unbinned −log L with learned background shape nuisances (module docstring).

    Named as iminuit names its costs: iminuit's ``UnbinnedNLL`` is shape-only, its
    ``ExtendedUnbinnedNLL`` adds the Poisson term of the yields, as this one does.

    Fit parameters ``[poi, *nuisances, norm]``, in that order; ``Minuit(cost, **cost.start)``
    picks up names and limits. ``errordef`` is 0.5.

    Parameters
    ----------
    data
        Data events: an EventSet (weights, if any, weight each event's log-density term) or
        an ``[n, d]`` array in the reweighter's feature order.
    reweighter
        Background shape model w(x, θ) = p_b(x|θ)/p_b0(x).
    nuisances
        Reweighter parameters to profile (:class:`Nuisance` or bare names = free).
    signal_yield, background_yield
        ν_s (expected signal at μ = 1) and ν_b (expected background at nominal).
    signal_log_ratio
        log r_s(xᵢ) = log p_s(xᵢ)/p_b0(xᵢ) for the data events, or a callable mapping an
        EventSet to it (see :func:`signal_log_ratio_from_classifier`).
    reference
        Nominal-background sample for Z(θ) (EventSet, array or a shared
        :class:`ReferenceNormalisation`); ``None``: Z ≡ 1.
    norm
        Optional background normalisation factor.
    fixed
        Values of the reweighter's other θ (default: nominal).
    poi, poi_start
        Name and start value of the signal strength.
    poi_limits
        Limits of μ (default none: μ < 0 is allowed while every event's density stays
        positive; beyond, log D is continued linearly below 10⁻¹⁰ of the event's density
        scale, a steep finite wall MIGRAD backs away from).
    shape_only
        True: the background yield is kν_b at every θ and Z(θ) normalises the shape;
        False: the yield is kν_b·Z(θ).
    cache, lru_size, grid_points
        Network caching (:mod:`ratiofit.inference.caches`). The LRU holds up to
        ``lru_size`` θ points of 8·N·(1 + p) bytes each; ``grid_points`` nodes span each
        nuisance's limits.
    data_grid
        A prebuilt :class:`LogRatioGrid` of the data events (implies ``cache='grid'``).
    eager_gradient
        With a cache, compute ∂log w/∂θ together with log w at every new θ (one
        forward+backward pass) instead of a forward pass now and another with the
        gradient when MIGRAD asks for it at the same point.
    verbose
        iminuit's verbosity (1: print every call).
    """

    def __init__(self, data: Any, *, reweighter: LogRatioModel,
                 nuisances: Sequence[Nuisance | str], signal_yield: float,
                 background_yield: float, signal_log_ratio: SignalLogRatio,
                 reference: Any = None, norm: NormFactor | None = None,
                 fixed: Mapping[str, float] | None = None, poi: str = "signal_strength",
                 poi_start: float = 1.0, poi_limits: tuple[float | None, float | None] | None
                 = None, shape_only: bool = True, cache: CacheMode = "lru",
                 lru_size: int = 16, grid_points: int = 21,
                 data_grid: LogRatioGrid | None = None, eager_gradient: bool = False,
                 verbose: int = 0) -> None:
        if not isinstance(reweighter, LogRatioModel):
            raise InferenceError(f"reweighter must be a ratiofit Reweighter or "
                                 f"AveragedReweighter (the LogRatioModel protocol), got "
                                 f"{type(reweighter).__name__}")
        for label, value in (("signal_yield", signal_yield),
                             ("background_yield", background_yield)):
            if not (math.isfinite(value) and value > 0):
                raise InferenceError(f"{label} must be a positive number, got {value}")
        if cache not in _CACHE_MODES:
            raise InferenceError(f"cache must be one of {list(_CACHE_MODES)}, got {cache!r}")
        self.nuisances, self.fixed = _resolve_nuisances(reweighter, nuisances, fixed)
        self.reweighter = reweighter
        self.poi, self.norm = poi, norm
        names = [poi, *(n.name for n in self.nuisances), *([norm.name] if norm else [])]
        if len(set(names)) != len(names):
            raise InferenceError(f"parameter names must be distinct, got {names} (rename the "
                                 "poi or the normalisation factor)")
        self.data = _as_events(data, reweighter, "data")
        n = len(self.data)
        self._wd = self.data.event_weights
        self._log_rs = _signal_log_ratio(signal_log_ratio, self.data, "data")
        self._log_signal = math.log(signal_yield) + self._log_rs  # log ν_s r_s
        # ν_s r_s in linear space, unless it could overflow (then only the stable path).
        self._signal: np.ndarray | None = None
        self._weighted_signal = np.zeros(0)
        if n and float(self._log_signal.max()) < 600:
            self._signal = np.exp(self._log_signal)
            self._weighted_signal = self._wd * self._signal
        self._unit_weights = bool(np.all(self._wd == 1.0))
        self.signal_yield, self.background_yield = float(signal_yield), float(background_yield)
        self.shape_only = shape_only
        self.cache = "grid" if data_grid is not None else cache
        self.eager_gradient = eager_gradient
        self._source = _make_source(reweighter, self.data, self.nuisances, self.fixed,
                                    self.cache, lru_size, grid_points, data_grid, "data")
        if reference is None or isinstance(reference, ReferenceNormalisation):
            self.reference = reference
        else:
            ref_cache: CacheMode = "grid" if self.cache == "grid" else cache
            self.reference = ReferenceNormalisation(
                reweighter, reference, nuisances=self.nuisances, fixed=self.fixed,
                cache=ref_cache, lru_size=lru_size, grid_points=grid_points)
        if self.reference is not None and self.reference.names != [x.name for x in
                                                                     self.nuisances]:
            raise InferenceError(f"reference normalisation runs over {self.reference.names}, "
                                 f"the nuisances are {[x.name for x in self.nuisances]}")
        params: dict[str, tuple[float, float] | None] = {
            poi: None if poi_limits is None else
            (-np.inf if poi_limits[0] is None else poi_limits[0],
             np.inf if poi_limits[1] is None else poi_limits[1])}
        for nu in self.nuisances:
            params[nu.name] = nu.limits
        if norm is not None:
            params[norm.name] = (0.0, np.inf)
        self.start: dict[str, float] = {poi: float(poi_start)}
        self.start.update({nu.name: _centre(nu) for nu in self.nuisances})
        if norm is not None:
            self.start[norm.name] = norm.nominal
        self.n_events = n
        self.n_evaluations = 0
        self._memo: tuple[tuple[float, ...], float, np.ndarray | None] | None = None
        super().__init__(params, verbose)

    # -- iminuit Cost interface ---------------------------------------------------------------
    def _ndata(self) -> float:
        return np.inf  # unbinned, as iminuit's own unbinned costs say


    # -- the likelihood -------------------------------------------------------------------------

    def cache_info(self) -> dict[str, Any]:
        """Network passes and LRU hits/misses (data and reference) so far."""
        info: dict[str, Any] = {"mode": self.cache, "evaluations": self.n_evaluations,
                                "data_network_calls": self._source.network_calls,
                                "data_hits": self._source.hits,
                                "data_misses": self._source.misses}
        if self.reference is not None:
            info["reference_network_calls"] = self.reference.network_calls
        return info

    def _split(self, args: Sequence[float]) -> tuple[float, tuple[float, ...], float]:
        mu = float(args[0])
        p = len(self.nuisances)
        theta = tuple(float(v) for v in args[1:1 + p])
        k = float(args[1 + p]) if self.norm is not None else 1.0
        return mu, theta, k

    def _evaluate(self, args: Sequence[float], gradient: bool
                  ) -> tuple[float, np.ndarray | None]:
        key = tuple(float(a) for a in args)
        if self.cache != "none" and self._memo is not None and self._memo[0] == key and \
                (self._memo[2] is not None or not gradient):
            return self._memo[1], self._memo[2]
        self.n_evaluations += 1
        value, grad = self._compute(key, gradient)
        if self.cache != "none":
            self._memo = (key, value, grad)
        return value, grad

    def _compute(self, args: tuple[float, ...], gradient: bool
                 ) -> tuple[float, np.ndarray | None]:
        mu, theta, k = self._split(args)
        p = len(theta)
        lw, g = self._source.evaluate(theta, gradient)
        if self.reference is not None:
            logz, dlogz = self.reference.log_z(theta, gradient)
        else:
            logz, dlogz = 0.0, np.zeros(p)
        nu_s, nu_b = self.signal_yield, self.background_yield
        # Per event D = μ·S + k·E with S = ν_s r_s and E = ν_b w/Z (ν_b w if not shape_only).
        log_e_offset = math.log(nu_b) - (logz if self.shape_only else 0.0)
        sums = self._sums_linear(mu, k, lw, log_e_offset, g) if self._signal is not None \
            else None
        if sums is None:
            sums = self._sums_stable(mu, k, lw, log_e_offset, g)
        sum_log_d, sum_s, sum_e, sum_eg = sums
        per_k = nu_b * (1.0 if self.shape_only else math.exp(logz))
        background = k * per_k
        value = mu * nu_s + background - sum_log_d
        for nu, t in zip(self.nuisances, theta, strict=True):
            if nu.sigma is not None:
                value += 0.5 * ((t - _centre(nu)) / nu.sigma) ** 2
        if self.norm is not None and self.norm.sigma is not None:
            value += 0.5 * ((k - self.norm.nominal) / self.norm.sigma) ** 2
        if not gradient:
            return value, None
        assert sum_eg is not None and dlogz is not None
        grad = np.zeros(len(args))
        grad[0] = nu_s - sum_s
        if self.shape_only:
            # ∂/∂θ of −log(k ν_b w/Z): the per-event score minus the reference mean score.
            grad[1:1 + p] = -k * (sum_eg - sum_e * dlogz)
        else:
            grad[1:1 + p] = background * dlogz - k * sum_eg
        for j, (nu, t) in enumerate(zip(self.nuisances, theta, strict=True)):
            if nu.sigma is not None:
                grad[1 + j] += (t - _centre(nu)) / nu.sigma ** 2
        if self.norm is not None:
            grad[1 + p] = per_k - sum_e
            if self.norm.sigma is not None:
                grad[1 + p] += (k - self.norm.nominal) / self.norm.sigma ** 2
        return value, grad

    def _sums_linear(self, mu: float, k: float, lw: np.ndarray, log_e_offset: float,
                     g: np.ndarray | None
                     ) -> tuple[float, float, float, np.ndarray | None] | None:
        """Σ w log D, Σ w S/D, Σ w E/D, Σ w E g/D in linear space: one exp and one log per
        event (the transcendental functions dominate at 10⁶ events). ``None`` when a value
        overflows or a density falls below the floor: the caller takes the stable path."""
        sig = self._signal
        assert sig is not None
        with np.errstate(over="ignore", invalid="ignore"):
            e = np.exp(lw + log_e_offset)
            d = mu * sig + k * e
            # d ≥ min(μ, k)·(S + E) when both are ≥ 0, so the floor only needs checking
            # for small or negative μ, k.
            if min(mu, k) < _DENSITY_FLOOR and not np.all(d >= _DENSITY_FLOOR * (sig + e)):
                return None
            wd = self._wd
            sum_log_d = float(np.einsum("i,i->", wd, np.log(d)))
            if not math.isfinite(sum_log_d):
                return None
            if g is None:
                return sum_log_d, 0.0, 0.0, None
            inv = 1.0 / d
            we = e * inv if self._unit_weights else wd * e * inv
            sum_s = float(np.einsum("i,i->", self._weighted_signal, inv))
            return sum_log_d, sum_s, float(we.sum()), np.einsum("i,ij->j", we, g)

    def _sums_stable(self, mu: float, k: float, lw: np.ndarray, log_e_offset: float,
                     g: np.ndarray | None) -> tuple[float, float, float, np.ndarray | None]:
        """The same sums with exp(m), m = max(log S, log E), factored out per event, so
        neither term overflows or underflows alone; below the floor log D is continued
        linearly (:func:`_safe_log`)."""
        a = self._log_signal
        b = lw + log_e_offset
        m = np.maximum(a, b)
        s, u = np.exp(a - m), np.exp(b - m)
        d = mu * s + k * u
        log_d, inv_d = _safe_log(d, _DENSITY_FLOOR)
        sum_log_d = float(np.einsum("i,i->", self._wd, m + log_d))
        if g is None:
            return sum_log_d, 0.0, 0.0, None
        ws, wu = self._wd * s * inv_d, self._wd * u * inv_d
        return sum_log_d, float(ws.sum()), float(wu.sum()), _weighted_sum(wu, g)


# -- the binned cost ------------------------------------------------------------------------------
class ReweightedBinnedNLL(_ReweighterCost):
    """Poisson −log L of binned data with reweighted background templates (Eq. 3.6).

    ``ν_b(μ, θ, k) = μ·s_b + k·h_b(θ)`` with the background template

        h_b(θ) = B · Σ_{i∈b} w0ᵢ w(xᵢ, θ) / Σ_{all i} w0ᵢ w(xᵢ, θ)     (shape_only)
        h_b(θ) = B · Σ_{i∈b} w0ᵢ w(xᵢ, θ) / Σ_{all i} w0ᵢ              (otherwise)

    over a nominal background simulation (B = ``background_yield``, default Σ w0; events
    outside the binning count in the normalisation only), and the cost
    Σ_b [ν_b − n_b + n_b log(n_b/ν_b)] + constraints (so its minimum is χ²/2-like);
    ``errordef`` 0.5. The gradient in θ comes from the reweighter (``cache='lru'``/
    ``'none'``) or from per-bin Catmull-Rom interpolation of the templates on a θ grid
    (``cache='grid'``, one nuisance, same accuracy statement as :class:`LogRatioGrid`
    applied to the bin sums). Barlow–Beeston MC-statistics terms are not included.

    Parameters
    ----------
    counts
        Observed counts per bin ``[K]``.
    edges
        ``K + 1`` increasing bin edges of ``observable``.
    background
        Nominal background simulation (EventSet; weights w0 are the per-event yields up to
        the overall ``background_yield``).
    observable
        Feature name of ``background`` to bin, or an array of its values.
    signal_template
        Expected signal counts per bin at μ = 1 ``[K]``.
    reweighter, nuisances, fixed, norm, poi, poi_start, poi_limits, shape_only, cache,
    lru_size, grid_points, eager_gradient, verbose
        As for :class:`ExtendedUnbinnedNLL`.
    background_yield
        Total expected background at nominal; ``None``: Σ w0.
    """

    def __init__(self, counts: Any, *, edges: Any, background: EventSet,
                 observable: str | np.ndarray, signal_template: Any, reweighter: LogRatioModel,
                 nuisances: Sequence[Nuisance | str], background_yield: float | None = None,
                 norm: NormFactor | None = None, fixed: Mapping[str, float] | None = None,
                 poi: str = "signal_strength", poi_start: float = 1.0,
                 poi_limits: tuple[float | None, float | None] | None = None,
                 shape_only: bool = True, cache: CacheMode = "lru", lru_size: int = 16,
                 grid_points: int = 21, eager_gradient: bool = False, verbose: int = 0) -> None:
        self.nuisances, self.fixed = _resolve_nuisances(reweighter, nuisances, fixed)
        if cache not in _CACHE_MODES:
            raise InferenceError(f"cache must be one of {list(_CACHE_MODES)}, got {cache!r}")
        e = np.asarray(edges, dtype=np.float64)
        if e.ndim != 1 or len(e) < 2 or not np.all(np.isfinite(e)) or np.any(np.diff(e) <= 0):
            raise InferenceError("edges must be at least 2 finite, increasing numbers")
        self.edges = e
        k_bins = len(e) - 1
        n = np.asarray(counts, dtype=np.float64)
        if n.shape != (k_bins,) or not np.all(np.isfinite(n)) or np.any(n < 0):
            raise InferenceError(f"counts must be {k_bins} finite non-negative numbers, got "
                                 f"shape {n.shape}")
        self.counts = n
        s = np.asarray(signal_template, dtype=np.float64)
        if s.shape != (k_bins,) or not np.all(np.isfinite(s)) or np.any(s < 0):
            raise InferenceError(f"signal_template must be {k_bins} finite non-negative numbers")
        self.signal_template = s
        if isinstance(observable, str):
            x = background.feature_columns([observable])[:, 0] \
                if observable in background.feature_names else None
            if x is None:
                raise InferenceError(f"observable '{observable}' is not a feature of the "
                                     f"background events ({list(background.feature_names)})")
        else:
            x = np.asarray(observable, dtype=np.float64)
            if x.shape != (len(background),) or not np.all(np.isfinite(x)):
                raise InferenceError(f"observable values must be {len(background)} finite "
                                     "numbers")
        w0 = background.event_weights
        inside = (x >= e[0]) & (x < e[-1])
        if not inside.any():
            raise InferenceError(f"the binning [{e[0]}, {e[-1]}) holds none of the background "
                                 "events")
        self._bin = np.where(inside, np.clip(np.searchsorted(e, x, side="right") - 1, 0,
                                             k_bins - 1), k_bins)  # k_bins = outside
        self._w0 = w0
        total = float(background_yield) if background_yield is not None else float(w0.sum())
        if not (math.isfinite(total) and total > 0):
            raise InferenceError(f"background_yield must be positive, got {total}")
        self._scale = total / float(w0.sum())
        nominal = np.bincount(self._bin, weights=w0, minlength=k_bins + 1)[:k_bins] * self._scale
        empty = np.flatnonzero((nominal <= 0) & (s <= 0))
        if empty.size:
            raise InferenceError(f"bin(s) {empty.tolist()} have no expected events at nominal "
                                 "(binning outside the simulated range?)")
        self.reweighter, self.poi, self.norm = reweighter, poi, norm
        self.shape_only, self.eager_gradient = shape_only, eager_gradient
        self.cache = cache
        names = [poi, *(nu.name for nu in self.nuisances), *([norm.name] if norm else [])]
        if len(set(names)) != len(names):
            raise InferenceError(f"parameter names must be distinct, got {names}")
        self._grid_nodes: np.ndarray | None = None
        if cache == "grid":
            if len(self.nuisances) != 1:
                raise InferenceError("grid interpolation supports one nuisance; use cache='lru'")
            lim = self.nuisances[0].limits
            assert lim is not None
            self._grid_nodes = _check_nodes(np.linspace(lim[0], lim[1], grid_points), "binned")
            sums = []
            src = _NetworkSource(reweighter, background, [self.nuisances[0].name], self.fixed)
            for t in self._grid_nodes:
                lw, _ = src.evaluate((float(t),), False)
                sums.append(self._sums(lw))
            self._grid_sums = _with_ghosts(np.stack(sums))  # [G+2, K+1]
            self._source: _Source = src
        else:
            self._source = _make_source(reweighter, background, self.nuisances, self.fixed,
                                        cache, lru_size, grid_points, None, "background")
        params: dict[str, tuple[float, float] | None] = {
            poi: None if poi_limits is None else
            (-np.inf if poi_limits[0] is None else poi_limits[0],
             np.inf if poi_limits[1] is None else poi_limits[1])}
        for nu in self.nuisances:
            params[nu.name] = nu.limits
        if norm is not None:
            params[norm.name] = (0.0, np.inf)
        self.start: dict[str, float] = {poi: float(poi_start)}
        for nu in self.nuisances:
            self.start[nu.name] = _centre(nu)
        if norm is not None:
            self.start[norm.name] = norm.nominal
        self.n_evaluations = 0
        self._memo: tuple[tuple[float, ...], float, np.ndarray | None] | None = None
        super().__init__(params, verbose)

    def _sums(self, lw: np.ndarray) -> np.ndarray:
        """Σ w0 w per bin and (last entry) over all events, [K + 1]."""
        k_bins = len(self.edges) - 1
        ww = self._w0 * np.exp(lw)
        per_bin = np.bincount(self._bin, weights=ww, minlength=k_bins + 1)
        per_bin[k_bins] = ww.sum()
        return per_bin

    def _ndata(self) -> int:
        return len(self.counts)



    def cache_info(self) -> dict[str, Any]:
        return {"mode": self.cache, "evaluations": self.n_evaluations,
                "network_calls": self._source.network_calls, "hits": self._source.hits,
                "misses": self._source.misses}

    def _evaluate(self, args: Sequence[float], gradient: bool
                  ) -> tuple[float, np.ndarray | None]:
        key = tuple(float(a) for a in args)
        if self.cache != "none" and self._memo is not None and self._memo[0] == key and \
                (self._memo[2] is not None or not gradient):
            return self._memo[1], self._memo[2]
        self.n_evaluations += 1
        out = self._compute(key, gradient)
        if self.cache != "none":
            self._memo = (key, *out)
        return out

    def template(self, theta: Sequence[float], gradient: bool = False
                 ) -> tuple[np.ndarray, np.ndarray | None]:
        """Background template h(θ) ``[K]`` at k = 1 and (optionally) ∂h/∂θ ``[K, p]``."""
        k_bins = len(self.edges) - 1
        th = tuple(float(t) for t in theta)
        if self._grid_nodes is not None:
            j, c, dc = _catmull_rom(self._grid_nodes, th[0])
            rows = self._grid_sums[j:j + 4]
            sums, dsums = (c @ rows), (dc @ rows)[:, None]
        else:
            lw, g = self._source.evaluate(th, gradient)
            sums = self._sums(lw)
            dsums = None
            if gradient:
                assert g is not None
                ww = self._w0 * np.exp(lw)
                dsums = np.stack([np.bincount(self._bin, weights=ww * g[:, j],
                                              minlength=k_bins + 1) for j in range(g.shape[1])],
                                 axis=1)
                dsums[k_bins] = _weighted_sum(ww, g)
        per_bin, total = sums[:k_bins], sums[k_bins]
        if self.shape_only:
            scale = self._scale * float(self._w0.sum())
            h = scale * per_bin / total
            dh = None if not gradient or dsums is None else \
                scale * (dsums[:k_bins] / total - np.outer(per_bin, dsums[k_bins]) / total ** 2)
        else:
            h = self._scale * per_bin
            dh = None if not gradient or dsums is None else self._scale * dsums[:k_bins]
        return h, dh

    def _compute(self, args: tuple[float, ...], gradient: bool
                 ) -> tuple[float, np.ndarray | None]:
        p = len(self.nuisances)
        mu, theta = args[0], args[1:1 + p]
        k = args[1 + p] if self.norm is not None else 1.0
        h, dh = self.template(theta, gradient)
        nu = mu * self.signal_template + k * h
        log_nu, inv_nu = _safe_log(nu, _DENSITY_FLOOR * (self.signal_template + h) + 1e-300)
        n = self.counts
        pos = n > 0
        value = float(np.sum(nu - n) + np.sum(n[pos] * (np.log(n[pos]) - log_nu[pos])))
        for nuis, t in zip(self.nuisances, theta, strict=True):
            if nuis.sigma is not None:
                value += 0.5 * ((t - _centre(nuis)) / nuis.sigma) ** 2
        if self.norm is not None and self.norm.sigma is not None:
            value += 0.5 * ((k - self.norm.nominal) / self.norm.sigma) ** 2
        if not gradient:
            return value, None
        assert dh is not None
        r = 1.0 - n * inv_nu
        grad = np.zeros(len(args))
        grad[0] = r @ self.signal_template
        grad[1:1 + p] = k * (r @ dh)
        for j, (nuis, t) in enumerate(zip(self.nuisances, theta, strict=True)):
            if nuis.sigma is not None:
                grad[1 + j] += (t - _centre(nuis)) / nuis.sigma ** 2
        if self.norm is not None:
            grad[1 + p] = r @ h
            if self.norm.sigma is not None:
                grad[1 + p] += (k - self.norm.nominal) / self.norm.sigma ** 2
        return value, grad


# -- signal ratios from classifiers -------------------------------------------------------------
def signal_log_ratio_from_classifier(output: Any, *, kind: Literal["s_vs_b", "s_plus_b_vs_b"]
                                     = "s_vs_b", n_signal_train: float = 1.0,
                                     n_background_train: float = 1.0,
                                     signal_fraction: float | None = None, logits: bool = False,
                                     floor: float = 1e-12) -> np.ndarray:
    """log r_s = log p_s/p_b from a classifier trained with BCE (or MSE) loss.

    A classifier f minimising BCE or MSE learns f = P(class 1 | x) (guide-searches.md
    App. A, Eq. A.12), so f/(1 − f) = (π₁/π₀)·p₁(x)/p₀(x) with π the training class
    priors (total training weights). Hence:

    ``kind="s_vs_b"`` (signal = class 1 against background, Eq. 3.12)
        log r_s = logit f + log(N_b/N_s): the class-prior correction undoes the ratio of
        training weights (zero for class-balanced training).
    ``kind="s_plus_b_vs_b"`` (S+B against B, Eq. 3.9–3.10)
        λ = f/(1 − f)·N_b/N_{S+B} estimates p_{S+B}/p_B; with α = S/(S+B) the signal
        fraction of the S+B training sample, p_{S+B} = α p_S + (1 − α) p_B gives
        r_s = (λ − (1 − α))/α (Eq. 3.13; Eq. 3.14 as printed misplaces the 1/α). The
        subtraction cancels where α·r_s ≪ 1 (relative error ~ ε/(α·r_s) for an output of
        relative precision ε — float32 networks give ε ~ 10⁻⁷), and a noisy λ below
        1 − α would make r_s ≤ 0: such values are set to ``floor`` and counted in a
        warning. Prefer an S-vs-B classifier where background-like events matter.

    Parameters
    ----------
    output
        Classifier outputs f ∈ (0, 1) per event, or its logits with ``logits=True``
        (preferred: a float32 sigmoid saturates at 1 for large logits).
    kind
        Which classifier (above).
    n_signal_train, n_background_train
        Total training weight of the class-1 and class-0 samples.
    signal_fraction
        α, required for ``s_plus_b_vs_b``.
    logits
        Whether ``output`` is logit f.
    floor
        Smallest r_s kept for ``s_plus_b_vs_b``.

    Returns
    -------
    numpy.ndarray
        log r_s per event (float64), usable as ``signal_log_ratio``.

    Examples
    --------
    >>> float(signal_log_ratio_from_classifier([0.5], n_signal_train=1, n_background_train=3)[0])
    1.0986122886681098
    """
    z = np.asarray(output, dtype=np.float64)
    if z.ndim != 1:
        z = z.reshape(-1)
    if not np.all(np.isfinite(z)):
        raise InferenceError("classifier output contains NaN/inf values")
    if not logits:
        if np.any((z <= 0) | (z >= 1)):
            raise InferenceError("classifier outputs must lie strictly inside (0, 1); pass the "
                                 "logits with logits=True for saturated outputs")
        z = np.log(z) - np.log1p(-z)
    for label, v in (("n_signal_train", n_signal_train),
                     ("n_background_train", n_background_train)):
        if not (math.isfinite(v) and v > 0):
            raise InferenceError(f"{label} must be positive, got {v}")
    prior = math.log(n_background_train / n_signal_train)
    if kind == "s_vs_b":
        return z + prior
    if kind != "s_plus_b_vs_b":
        raise InferenceError(f"kind must be 's_vs_b' or 's_plus_b_vs_b', got {kind!r}")
    if signal_fraction is None or not 0 < signal_fraction <= 1:
        raise InferenceError("s_plus_b_vs_b needs signal_fraction α in (0, 1]")
    lam = np.exp(z + prior)
    r = (lam - (1 - signal_fraction)) / signal_fraction
    low = r < floor
    if low.any():
        warnings.warn(f"{int(low.sum())} of {len(r)} events have λ ≤ 1 − α; r_s set to "
                      f"{floor}", stacklevel=2)
    return np.log(np.maximum(r, floor))
