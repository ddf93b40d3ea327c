"""Ensembles of N events drawn from an EventSet, and the per-ensemble log-ratio f_{1→N}.

An *ensemble* is a set {x_1, …, x_N} of IID events from one sample (ensembles.md Eq. 10).
Per-ensemble networks read it as one example whose flat features are the N events'
features concatenated event by event (``e0_x0, e0_x1, e1_x0, …``); a deep-sets network
(:mod:`ratiofit.plugins.architectures.deepsets_ensemble`) reshapes them back to ``[N, d]``.

Data augmentation (ensembles.md footnote 5): with ``augmentation = k`` the events are
partitioned into ensembles k times, each time after a fresh permutation, so every event
appears in k different ensembles and every ensemble holds N distinct events.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ratiofit.errors import DataError
from ratiofit.events import EventSet

__all__ = ["concatenated_feature_names", "draw_ensembles", "ensemble_log_ratio",
           "sort_ensemble_events"]


def concatenated_feature_names(*, feature_names: Sequence[str], ensemble_size: int
                               ) -> tuple[str, ...]:
    """Names ``e<i>_<feature>`` of the ``N·d`` concatenated ensemble features, event-major.

    Examples
    --------
    >>> concatenated_feature_names(feature_names=["x0"], ensemble_size=2)
    ('e0_x0', 'e1_x0')
    """
    return tuple(f"e{i}_{name}" for i in range(ensemble_size) for name in feature_names)


def draw_ensembles(events: EventSet, *, ensemble_size: int, rng: np.random.Generator,
                   augmentation: int = 1, n_ensembles: int | None = None,
                   sort_by: str | None = None) -> EventSet:
    """Group the events of one sample into ensembles of ``ensemble_size`` IID events.

    Parameters
    ----------
    events
        The events; every event of one ensemble must have the same θ (a sample generated
        at one θ point), since an ensemble is drawn from p(x⃗|θ) (ensembles.md Eq. 1).
    ensemble_size
        N, the number of events per ensemble.
    rng
        Random stream for the permutations.
    augmentation
        k ≥ 1: number of independent partitions of the events (footnote 5); k = 1 uses
        every event exactly once.
    n_ensembles
        Keep only the first ``n_ensembles`` ensembles (``None``: all ``k·⌊n/N⌋``).
    sort_by
        Order the events inside each ensemble by this feature (the f_N^sort variant of
        ensembles.md Sec. III A 2); ``None`` keeps the random order.

    Returns
    -------
    EventSet
        One row per ensemble with features :func:`concatenated_feature_names`, the
        events' common θ, and weight = product of the event weights (Eq. 1).
    """
    if ensemble_size < 1:
        raise DataError(f"ensemble_size must be ≥ 1, got {ensemble_size}")
    if augmentation < 1:
        raise DataError(f"augmentation must be ≥ 1, got {augmentation}")
    per_partition = len(events) // ensemble_size
    if per_partition == 0:
        raise DataError(f"{len(events)} events cannot fill one ensemble of {ensemble_size}")
    theta = events.theta if events.theta is not None else np.zeros((len(events), 0))
    if theta.shape[1] and not np.all(theta == theta[:1]):
        raise DataError("events of an ensemble must share θ; draw ensembles from a sample "
                        "generated at one θ point")
    index = np.concatenate([rng.permutation(len(events))[: per_partition * ensemble_size]
                            for _ in range(augmentation)]).reshape(-1, ensemble_size)
    if n_ensembles is not None:
        if n_ensembles > len(index):
            raise DataError(f"asked for {n_ensembles} ensembles, only {len(index)} can be "
                            f"drawn from {len(events)} events with augmentation {augmentation}")
        index = index[:n_ensembles]
    per_event = events.features[index]  # [M, N, d]
    if sort_by is not None:
        column = events.feature_names.index(sort_by) if sort_by in events.feature_names \
            else None
        if column is None:
            raise DataError(f"sort_by: no feature {sort_by!r} (has {list(events.feature_names)})")
        per_event = sort_ensemble_events(per_event, column=column)
    weights = None
    if events.weights is not None:
        weights = np.prod(events.weights[index], axis=1)
    names = concatenated_feature_names(feature_names=events.feature_names,
                                       ensemble_size=ensemble_size)
    return EventSet(features=per_event.reshape(len(index), -1), feature_names=names,
                    theta=theta[index[:, 0]], theta_names=events.theta_names, weights=weights,
                    provenance={**dict(events.provenance), "ensemble_size": ensemble_size,
                                "augmentation": augmentation})


def sort_ensemble_events(per_event: np.ndarray, *, column: int) -> np.ndarray:
    """Order the events of each ensemble ``[M, N, d]`` by feature ``column`` (ascending)."""
    order = np.argsort(per_event[:, :, column], axis=1, kind="stable")
    return np.take_along_axis(per_event, order[:, :, None], axis=1)


def ensemble_log_ratio(per_event_log_ratio: np.ndarray, *, ensemble_size: int) -> np.ndarray:
    """f_{1→N}: the ensemble log-ratio Σᵢ log w(xᵢ) from per-event log-ratios (ensembles.md
    Eq. 13, as a sum of logs rather than a product of ratios).

    ``per_event_log_ratio`` lists the events ensemble by ensemble (``[M·N]``); returns ``[M]``.

    Examples
    --------
    >>> ensemble_log_ratio(np.array([0.1, 0.2, -0.3, 0.5]), ensemble_size=2).round(3)
    array([0.3, 0.2])
    """
    values = np.asarray(per_event_log_ratio, dtype=np.float64)
    if values.ndim != 1 or len(values) % ensemble_size:
        raise DataError(f"{values.shape} per-event log-ratios do not form ensembles of "
                        f"{ensemble_size}")
    return values.reshape(-1, ensemble_size).sum(axis=1)
