"""The console of a run: no TensorFlow start-up or retracing lines (core/_quiet.py), stage
lines where stderr is not a terminal (core/console.py), and commands that need no network
import no TensorFlow."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str, env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    import os

    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "ratiofit.cli", *args], cwd=ROOT,
                          capture_output=True, text=True, env=env, timeout=600)


def test_validate_and_plugins_import_no_tensorflow_nor_fastjet() -> None:
    code = ("import sys\nfrom ratiofit.cli import main\n"
            "for cmd in (['validate', 'specs/quickstart.yaml'], ['plugins']):\n"
            "    try:\n        main(cmd)\n    except SystemExit as e:\n"
            "        assert not e.code, e.code\n"
            "heavy = sorted(m for m in ('tensorflow', 'keras', 'fastjet', 'awkward', 'dask')"
            " if m in sys.modules)\n"
            "print('HEAVY', heavy)\n")
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "HEAVY []" in res.stdout, res.stdout


def test_a_run_prints_no_tensorflow_log_lines(tmp_path: Path) -> None:
    res = _run("run", "specs/quickstart.yaml", "--scale", "0.01", "-o", str(tmp_path / "out"))
    assert res.returncode == 0, res.stderr
    console = res.stdout + res.stderr
    for marker in ("absl::InitializeLog", "oneDNN", "cpu_feature_guard", "WARNING:tensorflow",
                   "I0000"):
        assert marker not in console, console
    assert "fit mu = " in res.stdout
    # stderr is a pipe here, as on a batch system: one line per stage, with durations
    assert re.search(r"^\d\d:\d\d:\d\d ratiofit: training member 0 done in [\d.]+ s$",
                     res.stderr, flags=re.M), res.stderr
    assert "ratiofit: job replica-3 (3 of 3) ..." in res.stderr
    quiet = _run("run", "specs/quickstart.yaml", "--scale", "0.01", "-q", "-o",
                 str(tmp_path / "out"))  # the finished jobs are reused: quick
    assert quiet.returncode == 0 and "ratiofit: " not in quiet.stderr, quiet.stderr
