"""Train a classifier from (architecture, loss, reference and target EventSets) → Reweighter.

Label 0 = reference, label 1 = target. For a parameterised reweighter the reference
events receive θ drawn from the target's per-event θ (DCTR pairing,
:func:`~ratiofit.events.assign_theta_from`). Classes are re-weighted to equal total
weight, so the learned ratio needs no prior correction (dctr.md Eq. A8); the factor
applied is recorded. Data are shuffled *before* the validation split (Keras'
``validation_split`` takes the last rows unshuffled, which would make the validation
set one class).

Event weights enter the loss per event (Keras' ``sample_weight``) and the input
standardisation (the weighted mean and standard deviation of the training split,
:func:`~ratiofit.weights.weighted_standardisation`). Negative weights are taken as they
are: every loss is a sum of per-event terms, L = Σᵢ wᵢ ℓ(f(xᵢ), yᵢ), linear in the
weights, so a signed sample that represents a density gives an unbiased estimate of the
expected loss and the same minimiser, f* = p₁/(p₀ + p₁) for BCE. Known caveat: one
minibatch may hold a negative (or tiny) total weight, so that step's gradient is noisy
or points the wrong way; it is still an unbiased estimate of the full gradient, since
Keras scales each batch by its event count (Σ wᵢ ℓᵢ / B), not by its weight total. The
class balance is therefore computed once from each class's total over the whole sample,
never per batch. A network flexible enough to isolate single events can also lower the
loss of a negative-weight event by pushing its own output to the wrong extreme (the
signed loss is not bounded below event by event); early stopping on the (weighted)
validation loss guards against it, and tests/test_weights.py measures that 10 %
negative weights reproduce the unsigned result within its statistical error. Each
sample's weights must be finite with a positive total (one-line error naming the sample).

Interrupted trainings resume: with a checkpoint directory, model, optimizer and epoch are
backed up after every epoch (``keras.callbacks.BackupAndRestore``) together with the
early-stopping state, and a rerun continues from there. A checkpoint is bound to what it
belongs to: ``state.json``, written atomically after each complete epoch, records a
fingerprint of the training (architecture and its options, loss, training settings, seed,
parameters, input signature and a digest of the training arrays), the epoch, the history
so far and the SHA-256 of each backup file. A rerun resumes only where all of them agree;
a checkpoint of another training (a changed spec or seed) or a torn one (killed while it
was written) is discarded with a warning and the training starts afresh. The history and
``epochs_run`` count every epoch, before and after a resume.

A training whose loss or outputs become NaN or infinite (it diverged, e.g. at too large a
learning rate) stops at once and raises a one-line :class:`~ratiofit.errors.DataError`;
nothing is saved.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ._atomic import file_sha256, write_text_atomic
from .console import log
from .errors import DataError
from .events import EventSet, assign_theta_from
from .parameters import ParameterSet
from .plugin_api import InputSignature
from .reweighter import Reweighter, _check_float32
from .spec import TrainingSpec
from .weights import check_weights, weighted_standardisation

__all__ = ["TrainingData", "prepare_training_data", "train_reweighter"]


class TrainingData:
    """Shuffled, split arrays ready for ``model.fit`` plus the input signature.

    Flat inputs are split into ``x``/``x_val``. With particles, ``particles`` holds a
    ragged tensor over *all* events, ``flat_all``/``y_all``/``w_all`` the per-event arrays
    over all events, and ``train_index``/``validation_index`` the split; batches are padded
    on the fly (:mod:`ratiofit.batching`). Where rows are not events (exact-weight
    training: one row per event and grid point), ``row_event`` maps each row of those
    per-row arrays to its event's particles; ``exact`` is then the grid's summary.
    """

    def __init__(self, *, x: dict[str, np.ndarray], y: np.ndarray, w: np.ndarray,
                 x_val: dict[str, np.ndarray], y_val: np.ndarray, w_val: np.ndarray,
                 signature: InputSignature, class_factor: float, particles: Any = None,
                 flat_all: dict[str, np.ndarray] | None = None,
                 y_all: np.ndarray | None = None, w_all: np.ndarray | None = None,
                 train_index: np.ndarray | None = None,
                 validation_index: np.ndarray | None = None,
                 row_event: np.ndarray | None = None,
                 exact: dict[str, Any] | None = None) -> None:
        self.x, self.y, self.w = x, y, w
        self.x_val, self.y_val, self.w_val = x_val, y_val, w_val
        self.signature = signature
        self.class_factor = class_factor
        self.particles = particles
        self.flat_all = flat_all or {}
        self.y_all, self.w_all = y_all, w_all
        self.train_index, self.validation_index = train_index, validation_index
        self.row_event, self.exact = row_event, exact


def prepare_training_data(*, reference: EventSet, target: EventSet, parameters: ParameterSet,
                          validation_fraction: float, class_balance: bool,
                          rng: np.random.Generator, features: Sequence[str] | None = None,
                          particles: Sequence[str] = (), labels: str = "sample"
                          ) -> TrainingData:
    """Pair, label, weight, shuffle and split the two samples.

    ``features`` picks the flat features the network sees (``None``: all of them, which
    must then agree between the samples); ``particles`` the per-particle fields (none by
    default). ``labels``: ``sample`` classifies the reference against the target;
    ``exact`` trains on the reference's exact per-event weights instead (soft labels,
    :mod:`ratiofit.exact_labels`; the target is not used), ``both`` on the two together.
    """
    if labels != "sample":
        return _prepare_exact(reference=reference, target=target, parameters=parameters,
                              validation_fraction=validation_fraction,
                              class_balance=class_balance, rng=rng, features=features,
                              particles=particles, both=labels == "both")
    if features is None:
        if reference.feature_names != target.feature_names:
            raise DataError(f"reference features {reference.feature_names} differ from target "
                            f"features {target.feature_names}")
        features = reference.feature_names
    features = tuple(features)
    for role, events in (("reference", reference), ("target", target)):
        check_weights(events.weights, n=len(events), what=f"training {role} {_origin(events)}")
    weighted = reference.weights is not None or target.weights is not None
    names = parameters.names
    if names:
        reference = assign_theta_from(reference, varied=target, names=names, rng=rng)
    th_ref = reference.theta_matrix(names)
    th_tgt = target.theta_matrix(names)
    for p, col in zip(parameters, np.concatenate([th_ref, th_tgt]).T, strict=True):
        if not p.contains(col):
            raise DataError(f"theta.{p.name}: training values outside the range "
                            f"[{p.low}, {p.high}]")
    feats = np.concatenate([reference.feature_columns(features),
                            target.feature_columns(features)])
    theta = np.concatenate([th_ref, th_tgt])
    y = np.concatenate([np.zeros(len(reference)), np.ones(len(target))])
    w_ref, w_tgt = reference.event_weights, target.event_weights
    class_factor = 1.0
    if class_balance:
        # Equal total weight per class; mean weight stays 1 overall. The factors come from
        # each class's total over the whole sample, never per batch (a batch of signed
        # weights may sum to anything; module docstring).
        total = len(y) / 2
        w_ref, w_tgt = w_ref * (total / w_ref.sum()), w_tgt * (total / w_tgt.sum())
        class_factor = float(reference.event_weights.sum() / target.event_weights.sum())
    w = np.concatenate([w_ref, w_tgt])
    perm = rng.permutation(len(y))
    n_val = round(validation_fraction * len(y))
    tr, va = perm[n_val:], perm[:n_val]
    _check_float32(feats, features)
    # the events' own weights, each sample's scaled to a mean of 1 (its overall scale, a
    # cross-section in pb, does not matter; each sample counts as many events as it has):
    # unit weights give numpy's unweighted mean and std, bit for bit; an importance-weighted
    # sample the moments of the distribution it represents
    w_events = np.concatenate([e.event_weights * (len(e) / e.event_weights.sum())
                               for e in (reference, target)]) if weighted else None
    what = f"the training events ({_origin(reference)} and {_origin(target)})"
    mean, std = weighted_standardisation(feats[tr], None if w_events is None
                                         else w_events[tr], what=what)
    part_mean: tuple[float, ...] = ()
    part_std: tuple[float, ...] = ()
    ragged = None
    if particles:
        flat_ref, n_ref = reference.particle_arrays(particles)
        flat_tgt, n_tgt = target.particle_arrays(particles)
        flat = np.concatenate([flat_ref, flat_tgt])
        counts = np.concatenate([n_ref, n_tgt])
        ragged, part_mean, part_std = _standardised_particles(
            flat, counts, np.isin(np.arange(len(y)), tr), w_events, particles, what)
    signature = _signature(features, mean, std, names, parameters, particles, part_mean,
                           part_std)

    def inputs(idx: np.ndarray) -> dict[str, np.ndarray]:
        out = {}
        if features:
            out["features"] = feats[idx].astype(np.float32)
        if names:
            out["theta"] = theta[idx].astype(np.float32)
        return out

    f32 = np.float32
    if ragged is not None:
        return TrainingData(x={}, y=y[tr].astype(f32), w=w[tr].astype(f32), x_val={},
                            y_val=y[va].astype(f32), w_val=w[va].astype(f32),
                            signature=signature, class_factor=class_factor, particles=ragged,
                            flat_all=inputs(np.arange(len(y))), y_all=y.astype(f32),
                            w_all=w.astype(f32), train_index=tr, validation_index=va)
    return TrainingData(x=inputs(tr), y=y[tr].astype(f32), w=w[tr].astype(f32), x_val=inputs(va),
                        y_val=y[va].astype(f32), w_val=w[va].astype(f32), signature=signature,
                        class_factor=class_factor)


def _prepare_exact(*, reference: EventSet, target: EventSet, parameters: ParameterSet,
                   validation_fraction: float, class_balance: bool, rng: np.random.Generator,
                   features: Sequence[str] | None, particles: Sequence[str], both: bool
                   ) -> TrainingData:
    """Rows for exact-weight training (:mod:`ratiofit.exact_labels`): every reference event
    at every grid point with the soft label w/(1 + w) and weight e(1 + w); with ``both``,
    also the reference-vs-target rows of :func:`prepare_training_data`, the two parts
    weighted to equal totals (any positive mix has the same optimum).

    The validation split is by *event*: all rows of an event fall on one side, so the
    validation loss is that of events the network never trained on. Features (and
    particles) are standardised over the training events, each counted once with its own
    weight, as in the classification.
    """
    from .exact_labels import exact_grid, soft_labels

    samples = (reference, target) if both else (reference,)
    if features is None:
        if both and reference.feature_names != target.feature_names:
            raise DataError(f"reference features {reference.feature_names} differ from target "
                            f"features {target.feature_names}")
        features = reference.feature_names
    features = tuple(features)
    for role, events in zip(("reference", "target"), samples, strict=False):
        check_weights(events.weights, n=len(events), what=f"training {role} {_origin(events)}")
    names = parameters.names
    grid = exact_grid(reference, parameters, cover_all=not both)
    n_ref, k = len(reference), len(grid.names)
    e_ref = reference.event_weights
    # exact rows: event i at point k, row i*K + k
    w_exact = grid.weights.reshape(-1)
    y_exact, s_exact = soft_labels(w_exact)
    s_exact = s_exact * np.repeat(e_ref, k)
    rows_event = np.repeat(np.arange(n_ref), k)
    rows_theta = np.tile(grid.theta, (n_ref, 1))
    n_exact_rows = len(rows_event)
    class_factor = 1.0
    if both:
        paired = assign_theta_from(reference, varied=target, names=names, rng=rng)
        w_ref, w_tgt = reference.event_weights, target.event_weights
        if class_balance:
            total = (len(reference) + len(target)) / 2
            w_ref, w_tgt = w_ref * (total / w_ref.sum()), w_tgt * (total / w_tgt.sum())
            class_factor = float(reference.event_weights.sum() / target.event_weights.sum())
        s_sample = np.concatenate([w_ref, w_tgt])
        # the two parts carry equal total weight
        s_exact = s_exact * (s_sample.sum() / s_exact.sum())
        rows_event = np.concatenate([rows_event, np.arange(n_ref + len(target))])
        rows_theta = np.concatenate([rows_theta, paired.theta_matrix(names),
                                     target.theta_matrix(names)])
        y = np.concatenate([y_exact, np.zeros(n_ref), np.ones(len(target))])
        w = np.concatenate([s_exact, s_sample])
    else:
        y, w = y_exact, s_exact * (n_exact_rows / s_exact.sum())  # mean row weight 1
    for p, col in zip(parameters, rows_theta.T, strict=True):
        if not p.contains(col):
            raise DataError(f"theta.{p.name}: training values outside the range "
                            f"[{p.low}, {p.high}]")
    n_events = sum(len(s) for s in samples)
    perm = rng.permutation(n_events)
    n_val = round(validation_fraction * n_events)
    in_validation = np.zeros(n_events, bool)
    in_validation[perm[:n_val]] = True
    row_perm = rng.permutation(len(y))
    tr = row_perm[~in_validation[rows_event[row_perm]]]
    va = row_perm[in_validation[rows_event[row_perm]]]
    feats = np.concatenate([s.feature_columns(features) for s in samples])
    _check_float32(feats, features)
    weighted = any(s.weights is not None for s in samples)
    w_events = np.concatenate([s.event_weights * (len(s) / s.event_weights.sum())
                               for s in samples]) if weighted else None
    train_events = np.flatnonzero(~in_validation)
    what = f"the training events ({' and '.join(_origin(s) for s in samples)})"
    mean, std = weighted_standardisation(feats[train_events], None if w_events is None
                                         else w_events[train_events], what=what)
    part_mean: tuple[float, ...] = ()
    part_std: tuple[float, ...] = ()
    ragged = None
    if particles:
        parts = [s.particle_arrays(particles) for s in samples]
        flat = np.concatenate([p[0] for p in parts])
        counts = np.concatenate([p[1] for p in parts])
        ragged, part_mean, part_std = _standardised_particles(
            flat, counts, ~in_validation, w_events, particles, what)
    signature = _signature(features, mean, std, names, parameters, particles, part_mean,
                           part_std)
    exact = {**grid.summary(e_ref), "rows": n_exact_rows, "labels": "both" if both else "exact"}

    def inputs(idx: np.ndarray) -> dict[str, np.ndarray]:
        out = {}
        if features:
            out["features"] = feats[rows_event[idx]].astype(np.float32)
        out["theta"] = rows_theta[idx].astype(np.float32)
        return out

    f32 = np.float32
    if ragged is not None:
        return TrainingData(x={}, y=y[tr].astype(f32), w=w[tr].astype(f32), x_val={},
                            y_val=y[va].astype(f32), w_val=w[va].astype(f32),
                            signature=signature, class_factor=class_factor, particles=ragged,
                            flat_all=inputs(np.arange(len(y))), y_all=y.astype(f32),
                            w_all=w.astype(f32), train_index=tr, validation_index=va,
                            row_event=rows_event, exact=exact)
    return TrainingData(x=inputs(tr), y=y[tr].astype(f32), w=w[tr].astype(f32), x_val=inputs(va),
                        y_val=y[va].astype(f32), w_val=w[va].astype(f32), signature=signature,
                        class_factor=class_factor, exact=exact)


def _standardised_particles(flat: np.ndarray, counts: np.ndarray, train_events: np.ndarray,
                            w_events: np.ndarray | None, particles: Sequence[str], what: str
                            ) -> tuple[Any, tuple[float, ...], tuple[float, ...]]:
    """The ragged particles of all events and their standardisation over the real particles
    of the training events only (``train_events``, a mask per event; each particle weighted
    by its event's weight)."""
    from .batching import ragged_particles

    in_train = np.repeat(train_events, counts)
    if in_train.any():
        pm, ps = weighted_standardisation(
            flat[in_train], None if w_events is None
            else np.repeat(w_events, counts)[in_train], what=f"the particles of {what}")
    else:
        pm, ps = np.zeros(len(particles)), np.ones(len(particles))
    return ragged_particles(flat, counts), tuple(pm.tolist()), tuple(ps.tolist())


def _signature(features: Sequence[str], mean: np.ndarray, std: np.ndarray,
               names: Sequence[str], parameters: ParameterSet, particles: Sequence[str],
               part_mean: tuple[float, ...], part_std: tuple[float, ...]) -> InputSignature:
    """The network's input signature from the standardisations."""
    return InputSignature(
        feature_names=tuple(features), feature_mean=tuple(mean.tolist()),
        feature_std=tuple(std.tolist()), theta_names=tuple(names),
        theta_centre=tuple(p.centre for p in parameters),
        theta_half_width=tuple(p.half_width for p in parameters),
        particle_names=tuple(particles), particle_mean=part_mean, particle_std=part_std)


def _origin(events: EventSet) -> str:
    """How messages name a sample (its provenance's origin, e.g. "sample 'nominal'")."""
    prov = events.provenance or {}
    return str(prov.get("origin", prov.get("source", "events")))


def _resampling_dataset(data: TrainingData, *, batch_size: int, epochs: int, seed: int
                        ) -> tuple[Any, int]:
    """Shuffled batches in which every reference event gets a fresh θ at every epoch.

    p(x|θ₀) does not depend on θ, so any θ may be paired with a reference event; drawing
    anew from the target's θ values each time shows the network many more (x, θ)
    reference pairs than there are reference events. Each epoch is a fresh permutation of
    all events cut into batches (nothing dropped); draws use seeded TensorFlow ops.
    Returns the dataset and the number of steps per epoch.
    """
    import tensorflow as tf

    n = len(data.y)
    steps = int(np.ceil(n / batch_size))
    features = tf.constant(data.x["features"])
    theta = tf.constant(data.x["theta"])
    y, w = tf.constant(data.y), tf.constant(data.w)
    pool = tf.constant(data.x["theta"][data.y == 1])
    n_pool = int(pool.shape[0])

    def epoch(_: Any) -> Any:
        perm = tf.random.shuffle(tf.range(n, dtype=tf.int64), seed=seed)

        def batch(i: Any) -> Any:
            idx = perm[i * batch_size:tf.minimum((i + 1) * batch_size, n)]
            yb = tf.gather(y, idx)
            fresh = tf.gather(pool, tf.random.uniform(tf.shape(idx), 0, n_pool, dtype=tf.int64,
                                                      seed=seed))
            th = tf.where(tf.expand_dims(yb, -1) == 0, fresh, tf.gather(theta, idx))
            return {"features": tf.gather(features, idx), "theta": th}, yb, tf.gather(w, idx)

        return tf.data.Dataset.range(steps).map(batch)

    ds = tf.data.Dataset.range(epochs).flat_map(epoch).prefetch(2)
    return ds, steps


def _callbacks(*, checkpoint_dir: Path | None, patience: int, epochs: int, progress: bool,
               restore_best: bool) -> tuple[list[Any], Any]:
    import keras

    class EarlyStopping(keras.callbacks.Callback):
        """Stop after ``patience`` epochs without improvement; restore the best weights.

        Its state is persisted with the checkpoint so that a resumed run continues it.
        """

        def __init__(self) -> None:
            super().__init__()
            self.best = np.inf
            self.best_epoch = -1
            self.wait = 0
            self.best_weights: list[Any] | None = None
            self.state_file = checkpoint_dir / "early_stopping.json" if checkpoint_dir else None
            self.weights_file = checkpoint_dir / "best.weights.h5" if checkpoint_dir else None

        def on_train_begin(self, logs: Any = None) -> None:
            if self.state_file is not None and self.state_file.exists():
                state = json.loads(self.state_file.read_text())
                self.best, self.best_epoch, self.wait = state["best"], state["best_epoch"], \
                    state["wait"]
                if self.weights_file is not None and self.weights_file.exists():
                    current = self.model.get_weights()
                    self.model.load_weights(self.weights_file)
                    self.best_weights = self.model.get_weights()
                    self.model.set_weights(current)

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            val = float((logs or {}).get("val_loss", np.inf))
            if val < self.best:
                self.best, self.best_epoch, self.wait = val, epoch, 0
                self.best_weights = self.model.get_weights()
                if self.weights_file is not None:
                    tmp = self.weights_file.with_suffix(".tmp.weights.h5")
                    self.model.save_weights(tmp)
                    os.replace(tmp, self.weights_file)
            else:
                self.wait += 1
                if self.wait >= patience:
                    self.model.stop_training = True
            if self.state_file is not None:
                tmp = self.state_file.with_suffix(".tmp")
                tmp.write_text(json.dumps({"best": self.best, "best_epoch": self.best_epoch,
                                           "wait": self.wait}))
                os.replace(tmp, self.state_file)

        def on_train_end(self, logs: Any = None) -> None:
            if restore_best and self.best_weights is not None:
                self.model.set_weights(self.best_weights)

    class Progress(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            from tqdm import tqdm

            self.bar = tqdm(total=epochs, desc="training", unit="epoch", file=sys.stderr,
                            leave=False)

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            logs = logs or {}
            self.bar.n = epoch + 1
            self.bar.set_postfix(loss=f"{logs.get('loss', np.nan):.4f}",
                                 val_loss=f"{logs.get('val_loss', np.nan):.4f}")

        def on_train_end(self, logs: Any = None) -> None:
            self.bar.close()

    es = EarlyStopping()
    # a diverged step ends the training at once (train_reweighter then refuses the result)
    cbs: list[Any] = [keras.callbacks.TerminateOnNaN()]
    if checkpoint_dir is not None:
        cbs.append(keras.callbacks.BackupAndRestore(str(checkpoint_dir / "backup"),
                                                    delete_checkpoint=False))
    cbs.append(es)
    if progress:
        cbs.append(Progress())
    return cbs, es


def _feature_ranges(data: TrainingData) -> dict[str, list[float]]:
    """Per flat feature, [min, max] over the training events (for the diagnostics'
    count of events evaluated outside them)."""
    parts = [a["features"] for a in (data.x, data.x_val, data.flat_all) if "features" in a]
    if not parts or not data.signature.feature_names:
        return {}
    x = np.concatenate(parts)
    return {n: [float(x[:, i].min()), float(x[:, i].max())]
            for i, n in enumerate(data.signature.feature_names)}


def _recorder(ckpt: Path | None, fingerprint: str, earlier: list[dict[str, float]]) -> Any:
    """A callback keeping every epoch's logs (those before a resume included) and, with a
    checkpoint, writing ``state.json`` atomically after each complete epoch (it runs
    after the backup and the early-stopping state are written)."""
    import keras

    class Recorder(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.epochs: list[dict[str, float]] = list(earlier)

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            self.epochs.append({k: float(v) for k, v in (logs or {}).items()})
            if ckpt is None:
                return
            files = {str(p.relative_to(ckpt)): file_sha256(p) for p in _checkpoint_files(ckpt)}
            state = {"fingerprint": fingerprint, "epoch": epoch + 1, "history": self.epochs,
                     "files": files}
            write_text_atomic(ckpt / "state.json", json.dumps(state))

    return Recorder()


def _divergence(history: Mapping[str, list[float]], model: Any, data: TrainingData
                ) -> str | None:
    """Why the training diverged (a non-finite loss, or non-finite outputs on validation
    events), or ``None``."""
    for key in ("loss", "val_loss"):
        values = history.get(key, [])
        bad = [i for i, v in enumerate(values) if not np.isfinite(v)]
        if bad:
            return f"{key} is {values[bad[0]]} at epoch {bad[0] + 1}"
    if not history.get("loss"):
        return "loss is nan in the first epoch"  # TerminateOnNaN stopped before its end
    probe: Any = None
    if data.particles is None and len(data.y_val):
        probe = {k: v[:1024] for k, v in data.x_val.items()}
    if probe is not None:
        out = np.asarray(model(probe, training=False))
        if not np.all(np.isfinite(out)):
            return "the network's outputs are not finite"
    else:
        weights = model.get_weights()
        if not all(np.all(np.isfinite(w)) for w in weights):
            return "the network's weights are not finite"
    return None


def _digest(*arrays: Any) -> str:
    """SHA-256 over the bytes of numpy arrays (and of dicts of them, by sorted key)."""
    import hashlib

    h = hashlib.sha256()
    for a in arrays:
        if a is None:
            h.update(b"none")
        elif isinstance(a, dict):
            for k in sorted(a):
                h.update(k.encode())
                h.update(np.ascontiguousarray(a[k]).tobytes())
        else:
            h.update(np.ascontiguousarray(np.asarray(a)).tobytes())
    return h.hexdigest()


def _training_fingerprint(*, data: TrainingData, architecture: Any,
                          architecture_options: Mapping[str, Any], loss: Any,
                          training: TrainingSpec, seed: int, parameters: ParameterSet) -> str:
    """What a checkpoint belongs to: every input that changes the trained weights."""
    import hashlib

    from ._atomic import json_default

    particles = None
    if data.particles is not None:  # a ragged tensor: its row lengths and values
        particles = {"lengths": data.particles.row_lengths().numpy(),
                     "values": data.particles.flat_values.numpy()}
    body = {"architecture": getattr(architecture, "name", type(architecture).__name__),
            "architecture_options": dict(architecture_options),
            "loss": getattr(loss, "name", type(loss).__name__),
            "training": dict(training.__dict__), "seed": int(seed),
            "parameters": parameters.to_list(), "signature": data.signature.to_dict(),
            "data": _digest(data.x, data.y, data.w, data.x_val, data.y_val, data.w_val,
                            data.flat_all or None, data.y_all, data.w_all, particles,
                            *(() if data.row_event is None else (data.row_event,)))}
    text = json.dumps(body, sort_keys=True, default=json_default)
    return hashlib.sha256(text.encode()).hexdigest()


def _checkpoint_files(ckpt: Path) -> list[Path]:
    """The files a resume reads (Keras' backup and the early-stopping state)."""
    return sorted(p for p in ckpt.rglob("*") if p.is_file() and p.name != "state.json"
                  and ".tmp" not in p.name)


def _open_checkpoint(ckpt: Path, fingerprint: str) -> list[dict[str, float]]:
    """Resume ``ckpt`` if it belongs to this training and is whole: return the history
    of its complete epochs; otherwise discard it (saying why) and return ``[]``."""
    if not ckpt.exists() or not any(ckpt.iterdir()):
        ckpt.mkdir(parents=True, exist_ok=True)
        return []
    why = None
    try:
        state = json.loads((ckpt / "state.json").read_text())
    except (OSError, ValueError):
        state, why = None, "no complete epoch is recorded in it (state.json missing or torn)"
    if state is not None:
        if state.get("fingerprint") != fingerprint:
            why = ("it belongs to another training (the spec, seed, architecture or data "
                   "differ)")
        else:
            recorded = state.get("files", {})
            present = {str(p.relative_to(ckpt)): p for p in _checkpoint_files(ckpt)}
            if set(recorded) - set(present) or any(
                    file_sha256(present[name]) != digest for name, digest in recorded.items()):
                why = "it is torn (a file differs from what its last complete epoch wrote)"
    if why is None:
        assert state is not None
        log.info("training: resuming %s after epoch %d", ckpt, state["epoch"])
        return list(state["history"])
    log.warning("training: discarding the checkpoint in %s: %s; training from the start",
                ckpt, why)
    shutil.rmtree(ckpt, ignore_errors=True)
    ckpt.mkdir(parents=True, exist_ok=True)
    return []


@contextlib.contextmanager
def _precision(mixed: bool) -> Iterator[None]:
    """Build under Keras' ``mixed_float16`` policy (float16 compute, float32 variables);
    the global policy is restored afterwards so other models are unaffected."""
    import keras

    if not mixed:
        yield
        return
    before = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        yield
    finally:
        keras.config.set_dtype_policy(before)


def _float32_output(model: Any) -> Any:
    """The model with a float32 identity layer appended: the loss and the loss-to-ratio
    map (ensembles.md Table I) then run in float32, where e.g. log f − log(1 − f) near
    f = 1 keeps its precision."""
    import keras

    out = keras.layers.Activation("linear", dtype="float32", name="output_float32")(
        model.outputs[0])
    return keras.Model(inputs=model.inputs, outputs=out, name=model.name)


def _device_scope() -> Any:
    """``tf.distribute.MirroredStrategy`` (data-parallel, one replica per GPU) when more
    than one GPU is visible; otherwise the default device placement (one GPU is used
    without any code change, none means CPU)."""
    import tensorflow as tf

    if len(tf.config.list_physical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy().scope()
    return contextlib.nullcontext()


def train_reweighter(*, reference: EventSet, target: EventSet, parameters: ParameterSet,
                     architecture: Any, architecture_options: Mapping[str, Any], loss: Any,
                     training: TrainingSpec, seed: int, checkpoint_dir: str | Path | None = None,
                     progress: bool = False, extra_callbacks: list[Any] | None = None,
                     features: Sequence[str] | None = None, particles: Sequence[str] = (),
                     labels: str = "sample") -> Reweighter:
    """Train a reweighter; same inputs and seed → same weights.

    Parameters
    ----------
    reference, target
        Label 0 and label 1 samples. The target carries per-event θ for ``parameters``.
    parameters
        The θ the reweighter is parameterised in (empty for a fixed-θ reweighter).
    architecture, loss
        Plugin objects (from the registry).
    training
        Epochs, batch size, learning rate and schedule, validation fraction, patience.
    checkpoint_dir
        Where per-epoch backups go; an existing backup is resumed.
    features, particles
        What the network sees: flat feature names (``None``: all) and particle fields.
    labels
        ``sample``: reference against target; ``exact``: the reference's exact per-event
        weights as soft labels (:mod:`ratiofit.exact_labels`); ``both``: the two.
    """
    import keras

    if labels != "sample" and training.resample_reference_theta:
        raise DataError(f"training.resample_reference_theta draws θ for the reference events, "
                        f"and labels '{labels}' pair them with the exact weights' grid points: "
                        "turn one of them off")
    rng = np.random.default_rng(seed)
    data = prepare_training_data(reference=reference, target=target, parameters=parameters,
                                 validation_fraction=training.validation_fraction,
                                 class_balance=training.class_balance, rng=rng,
                                 features=features, particles=particles, labels=labels)
    keras.utils.set_random_seed(seed)
    steps = int(np.ceil(len(data.y) / training.batch_size)) * training.epochs
    lr: Any = training.learning_rate
    if training.schedule == "cosine":
        lr = keras.optimizers.schedules.CosineDecay(training.learning_rate, decay_steps=steps)
    with _device_scope(), _precision(training.mixed_precision):
        model = architecture.build(signature=data.signature,
                                   output_activation=loss.output_activation,
                                   options=architecture_options)
        if training.mixed_precision:
            model = _float32_output(model)
        model.compile(optimizer=keras.optimizers.Adam(learning_rate=lr),
                      loss=loss.keras_loss())
    ckpt = Path(checkpoint_dir) if checkpoint_dir is not None and training.checkpoint else None
    # what a checkpoint belongs to (it hashes the training arrays: only with a checkpoint)
    fingerprint = "" if ckpt is None else _training_fingerprint(
        data=data, architecture=architecture, architecture_options=architecture_options,
        loss=loss, training=training, seed=seed, parameters=parameters)
    earlier = _open_checkpoint(ckpt, fingerprint) if ckpt is not None else []
    callbacks, es = _callbacks(checkpoint_dir=ckpt, patience=training.patience,
                               epochs=training.epochs, progress=progress,
                               restore_best=training.restore_best)
    recorder = _recorder(ckpt, fingerprint, earlier)
    callbacks += [recorder, *list(extra_callbacks or [])]
    t0 = time.perf_counter()
    fit_args: dict[str, Any] = {"x": data.x, "y": data.y, "sample_weight": data.w,
                                "batch_size": training.batch_size, "shuffle": True}
    validation: Any = (data.x_val, data.y_val, data.w_val)
    if data.particles is not None:
        from .batching import particle_dataset

        assert data.y_all is not None and data.w_all is not None
        assert data.train_index is not None and data.validation_index is not None
        pool = data.flat_all["theta"][data.y_all == 1] \
            if training.resample_reference_theta and parameters.names else None
        common = {"particles": data.particles, "flat": data.flat_all, "y": data.y_all,
                  "w": data.w_all, "batch_size": training.batch_size,
                  "row_event": data.row_event}
        ds, steps = particle_dataset(**common, index=data.train_index, seed=seed,
                                     resample_theta_pool=pool)
        validation, _ = particle_dataset(**common, index=data.validation_index, seed=None)
        fit_args = {"x": ds, "steps_per_epoch": steps, "shuffle": False}  # shuffles, buckets
    elif training.resample_reference_theta and parameters.names:
        ds, steps = _resampling_dataset(data, batch_size=training.batch_size,
                                        epochs=training.epochs, seed=seed)
        fit_args = {"x": ds, "steps_per_epoch": steps, "shuffle": False,  # ds is shuffled
                    "validation_batch_size": training.batch_size}
    hist = model.fit(**fit_args, epochs=training.epochs, verbose=0, callbacks=callbacks,
                     validation_data=validation)
    seconds = time.perf_counter() - t0
    del hist  # its history holds only the epochs since a resume: the recorder has them all
    keys = sorted({k for epoch in recorder.epochs for k in epoch})
    history = {k: [float(epoch.get(k, np.nan)) for epoch in recorder.epochs] for k in keys}
    diverged = _divergence(history, model, data)
    if ckpt is not None:
        shutil.rmtree(ckpt, ignore_errors=True)
    if diverged is not None:
        raise DataError(f"training diverged: {diverged} (learning_rate "
                        f"{training.learning_rate:g}); nothing was saved; lower "
                        "reweighter.training.learning_rate or check the inputs")
    metadata = {
        "architecture": getattr(architecture, "name", "?"),
        "architecture_options": dict(architecture_options),
        "training": dict(training.__dict__), "seed": seed, "history": history,
        "best_epoch": int(es.best_epoch), "best_val_loss": float(es.best),
        "epochs_run": len(history.get("loss", [])), "train_seconds": seconds,
        "n_train": len(data.y), "n_validation": len(data.y_val),
        "class_factor_reference_over_target": data.class_factor,
        "feature_ranges": _feature_ranges(data),
        "labels": labels,
    }
    if data.exact is not None:
        metadata["exact_weights"] = data.exact
    return Reweighter(model=model, loss=loss, parameters=parameters, signature=data.signature,
                      metadata=metadata, architecture=architecture)
