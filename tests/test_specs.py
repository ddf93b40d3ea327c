"""Every spec under specs/ validates, is referenced from the docs, and runs at small scale.

The small-scale runs (``-m slow``) shrink every sample to at most a few thousand events and
every training to one epoch: they catch specs that rot (renamed options, removed
plugins, broken studies), not statistical quality, which the specs' own documented runs
measure. A spec that reads another run's output (``runs/<name>``) gets a small run of
``specs/<name>.yaml`` first.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest

from ratiofit.registry import get_registry
from ratiofit.spec import Spec, load_spec, load_spec_text, scale_spec
from ratiofit.workflow import run_spec

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted((ROOT / "specs").glob("*.yaml"))
RUN_REF = re.compile(r"runs/([A-Za-z0-9_]+)")
MAX_EVENTS = 3000


@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_spec_validates(path: Path) -> None:
    load_spec(path)


def test_every_spec_is_referenced_from_the_docs() -> None:
    docs = "\n".join(p.read_text() for p in [*(ROOT / "docs").glob("*.md"), ROOT / "README.md"])
    missing = [p.stem for p in SPECS if f"{p.stem}.yaml" not in docs]
    assert not missing, f"specs not mentioned in docs/*.md or README.md: {missing}"


def _small(spec: Spec) -> Spec:
    # samples that read every row of their files (n_events absent) are not counted: they
    # keep the same fraction of their rows as the largest counted sample is scaled by
    largest = max((s.n_events for s in spec.samples.values() if s.n_events is not None),
                  default=MAX_EVENTS)
    spec = scale_spec(spec, min(1.0, MAX_EVENTS / largest))
    rw = spec.reweighter
    if rw is not None:
        rw = replace(rw, training=replace(rw.training, epochs=1))
    return replace(spec, reweighter=rw, ensemble=1,
                   outputs=replace(spec.outputs, plots=False))


def _run_small(name: str, out: Path, done: dict[str, Path]) -> Path:
    if name in done:
        return done[name]
    text = (ROOT / "specs" / f"{name}.yaml").read_text()
    for dep in sorted(set(RUN_REF.findall(text))):
        text = text.replace(f"runs/{dep}", str(_run_small(dep, out, done)))
    spec = load_spec_text(text, path=f"specs/{name}.yaml", registry=get_registry(),
                          base_dir=ROOT / "specs")  # its files are relative to specs/
    run_spec(_small(spec), out / name, plots=False)
    done[name] = out / name
    return done[name]


@pytest.mark.slow
@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_spec_runs_at_small_scale(path: Path, tmp_path: Path) -> None:
    out = _run_small(path.stem, tmp_path, {})
    assert (out / "result.json").is_file()
