"""Atomic file replacement with ordinary permissions."""

from __future__ import annotations

import os


def publish(tmp: str | os.PathLike[str], path: str | os.PathLike[str]) -> None:
    """Give ``tmp`` the permissions a normal new file would get, then rename it to ``path``.

    ``tempfile.mkstemp`` creates files readable by the owner only; results are meant to be
    shared, so the process umask decides, as for any other file.
    """
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    os.replace(tmp, path)
