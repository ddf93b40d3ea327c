"""The ``pythia`` source: jets, per-block θ, seeds, processes, cache, and its checks.

Samples are small (a few hundred jets) and blocks short, so most of the time goes into
PYTHIA initialisations (~0.2 s each) and, for ``processes: 2``, starting two workers.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import pytest
from scipy import stats

from ratiofit.events import EventSet
from ratiofit.options import resolve_options
from ratiofit.plugins.jets.preprocessing import PID_CODES
from ratiofit.plugins.sources.pythia import Pythia, plan_blocks
from ratiofit.registry import get_registry
from ratiofit.sampling import make_sample
from ratiofit.spec import load_spec_text

ALPHA_S = "TimeShower:alphaSvalue"
N_JETS_SAMPLE = 401  # odd on purpose: the last event gives one jet
BLOCK = 50  # e+e- events per block → 100 jets per block


def options(**given: Any) -> dict[str, Any]:
    src = Pythia()
    base = {"parameters": {"alpha_s": ALPHA_S}, "block_size": BLOCK, "cache": False}
    return resolve_options(src.options, {**base, **given}, where="test")


def drawn_theta(n: int, seed: int = 7) -> dict[str, np.ndarray]:
    return {"alpha_s": np.random.default_rng(seed).uniform(0.10, 0.18, n)}


def generate(n: int = N_JETS_SAMPLE, *, seed: int = 11, **given: Any) -> EventSet:
    ev = Pythia().generate(n_events=n, theta=drawn_theta(n), options=options(**given),
                           rng=np.random.default_rng(seed))
    assert isinstance(ev, EventSet)
    return ev


def assert_same(a: EventSet, b: EventSet) -> None:
    np.testing.assert_array_equal(a.features, b.features)
    np.testing.assert_array_equal(a.theta, b.theta)
    assert a.particles.fields == b.particles.fields
    assert ak.all(ak.num(a.particles, axis=1) == ak.num(b.particles, axis=1))
    for f in a.particles.fields:
        np.testing.assert_array_equal(ak.to_numpy(ak.flatten(a.particles[f])),
                                      ak.to_numpy(ak.flatten(b.particles[f])))


@pytest.fixture(scope="module")
def sample() -> EventSet:
    return generate()


def test_registered() -> None:
    assert get_registry().get("source", "pythia").name == "pythia"


def test_jets_fields_and_counts(sample: EventSet) -> None:
    src = Pythia()
    assert len(sample) == N_JETS_SAMPLE
    assert list(sample.feature_names) == list(src.feature_names(options()))
    parts = sample.particles
    assert len(parts) == N_JETS_SAMPLE
    assert {"pt", "eta", "phi", "pid", "z", "deta", "dphi", "pid_code"} <= set(parts.fields)
    assert ak.to_numpy(ak.flatten(parts.pid)).dtype == np.int32
    assert ak.to_numpy(ak.flatten(parts.pt)).dtype == np.float32
    counts = ak.to_numpy(ak.num(parts, axis=1))
    assert counts.min() >= 1
    feats = dict(zip(sample.feature_names, sample.features.T, strict=True))
    np.testing.assert_array_equal(feats["multiplicity"], counts)
    # Visible final state only, every id in the PID table.
    pid = ak.to_numpy(ak.flatten(parts.pid))
    assert not np.isin(np.abs(pid), [12, 14, 16]).any()
    assert np.isin(pid, list(PID_CODES)).all()
    np.testing.assert_allclose(ak.to_numpy(ak.sum(parts.z, axis=1)), 1.0, rtol=1e-5)
    dphi = ak.to_numpy(ak.flatten(parts.dphi))
    assert np.all(np.abs(dphi) <= np.pi)
    # Central jets are compact in (η, φ); jets near the beam axis spread in φ (R is an angle).
    central = np.abs(feats["jet_eta"]) < 0.5
    assert ak.max(abs(parts.dphi[central])) < 1.5 and ak.max(abs(parts.deta[central])) < 1.5
    # Constituents by decreasing pT; the two jets of an event by decreasing energy.
    pt = parts.pt
    assert ak.all(pt[:, 1:] <= pt[:, :-1])
    e = feats["jet_e"][: N_JETS_SAMPLE - 1].reshape(-1, 2)
    assert np.all(e[:, 0] >= e[:, 1]) and np.all(e.sum(axis=1) <= 91.188 + 1e-6)
    assert np.all(feats["jet_pt"] > 0) and np.all(np.isfinite(sample.features))


def test_theta_constant_per_block_and_reported(sample: EventSet) -> None:
    drawn = drawn_theta(N_JETS_SAMPLE)["alpha_s"]
    used = sample.theta_matrix(["alpha_s"])[:, 0]
    per_block = 2 * BLOCK
    starts = range(0, N_JETS_SAMPLE, per_block)
    for s in starts:  # block b: θ drawn for its first jet, for all its jets
        np.testing.assert_array_equal(used[s:s + per_block], drawn[s])
    assert sample.provenance["n_blocks"] == len(starts)
    assert [b["alpha_s"] for b in sample.provenance["block_theta"]] == [drawn[s] for s in starts]


def test_block_theta_uniform_ks() -> None:
    """Block θ values are the draws at the blocks' first jets: uniform over the range."""
    n_jets, block = 2, 40
    n = 400 * n_jets * block  # 400 blocks
    theta = drawn_theta(n, seed=2024)
    plan = plan_blocks(n, n_jets=n_jets, block_size=block, theta=theta)
    values = np.array([v["alpha_s"] for _, _, v in plan])
    assert len(values) == 400 and len(np.unique(values)) == 400
    assert [first for first, _, _ in plan] == list(range(0, n // n_jets, block))
    ks = stats.kstest(values, stats.uniform(loc=0.10, scale=0.08).cdf)
    assert ks.pvalue > 0.01, ks


def test_make_sample_uses_block_theta() -> None:
    spec = load_spec_text(f"""
seed: 3
parameters:
  alpha_s: {{nominal: 0.1365, range: [0.10, 0.18]}}
samples:
  varied:
    source: pythia
    n_events: 90
    theta: {{alpha_s: uniform}}
    options:
      parameters: {{alpha_s: "{ALPHA_S}"}}
      block_size: 20
      cache: false
""", path="inline.yaml")
    ev = make_sample(spec.samples["varied"], parameters=spec.parameters, seed=spec.seed)
    assert len(ev) == 90 and ev.theta_names == ("alpha_s",)
    blocks = [b["alpha_s"] for b in ev.provenance["block_theta"]]
    assert len(blocks) == 3  # 45 events in blocks of 20
    np.testing.assert_array_equal(ev.theta[:, 0], np.repeat(blocks, 40)[:90])
    assert ev.particles is not None and len(ev.particles) == 90


def test_same_seed_identical_whatever_processes(sample: EventSet) -> None:
    again = generate(processes=2)
    assert_same(sample, again)
    other = generate(seed=12)
    assert not np.array_equal(sample.features, other.features)


def test_cache_hit_returns_identical_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("RATIOFIT_CACHE", str(tmp_path))
    first = generate(200, cache=True)
    files = sorted((tmp_path / "pythia").glob("*"))
    assert len(files) == 2 and all(f.suffix == ".parquet" for f in files)
    assert first.provenance["cache_hits"] == 0
    with caplog.at_level(logging.INFO, logger="ratiofit.plugins.sources.pythia"):
        second = generate(200, cache=True)
    assert second.provenance["cache_hits"] == 2
    assert "cache hit" in caplog.text
    assert_same(first, second)
    # Another seed is other events: a miss, two new files.
    third = generate(200, seed=99, cache=True)
    assert third.provenance["cache_hits"] == 0
    assert len(list((tmp_path / "pythia").glob("*.parquet"))) == 4
    assert not list((tmp_path / "pythia").glob("*.tmp"))


# ---------------------------------------------------------------------------------------
# checks: direct, and through `ratiofit validate`
# ---------------------------------------------------------------------------------------
RANGE = {"alpha_s": (0.10, 0.18)}


@pytest.mark.parametrize(("given", "theta", "field", "words"), [
    ({"parameters": {"alpha_s": "TimeShower:alphaSvalu"}}, RANGE, "parameters",
     ["unknown PYTHIA parm", "did you mean 'TimeShower:alphaSvalue'"]),
    ({"parameters": {"alpha_s": "Tune:ee"}}, RANGE, "parameters", ["not a continuous"]),
    ({"parameters": {"alpha_s": ALPHA_S}}, {"alpha_s": (0.01, 0.18)}, "parameters",
     ["outside what PYTHIA accepts", "0.06"]),
    ({"parameters": {"alpha_s": ALPHA_S}}, {"alpha_s": (0.10, 0.30)}, "parameters",
     ["outside", "0.25"]),
    ({"parameters": {"a_lund": "StringZ:aLund"}}, RANGE, "parameters",
     ["'a_lund' is not a parameter"]),
    ({}, RANGE, "parameters", ["varies 'alpha_s'"]),
    ({"settings": ["StringZ:aLund = banana"]}, {}, "settings", ["rejects", "StringZ:aLund"]),
    ({"settings": ["StringZ:aLund = 5"]}, {}, "settings", ["rejects", "[0.0, 2.0]"]),
    ({"settings": ["Foo:bar = 1"]}, {}, "settings", ["unknown PYTHIA setting 'Foo:bar'"]),
    ({"settings": ["Random:seed = 4"]}, {}, "settings", ["reserved"]),
    ({"parameters": {"alpha_s": ALPHA_S}, "settings": [f"{ALPHA_S} = 0.12"]}, RANGE,
     "settings", ["already maps"]),
])
def test_check_rejects(given: dict[str, Any], theta: dict[str, tuple[float, float]],
                       field: str, words: list[str]) -> None:
    with pytest.raises(ValueError) as info:
        Pythia().check(options=given, theta=theta)
    assert getattr(info.value, "field", None) == field
    message = str(info.value)
    assert "\n" not in message
    for w in words:
        assert w in message


def test_check_accepts_good_settings(capfd: pytest.CaptureFixture[str]) -> None:
    Pythia().check(options={"parameters": {"alpha_s": ALPHA_S, "a_lund": "StringZ:aLund"},
                            "settings": ["StringFlav:probStoUD = 0.2", "23:onIfAny = 1 2 3"]},
                   theta={"alpha_s": (0.10, 0.18), "a_lund": (0.5, 0.9)})
    assert capfd.readouterr().out == ""  # PYTHIA prints nothing


GOOD_SPEC = f"""\
seed: 1
parameters:
  alpha_s: {{nominal: 0.1365, range: [0.10, 0.18]}}
samples:
  varied:
    source: pythia
    n_events: 1000
    theta: {{alpha_s: uniform}}
    options:
      parameters: {{alpha_s: "{ALPHA_S}"}}
      settings: ["StringZ:aLund = 0.7"]
"""


def _ratiofit_cmd() -> list[str]:
    exe = Path(sys.executable).with_name("ratiofit")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "ratiofit.cli"]


@pytest.mark.parametrize(("old", "new", "field", "word"), [
    (f'"{ALPHA_S}"', '"TimeShower:alphaSvalu"', "samples.varied.options.parameters",
     "unknown PYTHIA parm"),
    ("range: [0.10, 0.18]", "range: [0.01, 0.18]", "samples.varied.options.parameters",
     "outside what PYTHIA accepts"),
    ("aLund = 0.7", "aLund = banana", "samples.varied.options.settings", "rejects"),
])
def test_validate_cli_exit_2_names_field(tmp_path: Path, old: str, new: str, field: str,
                                         word: str) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(GOOD_SPEC)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([*_ratiofit_cmd(), "validate", str(good)], capture_output=True,
                          text=True, env=env, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD_SPEC.replace(old, new))
    proc = subprocess.run([*_ratiofit_cmd(), "validate", str(bad)], capture_output=True,
                          text=True, env=env, timeout=120, check=False)
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"ratiofit: error: {bad}:")
    assert f": {field}: " in lines[0] and word in lines[0]


def test_conformance_check_plugin() -> None:
    from ratiofit.testing import check_plugin

    check_plugin(Pythia(), kind="source", options={"cache": False})


def test_theta_reaches_pythia() -> None:
    """More final-state radiation at larger αs: more constituents per jet (by far)."""
    src = Pythia()
    mult = []
    for alpha_s in (0.10, 0.18):
        ev = src.generate(n_events=400, theta={"alpha_s": np.full(400, alpha_s)},
                          options=options(block_size=200), rng=np.random.default_rng(5))
        np.testing.assert_array_equal(ev.theta[:, 0], alpha_s)
        mult.append(ev.features[:, ev.feature_names.index("multiplicity")])
    low, high = mult
    diff = high.mean() - low.mean()
    assert diff > 5 * np.hypot(low.std() / 20, high.std() / 20), (low.mean(), high.mean())


TINY_SPEC = """\
seed: 3
parameters:
  alpha_s: {nominal: 0.1365, range: [0.10, 0.18]}
samples:
  nominal: {source: pythia, n_events: 600, options: {parameters: {alpha_s:
    "TimeShower:alphaSvalue"}, block_size: 100, cache_dir: CACHE}}
  varied: {source: pythia, n_events: 600, theta: {alpha_s: uniform}, options: {parameters: {
    alpha_s: "TimeShower:alphaSvalue"}, block_size: 50, cache_dir: CACHE}}
  data: {source: pythia, n_events: 300, theta: {alpha_s: 0.16}, options: {parameters: {
    alpha_s: "TimeShower:alphaSvalue"}, block_size: 150, cache_dir: CACHE}}
reweighter:
  architecture: {name: pfn, options: {phi: [16, 16], f: [16], theta_injection: latent}}
  reference: nominal
  target: varied
  inputs: {features: none, particles: [z, deta, dphi, pid_code]}
  training: {epochs: 2, batch_size: 128}
  calibration: {method: normalisation, points: 5, degree: 2, events: 600}
fit:
  strategy: {name: dctr, options: {landscape_points: 3}}
  data: data
  parameters: [alpha_s]
outputs:
  closure: {alpha_s: [0.12, 0.16]}
  closure_events: 300
"""


def test_end_to_end_tiny_pythia_spec(tmp_path: Path) -> None:
    """Generation → PFN training on particles → closure on observables → DCTR fit, through
    the CLI, on a few hundred jets (checks the plumbing, not the statistics)."""
    import json

    from click.testing import CliRunner

    from ratiofit.cli import main

    spec = tmp_path / "tiny.yaml"
    spec.write_text(TINY_SPEC.replace("CACHE", str(tmp_path / "cache")))
    res = CliRunner().invoke(main, ["run", str(spec), "-o", str(tmp_path / "out"), "-q"])
    assert res.exit_code == 0, res.output
    result = json.loads((tmp_path / "out" / "result.json").read_text())
    fit = result["fit"]["parameters"]["alpha_s"]
    assert 0.10 <= fit["value"] <= 0.18 and fit["error"] > 0
    features = {h["feature"] for h in result["closure"]["points"][0]["histograms"]}
    assert {"multiplicity", "n_strange", "tau21", "ecf4"} <= features
    assert result["reweighter"]["inputs"]["particles"] == ["z", "deta", "dphi", "pid_code"]
    assert (tmp_path / "out" / "plots" / "chi2_vs_theta.png").is_file()
