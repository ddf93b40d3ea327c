"""Batches of jagged particles padded to their own longest event.

Particles are kept compact (flat values plus per-event counts, a ``tf.RaggedTensor``)
and padded one batch at a time, to the batch's longest event rounded up to
``PAD_MULTIPLE`` (a few distinct shapes keep TensorFlow from retracing for every
length). Training batches are additionally *bucketed*: a shuffled window of
``BUCKET_WINDOW`` batches is sorted by multiplicity before it is cut into batches, and
the batches are shuffled again, so each batch holds events of similar length while every
epoch still sees a fresh random order. The cost of a PFN scales with the padded length,
so this is where its speed-up over one global maximum comes from.

θ stays one row per event; the network broadcasts it to particles itself.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["BUCKET_WINDOW", "PAD_MULTIPLE", "pad_batch", "particle_dataset", "ragged_particles"]

#: Padded lengths are rounded up to a multiple of this.
PAD_MULTIPLE = 8
#: Batches per sorting window when bucketing by multiplicity.
BUCKET_WINDOW = 32


def ragged_particles(flat: np.ndarray, counts: np.ndarray) -> Any:
    """``[total, k]`` values and ``[n]`` counts → float32 ``tf.RaggedTensor`` ``[n, None, k]``."""
    import tensorflow as tf

    return tf.RaggedTensor.from_row_lengths(tf.constant(flat, tf.float32),
                                            tf.constant(counts, tf.int64))


def pad_batch(ragged: Any) -> tuple[Any, Any]:
    """A ragged batch ``[b, None, k]`` → zero-padded ``[b, m, k]`` and mask ``[b, m]``."""
    import tensorflow as tf

    lengths = ragged.row_lengths()
    longest = tf.reduce_max(tf.concat([lengths, tf.constant([1], tf.int64)], axis=0))
    m = (longest + PAD_MULTIPLE - 1) // PAD_MULTIPLE * PAD_MULTIPLE
    k = ragged.shape[-1]
    dense = ragged.to_tensor(default_value=0.0, shape=tf.stack([tf.shape(lengths, tf.int64)[0],
                                                                m, tf.constant(k, tf.int64)]))
    mask = tf.sequence_mask(lengths, maxlen=m, dtype=tf.float32)
    return dense, mask


def particle_dataset(*, particles: Any, flat: dict[str, np.ndarray], index: np.ndarray,
                     y: np.ndarray, w: np.ndarray, batch_size: int, seed: int | None,
                     resample_theta_pool: np.ndarray | None = None,
                     row_event: np.ndarray | None = None) -> tuple[Any, int]:
    """A ``tf.data`` pipeline of ``({particles, mask, features?, theta?}, y, w)`` batches.

    Parameters
    ----------
    particles
        ``tf.RaggedTensor`` ``[N, None, k]`` over *all* events.
    flat
        Per-event arrays over all events (``features``, ``theta``), ``[N, ·]``.
    index
        The events of this split (train or validation).
    y, w
        Labels and weights over all events.
    seed
        Shuffle and bucket with this seed (reshuffled every epoch); ``None``: keep the
        order of ``index`` (validation).
    resample_theta_pool
        If given, every reference (label 0) event gets a fresh θ drawn from this pool in
        every batch (see ``TrainingSpec.resample_reference_theta``).
    row_event
        Where rows are not events (``flat``, ``y``, ``w`` and ``index`` over rows, e.g. one
        per event and grid point in exact-weight training): the event, i.e. the row of
        ``particles``, of each row. ``None``: row i is event i.

    Returns the dataset and the number of batches per epoch.
    """
    import tensorflow as tf

    n = len(index)
    steps = int(np.ceil(n / batch_size))
    flat_t = {k: tf.constant(v, tf.float32) for k, v in flat.items()}
    y_t, w_t = tf.constant(y, tf.float32), tf.constant(w, tf.float32)
    lengths = tf.constant(np.diff(particles.row_splits.numpy()), tf.int64)
    event_of = None if row_event is None else tf.constant(row_event, tf.int64)
    if event_of is not None:
        lengths = tf.gather(lengths, event_of)  # per row
    ds = tf.data.Dataset.from_tensor_slices(tf.constant(index, tf.int64))
    if seed is not None:
        ds = ds.shuffle(n, seed=seed, reshuffle_each_iteration=True)
        window = batch_size * BUCKET_WINDOW

        def sort_window(idx: Any) -> Any:
            order = tf.argsort(tf.gather(lengths, idx), stable=True)
            return tf.gather(idx, order)

        ds = (ds.batch(window).map(sort_window).unbatch().batch(batch_size)
              .shuffle(BUCKET_WINDOW, seed=seed + 1, reshuffle_each_iteration=True))
    else:
        ds = ds.batch(batch_size)
    pool = None if resample_theta_pool is None else tf.constant(resample_theta_pool, tf.float32)

    def make(idx: Any) -> Any:
        dense, mask = pad_batch(tf.gather(particles, idx if event_of is None
                                          else tf.gather(event_of, idx)))
        inputs = {"particles": dense, "mask": mask}
        for key, values in flat_t.items():
            inputs[key] = tf.gather(values, idx)
        yb = tf.gather(y_t, idx)
        if pool is not None and "theta" in inputs:
            picks = tf.random.uniform(tf.shape(idx), 0, tf.shape(pool, tf.int64)[0],
                                      dtype=tf.int64, seed=seed)
            inputs["theta"] = tf.where(tf.expand_dims(yb, -1) == 0, tf.gather(pool, picks),
                                       inputs["theta"])
        return inputs, yb, tf.gather(w_t, idx)

    ds = ds.map(make)
    if seed is not None:  # training: one endless stream, cut into epochs by steps_per_epoch
        ds = ds.repeat()
    return ds.prefetch(2), steps
