"""docs/results-reference.md describes every top-level key a run writes to result.json,
and the provenance block is there (schema version, versions, commit)."""

from __future__ import annotations

import re
from pathlib import Path

from ratiofit.provenance import SCHEMA_VERSION, provenance

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTED = set(re.findall(r"^### `([a-z_]+)`", (ROOT / "docs" / "results-reference.md")
                            .read_text(), flags=re.M))

#: Every top-level key run_spec can write (workflow.run_spec); the test below checks a
#: real run's keys are among them.
KEYS = {"ratiofit", "spec", "seed", "parameters", "reweighter", "history", "normalisation",
        "closure", "gold_closure", "fit", "ensemble", "inference", "studies", "timing"}


def test_every_result_key_is_documented() -> None:
    assert KEYS <= DOCUMENTED, sorted(KEYS - DOCUMENTED)


def test_a_runs_keys_are_the_documented_ones(tmp_path: Path) -> None:
    import json

    from ratiofit.spec import load_spec_text
    from ratiofit.workflow import run_spec

    spec = load_spec_text("""
seed: 3
parameters: {mu: {nominal: 0.0, range: [-1.0, 1.0]}}
samples:
  nominal: {source: gaussian, n_events: 2000, options: {mean: mu}}
  varied: {source: gaussian, n_events: 2000, theta: {mu: uniform}, options: {mean: mu}}
  data: {source: gaussian, n_events: 500, theta: {mu: 0.2}, options: {mean: mu}}
reweighter: {architecture: mlp, reference: nominal, target: varied,
             training: {epochs: 1, batch_size: 512, checkpoint: false}}
fit: {strategy: dctr, data: data, parameters: [mu]}
uncertainty: {replicas: 0, correction: none, gate: false}
outputs: {plots: false, closure: {}}
""", path="tiny.yaml")
    run_spec(spec, tmp_path, plots=False)
    result = json.loads((tmp_path / "result.json").read_text())
    assert set(result) <= KEYS, sorted(set(result) - KEYS)
    made_by = result["ratiofit"]
    assert made_by["schema_version"] == SCHEMA_VERSION
    assert made_by["version"] == provenance()["version"]
    assert {"numpy", "keras", "iminuit"} <= set(made_by["dependencies"])
