"""Run independent jobs (ensemble members, toys, scan points) through an executor.

The in-process :class:`LocalExecutor` is the default; :class:`DaskExecutor` runs the same
jobs on a ``dask.distributed`` cluster (a scheduler address, or a ``LocalCluster`` of
``workers`` processes); :class:`ProcessExecutor` runs them in spawned processes of this
machine (PYTHIA's blocks). All implement the :class:`Executor` protocol, and a job's result
depends only on its arguments (seeds included), never on which executor ran it.

The executors share the same failure and persistence rules:

- a job that raises is retried up to ``retries`` times; the other jobs still run, and
  when every job has had its turn the failures are raised together as one
  :class:`JobError` naming each failed job;
- a :class:`~ratiofit.errors.RatiofitError` raised by a job is an input error (a bad
  spec, unusable data): it is raised as it is, at once, without retries (jobs still
  running are cancelled; finished ones are kept);
- with ``results_dir``, each job's result is written atomically to
  ``results_dir/<job name>.json`` as soon as it arrives, and a later ``run`` with the same
  ``fingerprint`` returns the stored result instead of running the job again (listed in
  :attr:`LocalExecutor.skipped` / :attr:`DaskExecutor.skipped`).

Persisted results must be JSON-able (dicts, lists, strings, numbers, booleans, ``None``;
numpy scalars and arrays are converted to numbers and lists). With ``results_dir`` an
executor returns every result as it reads back from JSON (tuples become lists, numpy
values Python numbers), so a fresh run and a rerun that skips finished jobs return the
same objects. Job names are the keys of a results directory: they must be unique within
one, and stored results are only reused for a job with the same function and the same
plain (number, string, boolean) arguments.

Examples
--------
>>> def square(x: int) -> int:
...     return x * x
>>> LocalExecutor().run([Job(name=f"sq-{i}", function=square, kwargs={"x": i})
...                      for i in range(3)])
[0, 1, 4]
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

from ._atomic import json_default, publish
from .errors import RatiofitError

__all__ = ["DaskExecutor", "Executor", "ExecutorError", "Job", "JobError", "LocalExecutor",
           "ProcessExecutor"]

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


class ExecutorError(RatiofitError):
    """An executor could not start (no dask, unreachable scheduler, bad settings)."""


class JobError(ExecutorError):
    """One or more jobs failed after their retries; the message names each of them.

    Parameters
    ----------
    failures
        Job name → how it failed, one line reading on from "failed" ("after 3 attempts:
        RuntimeError: ...").
    """

    def __init__(self, failures: dict[str, str]) -> None:
        self.failures = dict(failures)
        parts = [f"'{name}' {why}" for name, why in self.failures.items()]
        if len(parts) == 1:
            name, why = next(iter(self.failures.items()))
            message = f"job '{name}' failed {why}"
        else:
            message = f"{len(parts)} jobs failed: " + "; ".join(parts)
        super().__init__(message)


@dataclass(frozen=True)
class Job:
    """A named call ``function(**kwargs)``.

    Parameters
    ----------
    name
        Identifies the job in error messages and in a results directory (its file there
        is the name, with characters other than letters, digits, ``.``, ``_`` and ``-``
        replaced).
    function
        An importable (module-level) function; a dask worker imports it by name.
    kwargs
        Its keyword arguments; they travel to dask workers with dask's own serialisation.
    """

    name: str
    function: Callable[..., Any]
    kwargs: dict[str, Any] = field(default_factory=dict)

    def key(self) -> str:
        """A digest of the function's qualified name and the job's plain arguments.

        Arguments that are numbers, strings, booleans or ``None`` (or lists of them) enter
        the digest; others (specs, samples, registries) are identified by the executor's
        ``fingerprint`` instead.
        """
        fn = f"{getattr(self.function, '__module__', '?')}." \
             f"{getattr(self.function, '__qualname__', repr(self.function))}"
        plain = {k: v for k, v in sorted(self.kwargs.items()) if _is_plain(v)}
        text = json.dumps([fn, plain], sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def _is_plain(value: Any) -> bool:
    if value is None or isinstance(value, bool | int | float | str):
        return True
    if isinstance(value, list | tuple):
        return all(_is_plain(v) for v in value)
    return False


class Executor(Protocol):
    """Anything that runs a list of :class:`Job` and returns their results in order."""

    def run(self, jobs: Sequence[Job]) -> list[Any]:
        """Run every job and return their results in order."""
        ...


def _one_line(exc: BaseException, limit: int = 300) -> str:
    text = " ".join(str(exc).split())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class _ResultStore:
    """Results of finished jobs as ``<dir>/<job name>.json`` (written atomically)."""

    def __init__(self, directory: str | os.PathLike[str], fingerprint: str) -> None:
        self.directory = Path(directory)
        self.fingerprint = fingerprint

    def path(self, job: Job) -> Path:
        stem = _UNSAFE.sub("_", job.name)
        if stem != job.name or stem.startswith("."):
            stem = f"{stem.lstrip('.')}-{hashlib.sha256(job.name.encode()).hexdigest()[:8]}"
        return self.directory / f"{stem}.json"

    def load(self, job: Job) -> tuple[bool, Any]:
        """``(True, result)`` for a stored result of this very job, else ``(False, None)``."""
        path = self.path(job)
        try:
            payload = json.loads(path.read_text())
        except (OSError, ValueError):  # absent, or unreadable: run the job again
            return False, None
        if not (isinstance(payload, dict) and payload.get("job") == job.name
                and payload.get("key") == job.key()
                and payload.get("fingerprint") == self.fingerprint and "result" in payload):
            return False, None
        return True, payload["result"]

    def save(self, job: Job, result: Any, *, attempts: int, seconds: float) -> Any:
        """Write the result and return it as read back from JSON."""
        payload = {"job": job.name, "key": job.key(), "fingerprint": self.fingerprint,
                   "attempts": attempts, "seconds": seconds, "result": result}
        try:
            text = json.dumps(payload, indent=1, default=json_default, allow_nan=True)
        except (TypeError, ValueError) as exc:
            raise JobError({job.name: f"to persist: its result is not JSON-able "
                            f"({_one_line(exc)}); executors with a results_dir persist JSON "
                            "only"}) from exc
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.path(job)
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=f".{path.stem}.",
                                   suffix=".json.tmp")
        try:
            with os.fdopen(fd, "w") as f:
                f.write(text)
            publish(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return json.loads(text)["result"]


class _BaseExecutor:
    """Validation, persistence and failure reporting shared by the executors."""

    def __init__(self, *, retries: int, results_dir: str | os.PathLike[str] | None,
                 fingerprint: str) -> None:
        if not (isinstance(retries, int) and retries >= 0):
            raise ExecutorError(f"retries must be a non-negative integer, got {retries!r}")
        self.retries = retries
        self.store = _ResultStore(results_dir, fingerprint) if results_dir is not None else None
        #: Names of the jobs the runs of this executor took from ``results_dir`` instead of
        #: running (one run_spec runs several batches: members, then replicas).
        self.skipped: list[str] = []
        #: Attempts each job of this executor's runs needed (jobs that were run only).
        self.attempts: dict[str, int] = {}

    def _prepare(self, jobs: Sequence[Job]) -> tuple[list[Any], list[int]]:
        """Check names; fill results from the store; return (results, indices to run)."""
        seen: set[str] = set()
        for job in jobs:
            if not job.name:
                raise ExecutorError("a job has an empty name")
            if self.store is not None and job.name in seen:
                raise ExecutorError(f"job name '{job.name}' is used twice; with a results "
                                    "directory names must be unique")
            seen.add(job.name)
        results: list[Any] = [None] * len(jobs)
        todo = []
        for i, job in enumerate(jobs):
            found, value = self.store.load(job) if self.store else (False, None)
            if found:
                results[i] = value
                self.skipped.append(job.name)
            else:
                todo.append(i)
        return results, todo

    def _retryable(self, exc: BaseException, attempt: int) -> bool:
        """Whether attempt ``attempt`` that raised ``exc`` is followed by another one;
        input errors are raised here."""
        if isinstance(exc, RatiofitError):
            raise exc  # an input error: the same at every attempt, and already one line
        return attempt <= self.retries

    def _finish(self, job: Job, result: Any, *, attempts: int, seconds: float) -> Any:
        self.attempts[job.name] = attempts
        if self.store is None:
            return result
        return self.store.save(job, result, attempts=attempts, seconds=seconds)

    @staticmethod
    def _failure(exc: BaseException, attempts: int) -> str:
        return f"after {attempts} attempt{'s' if attempts > 1 else ''}: {_one_line(exc)}"

    def __enter__(self) -> Any:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Release resources (nothing for in-process execution)."""


class LocalExecutor(_BaseExecutor):
    """Runs jobs one after the other in this process.

    Parameters
    ----------
    retries
        Extra attempts for a job that raises (0: none).
    results_dir
        Persist each result there as ``<job name>.json`` and skip finished jobs on a rerun
        (``None``: keep results in memory only).
    fingerprint
        Identifies what the jobs compute (e.g. a digest of the resolved spec); stored
        results with another fingerprint are run again and overwritten.

    Notes
    -----
    Without ``results_dir`` and with ``retries=0`` (the defaults) a failing job's own
    exception propagates unchanged and the remaining jobs are not run, as for a plain
    loop; otherwise failures are collected into one :class:`JobError`.
    """

    def __init__(self, *, retries: int = 0, results_dir: str | os.PathLike[str] | None = None,
                 fingerprint: str = "") -> None:
        super().__init__(retries=retries, results_dir=results_dir, fingerprint=fingerprint)

    def run(self, jobs: Sequence[Job]) -> list[Any]:
        """Run every job not already stored and return all results in order."""
        results, todo = self._prepare(jobs)
        plain = self.store is None and self.retries == 0
        failures: dict[str, str] = {}
        first: BaseException | None = None
        from .console import log

        for n, i in enumerate(todo, start=1):
            job = jobs[i]
            attempt = 0
            log.info("job %s (%d of %d) ...", job.name, n, len(todo))
            while True:
                attempt += 1
                t0 = time.perf_counter()
                try:
                    value = job.function(**job.kwargs)
                except Exception as exc:
                    if plain:
                        raise
                    if self._retryable(exc, attempt):
                        continue
                    failures[job.name] = self._failure(exc, attempt)
                    first = first or exc
                    break
                log.info("job %s done in %.1f s", job.name, time.perf_counter() - t0)
                try:
                    results[i] = self._finish(job, value, attempts=attempt,
                                              seconds=time.perf_counter() - t0)
                except JobError as exc:
                    failures.update(exc.failures)
                    first = first or exc
                break
        if failures:
            raise JobError(failures) from first
        return results


_RANDOM_FUNCTIONS = ("seed", "getstate", "setstate", "random", "uniform", "triangular",
                     "randint", "choice", "randrange", "sample", "shuffle", "choices",
                     "normalvariate", "lognormvariate", "expovariate", "vonmisesvariate",
                     "gammavariate", "gauss", "betavariate", "paretovariate",
                     "weibullvariate", "getrandbits", "randbytes", "binomialvariate")
_job_random = threading.local()
_job_random_installed = False


def _install_job_random() -> None:
    """Route the functions of the :mod:`random` module to a private ``random.Random`` in
    threads that are running a job, and to the usual shared one elsewhere (once per
    process).

    A dask worker's own threads (event loop, heartbeats) draw from the shared ``random``
    state while a job runs. A job that seeds it (``keras.utils.set_random_seed`` does,
    and Keras draws the seeds of unseeded initialisers from it) would otherwise get
    numbers that depend on the worker's timing, not only on its arguments.
    """
    global _job_random_installed
    if _job_random_installed:
        return
    import random

    shared: random.Random = random._inst  # type: ignore[attr-defined]  # the shared one

    def dispatcher(name: str) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            return getattr(getattr(_job_random, "r", None) or shared, name)(*args, **kwargs)

        call.__name__ = call.__qualname__ = name
        call.__doc__ = getattr(random.Random, name).__doc__
        return call

    for name in _RANDOM_FUNCTIONS:
        if hasattr(random, name) and hasattr(random.Random, name):
            setattr(random, name, dispatcher(name))
    _job_random_installed = True


def _call(function: Callable[..., Any], kwargs: dict[str, Any]) -> tuple[Any, float]:
    """Run one job on a worker, with its own Python ``random`` state, and time it."""
    import random

    _install_job_random()
    _job_random.r = random.Random()
    try:
        t0 = time.perf_counter()
        value = function(**kwargs)
        return value, time.perf_counter() - t0
    finally:
        del _job_random.r


#: Environment variables that size BLAS/OpenMP thread pools (numpy's reduction order).
_BLAS_THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


class ProcessExecutor(_BaseExecutor):
    """Runs jobs in ``workers`` spawned processes of this machine (a
    :class:`concurrent.futures.ProcessPoolExecutor` with the ``spawn`` start method: the
    workers start clean, with no forked TensorFlow, generator or lock state).

    For CPU-bound jobs that hold no state between them and whose arguments and results
    pickle (PYTHIA blocks); the failure and persistence rules are the other executors'.
    ``on_result(job, result)`` is called in this process as each result arrives (a
    progress bar); results are returned in job order. As with any spawned pool, a script
    that uses it needs the ``if __name__ == "__main__":`` guard.
    """

    def __init__(self, *, workers: int, retries: int = 0,
                 results_dir: str | os.PathLike[str] | None = None, fingerprint: str = "",
                 on_result: Callable[[Job, Any], None] | None = None) -> None:
        super().__init__(retries=retries, results_dir=results_dir, fingerprint=fingerprint)
        if not (isinstance(workers, int) and workers >= 1):
            raise ExecutorError(f"workers must be a positive integer, got {workers!r}")
        self.workers = workers
        self.on_result = on_result

    def run(self, jobs: Sequence[Job]) -> list[Any]:
        """Run every job not already stored; return all results in order."""
        import multiprocessing
        from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

        from .console import log

        results, todo = self._prepare(jobs)
        if not todo:
            return results
        failures: dict[str, str] = {}
        pool = ProcessPoolExecutor(max_workers=min(self.workers, len(todo)),
                                   mp_context=multiprocessing.get_context("spawn"))
        try:
            pending = {pool.submit(_call, jobs[i].function, jobs[i].kwargs): (i, 1)
                       for i in todo}
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    i, attempt = pending.pop(fut)
                    job = jobs[i]
                    try:
                        value, seconds = fut.result()
                    except Exception as exc:
                        if self._retryable(exc, attempt):
                            pending[pool.submit(_call, job.function, job.kwargs)] = (
                                i, attempt + 1)
                        else:
                            failures[job.name] = self._failure(exc, attempt)
                        continue
                    log.info("job %s done in %.1f s", job.name, seconds)
                    try:
                        results[i] = self._finish(job, value, attempts=attempt,
                                                  seconds=seconds)
                    except JobError as exc:
                        failures.update(exc.failures)
                        continue
                    if self.on_result is not None:
                        self.on_result(job, value)
        finally:  # on an error or Ctrl-C, drop the jobs not started yet
            pool.shutdown(wait=True, cancel_futures=True)
        if failures:
            raise JobError({jobs[i].name: failures[jobs[i].name] for i in todo
                            if jobs[i].name in failures})
        return results


class DaskExecutor(_BaseExecutor):
    """Runs jobs on a ``dask.distributed`` cluster.

    Parameters
    ----------
    scheduler
        Address of a running scheduler (``tcp://host:8786``); workers must see the same
        file system as this process when jobs write files (run directories). For results
        bit-identical to an in-process run, start the workers with the same BLAS/OpenMP
        thread settings (``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS``) as that run; a
        different count changes numpy's summation order (differences ~1e-12).
    workers
        Without ``scheduler``: start a ``LocalCluster`` with this many worker processes
        (default: one per CPU core) of ``threads_per_worker`` threads each.
    threads_per_worker
        Threads per local worker (1: each job has a process to itself, as TensorFlow
        training wants).
    processes
        Local workers as processes (``True``) or threads of this process.
    retries
        Extra attempts for a job that raises or whose worker dies.
    results_dir, fingerprint
        As for :class:`LocalExecutor`.
    client
        An existing ``distributed.Client`` to use instead (not closed by :meth:`close`).

    Notes
    -----
    The cluster is started on the first :meth:`run` and kept for later ones; call
    :meth:`close` (or use the executor as a context manager) to shut it down. Jobs are
    submitted all at once and their results written to ``results_dir`` in the order
    they finish, so a failure or an interruption keeps every result that arrived.
    """

    def __init__(self, *, scheduler: str | None = None, workers: int | None = None,
                 threads_per_worker: int = 1, processes: bool = True, retries: int = 2,
                 results_dir: str | os.PathLike[str] | None = None, fingerprint: str = "",
                 client: Any = None) -> None:
        super().__init__(retries=retries, results_dir=results_dir, fingerprint=fingerprint)
        if scheduler is not None and workers is not None:
            raise ExecutorError("give either a scheduler address or a number of local "
                                "workers, not both")
        if workers is not None and not (isinstance(workers, int) and workers >= 1):
            raise ExecutorError(f"workers must be a positive integer, got {workers!r}")
        self.scheduler, self.workers = scheduler, workers
        self.threads_per_worker, self.processes = threads_per_worker, processes
        self._client = client
        self._owns_client = client is None
        self._cluster: Any = None

    @property
    def client(self) -> Any:
        """The ``distributed.Client`` (connecting or starting the cluster on first use)."""
        if self._client is None:
            try:
                from distributed import Client, LocalCluster
            except ImportError as exc:
                raise ExecutorError("the dask executor needs dask.distributed, which is not "
                                    "installed: pip install 'ratiofit[dask]'") from exc
            try:
                if self.scheduler is not None:
                    self._client = Client(self.scheduler, timeout="20s")
                else:
                    import dask

                    # dask pins each worker's BLAS/OpenMP pools to one thread; this process
                    # does not, and a different thread count changes the order of numpy's
                    # reductions (fits then differ at ~1e-12). Workers inherit this
                    # process's settings instead, so results are bit-identical to the
                    # in-process executor (measured: bench/results/dask_ensemble.json).
                    environ = {k: v for k, v in dask.config.get(
                        "distributed.nanny.pre-spawn-environ", {}).items()
                        if k not in _BLAS_THREAD_VARIABLES}
                    environ.update({k: os.environ[k] for k in _BLAS_THREAD_VARIABLES
                                    if k in os.environ})
                    with dask.config.set({"distributed.nanny.pre-spawn-environ": environ}):
                        self._cluster = LocalCluster(
                            n_workers=self.workers or os.cpu_count() or 1,
                            threads_per_worker=self.threads_per_worker,
                            processes=self.processes, dashboard_address=":0")
                    self._client = Client(self._cluster)
            except (OSError, TimeoutError) as exc:
                where = f"scheduler '{self.scheduler}'" if self.scheduler else "a LocalCluster"
                raise ExecutorError(f"cannot connect to {where}: {_one_line(exc)}") from exc
        return self._client

    def close(self) -> None:
        """Close the client and the local cluster this executor started."""
        if self._owns_client and self._client is not None:
            self._client.close()
            self._client = None
        if self._cluster is not None:
            import logging

            # Workers that hold TensorFlow take a while to exit; stopping them is the point.
            nanny = logging.getLogger("distributed.nanny")
            level = nanny.level
            nanny.setLevel(logging.ERROR)
            try:
                self._cluster.close()
            finally:
                nanny.setLevel(level)
            self._cluster = None

    def run(self, jobs: Sequence[Job]) -> list[Any]:
        """Run every job not already stored on the cluster; return all results in order."""
        results, todo = self._prepare(jobs)
        if not todo:
            return results
        from distributed import as_completed

        client = self.client
        pending: dict[Any, tuple[int, int]] = {}

        def submit(i: int, attempt: int) -> Any:
            job = jobs[i]
            fut = client.submit(_call, job.function, job.kwargs, pure=False,
                                key=f"ratiofit-{job.name}-{attempt}-{uuid.uuid4().hex[:8]}")
            pending[fut] = (i, attempt)
            return fut

        futures = [submit(i, 1) for i in todo]
        failures: dict[str, str] = {}
        try:
            queue = as_completed(futures)
            for fut in queue:
                i, attempt = pending.pop(fut)
                job = jobs[i]
                try:
                    value, seconds = fut.result()
                except Exception as exc:  # KilledWorker and cancellation too
                    if self._retryable(exc, attempt):
                        queue.add(submit(i, attempt + 1))
                    else:
                        failures[job.name] = self._failure(exc, attempt)
                    continue
                finally:
                    fut.release()
                try:
                    results[i] = self._finish(job, value, attempts=attempt, seconds=seconds)
                except JobError as exc:
                    failures.update(exc.failures)
        finally:
            for fut in pending:
                fut.cancel()
        if failures:
            raise JobError({jobs[i].name: failures[jobs[i].name] for i in todo
                            if jobs[i].name in failures})
        return results
