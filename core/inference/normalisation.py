"""The background normalisation Z(θ) = E_ref[w(x, θ)] over a reference sample.

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

How the costs use it: :mod:`ratiofit.inference.costs`; the network caching of the
reference events: :mod:`ratiofit.inference.caches`.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import DataError
from ..log_normalisation import log_mean_ratio
from ..log_ratio import LogRatioModel
from .caches import CacheMode, _make_source
from .errors import InferenceError
from .grid import LogRatioGrid
from .nuisances import Nuisance, _as_events, _resolve_nuisances

__all__ = ["ReferenceNormalisation"]

_Z_CACHE_SIZE = 4096


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
        As for :class:`ExtendedUnbinnedNLL`.
    cache, lru_size, grid_points, grid
        As for :class:`ExtendedUnbinnedNLL` (``grid``: a prebuilt :class:`LogRatioGrid` of the
        reference events).
    """

    def __init__(self, reweighter: LogRatioModel, reference: Any, *,
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
        try:
            logz, dz = log_mean_ratio(lw, weights=self._w0, gradient=g)
        except DataError:
            raise InferenceError(f"reference: Σ w0·w is not positive at θ = {key}") from None
        if self.cache != "none":
            self._store[key] = (logz, dz)
            while len(self._store) > _Z_CACHE_SIZE:
                self._store.popitem(last=False)
        return logz, dz
