"""Run independent jobs (ensemble members, toys, scan points) through an executor.

The in-process :class:`LocalExecutor` is the default. Other executors (a dask
cluster) implement the same :class:`Executor` protocol; a job's result must depend only
on its arguments (seeds included), never on which executor ran it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = ["Executor", "Job", "LocalExecutor"]


@dataclass(frozen=True)
class Job:
    """A named call ``function(**kwargs)``."""

    name: str
    function: Callable[..., Any]
    kwargs: dict[str, Any] = field(default_factory=dict)


class Executor(Protocol):
    def run(self, jobs: Sequence[Job]) -> list[Any]:
        """Run every job and return their results in order."""
        ...


class LocalExecutor:
    """Runs jobs one after the other in this process."""

    def run(self, jobs: Sequence[Job]) -> list[Any]:
        return [job.function(**job.kwargs) for job in jobs]
