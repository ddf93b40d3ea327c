"""A run directory holds one run (ratiofit.run_directory): locked while it runs, never a
mix of two runs, a failed run marked."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ratiofit.errors import RatiofitError
from ratiofit.run_directory import MANIFEST, RunDirectory, read_manifest


def test_a_second_run_into_a_locked_directory_stops_at_once(tmp_path: Path) -> None:
    """Another process holds the lock (a run in progress): this one refuses, one line."""
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from ratiofit.run_directory import RunDirectory
        with RunDirectory({str(tmp_path / 'run')!r}, fingerprint="a"):
            print("locked", flush=True)
            time.sleep(60)
        """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(RatiofitError, match=r"another ratiofit run is writing into it "
                                                rf"\(pid {holder.pid}\)"):
            with RunDirectory(tmp_path / "run", fingerprint="b"):
                pass
    finally:
        holder.kill()
        holder.wait()
    # the lock dies with its process: the directory is usable again
    with RunDirectory(tmp_path / "run", fingerprint="b"):
        pass


def test_a_run_of_another_fingerprint_leaves_nothing_of_the_old_one(tmp_path: Path) -> None:
    run = tmp_path / "run"
    with RunDirectory(run, fingerprint="old"):
        (run / "result.json").write_text("{}")
        (run / "reweighter").mkdir()
        (run / "ensemble" / "member-2").mkdir(parents=True)
        (run / "jobs").mkdir()
        (run / "jobs" / "member-0.json").write_text("{}")
    with RunDirectory(run, fingerprint="new"):
        left = sorted(p.name for p in run.iterdir())
    assert left == [".lock", MANIFEST]
    # the same fingerprint keeps its finished jobs (to reuse them), not its old result
    with RunDirectory(run, fingerprint="new"):
        (run / "jobs").mkdir()
        (run / "jobs" / "member-0.json").write_text("{}")
        (run / "result.json").write_text("{}")
    with RunDirectory(run, fingerprint="new"):
        assert (run / "jobs" / "member-0.json").exists()
        assert not (run / "result.json").exists()


def test_a_failed_run_is_marked(tmp_path: Path) -> None:
    run = tmp_path / "run"
    with pytest.raises(ValueError), RunDirectory(run, fingerprint="x"):
        raise ValueError("the fit did not converge\nat all")
    assert (run / "FAILED").read_text() == "ValueError: the fit did not converge at all\n"
    manifest = read_manifest(run)
    assert manifest is not None and manifest["state"] == "failed"
    assert not (run / "result.json").exists()
    with RunDirectory(run, fingerprint="x"):  # the next run removes the marker
        assert not (run / "FAILED").exists()


def test_a_foreign_directory_is_refused_not_cleared(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "thesis.tex").write_text("years of work")
    with pytest.raises(RatiofitError, match="not a ratiofit run directory"):
        with RunDirectory(home, fingerprint="x"):
            pass
    assert (home / "thesis.tex").read_text() == "years of work"


def test_run_spec_marks_its_directory(tmp_path: Path) -> None:
    from conftest import gaussian_spec

    from ratiofit.spec import load_spec_text
    from ratiofit.workflow import run_spec

    spec = load_spec_text(gaussian_spec(n_nominal=400, n_data=200, fit=None,
                                        training={"epochs": 1, "batch_size": 256},
                                        outputs={"plots": False, "closure": {}}),
                          path="t.yaml")
    run_spec(spec, tmp_path / "run", plots=False)
    assert json.loads((tmp_path / "run" / MANIFEST).read_text())["state"] == "done"
    assert (tmp_path / "run" / "result.json").exists()
