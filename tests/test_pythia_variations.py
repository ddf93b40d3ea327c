"""The ``pythia`` source's hadronization variations: exact per-jet weights to other
a_lund / prob_s_ud values (PYTHIA's ``VariationFrag:List``), their grid, their checks, and
their trip through the block cache, ``make_sample`` and parquet.

Samples are a few hundred e+e- events (two jets each) in a few blocks: seconds each.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ratiofit.events import EventSet
from ratiofit.options import resolve_options
from ratiofit.plugins.sources.pythia import Pythia, variation_grid
from ratiofit.sampling import make_sample
from ratiofit.spec import load_spec_text

A_LUND, PROB_S = "StringZ:aLund", "StringFlav:probStoUD"
NOMINAL = {"a_lund": 0.68, "prob_s_ud": 0.217}  # PYTHIA's Monash values
POPCORN_OFF = "StringFlav:popcornRate = 0"  # flavour weights need it (pythia.py docstring)
GRID = {"a_lund": [0.6, 0.68], "prob_s_ud": [0.217, 0.25]}
N_JETS = 600  # 300 e+e- events
BLOCK = 150


def options(**given: Any) -> dict[str, Any]:
    base = {"parameters": {"a_lund": A_LUND, "prob_s_ud": PROB_S}, "variations": GRID,
            "settings": [POPCORN_OFF], "block_size": BLOCK, "cache": False}
    return resolve_options(Pythia().options, {**base, **given}, where="test")


def generate(n: int = N_JETS, *, theta: dict[str, float] | None = None, seed: int = 5,
             **given: Any) -> EventSet:
    values = {**NOMINAL, **(theta or {})}
    ev = Pythia().generate(n_events=n, theta={p: np.full(n, v) for p, v in values.items()},
                           options=options(**given), rng=np.random.default_rng(seed))
    assert isinstance(ev, EventSet)
    return ev


@pytest.fixture(scope="module")
def sample() -> EventSet:
    return generate()


def test_grid_points_names_and_shape(sample: EventSet) -> None:
    alt = sample.alt_weights
    assert alt is not None
    # each parameter at one of its values or its own (left out), but not all own: 3 * 3 - 1
    assert alt.theta == tuple(variation_grid(GRID)) and len(alt.names) == 8
    assert alt.names[:3] == ("prob_s_ud=0.217", "prob_s_ud=0.25", "a_lund=0.6")
    assert alt.lookup({"a_lund": 0.6, "prob_s_ud": 0.25}) == "a_lund=0.6,prob_s_ud=0.25"
    assert alt.values.shape == (N_JETS, 8)
    assert np.all(np.isfinite(alt.values)) and np.all(alt.values > 0)
    # each jet carries its event's weights: the two jets of an event agree
    np.testing.assert_array_equal(alt.values[0::2], alt.values[1::2])


def test_weights_are_one_at_the_nominal_values(sample: EventSet) -> None:
    alt = sample.alt_weights
    for point in ({"a_lund": 0.68}, {"prob_s_ud": 0.217}, {"a_lund": 0.68, "prob_s_ud": 0.217}):
        np.testing.assert_array_equal(alt.column(alt.lookup(point)), 1.0)
    # a nominal value in a combined point multiplies by exactly 1
    np.testing.assert_allclose(alt.column("a_lund=0.6,prob_s_ud=0.217"),
                               alt.column("a_lund=0.6"), rtol=1e-12)
    np.testing.assert_allclose(alt.column("a_lund=0.68,prob_s_ud=0.25"),
                               alt.column("prob_s_ud=0.25"), rtol=1e-12)
    for name in ("a_lund=0.6", "prob_s_ud=0.25"):  # the others do move the events
        assert np.std(alt.column(name)) > 0.01


def test_weights_average_to_one_within_their_error(sample: EventSet) -> None:
    """E[w] = 1: the weights reweight the sample to another normalised distribution."""
    per_event = sample.alt_weights.values[0::2]  # an event's two jets share its weight
    n = len(per_event)
    mean = per_event.mean(axis=0)
    # Tolerance from the data: the standard error of the mean of the n *event* weights
    # (jets would double-count), std(ddof=1) / sqrt(n); 4 standard errors for the 8
    # columns (family-wise false alarm ~5e-4 for normal means; the seed is fixed anyway).
    stderr = per_event.std(axis=0, ddof=1) / np.sqrt(n)
    moved = stderr > 0
    assert moved.sum() == 5  # the three nominal columns are exactly 1 (previous test)
    assert np.all(np.abs(mean[moved] - 1) < 4 * stderr[moved]), (mean, stderr)
    assert np.all(stderr[moved] < 0.05)  # a test that could fail: the errors are small


def test_a_blocks_own_theta_is_its_nominal() -> None:
    """Two blocks at a_lund 0.6 and 0.75: each column is exactly 1 in the block made at
    its value and moves the other block's jets (PYTHIA weights from the block's θ)."""
    n = 2 * 2 * 40
    a_lund = np.repeat([0.6, 0.75], n // 2)  # a block takes the θ of its first jet
    ev = Pythia().generate(
        n_events=n, theta={"a_lund": a_lund}, rng=np.random.default_rng(3),
        options=options(parameters={"a_lund": A_LUND}, variations={"a_lund": [0.6, 0.75]},
                        settings=[], block_size=40))
    np.testing.assert_array_equal(ev.theta[:, 0], a_lund)
    w60, w75 = ev.alt_weights.column("a_lund=0.6"), ev.alt_weights.column("a_lund=0.75")
    first, second = slice(0, n // 2), slice(n // 2, n)
    np.testing.assert_array_equal(w60[first], 1.0)
    np.testing.assert_array_equal(w75[second], 1.0)
    assert np.std(w75[first]) > 0.01 and np.std(w60[second]) > 0.01


def test_variations_change_no_event(sample: EventSet) -> None:
    plain = generate(variations={}, settings=[POPCORN_OFF])
    assert plain.alt_weights is None
    np.testing.assert_array_equal(plain.features, sample.features)


def test_same_weights_whatever_processes(sample: EventSet) -> None:
    again = generate(processes=2)  # the weights come back from spawned workers
    np.testing.assert_array_equal(again.alt_weights.values, sample.alt_weights.values)


def test_cache_round_trip(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    first = generate(cache=True, cache_dir=str(tmp_path))
    assert first.provenance["cache_hits"] == 0 and len(list(tmp_path.glob("*.parquet"))) == 2
    with caplog.at_level(logging.INFO, logger="ratiofit.plugins.sources.pythia"):
        second = generate(cache=True, cache_dir=str(tmp_path))
    assert second.provenance["cache_hits"] == 2 and "cache hit" in caplog.text
    assert second.alt_weights.names == first.alt_weights.names
    assert second.alt_weights.theta == first.alt_weights.theta
    np.testing.assert_array_equal(second.alt_weights.values, first.alt_weights.values)
    np.testing.assert_array_equal(second.features, first.features)
    # Another grid is another cache entry (the VariationFrag setting is in the key), and
    # parameter names are not: a renamed parameter reads the same blocks back.
    other = generate(cache=True, cache_dir=str(tmp_path), variations={"a_lund": [0.7]})
    assert other.provenance["cache_hits"] == 0
    renamed = Pythia().generate(
        n_events=N_JETS, theta={"alund": np.full(N_JETS, 0.68), "prob_s_ud":
                                np.full(N_JETS, 0.217)}, rng=np.random.default_rng(5),
        options=options(parameters={"alund": A_LUND, "prob_s_ud": PROB_S},
                        variations={"alund": [0.6, 0.68], "prob_s_ud": [0.217, 0.25]},
                        cache=True, cache_dir=str(tmp_path)))
    assert renamed.provenance["cache_hits"] == 2
    assert renamed.alt_weights.names[2] == "alund=0.6"
    np.testing.assert_array_equal(renamed.alt_weights.values, first.alt_weights.values)


def test_make_sample_and_parquet_round_trip(tmp_path: Path) -> None:
    spec = load_spec_text(f"""
seed: 4
parameters:
  a_lund: {{nominal: 0.68, range: [0.5, 0.9]}}
  prob_s_ud: {{nominal: 0.217, range: [0.15, 0.3]}}
samples:
  nominal:
    source: pythia
    n_events: 201
    options:
      parameters: {{a_lund: "{A_LUND}", prob_s_ud: "{PROB_S}"}}
      variations: {{a_lund: [0.6], prob_s_ud: [0.25]}}
      settings: ["{POPCORN_OFF}"]
      block_size: 60
      cache: false
""", path="inline.yaml")
    ev = make_sample(spec.samples["nominal"], parameters=spec.parameters, seed=spec.seed)
    assert len(ev) == 201 and ev.alt_weights is not None  # odd: the last event gives one jet
    assert ev.alt_weights.names == ("prob_s_ud=0.25", "a_lund=0.6", "a_lund=0.6,prob_s_ud=0.25")
    path = tmp_path / "nominal.parquet"
    ev.to_parquet(path)
    back = EventSet.from_parquet(path)
    assert back.alt_weights.names == ev.alt_weights.names
    assert back.alt_weights.theta == ev.alt_weights.theta
    np.testing.assert_array_equal(back.alt_weights.values, ev.alt_weights.values)
    half, rest = back.split(0.5, rng=np.random.default_rng(0))
    assert len(half.alt_weights.values) + len(rest.alt_weights.values) == 201


# ---------------------------------------------------------------------------------------
# checks
# ---------------------------------------------------------------------------------------
RANGES = {"a_lund": (0.68, 0.68), "prob_s_ud": (0.217, 0.217), "alpha_s": (0.1365, 0.1365),
          "b_lund": (0.98, 0.98)}
MAPPED = {"a_lund": A_LUND, "prob_s_ud": PROB_S, "alpha_s": "TimeShower:alphaSvalue",
          "b_lund": "StringZ:bLund"}


@pytest.mark.parametrize(("variations", "settings", "words"), [
    ({"alpha_s": [0.12]}, [], ["'alpha_s' (TimeShower:alphaSvalue) cannot be weighted",
                               "StringZ:aLund"]),
    ({"c_lund": [0.5]}, [], ["'c_lund' is not mapped"]),
    ({"a_lund": [0.6, 2.5]}, [], ["'a_lund' value 2.5 is outside", "[0.0, 2.0]"]),
    ({"prob_s_ud": [-0.1]}, [POPCORN_OFF], ["outside", "StringFlav:probStoUD", "[0.0, 1.0]"]),
    ({"a_lund": []}, [], ["non-empty list of finite numbers"]),
    ({"a_lund": 0.6}, [], ["non-empty list of finite numbers"]),
    ({"a_lund": ["x"]}, [], ["non-empty list of finite numbers"]),
    ({"a_lund": [0.6, 0.6]}, [], ["twice"]),
    ({"prob_s_ud": [0.25]}, [], ["need 'StringFlav:popcornRate = 0'"]),
    ({"prob_s_ud": [0.25]}, ["StringFlav:popcornRate = 0.5"], ["popcornRate = 0"]),
    ({"a_lund": [0.5 + i / 100 for i in range(40)], "b_lund": [0.5 + i / 100 for i in range(40)]},
     [], ["1680 points", "1000"]),
])
def test_bad_variations_are_one_line_errors(variations: dict[str, Any], settings: list[str],
                                            words: list[str]) -> None:
    with pytest.raises(ValueError) as info:
        Pythia().check(options={"parameters": MAPPED, "variations": variations,
                                "settings": settings}, theta=RANGES)
    assert getattr(info.value, "field", None) == "variations"
    message = str(info.value)
    assert "\n" not in message
    for w in words:
        assert w in message, message


def test_variation_list_setting_is_reserved() -> None:
    with pytest.raises(ValueError) as info:
        Pythia().check(options={"settings": ["VariationFrag:List = {x frag:aLund=0.6}"]},
                       theta={})
    assert info.value.field == "settings" and "'variations' option" in str(info.value)


def test_good_variations_pass_the_check(capfd: pytest.CaptureFixture[str]) -> None:
    # kinematic parameters need no popcorn setting; a sample varying a_lund may weight it
    Pythia().check(options={"parameters": MAPPED, "variations": {"a_lund": [0.5, 0.9],
                                                                  "b_lund": [0.9]}},
                   theta={**RANGES, "a_lund": (0.5, 0.9)})
    Pythia().check(options={"parameters": MAPPED, "variations": GRID,
                            "settings": [POPCORN_OFF]}, theta=RANGES)
    assert capfd.readouterr().out == ""


def _ratiofit_cmd() -> list[str]:
    exe = Path(sys.executable).with_name("ratiofit")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "ratiofit.cli"]


def test_validate_cli_names_the_variations_option(tmp_path: Path) -> None:
    spec = tmp_path / "bad.yaml"
    spec.write_text(f"""\
seed: 1
parameters:
  a_lund: {{nominal: 0.68, range: [0.5, 0.9]}}
samples:
  nominal:
    source: pythia
    n_events: 100
    options:
      parameters: {{a_lund: "{A_LUND}"}}
      variations: {{a_lund: [0.6, 2.4]}}
""")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([*_ratiofit_cmd(), "validate", str(spec)], capture_output=True,
                          text=True, env=env, timeout=120, check=False)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert ": samples.nominal.options.variations: " in lines[0]
    assert "value 2.4 is outside" in lines[0]


@pytest.mark.slow
def test_weights_average_to_one_on_twenty_thousand_events() -> None:
    """The same check with 100x the events (per-event standard errors ~0.001-0.005)."""
    grid = {"a_lund": [0.6, 0.75], "prob_s_ud": [0.2, 0.25]}
    ev = generate(40_000, variations=grid, block_size=5000, seed=9)
    per_event = ev.alt_weights.values[0::2]
    stderr = per_event.std(axis=0, ddof=1) / np.sqrt(len(per_event))
    mean = per_event.mean(axis=0)
    assert np.all(np.abs(mean - 1) < 4 * stderr), dict(zip(ev.alt_weights.names,
                                                            zip(mean, stderr, strict=True),
                                                            strict=True))
