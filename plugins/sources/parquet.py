"""Source ``parquet``: read flat features from a parquet file (e.g. real or external data).

Reads the first ``n_events`` rows of the listed ``columns`` (default: every numeric
column). Non-finite values are refused with the file, column and first row named; a
file with fewer rows than ``n_events`` is an error, never silently shortened.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ratiofit.hookspecs import hookimpl
from ratiofit.options import Option


class Parquet:
    name = "parquet"
    #: It reads data: it cannot simulate at a fitted θ (no simulation correction there).
    reads_files = True
    options: Mapping[str, Option] = {
        "path": Option(kind="str", required=True, doc="parquet file to read"),
        "columns": Option(kind="str_list", default=None,
                          doc="feature columns (default: all numeric columns)"),
    }

    def _table(self, options: Mapping[str, Any]) -> Any:
        import pyarrow.parquet as pq

        try:
            return pq.read_table(options["path"], columns=options["columns"])
        except FileNotFoundError:
            raise ValueError(f"{options['path']}: file not found") from None
        except Exception as exc:
            raise ValueError(f"{options['path']}: cannot read parquet: {exc}") from None

    def _schema(self, options: Mapping[str, Any]) -> Any:
        import os

        import pyarrow.parquet as pq

        path = options["path"]
        if not os.path.exists(path):
            raise _PathError(f"{path}: file not found")
        if not os.path.isfile(path):
            raise _PathError(f"{path}: not a file (a parquet source reads one file)")
        try:
            return pq.read_schema(path)
        except Exception as exc:  # not parquet, unreadable, truncated
            raise _PathError(f"{path}: cannot read a parquet schema: {exc}") from None

    def check(self, *, options: Mapping[str, Any],
              theta: Mapping[str, tuple[float, float]]) -> None:
        """At validation: the file exists, is parquet, and has the columns asked for."""
        schema = self._schema(options)
        if options["columns"] is not None:
            missing = [c for c in options["columns"] if c not in schema.names]
            if missing:
                err = ValueError(f"{options['path']}: no column(s) {missing} (it has "
                                 f"{', '.join(schema.names)})")
                err.field = "columns"  # type: ignore[attr-defined]
                raise err

    def feature_names(self, options: Mapping[str, Any]) -> Sequence[str]:
        if options["columns"] is not None:
            return list(options["columns"])
        import pyarrow.types as pt

        schema = self._schema(options)
        return [f.name for f in schema if pt.is_integer(f.type) or pt.is_floating(f.type)]

    def generate(self, *, n_events: int, theta: Mapping[str, np.ndarray],
                 options: Mapping[str, Any], rng: np.random.Generator) -> np.ndarray:
        names = self.feature_names(options)
        table = self._table({**options, "columns": names})
        if table.num_rows < n_events:
            raise ValueError(f"{options['path']}: has {table.num_rows} rows, "
                             f"n_events asks for {n_events}")
        cols = []
        for name in names:
            col = table.column(name).to_numpy(zero_copy_only=False)[:n_events].astype(np.float64)
            bad = ~np.isfinite(col)
            if bad.any():
                raise ValueError(f"{options['path']}: column '{name}' has {int(bad.sum())} "
                                 f"NaN/inf value(s) (first at row {int(np.argmax(bad))})")
            cols.append(col)
        return np.stack(cols, axis=1)


class _PathError(ValueError):
    """A problem with option ``path`` (the spec validator points at it)."""

    field = "path"


@hookimpl
def ratiofit_sources() -> list[Any]:
    return [Parquet()]
