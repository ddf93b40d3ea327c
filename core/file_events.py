"""Events read from files: the file lists and the checks every file source owes.

A source that reads files (``reads_files = True``, :class:`~ratiofit.plugin_api.Source`)
turns its options into :class:`FileColumns` (which columns are features, particle
fields, the weight, θ and the selection's inputs), reads its files chunk by chunk and
hands each chunk to an :class:`EventAssembler` (:func:`root_chunks` and
:func:`parquet_chunks` read ROOT trees and parquet files so, for the ``root`` and
``parquet`` sources and ``ratiofit reweight``), which applies the selection, stops at
``n_events`` and refuses, naming the file, the column and the row (the entry number in
that file, counted from 0):

- NaN/inf (or null) values: in every column the selection reads (on every row) and in
  the features, particles, weights and θ of the events kept (their float64 values in the
  result, so a value beyond float64's range is an inf);
- θ values outside their parameter's range;
- particle columns whose per-event counts differ;
- a total weight that is not positive (negative weights themselves are allowed);
- fewer events than ``n_events`` asks for (never silently shortened), or none at all.

Each value is checked once, as its chunk comes in: the EventSet that
:meth:`EventAssembler.finish` builds does not check it again.

Every column is written straight into its part of the result as the chunks arrive
(converted to float64 on the way in; nothing is joined at the end), so the peak memory is
about the result plus one chunk. Where the reader knows how many rows its files hold
(``capacity``), the features, weights and θ are reserved once for that many rows; the
particle fields are reserved for the particles per row seen so far times those rows and
grow (by copying) when they do not fit. A selection leaves the rest of a reservation
untouched, which costs address space, not memory.

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
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .events import EventSet
from .plugin_api import THETA_COLUMNS
from .selection import Selection, SelectionError, parse_selection

__all__ = ["FLAT", "JAGGED", "Chunk", "EventAssembler", "FileColumns", "FileOptionError",
           "default_features", "describe_files", "expand_files", "file_columns",
           "file_stamps", "parquet_chunks", "parquet_column_kinds", "root_branch_kinds",
           "root_chunks", "theta_columns"]

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


def file_stamps(patterns: str | Sequence[str]) -> list[tuple[str, int, int]]:
    """(path, size, modification time in ns) of every file the paths and globs name now
    (a missing one with -1s): a cheap identity of the data a sample reads, e.g. for
    deciding whether stored results still hold.

    >>> [s[0] for s in file_stamps([__file__])] == [__file__]
    True
    """
    out = []
    for pattern in [patterns] if isinstance(patterns, str) else patterns:
        for path in sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]:
            try:
                st = os.stat(path)
                out.append((path, int(st.st_size), int(st.st_mtime_ns)))
            except OSError:
                out.append((path, -1, -1))
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
    """The index of the first NaN/inf value, or None."""
    if values.dtype.kind not in "fc":
        return None
    with np.errstate(over="ignore", invalid="ignore"):
        if np.isfinite(np.sum(values)):  # the common case, without a [n] temporary
            return None
    bad = ~np.isfinite(values)  # (or the sum overflowed)
    return int(np.argmax(bad)) if bad.any() else None


@dataclass(frozen=True)
class _Rows:
    """The rows of a chunk that are kept: ``take`` indexes them (a slice where they are
    the first ``count``, which copies nothing), ``first`` is the chunk's first entry."""

    take: np.ndarray | slice
    count: int
    first: int

    def entry(self, j: int) -> int:
        """The file entry of the ``j``-th kept row."""
        return self.first + (j if isinstance(self.take, slice) else int(self.take[j]))


def _positions(counts: np.ndarray, rows: _Rows) -> tuple[np.ndarray, np.ndarray | slice]:
    """The counts of the kept rows, and where their jagged entries are in the chunk's flat
    values (a slice where the kept rows are the first ones, which copies nothing)."""
    c = counts[rows.take]
    if isinstance(rows.take, slice):
        return c, slice(0, int(c.sum()))
    starts = np.zeros(len(counts), dtype=np.int64)
    np.cumsum(counts[:-1], dtype=np.int64, out=starts[1:])
    total = int(c.sum())
    out_starts = np.zeros(len(c), dtype=np.int64)
    np.cumsum(c[:-1], dtype=np.int64, out=out_starts[1:])
    return c, np.repeat(starts[rows.take] - out_starts, c) + np.arange(total, dtype=np.int64)


class _Column:
    """A 1-d result column written chunk by chunk into one reservation (converted to
    ``dtype`` on the way in); when a chunk does not fit, a larger reservation (``expect``
    entries if given, at least half as large again) takes what is written so far."""

    def __init__(self, dtype: Any, reserve: int | None = None) -> None:
        self.dtype, self.size = np.dtype(dtype), 0
        self._buf: np.ndarray | None = None
        if reserve:
            self._grow(reserve, reserve)

    def _grow(self, need: int, expect: int | None) -> None:
        old = 0 if self._buf is None else len(self._buf)
        want = max(need, expect or 0, old + old // 2)
        try:
            buf = np.empty(want, self.dtype)
        except MemoryError:  # more than the address space allows: just what is needed
            buf = np.empty(need, self.dtype)
        if self._buf is not None:
            buf[:self.size] = self._buf[:self.size]
        self._buf = buf

    def extend(self, values: np.ndarray, *, expect: int | None = None) -> np.ndarray:
        """Append ``values``; returns their converted copy in the result (a view)."""
        need = self.size + len(values)
        if self._buf is None or need > len(self._buf):
            self._grow(need, expect)
        assert self._buf is not None
        out = self._buf[self.size:need]
        out[...] = values
        self.size = need
        return out

    def array(self) -> np.ndarray:
        """The entries written (a view of the reservation)."""
        return self._buf[:self.size] if self._buf is not None else np.empty(0, self.dtype)


class EventAssembler:
    """Collects chunks of columns into one checked :class:`~ratiofit.events.EventSet`.

    ``limit``: stop after this many events (``n_events``; ``None``: all). ``origin``
    names the files in messages that are not about one row. ``capacity``: the rows the
    files hold, where the reader knows it (the features, weights and θ are then reserved
    once; without it the features are kept per chunk and joined at the end, twice the
    memory, and the other columns grow as they fill).
    """

    def __init__(self, columns: FileColumns, *, limit: int | None, origin: str,
                 capacity: int | None = None) -> None:
        self.columns, self.limit, self.origin = columns, limit, origin
        self.filled = 0
        self.read = 0  # rows looked at, before the selection
        # the rows expected in all (for the reservations), where known
        self._rows: int | None = None
        if capacity is not None:
            self._rows = capacity if limit is None else min(capacity, limit)
        elif limit is not None:
            self._rows = limit
        # the features: one [rows, d] array the chunks are written into, or (capacity
        # unknown, or more than can be reserved) one [m, d] block per chunk
        self._buffer: np.ndarray | None = None
        if capacity is not None:
            assert self._rows is not None
            try:
                self._buffer = np.empty((self._rows, len(columns.features)))
            except MemoryError:  # more than the address space allows: per chunk then
                self._buffer = None
        self._blocks: list[np.ndarray] = []
        reserve = self._rows if capacity is not None else None
        # the weight and θ columns, float64
        self._flat: dict[str, _Column] = {
            c: _Column(np.float64, reserve)
            for c in [*([columns.weight] if columns.weight else []),
                      *(c for c, _, _ in columns.theta.values())]}
        # the particles: the list offsets of the kept rows (from 0), and each field's
        # values (float64)
        self._offsets = _Column(np.int64, (reserve or 0) + 1 if columns.particles else None)
        if columns.particles:
            self._offsets.extend(np.zeros(1, np.int64))
        self._values: dict[str, _Column] = {f: _Column(np.float64) for f in columns.particles}

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
            kept = np.flatnonzero(cols.selection.mask(flat))
            if self.limit is not None:
                kept = kept[: self.limit - self.filled]
            rows = _Rows(take=kept, count=len(kept), first=first_row)
        else:
            m = n if self.limit is None else min(n, self.limit - self.filled)
            rows = _Rows(take=slice(0, m), count=m, first=first_row)
        if self._buffer is not None and self.filled + rows.count <= len(self._buffer):
            block = self._buffer[self.filled:self.filled + rows.count]
        else:  # no buffer, or the files grew since they were counted
            block = np.empty((rows.count, len(cols.features)))
            self._blocks.append(block)
        for j, name in enumerate(cols.features):
            block[:, j] = np.asarray(flat[name])[rows.take]  # to float64
        if _first_bad(block) is not None:  # the first feature column with one, its row
            bad = ~np.isfinite(block)
            j = int(np.argmax(bad.any(axis=0)))
            raise ValueError(f"{file}: column '{cols.features[j]}' has a NaN/inf value at "
                             f"row {rows.entry(int(np.argmax(bad[:, j])))}")
        written = {name: self._checked(name, column.extend(np.asarray(flat[name])[rows.take],
                                                           expect=self._rows),
                                       rows, file=file)
                   for name, column in self._flat.items()}
        for pname, (column, low, high) in cols.theta.items():
            values = written[column]
            out = (values < low) | (values > high)
            if out.any():
                j = int(np.argmax(out))
                raise ValueError(f"{file}: column '{column}' (theta '{pname}') has "
                                 f"{values[j]:g} at row {rows.entry(j)}, outside the range "
                                 f"of '{pname}' [{low:g}, {high:g}]")
        if cols.particles:
            self._add_particles(jagged, rows, file=file)
        self.filled += rows.count
        return self.done

    @staticmethod
    def _checked(name: str, values: np.ndarray, rows: _Rows, *, file: str) -> np.ndarray:
        """``values``, the kept rows of column ``name`` as float64, checked for NaN/inf."""
        bad = _first_bad(values)
        if bad is not None:
            raise ValueError(f"{file}: column '{name}' has a NaN/inf value at row "
                             f"{rows.entry(bad)}")
        return values

    def _add_particles(self, jagged: Mapping[str, tuple[np.ndarray, np.ndarray]],
                       rows: _Rows, *, file: str) -> None:
        fields = list(self.columns.particles.items())
        first_col = fields[0][1]
        counts0 = np.asarray(jagged[first_col][0])
        for _, column in fields[1:]:
            counts = np.asarray(jagged[column][0])
            if not np.array_equal(counts, counts0):
                at = int(np.argmax(counts != counts0))
                raise FileOptionError("particles", f"{file}: particle columns '{first_col}' "
                                      f"and '{column}' have different counts at row "
                                      f"{rows.first + at} ({counts0[at]} and {counts[at]}): "
                                      "all particle fields must have one entry per particle")
        c, where = _positions(counts0, rows)
        before = self._values[fields[0][0]].size
        particles = before + int(c.sum())
        # the reservation: the particles per row so far, times the rows expected
        expect = None
        if self._rows is not None and self.filled + rows.count:
            expect = int(np.ceil(particles / (self.filled + rows.count) * self._rows * 1.05))
        for fname, column in fields:
            values = self._values[fname].extend(np.asarray(jagged[column][1])[where],
                                                expect=expect)  # to float64
            bad = _first_bad(values)
            if bad is not None:
                event = int(np.searchsorted(np.cumsum(c), bad, side="right"))
                raise ValueError(f"{file}: particle column '{column}' has a NaN/inf value at "
                                 f"row {rows.entry(event)}")
        offsets = self._offsets.extend(c, expect=None if self._rows is None else
                                       self._rows + 1)
        np.cumsum(offsets, out=offsets)
        offsets += before

    def finish(self, provenance: Mapping[str, Any] | None = None, *,
               feature_names: Sequence[str] | None = None) -> EventSet:
        """The events read, checked (see the module docstring); ``provenance`` is added
        to the EventSet's (which names ``origin``); ``feature_names`` names the features
        (default: their columns)."""
        cols = self.columns
        sel = f" passing the selection '{cols.selection.text}'" if cols.selection else ""
        if self.limit is not None and self.filled < self.limit:
            raise ValueError(f"{self.origin}: has {self.filled} rows{sel}, n_events asks for "
                             f"{self.limit}")
        if self.filled == 0:
            raise ValueError(f"{self.origin}: no rows{sel} (of {self.read} read)")
        n = self.filled
        weights = None
        if cols.weight is not None:
            weights = self._flat[cols.weight].array()
            total = float(weights.sum())
            if not total > 0:
                raise ValueError(f"{self.origin}: the weights in column '{cols.weight}' sum "
                                 f"to {total:g} over {n} events; a sample's total weight "
                                 "must be positive")
        theta = np.stack([self._flat[c].array() for c, _, _ in cols.theta.values()],
                         axis=1) if cols.theta else None
        if self._buffer is not None and not self._blocks:
            features = self._buffer[:n]
        else:
            head = [] if self._buffer is None else [self._buffer[:n - sum(map(len,
                                                                          self._blocks))]]
            features = np.concatenate([*head, *self._blocks]) if n else \
                np.empty((0, len(cols.features)))
            self._blocks = []
        particles = None
        if cols.particles:
            import awkward as ak

            # what ak.unflatten(ak.zip(values), counts) makes, from the offsets
            content = ak.contents.RecordArray(
                [ak.contents.NumpyArray(self._values[f].array()) for f in cols.particles],
                list(cols.particles),
                length=self._values[next(iter(cols.particles))].size)
            particles = ak.Array(ak.contents.ListOffsetArray(
                ak.index.Index64(self._offsets.array()), content))
        # every value was checked for NaN/inf as its chunk came in (naming the file, the
        # column and the row): the EventSet does not check them again
        names = cols.features if feature_names is None else tuple(feature_names)
        return EventSet(features=features, feature_names=names, theta=theta,
                        theta_names=tuple(cols.theta), weights=weights, particles=particles,
                        provenance={"origin": self.origin, **(provenance or {})},
                        _finite_checked=("features", "theta", "weights", "particles"))


def root_branch_kinds(tree: Any) -> dict[str, str]:
    """An uproot TTree's branches → :data:`FLAT` (a number per entry), :data:`JAGGED` (a
    list of numbers) or, for anything else, its type name."""
    from uproot.interpretation.jagged import AsJagged
    from uproot.interpretation.numerical import AsDtype

    def numeric(interp: Any) -> bool:
        if not isinstance(interp, AsDtype):
            return False
        dtype = interp.to_dtype
        return dtype.shape == () and dtype.kind in "biuf"

    out = {}
    for name in tree.keys(recursive=True):
        branch = tree[name]
        try:
            interp = branch.interpretation
        except Exception:  # a branch uproot cannot interpret: reported by its type name
            interp = None
        if numeric(interp):
            out[name] = FLAT
        elif isinstance(interp, AsJagged) and numeric(interp.content):
            out[name] = JAGGED
        else:
            out[name] = branch.typename or type(interp).__name__
    return out


def parquet_column_kinds(schema: Any) -> dict[str, str]:
    """A pyarrow schema's columns → :data:`FLAT` (a number per row), :data:`JAGGED` (a list
    of numbers, not booleans) or, for anything else, its type name."""
    import pyarrow.types as pt

    def numeric(t: Any) -> bool:
        return bool(pt.is_integer(t) or pt.is_floating(t) or pt.is_boolean(t))

    out = {}
    for f in schema:
        if numeric(f.type):
            out[f.name] = FLAT
        elif (pt.is_list(f.type) or pt.is_large_list(f.type)) and \
                numeric(f.type.value_type) and not pt.is_boolean(f.type.value_type):
            out[f.name] = JAGGED
        else:
            out[f.name] = str(f.type)
    return out


#: One chunk of a file's columns, as :meth:`EventAssembler.add` takes them: the file row
#: of its first row, flat column → ``[n]`` values, jagged column → (``[n]`` counts, flat
#: values), numpy in the file's dtypes.
Chunk = tuple[int, dict[str, np.ndarray], dict[str, tuple[np.ndarray, np.ndarray]]]


def root_chunks(tree: Any, flat: Sequence[str], jagged: Sequence[str], *, step_size: int,
                origin: str) -> Generator[Chunk, None, None]:
    """An uproot TTree's branches ``step_size`` entries at a time (``TTree.iterate``, only
    these branches) as :data:`Chunk`\\ s: flat branches and the offsets and values of
    jagged ones as uproot built them (no copy, no Python-level work per entry). A basket
    that cannot be read (corrupt, or the file changed since it was checked) raises
    ``ValueError("{origin}: cannot read: ...")``. Close the iterator when stopping early
    (:func:`contextlib.closing`): that closes uproot's."""
    chunks = tree.iterate(expressions=[*flat, *jagged], step_size=step_size, library="ak",
                          report=True)
    try:
        while True:
            try:
                arrays, report = next(chunks)
            except StopIteration:
                return
            except Exception as exc:  # a corrupt basket, a file changed since validation
                raise ValueError(f"{origin}: cannot read: {type(exc).__name__}: {exc}"
                                 ) from None
            yield (int(report.tree_entry_start), {c: _root_flat(arrays, c) for c in flat},
                   {c: _root_jagged(arrays, c) for c in jagged})
    finally:
        chunks.close()


def _root_content(arrays: Any, column: str) -> Any:
    """The layout of one branch in a chunk (a record array of the branches read)."""
    import awkward as ak

    layout = arrays.layout
    if isinstance(layout, ak.contents.RecordArray) and layout.has_field(column):
        return layout.content(column)
    return None


def _root_flat(arrays: Any, column: str) -> np.ndarray:
    """A flat branch of a chunk as numpy (its own dtype, no copy)."""
    import awkward as ak

    content = _root_content(arrays, column)
    if isinstance(content, ak.contents.NumpyArray) and content.data.ndim == 1:
        return np.asarray(content.data)
    return np.asarray(ak.to_numpy(arrays[column]))


def _root_jagged(arrays: Any, column: str) -> tuple[np.ndarray, np.ndarray]:
    """A jagged branch of a chunk: its counts and its flat values (numpy, its own dtype),
    from the list offsets and the content that uproot built (no copy of the values)."""
    import awkward as ak

    content = _root_content(arrays, column)
    if isinstance(content, ak.contents.ListOffsetArray) and \
            isinstance(content.content, ak.contents.NumpyArray) and \
            content.content.data.ndim == 1:
        offsets = np.asarray(content.offsets.data)
        values = np.asarray(content.content.data)[offsets[0]:offsets[-1]]
        return np.diff(offsets), values
    array = arrays[column]
    return (np.asarray(ak.to_numpy(ak.num(array, axis=1))),
            np.asarray(ak.to_numpy(ak.flatten(array, axis=1))))


def parquet_chunks(file: Any, flat: Sequence[str], jagged: Sequence[str], *, step_size: int,
                   path: str) -> Generator[Chunk, None, None]:
    """A ``pyarrow.parquet.ParquetFile``'s columns ``step_size`` rows at a time
    (``iter_batches``, only these columns) as :data:`Chunk`\\ s. A null (a missing value,
    or a missing list) is refused like a NaN: ``ValueError("{path}: column '...' has a
    null value at row N")`` (``null list`` for a missing list)."""
    row = 0
    for batch in file.iter_batches(batch_size=step_size, columns=[*flat, *jagged]):
        yield (row, {c: _parquet_flat(batch.column(c), c, path, row) for c in flat},
               {c: _parquet_jagged(batch.column(c), c, path, row) for c in jagged})
        row += batch.num_rows


def _null_row(array: Any) -> int | None:
    import pyarrow.compute as pc

    if not array.null_count:
        return None
    return int(np.argmax(pc.is_null(array).to_numpy(zero_copy_only=False)))


def _parquet_flat(array: Any, name: str, path: str, row: int) -> np.ndarray:
    j = _null_row(array)
    if j is not None:
        raise ValueError(f"{path}: column '{name}' has a null value at row {row + j}")
    return np.asarray(array.to_numpy(zero_copy_only=False))


def _parquet_jagged(array: Any, name: str, path: str, row: int
                    ) -> tuple[np.ndarray, np.ndarray]:
    """(counts, flat values) of a list column."""
    import pyarrow.compute as pc

    j = _null_row(array)
    if j is not None:
        raise ValueError(f"{path}: column '{name}' has a null list at row {row + j}")
    counts = pc.list_value_length(array).to_numpy(zero_copy_only=False)
    values = pc.list_flatten(array)
    k = _null_row(values)
    if k is not None:  # k indexes the flattened values: its row
        event = int(np.searchsorted(np.cumsum(counts), k, side="right"))
        raise ValueError(f"{path}: column '{name}' has a null value at row {row + event}")
    return np.asarray(counts), np.asarray(values.to_numpy(zero_copy_only=False))
