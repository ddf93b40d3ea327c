"""Source ``parquet``: read events from parquet files (e.g. real or external data).

``files`` is a path, a glob or a list of them (``path``, one file, is the older
spelling), relative to the spec file; the files are read in that order as one sample, in
batches of ``step_size`` rows (only the columns needed) into the result, so the peak
memory is about the result plus one batch. Flat numeric columns are the features
(``features``, or its alias ``columns``; default: all of them except the weight and θ
columns); ``particles`` maps particle fields to list-typed columns (``{pt: part_pt}``),
which must have the same lengths per row; ``weight`` names a column of per-event weights
(negative ones allowed, a non-positive total refused); ``selection`` keeps the rows for
which an expression of flat columns is true (:mod:`ratiofit.selection`). Per-event θ
comes from columns that the sample names (``theta: {mu: {column: mu_gen}}``).

``n_events`` absent reads every row that passes the selection; more than that is an
error, never a shorter sample. NaN/inf/null values and θ outside its range are refused
with the file, the column and the row named (:mod:`ratiofit.file_events`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ratiofit.file_events import (
    EventAssembler,
    FileColumns,
    FileOptionError,
    describe_files,
    expand_files,
    file_columns,
    parquet_chunks,
    parquet_column_kinds,
)
from ratiofit.hookspecs import hookimpl
from ratiofit.options import Option


class Parquet:
    name = "parquet"
    #: It reads data: it cannot simulate at a fitted θ (no simulation correction there).
    reads_files = True
    options: Mapping[str, Option] = {
        "files": Option(kind="path_list", default=None,
                        doc="parquet file(s): a path, a glob or a list of them, read in order"),
        "path": Option(kind="path", default=None, doc="one parquet file (or use 'files')"),
        "features": Option(kind="str_list", default=None,
                           doc="flat numeric columns fed to the network (default: all but "
                               "the weight and theta columns)"),
        "columns": Option(kind="str_list", default=None, doc="the same as 'features'"),
        "particles": Option(kind="mapping", default=None,
                            doc="particle field -> list-typed column, e.g. {pt: part_pt}"),
        "weight": Option(kind="str", default=None,
                         doc="column of per-event weights (may be negative)"),
        "selection": Option(kind="str", default=None,
                            doc="keep rows where this expression of flat columns is true, "
                                "e.g. '(pt > 20) & (abs(eta) < 2.5)'"),
        "step_size": Option(kind="int", default=100_000, minimum=1, doc="rows read per batch"),
    }

    @staticmethod
    def _files(options: Mapping[str, Any]) -> list[str]:
        if (options["path"] is None) == (options["files"] is None):
            raise _PathError("give 'files' (a path, glob or list) or 'path', not "
                             f"{'both' if options['path'] else 'neither'}")
        if options["path"] is not None:
            try:
                return expand_files([options["path"]], what="parquet file")
            except FileOptionError as exc:
                raise _PathError(str(exc)) from None
        return expand_files(options["files"], what="parquet file")

    @staticmethod
    def _features(options: Mapping[str, Any]) -> dict[str, Any]:
        if options["features"] is not None and options["columns"] is not None:
            raise FileOptionError("columns", "give 'features' or its alias 'columns', not both")
        features = options["features"] if options["features"] is not None else options["columns"]
        return {**options, "features": features}

    @staticmethod
    def _schema(path: str, field: str) -> dict[str, str]:
        """Column → FLAT (a number per row), JAGGED (a list of numbers) or its type."""
        import pyarrow.parquet as pq

        try:
            schema = pq.read_schema(path)
        except Exception as exc:  # not parquet, unreadable, truncated
            err = FileOptionError(field, f"{path}: cannot read a parquet schema: {exc}")
            raise err from None
        return parquet_column_kinds(schema)

    def _columns(self, options: Mapping[str, Any]) -> tuple[list[str], FileColumns]:
        """The files and the columns to read (checked in every file)."""
        files = self._files(options)
        opts = self._features(options)
        field = "path" if options["path"] is not None else "files"
        columns: FileColumns | None = None
        for path in files:
            cols = file_columns(opts, schema=self._schema(path, field), origin=path)
            if columns is None:
                columns = cols
            elif cols.features != columns.features:
                raise FileOptionError("features", f"{path} has the features "
                                      f"{list(cols.features)}, {files[0]} has "
                                      f"{list(columns.features)}; list the features")
        assert columns is not None
        return files, columns

    # -- the Source protocol -------------------------------------------------------------
    def check(self, *, options: Mapping[str, Any],
              theta: Mapping[str, tuple[float, float]]) -> None:
        """At validation: every file is parquet and has the columns asked for, each of the
        right kind, and the selection parses over the flat columns."""
        self._columns(options)

    def feature_names(self, options: Mapping[str, Any]) -> Sequence[str]:
        files = self._files(options)
        field = "path" if options["path"] is not None else "files"
        cols = file_columns(self._features(options), schema=self._schema(files[0], field),
                            origin=files[0])
        return list(cols.features)

    def particle_fields(self, options: Mapping[str, Any]) -> Sequence[str]:
        return list(options["particles"] or {})

    def generate(self, *, n_events: int | None, theta: Mapping[str, np.ndarray],
                 options: Mapping[str, Any], rng: np.random.Generator) -> Any:
        """The first ``n_events`` rows passing the selection (``None``: all of them)."""
        import pyarrow.parquet as pq

        files, cols = self._columns(options)
        try:
            readers = [pq.ParquetFile(path) for path in files]
        except Exception as exc:
            raise ValueError(f"{describe_files(files)}: cannot read parquet: {exc}") from None
        assembler = EventAssembler(cols, limit=n_events, origin=describe_files(files),
                                   capacity=sum(r.metadata.num_rows for r in readers))
        for path, reader in zip(files, readers, strict=True):
            for row, flat, jagged in parquet_chunks(reader, cols.flat, cols.jagged,
                                                    step_size=options["step_size"],
                                                    path=path):
                if assembler.add(flat, jagged, file=path, first_row=row):
                    break
            if assembler.done:
                break
        return assembler.finish({"files": files})


class _PathError(FileOptionError):
    """A problem with option ``path`` (the spec validator points at it)."""

    def __init__(self, message: str) -> None:
        super().__init__("path", message)


@hookimpl
def ratiofit_sources() -> list[Any]:
    return [Parquet()]
