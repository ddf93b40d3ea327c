"""Events read from files: the file lists and the checks every file source owes.

A source that reads files (``reads_files = True``, :class:`~ratiofit.plugin_api.Source`)
turns its options into :class:`FileColumns` (which columns are features, particle
fields, the weight, θ and the selection's inputs), reads its files chunk by chunk and
hands each chunk to an :class:`EventAssembler`, which applies the selection, stops at
``n_events`` and refuses, naming the file, the column and the row (the entry number in
that file, counted from 0):

- NaN/inf (or null) values: in every column the selection reads (on every row) and in
  the features, particles, weights and θ of the events kept;
- θ values outside their parameter's range;
- particle columns whose per-event counts differ;
- a total weight that is not positive (negative weights themselves are allowed);
- fewer events than ``n_events`` asks for (never silently shortened), or none at all.

Columns are gathered one chunk at a time and joined column by column at the end, so
the peak memory is about the result plus one chunk.

Examples
--------
>>> import numpy as np
>>> cols = FileColumns(features=("x",), weight="w", selection=None)
>>> asm = EventAssembler(cols, limit=None, origin="f.root")
>>> asm.add({"x": np.array([1.0, 2.0]), "w": np.array([0.5, -0.1])}, {}, file="f.root",
...         first_row=0)
False
>>> ev = asm.finish()
>>> ev.features[:, 0], ev.weights
(array([1., 2.]), array([ 0.5, -0.1]))
"""

from __future__ import annotations

import glob
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .events import EventSet
from .plugin_api import THETA_COLUMNS
from .selection import Selection, SelectionError, parse_selection

__all__ = ["FLAT", "JAGGED", "EventAssembler", "FileColumns", "FileOptionError",
           "default_features", "describe_files", "expand_files", "file_columns",
           "theta_columns"]

#: Column kinds in a file's schema (:func:`file_columns`): a number per event, and a
#: variable-length list of numbers per event; any other kind is described by its type name.
FLAT, JAGGED = "flat", "jagged"

#: Column names that hold event weights by convention: never a default feature.
_WEIGHT_LIKE = ("weight", "weights")


class FileOptionError(ValueError):
    """A problem with one option of a file source; ``field`` names it (the spec validator
    points at that option, or at ``theta.<parameter>`` for a θ column)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def expand_files(patterns: str | Sequence[str], *, what: str = "file") -> list[str]:
    """Paths and globs → the files, in the order given (a glob's matches sorted).

    A missing file, a glob that matches nothing or a directory raises
    :class:`FileOptionError` (field ``files``).

    >>> expand_files([__file__]) == [__file__]
    True
    """
    out: list[str] = []
    for pattern in [patterns] if isinstance(patterns, str) else patterns:
        if glob.has_magic(pattern):
            matches = sorted(glob.glob(pattern))
            if not matches:
                raise FileOptionError("files", f"{pattern}: the glob matches no {what}")
        else:
            if not os.path.exists(pattern):
                raise FileOptionError("files", f"{pattern}: file not found")
            matches = [pattern]
        for path in matches:
            if not os.path.isfile(path):
                raise FileOptionError("files", f"{path}: not a file")
        out.extend(matches)
    return out


def describe_files(files: Sequence[str]) -> str:
    """One short name for messages: the file, or the first and how many more.

    >>> describe_files(["a.root", "b.root", "c.root"])
    'a.root (and 2 more files)'
    """
    if len(files) == 1:
        return files[0]
    return f"{files[0]} (and {len(files) - 1} more files)"


def theta_columns(options: Mapping[str, Any]) -> dict[str, tuple[str, float, float]]:
    """The θ columns a sample asks its file source for (the reserved option
    :data:`~ratiofit.plugin_api.THETA_COLUMNS`): parameter → (column, low, high).

    >>> theta_columns({"_theta_columns": {"mu": {"column": "mu_gen", "range": [-1, 1]}}})
    {'mu': ('mu_gen', -1.0, 1.0)}
    """
    raw = options.get(THETA_COLUMNS) or {}
    return {name: (str(v["column"]), float(v["range"][0]), float(v["range"][1]))
            for name, v in raw.items()}


def default_features(flat_numeric: Sequence[str], *, weight: str | None,
                     theta: Mapping[str, tuple[str, float, float]], origin: str) -> list[str]:
    """Every flat numeric column except the weight and θ columns. A column named like a
    weight (``weight``, ``weights``) that is not declared as the weight is refused rather
    than read as a network input (field ``features``)."""
    skip = {weight, *(c for c, _, _ in theta.values())}
    out = [c for c in flat_numeric if c not in skip]
    weight_like = [c for c in out if c.lower() in _WEIGHT_LIKE]
    if weight_like:
        raise FileOptionError("features", f"{origin}: column '{weight_like[0]}' looks like "
                              f"event weights and would be read as a feature: declare it "
                              f"(weight: {weight_like[0]}) or list the features")
    return out


@dataclass(frozen=True)
class FileColumns:
    """What a file source reads: feature columns, particle fields (field → jagged
    column), the weight column, θ columns (parameter → (column, low, high)) and the
    selection."""

    features: tuple[str, ...]
    particles: Mapping[str, str] = field(default_factory=dict)
    weight: str | None = None
    theta: Mapping[str, tuple[str, float, float]] = field(default_factory=dict)
    selection: Selection | None = None

    @property
    def flat(self) -> list[str]:
        """Every flat column read (features, weight, θ, the selection's), once each."""
        names = [*self.features, *([self.weight] if self.weight else []),
                 *(c for c, _, _ in self.theta.values()),
                 *(self.selection.names if self.selection else ())]
        return list(dict.fromkeys(names))

    @property
    def jagged(self) -> list[str]:
        return list(dict.fromkeys(self.particles.values()))


def file_columns(options: Mapping[str, Any], *, schema: Mapping[str, str], origin: str,
                 what: str = "column") -> FileColumns:
    """The columns a file source's ``options`` ask for, checked against one file's
    ``schema`` (column → :data:`FLAT`, :data:`JAGGED` or its type's name): every named
    column exists and has the right kind, the selection parses over the flat columns.

    Reads the options ``features`` (``None``: :func:`default_features`), ``particles``
    (field → column), ``weight``, ``selection`` and the θ columns; raises
    :class:`FileOptionError` naming the option (``what``: "column" or "branch").

    >>> cols = file_columns({"features": None, "weight": "w", "selection": "x > 0"},
    ...                     schema={"x": FLAT, "w": FLAT, "pt": JAGGED}, origin="f")
    >>> cols.features, cols.weight, cols.selection.names
    (('x',), 'w', ('x',))
    """

    def need(column: Any, kind: str, option: str) -> str:
        if not isinstance(column, str) or column not in schema:
            shown = list(schema)[:30]
            more = f", ... ({len(schema)} in all)" if len(schema) > 30 else ""
            raise FileOptionError(option, f"{origin}: no {what} '{column}' (has: "
                                  f"{', '.join(shown) or 'none'}{more})")
        if schema[column] != kind:
            want = "a number per event" if kind == FLAT else "a list of numbers per event"
            got = {FLAT: "a number per event", JAGGED: "a list of numbers per event"}.get(
                schema[column], f"of type {schema[column]}")
            raise FileOptionError(option, f"{origin}: {what} '{column}' is {got}, not {want}")
        return column

    theta = theta_columns(options)
    for pname, (column, _, _) in theta.items():
        need(column, FLAT, f"theta.{pname}")
    weight = options.get("weight")
    if weight is not None:
        need(weight, FLAT, "weight")
    flat = [c for c, k in schema.items() if k == FLAT]
    particles = dict(options.get("particles") or {})
    if options.get("particles") is not None and not particles:
        raise FileOptionError("particles", "expected field: column pairs, got none")
    for fname, column in particles.items():
        if not str(fname).isidentifier():
            raise FileOptionError("particles", f"particle field names must be identifiers, "
                                  f"got {fname!r}")
        need(column, JAGGED, "particles")
    if options.get("features") is None:
        features = default_features(flat, weight=weight, theta=theta, origin=origin)
    else:
        features = [need(c, FLAT, "features") for c in options["features"]]
        if len(set(features)) != len(features):
            raise FileOptionError("features", f"repeated names in {features}")
    if not features and not particles:
        raise FileOptionError("features", f"{origin}: nothing to read: no feature {what}s "
                              "and no particles")
    selection = None
    if options.get("selection") is not None:
        try:
            selection = parse_selection(options["selection"], columns=flat)
        except SelectionError as exc:
            raise FileOptionError("selection", f"{origin}: {exc}") from None
    return FileColumns(features=tuple(features), particles=particles, weight=weight,
                       theta=theta, selection=selection)


def _first_bad(values: np.ndarray) -> int | None:
    if values.dtype.kind not in "fc":
        return None
    bad = ~np.isfinite(values)
    return int(np.argmax(bad)) if bad.any() else None


def _gather(counts: np.ndarray, values: np.ndarray, idx: np.ndarray
            ) -> tuple[np.ndarray, np.ndarray]:
    """The jagged entries of events ``idx``: their counts and their values, in order."""
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    c = counts[idx]
    total = int(c.sum())
    out_starts = np.concatenate([[0], np.cumsum(c)[:-1]]).astype(np.int64)
    pos = np.repeat(starts[idx] - out_starts, c) + np.arange(total, dtype=np.int64)
    return c, values[pos]


class EventAssembler:
    """Collects chunks of columns into one checked :class:`~ratiofit.events.EventSet`.

    ``limit``: stop after this many events (``n_events``; ``None``: all). ``origin``
    names the files in messages that are not about one row.
    """

    def __init__(self, columns: FileColumns, *, limit: int | None, origin: str) -> None:
        self.columns, self.limit, self.origin = columns, limit, origin
        self.filled = 0
        self.read = 0  # rows looked at, before the selection
        self._flat: dict[str, list[np.ndarray]] = {
            c: [] for c in [*columns.features, *([columns.weight] if columns.weight else []),
                            *(c for c, _, _ in columns.theta.values())]}
        self._counts: list[np.ndarray] = []
        self._values: dict[str, list[np.ndarray]] = {f: [] for f in columns.particles}

    @property
    def done(self) -> bool:
        return self.limit is not None and self.filled >= self.limit

    def add(self, flat: Mapping[str, np.ndarray], jagged: Mapping[str, tuple[np.ndarray,
            np.ndarray]], *, file: str, first_row: int) -> bool:
        """One chunk: ``flat`` column → ``[n]`` values, ``jagged`` column → (``[n]`` counts,
        flat values), rows ``first_row ...`` of ``file``. Returns whether ``limit`` is
        reached (the reader can stop)."""
        cols = self.columns
        n = len(next(iter(flat.values()))) if flat else len(next(iter(jagged.values()))[0])
        self.read += n
        if cols.selection is not None:
            for name in cols.selection.names:
                j = _first_bad(flat[name])
                if j is not None:
                    raise ValueError(f"{file}: column '{name}' (read by the selection) has a "
                                     f"NaN/inf value at row {first_row + j}")
            idx = np.flatnonzero(cols.selection.mask(flat))
        else:
            idx = np.arange(n)
        if self.limit is not None:
            idx = idx[: self.limit - self.filled]
        for name in self._flat:
            values = np.asarray(flat[name])[idx]
            j = _first_bad(values)
            if j is not None:
                raise ValueError(f"{file}: column '{name}' has a NaN/inf value at row "
                                 f"{first_row + int(idx[j])}")
            self._flat[name].append(values.astype(np.float64, copy=False))
        for pname, (column, low, high) in cols.theta.items():
            values = self._flat[column][-1]
            out = (values < low) | (values > high)
            if out.any():
                j = int(np.argmax(out))
                raise ValueError(f"{file}: column '{column}' (theta '{pname}') has "
                                 f"{values[j]:g} at row {first_row + int(idx[j])}, outside "
                                 f"the range of '{pname}' [{low:g}, {high:g}]")
        if cols.particles:
            self._add_particles(jagged, idx, file=file, first_row=first_row)
        self.filled += len(idx)
        return self.done

    def _add_particles(self, jagged: Mapping[str, tuple[np.ndarray, np.ndarray]],
                       idx: np.ndarray, *, file: str, first_row: int) -> None:
        fields = list(self.columns.particles.items())
        first_col = fields[0][1]
        counts0 = np.asarray(jagged[first_col][0])
        for _, column in fields[1:]:
            counts = np.asarray(jagged[column][0])
            if not np.array_equal(counts, counts0):
                at = int(np.argmax(counts != counts0))
                raise FileOptionError("particles", f"{file}: particle columns '{first_col}' "
                                      f"and '{column}' have different counts at row "
                                      f"{first_row + at} ({counts0[at]} and {counts[at]}): "
                                      "all particle fields must have one entry per particle")
        selected = None
        for fname, column in fields:
            c, values = _gather(counts0, np.asarray(jagged[column][1]), idx)
            bad = _first_bad(values)
            if bad is not None:
                event = int(np.searchsorted(np.cumsum(c), bad, side="right"))
                raise ValueError(f"{file}: particle column '{column}' has a NaN/inf value at "
                                 f"row {first_row + int(idx[event])}")
            self._values[fname].append(values.astype(np.float64, copy=False))
            selected = c
        assert selected is not None
        self._counts.append(selected.astype(np.int64))

    def finish(self) -> EventSet:
        """The events read, checked (see the module docstring)."""
        cols = self.columns
        sel = f" passing the selection '{cols.selection.text}'" if cols.selection else ""
        if self.limit is not None and self.filled < self.limit:
            raise ValueError(f"{self.origin}: has {self.filled} rows{sel}, n_events asks for "
                             f"{self.limit}")
        if self.filled == 0:
            raise ValueError(f"{self.origin}: no rows{sel} (of {self.read} read)")
        n = self.filled
        features = np.empty((n, len(cols.features)))
        kept = {cols.weight, *(c for c, _, _ in cols.theta.values())}
        for j, name in enumerate(cols.features):  # column by column: the chunks go as we go
            chunks = self._flat[name] if name in kept else self._flat.pop(name)
            np.concatenate(chunks, out=features[:, j])
        weights = None
        if cols.weight is not None:
            weights = np.concatenate(self._flat[cols.weight])
            total = float(weights.sum())
            if not total > 0:
                raise ValueError(f"{self.origin}: the weights in column '{cols.weight}' sum "
                                 f"to {total:g} over {n} events; a sample's total weight "
                                 "must be positive")
        theta = np.stack([np.concatenate(self._flat[c]) for c, _, _ in cols.theta.values()],
                         axis=1) if cols.theta else None
        particles = None
        if cols.particles:
            import awkward as ak

            counts = np.concatenate(self._counts)
            particles = ak.unflatten(ak.zip({f: np.concatenate(self._values.pop(f))
                                             for f in cols.particles}), counts)
        return EventSet(features=features, feature_names=cols.features, theta=theta,
                        theta_names=tuple(cols.theta), weights=weights, particles=particles,
                        provenance={"origin": self.origin})
