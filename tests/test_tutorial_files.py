"""docs/tutorial-files.md (issue 19, item 5): its spec validates, its snippet that writes
ROOT and parquet files runs and writes files that the tutorial's specs, copied beside
them, read; its commands and generated blocks are the ones docs/tutorial_tables.py knows.

The snippets that read the runs' outputs need the runs (minutes): ``python
docs/tutorial_tables.py`` runs them, and those snippets, when it writes the page."""

from __future__ import annotations

import runpy
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from ratiofit.cli import main
from ratiofit.sampling import make_sample
from ratiofit.spec import load_spec

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "tutorial-files.md"
SPECS = ("files_gaussian.yaml", "files_inference.yaml")

sys.path.insert(0, str(ROOT / "docs"))
import tutorial_tables  # noqa: E402


def _validate(path: Path) -> None:
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code == 0, result.output
    assert f"{path}: valid" in result.output


def test_files_inference_spec_validates() -> None:
    _validate(ROOT / "specs" / "files_inference.yaml")
    spec = load_spec(ROOT / "specs" / "files_inference.yaml")
    assert spec.inference is not None and spec.inference.mode == "exact"
    assert {spec.samples[n].source for n in ("nominal", "varied", "data")} == {"root",
                                                                              "parquet"}


def test_the_page_is_in_the_user_guide() -> None:
    index = (ROOT / "docs" / "index.md").read_text()
    guide = index.split(":caption: User guide", 1)[1].split("```", 1)[0]
    assert "tutorial-files" in guide.split()


def test_the_write_files_snippet_writes_files_the_specs_read(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch
                                                             ) -> None:
    code = dict(tutorial_tables.snippets(PAGE.read_text()))["write_files.py"]
    (tmp_path / "write_files.py").write_text(code)
    monkeypatch.chdir(tmp_path)
    runpy.run_path("write_files.py", run_name="__main__")
    data = tmp_path / "myanalysis" / "data"
    assert sorted(p.name for p in data.iterdir()) == ["data.parquet", "nominal.root",
                                                      "varied_0.root", "varied_1.root"]
    # the page's 'cp specs/files_gaussian.yaml specs/files_inference.yaml myanalysis/'
    for name in SPECS:
        shutil.copy(ROOT / "specs" / name, tmp_path / "myanalysis" / name)
        _validate(tmp_path / "myanalysis" / name)
    spec = load_spec(tmp_path / "myanalysis" / "files_gaussian.yaml")
    read = {name: make_sample(s, parameters=spec.parameters, seed=1)
            for name, s in spec.samples.items()}
    nominal, varied = read["nominal"], read["varied"]
    assert len(nominal) == 6000 and len(read["data"]) == 2000
    assert 9000 < len(varied) <= 10_000  # 10^4 events, less any outside the selection
    for ev in (nominal, varied):  # one in ten weights negative (binomial, ~5 sigma)
        assert abs(np.mean(ev.event_weights < 0) - 0.1) < 0.02
    assert varied.theta_names == ("mu",)
    mu = varied.theta[:, 0]
    assert mu.min() >= -1.0 and mu.max() <= 1.0 and np.std(mu) > 0.5
    # x0 follows the mu it was generated at, event by event
    x0 = varied.features[:, list(varied.feature_names).index("x0")]
    assert np.corrcoef(mu, x0)[0, 1] > 0.3
    if spec.samples["nominal"].options.get("particles"):
        assert nominal.particles is not None


def test_the_page_shows_every_command_and_has_every_block() -> None:
    text = PAGE.read_text()
    for command, _, _ in tutorial_tables.COMMANDS.values():
        assert command in text, command
    for name in tutorial_tables.BLOCKS:
        tutorial_tables.replace_block(text, name, ["x"])  # raises where a block is missing
    for name, code in tutorial_tables.snippets(text):
        compile(code, name, "exec")
    assert {n for n, _ in tutorial_tables.snippets(text)} >= {"write_files.py",
                                                               "read_result.py",
                                                               "read_friend.py",
                                                               "onnx_weights.py"}
