"""What a run says while it runs: one log line per stage, on the ``ratiofit`` logger.

On a terminal the trainings draw progress bars and the stage lines are off (``-v`` turns
them on); written to a file or a batch system's log, where bars are unreadable, the stage
lines are on, so a long run is never silent until its end. ``-q`` keeps only warnings.
Each line has the wall-clock time and, at a stage's end, its duration::

    12:03:41 ratiofit: job member-0 (1 of 1) ...
    12:04:20 ratiofit: job member-0 done in 38.6 s

>>> import logging
>>> with stage("a doctest stage"):
...     pass
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["configure", "log", "stage"]

log = logging.getLogger("ratiofit")


@contextmanager
def stage(what: str) -> Iterator[None]:
    """Log ``what ...`` now and ``what done in X s`` when the block ends without error."""
    log.info("%s ...", what)
    t0 = time.perf_counter()
    yield
    log.info("%s done in %.1f s", what, time.perf_counter() - t0)


def configure(*, verbose: bool = False, quiet: bool = False) -> None:
    """The CLI's console: stage lines on stderr at INFO where stderr is not a terminal or
    with ``verbose``, warnings only with ``quiet``."""
    level = logging.WARNING if quiet else (
        logging.INFO if verbose or not sys.stderr.isatty() else logging.WARNING)
    log.setLevel(level)
    if not any(getattr(h, "_ratiofit", False) for h in log.handlers):
        handler = logging.StreamHandler()  # sys.stderr at emit time
        handler.setFormatter(logging.Formatter("%(asctime)s ratiofit: %(message)s",
                                               datefmt="%H:%M:%S"))
        handler._ratiofit = True  # type: ignore[attr-defined]
        log.addHandler(handler)
        log.propagate = False
