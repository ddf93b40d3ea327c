"""The ``study`` plugin kind: spec validation, context, results, conformance check."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest

from ratiofit.errors import SpecError
from ratiofit.hookspecs import hookimpl
from ratiofit.options import Option
from ratiofit.registry import Registry
from ratiofit.spec import load_spec_text
from ratiofit.testing import check_plugin
from ratiofit.workflow import run_spec


class MeanStudy:
    """Mean of one feature of one sample, with a bootstrap error drawn from the context rng."""

    name = "mean_of"
    options: Mapping[str, Option] = {
        "sample": Option(kind="str", default=None, doc="sample name"),
        "feature": Option(kind="str", default="x0", doc="feature name"),
    }

    def check(self, *, options: Mapping[str, Any], samples: Mapping[str, Any],
              parameters: Any) -> None:
        if options["sample"] not in samples:
            exc = ValueError(f"unknown sample {options['sample']!r}")
            exc.field = "sample"  # type: ignore[attr-defined]
            raise exc

    def run(self, *, context: Any, options: Mapping[str, Any]) -> Mapping[str, Any]:
        x = context.sample(options["sample"]).feature_columns([options["feature"]])[:, 0]
        boot = context.rng("bootstrap").choice(x, size=(20, len(x))).mean(axis=1)
        (context.outdir / "note.txt").write_text("ok")
        return {"mean": float(x.mean()), "bootstrap_std": float(boot.std())}


class _Plugin:
    @hookimpl
    def ratiofit_studies(self) -> list[Any]:
        return [MeanStudy()]


@pytest.fixture()
def registry() -> Registry:
    reg = Registry()
    reg.load_entry_points(only_own=True)
    reg.register(_Plugin(), name="test-study", distribution="tests")
    return reg


SPEC = """
seed: 3
parameters: {mu: {nominal: 0.0, range: [-1, 1]}}
samples:
  ref: {source: gaussian, n_events: 2000, options: {mean: mu}}
studies:
  m: {study: mean_of, options: {sample: %s}}
"""


def test_check_plugin_accepts_study() -> None:
    check_plugin(MeanStudy(), kind="study", options={"sample": "ref"})


def test_unknown_sample_in_study_is_a_located_error(registry: Registry) -> None:
    with pytest.raises(SpecError) as err:
        load_spec_text(SPEC % "nope", path="s.yaml", registry=registry)
    msg = str(err.value)
    assert msg.startswith("s.yaml:7:") and "studies.m.options.sample" in msg and "mean_of" in msg


def test_unknown_study_gets_suggestion(registry: Registry) -> None:
    text = (SPEC % "ref").replace("study: mean_of", "study: mean_off")
    with pytest.raises(SpecError, match="did you mean 'mean_of'"):
        load_spec_text(text, path="s.yaml", registry=registry)


def test_study_runs_and_is_reproducible(tmp_path: Any, registry: Registry) -> None:
    spec = load_spec_text(SPEC % "ref", path="s.yaml", registry=registry)
    a = run_spec(spec, tmp_path / "a", registry=registry, plots=False)
    b = run_spec(spec, tmp_path / "b", registry=registry, plots=False)
    ra = a["studies"]["m"]
    assert ra["study"] == "mean_of"
    # 2000 N(0,1) events: the mean is within 5/sqrt(2000) of 0.
    assert abs(ra["mean"]) < 5 / np.sqrt(2000)
    assert ra["bootstrap_std"] == b["studies"]["m"]["bootstrap_std"]
    on_disk = json.loads((tmp_path / "a" / "studies" / "m" / "result.json").read_text())
    assert on_disk["mean"] == ra["mean"]
    assert (tmp_path / "a" / "studies" / "m" / "note.txt").read_text() == "ok"
