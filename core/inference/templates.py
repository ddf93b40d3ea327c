"""Binned templates from a reweighter, and their morphing in θ.

A binned fit (guide-searches.md Eq. 3.6) needs the expected background count B_b in each
bin b. With a reweighter trained by ratiofit, the expected count at any θ comes from the
nominal simulation alone:

    h_b(θ) = Σ_{i ∈ b} w₀ᵢ · w(xᵢ, θ),      w(x, θ) = p(x|θ) / p(x|θ₀),

with w₀ᵢ the event weights of the nominal sample. Its statistical variance is
Σ_{i ∈ b} (w₀ᵢ · w(xᵢ, θ))², kept by ``hist``'s Weight storage.

:class:`TemplateMorphing` tabulates h_b(θ) on a grid of one parameter and fits each bin
with a polynomial (degree chosen by leave-one-out residuals) or a cubic spline, so a
likelihood fit can evaluate h_b(θ) and ∂h_b/∂θ at any θ inside the grid without calling the
network. Several nuisances, each with its own reweighter, get one morphing each; the fit
model combines them (additively or multiplicatively per bin, see
:mod:`ratiofit.inference.pyhf_model`).

Events outside the binning
--------------------------
Nothing is dropped silently. ``flow`` decides what happens to events below the first edge
or at/above the last edge (bins are half-open [a, b), as in ``hist``):

``"error"`` (default)
    raise :class:`~ratiofit.inference.InferenceError` naming the observable and the counts;
``"fold"``
    add the underflow to the first bin and the overflow to the last one;
``"exclude"``
    leave them out of the template; the counts and weights are reported in
    :attr:`Template.flow`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from ..events import EventSet
from .errors import InferenceError

__all__ = [
    "FlowCounts",
    "FlowPolicy",
    "Template",
    "TemplateMorphing",
    "histogram_template",
    "reweighted_template",
]

FlowPolicy = Literal["error", "fold", "exclude"]
MorphMethod = Literal["polynomial", "spline"]
MorphSpace = Literal["log", "linear"]

_FLOW_POLICIES = ("error", "fold", "exclude")


@dataclass(frozen=True)
class FlowCounts:
    """Events (and their summed weights) below the first edge and at/above the last."""

    underflow: int = 0
    overflow: int = 0
    underflow_weight: float = 0.0
    overflow_weight: float = 0.0

    @property
    def events(self) -> int:
        """Total number of events outside the binning."""
        return self.underflow + self.overflow


@dataclass(frozen=True)
class Template:
    """A binned template: per-bin sums of weights and of squared weights.

    Unpacks as ``values, variances = template``.

    Attributes
    ----------
    values
        Σ wᵢ per bin, ``[n_bins]``.
    variances
        Σ wᵢ² per bin, ``[n_bins]`` (the Monte-Carlo statistical variance of ``values``).
    edges
        The ``n_bins + 1`` bin edges.
    flow
        What fell outside the edges and how it was treated (``policy``).
    policy
        The flow policy that was applied.
    """

    values: np.ndarray
    variances: np.ndarray
    edges: np.ndarray
    flow: FlowCounts = field(default_factory=FlowCounts)
    policy: FlowPolicy = "error"

    def __iter__(self) -> Iterator[np.ndarray]:
        yield self.values
        yield self.variances


def _check_edges(edges: Any) -> np.ndarray:
    e = np.asarray(edges, dtype=np.float64)
    if e.ndim != 1 or e.size < 2:
        raise InferenceError(f"bin edges must be a 1-D list of at least 2 numbers, got shape "
                             f"{e.shape}")
    if not np.all(np.isfinite(e)):
        raise InferenceError("bin edges contain NaN/inf")
    if not np.all(np.diff(e) > 0):
        raise InferenceError("bin edges must be strictly increasing")
    return e


def _observable_values(events: EventSet, observable: str | np.ndarray) -> tuple[np.ndarray, str]:
    """The binned quantity per event and a label for messages."""
    if isinstance(observable, str):
        if observable not in events.feature_names:
            raise InferenceError(f"observable '{observable}' is not a feature of the events "
                                 f"(features: {list(events.feature_names)})")
        return events.feature_columns([observable])[:, 0], f"observable '{observable}'"
    x = np.asarray(observable, dtype=np.float64)
    if x.shape != (len(events),):
        raise InferenceError(f"observable array has shape {x.shape}, expected ({len(events)},) "
                             "(one value per event)")
    if not np.all(np.isfinite(x)):
        raise InferenceError(f"observable array contains {int(np.count_nonzero(~np.isfinite(x)))}"
                             " NaN/inf value(s)")
    return x, "observable array"


def _base_weights(events: EventSet, weights: Any) -> np.ndarray:
    if weights is None:
        return events.event_weights
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (len(events),):
        raise InferenceError(f"weights have shape {w.shape}, expected ({len(events)},)")
    if not np.all(np.isfinite(w)):
        raise InferenceError("weights contain NaN/inf values")
    return w


def _flow_check(x: np.ndarray, edges: np.ndarray, flow: str, label: str) -> None:
    if flow not in _FLOW_POLICIES:
        raise InferenceError(f"flow must be one of {list(_FLOW_POLICIES)}, got {flow!r}")
    if flow != "error":
        return
    under = int(np.count_nonzero(x < edges[0]))
    over = int(np.count_nonzero(x >= edges[-1]))
    if under or over:
        raise InferenceError(
            f"{label}: {under + over} of {len(x)} events fall outside the binning "
            f"[{edges[0]:g}, {edges[-1]:g}) ({under} below, {over} at or above); widen the "
            "edges or choose flow='fold' or flow='exclude'")


def _fill(x: np.ndarray, w: np.ndarray, edges: np.ndarray, flow: FlowPolicy) -> Template:
    """Fill a Weight-storage histogram with flow bins, then apply the flow policy."""
    import hist

    h = hist.Hist(hist.axis.Variable(edges, underflow=True, overflow=True),
                  storage=hist.storage.Weight())
    h.fill(x, weight=w)
    values = np.array(h.values(flow=True), dtype=np.float64)
    variances = np.array(h.variances(flow=True), dtype=np.float64)
    counts = FlowCounts(underflow=int(np.count_nonzero(x < edges[0])),
                        overflow=int(np.count_nonzero(x >= edges[-1])),
                        underflow_weight=float(values[0]), overflow_weight=float(values[-1]))
    inner_v, inner_s = values[1:-1].copy(), variances[1:-1].copy()
    if flow == "fold":
        inner_v[0] += values[0]
        inner_s[0] += variances[0]
        inner_v[-1] += values[-1]
        inner_s[-1] += variances[-1]
    return Template(values=inner_v, variances=inner_s, edges=edges, flow=counts, policy=flow)


def histogram_template(*, events: EventSet, observable: str | np.ndarray, edges: Any,
                       weights: Any = None, flow: FlowPolicy = "error") -> Template:
    """The plain weighted histogram Σ w₀ᵢ per bin (no reweighting), with Σ w₀ᵢ².

    Parameters
    ----------
    events
        The sample.
    observable
        A feature name of ``events`` or an ``[n]`` array of values to bin.
    edges
        Bin edges, strictly increasing.
    weights
        ``[n]`` event weights w₀; default: the events' own weights (ones when none).
    flow
        ``"error"``, ``"fold"`` or ``"exclude"`` (see the module docstring).

    Returns
    -------
    Template
        Unpacks as ``(values, variances)``.
    """
    e = _check_edges(edges)
    x, label = _observable_values(events, observable)
    _flow_check(x, e, flow, label)
    return _fill(x, _base_weights(events, weights), e, flow)


def _check_theta(reweighter: Any, theta: Mapping[str, float]) -> dict[str, float]:
    names = list(reweighter.theta_names)
    unknown = sorted(set(theta) - set(names))
    if unknown:
        raise InferenceError(f"theta name(s) {unknown} are not parameters of the reweighter "
                             f"(it is parameterised in {names})")
    missing = [n for n in names if n not in theta]
    if missing:
        raise InferenceError(f"theta is missing value(s) for {missing}; the reweighter is "
                             f"parameterised in {names}")
    out = {}
    for n in names:
        v = float(theta[n])
        if not np.isfinite(v):
            raise InferenceError(f"theta.{n} = {v} is not finite")
        out[n] = v
    return out


def reweighted_template(*, reweighter: Any, events: EventSet, observable: str | np.ndarray,
                        edges: Any, theta: Mapping[str, float], weights: Any = None,
                        flow: FlowPolicy = "error") -> Template:
    """The reweighted template h_b(θ) = Σ_{i∈b} w₀ᵢ·w(xᵢ, θ) and its variance Σ (w₀ᵢ·w)².

    This is the expected count B_b(θ) of guide-searches.md Eq. 3.6 predicted from the
    nominal simulation and a reweighter.

    Parameters
    ----------
    reweighter
        A :class:`~ratiofit.reweighter.Reweighter` (``weights(features=..., theta=...)``).
    events
        The nominal (θ₀) sample the reweighter maps from.
    observable
        A feature name of ``events`` or an ``[n]`` array of values to bin.
    edges
        Bin edges, strictly increasing.
    theta
        Every θ of the reweighter by name.
    weights
        ``[n]`` event weights w₀; default: the events' own weights.
    flow
        ``"error"`` (default), ``"fold"`` or ``"exclude"`` (see the module docstring).

    Returns
    -------
    Template
        Unpacks as ``(values, variances)``; ``.flow`` reports events outside the binning.

    Raises
    ------
    InferenceError
        A θ name the reweighter does not know, a bad binning, events outside the binning
        under ``flow="error"``, or non-finite weights.
    """
    e = _check_edges(edges)
    x, label = _observable_values(events, observable)
    th = _check_theta(reweighter, theta)
    _flow_check(x, e, flow, label)  # before the (costly) network evaluation
    w = _base_weights(events, weights) * reweighter.weights(features=events, theta=th)
    if not np.all(np.isfinite(w)):
        raise InferenceError(f"reweighter gives {int(np.count_nonzero(~np.isfinite(w)))} "
                             f"non-finite weight(s) at theta={th}")
    return _fill(x, w, e, flow)


def _vandermonde(z: np.ndarray, degree: int) -> np.ndarray:
    return np.stack([z ** k for k in range(degree + 1)], axis=-1)


def _vandermonde_derivative(z: np.ndarray, degree: int) -> np.ndarray:
    cols = [np.zeros_like(z)] + [k * z ** (k - 1) for k in range(1, degree + 1)]
    return np.stack(cols, axis=-1)


class TemplateMorphing:
    """h_b(θ) tabulated on a grid of one parameter θ and interpolated per bin.

    Each bin's θ dependence is fitted in log space (``log h_b``; bins with a non-positive
    entry on the grid fall back to linear space) by

    * ``"polynomial"``: a least-squares polynomial in z = (θ − c)/half-width of the grid;
      without an explicit ``degree``, the smallest degree whose largest leave-one-out
      relative residual is ≤ ``rtol`` (else the degree with the smallest one). The
      leave-one-out residual of a linear least-squares fit is eᵢ/(1 − Hᵢᵢ) with H the hat
      matrix, so no refits are needed. Leave-one-out is used because a polynomial through
      every grid point has zero in-sample residuals however badly it oscillates between them.
    * ``"spline"``: a cubic spline through the grid points (zero in-sample residuals; the
      leave-one-out residuals of the interior points are recorded for comparison).

    The template function h_b(θ) is a smooth function of θ even for finite samples (the
    same events are reweighted at every θ), so the morphing reproduces it to far better than
    its statistical error; ``residuals`` shows how well.

    Parameters
    ----------
    parameter
        The θ name (a parameter of the reweighter that made the templates).
    grid
        ``[m]`` increasing θ values, m ≥ 3.
    templates
        ``[m, n_bins]`` h_b at each grid point.
    variances
        ``[m, n_bins]`` Σw² at each grid point (kept for reporting).
    edges
        Bin edges of the templates (kept for reporting).
    method
        ``"polynomial"`` (default) or ``"spline"``.
    degree
        Polynomial degree; ``None`` chooses it by leave-one-out residuals.
    max_degree
        Largest degree tried (also capped at m − 2 so that leave-one-out is defined).
    rtol
        Target for the largest leave-one-out relative residual when choosing the degree.
    space
        ``"log"`` (default, per bin where possible) or ``"linear"``.
    fixed
        The values at which the reweighter's other θ were held (reporting only).

    Attributes
    ----------
    residuals
        ``[m, n_bins]`` relative residuals (ĥ − h)/h of the fit on the grid.
    loo_residuals
        ``[m, n_bins]`` leave-one-out relative residuals (NaN where undefined).
    degree
        The chosen polynomial degree (``None`` for splines).
    """

    def __init__(self, *, parameter: str, grid: Any, templates: Any, variances: Any = None,
                 edges: Any = None, method: MorphMethod = "polynomial",
                 degree: int | None = None, max_degree: int = 8, rtol: float = 1e-4,
                 space: MorphSpace = "log", fixed: Mapping[str, float] | None = None) -> None:
        g = np.asarray(grid, dtype=np.float64)
        t = np.asarray(templates, dtype=np.float64)
        if g.ndim != 1 or g.size < 3:
            raise InferenceError(f"morphing of '{parameter}': the grid needs at least 3 θ "
                                 f"points, got shape {g.shape}")
        if not np.all(np.isfinite(g)) or not np.all(np.diff(g) > 0):
            raise InferenceError(f"morphing of '{parameter}': grid must be finite and strictly "
                                 "increasing")
        if t.ndim != 2 or t.shape[0] != g.size:
            raise InferenceError(f"morphing of '{parameter}': templates have shape {t.shape}, "
                                 f"expected ({g.size}, n_bins)")
        if not np.all(np.isfinite(t)):
            raise InferenceError(f"morphing of '{parameter}': templates contain NaN/inf")
        if method not in ("polynomial", "spline"):
            raise InferenceError(f"morphing method must be 'polynomial' or 'spline', got "
                                 f"{method!r}")
        if space not in ("log", "linear"):
            raise InferenceError(f"morphing space must be 'log' or 'linear', got {space!r}")
        self.parameter = parameter
        self.grid = g
        self.templates = t
        self.variances = None if variances is None else np.asarray(variances, np.float64)
        self.edges = None if edges is None else np.asarray(edges, np.float64)
        self.method: MorphMethod = method
        self.space: MorphSpace = space
        self.rtol = float(rtol)
        self.fixed = dict(fixed or {})
        self.centre = 0.5 * (g[0] + g[-1])
        self.half_width = 0.5 * (g[-1] - g[0])
        # log space is exact for the common exponential-family θ dependence and keeps the
        # morphed template positive; it needs h_b > 0 at every grid point.
        self.log_bins = np.all(t > 0, axis=0) if space == "log" else np.zeros(t.shape[1], bool)
        self._y = np.where(self.log_bins, np.log(np.where(t > 0, t, 1.0)), t)
        self.degree: int | None = None
        self._coef: np.ndarray | None = None
        self._spline: Any = None
        self.degree_scan: dict[int, float] = {}
        if method == "polynomial":
            self._fit_polynomial(degree, max_degree)
        else:
            self._fit_spline()

    # -- construction ---------------------------------------------------------------------
    @classmethod
    def from_reweighter(cls, *, reweighter: Any, events: EventSet, observable: str | np.ndarray,
                        edges: Any, parameter: str, grid: Any,
                        fixed: Mapping[str, float] | None = None, weights: Any = None,
                        flow: FlowPolicy = "error", **options: Any) -> TemplateMorphing:
        """Fill :func:`reweighted_template` at every grid point and fit the morphing.

        Parameters
        ----------
        reweighter, events, observable, edges, weights, flow
            As for :func:`reweighted_template`.
        parameter
            The θ that varies along the grid.
        grid
            θ values of ``parameter``.
        fixed
            Values of the reweighter's other θ (default: their nominal values).
        **options
            ``method``, ``degree``, ``max_degree``, ``rtol``, ``space`` of the constructor.
        """
        names = list(reweighter.theta_names)
        if parameter not in names:
            raise InferenceError(f"'{parameter}' is not a parameter of the reweighter (it is "
                                 f"parameterised in {names})")
        others = {p.name: p.nominal for p in reweighter.parameters if p.name != parameter}
        extra = sorted(set(fixed or {}) - set(others))
        if extra:
            raise InferenceError(f"fixed theta name(s) {extra} are not other parameters of the "
                                 f"reweighter (other parameters: {sorted(others)})")
        others.update({k: float(v) for k, v in (fixed or {}).items()})
        g = np.asarray(grid, dtype=np.float64)
        values, variances = [], []
        e = _check_edges(edges)
        for t in g:
            tpl = reweighted_template(reweighter=reweighter, events=events, observable=observable,
                                      edges=e, theta={**others, parameter: float(t)},
                                      weights=weights, flow=flow)
            values.append(tpl.values)
            variances.append(tpl.variances)
        return cls(parameter=parameter, grid=g, templates=np.array(values),
                   variances=np.array(variances), edges=e, fixed=others, **options)

    def _relative(self, fitted: np.ndarray) -> np.ndarray:
        """(ĥ − h)/h on the grid; bins that are zero everywhere are compared to 1."""
        t = self.templates
        scale = np.where(t != 0, np.abs(t), np.max(np.abs(t), axis=0, keepdims=True))
        scale = np.where(scale > 0, scale, 1.0)
        return (fitted - t) / scale

    def _to_linear(self, y: np.ndarray) -> np.ndarray:
        return np.where(self.log_bins, np.exp(y), y)

    def _fit_polynomial(self, degree: int | None, max_degree: int) -> None:
        z = (self.grid - self.centre) / self.half_width
        top = min(max_degree, self.grid.size - 2)
        if degree is not None:
            if not 0 <= degree <= self.grid.size - 1:
                raise InferenceError(f"morphing of '{self.parameter}': degree {degree} needs "
                                     f"0 ≤ degree ≤ {self.grid.size - 1} for {self.grid.size} "
                                     "grid points")
            candidates = [degree]
        else:
            if top < 1:
                raise InferenceError(f"morphing of '{self.parameter}': need at least 3 grid "
                                     "points to choose a degree")
            candidates = list(range(1, top + 1))
        best: tuple[float, int, np.ndarray, np.ndarray] | None = None
        for d in candidates:
            v = _vandermonde(z, d)
            coef, *_ = np.linalg.lstsq(v, self._y, rcond=None)
            resid = self._y - v @ coef
            # leave-one-out residuals from the hat matrix diagonal (exact for least squares)
            hat = np.einsum("ij,ji->i", v, np.linalg.pinv(v))
            with np.errstate(divide="ignore", invalid="ignore"):
                loo_y = self._y - resid / (1.0 - hat)[:, None]
            loo_y = np.where(np.isfinite(loo_y), loo_y, np.nan)
            loo = self._relative(self._to_linear(loo_y))
            worst = float(np.nanmax(np.abs(loo))) if np.any(np.isfinite(loo)) else np.inf
            self.degree_scan[d] = worst
            if best is None or worst < best[0]:
                best = (worst, d, coef, loo)
            if degree is None and worst <= self.rtol:
                best = (worst, d, coef, loo)
                break
        assert best is not None
        _, self.degree, self._coef, self.loo_residuals = best
        self.residuals = self._relative(self._to_linear(
            _vandermonde(z, self.degree) @ self._coef))

    def _fit_spline(self) -> None:
        from scipy.interpolate import CubicSpline

        self._spline = CubicSpline(self.grid, self._y, axis=0)
        self.residuals = self._relative(self._to_linear(self._spline(self.grid)))
        loo = np.full_like(self.templates, np.nan)
        for k in range(1, self.grid.size - 1):
            keep = np.arange(self.grid.size) != k
            if keep.sum() < 2:
                continue
            s = CubicSpline(self.grid[keep], self._y[keep], axis=0)
            loo[k] = self._relative(self._to_linear(s(self.grid)))[k]
        self.loo_residuals = loo

    # -- evaluation -----------------------------------------------------------------------
    @property
    def n_bins(self) -> int:
        return int(self.templates.shape[1])

    @property
    def max_residual(self) -> float:
        """Largest |relative residual| of the fit on the grid."""
        return float(np.max(np.abs(self.residuals)))

    def _theta_array(self, theta: float | Mapping[str, float] | np.ndarray) -> np.ndarray:
        if isinstance(theta, Mapping):
            if set(theta) != {self.parameter}:
                raise InferenceError(f"this morphing is in '{self.parameter}', got theta names "
                                     f"{sorted(theta)}")
            theta = theta[self.parameter]
        t = np.asarray(theta, dtype=np.float64)
        # a relative tolerance so minimiser steps that land on a grid edge are accepted:
        # pyhf's minuit stepped 3e-6 of the grid's span past it (1.25000136 on [0.8, 1.25]),
        # an excursion the smooth morphing's edge value stands for
        tol = 1e-5 * (self.grid[-1] - self.grid[0])
        if not np.all(np.isfinite(t)) or np.any(t < self.grid[0] - tol) or \
                np.any(t > self.grid[-1] + tol):
            raise InferenceError(f"{self.parameter} = {t} is outside the morphing grid "
                                 f"[{self.grid[0]:g}, {self.grid[-1]:g}]; the morphing does "
                                 "not extrapolate")
        return np.clip(t, self.grid[0], self.grid[-1])

    def _log_or_linear(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The fitted y (log or linear per bin) and dy/dθ at ``t`` (``[m]``)."""
        if self._spline is not None:
            return self._spline(t), self._spline(t, 1)
        assert self._coef is not None and self.degree is not None
        z = (t - self.centre) / self.half_width
        y = _vandermonde(z, self.degree) @ self._coef
        dy = _vandermonde_derivative(z, self.degree) @ self._coef / self.half_width
        return y, dy

    def value(self, theta: float | Mapping[str, float] | np.ndarray) -> np.ndarray:
        """h_b(θ): ``[n_bins]`` for a scalar θ, ``[m, n_bins]`` for ``[m]`` values."""
        t = self._theta_array(theta)
        y, _ = self._log_or_linear(np.atleast_1d(t))
        out = self._to_linear(y)
        return out[0] if t.ndim == 0 else out

    def derivative(self, theta: float | Mapping[str, float] | np.ndarray) -> np.ndarray:
        """∂h_b/∂θ: ``[n_bins]`` for a scalar θ, ``[m, n_bins]`` for ``[m]`` values."""
        t = self._theta_array(theta)
        y, dy = self._log_or_linear(np.atleast_1d(t))
        out = np.where(self.log_bins, np.exp(y) * dy, dy)
        return out[0] if t.ndim == 0 else out

    def summary(self) -> dict[str, Any]:
        """JSON-ready description: method, degree, grid and residuals."""
        loo = self.loo_residuals
        return {"parameter": self.parameter, "method": self.method, "space": self.space,
                "degree": self.degree, "grid": self.grid.tolist(), "fixed": self.fixed,
                "n_bins": self.n_bins, "log_bins": int(np.count_nonzero(self.log_bins)),
                "max_residual": self.max_residual,
                "max_loo_residual": float(np.nanmax(np.abs(loo))) if np.any(np.isfinite(loo))
                else None,
                "degree_scan": {str(k): v for k, v in self.degree_scan.items()}}
