"""iminuit likelihoods in which a trained reweighter is a profiled nuisance parameter.

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
likelihood ratio, so :class:`UnbinnedNLL` returns

    NLL(μ, θ, k) = μν_s + kν_b − Σᵢ wᵢᵈ log(μν_s r_s(xᵢ) + kν_b w(xᵢ, θ)/Z(θ))
                   + Σⱼ (θⱼ − θⱼ₀)² / (2σⱼ²) + (k − 1)² / (2σ_k²),

which is −log L of Eq. 3.7 up to the constant Σᵢ wᵢᵈ log p_b0(xᵢ) + log N!. It is an
:class:`iminuit.cost.Cost` with ``errordef = 0.5`` (a negative log-likelihood) and an
analytic gradient that uses the reweighter's θ-gradient ∂log w/∂θ.

Normalisation Z(θ)
------------------
A perfectly learned ratio has E_b0[w(x, θ)] = 1 at every θ; a trained one misses by a
θ-dependent factor, which would act as a spurious change of the background yield and
bias μ. ``Z(θ) = Σ_r w0_r w(x_r, θ) / Σ_r w0_r`` is therefore computed *exactly at every
θ* the minimiser visits, as the weighted mean of w over a reference (nominal background)
sample (:class:`ReferenceNormalisation`); ∂log Z/∂θ is the w-weighted mean of ∂log w/∂θ
over the same sample. This keeps p_b(x|θ) a normalised density for the learned ratio
(the statistical precision of Z is that of an M-event average: Var(w)/M). Without a
reference, Z ≡ 1 (for exactly normalised ratios, e.g. analytic ones or calibrated ones
whose calibration you trust). With ``shape_only=False`` the background yield follows
the reweighting instead, B(θ) = kν_b·Z(θ), and the per-event term is kν_b·w(xᵢ, θ) — use
it when the reference sample is a selection whose acceptance changes with θ.

Caching the network
-------------------
Every cost evaluation needs log w(xᵢ, θ) for all data events (and for the reference).
Three modes (``cache=``):

``"none"``
    run the network at every call (the baseline a benchmark compares against);
``"lru"`` (default)
    an LRU cache keyed by the θ tuple (``lru_size`` entries of log w and ∂log w/∂θ for the
    data, 4096 scalars for Z). μ and k do not enter the network, so every step of
    MIGRAD, HESSE, MINOS and scans that moves only μ or k reuses the network output, as
    do the repeated points of a profile scan with θ fixed;
``"grid"``
    precompute log w(xᵢ, θ_g) on a uniform grid of one nuisance (``grid_points`` nodes
    over its limits) and interpolate per event with a cubic Catmull-Rom (C¹) spline in θ
    (:class:`LogRatioGrid`). One evaluation is then a weighted sum of four table columns;
    for toys the grid of a large event pool is built once and each toy takes its rows
    (:meth:`LogRatioGrid.take`). Error per event (derived in :class:`LogRatioGrid`):
    ``|Δ log w| ≤ h³·max|∂³_θ log w|/8 + h⁴·max|∂⁴_θ log w|/384`` for node spacing h;
    log w that is at most quadratic in θ (e.g. a Gaussian mean shift) is reproduced
    exactly. Measured (``bench/bench_unbinned.py``) for a 3-epoch mlp/bce reweighter of
    N(μ, 1)/N(0, 1) with 21 nodes on [−2, 2] (h = 0.2), over 10⁵ events: max |Δ log w| =
    2.4·10⁻⁴, RMS 5.8·10⁻⁵; fitted μ̂ and θ̂ move by ≤ 0.015 of their HESSE errors.

The θ-gradient is computed only when MIGRAD asks for it (``eager_gradient=False``):
MINUIT calls the value far more often than the gradient, and a value-only network pass
is 2–3× cheaper. HESSE and MIGRAD's seed use :meth:`UnbinnedNLL.hessian`, central
differences of the analytic gradient (:func:`_fd_hessian`): MINUIT's own second
differences of function values resolve the float32 rounding of a network summed over
10⁶ events, not the curvature, and fail.

Binned data
-----------
:class:`ReweightedBinnedNLL` is the Poisson counterpart with templates
h_b(θ) = Σ_{i∈b} w0ᵢ·w(xᵢ, θ) (guide-searches.md Eq. 3.6), recomputed from the network per
θ (with the same LRU) or interpolated per bin on a θ grid.

Results, toys, coverage
-----------------------
:func:`fit_unbinned` runs MIGRAD, HESSE and MINOS on μ and returns a typed
:class:`UnbinnedFitResult`, including the 2ΔNLL profile of μ with θ profiled and with θ
fixed at its constraint centre (the "with and without the nuisance" comparison of
guide-searches.md Fig. 5). :func:`generate_toy` draws pseudo-data from finite event pools
(signal and nominal background simulation), and :func:`coverage` counts how often the
68% interval contains the true μ.
"""

from __future__ import annotations

import math
import time
import warnings
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
from iminuit.cost import Cost

from ..events import EventSet
from ..reweighter import Reweighter
from .errors import InferenceError

__all__ = [
    "CoverageResult",
    "LogRatioGrid",
    "NormFactor",
    "Nuisance",
    "ProfileScan",
    "ReferenceNormalisation",
    "ReweightedBinnedNLL",
    "Toy",
    "UnbinnedFitResult",
    "UnbinnedNLL",
    "coverage",
    "fit_unbinned",
    "generate_toy",
    "signal_log_ratio_from_classifier",
]

CacheMode = Literal["none", "lru", "grid"]
_CACHE_MODES = ("none", "lru", "grid")
_LIKELIHOOD = 0.5  # errordef of a negative log-likelihood (Minuit.LIKELIHOOD)
_Z_CACHE_SIZE = 4096
# Densities below this fraction of their natural scale are continued linearly in log
# (see _safe_log): log(1e-10) = −23 per event, far beyond any interval of interest.
_DENSITY_FLOOR = 1e-10


# -- model description ---------------------------------------------------------------------
@dataclass(frozen=True)
class Nuisance:
    """A reweighter parameter θ profiled in the fit.

    Parameters
    ----------
    name
        The reweighter's parameter name.
    nominal
        Constraint centre (the auxiliary measurement θ₀) and start value; ``None``: the
        reweighter's nominal value.
    sigma
        Width of the normal constraint (θ − θ₀)²/(2σ²); ``None``: free (no constraint).
    limits
        Range the minimiser may use; ``None``: the reweighter's training range (the
        network is not trusted outside it).
    """

    name: str
    nominal: float | None = None
    sigma: float | None = None
    limits: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if self.sigma is not None and not (math.isfinite(self.sigma) and self.sigma > 0):
            raise InferenceError(f"nuisance '{self.name}': constraint sigma must be a positive "
                                 f"number, got {self.sigma}")
        if self.nominal is not None and not math.isfinite(self.nominal):
            raise InferenceError(f"nuisance '{self.name}': nominal must be finite, got "
                                 f"{self.nominal}")
        if self.limits is not None:
            lo, hi = self.limits
            if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
                raise InferenceError(f"nuisance '{self.name}': limits must be finite with low < "
                                     f"high, got {self.limits}")


@dataclass(frozen=True)
class NormFactor:
    """A multiplicative factor k on the background yield, constrained N(nominal, σ) or free.

    Parameters
    ----------
    name
        Parameter name in the fit.
    sigma
        Constraint width (relative, since k is 1 at nominal); ``None``: free.
    nominal
        Constraint centre and start value.
    """

    name: str = "background_norm"
    sigma: float | None = None
    nominal: float = 1.0

    def __post_init__(self) -> None:
        if self.sigma is not None and not (math.isfinite(self.sigma) and self.sigma > 0):
            raise InferenceError(f"normalisation '{self.name}': constraint sigma must be a "
                                 f"positive number, got {self.sigma}")
        if not (math.isfinite(self.nominal) and self.nominal > 0):
            raise InferenceError(f"normalisation '{self.name}': nominal must be positive, got "
                                 f"{self.nominal}")


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


def _weighted_sum(e: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Σᵢ eᵢ gᵢⱼ for a tall ``[n, p]`` g (``[p]``), without BLAS.

    ``e @ g`` and 1-D ``np.dot`` go through multithreaded BLAS, which on a loaded machine
    costs milliseconds per call in thread synchronisation for these shapes; einsum's own
    loop does not.
    """
    return np.einsum("i,ij->j", e, g)


def _centre(nu: Nuisance) -> float:
    """The constraint centre of a resolved nuisance (always set after resolution)."""
    assert nu.nominal is not None
    return float(nu.nominal)


def _as_events(features: Any, reweighter: Reweighter, what: str) -> EventSet:
    """An EventSet, or an ``[n, d]`` array in the reweighter's feature order."""
    if isinstance(features, EventSet):
        return features
    x = np.asarray(features, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    names = tuple(reweighter.signature.feature_names)
    if x.ndim != 2 or x.shape[1] != len(names):
        raise InferenceError(f"{what}: features have shape {x.shape}; expected [n, {len(names)}] "
                             f"({', '.join(names)})")
    bad = int(np.count_nonzero(~np.isfinite(x)))
    if bad:
        raise InferenceError(f"{what}: features contain {bad} NaN/inf value(s)")
    return EventSet(features=x, feature_names=names, provenance={"origin": what})


def _resolve_nuisances(reweighter: Reweighter, nuisances: Sequence[Nuisance | str],
                       fixed: Mapping[str, float] | None
                       ) -> tuple[list[Nuisance], dict[str, float]]:
    """Fill defaults from the reweighter and check names; the other θ are held fixed."""
    out: list[Nuisance] = []
    names = reweighter.theta_names
    for n in nuisances:
        nu = Nuisance(n) if isinstance(n, str) else n
        if nu.name not in names:
            raise InferenceError(f"nuisance '{nu.name}' is not a parameter of the reweighter "
                                 f"(it has {names})")
        p = reweighter.parameters[nu.name]
        limits = nu.limits if nu.limits is not None else (p.low, p.high)
        if limits[0] < p.low or limits[1] > p.high:
            raise InferenceError(f"nuisance '{nu.name}': limits {limits} leave the reweighter's "
                                 f"range [{p.low}, {p.high}]")
        nominal = nu.nominal if nu.nominal is not None else p.nominal
        out.append(Nuisance(nu.name, nominal=nominal, sigma=nu.sigma, limits=limits))
    seen = [n.name for n in out]
    if len(set(seen)) != len(seen):
        raise InferenceError(f"nuisance names are repeated: {seen}")
    if not out:
        raise InferenceError("at least one nuisance parameter of the reweighter is needed")
    fixed_out = {p.name: p.nominal for p in reweighter.parameters if p.name not in seen}
    for k, v in (fixed or {}).items():
        if k not in names:
            raise InferenceError(f"fixed theta '{k}' is not a parameter of the reweighter "
                                 f"(it has {names})")
        if k in seen:
            raise InferenceError(f"theta '{k}' is both fixed and a nuisance")
        fixed_out[k] = float(v)
    return out, fixed_out


# -- Catmull-Rom interpolation on a uniform grid --------------------------------------------
def _check_nodes(nodes: Any, what: str) -> np.ndarray:
    t = np.asarray(nodes, dtype=np.float64)
    if t.ndim != 1 or len(t) < 4:
        raise InferenceError(f"{what}: a θ grid needs at least 4 nodes, got {t.size}")
    h = np.diff(t)
    if not np.all(np.isfinite(t)) or np.any(h <= 0) or \
            np.max(np.abs(h - h.mean())) > 1e-9 * max(1.0, float(np.abs(t).max())):
        raise InferenceError(f"{what}: grid nodes must be finite, increasing and uniformly "
                             "spaced")
    return t


def _with_ghosts(table: np.ndarray) -> np.ndarray:
    """Add ghost nodes before the first and after the last (axis 0) by quadratic
    extrapolation, so the end intervals use the same 4-point formula and a function
    quadratic in θ stays exact there too."""
    first = 3 * table[0] - 3 * table[1] + table[2]
    last = 3 * table[-1] - 3 * table[-2] + table[-3]
    return np.concatenate([first[None], table, last[None]], axis=0)


def _catmull_rom(nodes: np.ndarray, theta: float) -> tuple[int, np.ndarray, np.ndarray]:
    """Interval j and the weights of (ghost-padded) rows j … j+3 for the value and dθ.

    With u = (θ − t_j)/h, the cubic Hermite segment with central-difference slopes
    m_j = (P_{j+1} − P_{j−1})/2 is a fixed combination of P_{j−1} … P_{j+2}.
    """
    h = nodes[1] - nodes[0]
    if not nodes[0] - 1e-12 * h <= theta <= nodes[-1] + 1e-12 * h:
        raise InferenceError(f"θ = {theta} is outside the interpolation grid "
                             f"[{nodes[0]}, {nodes[-1]}]")
    j = min(max(int((theta - nodes[0]) // h), 0), len(nodes) - 2)
    u = (theta - nodes[j]) / h
    u2, u3 = u * u, u * u * u
    c = np.array([-0.5 * (u3 - 2 * u2 + u), 1.5 * u3 - 2.5 * u2 + 1,
                  -1.5 * u3 + 2 * u2 + 0.5 * u, 0.5 * (u3 - u2)])
    dc = np.array([-0.5 * (3 * u2 - 4 * u + 1), 4.5 * u2 - 5 * u,
                   -4.5 * u2 + 4 * u + 0.5, 0.5 * (3 * u2 - 2 * u)]) / h
    return j, c, dc


class LogRatioGrid:
    """log w(xᵢ, θ) of fixed events tabulated on a uniform grid of one θ, interpolated.

    Between nodes, each event's log w is a cubic Catmull-Rom spline in θ (C¹: value and
    slope are continuous, so MIGRAD sees a smooth function and its exact gradient). The
    end intervals use ghost nodes extrapolated quadratically.

    Accuracy: with node spacing h, the Hermite segment with exact slopes errs by at most
    h⁴·max|f⁗|/384; the central-difference slopes err by h²·|f'''|/6 (in θ units), and
    their weights in the segment sum to u(1−u) ≤ 1/4 (in units of h), giving h³·|f'''|/24
    inside the grid and at most h³·|f'''|/8 in the end intervals (the extrapolated ghost
    is off by h³·|f'''|). Any log w at most quadratic in θ is reproduced exactly.
    Memory: 8·n·(G+2) bytes (n events, G nodes).

    Parameters
    ----------
    table
        ``[G, n]`` log w at the nodes (node-major, so one evaluation reads four rows).
    nodes
        The G uniformly spaced θ values.
    name
        The θ parameter the grid runs over.
    """

    def __init__(self, table: np.ndarray, nodes: Any, name: str) -> None:
        self.nodes = _check_nodes(nodes, f"grid of '{name}'")
        t = np.asarray(table, dtype=np.float64)
        if t.ndim != 2 or t.shape[0] != len(self.nodes):
            raise InferenceError(f"grid of '{name}': table has shape {t.shape}, expected "
                                 f"({len(self.nodes)}, n)")
        if not np.all(np.isfinite(t)):
            raise InferenceError(f"grid of '{name}': log w is not finite at some node")
        self.name = name
        self._padded = np.ascontiguousarray(_with_ghosts(t))

    @classmethod
    def build(cls, reweighter: Reweighter, events: Any, *, name: str, points: int = 21,
              bounds: tuple[float, float] | None = None,
              fixed: Mapping[str, float] | None = None) -> LogRatioGrid:
        """Run the network once per node over ``events``.

        ``bounds`` default to the reweighter's range of ``name``; ``fixed`` gives the
        other θ of the reweighter (default: their nominal values).
        """
        if name not in reweighter.theta_names:
            raise InferenceError(f"nuisance '{name}' is not a parameter of the reweighter "
                                 f"(it has {reweighter.theta_names})")
        p = reweighter.parameters[name]
        lo, hi = bounds if bounds is not None else (p.low, p.high)
        nodes = np.linspace(lo, hi, int(points))
        ev = _as_events(events, reweighter, "grid events")
        others = {q.name: q.nominal for q in reweighter.parameters if q.name != name}
        others.update(fixed or {})
        table = np.stack([reweighter.log_ratio(features=ev, theta={**others, name: float(t)})
                          for t in nodes])
        return cls(table, nodes, name)

    def __len__(self) -> int:
        return int(self._padded.shape[1])

    @property
    def table(self) -> np.ndarray:
        """``[G, n]`` log w at the nodes."""
        return self._padded[1:-1]

    def evaluate(self, theta: float) -> tuple[np.ndarray, np.ndarray]:
        """Interpolated log w ``[n]`` and ∂log w/∂θ ``[n]`` at ``theta``."""
        j, c, dc = _catmull_rom(self.nodes, float(theta))
        rows = self._padded[j:j + 4]
        # einsum, not c @ rows: BLAS gemv threads badly on a loaded machine (see
        # _weighted_sum)
        return np.einsum("k,kn->n", c, rows), np.einsum("k,kn->n", dc, rows)

    def take(self, index: Any) -> LogRatioGrid:
        """The grid of a subset of the events (toys drawn from a pool)."""
        return _grid_from_padded(self._padded[:, np.asarray(index)], self.nodes, self.name)

    @staticmethod
    def concatenate(grids: Sequence[LogRatioGrid]) -> LogRatioGrid:
        """Join the events of grids with identical nodes (e.g. signal and background toys)."""
        if not grids:
            raise InferenceError("nothing to concatenate")
        first = grids[0]
        for g in grids[1:]:
            if g.name != first.name or not np.array_equal(g.nodes, first.nodes):
                raise InferenceError("grids to concatenate must share θ name and nodes")
        return _grid_from_padded(np.concatenate([g._padded for g in grids], axis=1),
                                 first.nodes, first.name)


def _grid_from_padded(padded: np.ndarray, nodes: np.ndarray, name: str) -> LogRatioGrid:
    g = LogRatioGrid.__new__(LogRatioGrid)
    g.nodes, g.name, g._padded = nodes, name, np.ascontiguousarray(padded)
    return g


# -- sources of log w for a fixed event set ----------------------------------------------------
class _Source:
    """log w ``[n]`` and ∂log w/∂θ ``[n, p]`` (nuisance columns) of fixed events."""

    _calls = 0
    hits = 0
    misses = 0

    @property
    def network_calls(self) -> int:
        return self._calls

    def evaluate(self, theta: tuple[float, ...], gradient: bool
                 ) -> tuple[np.ndarray, np.ndarray | None]:
        raise NotImplementedError


class _NetworkSource(_Source):
    def __init__(self, reweighter: Reweighter, events: EventSet, names: Sequence[str],
                 fixed: Mapping[str, float]) -> None:
        self.reweighter, self.events = reweighter, events
        self.names, self.fixed = list(names), dict(fixed)
        self.columns = [reweighter.theta_names.index(n) for n in self.names]

    def evaluate(self, theta: tuple[float, ...], gradient: bool
                 ) -> tuple[np.ndarray, np.ndarray | None]:
        self._calls += 1
        th = {**self.fixed, **dict(zip(self.names, theta, strict=True))}
        if gradient:
            lw, g = self.reweighter.log_ratio_and_gradient(features=self.events, theta=th)
            return lw, g[:, self.columns]
        return self.reweighter.log_ratio(features=self.events, theta=th), None


class _LRUSource(_Source):
    """Keeps the last ``size`` θ points; a value-only entry is upgraded on a gradient request."""

    def __init__(self, inner: _Source, size: int) -> None:
        self.inner, self.size = inner, max(int(size), 1)
        self._store: OrderedDict[tuple[float, ...], tuple[np.ndarray, np.ndarray | None]] = \
            OrderedDict()

    @property
    def network_calls(self) -> int:
        return self.inner.network_calls

    def evaluate(self, theta: tuple[float, ...], gradient: bool
                 ) -> tuple[np.ndarray, np.ndarray | None]:
        entry = self._store.get(theta)
        if entry is not None and (entry[1] is not None or not gradient):
            self.hits += 1
            self._store.move_to_end(theta)
            return entry
        self.misses += 1
        entry = self.inner.evaluate(theta, gradient)
        self._store[theta] = entry
        self._store.move_to_end(theta)
        while len(self._store) > self.size:
            self._store.popitem(last=False)
        return entry


class _GridSource(_Source):
    def __init__(self, grid: LogRatioGrid) -> None:
        self.grid = grid

    def evaluate(self, theta: tuple[float, ...], gradient: bool
                 ) -> tuple[np.ndarray, np.ndarray | None]:
        lw, d = self.grid.evaluate(theta[0])
        return lw, d[:, None]


def _make_source(reweighter: Reweighter, events: EventSet, nuisances: Sequence[Nuisance],
                 fixed: Mapping[str, float], cache: str, lru_size: int, grid_points: int,
                 grid: LogRatioGrid | None, what: str) -> _Source:
    names = [n.name for n in nuisances]
    if grid is not None or cache == "grid":
        if len(names) != 1:
            raise InferenceError(f"{what}: grid interpolation supports one nuisance of the "
                                 f"reweighter, got {names}; use cache='lru'")
        if grid is None:
            lim = nuisances[0].limits
            assert lim is not None
            grid = LogRatioGrid.build(reweighter, events, name=names[0], points=grid_points,
                                      bounds=lim, fixed=fixed)
        if grid.name != names[0]:
            raise InferenceError(f"{what}: grid runs over '{grid.name}', the nuisance is "
                                 f"'{names[0]}'")
        if len(grid) != len(events):
            raise InferenceError(f"{what}: grid has {len(grid)} events, expected {len(events)}")
        lim = nuisances[0].limits
        assert lim is not None
        if lim[0] < grid.nodes[0] - 1e-12 or lim[1] > grid.nodes[-1] + 1e-12:
            raise InferenceError(f"{what}: nuisance limits {lim} leave the grid "
                                 f"[{grid.nodes[0]}, {grid.nodes[-1]}]")
        return _GridSource(grid)
    if cache not in _CACHE_MODES:
        raise InferenceError(f"cache must be one of {list(_CACHE_MODES)}, got {cache!r}")
    source: _Source = _NetworkSource(reweighter, events, names, fixed)
    if cache == "lru":
        source = _LRUSource(source, lru_size)
    return source


class ReferenceNormalisation:
    """Z(θ) = Σ w0_r w(x_r, θ) / Σ w0_r over a reference (nominal background) sample.

    The exact weighted average at every θ asked for (not a fit of it), with
    ∂log Z/∂θ = Σ w0 w ∂log w/∂θ / Σ w0 w. Share one instance between many costs (toys):
    its network outputs and Z values are cached per θ like the data's.

    Parameters
    ----------
    reweighter
        The reweighter the nuisances belong to.
    reference
        Nominal-background events (EventSet with optional weights w0, or an array).
    nuisances, fixed
        As for :class:`UnbinnedNLL`.
    cache, lru_size, grid_points, grid
        As for :class:`UnbinnedNLL` (``grid``: a prebuilt :class:`LogRatioGrid` of the
        reference events).
    """

    def __init__(self, reweighter: Reweighter, reference: Any, *,
                 nuisances: Sequence[Nuisance | str], fixed: Mapping[str, float] | None = None,
                 cache: CacheMode = "lru", lru_size: int = 16, grid_points: int = 21,
                 grid: LogRatioGrid | None = None) -> None:
        self.nuisances, self.fixed = _resolve_nuisances(reweighter, nuisances, fixed)
        self.names = [n.name for n in self.nuisances]
        self.reweighter = reweighter
        events = _as_events(reference, reweighter, "reference")
        if len(events) == 0:
            raise InferenceError("reference: no events")
        w0 = events.event_weights
        if w0.sum() <= 0:
            raise InferenceError("reference: the event weights must have a positive sum")
        self.n_events = len(events)
        self._w0 = w0
        self._log_sum_w0 = float(np.log(w0.sum()))
        self.cache = cache
        self._source = _make_source(reweighter, events, self.nuisances, self.fixed, cache,
                                    lru_size, grid_points, grid, "reference")
        self._store: OrderedDict[tuple[float, ...], tuple[float, np.ndarray | None]] = \
            OrderedDict()

    @property
    def network_calls(self) -> int:
        return self._source.network_calls

    def log_z(self, theta: Sequence[float], gradient: bool = True
              ) -> tuple[float, np.ndarray | None]:
        """log Z(θ) and (optionally) ∂log Z/∂θ ``[p]``."""
        key = tuple(float(v) for v in theta)
        if self.cache != "none":
            hit = self._store.get(key)
            if hit is not None and (hit[1] is not None or not gradient):
                return hit
        lw, g = self._source.evaluate(key, gradient)
        m = float(np.max(lw))
        e = self._w0 * np.exp(lw - m)
        s = float(e.sum())
        if not s > 0:
            raise InferenceError(f"reference: Σ w0·w is not positive at θ = {key}")
        logz = m + math.log(s) - self._log_sum_w0
        dz = None if g is None else _weighted_sum(e, g) / s
        if self.cache != "none":
            self._store[key] = (logz, dz)
            while len(self._store) > _Z_CACHE_SIZE:
                self._store.popitem(last=False)
        return logz, dz


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
        return self._evaluate(args, self.eager_gradient and self.cache != "none")[0]

    def _grad(self, args: Sequence[float]) -> np.ndarray:
        g = self._evaluate(args, True)[1]
        assert g is not None
        return g

    @property
    def parameter_names(self) -> list[str]:
        return list(self._parameters)


class UnbinnedNLL(_ReweighterCost):
    """Extended unbinned −log L with learned background shape nuisances (module docstring).

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
        Network caching (module docstring). The LRU holds up to ``lru_size`` θ points of
        8·N·(1 + p) bytes each; ``grid_points`` nodes span each nuisance's limits.
    data_grid
        A prebuilt :class:`LogRatioGrid` of the data events (implies ``cache='grid'``).
    eager_gradient
        With a cache, compute ∂log w/∂θ together with log w at every new θ (one
        forward+backward pass) instead of a forward pass now and another with the
        gradient when MIGRAD asks for it at the same point.
    verbose
        iminuit's verbosity (1: print every call).
    """

    def __init__(self, data: Any, *, reweighter: Reweighter,
                 nuisances: Sequence[Nuisance | str], signal_yield: float,
                 background_yield: float, signal_log_ratio: SignalLogRatio,
                 reference: Any = None, norm: NormFactor | None = None,
                 fixed: Mapping[str, float] | None = None, poi: str = "signal_strength",
                 poi_start: float = 1.0, poi_limits: tuple[float | None, float | None] | None
                 = None, shape_only: bool = True, cache: CacheMode = "lru",
                 lru_size: int = 16, grid_points: int = 21,
                 data_grid: LogRatioGrid | None = None, eager_gradient: bool = False,
                 verbose: int = 0) -> None:
        if not isinstance(reweighter, Reweighter):
            raise InferenceError(f"reweighter must be a ratiofit Reweighter, got "
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
        As for :class:`UnbinnedNLL`.
    background_yield
        Total expected background at nominal; ``None``: Σ w0.
    """

    def __init__(self, counts: Any, *, edges: Any, background: EventSet,
                 observable: str | np.ndarray, signal_template: Any, reweighter: Reweighter,
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


# -- fitting -----------------------------------------------------------------------------------
FitCost = UnbinnedNLL | ReweightedBinnedNLL


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
    """MIGRAD + HESSE (+ MINOS on the poi, + scans) of an :class:`UnbinnedNLL` (or
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


# -- toys -----------------------------------------------------------------------------------
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
            raise InferenceError(f"{what}: accept/reject needs non-negative event weights")
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


def coverage(*, n_toys: int, reweighter: Reweighter, nuisances: Sequence[Nuisance],
             signal_pool: EventSet, background_pool: EventSet, signal_yield: float,
             background_yield: float,
             signal_log_ratio: Callable[[EventSet], Any] | tuple[np.ndarray, np.ndarray],
             mu_true: float, theta_true: Mapping[str, float] | None = None,
             reference: Any = None, norm: NormFactor | None = None, norm_true: float = 1.0,
             fixed: Mapping[str, float] | None = None, method: Literal["minos", "profile"]
             = "minos", randomise_constraints: bool = True, cache: CacheMode = "grid",
             grid_points: int = 21, poi: str = "signal_strength", seed: int = 0,
             tol: float = 0.1) -> CoverageResult:
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
        As for :class:`UnbinnedNLL` / :func:`fit_unbinned`.
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
        Seeds the toy generator.
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
    rng = np.random.default_rng(seed)
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
    intervals: list[tuple[float, float]] = []
    estimates: list[float] = []
    covered = failed = 0
    for _ in range(n_toys):
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
        cost = UnbinnedNLL(toy.data, reweighter=reweighter, nuisances=toy_nuis,
                           signal_yield=signal_yield, background_yield=background_yield,
                           signal_log_ratio=log_rs, reference=reference, norm=toy_norm,
                           fixed=fixed_all, poi=poi, poi_start=mu_true,
                           cache=cache, data_grid=data_grid)
        # Start the nuisances at the toy's constraint centres (what a real fit would do).
        m = _minuit(cost, None, tol, 1)
        _migrad(m)
        iv = None
        if m.valid:
            m.hesse()
            iv = _interval(cost, m, method, tol)
        if iv is None:
            failed += 1
            continue
        intervals.append(iv)
        estimates.append(float(m.values[poi]))
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
