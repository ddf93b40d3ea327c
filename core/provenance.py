"""What produced a result: the result schema's version, ratiofit's version and git commit,
and the versions of the libraries whose numerics the result depends on.

Every ``result.json``, ``fit.json`` and ``coverage.json`` carries it under ``ratiofit``
(docs/results-reference.md). The schema version counts incompatible changes of the result
layout (a key renamed, moved or re-meant), not additions.

>>> p = provenance()
>>> p["schema_version"] == SCHEMA_VERSION and "numpy" in p["dependencies"]
True
"""

from __future__ import annotations

import subprocess
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

from ._version import __version__

__all__ = ["DEPENDENCIES", "SCHEMA_VERSION", "git_commit", "provenance"]

#: The result layout's version (result.json, fit.json, coverage.json).
SCHEMA_VERSION = 1

#: Distributions whose versions are recorded (those not installed are left out).
DEPENDENCIES = ("numpy", "scipy", "keras", "tensorflow", "iminuit", "pyhf", "awkward",
                "hist", "pythia8mc", "fastjet", "dask")


@lru_cache(maxsize=1)
def git_commit() -> str | None:
    """The git commit of the ratiofit source tree, with ``-dirty`` where files differ from
    it; ``None`` outside a git checkout (an installed wheel)."""
    here = Path(__file__).resolve().parent
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True,
                              text=True, timeout=10, check=False)
        if head.returncode != 0 or not head.stdout.strip():
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "."],
                               cwd=here, capture_output=True, text=True, timeout=10,
                               check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def provenance() -> dict[str, Any]:
    """``{"schema_version", "version", "commit", "dependencies"}`` (JSON-ready)."""
    deps = {}
    for name in DEPENDENCIES:
        try:
            deps[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return {"schema_version": SCHEMA_VERSION, "version": __version__, "commit": git_commit(),
            "dependencies": deps}
