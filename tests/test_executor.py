"""Executors: in-process and dask give the same numbers; retries, failures, persistence.

The dask tests share one ``LocalCluster`` (2 worker processes, 1 thread each) per module.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import gaussian_spec

from ratiofit.cli import main
from ratiofit.errors import RatiofitError
from ratiofit.execution import (
    DaskExecutor,
    ExecutorError,
    Job,
    JobError,
    LocalExecutor,
    ProcessExecutor,
)
from ratiofit.spec import load_spec_text
from ratiofit.workflow import run_spec

# A quickstart (specs/quickstart.yaml) scaled down to seconds, with a 2-member ensemble.
TINY = gaussian_spec(
    source_options={"width": 1.0},
    training={"epochs": 2, "batch_size": 256, "learning_rate": 0.005, "patience": 2},
    fit={"strategy": "likelihood", "data": "data", "reference": "nominal",
         "parameters": ["mu"]},
    ensemble=2, outputs={"plots": False, "closure": {"mu": [0.5]}, "closure_events": 3000})


# -- job functions (module level: dask workers import them by name) -----------------------
def flaky(counter: str, fails: int, value: float) -> dict[str, Any]:
    """Fail the first ``fails`` calls (counted in the file ``counter``), then succeed."""
    path = Path(counter)
    n = int(path.read_text()) + 1 if path.exists() else 1
    path.write_text(str(n))
    if n <= fails:
        raise RuntimeError(f"transient failure {n}\nsecond line")
    return {"value": value, "calls": n}


def always_fails() -> None:
    raise RuntimeError("this job never works")


def input_error(counter: str) -> None:
    flaky(counter, 0, 0.0)
    raise RatiofitError("bad input")


def crash_once(counter: str) -> dict[str, int]:
    """Kill the worker process running it on the first call (a crashed machine)."""
    path = Path(counter)
    n = int(path.read_text()) + 1 if path.exists() else 1
    path.write_text(str(n))
    if n == 1:
        os._exit(1)
    return {"calls": n}


def not_jsonable() -> object:
    return object()


def square(x: int) -> int:
    return x * x


# -- fixtures ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    """A 2-process LocalCluster and its client, shared by the module's dask tests."""
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=":0") as lc, Client(lc) as client:
        yield client


def _local(**kw: Any) -> LocalExecutor:
    return LocalExecutor(**kw)


@pytest.fixture(params=["local", "process", "dask"])
def make_executor(request: pytest.FixtureRequest) -> Callable[..., Any]:
    if request.param == "local":
        return _local
    if request.param == "process":  # two spawned workers (ratiofit.execution.ProcessExecutor)
        return lambda **kw: ProcessExecutor(workers=2, **kw)
    client = request.getfixturevalue("cluster")
    return lambda **kw: DaskExecutor(client=client, **kw)


# -- behaviour shared by both executors ---------------------------------------------------
def test_results_in_order(make_executor: Callable[..., Any]) -> None:
    jobs = [Job(name=f"sq-{i}", function=square, kwargs={"x": i}) for i in range(5)]
    assert make_executor().run(jobs) == [0, 1, 4, 9, 16]


def test_process_executor_reports_each_result_as_it_arrives() -> None:
    seen: list[tuple[str, int]] = []
    ex = ProcessExecutor(workers=2, on_result=lambda job, value: seen.append((job.name, value)))
    jobs = [Job(name=f"sq-{i}", function=square, kwargs={"x": i}) for i in range(4)]
    assert ex.run(jobs) == [0, 1, 4, 9]
    assert sorted(seen) == [("sq-0", 0), ("sq-1", 1), ("sq-2", 4), ("sq-3", 9)]


def test_job_failing_twice_is_retried(make_executor: Callable[..., Any], tmp_path: Path) -> None:
    ex = make_executor(retries=2, results_dir=tmp_path / "jobs")
    jobs = [Job(name="flaky", function=flaky,
                kwargs={"counter": str(tmp_path / "n"), "fails": 2, "value": 1.5})]
    assert ex.run(jobs) == [{"value": 1.5, "calls": 3}]
    assert ex.attempts == {"flaky": 3}
    stored = json.loads((tmp_path / "jobs" / "flaky.json").read_text())
    assert stored["result"] == {"value": 1.5, "calls": 3} and stored["attempts"] == 3


def test_failure_named_others_kept_rerun_skips(make_executor: Callable[..., Any],
                                               tmp_path: Path) -> None:
    jobs_dir = tmp_path / "jobs"
    good = [Job(name=f"good-{i}", function=flaky,
                kwargs={"counter": str(tmp_path / f"n{i}"), "fails": 0, "value": float(i)})
            for i in range(2)]
    jobs = [good[0], Job(name="doomed", function=always_fails), good[1]]
    with pytest.raises(JobError) as info:
        make_executor(retries=1, results_dir=jobs_dir).run(jobs)
    msg = str(info.value)
    assert "\n" not in msg
    assert msg == "job 'doomed' failed after 2 attempts: RuntimeError: this job never works"
    assert isinstance(info.value, RatiofitError)
    assert sorted(p.name for p in jobs_dir.iterdir()) == ["good-0.json", "good-1.json"]

    # The rerun runs only what is not done: the finished jobs are read back, not called.
    ex = make_executor(retries=0, results_dir=jobs_dir)
    out = ex.run(good)
    assert out == [{"value": 0.0, "calls": 1}, {"value": 1.0, "calls": 1}]
    assert ex.skipped == ["good-0", "good-1"]
    assert (tmp_path / "n0").read_text() == "1"
    # Another fingerprint (another spec, another code version): run again.
    ex = make_executor(results_dir=jobs_dir, fingerprint="other")
    assert ex.run(good)[0] == {"value": 0.0, "calls": 2}
    assert ex.skipped == []


def test_input_errors_are_not_retried(make_executor: Callable[..., Any], tmp_path: Path) -> None:
    counter = tmp_path / "n"
    with pytest.raises(RatiofitError) as info:
        make_executor(retries=3, results_dir=tmp_path / "jobs").run(
            [Job(name="bad", function=input_error, kwargs={"counter": str(counter)})])
    assert type(info.value) is RatiofitError and str(info.value) == "bad input"
    assert counter.read_text() == "1"


def test_result_must_be_jsonable_to_persist(make_executor: Callable[..., Any],
                                            tmp_path: Path) -> None:
    with pytest.raises(JobError, match="job 'odd' failed to persist: its result is not JSON-able"):
        make_executor(results_dir=tmp_path).run([Job(name="odd", function=not_jsonable)])
    assert not list(tmp_path.iterdir())  # no partial file


def test_job_names_are_checked(make_executor: Callable[..., Any], tmp_path: Path) -> None:
    ex = make_executor(results_dir=tmp_path / "jobs")
    with pytest.raises(ExecutorError, match="used twice"):
        ex.run([Job(name="a", function=square, kwargs={"x": 1}),
                Job(name="a", function=square, kwargs={"x": 2})])
    # Any name works; its file name stays inside the results directory.
    assert ex.run([Job(name="../x y", function=square, kwargs={"x": 3})]) == [9]
    files = [p.name for p in (tmp_path / "jobs").iterdir()]
    assert len(files) == 1 and re.fullmatch(r"_x_y-[0-9a-f]{8}\.json", files[0]), files
    assert ex.run([Job(name="../x y", function=square, kwargs={"x": 3})]) == [9]
    assert ex.skipped == ["../x y"]


def test_default_local_executor_is_a_plain_loop() -> None:
    """Without retries or a results directory, a job's own exception propagates."""
    with pytest.raises(RuntimeError, match="never works"):
        LocalExecutor().run([Job(name="doomed", function=always_fails)])


def test_dask_worker_killed_mid_job(cluster: Any, tmp_path: Path) -> None:
    """The job of a worker that dies runs again elsewhere; no finished result is lost."""
    jobs = [Job(name="ok", function=flaky,
                kwargs={"counter": str(tmp_path / "ok"), "fails": 0, "value": 2.0}),
            Job(name="crash", function=crash_once, kwargs={"counter": str(tmp_path / "n")})]
    ex = DaskExecutor(client=cluster, results_dir=tmp_path / "jobs")
    assert ex.run(jobs) == [{"value": 2.0, "calls": 1}, {"calls": 2}]
    assert sorted(p.name for p in (tmp_path / "jobs").iterdir()) == ["crash.json", "ok.json"]
    cluster.wait_for_workers(2, timeout=120)


def test_dask_settings_are_checked() -> None:
    with pytest.raises(ExecutorError, match="not both"):
        DaskExecutor(scheduler="tcp://127.0.0.1:8786", workers=2)
    with pytest.raises(ExecutorError, match="positive"):
        DaskExecutor(workers=0)


# -- the same spec, in-process and on the cluster ------------------------------------------
def _numbers(result: dict[str, Any]) -> dict[str, Any]:
    """Everything but timings."""
    out = {k: result[k] for k in ("history", "normalisation", "closure", "fit", "ensemble")}
    out["reweighter"] = {k: v for k, v in result["reweighter"].items() if k != "train_seconds"}
    return out


def test_spec_identical_local_and_dask(cluster: Any, tmp_path: Path) -> None:
    spec = load_spec_text(TINY, path="tiny.yaml")
    t0 = time.perf_counter()
    local = run_spec(spec, tmp_path / "local",
                     executor=LocalExecutor(results_dir=tmp_path / "local" / "jobs"))
    t_local = time.perf_counter() - t0
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    address = cluster.scheduler.address
    t0 = time.perf_counter()
    res = CliRunner().invoke(main, ["run", str(path), "-o", str(tmp_path / "dask"), "-q",
                                    "--scheduler", address])
    t_dask = time.perf_counter() - t0
    assert res.exit_code == 0, res.output
    print(f"\n2-member ensemble: in-process {t_local:.1f} s, "
          f"2-worker LocalCluster {t_dask:.1f} s")
    first = json.loads((tmp_path / "dask" / "result.json").read_text())
    expected = json.loads((tmp_path / "local" / "result.json").read_text())
    assert _numbers(first) == _numbers(expected)
    assert local["ensemble"]["values"] == first["ensemble"]["values"]
    for k in (0, 1):
        a = json.loads((tmp_path / "local" / "jobs" / f"member-{k}.json").read_text())
        b = json.loads((tmp_path / "dask" / "jobs" / f"member-{k}.json").read_text())
        assert a["result"]["fit"] == b["result"]["fit"]

    # Rerun: both members are taken from dask/jobs, the numbers stay the same.
    res = CliRunner().invoke(main, ["run", str(path), "-o", str(tmp_path / "dask"), "-q",
                                    "--scheduler", address])
    assert res.exit_code == 0, res.output
    assert "reused finished job(s) member-0, member-1" in res.output
    again = json.loads((tmp_path / "dask" / "result.json").read_text())
    assert _numbers(again) == _numbers(first)


def test_cli_rejects_scheduler_and_workers(tmp_path: Path) -> None:
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    res = CliRunner().invoke(main, ["run", str(path), "-o", str(tmp_path / "o"),
                                    "--scheduler", "tcp://127.0.0.1:8786", "--workers", "2"])
    assert res.exit_code == 2
    assert res.stderr.strip() == "ratiofit: error: give --scheduler or --workers, not both"


@pytest.mark.slow
def test_spec_identical_with_separately_started_scheduler_and_workers(tmp_path: Path) -> None:
    """`dask scheduler` and two `dask worker` processes started from the command line (as
    on a cluster), the run submitted with --scheduler: same numbers as in-process."""
    import os
    import signal
    import subprocess
    import sys

    bindir = Path(sys.executable).parent
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    sched_file = tmp_path / "scheduler.json"
    procs = [subprocess.Popen([str(bindir / "dask"), "scheduler", "--host", "127.0.0.1",
                               "--port", "0", "--no-dashboard", "--scheduler-file",
                               str(sched_file)], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)]
    try:
        for _ in range(600):
            if sched_file.exists() and sched_file.read_text().strip():
                break
            time.sleep(0.1)
        address = json.loads(sched_file.read_text())["address"]
        for _ in range(2):
            procs.append(subprocess.Popen(
                [str(bindir / "dask"), "worker", address, "--nworkers", "1", "--nthreads", "1",
                 "--no-dashboard"], env=env, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL))
        from distributed import Client

        with Client(address) as client:
            client.wait_for_workers(2, timeout=120)
        spec = load_spec_text(TINY, path="tiny.yaml")
        local = run_spec(spec, tmp_path / "local")
        path = tmp_path / "tiny.yaml"
        path.write_text(TINY)
        res = CliRunner().invoke(main, ["run", str(path), "-o", str(tmp_path / "remote"), "-q",
                                        "--scheduler", address])
        assert res.exit_code == 0, res.output
        remote = json.loads((tmp_path / "remote" / "result.json").read_text())
        assert _numbers(remote) == _numbers(json.loads(
            (tmp_path / "local" / "result.json").read_text()))
        assert local["ensemble"]["values"] == remote["ensemble"]["values"]
    finally:
        for p in reversed(procs):
            p.send_signal(signal.SIGINT)
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
