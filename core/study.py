"""What a study plugin receives: :class:`StudyContext`.

Studies (plugin kind ``study``) are the method-specific analysis steps a spec lists under
``studies``; see :class:`ratiofit.plugin_api.Study`. The context gives them the validated
spec, lazily generated samples, the registry (to build architectures and losses by
name), the reweighter trained by the spec (if any), their own output directory and a
seed derived from the spec's seed and the study's label, so reruns give the same numbers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .execution import Executor, LocalExecutor

if TYPE_CHECKING:
    from .events import EventSet
    from .registry import Registry
    from .reweighter import Reweighter
    from .spec import Spec

__all__ = ["StudyContext"]


@dataclass
class StudyContext:
    """Inputs of one study run.

    Parameters
    ----------
    label
        The study's key in the spec's ``studies`` section.
    spec
        The validated spec.
    samples
        Name → :class:`~ratiofit.events.EventSet`, generated on first access and cached
        (``samples.for_member(name, k)`` draws member ``k``'s independent copy).
    registry
        The plugin registry.
    outdir
        This study's directory (``<run>/studies/<label>``), created before ``run``.
    seed
        Seed for the study's random streams.
    reweighter
        The reweighter the spec trained (ensemble member 0), or ``None``.
    executor
        Runs independent jobs (pass a list of :class:`~ratiofit.execution.Job`).
    progress
        Whether progress bars are wanted.
    """

    label: str
    spec: Spec
    samples: Any
    registry: Registry
    outdir: Path
    seed: int
    reweighter: Reweighter | None = None
    executor: Executor | None = None
    progress: bool = False

    def sample(self, name: str) -> EventSet:
        """The spec's sample ``name``."""
        events: EventSet = self.samples[name]
        return events

    def rng(self, *keys: str | int) -> np.random.Generator:
        """A generator seeded from the study seed and ``keys`` (same keys → same stream)."""
        from .seeding import derive_seed

        return np.random.default_rng(derive_seed(self.seed, *[str(k) for k in keys]))

    def run_jobs(self, jobs: list[Any]) -> list[Any]:
        """Run independent jobs through the run's executor (in-process by default).

        Job names are prefixed with ``study-<label>-`` so that they stay unique among the
        run's persisted job results; results must then be JSON-able.
        """
        from dataclasses import replace

        named = [replace(job, name=f"study-{self.label}-{job.name}") for job in jobs]
        return (self.executor or LocalExecutor()).run(named)

    def options_of(self, kind: str, name: str) -> Mapping[str, Any]:
        """Default options of plugin ``name`` of ``kind`` (for building registry plugins)."""
        from .options import resolve_options

        impl = self.registry.get(kind, name)
        return resolve_options(getattr(impl, "options", {}), {}, where=name)
