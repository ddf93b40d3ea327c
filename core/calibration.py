"""Calibration of a learned ratio: normalisation and moment matching.

Normalisation calibration
-------------------------
A perfectly learned ratio satisfies E_reference[w(x, θ)] = 1 for every θ. A trained one
misses by a θ-dependent factor, which biases likelihood and DCTR fits directly. ratiofit
measures c(θ) = log E_reference[w(x, θ)] on a θ grid and, when calibration is requested,
subtracts a polynomial fit of c(θ) from log w (the fit and residuals are kept in the
metadata).

Moment calibration
------------------
Normalisation fixes one moment, E_reference[w] = 1. A likelihood fit needs more: its score
equation sets the data's mean of ∂_θ log w equal to the reweighted reference's, so a
learned ratio whose reweighted reference has E[x|θ] off by δ moves θ̂ by about δ over the
slope dE[x|θ]/dθ (docs/results.md measures this). ``calibrate(moments=K, target=...)``
adds an exponential tilt

    log w_cal(x, θ) = log w(x, θ) + a(θ)·T(x) − c(θ),   T(x) = (x̃_f^k), k = 1..K,

with x̃ the standardised features, chosen so that the reweighted reference reproduces the
target's moments m(θ) = E_target[T | θ], estimated by a (feasible weighted least squares)
polynomial regression of T on θ over the parameterised target sample (the training data;
no analytic input). At each θ on
the grid a(θ) solves the convex problem min_a log E_ref[w e^{a·T}] − a·m(θ) (whose
stationarity condition is exactly the moment match); a(θ) and c(θ) are then fitted by
polynomials. With K = 2 and a Gaussian family, T spans the sufficient statistics, and the
calibrated ratio is exact in form; in general it corrects the fit-relevant first moments.
The regression's own noise, not the network's error, then limits the calibrated ratio.

The averages over the reference sample are weighted by its event weights (a weighted
generator's sample), as E_reference[·] is. Negative weights (NLO) enter the normalisation
as they are: c(θ) = log(Σ w₀ᵢ w(xᵢ, θ) / Σ w₀ᵢ), a signed weighted mean, refused only where
that mean is not positive (:mod:`ratiofit.weights`). The moment calibration's match
minimises log Σ w₀ w e^{a·T}, which a signed sum does not define: it refuses negative
reference weights in one line (use the normalisation calibration).

Examples
--------
>>> import numpy as np
>>> from ratiofit.testing import analytic_gaussian_reweighter
>>> rw = analytic_gaussian_reweighter(mu_range=(-0.5, 0.5))
>>> x = np.random.default_rng(0).normal(0.0, 1.0, (20000, 1))
>>> table = calibrate(rw, reference_features=x, points=5, degree=2,
...                   rng=np.random.default_rng(1), apply=False)
>>> # the exact ratio is normalised: |log c| within 5 of its noise √((e^{μ²} − 1)/n) ≈ 0.004
>>> bool(np.max(np.abs(table["log_norm"])) < 0.02)
True
"""

from __future__ import annotations

from collections.abc import Mapping
from itertools import combinations_with_replacement
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import DataError
from .events import EventSet
from .log_normalisation import log_mean_ratio
from .weights import check_weights

if TYPE_CHECKING:
    from .reweighter import Reweighter, _Inputs

__all__ = ["Calibration", "Tilt", "calibrate"]

#: A moment calibration keeps the network's outputs in memory up to this many bytes.
_CACHE_BYTES = 2 << 30


class Calibration:
    """Polynomial c(z) in standardised θ, z ∈ [-1, 1]^p, of total degree ``degree``."""

    def __init__(self, *, degree: int, exponents: list[tuple[int, ...]], coefficients: list[float],
                 half_width: np.ndarray, centre: np.ndarray, measured: dict[str, Any],
                 tilt: Tilt | None = None) -> None:
        self.degree = degree
        self.exponents = [tuple(e) for e in exponents]
        self.coefficients = np.asarray(coefficients, dtype=np.float64)
        self.half_width = np.asarray(half_width, dtype=np.float64)
        self.centre = np.asarray(centre, dtype=np.float64)
        self.measured = measured
        #: Moment calibration a(θ)·T(x) (None: normalisation only).
        self.tilt = tilt

    @staticmethod
    def exponent_list(p: int, degree: int) -> list[tuple[int, ...]]:
        out = []
        for d in range(degree + 1):
            for combo in combinations_with_replacement(range(p), d):
                out.append(tuple(combo.count(i) for i in range(p)))
        return out

    @staticmethod
    def design(z: np.ndarray, exponents: list[tuple[int, ...]]) -> np.ndarray:
        return np.stack([np.prod(z ** np.asarray(e), axis=1) for e in exponents], axis=1)

    def value(self, theta: np.ndarray) -> np.ndarray:
        """c at θ rows ``[m, p]``."""
        z = (np.atleast_2d(theta) - self.centre) / self.half_width
        return self.design(z, self.exponents) @ self.coefficients

    def gradient(self, theta: np.ndarray) -> np.ndarray:
        """∂c/∂θ at θ rows ``[m, p]`` → ``[m, p]``."""
        z = (np.atleast_2d(theta) - self.centre) / self.half_width
        return np.stack([self.design_derivative(z, self.exponents, j) @ self.coefficients
                         / self.half_width[j] for j in range(z.shape[1])], axis=1)

    @staticmethod
    def design_derivative(z: np.ndarray, exponents: list[tuple[int, ...]], j: int) -> np.ndarray:
        """∂(design)/∂z_j, ``[m, len(exponents)]``."""
        cols = []
        for e in exponents:
            if e[j] == 0:
                cols.append(np.zeros(len(z)))
                continue
            e2 = list(e)
            e2[j] -= 1
            cols.append(e[j] * np.prod(z ** np.asarray(e2), axis=1))
        return np.stack(cols, axis=1)

    def offset(self, theta: np.ndarray, flat: np.ndarray | None) -> np.ndarray:
        """The per-event correction added to log w: a(θ)·T(x) − c(θ), ``[n]``.

        ``theta`` is ``[n, p]`` (one row per event) and ``flat`` the events' flat features
        ``[n, d]`` (needed only with a tilt).
        """
        n = len(flat) if flat is not None else len(theta)
        if theta.shape[1] == 0:
            return np.full(n, -self.coefficients[0])
        if len(theta) and np.all(theta.min(axis=0) == theta.max(axis=0)):
            uniq, inverse = theta[:1], np.zeros(len(theta), dtype=np.int64)
        else:
            uniq, inverse = np.unique(theta, axis=0, return_inverse=True)
            inverse = inverse.reshape(-1)
        out = -self.value(uniq)[inverse]
        if self.tilt is not None:
            if flat is None:
                raise DataError("this reweighter's moment calibration needs the events' flat "
                                "features")
            z = (uniq - self.centre) / self.half_width
            a = self.design(z, self.tilt.exponents) @ self.tilt.coefficients  # [u, k]
            out = out + np.einsum("nk,nk->n", self.tilt.statistics(flat), a[inverse])
        return out

    def offset_gradient(self, theta_row: np.ndarray, flat: np.ndarray | None) -> np.ndarray:
        """∂(a(θ)·T(x) − c(θ))/∂θ at one θ row for every event, ``[n, p]``."""
        th = np.atleast_2d(theta_row)
        grad = -self.gradient(th)  # [1, p]
        if self.tilt is None:
            n = len(flat) if flat is not None else 1
            return np.broadcast_to(grad, (n, th.shape[1])).copy()
        if flat is None:
            raise DataError("this reweighter's moment calibration needs the events' flat "
                            "features")
        z = (th - self.centre) / self.half_width
        da = np.stack([(self.design_derivative(z, self.tilt.exponents, j)
                        @ self.tilt.coefficients)[0] / self.half_width[j]
                       for j in range(th.shape[1])], axis=0)  # [p, k]
        return grad + self.tilt.statistics(flat) @ da.T

    def to_dict(self) -> dict[str, Any]:
        return {"degree": self.degree, "exponents": [list(e) for e in self.exponents],
                "coefficients": self.coefficients.tolist(), "half_width": self.half_width.tolist(),
                "centre": self.centre.tolist(), "measured": self.measured,
                "tilt": self.tilt.to_dict() if self.tilt is not None else None}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Calibration:
        return cls(degree=d["degree"], exponents=[tuple(e) for e in d["exponents"]],
                   coefficients=d["coefficients"], half_width=np.asarray(d["half_width"]),
                   centre=np.asarray(d["centre"]), measured=d["measured"],
                   tilt=Tilt.from_dict(d["tilt"]) if d.get("tilt") else None)


class Tilt:
    """a(θ)·T(x): T = standardised flat features to powers 1..``moments``; a(θ) polynomial.

    ``coefficients`` is ``[len(exponents), k]`` with k = d · moments statistics, ordered
    feature-major (x̃₁, x̃₁², ..., x̃₂, ...).
    """

    def __init__(self, *, moments: int, exponents: list[tuple[int, ...]],
                 coefficients: Any, feature_centre: Any, feature_scale: Any) -> None:
        self.moments = int(moments)
        self.exponents = [tuple(e) for e in exponents]
        self.coefficients = np.asarray(coefficients, dtype=np.float64)
        self.feature_centre = np.asarray(feature_centre, dtype=np.float64)
        self.feature_scale = np.asarray(feature_scale, dtype=np.float64)

    def statistics(self, flat: np.ndarray) -> np.ndarray:
        """T(x), ``[n, d · moments]``."""
        u = (np.asarray(flat, dtype=np.float64) - self.feature_centre) / self.feature_scale
        return np.concatenate([u[:, [f]] ** np.arange(1, self.moments + 1)[None, :]
                               for f in range(u.shape[1])], axis=1)

    def to_dict(self) -> dict[str, Any]:
        return {"moments": self.moments, "exponents": [list(e) for e in self.exponents],
                "coefficients": self.coefficients.tolist(),
                "feature_centre": self.feature_centre.tolist(),
                "feature_scale": self.feature_scale.tolist()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Tilt:
        return cls(moments=d["moments"], exponents=[tuple(e) for e in d["exponents"]],
                   coefficients=np.asarray(d["coefficients"], dtype=np.float64).reshape(
                       len(d["exponents"]), -1),
                   feature_centre=d["feature_centre"], feature_scale=d["feature_scale"])


def calibrate(rw: Reweighter, *, reference_features: Any, points: int, degree: int,
              rng: np.random.Generator, apply: bool = True, moments: int = 0,
              target: EventSet | None = None, moment_degree: int = 4,
              reference_weights: Any = None) -> dict[str, Any]:
    """Measure c(θ) = log E_reference[w(x, θ)] on a θ grid; fit and (optionally) apply it.

    With ``moments=K > 0`` a moment calibration (module docstring) is fitted first: the
    target's moments m(θ) come from a polynomial regression of degree ``moment_degree``
    on ``target`` (an event set with per-event θ), and the tilt a(θ) that makes the
    reweighted reference reproduce them is fitted by a polynomial of degree ``degree``.

    ``reference_weights`` (default: those of ``reference_features`` when it is an
    :class:`~ratiofit.events.EventSet`) weight every average over the reference: c(θ) =
    log Σ w₀ᵢ w(xᵢ, θ) / Σ w₀ᵢ, and the reweighted reference's moments likewise. They must
    be finite with a positive total; negative ones are taken as they are by the
    normalisation (a signed weighted mean) and refused by a moment calibration (module
    docstring).

    Returns the measured table (θ points, c, and with moments the reweighted reference's
    moment error before and after calibration).
    """

    if reference_weights is None and isinstance(reference_features, EventSet):
        reference_weights = reference_features.weights
    inp = rw._prepare(reference_features)
    n_ref = len(inp.x)
    what = "the calibration's reference sample"
    if isinstance(reference_features, EventSet):
        what += f" ({reference_features.provenance.get('origin', 'events')})"
    w0 = check_weights(reference_weights, n=n_ref, what=what)
    n_negative = 0 if w0 is None else int(np.count_nonzero(w0 < 0))
    signed = n_negative > 0
    if signed and moments:
        raise DataError(f"{what}: {n_negative} negative event weights: a "
                        "moment calibration matches moments in log space (log Σ w0·w·e^(a·T)), "
                        "which a signed sum does not define; use calibration: normalisation")
    # log(w₀/mean w₀), added to log w wherever the reference is averaged; None for equal
    # weights (then the unweighted sums, bit for bit as before weights were read) and for
    # signed ones (then w₀ multiplies inside the signed mean, below)
    log_w0 = None if signed else _log_relative_weights(w0, n_ref)
    p = len(rw.parameters)
    lo = np.array([q.low for q in rw.parameters])
    hi = np.array([q.high for q in rw.parameters])
    if p == 0:
        grid = np.zeros((1, 0))
    elif p == 1:
        grid = np.linspace(lo, hi, points)
    else:
        n_pts = max(points, 3 * len(Calibration.exponent_list(p, degree)))
        grid = rng.uniform(lo, hi, size=(n_pts, p))
    centre = (lo + hi) / 2 if p else np.zeros(0)
    half = (hi - lo) / 2 if p else np.zeros(0)
    exps = Calibration.exponent_list(p, degree if p else 0)
    z = (grid - centre) / half if p else np.zeros((1, 0))
    design = Calibration.design(z, exps)

    # A moment calibration visits each grid point twice (tilt, then normalisation): keep
    # the network's float32 outputs when they fit in memory (lossless: it is float32).
    cache: dict[int, np.ndarray] | None = \
        {} if moments and len(grid) * n_ref * 4 <= _CACHE_BYTES else None

    def raw(i: int) -> np.ndarray:
        """The uncalibrated log w of every reference event at grid point ``i``."""
        if cache is not None and i in cache:
            return cache[i].astype(np.float64)
        out = rw._raw_log_ratio(inp, np.broadcast_to(grid[i], (n_ref, p)))
        if log_w0 is not None:
            out = out + log_w0
        if cache is not None:
            cache[i] = out.astype(np.float32)
        return out

    measured: dict[str, Any] = {"theta": grid.tolist(), "names": rw.theta_names,
                                "n_events": n_ref}
    tilt = None
    if moments:
        tilt, tilt_measured = _fit_tilt(
            rw, inp=inp, raw=raw, grid=grid, design=design, exps=exps, z_centre=centre,
            z_half=half, moments=moments, target=target, moment_degree=moment_degree)
        measured["moments"] = tilt_measured
    c, after = [], []
    t_ref = tilt.statistics(inp.flat) if tilt is not None and inp.flat is not None else None
    for i, t in enumerate(grid):
        lw = raw(i)
        if tilt is not None and t_ref is not None:
            zt = (t[None, :] - centre) / half
            lw = lw + t_ref @ (Calibration.design(zt, exps) @ tilt.coefficients)[0]
            q = np.exp(lw - lw.max())
            after.append((q @ t_ref) / q.sum())
        # log E_reference[w] (non-negative reference weights are already in lw: log_w0;
        # signed ones weight the mean)
        try:
            c.append(log_mean_ratio(lw, weights=w0 if signed else None)[0])
        except DataError:
            at = dict(zip(rw.theta_names, t.tolist(), strict=True))
            raise DataError(f"{what}: the signed weighted mean of w(x, θ) at θ = {at} is "
                            "not positive; the learned ratio cannot be normalised there"
                            ) from None
    c_arr = np.array(c)
    if tilt is not None:
        moments_measured = measured["moments"]
        error_after = np.array(after) - np.asarray(moments_measured["target_moments"])
        moments_measured["moment_error_after"] = error_after.tolist()
        moments_measured["max_abs_moment_error_after"] = float(np.max(np.abs(error_after)))
    coef, *_ = np.linalg.lstsq(design, c_arr, rcond=None)
    residual = c_arr - design @ coef
    measured.update({"log_norm": c_arr.tolist(), "residual_after_fit": residual.tolist(),
                     "max_abs_log_norm": float(np.max(np.abs(c_arr)))})
    if apply:
        rw.calibration = Calibration(degree=degree if p else 0, exponents=exps,
                                       coefficients=coef.tolist(), half_width=half,
                                       centre=centre, measured=measured, tilt=tilt)
    return measured

def _fit_tilt(rw: Reweighter, *, inp: _Inputs, raw: Any, grid: np.ndarray, design: np.ndarray,
              exps: list[tuple[int, ...]], z_centre: np.ndarray, z_half: np.ndarray,
              moments: int, target: EventSet | None, moment_degree: int
              ) -> tuple[Tilt, dict[str, Any]]:
    """a(θ) at each grid point by the convex moment match, then its polynomial fit."""
    if not len(rw.parameters):
        raise DataError("a moment calibration needs a parameterised reweighter")
    if target is None:
        raise DataError("a moment calibration needs the target sample (θ per event)")
    names = rw.signature.feature_names
    if not names or inp.flat is None or inp.flat.shape[1] == 0:
        raise DataError("a moment calibration matches flat-feature moments; this "
                        "reweighter has no flat features")
    flat = inp.flat
    scale = flat.std(axis=0)
    scale[scale == 0] = 1.0
    tilt = Tilt(moments=moments, exponents=exps, coefficients=np.zeros((len(exps), 0)),
                feature_centre=flat.mean(axis=0), feature_scale=scale)
    t_ref = tilt.statistics(flat)
    # m(θ): weighted least squares of the target's T on a polynomial in θ.
    th_t = target.theta_matrix(rw.theta_names)
    if np.all(th_t.min(axis=0) == th_t.max(axis=0)) and len(grid) > 1:
        raise DataError("a moment calibration needs a target with θ varied per event")
    m_exps = Calibration.exponent_list(th_t.shape[1], moment_degree)
    flat_t, w_t = target.feature_columns(names), target.event_weights
    z_t = (th_t - z_centre) / z_half
    phi_grid = Calibration.design((grid - z_centre) / z_half, m_exps)
    m_grid, m_errors, sq = _moment_regression(
        design=lambda c: Calibration.design(z_t[c], m_exps),
        statistics=lambda c: tilt.statistics(flat_t[c]), weights=w_t,
        n_basis=len(m_exps), k=t_ref.shape[1], at=phi_grid)
    a_grid, before, ess = [], [], []
    for i, m in enumerate(m_grid):
        lw = raw(i)
        q = np.exp(lw - lw.max())
        before.append((q @ t_ref) / q.sum() - m)
        a = _moment_match(lw, t_ref, m)
        a_grid.append(a)
        lq = lw + t_ref @ a
        q = np.exp(lq - lq.max())
        ess.append(float(q.sum() ** 2 / (q @ q)))
    a_arr = np.array(a_grid)
    # Inverse-variance weights: a(θ) is determined by the reweighted reference, whose
    # effective size (Kish) shrinks towards the range's corners, where the weights grow
    # large; unweighted, those few-event points would pull the polynomial everywhere.
    sw = np.sqrt(np.asarray(ess) / max(ess))
    coef, *_ = np.linalg.lstsq(design * sw[:, None], a_arr * sw[:, None], rcond=None)
    tilt.coefficients = coef
    measured = {
        "statistics": [f"{n}^{k}" for n in names for k in range(1, moments + 1)],
        "moment_degree": moment_degree, "target_events": len(th_t),
        "regression_rms_residual": np.sqrt(sq / w_t.sum()).tolist(),
        "target_moments": m_grid.tolist(),
        "target_moment_errors": m_errors.tolist(),
        "moment_error_before": np.array(before).tolist(),
        "tilt_at_grid": a_arr.tolist(),
        "effective_reference_events": ess,
        "tilt_fit_residual": (a_arr - design @ coef).tolist(),
        "max_abs_moment_error_before": float(np.max(np.abs(before))),
    }
    return tilt, measured


def _log_relative_weights(weights: Any, n: int) -> np.ndarray | None:
    """log(w₀/mean w₀) of the reference events (finite, ≥ 0, positive total), or None
    where they are all equal."""
    if weights is None:
        return None
    w = np.asarray(weights, dtype=np.float64)  # checked by the caller: finite, ≥ 0, Σ > 0
    if np.all(w == w[0]):
        return None
    # a zero weight (an event a bootstrap replica leaves out) is log 0 = −inf: it drops out
    # of every log-sum-exp, as it should
    with np.errstate(divide="ignore"):
        return np.log(w / w.mean())


def _moment_regression(*, design: Any, statistics: Any, weights: np.ndarray, n_basis: int,
                       k: int, at: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """E[T_j | θ] by feasible weighted least squares on a polynomial basis.

    The variance of T given θ changes across the range (for x² by orders of magnitude), so
    an unweighted fit lets the noisiest region set the error everywhere. A first OLS pass
    gives residuals; a regression of their squares on the same basis estimates Var(T_j|θ)
    (floored at 1% of its mean); the second pass weights each event by its inverse.
    ``design(chunk)``/``statistics(chunk)`` give the basis ``[m, n_basis]`` and T ``[m, k]``
    of a slice of events (chunked: targets may hold 10⁷). Returns the fitted moments at the
    basis rows ``at``, their sandwich standard errors, and the weighted residual sums of
    squares of the first pass.
    """
    n = len(weights)
    chunks = [slice(a, a + 1_000_000) for a in range(0, n, 1_000_000)]

    def solve(event_weight: Any, target: Any) -> np.ndarray:
        """Per statistic j: argmin Σ w_j (target_j − φβ_j)², ``[n_basis, k]``."""
        coef = np.zeros((n_basis, k))
        grams = np.zeros((k, n_basis, n_basis))
        rhs = np.zeros((k, n_basis))
        for c in chunks:
            phi, y, w = design(c), target(c), event_weight(c)
            for j in range(k):
                grams[j] += (phi.T * w[:, j]) @ phi
                rhs[j] += (phi.T * w[:, j]) @ y[:, j]
        for j in range(k):
            coef[:, j] = np.linalg.solve(grams[j], rhs[j])
        return coef

    def base_weight(c: slice) -> np.ndarray:
        return np.repeat(weights[c][:, None], k, axis=1)

    ols = solve(base_weight, statistics)
    var_coef = solve(base_weight, lambda c: (statistics(c) - design(c) @ ols) ** 2)
    sq = np.zeros(k)
    for c in chunks:
        sq += weights[c] @ (statistics(c) - design(c) @ ols) ** 2
    floor = 0.01 * sq / weights.sum()

    def inverse_variance(c: slice) -> np.ndarray:
        return weights[c][:, None] / np.maximum(design(c) @ var_coef, floor[None, :])

    coef = solve(inverse_variance, statistics)
    grams = np.zeros((k, n_basis, n_basis))
    meat = np.zeros((k, n_basis, n_basis))
    for c in chunks:
        phi, r, w = design(c), statistics(c) - design(c) @ coef, inverse_variance(c)
        for j in range(k):
            grams[j] += (phi.T * w[:, j]) @ phi
            u = phi * (w[:, j] * r[:, j])[:, None]
            meat[j] += u.T @ u
    errors = np.stack([np.sqrt(np.einsum("ep,ef,fp->p", b, meat[j], b))
                       for j in range(k) for b in [np.linalg.solve(grams[j], at.T)]], axis=1)
    return at @ coef, errors, sq


def _moment_match(log_w: np.ndarray, stats: np.ndarray, target: np.ndarray,
                  *, max_iter: int = 100, tolerance: float = 1e-9) -> np.ndarray:
    """a minimising log Σ exp(log_w + stats·a) − a·target (convex): the tilt under which the
    weighted mean of ``stats`` equals ``target``.

    Damped Newton, stopped when the Newton decrement — the remaining moment error in units
    of the statistics' weighted standard deviations — is below ``tolerance``. An
    unreachable target (outside the sample's convex hull) is an error, not a best effort.
    """
    from scipy.special import logsumexp

    a = np.zeros(stats.shape[1])

    def dual(a_: np.ndarray) -> float:
        return float(logsumexp(log_w + stats @ a_) - a_ @ target)

    value = dual(a)
    for _ in range(max_iter):
        lq = log_w + stats @ a
        q = np.exp(lq - lq.max())
        q /= q.sum()
        mean = q @ stats
        grad = mean - target
        centred = stats - mean
        hess = (centred.T * q) @ centred
        if not np.trace(hess) > 0:  # all weight on one event: the tilt has run away
            break
        step = np.linalg.solve(hess + 1e-15 * np.trace(hess) * np.eye(len(a)), grad)
        decrement = float(np.sqrt(max(grad @ step, 0.0)))
        if decrement < tolerance:
            return a
        t = 1.0
        while t > 1e-10:
            trial = dual(a - t * step)
            if trial < value:
                break
            t /= 2
        else:
            # No decrease left at float precision: converged if the error is negligible.
            if decrement < 1e-6:
                return a
            break
        a, value = a - t * step, trial
    raise DataError("moment calibration did not converge: the target moments are out of "
                    "reach of the reweighted reference (too few reference events?)")
