"""θ-grid interpolation of per-event log-ratios (the ``cache="grid"`` mode of the costs).

:class:`LogRatioGrid` tabulates log w(xᵢ, θ) of fixed events on a uniform grid of one
nuisance θ (one network pass per node) and interpolates each event's log w with a cubic
Catmull-Rom (C¹) spline in θ: one evaluation is a weighted sum of four table rows, with
the exact θ-derivative of the interpolant. For node spacing h the error per event is at
most ``h³·max|∂³_θ log w|/8 + h⁴·max|∂⁴_θ log w|/384`` (derived in :class:`LogRatioGrid`),
and log w that is at most quadratic in θ is reproduced exactly. The same spline
(``_catmull_rom`` on ghost-padded tables, ``_with_ghosts``) interpolates the per-bin
template sums of :class:`~ratiofit.inference.ReweightedBinnedNLL`. How the costs use the
grid, and its measured accuracy for a trained network: :mod:`ratiofit.inference.caches`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..log_ratio import LogRatioModel
from .errors import InferenceError
from .nuisances import _as_events

__all__ = ["LogRatioGrid"]


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
    def build(cls, reweighter: LogRatioModel, events: Any, *, name: str, points: int = 21,
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
        # caches._weighted_sum)
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
