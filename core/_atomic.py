"""Artefact I/O helpers: atomic replacement with ordinary permissions, JSON of numpy."""

from __future__ import annotations

import hashlib
import os
from typing import Any

import numpy as np


def publish(tmp: str | os.PathLike[str], path: str | os.PathLike[str]) -> None:
    """Give ``tmp`` the permissions a normal new file would get, then rename it to ``path``.

    ``tempfile.mkstemp`` creates files readable by the owner only; results are meant to be
    shared, so the process umask decides, as for any other file.
    """
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    os.replace(tmp, path)


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` atomically: a temporary sibling (``.NAME.*.tmp``),
    :func:`publish`-ed into place; a reader sees the old file or the new one, never half."""
    import tempfile

    target = os.fspath(path)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(target) or ".",
                               prefix=f".{os.path.basename(target)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        publish(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def json_default(o: Any) -> Any:
    """``json.dump(default=...)`` for numpy scalars and arrays."""
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def file_sha256(path: str | os.PathLike[str]) -> str:
    """The SHA-256 of a file's bytes (hex), read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
