"""Apply a saved reweighter to events in files (``ratiofit reweight``).

The features (and particle fields) the reweighter's signature names are read by name
from parquet files (pyarrow) or ROOT TTrees (uproot), ``step_size`` events at a time, and
every event gets ``log_w`` = log w(x, θ) (what :meth:`Reweighter.log_ratio
<ratiofit.reweighter.Reweighter.log_ratio>` returns, calibration included) and
``w = exp(log_w)``, both float64, in the input's order:

- an output ending in ``.parquet``: a parquet file with columns ``log_w`` and ``w``;
- an output ending in ``.root``: a ROOT file with a TTree :data:`FRIEND_TREE` (branches
  ``log_w``, ``w``) with as many entries as the input tree, for ``TTree::AddFriend``.

Either holds a record of what made it (the reweighters' checksums, θ, the input), in
the parquet schema's metadata (key ``ratiofit``) or as a ``TObjString``
:data:`INFO_KEY`. With several inputs, input ``dir/NAME.EXT`` writes
``OUT_DIR/OUT_STEM.NAME.OUT_EXT`` (:func:`output_paths`).

Values are checked as the file sources check them (:mod:`ratiofit.file_events`): a
NaN/inf/null feature or particle value is refused naming the file, the column and the
row (the entry number in that file, from 0). Outputs are written to temporary files
beside them and renamed only when every input is done: an error or Ctrl-C leaves no
output, not even a part of one.
"""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
from collections.abc import Generator, Iterator, Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ._atomic import json_default, publish
from .errors import DataError

__all__ = ["DEFAULT_STEP", "FRIEND_TREE", "INFO_KEY", "output_paths", "parse_assignments",
           "parse_theta", "reweight_files"]

#: Events read, evaluated and written at a time: 2^17, two of the reweighter's evaluation
#: batches of 65536 (a chunk of 10^5 pads its second batch from 34464 to 65536 events).
DEFAULT_STEP = 131_072
#: The name of the friend tree a ROOT output holds.
FRIEND_TREE = "ratiofit_weights"
#: The ROOT output's record of what made it (a TObjString of JSON).
INFO_KEY = "ratiofit_weights_info"
_FORMATS = {".parquet": "parquet", ".pq": "parquet", ".root": "root"}
_F32_MAX = float(np.finfo(np.float32).max)


def parse_assignments(items: Sequence[str], *, option: str) -> dict[str, str]:
    """``NAME=VALUE`` items → a dict; a malformed or repeated NAME is a :class:`DataError`.

    >>> parse_assignments(["mu=0.5"], option="--theta")
    {'mu': '0.5'}
    """
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not name or not value:
            raise DataError(f"{option} {item!r}: expected NAME=VALUE")
        if name in out:
            raise DataError(f"{option}: '{name}' given twice")
        out[name] = value
    return out


def parse_theta(items: Sequence[str], parameters: Any) -> dict[str, float]:
    """``--theta NAME=VALUE`` items → θ: every parameter given once, each a number inside
    its range (``parameters``: a :class:`~ratiofit.parameters.ParameterSet`)."""
    given = parse_assignments(items, option="--theta")
    names = list(parameters.names)
    unknown = [n for n in given if n not in names]
    if unknown:
        raise DataError(f"--theta: unknown parameter '{unknown[0]}'; the reweighter is "
                        f"parameterised in {names or 'nothing'}")
    missing = [n for n in names if n not in given]
    if missing:
        raise DataError(f"--theta: no value for {', '.join(missing)}; give --theta NAME=VALUE "
                        f"for every parameter of the reweighter ({', '.join(names)})")
    theta: dict[str, float] = {}
    for p in parameters:
        try:
            value = float(given[p.name])
        except ValueError:
            raise DataError(f"--theta {p.name}={given[p.name]}: not a number") from None
        if not math.isfinite(value) or not p.low <= value <= p.high:
            raise DataError(f"--theta {p.name}={given[p.name]}: outside the reweighter's range "
                            f"[{p.low:g}, {p.high:g}]")
        theta[p.name] = value
    return theta


def _format(path: str | os.PathLike[str], what: str) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in _FORMATS:
        raise DataError(f"{path}: unknown {what} format '{suffix or '(no suffix)'}'; "
                        "expected .parquet or .root")
    return _FORMATS[suffix]


def output_paths(output: str | os.PathLike[str], inputs: Sequence[str | os.PathLike[str]]
                 ) -> list[Path]:
    """The file each input's weights go to: ``output`` itself for one input; for several,
    ``OUT_STEM.INPUT_STEM.OUT_EXT`` beside ``output`` (two inputs with the same stem are
    refused, as is an output that would overwrite an input).

    >>> [str(p) for p in output_paths("w/weights.root", ["a/x.root", "b/y.root"])]
    ['w/weights.x.root', 'w/weights.y.root']
    """
    out = Path(output)
    _format(out, "output")
    if len(inputs) == 1:
        paths = [out]
    else:
        stems = [Path(p).stem for p in inputs]
        seen: dict[str, str] = {}
        for stem, path in zip(stems, inputs, strict=True):
            if stem in seen:
                raise DataError(f"inputs {seen[stem]} and {path} have the same name '{stem}': "
                                f"their outputs ({out.stem}.{stem}{out.suffix}) would collide; "
                                "run them separately")
            seen[stem] = str(path)
        paths = [out.with_name(f"{out.stem}.{stem}{out.suffix}") for stem in stems]
    for p, src in zip(paths, inputs, strict=True):
        if os.path.exists(src) and p.exists() and os.path.samefile(p, src):
            raise DataError(f"{p}: the output would overwrite its input")
    return paths


# -- reading ---------------------------------------------------------------------------
class _Input:
    """One input file: its schema (column → FLAT, JAGGED or a type name), its entries,
    and its columns chunk by chunk as (first row, flat columns, jagged (counts, values)),
    read as the ``parquet`` and ``root`` sources read them
    (:func:`~ratiofit.file_events.parquet_chunks`,
    :func:`~ratiofit.file_events.root_chunks`)."""

    path: str
    origin: str
    entries: int

    def schema(self) -> dict[str, str]:
        raise NotImplementedError

    def chunks(self, flat: list[str], jagged: list[str], step: int
               ) -> Iterator[tuple[int, dict[str, np.ndarray],
                                   dict[str, tuple[np.ndarray, np.ndarray]]]]:
        raise NotImplementedError

    def close(self) -> None:
        pass


class _ParquetInput(_Input):
    def __init__(self, path: str) -> None:
        import pyarrow.parquet as pq

        self.path = self.origin = path
        try:
            self._file = pq.ParquetFile(path)
        except Exception as exc:  # not parquet, truncated, unreadable
            raise DataError(f"{path}: cannot read as a parquet file: {exc}") from None
        self.entries = int(self._file.metadata.num_rows)

    def schema(self) -> dict[str, str]:
        from .file_events import parquet_column_kinds

        return parquet_column_kinds(self._file.schema_arrow)

    def chunks(self, flat: list[str], jagged: list[str], step: int
               ) -> Iterator[tuple[int, dict[str, np.ndarray],
                                   dict[str, tuple[np.ndarray, np.ndarray]]]]:
        from .file_events import parquet_chunks

        return _data_errors(parquet_chunks(self._file, flat, jagged, step_size=step,
                                           path=self.path))


def _data_errors(chunks: Generator[Any, None, None]) -> Iterator[Any]:
    """``chunks``, where a value they refuse (a null) or a basket that cannot be read
    raises the :class:`DataError` it is; closed when done."""
    with closing(chunks):
        try:
            yield from chunks
        except ValueError as exc:
            raise DataError(str(exc)) from None


class _RootInput(_Input):
    def __init__(self, path: str, tree: str | None) -> None:
        import uproot

        self.path = path
        try:
            self._file = uproot.open(path)
        except Exception as exc:  # not ROOT, truncated, unreadable
            raise DataError(f"{path}: cannot read as a ROOT file: {type(exc).__name__}: "
                            f"{exc}") from None
        classes = {k.split(";")[0]: c for k, c in self._file.classnames().items()}
        trees = [k for k, c in classes.items() if c == "TTree"]
        if tree is None:
            if len(trees) != 1:
                self._file.close()
                others = ", ".join(f"{k} ({c})" for k, c in classes.items()) or "nothing"
                raise DataError(f"{path}: has several TTrees ({', '.join(trees)}); name one "
                                "with --tree" if trees else
                                f"{path}: has no TTree (it holds {others})")
            tree = trees[0]
        elif tree not in trees:
            self._file.close()
            raise DataError(f"{path}: no tree '{tree}' (has: {', '.join(trees) or 'no TTree'})")
        self.tree_name = tree
        self._tree = self._file[tree]
        self.origin = f"{path}:{tree}"
        self.entries = int(self._tree.num_entries)

    def schema(self) -> dict[str, str]:
        from .file_events import root_branch_kinds

        return root_branch_kinds(self._tree)

    def chunks(self, flat: list[str], jagged: list[str], step: int
               ) -> Iterator[tuple[int, dict[str, np.ndarray],
                                   dict[str, tuple[np.ndarray, np.ndarray]]]]:
        from .file_events import root_chunks

        return _data_errors(root_chunks(self._tree, flat, jagged, step_size=step,
                                        origin=self.origin))

    def close(self) -> None:
        self._file.close()


def _open_input(path: str, tree: str | None) -> _Input:
    fmt = _format(path, "input")
    if not os.path.exists(path):
        raise DataError(f"{path}: file not found")
    if not os.path.isfile(path):
        raise DataError(f"{path}: not a file")
    return _ParquetInput(path) if fmt == "parquet" else _RootInput(path, tree)


# -- writing ---------------------------------------------------------------------------
class _Output:
    """A temporary file beside ``path``, written chunk by chunk, published by :meth:`keep`."""

    def __init__(self, path: Path, info: Mapping[str, Any]) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        self.tmp = tmp
        self.info = json.dumps(info, sort_keys=True, default=json_default)
        self.rows = 0

    def write(self, log_w: np.ndarray, w: np.ndarray) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def keep(self) -> None:
        publish(self.tmp, self.path)

    def discard(self) -> None:
        try:
            self.close()
        except Exception:  # already closed, or broken: the file goes anyway
            pass
        if os.path.exists(self.tmp):
            os.unlink(self.tmp)


class _ParquetOutput(_Output):
    def __init__(self, path: Path, info: Mapping[str, Any]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        super().__init__(path, info)
        self._schema = pa.schema([("log_w", pa.float64()), ("w", pa.float64())],
                                 metadata={"ratiofit": self.info})
        self._writer: Any = None
        try:
            # no dictionary pages: distinct floats gain nothing from them, and the
            # attempt made writing 6x slower (pyarrow 26)
            self._writer = pq.ParquetWriter(self.tmp, self._schema, use_dictionary=False)
        except BaseException:
            self.discard()
            raise

    def write(self, log_w: np.ndarray, w: np.ndarray) -> None:
        import pyarrow as pa

        self._writer.write_table(pa.table({"log_w": log_w, "w": w}, schema=self._schema))
        self.rows += len(log_w)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


class _RootOutput(_Output):
    def __init__(self, path: Path, info: Mapping[str, Any]) -> None:
        import uproot

        super().__init__(path, info)
        self._file: Any = None
        try:
            # uncompressed: zlib took 0.7 s per 10^6 entries to save 4% on float64 weights
            self._file = uproot.recreate(self.tmp, compression=None)
            self._file[INFO_KEY] = self.info
            self._tree = self._file.mktree(FRIEND_TREE, {"log_w": np.float64, "w": np.float64},
                                           title="ratiofit: log w(x, theta) and w per entry")
        except BaseException:
            self.discard()
            raise

    def write(self, log_w: np.ndarray, w: np.ndarray) -> None:
        if len(log_w):
            self._tree.extend({"log_w": log_w, "w": w})
        self.rows += len(log_w)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


# -- applying --------------------------------------------------------------------------
@dataclass
class _Counts:
    events: int = 0
    sum_w: float = 0.0
    sum_w2: float = 0.0
    nonfinite: int = 0
    outside: int = 0


def reweight_files(rw: Any, inputs: Sequence[str], *, theta: Mapping[str, float],
                   output: str | os.PathLike[str], tree: str | None = None,
                   step_size: int = DEFAULT_STEP, features: Mapping[str, str] | None = None,
                   particles: Mapping[str, str] | None = None, progress: bool = False,
                   record: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """Write log w and w of every event of ``inputs`` (module docstring); return one
    summary per output (path, input, events, mean w, Kish ESS, counts of non-finite
    weights and of events outside the training range).

    ``rw``: a :class:`~ratiofit.reweighter.Reweighter` or
    :class:`~ratiofit.reweighter.AveragedReweighter`. ``features`` / ``particles`` map a
    feature name / particle field of its signature to the file's column or branch
    (default: the same name). ``record`` is added to each output's record.
    """
    from .console import stage
    from .file_events import EventAssembler, FileOptionError, file_columns

    if step_size < 1:
        raise DataError(f"step size must be at least 1, got {step_size}")
    sig = rw.signature
    features, particles = dict(features or {}), dict(particles or {})
    for what, given, names in (("--feature", features, sig.feature_names),
                               ("--particle", particles, sig.particle_names)):
        unknown = [n for n in given if n not in names]
        if unknown:
            raise DataError(f"{what} {unknown[0]}=...: the reweighter has no such "
                            f"{'feature' if what == '--feature' else 'particle field'} "
                            f"(it reads {list(names) or 'none'})")
    options = {"features": [features.get(n, n) for n in sig.feature_names],
               "particles": {f: particles.get(f, f) for f in sig.particle_names} or None}
    th = {n: float(v) for n, v in theta.items()}
    unknown = [n for n in th if n not in rw.parameters]
    if unknown:
        raise DataError(f"theta: unknown parameter '{unknown[0]}'; the reweighter is "
                        f"parameterised in {rw.parameters.names}")
    rw.parameters.as_matrix(th, 1)  # every parameter, each inside its range
    outs = output_paths(output, inputs)
    sources: list[_Input] = []
    columns: list[Any] = []
    writers: list[_Output] = []
    bar = None
    try:
        for path in inputs:
            sources.append(_open_input(str(path), tree))
            src = sources[-1]
            try:
                columns.append(file_columns(
                    options, schema=src.schema(), origin=src.origin,
                    what="branch" if isinstance(src, _RootInput) else "column"))
            except FileOptionError as exc:
                raise DataError(str(exc)) from None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=sum(s.entries for s in sources), desc="reweight", unit="event",
                       unit_scale=True, file=sys.stderr, leave=False)
        summaries = []
        for src, cols, out in zip(sources, columns, outs, strict=True):
            info = {**dict(record or {}), "input": src.path, "entries": src.entries,
                    "tree": getattr(src, "tree_name", None), "theta": th,
                    "columns": {"features": dict(zip(sig.feature_names, cols.features,
                                                     strict=True)),
                                "particles": dict(cols.particles)}}
            writer: _Output = (_ParquetOutput if _format(out, "output") == "parquet"
                               else _RootOutput)(out, info)
            writers.append(writer)
            counts = _Counts()
            with stage(f"reweight {src.origin} -> {out}"):
                for first, flat, jagged in src.chunks(cols.flat, cols.jagged, step_size):
                    n = len(next(iter(flat.values()))) if flat else \
                        len(next(iter(jagged.values()))[0])
                    if n == 0:
                        continue
                    _check_float32(flat, cols.features, src.path, first)
                    asm = EventAssembler(cols, limit=None, origin=src.origin)
                    try:
                        asm.add(flat, jagged, file=src.path, first_row=first)
                        events = asm.finish(feature_names=sig.feature_names)
                    except ValueError as exc:  # FileOptionError too: NaN/inf, counts differ
                        raise DataError(str(exc)) from None
                    log_w = np.asarray(rw.log_ratio(features=events, theta=th), np.float64)
                    with np.errstate(over="ignore"):
                        w = np.exp(log_w)
                    writer.write(log_w, w)
                    _tally(counts, rw, events, w)
                    if bar is not None:
                        bar.update(n)
            writer.close()
            if writer.rows != src.entries:
                raise DataError(f"{src.origin}: read {writer.rows} entries of {src.entries}; "
                                "the file changed or is damaged")
            summaries.append(_summary(out, src, counts))
        for writer in writers:
            writer.keep()
        return summaries
    finally:
        if bar is not None:
            bar.close()
        for writer in writers:
            writer.discard()
        for src in sources:
            src.close()


def _check_float32(flat: Mapping[str, np.ndarray], names: Sequence[str], path: str,
                   first: int) -> None:
    """The network computes in float32: a value beyond its range would become inf."""
    for name in names:
        values = flat[name]
        if values.dtype.kind not in "f" or values.dtype.itemsize <= 4:
            continue
        with np.errstate(invalid="ignore"):
            big = np.abs(values) > _F32_MAX
        if big.any():
            raise DataError(f"{path}: column '{name}' has {values[int(np.argmax(big))]:g} at "
                            f"row {first + int(np.argmax(big))}, beyond float32's range (the "
                            "network computes in float32)")


def _tally(counts: _Counts, rw: Any, events: Any, w: np.ndarray) -> None:
    finite = w[np.isfinite(w)]
    counts.events += len(w)
    counts.nonfinite += len(w) - len(finite)
    counts.sum_w += float(finite.sum())
    counts.sum_w2 += float(np.sum(finite ** 2))
    outside = getattr(rw, "outside_training_range", None)
    if outside is not None and len(rw.signature.feature_names):
        counts.outside += int(outside(events))


def _summary(out: Path, src: _Input, c: _Counts) -> dict[str, Any]:
    ess = c.sum_w ** 2 / c.sum_w2 if c.sum_w2 > 0 else 0.0
    return {"output": str(out), "input": src.path, "events": c.events,
            "mean_w": c.sum_w / max(c.events - c.nonfinite, 1), "ess": ess,
            "nonfinite_w": c.nonfinite, "outside_training_range": c.outside}
