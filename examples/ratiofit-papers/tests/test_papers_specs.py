"""Every paper spec (examples/ratiofit-papers/specs) validates, is referenced from the docs,
and runs at small scale — what tests/test_specs.py does for ratiofit's own specs/.

The small-scale runs (``-m slow``) shrink every sample to at most a few thousand events and
every training to one epoch: they catch specs that rot (renamed options, removed plugins,
broken studies), not statistical quality, which the specs' own documented runs measure. A
spec that reads another run's output (``runs/<name>``) gets a small run of
``<name>.yaml`` (from this directory) first.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest

from ratiofit.registry import get_registry
from ratiofit.spec import Spec, load_spec, load_spec_text, scale_spec
from ratiofit.workflow import run_spec

PACKAGE = Path(__file__).resolve().parents[1]
ROOT = PACKAGE.parents[1]  # the ratiofit repository, whose docs report these specs
SPEC_DIR = PACKAGE / "specs"
SPECS = sorted(SPEC_DIR.glob("*.yaml"))
RUN_REF = re.compile(r"runs/([A-Za-z0-9_]+)")
MAX_EVENTS = 3000


def test_the_specs_are_here() -> None:
    assert {"ensembles_classification", "ncr_overlap", "searches_power"} <= {
        p.stem for p in SPECS}


@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_spec_validates(path: Path) -> None:
    spec = load_spec(path)
    assert spec.studies


def test_every_spec_is_referenced_from_the_docs() -> None:
    docs = "\n".join(p.read_text() for p in [*(ROOT / "docs").glob("*.md"),
                                              PACKAGE / "README.md"])
    rel = SPEC_DIR.relative_to(ROOT).as_posix()
    missing = [p.stem for p in SPECS if f"{rel}/{p.name}" not in docs]
    assert not missing, f"specs not mentioned (by path) in docs/*.md or README.md: {missing}"


def _small(spec: Spec) -> Spec:
    largest = max(s.n_events for s in spec.samples.values())
    spec = scale_spec(spec, min(1.0, MAX_EVENTS / largest))
    rw = spec.reweighter
    if rw is not None:
        rw = replace(rw, training=replace(rw.training, epochs=1))
    return replace(spec, reweighter=rw, ensemble=1,
                   outputs=replace(spec.outputs, plots=False))


def _run_small(name: str, out: Path, done: dict[str, Path]) -> Path:
    if name in done:
        return done[name]
    text = (SPEC_DIR / f"{name}.yaml").read_text()
    for dep in sorted(set(RUN_REF.findall(text))):
        text = text.replace(f"runs/{dep}", str(_run_small(dep, out, done)))
    spec = load_spec_text(text, path=str(SPEC_DIR / f"{name}.yaml"), registry=get_registry())
    run_spec(_small(spec), out / name, plots=False)
    done[name] = out / name
    return done[name]


@pytest.mark.slow
@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_spec_runs_at_small_scale(path: Path, tmp_path: Path) -> None:
    out = _run_small(path.stem, tmp_path, {})
    assert (out / "result.json").is_file()
