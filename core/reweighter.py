"""Reweighter: a trained classifier seen as a likelihood ratio.

``log_ratio(features, theta)`` returns log w(x, θ) = log p(x|θ) − log p(x|θ₀) (the one
convention, DESIGN.md); ``weights = exp(log_ratio)`` makes reference events look like
target events. A reweighter is saved as a directory: ``model.keras`` (loaded with Keras
``safe_mode``) and ``metadata.json`` carrying the SHA-256 of the model file.

Calibration (normalisation and moments) lives in :mod:`ratiofit.calibration`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from ._atomic import file_sha256, json_default
from .calibration import Calibration, Tilt
from .errors import DataError, ReweighterLoadError
from .events import EventSet
from .parameters import ParameterSet
from .plugin_api import InputSignature
from .weights import kish_ess

__all__ = ["AveragedReweighter", "Calibration", "Reweighter", "Tilt", "load_reweighters"]

#: 2: ``metadata_sha256`` covers the metadata itself (format 1, without it, still loads).
FORMAT_VERSION = 2
_READABLE_FORMATS = (1, 2)
_COMPUTED_KEYS = ("format_version", "loss", "parameters", "signature", "calibration",
                  "model_sha256", "metadata_sha256")
_BATCH = 65536
_PARTICLE_BATCH = 2048


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
        """Kish effective sample size (Σw)²/Σw² of w(x, θ) times ``event_weights`` (signed
        ones as they are: :func:`ratiofit.weights.kish_ess`), max and mean weight,
        non-finite and clipped counts."""
        lw = self.log_ratio(features=features, theta=theta)
        with np.errstate(over="ignore"):  # an overflow is counted below, as n_nonfinite
            w = np.exp(lw)
        n_inf = int(np.count_nonzero(~np.isfinite(w)))
        clipped = int(np.count_nonzero(w > clip)) if clip is not None else 0
        if clip is not None:
            w = np.minimum(w, clip)
        if event_weights is not None:
            w = w * event_weights
        finite = w[np.isfinite(w)]
        ess = kish_ess(finite)
        out: dict[str, Any] = {
            "n_events": len(w), "ess": ess, "ess_fraction": ess / max(len(w), 1),
            "max_weight": float(finite.max()) if finite.size else float("nan"),
            "mean_weight": float(finite.mean()) if finite.size else float("nan"),
            "n_nonfinite": n_inf, "n_clipped": clipped,
            "fraction_clipped": clipped / max(len(w), 1)}
        outside = getattr(self, "outside_training_range", None)
        if outside is not None:
            far = int(outside(features))
            out["n_outside_training_range"] = far
            if far:
                out["warning"] = (f"{far} of {len(w)} events lie more than one training span "
                                  "outside the features' training range: their weights are "
                                  "extrapolations")
        return out


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
        _check_float32(x, self.signature.feature_names)
        return x

    def outside_training_range(self, features: Any) -> int:
        """Events with a feature more than one training span beyond the training events'
        [min, max] (metadata ``feature_ranges``): the network extrapolates there, and its
        ratio means nothing (at x = 1e30 it may even change sign)."""
        ranges = self.metadata.get("feature_ranges") or {}
        names = list(self.signature.feature_names)
        if not ranges or not names or not all(n in ranges for n in names):
            return 0
        x = features.feature_columns(names) if isinstance(features, EventSet) else \
            self._features(features)
        lo = np.array([ranges[n][0] for n in names])
        hi = np.array([ranges[n][1] for n in names])
        span = np.maximum(hi - lo, 1e-12)
        far = (x < lo - span) | (x > hi + span)
        return int(np.count_nonzero(far.any(axis=1)))

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
            _check_float32(x, sig.feature_names)
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
                  target: EventSet | None = None, moment_degree: int = 4,
                  reference_weights: Any = None) -> dict[str, Any]:
        """Measure c(θ) = log E_reference[w(x, θ)] on a θ grid; fit and (optionally) apply
        it (:func:`ratiofit.calibration.calibrate`, which documents the arguments)."""
        from .calibration import calibrate

        return calibrate(self, reference_features=reference_features, points=points,
                         degree=degree, rng=rng, apply=apply, moments=moments, target=target,
                         moment_degree=moment_degree, reference_weights=reference_weights)

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
                "model_sha256": file_sha256(model_path),
            }
            meta["metadata_sha256"] = _metadata_sha256(meta)
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
        if meta["format_version"] not in _READABLE_FORMATS:
            raise ReweighterLoadError(f"{meta_path}: unsupported format_version "
                                      f"{meta['format_version']} (this ratiofit reads "
                                      f"{', '.join(map(str, _READABLE_FORMATS))})")
        if meta["format_version"] >= 2 and meta.get("metadata_sha256") != _metadata_sha256(meta):
            # an edited calibration coefficient, loss or parameter range would change fits
            raise ReweighterLoadError(f"{meta_path}: checksum mismatch; the metadata is "
                                      "corrupt or was edited (metadata_sha256)")
        if file_sha256(model_path) != meta["model_sha256"]:
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


def _check_float32(x: np.ndarray, names: Any) -> None:
    """The network computes in float32: a feature beyond its range would become inf (and
    the error would surface far away, as non-finite weights)."""
    big = np.abs(x) > np.finfo(np.float32).max
    if big.any():
        col = int(np.argmax(big.any(axis=0)))
        name = list(names)[col] if len(list(names)) > col else str(col)
        raise DataError(f"feature '{name}' has values beyond float32's range "
                        f"(|x| > 3.4e38): the network computes in float32; rescale it")


def _metadata_sha256(meta: Mapping[str, Any]) -> str:
    """SHA-256 of the metadata's canonical JSON, without the checksum itself."""
    body = {k: v for k, v in meta.items() if k != "metadata_sha256"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), default=json_default)
    return hashlib.sha256(text.encode()).hexdigest()



