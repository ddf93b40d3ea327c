"""The spec.yaml that a run writes into its directory is the resolved spec: rerun as it
stands, it gives the same numbers, bit for bit (same code path, same seeds), for every spec
in specs/ that has an inference section (a section the copy once dropped)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from ratiofit.spec import load_spec
from ratiofit.workflow import run_spec

ROOT = Path(__file__).resolve().parents[1]
INFERENCE_SPECS = sorted(p for p in (ROOT / "specs").glob("*.yaml")
                         if "inference" in (yaml.safe_load(p.read_text()) or {}))


def _numbers(result: Any) -> Any:
    """The result without wall-clock times and the spec's own path."""
    if isinstance(result, dict):
        return {k: _numbers(v) for k, v in result.items()
                if k not in ("timing", "spec") and not k.endswith("seconds")}
    if isinstance(result, list):
        return [_numbers(v) for v in result]
    return result


def test_there_are_inference_specs() -> None:
    assert INFERENCE_SPECS, "no spec in specs/ has an inference section"


@pytest.mark.parametrize("path", INFERENCE_SPECS, ids=lambda p: p.stem)
def test_the_run_directorys_spec_reruns_to_the_same_numbers(path: Path, tmp_path: Path) -> None:
    from dataclasses import replace

    from ratiofit.spec import scale_spec

    # a tenth of the events, no replicas, no test, limit or impacts: the copy's job is the
    # same at any size and with any of them (their fields are in the copy all the same);
    # the full specs took minutes each here, twice
    spec = scale_spec(load_spec(path), 0.1)
    assert spec.inference is not None
    spec = replace(spec, uncertainty=replace(spec.uncertainty, replicas=0),
                   inference=replace(spec.inference, hypotest_poi=None, upper_limit=False,
                                     impacts=False))
    run_spec(spec, tmp_path / "first", plots=False)
    copy = tmp_path / "first" / "spec.yaml"
    assert "inference" in yaml.safe_load(copy.read_text())
    run_spec(load_spec(copy), tmp_path / "second", plots=False)
    first, second = (_numbers(json.loads((tmp_path / d / "result.json").read_text()))
                     for d in ("first", "second"))
    assert "inference" in first
    assert second == first
