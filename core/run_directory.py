"""A run directory holds one run: locked while it runs, never a mix of two.

``RUN/.ratiofit-run.json`` (the manifest, written atomically) names the run's fingerprint
(the resolved spec and, from the CLI, ratiofit's code) and its state: ``running``,
``done`` or ``failed``. Entering a :class:`RunDirectory`

- takes an exclusive lock (``RUN/.lock``, ``flock``): a second run into the same
  directory stops at once with a one-line error instead of interleaving its files;
- clears what a previous run of *another* fingerprint left (its results, reweighters,
  plots and stored jobs), so that no file of the old run survives beside the new one; a
  rerun of the same fingerprint keeps its finished jobs (``RUN/jobs``) to reuse them;
- removes the previous ``result.json`` and ``FAILED`` until this run writes its own.

A run that raises leaves ``RUN/FAILED`` (the error, one line) and the manifest's state
``failed``. A directory that is neither empty nor a ratiofit run directory is refused
rather than cleared.

>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp()) / "run"
>>> with RunDirectory(d, fingerprint="abc"):
...     _ = (d / "result.json").write_text("{}")
>>> read_manifest(d)["state"]
'done'
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from ._atomic import write_text_atomic
from .errors import RatiofitError

__all__ = ["MANIFEST", "RunDirectory", "read_manifest"]

#: The manifest's file name inside a run directory.
MANIFEST = ".ratiofit-run.json"
_LOCK = ".lock"
#: What marks a directory written by a ratiofit before the manifest existed.
_LEGACY = ("result.json", "spec.yaml", "jobs", "reweighter")


def read_manifest(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The manifest of run directory ``path`` (``None`` where there is none or it is torn)."""
    try:
        value = json.loads((Path(path) / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


class RunDirectory:
    """The context of one run writing into ``path`` (see the module docstring)."""

    def __init__(self, path: str | os.PathLike[str], *, fingerprint: str) -> None:
        self.path = Path(path)
        self.fingerprint = fingerprint
        self._lock_fd: int | None = None

    def _write_manifest(self, state: str, **extra: Any) -> None:
        body = {"fingerprint": self.fingerprint, "state": state, "pid": os.getpid(),
                "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **extra}
        write_text_atomic(self.path / MANIFEST, json.dumps(body))

    def __enter__(self) -> RunDirectory:
        import fcntl

        if self.path.exists() and not self.path.is_dir():
            raise RatiofitError(f"{self.path}: exists and is not a directory")
        self.path.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path / _LOCK, os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            owner = read_manifest(self.path) or {}
            raise RatiofitError(f"{self.path}: another ratiofit run is writing into it "
                                f"(pid {owner.get('pid', '?')}); wait for it or choose "
                                "another output directory") from None
        self._lock_fd = fd
        try:
            self._claim()
        except BaseException:
            self._unlock()
            raise
        return self

    def _claim(self) -> None:
        entries = [p for p in self.path.iterdir() if p.name not in (_LOCK, MANIFEST)]
        manifest = read_manifest(self.path)
        if entries and manifest is None and not any(
                (self.path / name).exists() for name in _LEGACY):
            raise RatiofitError(f"{self.path}: not empty and not a ratiofit run directory; "
                                "choose another output directory or empty it")
        if entries and (manifest is None or manifest.get("fingerprint") != self.fingerprint):
            from .console import log

            log.info("%s held a run of another spec or ratiofit: cleared", self.path)
            for p in entries:
                if p.is_dir() and not p.is_symlink():
                    shutil.rmtree(p)
                else:
                    p.unlink()
        for stale in ("result.json", "FAILED"):
            (self.path / stale).unlink(missing_ok=True)
        self._write_manifest("running")

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor releases the flock
            self._lock_fd = None

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            if exc is None:
                self._write_manifest("done")
            else:
                line = " ".join(str(exc).split()) or type(exc).__name__
                (self.path / "FAILED").write_text(f"{type(exc).__name__}: {line}\n")
                self._write_manifest("failed", error=line)
        finally:
            self._unlock()
