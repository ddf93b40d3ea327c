"""Reweighter: a trained classifier seen as a likelihood ratio.

``log_ratio(features, theta)`` returns log w(x, θ) = log p(x|θ) − log p(x|θ₀) (the one
convention, DESIGN.md); ``weights = exp(log_ratio)`` makes reference events look like
target events. A reweighter is saved as a directory: ``model.keras`` (loaded with Keras
``safe_mode``) and ``metadata.json`` carrying the SHA-256 of the model file.

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
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from itertools import combinations_with_replacement
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from ._atomic import json_default
from .errors import DataError, ReweighterLoadError
from .events import EventSet
from .parameters import ParameterSet
from .plugin_api import InputSignature

__all__ = ["AveragedReweighter", "Calibration", "Reweighter", "Tilt", "load_reweighters"]

FORMAT_VERSION = 1
_COMPUTED_KEYS = ("format_version", "loss", "parameters", "signature", "calibration",
                  "model_sha256")
_BATCH = 65536
_CACHE_BYTES = 2 << 30
_PARTICLE_BATCH = 2048


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


class _WeightMethods:
    """``weights`` and ``diagnostics`` for anything with a ``log_ratio``."""

    def log_ratio(self, *, features: Any, theta: Mapping[str, Any] | None = None,
                  calibrated: bool = True) -> np.ndarray:
        raise NotImplementedError

    def weights(self, *, features: Any, theta: Mapping[str, Any] | None = None,
                clip: float | None = None) -> np.ndarray:
        """exp(log w). Clipping at ``clip`` (opt-in) is counted by :meth:`diagnostics`."""
        w = np.exp(self.log_ratio(features=features, theta=theta))
        return np.minimum(w, clip) if clip is not None else w

    def diagnostics(self, *, features: Any, theta: Mapping[str, Any] | None = None,
                    event_weights: np.ndarray | None = None, clip: float | None = None
                    ) -> dict[str, float]:
        """Kish effective sample size, max and mean weight, non-finite and clipped counts."""
        lw = self.log_ratio(features=features, theta=theta)
        w = np.exp(lw)
        n_inf = int(np.count_nonzero(~np.isfinite(w)))
        clipped = int(np.count_nonzero(w > clip)) if clip is not None else 0
        if clip is not None:
            w = np.minimum(w, clip)
        if event_weights is not None:
            w = w * event_weights
        finite = w[np.isfinite(w)]
        ess = float(finite.sum() ** 2 / np.sum(finite ** 2)) if finite.size else 0.0
        return {"n_events": len(w), "ess": ess, "ess_fraction": ess / max(len(w), 1),
                "max_weight": float(finite.max()) if finite.size else float("nan"),
                "mean_weight": float(finite.mean()) if finite.size else float("nan"),
                "n_nonfinite": n_inf, "n_clipped": clipped,
                "fraction_clipped": clipped / max(len(w), 1)}


class Reweighter(_WeightMethods):
    """A learned log-ratio log w(x, θ).

    Parameters
    ----------
    model
        Keras model with inputs ``features`` (and ``theta`` when parameterised).
    loss
        The loss plugin that trained it (maps network output → log w).
    parameters
        The θ it is parameterised in (possibly empty).
    signature
        Feature names/standardisation and θ ranges seen by the network.
    metadata
        Training record (history, seed, options, ...), stored with the model.

    Examples
    --------
    >>> rw = Reweighter.load("runs/quickstart/reweighter")        # doctest: +SKIP
    >>> rw.log_ratio(features=x, theta={"mu": 0.5})                # doctest: +SKIP
    """

    def __init__(self, *, model: Any, loss: Any, parameters: ParameterSet,
                 signature: InputSignature, metadata: Mapping[str, Any] | None = None,
                 calibration: Calibration | None = None, architecture: Any = None) -> None:
        self.model = model
        self.loss = loss
        self.parameters = parameters
        self.signature = signature
        self.metadata: dict[str, Any] = dict(metadata or {})
        self.calibration = calibration
        self._fn: Any = None
        self._grad_fn: Any = None
        self._prepared: list[tuple[EventSet, _Inputs]] = []
        # An architecture whose θ enters late offers (embed, head): the θ-free part is
        # evaluated once per event set and cached, and only the head runs per θ.
        split = getattr(architecture, "split", None)
        self._split: tuple[Any, Any] | None = split(model) if callable(split) else None

    # -- evaluation -----------------------------------------------------------------------
    @property
    def theta_names(self) -> list[str]:
        return self.parameters.names

    def _features(self, features: Any) -> np.ndarray:
        x = np.asarray(features, dtype=np.float64)
        if x.ndim == 1:
            x = x[:, None]
        d = len(self.signature.feature_names)
        if x.ndim != 2 or x.shape[1] != d:
            raise DataError(f"features have shape {x.shape}; this reweighter expects [n, {d}] "
                            f"({', '.join(self.signature.feature_names)})")
        if not np.all(np.isfinite(x)):
            raise DataError("features contain NaN/inf values; ratiofit refuses non-finite inputs")
        return x

    def _prepare(self, features: Any) -> _Inputs:
        """An EventSet (columns picked by name) or an ``[n, d]`` array → network inputs."""
        sig = self.signature
        if isinstance(features, EventSet):
            # Fits evaluate the same (immutable) data and reference sets many times.
            for events, prepared in self._prepared:
                if events is features:
                    return prepared
            x = features.feature_columns(sig.feature_names) if sig.feature_names else \
                np.zeros((len(features), 0))
            parts = features.particle_arrays(sig.particle_names) if sig.particle_names else None
            prepared = _Inputs(x, parts, flat=x)
            if self._split is not None and self.parameters.names:
                prepared = _Inputs(self._embed(prepared), None, embedded=True, flat=x)
            self._prepared = [(features, prepared), *self._prepared[:3]]
            return prepared
        if sig.particle_names:
            raise DataError(f"this reweighter reads particles ({', '.join(sig.particle_names)});"
                            " pass an EventSet, not a feature array")
        x = self._features(features)
        return _Inputs(x, None, flat=x)

    def theta_matrix(self, theta: Mapping[str, Any] | None, n: int) -> np.ndarray:
        """Named θ (scalars or ``[n]`` arrays) → ``[n, p]``; range-checked."""
        if not len(self.parameters):
            return np.zeros((n, 0))
        if theta is None:
            raise DataError(f"this reweighter needs theta for {self.theta_names}")
        extra = set(theta) - set(self.theta_names)
        if extra:
            raise DataError(f"unknown theta name(s) {sorted(extra)}; this reweighter is "
                            f"parameterised in {self.theta_names}")
        return self.parameters.as_matrix(theta, n)

    def _embed(self, inp: _Inputs) -> np.ndarray:
        """The θ-free embedding of every event (``split`` architectures), ``[n, e]``."""
        import tensorflow as tf

        assert self._split is not None
        embed = self._split[0]
        fn = tf.function(lambda feed: embed(feed, training=False), autograph=False,
                         reduce_retracing=True)
        out: np.ndarray | None = None
        no_theta = np.zeros((len(inp.x), 0))
        for idx, feed in self._batches_of(inp, no_theta):
            values = fn(feed).numpy()[:len(idx)]
            if out is None:
                out = np.zeros((len(inp.x), values.shape[1]), np.float32)
            out[idx] = values
        return out if out is not None else np.zeros((0, 0), np.float32)

    def _batches_of(self, inp: _Inputs, th: np.ndarray) -> Iterator[tuple[np.ndarray, Any]]:
        """(event indices, padded input dict) chunks covering every event once.

        Chunks are padded to a few static sizes; with particles, events are visited in
        order of multiplicity so each chunk pads to a similar length.
        """
        n = len(inp.x)
        sig = self.signature
        order = np.arange(n) if inp.particles is None else \
            np.argsort(inp.particles[1], kind="stable")
        offsets = None
        if inp.particles is not None:
            offsets = np.concatenate([[0], np.cumsum(inp.particles[1])[:-1]])
        # Particle chunks stay small: sorted by multiplicity, each pads only to its own
        # longest event (one big chunk would pad every event to the global maximum).
        for a, b, size in _batches(n, _BATCH if inp.particles is None else _PARTICLE_BATCH):
            idx = order[a:b]
            feed: dict[str, Any] = {}
            if inp.embedded:
                feed["embedding"] = _pad(inp.x[idx], size)
            elif sig.feature_names:
                feed["features"] = _pad(inp.x[idx], size).astype(np.float32)
            if th.shape[1]:
                feed["theta"] = _pad(th[idx], size).astype(np.float32)
            if inp.particles is not None:
                assert offsets is not None
                feed["particles"], feed["mask"] = _pad_particles(
                    inp.particles[0], offsets, inp.particles[1], idx, size)
            yield idx, feed

    def _raw_log_ratio(self, inp: _Inputs, th: np.ndarray) -> np.ndarray:
        import tensorflow as tf

        if self._fn is None:
            self._fn = {}
        if inp.embedded not in self._fn:
            model, loss = self._model_for(inp), self.loss

            @tf.function(autograph=False, reduce_retracing=True)
            def fn(inputs: dict[str, Any]) -> Any:
                # The loss-to-ratio map always runs in float32 (mixed-precision models
                # end in a float32 layer; the cast guards split heads too).
                output = tf.cast(model(inputs, training=False), tf.float32)
                return tf.reshape(loss.log_ratio(output), [-1])

            self._fn[inp.embedded] = fn
        out = np.zeros(len(inp.x))
        for idx, feed in self._batches_of(inp, th):
            out[idx] = self._fn[inp.embedded](feed).numpy()[:len(idx)]
        return out

    def _model_for(self, inp: _Inputs) -> Any:
        if inp.embedded:
            assert self._split is not None
            return self._split[1]
        return self.model

    def log_ratio(self, *, features: Any, theta: Mapping[str, Any] | None = None,
                  calibrated: bool = True) -> np.ndarray:
        """log w(x, θ) for every event, ``[n]`` float64.

        ``theta`` maps each parameter name to a scalar or a per-event array.
        """
        inp = self._prepare(features)
        th = self.theta_matrix(theta, len(inp.x))
        out = self._raw_log_ratio(inp, th)
        if calibrated and self.calibration is not None:
            out = out + self.calibration.offset(th, inp.flat)
        return out

    def log_ratio_and_gradient(self, *, features: Any, theta: Mapping[str, float],
                               calibrated: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """log w at one θ point for all events and ∂ log w / ∂θ, shapes ``[n]`` and ``[n, p]``.

        Gradients come from TensorFlow: θ is tiled per event and differentiated, so each
        row is the event's own derivative.
        """
        import tensorflow as tf

        inp = self._prepare(features)
        th = self.theta_matrix(theta, len(inp.x))
        if not th.shape[1]:
            raise DataError("log_ratio_and_gradient needs a parameterised reweighter")
        if self._grad_fn is None:
            self._grad_fn = {}
        if inp.embedded not in self._grad_fn:
            model, loss = self._model_for(inp), self.loss

            @tf.function(autograph=False, reduce_retracing=True)
            def gfn(inputs: dict[str, Any]) -> Any:
                # Differentiate the [n, 1] output itself: a tf.reshape between the model
                # and the target disconnects the θ-gradient (TF 2.21 / Keras 3).
                thetas = inputs["theta"]
                with tf.GradientTape() as tape:
                    tape.watch(thetas)
                    lw = loss.log_ratio(tf.cast(model({**inputs, "theta": thetas},
                                                      training=False), tf.float32))
                return tf.reshape(lw, [-1]), tape.gradient(lw, thetas)

            self._grad_fn[inp.embedded] = gfn
        n = len(inp.x)
        lw, grad = np.zeros(n), np.zeros((n, th.shape[1]))
        for idx, feed in self._batches_of(inp, th):
            v, g = self._grad_fn[inp.embedded]({key: tf.constant(a) for key, a in feed.items()})
            lw[idx] = v.numpy()[:len(idx)]
            grad[idx] = g.numpy()[:len(idx)]
        if calibrated and self.calibration is not None:
            lw = lw + self.calibration.offset(th, inp.flat)
            grad = grad + self.calibration.offset_gradient(th[0], inp.flat)
        return lw, grad

    # -- calibration ----------------------------------------------------------------------
    def calibrate(self, *, reference_features: Any, points: int, degree: int,
                  rng: np.random.Generator, apply: bool = True, moments: int = 0,
                  target: EventSet | None = None, moment_degree: int = 4) -> dict[str, Any]:
        """Measure c(θ) = log E_reference[w(x, θ)] on a θ grid; fit and (optionally) apply it.

        With ``moments=K > 0`` a moment calibration (module docstring) is fitted first: the
        target's moments m(θ) come from a polynomial regression of degree ``moment_degree``
        on ``target`` (an event set with per-event θ), and the tilt a(θ) that makes the
        reweighted reference reproduce them is fitted by a polynomial of degree ``degree``.

        Returns the measured table (θ points, c, and with moments the reweighted reference's
        moment error before and after calibration).
        """
        from scipy.special import logsumexp

        inp = self._prepare(reference_features)
        n_ref = len(inp.x)
        p = len(self.parameters)
        lo = np.array([q.low for q in self.parameters])
        hi = np.array([q.high for q in self.parameters])
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
            out = self._raw_log_ratio(inp, np.broadcast_to(grid[i], (n_ref, p)))
            if cache is not None:
                cache[i] = out.astype(np.float32)
            return out

        measured: dict[str, Any] = {"theta": grid.tolist(), "names": self.theta_names,
                                    "n_events": n_ref}
        tilt = None
        if moments:
            tilt, tilt_measured = self._fit_tilt(
                inp=inp, raw=raw, grid=grid, design=design, exps=exps, z_centre=centre,
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
            c.append(logsumexp(lw) - np.log(n_ref))
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
            self.calibration = Calibration(degree=degree if p else 0, exponents=exps,
                                           coefficients=coef.tolist(), half_width=half,
                                           centre=centre, measured=measured, tilt=tilt)
        return measured

    def _fit_tilt(self, *, inp: _Inputs, raw: Any, grid: np.ndarray, design: np.ndarray,
                  exps: list[tuple[int, ...]], z_centre: np.ndarray, z_half: np.ndarray,
                  moments: int, target: EventSet | None, moment_degree: int
                  ) -> tuple[Tilt, dict[str, Any]]:
        """a(θ) at each grid point by the convex moment match, then its polynomial fit."""
        if not len(self.parameters):
            raise DataError("a moment calibration needs a parameterised reweighter")
        if target is None:
            raise DataError("a moment calibration needs the target sample (θ per event)")
        names = self.signature.feature_names
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
        th_t = target.theta_matrix(self.theta_names)
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

    # -- persistence ----------------------------------------------------------------------
    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write ``directory`` atomically (a temporary sibling renamed into place)."""
        target = Path(directory)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        tmp.chmod(0o755)  # mkdtemp makes it private; a saved model is meant to be shared
        try:
            model_path = tmp / "model.keras"
            self.model.save(model_path)
            # Keys computed here win over anything carried in from a loaded metadata file.
            carried = {k: v for k, v in self.metadata.items() if k not in _COMPUTED_KEYS}
            meta = {
                **carried,
                "format_version": FORMAT_VERSION,
                "loss": self.loss.name,
                "parameters": self.parameters.to_list(),
                "signature": self.signature.to_dict(),
                "calibration": self.calibration.to_dict() if self.calibration else None,
                "model_sha256": _sha256(model_path),
            }
            (tmp / "metadata.json").write_text(json.dumps(meta, indent=2, default=json_default))
            old = None
            if target.exists():
                old = target.with_name(f".{target.name}.old-{os.getpid()}")
                os.replace(target, old)
            os.replace(tmp, target)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        return target

    @classmethod
    def load(cls, directory: str | os.PathLike[str], *, registry: Any = None) -> Reweighter:
        """Load a saved reweighter; a missing, incomplete or corrupt directory is an error."""
        import keras

        from .registry import get_registry

        d = Path(directory)
        if d.exists() and not d.is_dir():
            raise ReweighterLoadError(f"{d}: not a directory (expected a saved reweighter)")
        if not d.is_dir():
            raise ReweighterLoadError(f"{d}: reweighter directory does not exist")
        meta_path, model_path = d / "metadata.json", d / "model.keras"
        for p in (meta_path, model_path):
            if not p.is_file():
                raise ReweighterLoadError(f"{d}: incomplete reweighter, missing {p.name}")
        try:
            meta = json.loads(meta_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ReweighterLoadError(f"{meta_path}: corrupt metadata: {exc}") from None
        if not isinstance(meta, dict):
            raise ReweighterLoadError(f"{meta_path}: corrupt metadata, expected a JSON object")
        for key in ("format_version", "loss", "parameters", "signature", "model_sha256"):
            if key not in meta:
                raise ReweighterLoadError(f"{meta_path}: corrupt metadata, missing '{key}'")
        if meta["format_version"] != FORMAT_VERSION:
            raise ReweighterLoadError(f"{meta_path}: unsupported format_version "
                                      f"{meta['format_version']} (this ratiofit reads "
                                      f"{FORMAT_VERSION})")
        if _sha256(model_path) != meta["model_sha256"]:
            raise ReweighterLoadError(f"{model_path}: checksum mismatch; the model file is "
                                      "corrupt or was modified")
        reg = registry or get_registry()
        custom, arch = None, None
        if isinstance(meta.get("architecture"), str) and meta["architecture"] in \
                reg.names("architecture"):
            # Custom layers an architecture serialises come from the plugin itself.
            arch = reg.get("architecture", meta["architecture"])
            if callable(getattr(arch, "custom_objects", None)):
                custom = arch.custom_objects()
        try:
            model = keras.saving.load_model(model_path, compile=False, safe_mode=True,
                                            custom_objects=custom)
        except Exception as exc:
            raise ReweighterLoadError(f"{model_path}: cannot load model: {exc}") from None
        loss = reg.get("loss", meta["loss"])
        try:
            cal = Calibration.from_dict(meta["calibration"]) if meta.get("calibration") else None
            parameters = ParameterSet.from_list(meta["parameters"])
            signature = InputSignature.from_dict(meta["signature"])
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            raise ReweighterLoadError(f"{meta_path}: corrupt metadata: {type(exc).__name__}: "
                                      f"{exc}") from None
        return cls(model=model, loss=loss, parameters=parameters, signature=signature,
                   metadata=meta, calibration=cal, architecture=arch)


class AveragedReweighter(_WeightMethods):
    """The mean log-ratio of independently trained reweighters (an ensemble average).

    log w̄(x, θ) = (1/K) Σₖ log wₖ(x, θ), each member with its own calibration. The members'
    training noise is independent, so the average has about 1/K of a member's variance
    around the true ratio (ensembles.md: independent trainings, different seeds); a bias
    common to all members stays. Fits and studies use it exactly like a
    :class:`Reweighter`.

    Parameters
    ----------
    members
        Two or more reweighters reading the same features and parameterised in the same θ.

    Examples
    --------
    >>> from ratiofit.testing import analytic_gaussian_reweighter
    >>> avg = AveragedReweighter(members=[analytic_gaussian_reweighter()] * 2)
    >>> float(avg.log_ratio(features=[[1.0]], theta={"mu": 0.5})[0])  # mu*x - mu^2/2
    0.375
    """

    def __init__(self, *, members: list[Reweighter]) -> None:
        if len(members) < 2:
            raise DataError(f"an averaged reweighter needs at least 2 members, got {len(members)}")
        first = members[0]
        for k, m in enumerate(members[1:], start=1):
            if m.theta_names != first.theta_names:
                raise DataError(f"ensemble member {k} is parameterised in {m.theta_names}, "
                                f"member 0 in {first.theta_names}")
            for what in ("feature_names", "particle_names"):
                if list(getattr(m.signature, what)) != list(getattr(first.signature, what)):
                    raise DataError(f"ensemble member {k} reads {what} "
                                    f"{list(getattr(m.signature, what))}, member 0 reads "
                                    f"{list(getattr(first.signature, what))}")
        self.members = list(members)
        self.parameters = first.parameters
        self.signature = first.signature
        self.loss = first.loss
        self.calibration = None  # each member applies its own
        self.metadata: dict[str, Any] = {
            "averaged_members": len(members),
            "member_seeds": [m.metadata.get("seed") for m in members]}

    @property
    def theta_names(self) -> list[str]:
        return self.parameters.names

    def log_ratio(self, *, features: Any, theta: Mapping[str, Any] | None = None,
                  calibrated: bool = True) -> np.ndarray:
        """Mean of the members' log w(x, θ), ``[n]``."""
        total = self.members[0].log_ratio(features=features, theta=theta, calibrated=calibrated)
        for m in self.members[1:]:
            total = total + m.log_ratio(features=features, theta=theta, calibrated=calibrated)
        return total / len(self.members)

    def log_ratio_and_gradient(self, *, features: Any, theta: Mapping[str, float],
                               calibrated: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Mean log w and mean ∂ log w / ∂θ over the members, ``[n]`` and ``[n, p]``."""
        lw, grad = self.members[0].log_ratio_and_gradient(features=features, theta=theta,
                                                          calibrated=calibrated)
        for m in self.members[1:]:
            lw_k, grad_k = m.log_ratio_and_gradient(features=features, theta=theta,
                                                    calibrated=calibrated)
            lw, grad = lw + lw_k, grad + grad_k
        return lw / len(self.members), grad / len(self.members)


def load_reweighters(directories: list[str | os.PathLike[str]], *, registry: Any = None
                     ) -> Reweighter | AveragedReweighter:
    """One saved reweighter, or the :class:`AveragedReweighter` of several."""
    if not directories:
        raise ReweighterLoadError("no reweighter directory given")
    members = [Reweighter.load(d, registry=registry) for d in directories]
    if len(members) == 1:
        return members[0]
    try:
        return AveragedReweighter(members=members)
    except DataError as exc:
        raise ReweighterLoadError(f"{', '.join(str(d) for d in directories)}: {exc}") from None


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


class _Inputs(NamedTuple):
    """Per-event flat features ``[n, d]`` and, optionally, (flat particles, counts); or,
    with ``embedded``, the θ-free embedding ``[n, e]`` of a split architecture."""

    x: np.ndarray
    particles: tuple[np.ndarray, np.ndarray] | None
    embedded: bool = False
    #: The flat features themselves (kept for a moment calibration when ``x`` is embedded).
    flat: np.ndarray | None = None


def _pad_particles(flat: np.ndarray, offsets: np.ndarray, counts: np.ndarray, idx: np.ndarray,
                   size: int) -> tuple[np.ndarray, np.ndarray]:
    """Events ``idx`` of compact particles → ``[size, m, k]`` zero-padded and ``[size, m]`` mask.

    ``m`` is the chunk's longest event rounded up to a multiple of 8 (fewer shapes to trace).
    """
    c = counts[idx]
    m = max(8, int(-(-int(c.max(initial=1)) // 8) * 8))
    dense = np.zeros((size, m, flat.shape[1]), np.float32)
    mask = np.zeros((size, m), np.float32)
    rows = np.repeat(np.arange(len(idx)), c)
    starts = np.cumsum(c) - c
    cols = np.arange(int(c.sum())) - np.repeat(starts, c)
    src = np.repeat(offsets[idx] - starts, c) + np.arange(int(c.sum()))
    dense[rows, cols] = flat[src]
    mask[rows, cols] = 1.0
    return dense, mask


def _batches(n: int, chunk: int = _BATCH) -> list[tuple[int, int, int]]:
    """(start, stop, padded size) chunks; padding to a few static sizes avoids retracing."""
    out = []
    for a in range(0, n, chunk):
        b = min(a + chunk, n)
        out.append((a, b, max(min(1024, chunk), 1 << int(np.ceil(np.log2(b - a))))))
    return out


def _pad(a: np.ndarray, size: int) -> np.ndarray:
    if len(a) == size:
        return a
    return np.concatenate([a, np.zeros((size - len(a), *a.shape[1:]), dtype=a.dtype)])


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


