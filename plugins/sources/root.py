"""Source ``root``: read events from ROOT TTrees with uproot.

``files`` is a path, a glob or a list of them (relative to the spec file); the files are
read in that order (a glob's matches sorted) as one sample, chunk by chunk
(``TTree.iterate``, ``step_size`` entries at a time, only the branches needed) into the
result, so the peak memory is about the result plus one chunk; a jagged branch is taken
as the list offsets and the flat values that uproot built (numpy, no Python-level work per
event). Each file's tree is opened and parsed once for both the checks and the reading
(up to 64 files at a time; more are opened again to be read). Flat numeric branches are
the features (default: all of them except the weight and θ branches); ``particles`` maps
particle fields to jagged branches (``{pt: part_pt, eta: part_eta}``), which must have
the same counts per event; ``weight`` is a branch of per-event weights (negative ones
allowed, a non-positive total refused); ``selection`` keeps the events for which an
expression of flat branches is true (:mod:`ratiofit.selection`). Per-event θ comes from
branches that the sample names (``theta: {mu: {column: mu_gen}}``).

Every file's tree is checked when the spec is validated (missing file, tree or branch,
a branch of the wrong kind, a bad selection); NaN/inf values and θ outside its range
are refused naming the file, the branch and the entry (:mod:`ratiofit.file_events`).
``n_events`` absent reads every entry that passes the selection; more than that is an
error.

Example (a sample in a spec)::

    varied:
      source: root
      theta: {mu: {column: mu_gen}}
      options: {files: data/varied_*.root, tree: events, weight: w,
                particles: {pt: part_pt, eta: part_eta}, selection: "abs(x) < 4"}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import closing
from typing import Any

import numpy as np

from ratiofit.file_events import (
    EventAssembler,
    FileColumns,
    FileOptionError,
    describe_files,
    expand_files,
    file_columns,
    root_branch_kinds,
    root_chunks,
)
from ratiofit.hookspecs import hookimpl
from ratiofit.options import Option


class Root:
    name = "root"
    #: It reads data: it cannot simulate at a fitted θ (no simulation correction there).
    reads_files = True
    options: Mapping[str, Option] = {
        "files": Option(kind="path_list", required=True,
                        doc="ROOT file(s): a path, a glob or a list of them, read in order"),
        "tree": Option(kind="str", required=True, doc="name of the TTree in every file"),
        "features": Option(kind="str_list", default=None,
                           doc="flat numeric branches fed to the network (default: all but "
                               "the weight and theta branches)"),
        "particles": Option(kind="mapping", default=None,
                            doc="particle field -> jagged branch, e.g. {pt: part_pt}"),
        "weight": Option(kind="str", default=None,
                         doc="branch of per-event weights (may be negative)"),
        "selection": Option(kind="str", default=None,
                            doc="keep events where this expression of flat branches is true, "
                                "e.g. '(pt > 20) & (abs(eta) < 2.5)'"),
        "step_size": Option(kind="int", default=100_000, minimum=1,
                            doc="entries read per chunk"),
    }

    # -- the files' schema -------------------------------------------------------------
    def _tree(self, file: Any, path: str, tree: str) -> Any:
        import uproot

        try:
            obj = file[tree]
        except KeyError:
            trees = [k.split(";")[0] for k, c in file.classnames().items() if c == "TTree"]
            raise FileOptionError("tree", f"{path}: no tree '{tree}' (has: "
                                  f"{', '.join(dict.fromkeys(trees)) or 'no TTree'})") from None
        if not isinstance(obj, uproot.behaviors.TTree.TTree):
            raise FileOptionError("tree", f"{path}: '{tree}' is a {obj.classname}, not a TTree")
        return obj

    def _open(self, path: str) -> Any:
        import uproot

        try:
            return uproot.open(path)
        except FileNotFoundError:
            raise FileOptionError("files", f"{path}: file not found") from None
        except Exception as exc:  # not ROOT, truncated, unreadable
            raise FileOptionError("files", f"{path}: cannot read as a ROOT file: "
                                  f"{type(exc).__name__}: {exc}") from None

    @staticmethod
    def _schema(tree: Any) -> dict[str, str]:
        """Branch → FLAT (a number per entry), JAGGED (a list of numbers) or its type."""
        return root_branch_kinds(tree)

    def _columns(self, options: Mapping[str, Any], *, keep_open: int = 0
                 ) -> tuple[list[str], FileColumns, int, list[tuple[Any, Any]]]:
        """The files, the columns to read (checked in every file), the entries in all and
        the first ``keep_open`` files still open, as (file, tree) (the caller closes
        them), so that reading them does not open and parse their trees again."""
        files = expand_files(options["files"], what="ROOT file")
        columns: FileColumns | None = None
        total = 0
        kept: list[tuple[Any, Any]] = []
        try:
            for path in files:
                file = self._open(path)
                try:
                    tree = self._tree(file, path, options["tree"])
                    cols = file_columns(options, schema=self._schema(tree),
                                        origin=f"{path}:{options['tree']}", what="branch")
                    total += int(tree.num_entries)
                except BaseException:
                    file.close()
                    raise
                if len(kept) < keep_open:
                    kept.append((file, tree))
                else:
                    file.close()
                if columns is None:
                    columns = cols
                elif cols.features != columns.features:  # default features differ per file
                    raise FileOptionError("features", f"{path}: tree '{options['tree']}' "
                                          f"has the features {list(cols.features)}, "
                                          f"{files[0]} has {list(columns.features)}; list "
                                          "the features")
        except BaseException:
            for file, _ in kept:
                file.close()
            raise
        assert columns is not None
        return files, columns, total, kept

    # -- the Source protocol -------------------------------------------------------------
    def check(self, *, options: Mapping[str, Any],
              theta: Mapping[str, tuple[float, float]]) -> None:
        """At validation: every file opens, has the tree and the branches asked for, each
        of the right kind, and the selection parses over the flat branches."""
        self._columns(options)

    def feature_names(self, options: Mapping[str, Any]) -> Sequence[str]:
        files = expand_files(options["files"], what="ROOT file")
        with self._open(files[0]) as file:
            tree = self._tree(file, files[0], options["tree"])
            cols = file_columns(options, schema=self._schema(tree),
                                origin=f"{files[0]}:{options['tree']}", what="branch")
        return list(cols.features)

    def particle_fields(self, options: Mapping[str, Any]) -> Sequence[str]:
        return list(options["particles"] or {})

    def generate(self, *, n_events: int | None, theta: Mapping[str, np.ndarray],
                 options: Mapping[str, Any], rng: np.random.Generator) -> Any:
        """The first ``n_events`` entries passing the selection (``None``: all of them)."""
        files, cols, entries, kept = self._columns(options, keep_open=_KEEP_OPEN)
        origin = f"{describe_files(files)}:{options['tree']}"
        assembler = EventAssembler(cols, limit=n_events, origin=origin, capacity=entries)
        try:
            for k, path in enumerate(files):
                if assembler.done:
                    break
                file, tree = kept[k] if k < len(kept) else (self._open(path), None)
                with file:  # closed once read
                    if tree is None:  # past the files kept open: its tree again
                        tree = self._tree(file, path, options["tree"])
                    self._read(tree, cols, assembler, path=path,
                               step_size=options["step_size"])
        finally:
            for file, _ in kept:  # those not read (closing twice does nothing)
                file.close()
        return assembler.finish({"files": files, "tree": options["tree"]})

    @staticmethod
    def _read(tree: Any, cols: FileColumns, assembler: EventAssembler, *, path: str,
              step_size: int) -> None:
        """One file's entries, chunk by chunk, into ``assembler`` (until it is done)."""
        with closing(root_chunks(tree, cols.flat, cols.jagged, step_size=step_size,
                                 origin=f"{path}:{tree.name}")) as chunks:
            for first, flat, jagged in chunks:
                if assembler.add(flat, jagged, file=path, first_row=first):
                    break


#: Files that :meth:`Root.generate` keeps open between checking their trees and reading
#: them (each parsed once); the rest are opened again to be read.
_KEEP_OPEN = 64


@hookimpl
def ratiofit_sources() -> list[Any]:
    return [Root()]
