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

    def feature_names(self, options: Mapping[str, Any]) -> Sequence[str]:
        if options["columns"] is not None:
            return list(options["columns"])
        import pyarrow.parquet as pq
        import pyarrow.types as pt

        try:
            schema = pq.read_schema(options["path"])
        except FileNotFoundError:
            raise ValueError(f"{options['path']}: file not found") from None
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


@hookimpl
def ratiofit_sources() -> list[Any]:
    return [Parquet()]
