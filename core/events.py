"""EventSet: the unit of data that flows through ratiofit.

An :class:`EventSet` holds, per event, flat features ``[n, d]`` (and room for jagged
particles as an awkward array), the generation parameters θ ``[n, p]`` with their
names, event weights ``[n]`` and provenance (source, options, seed). It round-trips
through parquet with its metadata.

Non-finite features, θ, weights or alternative weights are refused at construction:
nothing is replaced.

**Alternative weights.** Where the simulator can say how probable each generated event
would have been at other parameter values (PYTHIA's hadronization variations, the
``variations`` option of the ``pythia`` source), the EventSet carries those ratios in
:attr:`EventSet.alt_weights`, an :class:`AltWeights`: named columns ``[n, k]``, column
*k* with the θ it moves the events to. Column *k* of event *i* is

    w_k(i) = p(event_i | θ_k) / p(event_i | θ_gen,i),

where θ_gen,i is the θ event *i* was generated at and θ_k is θ_gen,i with the entries
of ``theta[k]`` replaced (parameters a column does not name stay at the event's own
generation value). It is a *joint* ratio: the event's whole simulated history enters,
not only its observed x, so w_k is noisy, but its conditional mean over histories with
the same x is the ratio a reweighter learns, E[w_k | x] = p(x|θ_k)/p(x|θ_gen), and
``event_weights * w_k`` is the event's weight under θ_k. The container knows no method:
closure checks, training losses and fits read it by name or by θ
(:meth:`AltWeights.lookup`). It follows the events through :meth:`EventSet.take` (so
slicing, shuffling and :meth:`EventSet.split`), :meth:`EventSet.level`,
:meth:`EventSet.concatenate` and the parquet round trip (columns ``alt_weight.<name>``,
their θ in the metadata). θ_gen is the θ the events were *made* at: after
:func:`assign_theta_from` gives nominal events drawn θ labels for training, the θ
columns are those labels, while the alternative weights still refer to the generation
values (for a nominal sample, the nominal θ).

Two-level events (generator level and detector level, srgn.md and ncr.md) are one
EventSet whose flat feature names carry the level as a prefix, ``gen_<name>`` and
``sim_<name>``: every shuffle, split and parquet round trip keeps the pairing because it
is one row. Real data carries the ``sim_`` columns only. :meth:`EventSet.level` returns
one level as an ordinary EventSet (prefix removed, θ and weights kept).

Examples
--------
>>> import numpy as np
>>> ev = EventSet(features=np.zeros((3, 1)), feature_names=("x",))
>>> len(ev), ev.theta_names
(3, ())
>>> two = EventSet(features=np.array([[0.1, 0.3]]), feature_names=("gen_x", "sim_x"))
>>> two.level("sim").feature_names, two.levels
(('x',), ('gen', 'sim'))
>>> alt = AltWeights(values=[[1.1], [0.9], [1.0]], names=("a=0.6",), theta=({"a": 0.6},))
>>> ev = EventSet(features=np.zeros((3, 1)), feature_names=("x",), alt_weights=alt)
>>> ev.take(np.array([2, 0])).alt_weights.column(alt.lookup({"a": 0.6}))
array([1. , 1.1])
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import InitVar, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ._atomic import publish
from .errors import DataError

__all__ = ["LEVELS", "AltWeights", "EventSet", "assign_theta_from"]

#: Level prefixes of two-level events: generator level and detector (simulated) level.
LEVELS = ("gen", "sim")

_THETA_PREFIX = "theta."
_WEIGHT_COL = "weight"
_ALT_PREFIX = "alt_weight."
_META_KEY = b"ratiofit"


def _all_finite(values: np.ndarray) -> bool:
    """Whether every value is finite: one sum (no ``[n]`` temporary) where they are, the
    element-wise test only where the sum is not finite (a NaN/inf, or an overflow)."""
    if values.size == 0 or values.dtype.kind not in "fc":
        return True
    with np.errstate(over="ignore", invalid="ignore"):
        if np.isfinite(np.sum(values)):
            return True
    return bool(np.all(np.isfinite(values)))


def _particle_values(particles: Any, name: str) -> np.ndarray:
    """The flat values of particle field ``name`` in event order: a view where the
    particles are one list-offset array of a record of numbers (what the file sources
    build), ``ak.flatten``'s copy otherwise."""
    import awkward as ak

    layout = particles.layout
    if isinstance(layout, ak.contents.ListOffsetArray) and \
            isinstance(layout.content, ak.contents.RecordArray) and \
            layout.content.has_field(name):
        content = layout.content.content(name)
        if isinstance(content, ak.contents.NumpyArray) and content.data.ndim == 1:
            offsets = np.asarray(layout.offsets.data)
            return np.asarray(content.data)[offsets[0]:offsets[-1]]
    return np.asarray(ak.to_numpy(ak.flatten(particles[name])))


@dataclass(frozen=True)
class AltWeights:
    """Named alternative per-event weights, each the ratio to another θ.

    Column *k* holds ``p(event | θ_k) / p(event | θ_gen)`` for every event, with θ_k the
    event's generation θ with the entries of ``theta[k]`` replaced (module docstring).

    Parameters
    ----------
    values
        ``[n, k]`` finite weights (negative ones allowed, like event weights).
    names
        ``k`` distinct, non-empty column names.
    theta
        ``k`` mappings, parameter name → the value the column moves it to.

    Examples
    --------
    >>> alt = AltWeights(values=np.ones((2, 2)), names=("a=0.6", "a=0.8"),
    ...                  theta=({"a": 0.6}, {"a": 0.8}))
    >>> alt.lookup({"a": 0.8}), alt.n_events
    ('a=0.8', 2)
    """

    values: np.ndarray
    names: tuple[str, ...]
    theta: tuple[Mapping[str, float], ...]

    def __post_init__(self) -> None:
        vals = np.asarray(self.values, dtype=np.float64)
        names = tuple(self.names)
        if vals.ndim != 2 or vals.shape[1] != len(names):
            raise DataError(f"alternative weights must be [n, {len(names)}] for names "
                            f"{names}, got shape {vals.shape}")
        if not all(isinstance(n, str) and n for n in names) or len(set(names)) != len(names):
            raise DataError(f"alternative weight names must be distinct non-empty strings, "
                            f"got {names}")
        theta = tuple(self.theta)
        if len(theta) != len(names):
            raise DataError(f"{len(theta)} θ mappings for {len(names)} alternative weights")
        clean = []
        for name, point in zip(names, theta, strict=True):
            if not isinstance(point, Mapping) or not point:
                raise DataError(f"alternative weight '{name}': θ must be a non-empty "
                                f"mapping of parameter → value, got {point!r}")
            fixed = {}
            for p, v in point.items():
                if not isinstance(p, str) or isinstance(v, bool) or \
                        not isinstance(v, int | float | np.floating | np.integer) or \
                        not np.isfinite(v):
                    raise DataError(f"alternative weight '{name}': θ entry {p!r}: {v!r} is "
                                    "not a parameter name with a finite value")
                fixed[p] = float(v)
            clean.append(fixed)
        if vals.size and not np.all(np.isfinite(vals)):
            bad = ~np.isfinite(vals)
            col = names[int(np.argmax(bad.any(axis=0)))]
            raise DataError(f"alternative weights contain {int(bad.sum())} NaN/inf value(s) "
                            f"(first in '{col}'); ratiofit refuses non-finite inputs")
        object.__setattr__(self, "values", vals)
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "theta", tuple(clean))

    @property
    def n_events(self) -> int:
        return int(self.values.shape[0])

    def column(self, name: str) -> np.ndarray:
        """The ``[n]`` weights of column ``name``."""
        if name not in self.names:
            raise DataError(f"no alternative weight '{name}' (has {list(self.names)})")
        return self.values[:, self.names.index(name)]

    def lookup(self, theta: Mapping[str, float]) -> str:
        """The name of the column that moves exactly the parameters of ``theta`` to its
        values (relative tolerance 1e-12); a :class:`DataError` listing the columns' θ if
        there is none."""
        for name, point in zip(self.names, self.theta, strict=True):
            if set(point) == set(theta) and all(
                    np.isclose(point[p], float(theta[p]), rtol=1e-12, atol=0.0) for p in point):
                return name
        raise DataError(f"no alternative weight at θ {dict(theta)} (have "
                        f"{[dict(t) for t in self.theta]})")

    def take(self, index: np.ndarray) -> AltWeights:
        """The rows at ``index`` (a subset or permutation), columns unchanged."""
        return replace(self, values=self.values[index])

    @classmethod
    def concatenate(cls, parts: Sequence[AltWeights]) -> AltWeights:
        """Rows of ``parts`` one after the other; they must have the same columns and θ."""
        first = parts[0]
        for other in parts[1:]:
            if other.names != first.names or other.theta != first.theta:
                raise DataError("cannot concatenate alternative weights with different "
                                f"columns: {list(first.names)} vs {list(other.names)}")
        return replace(first, values=np.concatenate([p.values for p in parts], axis=0))

    def _meta(self) -> list[dict[str, Any]]:
        return [{"name": n, "theta": dict(t)} for n, t in zip(self.names, self.theta,
                                                              strict=True)]


@dataclass(frozen=True)
class EventSet:
    """Events with features, per-event θ, weights and provenance.

    Parameters
    ----------
    features
        ``[n, d]`` float array.
    feature_names
        Names of the ``d`` columns.
    theta
        ``[n, p]`` generation parameters (``None`` → no θ columns).
    theta_names
        Names of the ``p`` θ columns.
    weights
        ``[n]`` event weights (``None`` → all ones).
    particles
        Optional jagged per-event particle record array (awkward), kept for particle sources.
    provenance
        Free-form JSON-serialisable description: source, options, seed.
    alt_weights
        Optional :class:`AltWeights` ``[n, k]``: per-event ratios to other θ (module
        docstring), ``None`` when the source gives none.
    """

    features: np.ndarray
    feature_names: tuple[str, ...]
    theta: np.ndarray | None = None
    theta_names: tuple[str, ...] = ()
    weights: np.ndarray | None = None
    particles: Any = None
    provenance: Mapping[str, Any] = field(default_factory=dict)
    alt_weights: AltWeights | None = None
    #: Parts (``features``, ``theta``, ``weights``, ``particles``) whose NaN/inf check
    #: the caller has already made (a file source, per value, naming the file, column and
    #: row; :func:`~ratiofit.sampling.make_sample` rebuilding a checked EventSet), so that
    #: it is made once. Not a field: :func:`dataclasses.replace` and :meth:`take` check
    #: everything again.
    _finite_checked: InitVar[Collection[str]] = ()

    def __post_init__(self, _finite_checked: Collection[str]) -> None:
        feats = np.asarray(self.features, dtype=np.float64)
        if feats.ndim == 1:
            feats = feats[:, None]
        if feats.ndim != 2:
            raise DataError(f"features must be [n, d], got shape {feats.shape}")
        n = feats.shape[0]
        object.__setattr__(self, "features", feats)
        object.__setattr__(self, "feature_names", tuple(self.feature_names))
        if len(self.feature_names) != feats.shape[1]:
            raise DataError(f"{feats.shape[1]} feature columns but names {self.feature_names}")
        theta = np.zeros((n, 0)) if self.theta is None else np.asarray(self.theta, np.float64)
        if theta.size == 0 and not self.theta_names:
            theta = np.zeros((n, 0))
        object.__setattr__(self, "theta", theta)
        object.__setattr__(self, "theta_names", tuple(self.theta_names))
        if theta.shape != (n, len(self.theta_names)):
            raise DataError(f"theta has shape {theta.shape}, expected ({n}, "
                            f"{len(self.theta_names)}) for names {self.theta_names}")
        if self.weights is not None:
            w = np.asarray(self.weights, dtype=np.float64)
            if w.shape != (n,):
                raise DataError(f"weights have shape {w.shape}, expected ({n},)")
            object.__setattr__(self, "weights", w)
        if self.particles is not None:
            self._check_particles(n, finite="particles" not in _finite_checked)
        if self.alt_weights is not None:
            if not isinstance(self.alt_weights, AltWeights):
                raise DataError("alt_weights must be an AltWeights, got "
                                f"{type(self.alt_weights).__name__}")
            if self.alt_weights.n_events != n:
                raise DataError(f"alternative weights have {self.alt_weights.n_events} events, "
                                f"features {n}")
        for what, arr in (("features", feats), ("theta", theta), ("weights", self.weights)):
            if arr is not None and what not in _finite_checked and not _all_finite(arr):
                bad = int(np.count_nonzero(~np.isfinite(arr)))
                origin = self.provenance.get("origin", self.provenance.get("source", "events"))
                raise DataError(f"{origin}: {what} contain {bad} NaN/inf value(s); "
                                "ratiofit refuses non-finite inputs")

    def _check_particles(self, n: int, *, finite: bool = True) -> None:
        import awkward as ak

        parts = self.particles
        if not isinstance(parts, ak.Array):
            parts = ak.Array(parts)
            object.__setattr__(self, "particles", parts)
        if len(parts) != n:
            raise DataError(f"particles have {len(parts)} events, features {n}")
        if parts.ndim != 2 or not parts.fields:
            raise DataError("particles must be a jagged record array n * var * {fields}, got "
                            f"type {parts.type}")
        if not finite:
            return
        origin = self.provenance.get("origin", self.provenance.get("source", "events"))
        for name in parts.fields:
            flat = _particle_values(parts, name)
            if flat.dtype.kind == "f" and not _all_finite(flat):
                bad = int(np.count_nonzero(~np.isfinite(flat)))
                raise DataError(f"{origin}: particle field '{name}' contains {bad} NaN/inf "
                                "value(s); ratiofit refuses non-finite inputs")

    # -- basic accessors ----------------------------------------------------------------
    @property
    def particle_fields(self) -> tuple[str, ...]:
        """Names of the per-particle fields (empty without particles)."""
        return tuple(self.particles.fields) if self.particles is not None else ()

    def particle_arrays(self, fields: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Particles as flat ``[total, k]`` float64 values in event order and ``[n]`` counts.

        This is the compact form (no padding) that training and evaluation pad batch by
        batch; ``fields`` picks and orders the columns.
        """
        import awkward as ak

        if self.particles is None:
            raise DataError("event set has no particles")
        missing = [f for f in fields if f not in self.particles.fields]
        if missing:
            raise DataError(f"event set has no particle field(s) {missing} (has "
                            f"{list(self.particles.fields)})")
        counts = ak.to_numpy(ak.num(self.particles, axis=1)).astype(np.int64)
        flat = np.stack([ak.to_numpy(ak.flatten(self.particles[f])).astype(np.float64)
                         for f in fields], axis=1) if fields else np.zeros((int(counts.sum()), 0))
        return flat, counts

    def feature_columns(self, names: Sequence[str]) -> np.ndarray:
        """Flat feature columns in the order of ``names``."""
        missing = [n for n in names if n not in self.feature_names]
        if missing:
            raise DataError(f"event set has no feature(s) {missing} (has "
                            f"{list(self.feature_names)})")
        return self.features[:, [self.feature_names.index(n) for n in names]]

    @property
    def _theta(self) -> np.ndarray:
        assert self.theta is not None  # __post_init__ turns None into an [n, 0] array
        return self.theta

    def __len__(self) -> int:
        return int(self.features.shape[0])

    @property
    def event_weights(self) -> np.ndarray:
        """Weights, ones when none were given."""
        return self.weights if self.weights is not None else np.ones(len(self))

    def theta_dict(self) -> dict[str, np.ndarray]:
        return {n: self._theta[:, i] for i, n in enumerate(self.theta_names)}

    def theta_matrix(self, names: Sequence[str]) -> np.ndarray:
        """θ columns in the order of ``names``."""
        missing = [n for n in names if n not in self.theta_names]
        if missing:
            raise DataError(f"event set has no theta column(s) {missing} (has {self.theta_names})")
        idx = [self.theta_names.index(n) for n in names]
        return self._theta[:, idx]

    def take(self, index: np.ndarray) -> EventSet:
        """A new EventSet with the events at ``index`` (a subset or permutation)."""
        return replace(
            self, features=self.features[index], theta=self._theta[index],
            weights=None if self.weights is None else self.weights[index],
            particles=None if self.particles is None else self.particles[index],
            alt_weights=None if self.alt_weights is None else self.alt_weights.take(index))

    @classmethod
    def concatenate(cls, parts: Sequence[EventSet]) -> EventSet:
        """The events of ``parts`` one after the other.

        They must agree on feature and θ names, on particle fields (all with the same
        fields or none) and on alternative-weight columns (all the same columns and θ, or
        none); event weights are kept where any part has them (ones for the others).
        The provenance lists the parts'.

        >>> a = EventSet(features=np.zeros((2, 1)), feature_names=("x",))
        >>> len(EventSet.concatenate([a, a.take(np.array([0]))]))
        3
        """
        if not parts:
            raise DataError("nothing to concatenate")
        first = parts[0]
        for other in parts[1:]:
            for what, mine, theirs in (
                    ("feature", first.feature_names, other.feature_names),
                    ("theta", first.theta_names, other.theta_names),
                    ("particle field", first.particle_fields, other.particle_fields)):
                if mine != theirs:
                    raise DataError(f"cannot concatenate event sets with different {what} "
                                    f"names: {list(mine)} vs {list(theirs)}")
            if (first.particles is None) != (other.particles is None):
                raise DataError("cannot concatenate event sets with and without particles")
            if (first.alt_weights is None) != (other.alt_weights is None):
                raise DataError("cannot concatenate event sets with and without alternative "
                                "weights")
        particles = None
        if first.particles is not None:
            import awkward as ak

            particles = ak.concatenate([p.particles for p in parts], axis=0)
        alt = None
        if first.alt_weights is not None:
            alt = AltWeights.concatenate([p.alt_weights for p in parts
                                          if p.alt_weights is not None])
        weighted = any(p.weights is not None for p in parts)
        return cls(features=np.concatenate([p.features for p in parts], axis=0),
                   feature_names=first.feature_names,
                   theta=np.concatenate([p._theta for p in parts], axis=0),
                   theta_names=first.theta_names,
                   weights=np.concatenate([p.event_weights for p in parts]) if weighted
                   else None,
                   particles=particles, alt_weights=alt,
                   provenance={"origin": f"concatenation of {len(parts)} event sets",
                               "parts": [dict(p.provenance) for p in parts]})

    @property
    def levels(self) -> tuple[str, ...]:
        """The levels (``gen``, ``sim``) that have at least one ``<level>_`` feature."""
        return tuple(lv for lv in LEVELS
                     if any(n.startswith(f"{lv}_") for n in self.feature_names))

    def level(self, name: str) -> EventSet:
        """Level ``name``'s flat features (prefix removed) with the same θ, weights,
        particles and alternative weights; a :class:`~ratiofit.errors.DataError` if the
        events lack that level."""
        if name not in LEVELS:
            raise ValueError(f"unknown level {name!r}; use one of {LEVELS}")
        prefix = f"{name}_"
        cols = [i for i, n in enumerate(self.feature_names) if n.startswith(prefix)]
        if not cols:
            raise DataError(f"event set has no '{name}' level (no '{prefix}*' features; has "
                            f"{list(self.feature_names)})")
        return replace(self, features=self.features[:, cols],
                       feature_names=tuple(self.feature_names[i][len(prefix):] for i in cols))

    def with_theta(self, theta: np.ndarray, names: Sequence[str]) -> EventSet:
        return replace(self, theta=theta, theta_names=tuple(names))

    def split(self, fraction: float, *, rng: np.random.Generator) -> tuple[EventSet, EventSet]:
        """Shuffle, then split into (first ``1 - fraction``, last ``fraction``)."""
        perm = rng.permutation(len(self))
        n_second = round(fraction * len(self))
        return self.take(perm[: len(self) - n_second]), self.take(perm[len(self) - n_second:])

    # -- parquet I/O --------------------------------------------------------------------
    def to_parquet(self, path: str | os.PathLike[str], *, row_group_size: int = 100_000
                   ) -> None:
        """Write atomically to ``path`` (features, ``theta.<name>``, ``weight``,
        ``alt_weight.<name>``, particles as a list-of-struct column, metadata) in row
        groups of ``row_group_size`` events, so :meth:`iter_parquet` can read it back
        chunk by chunk."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        cols: dict[str, Any] = {n: self.features[:, i] for i, n in enumerate(self.feature_names)}
        cols.update({_THETA_PREFIX + n: self._theta[:, i] for i, n in enumerate(self.theta_names)})
        if self.weights is not None:
            cols[_WEIGHT_COL] = self.weights
        if self.alt_weights is not None:
            cols.update({_ALT_PREFIX + n: self.alt_weights.values[:, i]
                         for i, n in enumerate(self.alt_weights.names)})
        table = pa.table(cols)
        if self.particles is not None:
            import awkward as ak

            table = table.append_column("particles", ak.to_arrow(self.particles,
                                                                 extensionarray=False))
        meta = {"feature_names": list(self.feature_names), "theta_names": list(self.theta_names),
                "has_weights": self.weights is not None, "provenance": dict(self.provenance),
                "alt_weights": None if self.alt_weights is None else self.alt_weights._meta()}
        table = table.replace_schema_metadata({_META_KEY: json.dumps(meta).encode()})
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".parquet.tmp")
        os.close(fd)
        try:
            pq.write_table(table, tmp, row_group_size=row_group_size)
            publish(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    @classmethod
    def from_parquet(cls, path: str | os.PathLike[str]) -> EventSet:
        """Read a whole file written by :meth:`to_parquet`."""
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path)
        except Exception as exc:
            raise DataError(f"{path}: cannot read parquet: {exc}") from None
        return cls._from_table(table, path)

    @classmethod
    def iter_parquet(cls, path: str | os.PathLike[str], *, chunk_size: int = 100_000
                     ) -> Iterator[EventSet]:
        """Read a file chunk by chunk (at most ``chunk_size`` events each) for samples
        larger than memory; each chunk is a complete EventSet.

        Examples
        --------
        >>> import tempfile, os
        >>> d = tempfile.mkdtemp()
        >>> EventSet(features=np.arange(5.0), feature_names=("x",)).to_parquet(
        ...     os.path.join(d, "e.parquet"), row_group_size=2)
        >>> [len(c) for c in EventSet.iter_parquet(os.path.join(d, "e.parquet"), chunk_size=2)]
        [2, 2, 1]
        """
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            file = pq.ParquetFile(path)
        except Exception as exc:
            raise DataError(f"{path}: cannot read parquet: {exc}") from None
        schema = file.schema_arrow
        for batch in file.iter_batches(batch_size=chunk_size):
            table = pa.Table.from_batches([batch]).replace_schema_metadata(schema.metadata)
            yield cls._from_table(table, path)

    @classmethod
    def _from_table(cls, table: Any, path: str | os.PathLike[str]) -> EventSet:
        raw = (table.schema.metadata or {}).get(_META_KEY)
        if raw is None:
            raise DataError(f"{path}: not a ratiofit event file (no '{_META_KEY.decode()}' "
                            "metadata)")
        meta = json.loads(raw)
        alt_meta = meta.get("alt_weights") or []  # absent in files of older versions
        needed = [*meta["feature_names"], *(_THETA_PREFIX + n for n in meta["theta_names"]),
                  *([_WEIGHT_COL] if meta["has_weights"] else []),
                  *(_ALT_PREFIX + a["name"] for a in alt_meta)]
        missing = [c for c in needed if c not in table.column_names]
        if missing:
            raise DataError(f"{path}: columns {missing} named in the metadata are missing")
        fnames = meta["feature_names"]
        feats = np.stack([table.column(n).to_numpy() for n in fnames], axis=1) if fnames else \
            np.zeros((table.num_rows, 0))
        tnames = meta["theta_names"]
        theta = np.stack([table.column(_THETA_PREFIX + n).to_numpy() for n in tnames], axis=1) \
            if tnames else np.zeros((table.num_rows, 0))
        weights = table.column(_WEIGHT_COL).to_numpy() if meta["has_weights"] else None
        particles = None
        if "particles" in table.column_names:
            import awkward as ak

            particles = ak.from_arrow(table.column("particles"))
        alt = None
        if alt_meta:
            try:
                alt = AltWeights(
                    values=np.stack([table.column(_ALT_PREFIX + a["name"]).to_numpy()
                                     for a in alt_meta], axis=1),
                    names=tuple(a["name"] for a in alt_meta),
                    theta=tuple(a["theta"] for a in alt_meta))
            except DataError as exc:
                raise DataError(f"{path}: {exc}") from None
        prov = dict(meta.get("provenance", {}))
        prov.setdefault("origin", str(path))
        return cls(features=feats, feature_names=tuple(fnames), theta=theta,
                   theta_names=tuple(tnames), weights=weights, particles=particles,
                   provenance=prov, alt_weights=alt)


def assign_theta_from(reference: EventSet, *, varied: EventSet, names: Sequence[str],
                      rng: np.random.Generator) -> EventSet:
    """Give each reference (nominal) event θ values drawn from the varied sample's θ.

    This is the DCTR pairing: the nominal events must carry the same θ distribution as
    the varied ones so that the classifier learns p(x|θ)/p(x|θ₀) at every θ, rather than
    pairing nominal events with θ₀ (which makes the task trivial). Draws are with
    replacement from the varied sample's per-event θ (after any selection on it).
    """
    source = varied.theta_matrix(names)
    if len(source) == 0:
        raise DataError("cannot assign theta from an empty varied sample")
    picks = rng.integers(0, len(source), size=len(reference))
    keep = [n for n in reference.theta_names if n not in names]
    kept = reference.theta_matrix(keep)
    return reference.with_theta(np.concatenate([kept, source[picks]], axis=1), [*keep, *names])
