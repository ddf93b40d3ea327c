"""Sources of log w(xᵢ, θ) and ∂log w/∂θ for a fixed event set: how the network is cached.

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
    (:class:`~ratiofit.inference.LogRatioGrid`, :mod:`ratiofit.inference.grid`). One
    evaluation is then a weighted sum of four table columns; for toys the grid of a large
    event pool is built once and each toy takes its rows (:meth:`LogRatioGrid.take`).
    Error per event (derived in :class:`LogRatioGrid`):
    ``|Δ log w| ≤ h³·max|∂³_θ log w|/8 + h⁴·max|∂⁴_θ log w|/384`` for node spacing h;
    log w that is at most quadratic in θ (e.g. a Gaussian mean shift) is reproduced
    exactly. Measured (``bench/bench_unbinned.py``) for a 3-epoch mlp/bce reweighter of
    N(μ, 1)/N(0, 1) with 21 nodes on [−2, 2] (h = 0.2), over 10⁵ events: max |Δ log w| =
    2.4·10⁻⁴, RMS 5.8·10⁻⁵; fitted μ̂ and θ̂ move by ≤ 0.015 of their HESSE errors.

``_make_source`` builds the source a cost or a reference normalisation reads (the Z
values' own per-θ cache is in :mod:`ratiofit.inference.normalisation`, the costs' memo
of their last evaluation in :mod:`ratiofit.inference.costs`).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np

from ..events import EventSet
from ..log_ratio import LogRatioModel
from .errors import InferenceError
from .grid import LogRatioGrid
from .nuisances import Nuisance

# Implementation of the costs' ``cache=`` option; nothing here is public API.
__all__: list[str] = []

CacheMode = Literal["none", "lru", "grid"]
_CACHE_MODES = ("none", "lru", "grid")


def _weighted_sum(e: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Σᵢ eᵢ gᵢⱼ for a tall ``[n, p]`` g (``[p]``), without BLAS.

    ``e @ g`` and 1-D ``np.dot`` go through multithreaded BLAS, which on a loaded machine
    costs milliseconds per call in thread synchronisation for these shapes; einsum's own
    loop does not.
    """
    return np.einsum("i,ij->j", e, g)


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
    def __init__(self, reweighter: LogRatioModel, events: EventSet, names: Sequence[str],
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


def _make_source(reweighter: LogRatioModel, events: EventSet, nuisances: Sequence[Nuisance],
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
