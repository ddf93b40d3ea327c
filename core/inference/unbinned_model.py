"""An unbinned model as an analyst declares it: channels, samples with yields, a reweighter's
parameters as constrained nuisances, and the standard yield modifiers.

The likelihood
--------------
In channel c, data events xᵢ (weights wᵢᵈ) are described by samples k with expected yields
ν_k(φ) and densities p_k(x). All densities are taken relative to the channel's
*background* sample's nominal density p_b0 (the reweighter's reference, guide-searches.md
Eq. 3.7–3.8):

* the background: p_b(x|θ) = p_b0(x)·w(x, θ)/Z(θ), with w from a trained reweighter and
  θ = θ₀ + σ·α its nuisance parameters (standardised like the binned model's,
  :class:`~ratiofit.inference.ReweighterNuisance`); its yield follows the reweighter,
  ν_b(θ) = ν_b·Z(θ)/Z(θ₀), as the binned templates do (Z over the background sample's own
  events, :class:`~ratiofit.inference.ReferenceNormalisation`);
* every other sample: p_k(x) = p_b0(x)·r_k(x)/Z_k, with log r_k from a θ-free density
  ratio (a classifier of that sample against the background, e.g. a ratiofit reweighter
  with no parameters, or :func:`~ratiofit.inference.signal_log_ratio_from_classifier`) and
  Z_k = E_b0[r_k], its mean over the background's events, so that p_k integrates to one
  whatever the classifier's calibration.

Yields carry the standard HistFactory factors of :class:`~ratiofit.inference.StandardModifier`
— a parameter of interest μ (``poi``), ``normfactor`` k (free), ``lumi`` λ (constrained
N(1, σ_λ)) and ``normsys`` α (constrained N(0, 1), factor hi^α for α ≥ 0 and lo^(−α)
below, pyhf's exponential interpolation) — so that

    −log L = Σ_c [ Σ_k ν_k(φ) − Σᵢ wᵢᵈ log Σ_k ν_k(φ) r_k(xᵢ) ] + Σ constraints

up to the constant Σᵢ wᵢᵈ log p_b0(xᵢ). For the background, ν_b r_b(xᵢ) reads
ν_b(φ)·w(xᵢ, θ)/Z(θ₀). Constraints: ½(α − a)² for each reweighter nuisance (a: the
auxiliary measurement in α units), ½α² for each normsys, ½((λ − 1)/σ_λ)² for the lumi.
This is the unbinned twin of the binned model of :mod:`ratiofit.inference.pyhf_model`
with the same parameter names, so the two can be fitted side by side. It has no
``staterror``: there are no bins; the background sample's Monte-Carlo error enters
through Z(θ) only.

:class:`UnbinnedModel` holds the channels and makes the cost of any data
(:meth:`UnbinnedModel.nll`), including weighted Asimov data (:meth:`UnbinnedModel.asimov`);
:class:`UnbinnedModelNLL` is an :class:`iminuit.cost.Cost` with an analytic gradient (the
reweighter's θ-gradient) and the Hessian of :mod:`ratiofit.inference.costs`. Fits, CLs,
limits and impacts on it: :mod:`ratiofit.inference.unbinned_analysis`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..events import EventSet
from ..log_normalisation import log_mean_ratio
from ..log_ratio import LogRatioModel
from .binned_templates import StandardModifier
from .caches import _make_source, _Source
from .costs import _DENSITY_FLOOR, _fd_hessian, _ReweighterCost, _safe_log
from .errors import InferenceError
from .normalisation import ReferenceNormalisation
from .nuisances import Nuisance, _as_events

__all__ = ["UnbinnedChannel", "UnbinnedComponent", "UnbinnedModel", "UnbinnedModelNLL",
           "UnbinnedNuisance"]

LogRatioFn = Callable[[EventSet], Any]


@dataclass(frozen=True)
class UnbinnedNuisance:
    """A reweighter parameter θ = θ₀ + σ·α profiled as the standardised α (N(a, 1))."""

    name: str
    parameter: str
    nominal: float
    sigma: float
    measured: float | None = None

    @property
    def auxdata(self) -> float:
        return 0.0 if self.measured is None else (self.measured - self.nominal) / self.sigma

    def theta(self, alpha: float) -> float:
        return self.nominal + self.sigma * alpha


@dataclass(frozen=True)
class UnbinnedComponent:
    """One sample of a channel: its simulated events (for Z(θ) and Asimov data), its
    nominal yield and, unless it is the channel's background, its density ratio to it."""

    name: str
    events: EventSet
    yield_: float
    log_ratio: LogRatioFn | None = None  # None: the channel's background
    poi: str | None = None
    modifiers: tuple[StandardModifier, ...] = ()


@dataclass(frozen=True)
class UnbinnedChannel:
    """A channel: its data events, its samples (exactly one without a density ratio: the
    background the reweighter models) and the reweighter nuisances acting on it."""

    name: str
    data: EventSet
    components: tuple[UnbinnedComponent, ...]
    nuisances: tuple[str, ...]

    @property
    def background(self) -> UnbinnedComponent:
        return next(c for c in self.components if c.log_ratio is None)


@dataclass
class _Factor:
    """A yield factor of one component: parameter index, kind and data."""

    index: int
    kind: str
    data: Mapping[str, Any] = field(default_factory=dict)

    def value_and_slope(self, x: float) -> tuple[float, float]:
        if self.kind in ("poi", "normfactor", "lumi"):
            return x, 1.0
        lo, hi = float(self.data["lo"]), float(self.data["hi"])  # normsys, code 1
        base = hi if x >= 0 else 1.0 / lo
        f = base ** x
        return f, f * math.log(base)


class UnbinnedModel:
    """Channels, reweighter nuisances and parameters of an unbinned model (module docstring).

    Parameters
    ----------
    channels
        The channels; each has exactly one background component (``log_ratio=None``).
    reweighter
        The background shape model w(x, θ), shared by the channels.
    nuisances
        The reweighter parameters profiled (α units); the reweighter's other θ are held at
        ``fixed`` (default: their nominal values).
    pois
        Parameters of interest; the first is tested and limited. Bounds ``poi_bounds``,
        [0, 10] like the binned models': below 0 the signal-like events' densities
        μν_s r_s + ν_b w/Z approach zero and the likelihood turns steep and unphysical (a
        background-only fit measured μ̂ = −2.3 ± 0.24 where μ ≥ 0 gives an error of 1.5).
    """

    def __init__(self, *, channels: Sequence[UnbinnedChannel], reweighter: LogRatioModel,
                 nuisances: Sequence[UnbinnedNuisance], pois: Sequence[str],
                 fixed: Mapping[str, float] | None = None,
                 poi_bounds: tuple[float, float] = (0.0, 10.0), lru_size: int = 16) -> None:
        if not isinstance(reweighter, LogRatioModel):
            raise InferenceError(f"reweighter must be a ratiofit Reweighter, got "
                                 f"{type(reweighter).__name__}")
        self.reweighter = reweighter
        self.nuisances = {n.name: n for n in nuisances}
        self.pois = list(pois)
        if not self.pois:
            raise InferenceError("an unbinned model needs a parameter of interest")
        self.poi = self.pois[0]
        self.channels = list(channels)
        self.lru_size = lru_size
        names = reweighter.theta_names
        for nu in nuisances:
            if nu.parameter not in names:
                raise InferenceError(f"nuisance '{nu.name}': the reweighter has no parameter "
                                     f"'{nu.parameter}' (it has {names})")
            p = reweighter.parameters[nu.parameter]
            if not (nu.sigma > 0 and p.low <= nu.nominal <= p.high):
                raise InferenceError(f"nuisance '{nu.name}': needs σ > 0 and θ₀ in the "
                                     f"reweighter's range [{p.low:g}, {p.high:g}]")
        self.fixed = {p.name: p.nominal for p in reweighter.parameters}
        self.fixed.update({k: float(v) for k, v in (fixed or {}).items()})
        # the parameters: POIs, reweighter nuisances, then the standard modifiers' in order
        self.limits: dict[str, tuple[float, float]] = {q: poi_bounds for q in self.pois}
        self.start: dict[str, float] = dict.fromkeys(self.pois, 1.0)
        self.constraints: dict[str, tuple[str, float, float]] = {}  # kind, centre, sigma
        for nu in nuisances:
            p = reweighter.parameters[nu.parameter]
            self.limits[nu.name] = ((p.low - nu.nominal) / nu.sigma,
                                    (p.high - nu.nominal) / nu.sigma)
            self.start[nu.name] = 0.0
            self.constraints[nu.name] = ("normal", nu.auxdata, 1.0)
        for ch in self.channels:
            backgrounds = [c for c in ch.components if c.log_ratio is None]
            if len(backgrounds) != 1:
                raise InferenceError(f"channel '{ch.name}': needs exactly one background "
                                     f"component (log_ratio=None), got {len(backgrounds)}")
            unknown = sorted(set(ch.nuisances) - set(self.nuisances))
            if unknown:
                raise InferenceError(f"channel '{ch.name}': unknown nuisances {unknown}")
            for c in ch.components:
                if not (math.isfinite(c.yield_) and c.yield_ > 0):
                    raise InferenceError(f"channel '{ch.name}', sample '{c.name}': the yield "
                                         f"must be > 0, got {c.yield_}")
                if c.poi is not None and c.poi not in self.pois:
                    raise InferenceError(f"sample '{c.name}': '{c.poi}' is not a parameter "
                                         f"of interest ({self.pois})")
                for m in c.modifiers:
                    self._declare(m)
        self.names = list(self.limits)
        self.index = {n: i for i, n in enumerate(self.names)}
        self._yield_cost: UnbinnedModelNLL | None = None
        self._references: dict[str, ReferenceNormalisation] = {}
        # log Z_k = log E_b0[r_k] over the background's events: a learned ratio is not
        # normalised by itself (a 2-epoch classifier gave E_b0[r̂_s] = 1.8, hence μ̂ ≈ 3 on
        # background-only data), and p_k = p_b0·r_k/Z_k integrates to one by construction
        self.log_norm: dict[tuple[str, str], float] = {}
        for ch in self.channels:
            bkg = ch.background
            for c in ch.components:
                if c.log_ratio is not None:
                    lr = np.asarray(c.log_ratio(bkg.events), dtype=np.float64).reshape(-1)
                    if lr.shape != (len(bkg.events),) or np.any(np.isnan(lr) | (lr == np.inf)):
                        raise InferenceError(f"channel '{ch.name}', sample '{c.name}': the "
                                             "density ratio must be finite on the background's "
                                             "events")
                    self.log_norm[(ch.name, c.name)] = log_mean_ratio(
                        lr, weights=bkg.events.event_weights)[0]

    def _declare(self, m: StandardModifier) -> None:
        if m.name in self.pois or m.name in self.nuisances:
            if m.kind == "normfactor" and m.name in self.pois:
                return
            raise InferenceError(f"modifier '{m.name}' is also a parameter of interest or a "
                                 "reweighter nuisance")
        if m.kind == "shapesys":
            raise InferenceError(f"modifier '{m.name}': shapesys is per bin; an unbinned "
                                 "model has no bins")
        if m.name in self.limits:
            return
        if m.kind == "normfactor":
            self.limits[m.name], self.start[m.name] = (0.0, 10.0), 1.0
        elif m.kind == "lumi":
            s = float(m.data["sigma"])
            self.limits[m.name], self.start[m.name] = (max(1e-6, 1 - 10 * s), 1 + 10 * s), 1.0
            self.constraints[m.name] = ("normal", float(m.data.get("measured", 1.0)), s)
        elif m.kind == "normsys":
            self.limits[m.name], self.start[m.name] = (-5.0, 5.0), 0.0
            self.constraints[m.name] = ("normal", float(m.data.get("measured", 0.0)), 1.0)
        else:
            raise InferenceError(f"modifier '{m.name}': unknown kind '{m.kind}'")

    def constrained(self) -> list[str]:
        """The constrained parameters (reweighter nuisances, normsys, lumi), in order."""
        return [n for n in self.names if n in self.constraints]

    def theta(self, values: Mapping[str, float]) -> dict[str, float]:
        """The reweighter's θ at parameter values (α → θ₀ + σα)."""
        th = dict(self.fixed)
        for n, nu in self.nuisances.items():
            th[nu.parameter] = nu.theta(float(values.get(n, 0.0)))
        return th

    def nll(self, data: Mapping[str, EventSet] | None = None,
            constraint_centres: Mapping[str, float] | None = None) -> UnbinnedModelNLL:
        """The cost of ``data`` (channel → events; default: each channel's own data);
        ``constraint_centres`` moves the auxiliary data (Asimov sets, toys)."""
        return UnbinnedModelNLL(self, data or {ch.name: ch.data for ch in self.channels},
                                constraint_centres=constraint_centres)

    def expected_yields(self, values: Mapping[str, float]) -> dict[str, dict[str, float]]:
        """Channel → sample → expected events at ``values`` (the others at their start)."""
        # yields need Z(θ) only, not the data: one cost serves every call (the plots'
        # Jacobian and the Asimov sets ask many times)
        if self._yield_cost is None:
            self._yield_cost = self.nll()
        cost = self._yield_cost
        args = np.array([float(values.get(n, self.start[n])) for n in self.names])
        return cost.yields(args)

    def asimov(self, values: Mapping[str, float]) -> tuple[dict[str, EventSet],
                                                            dict[str, float]]:
        """Weighted Asimov data at ``values``: every component's simulated events with
        weights summing to its expected yield, the background's reweighted by
        w(x, θ)/Z(θ₀); and the matching constraint centres (the values themselves)."""
        th = self.theta(values)
        yields = self.expected_yields(values)
        out: dict[str, EventSet] = {}
        for ch in self.channels:
            parts = []
            for c in ch.components:
                w0 = c.events.event_weights.astype(np.float64)
                if c.log_ratio is None:
                    lw = np.asarray(self.reweighter.log_ratio(features=c.events, theta=th),
                                    dtype=np.float64)
                    w = w0 * np.exp(lw - lw.max())
                else:
                    w = w0
                parts.append((c.events, w * (yields[ch.name][c.name] / w.sum())))
            out[ch.name] = concatenate_events(parts)
        centres = {n: float(values.get(n, self.start[n])) for n in self.constraints}
        return out, centres


def concatenate_events(parts: Sequence[tuple[EventSet, np.ndarray]]) -> EventSet:
    """The events of ``parts`` (event set, its weights) as one weighted event set; they
    must share their features."""
    first = parts[0][0]
    for e, _ in parts[1:]:
        if e.feature_names != first.feature_names:
            raise InferenceError(f"event sets disagree on features: {first.feature_names} "
                                 f"vs {e.feature_names}")
    return EventSet(features=np.concatenate([e.features for e, _ in parts]),
                    feature_names=first.feature_names,
                    weights=np.concatenate([w for _, w in parts]))


class _Fixed:
    """log w of events and log Z of a channel without shape nuisances (θ fixed)."""

    def __init__(self, lw: np.ndarray, log_z: float) -> None:
        self.lw, self._log_z = lw, float(log_z)

    def evaluate(self, theta: tuple[float, ...], gradient: bool
                 ) -> tuple[np.ndarray, np.ndarray | None]:
        return self.lw, np.zeros((len(self.lw), 0)) if gradient else None

    def log_z(self, theta: Sequence[float], gradient: bool = True
              ) -> tuple[float, np.ndarray | None]:
        return self._log_z, np.zeros(0) if gradient else None


@dataclass
class _ChannelState:
    name: str
    wd: np.ndarray
    log_r: np.ndarray  # [k, n]: log r_k(xᵢ) of the components (0 for the background row)
    background: int
    source: _Source | _Fixed
    reference: ReferenceNormalisation | _Fixed
    log_z0: float
    alpha_index: list[int]  # the channel's nuisances' parameter indices
    sigmas: np.ndarray
    nominals: list[float]
    factors: list[list[_Factor]]  # per component
    base: np.ndarray  # nominal yields per component
    names: list[str]
    work: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))  # log_r + log w row


class UnbinnedModelNLL(_ReweighterCost):
    """−log L of an :class:`UnbinnedModel` for given data (module docstring); parameters
    in :attr:`UnbinnedModel.names` order, ``errordef`` 0.5."""

    eager_gradient = False
    cache = "lru"

    def __init__(self, model: UnbinnedModel, data: Mapping[str, EventSet],
                 constraint_centres: Mapping[str, float] | None = None) -> None:
        self.model = model
        self.hessian_fixes = 0
        self._memo: tuple[tuple[float, ...], float, np.ndarray | None] | None = None
        self._hessian_memo: tuple[tuple[float, ...], np.ndarray] | None = None
        self.n_evaluations = 0
        centres = dict(constraint_centres or {})
        self._constraints = [(model.index[n], centres.get(n, c), s)
                             for n, (_, c, s) in model.constraints.items()]
        self._channels = [self._state(ch, data[ch.name]) for ch in model.channels]
        for st in self._channels:
            st.work = st.log_r.copy()
        super().__init__({n: model.limits[n] for n in model.names}, 0)

    def _state(self, ch: UnbinnedChannel, data: EventSet) -> _ChannelState:
        m = self.model
        events = _as_events(data, m.reweighter, f"channel '{ch.name}' data")
        wd = events.event_weights.astype(np.float64)
        nus = [m.nuisances[n] for n in ch.nuisances]
        params = [Nuisance(name=nu.parameter) for nu in nus]
        fixed = {k: v for k, v in m.fixed.items() if k not in {nu.parameter for nu in nus}}
        resolved = [Nuisance(name=nu.parameter, nominal=nu.nominal, sigma=None,
                             limits=(m.reweighter.parameters[nu.parameter].low,
                                     m.reweighter.parameters[nu.parameter].high))
                    for nu in nus] if nus else params
        bkg = ch.background
        source: _Source | _Fixed
        reference: ReferenceNormalisation | _Fixed
        if nus:
            source = _make_source(m.reweighter, events, resolved, fixed, "lru", m.lru_size, 21,
                                  None, f"channel '{ch.name}' data")
            # Z(θ) depends on the model alone, not on the data: one per channel serves
            # every cost of the model (toys, Asimov sets, the yields), with its cache
            shared = m._references.get(ch.name)
            if shared is None:
                shared = m._references[ch.name] = ReferenceNormalisation(
                    m.reweighter, bkg.events, nuisances=resolved, fixed=fixed, cache="lru",
                    lru_size=4 * m.lru_size)
            reference = shared
        else:  # no shape nuisance here: w at the fixed θ, once
            lw = m.reweighter.log_ratio(features=events, theta=fixed)
            lw_ref = m.reweighter.log_ratio(features=bkg.events, theta=fixed)
            source = _Fixed(np.asarray(lw, dtype=np.float64), 0.0)
            reference = _Fixed(np.zeros(0), log_mean_ratio(
                np.asarray(lw_ref, dtype=np.float64), weights=bkg.events.event_weights)[0])
        log_z0 = reference.log_z(tuple(nu.nominal for nu in nus), gradient=False)[0]
        rows, factors, background = [], [], 0
        for k, c in enumerate(ch.components):
            if c.log_ratio is None:
                background = k
                rows.append(np.zeros(len(events)))
            else:
                r = np.asarray(c.log_ratio(events), dtype=np.float64).reshape(-1)
                if r.shape != (len(events),) or np.any(np.isnan(r) | (r == np.inf)):
                    raise InferenceError(f"channel '{ch.name}', sample '{c.name}': the density "
                                         "ratio must be one finite (or −inf) value per event")
                rows.append(r - m.log_norm[(ch.name, c.name)])
            fs = [_Factor(m.index[c.poi], "poi")] if c.poi is not None else []
            fs += [_Factor(m.index[mod.name], mod.kind, mod.data) for mod in c.modifiers]
            factors.append(fs)
        return _ChannelState(
            name=ch.name, wd=wd, log_r=np.vstack(rows) if rows else np.zeros((0, 0)),
            background=background, source=source, reference=reference, log_z0=log_z0,
            alpha_index=[m.index[nu.name] for nu in nus],
            sigmas=np.array([nu.sigma for nu in nus]), nominals=[nu.nominal for nu in nus],
            factors=factors, base=np.array([c.yield_ for c in ch.components]),
            names=[c.name for c in ch.components])

    def _ndata(self) -> float:
        return np.inf

    def hessian(self, *args: float) -> np.ndarray:
        """Central differences of the gradient (:func:`_fd_hessian`), kept for the last
        point: MIGRAD (strategy 1) ends with a Hessian at its minimum and HESSE then asks
        for the same one."""
        key = tuple(float(a) for a in args)
        if self._hessian_memo is None or self._hessian_memo[0] != key:
            self._hessian_memo = (key, _fd_hessian(self, args))
        return self._hessian_memo[1].copy()

    def _evaluate(self, args: Sequence[float], gradient: bool
                  ) -> tuple[float, np.ndarray | None]:
        key = tuple(float(a) for a in args)
        if self._memo is not None and self._memo[0] == key and \
                (self._memo[2] is not None or not gradient):
            return self._memo[1], self._memo[2]
        self.n_evaluations += 1
        x = np.asarray(key)
        value, grad = 0.0, np.zeros(len(x)) if gradient else None
        for st in self._channels:
            v, g = self._channel(st, x, gradient)
            value += v
            if grad is not None and g is not None:
                grad += g
        for i, centre, sigma in self._constraints:
            value += 0.5 * ((x[i] - centre) / sigma) ** 2
            if grad is not None:
                grad[i] += (x[i] - centre) / sigma ** 2
        self._memo = (key, value, grad)
        return value, grad

    def _yield_factors(self, st: _ChannelState, x: np.ndarray
                       ) -> tuple[np.ndarray, list[list[tuple[int, float]]]]:
        """ν_k (modifiers applied, the background without Z) and ∂ν_k/∂x_j per factor."""
        nus = st.base.copy()
        slopes: list[list[tuple[int, float]]] = []
        for k, fs in enumerate(st.factors):
            values = [f.value_and_slope(float(x[f.index])) for f in fs]
            prod = float(np.prod([v for v, _ in values])) if values else 1.0
            nus[k] *= prod
            per = []
            for j, f in enumerate(fs):
                others = float(np.prod([v for i, (v, _) in enumerate(values) if i != j]))
                per.append((f.index, st.base[k] * others * values[j][1]))
            slopes.append(per)
        return nus, slopes

    def yields(self, x: np.ndarray) -> dict[str, dict[str, float]]:
        """Channel → component → expected events at parameter vector ``x``."""
        out = {}
        for st in self._channels:
            nus, _ = self._yield_factors(st, x)
            theta = tuple(st.nominals[j] + st.sigmas[j] * float(x[i])
                          for j, i in enumerate(st.alpha_index))
            log_z = st.reference.log_z(theta, gradient=False)[0]
            nus[st.background] *= math.exp(log_z - st.log_z0)
            out[st.name] = dict(zip(st.names, (float(v) for v in nus), strict=True))
        return out

    def _channel(self, st: _ChannelState, x: np.ndarray, gradient: bool
                 ) -> tuple[float, np.ndarray | None]:
        theta = tuple(st.nominals[j] + st.sigmas[j] * float(x[i])
                      for j, i in enumerate(st.alpha_index))
        lw, g = st.source.evaluate(theta, gradient)
        log_z, dlog_z = st.reference.log_z(theta, gradient)
        nus, slopes = self._yield_factors(st, x)
        zr = math.exp(log_z - st.log_z0)
        log_r = st.work  # the components' log r_k, the background's row replaced
        log_r[st.background] = np.asarray(lw, dtype=np.float64) - st.log_z0
        top = log_r.max(axis=0)
        top = np.where(np.isfinite(top), top, 0.0)
        u = np.exp(log_r - top)  # [k, n]
        den = nus @ u
        if np.all(nus >= 0) and float(den.min()) >= 1e-300:
            # the density scale Σ|ν_k|u_k is D itself and no event is below the floor:
            # _safe_log reduces to log D and 1/D
            log_den, inv = np.log(den), 1.0 / den
        else:
            scale = np.einsum("k,kn->n", np.abs(nus), u)
            log_den, inv = _safe_log(den, _DENSITY_FLOOR * np.maximum(scale, 1e-300))
        yields = nus.copy()
        yields[st.background] *= zr
        value = float(yields.sum() - np.einsum("i,i->", st.wd, top + log_den))
        if not gradient:
            return value, None
        grad = np.zeros(len(x))
        a = np.einsum("kn,n->k", u, st.wd * inv)  # A_k = Σᵢ wᵢ u_kᵢ / Dᵢ
        for k, per in enumerate(slopes):
            expected = zr if k == st.background else 1.0
            for index, dnu in per:
                grad[index] += dnu * (expected - a[k])
        if st.alpha_index:
            assert g is not None and dlog_z is not None
            nb = nus[st.background]
            wb = st.wd * u[st.background] * inv
            event = np.einsum("i,ij->j", wb, np.asarray(g, dtype=np.float64))
            for j, i in enumerate(st.alpha_index):
                grad[i] += st.sigmas[j] * nb * (zr * float(dlog_z[j]) - float(event[j]))
        return value, grad
