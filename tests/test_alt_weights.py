"""EventSet.alt_weights (AltWeights): construction checks, rows that follow the events
through take / split / level / concatenation / θ assignment, and the parquet round trip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from ratiofit.errors import DataError
from ratiofit.events import AltWeights, EventSet, assign_theta_from

NAMES = ("a=0.6", "a=0.6,r=0.3")
THETA = ({"a": 0.6}, {"a": 0.6, "r": 0.3})


def _events(n: int = 40, *, seed: int = 0) -> EventSet:
    """Events whose first alternative weight is 1 + features[:, 0] / 1000: a row marker."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2))
    alt = AltWeights(values=np.stack([1 + x[:, 0] / 1000, rng.uniform(0.5, 2, n)], axis=1),
                     names=NAMES, theta=THETA)
    return EventSet(features=x, feature_names=("x", "y"), theta=np.full((n, 1), 0.68),
                    theta_names=("a",), weights=rng.uniform(0.5, 2, n),
                    provenance={"source": "test"}, alt_weights=alt)


def _aligned(ev: EventSet) -> None:
    assert ev.alt_weights is not None
    np.testing.assert_array_equal(ev.alt_weights.values[:, 0], 1 + ev.features[:, 0] / 1000)


def test_alt_weights_follow_take_split_level_and_theta_assignment() -> None:
    ev = _events()
    perm = np.random.default_rng(1).permutation(len(ev))
    _aligned(ev.take(perm))
    _aligned(ev.take(np.arange(5, 17)))
    first, second = ev.split(0.25, rng=np.random.default_rng(2))
    assert len(first.alt_weights.values) == 30 and len(second.alt_weights.values) == 10
    _aligned(first)
    _aligned(second)
    two = EventSet(features=np.c_[ev.features, ev.features], alt_weights=ev.alt_weights,
                   feature_names=("gen_x", "gen_y", "sim_x", "sim_y"))
    _aligned(two.level("sim"))
    varied = EventSet(features=np.zeros((5, 1)), feature_names=("x",),
                      theta=np.linspace(0.5, 0.9, 5)[:, None], theta_names=("a",))
    paired = assign_theta_from(ev, varied=varied, names=["a"], rng=np.random.default_rng(3))
    assert paired.alt_weights is ev.alt_weights  # generation θ, not the drawn labels
    _aligned(paired)


def test_concatenate_keeps_alt_weights_and_refuses_mismatches() -> None:
    a, b = _events(seed=0), _events(n=7, seed=1)
    both = EventSet.concatenate([a, b])
    assert len(both) == 47 and both.alt_weights.names == NAMES
    assert both.alt_weights.theta == THETA
    _aligned(both)
    np.testing.assert_array_equal(both.weights, np.r_[a.weights, b.weights])
    assert [p["source"] for p in both.provenance["parts"]] == ["test", "test"]
    other = AltWeights(values=np.ones((7, 1)), names=("a=0.8",), theta=({"a": 0.8},))
    with pytest.raises(DataError, match="different columns"):
        EventSet.concatenate([a, EventSet(features=b.features, feature_names=("x", "y"),
                                          theta=b.theta, theta_names=("a",),
                                          alt_weights=other)])
    with pytest.raises(DataError, match="with and without alternative"):
        EventSet.concatenate([a, EventSet(features=b.features, feature_names=("x", "y"),
                                          theta=b.theta, theta_names=("a",))])
    with pytest.raises(DataError, match="feature names"):
        EventSet.concatenate([a, EventSet(features=b.features, feature_names=("x", "z"))])


def test_parquet_round_trip(tmp_path: Path) -> None:
    ev = _events()
    path = tmp_path / "e.parquet"
    ev.to_parquet(path, row_group_size=16)
    assert {f"alt_weight.{n}" for n in NAMES} <= set(pq.read_schema(path).names)
    back = EventSet.from_parquet(path)
    assert back.alt_weights.names == NAMES and back.alt_weights.theta == THETA
    np.testing.assert_array_equal(back.alt_weights.values, ev.alt_weights.values)
    chunks = list(EventSet.iter_parquet(path, chunk_size=16))
    assert [len(c) for c in chunks] == [16, 16, 8]
    np.testing.assert_array_equal(np.concatenate([c.alt_weights.values for c in chunks]),
                                  ev.alt_weights.values)
    # A file without alternative weights (as older versions wrote) reads back with none.
    plain = tmp_path / "plain.parquet"
    EventSet(features=ev.features, feature_names=("x", "y")).to_parquet(plain)
    assert EventSet.from_parquet(plain).alt_weights is None


def test_non_finite_alt_weights_in_a_parquet_file_are_refused(tmp_path: Path) -> None:
    ev = _events(n=4)
    path = tmp_path / "e.parquet"
    ev.to_parquet(path)
    table = pq.read_table(path)
    column = f"alt_weight.{NAMES[1]}"
    i = table.column_names.index(column)
    table = table.set_column(i, column, [np.array([1.0, np.nan, np.inf, 1.0])])
    pq.write_table(table, path)
    with pytest.raises(DataError) as info:
        EventSet.from_parquet(path)
    message = str(info.value)
    assert str(path) in message and "2 NaN/inf" in message and NAMES[1] in message
    assert "\n" not in message


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_alt_weights_are_refused(bad: float) -> None:
    values = np.ones((3, 2))
    values[1, 1] = bad
    with pytest.raises(DataError, match="1 NaN/inf value"):
        AltWeights(values=values, names=NAMES, theta=THETA)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"values": np.ones((3, 3))}, "must be \\[n, 2\\]"),
    ({"values": np.ones(3)}, "must be \\[n, 2\\]"),
    ({"names": ("a", "a")}, "distinct"),
    ({"names": ("a", "")}, "distinct"),
    ({"theta": ({"a": 0.6},)}, "1 θ mappings for 2"),
    ({"theta": ({"a": 0.6}, {})}, "non-empty mapping"),
    ({"theta": ({"a": 0.6}, {"r": float("nan")})}, "finite value"),
    ({"theta": ({"a": 0.6}, {"r": "x"})}, "finite value"),
])
def test_bad_alt_weights_are_data_errors(kwargs: dict, message: str) -> None:
    given = {"values": np.ones((3, 2)), "names": NAMES, "theta": THETA, **kwargs}
    with pytest.raises(DataError, match=message):
        AltWeights(**given)


def test_event_set_refuses_alt_weights_of_another_length_or_type() -> None:
    alt = AltWeights(values=np.ones((3, 2)), names=NAMES, theta=THETA)
    with pytest.raises(DataError, match="3 events, features 4"):
        EventSet(features=np.zeros((4, 1)), feature_names=("x",), alt_weights=alt)
    with pytest.raises(DataError, match="must be an AltWeights"):
        EventSet(features=np.zeros((3, 1)), feature_names=("x",),
                 alt_weights=np.ones((3, 2)))  # type: ignore[arg-type]


def test_lookup_and_column() -> None:
    alt = _events().alt_weights
    assert alt.lookup({"a": 0.6}) == NAMES[0]
    assert alt.lookup({"r": 0.3, "a": 0.6 * (1 + 1e-14)}) == NAMES[1]  # order, rounding
    with pytest.raises(DataError, match="no alternative weight at θ"):
        alt.lookup({"a": 0.61})
    with pytest.raises(DataError, match="no alternative weight at θ"):
        alt.lookup({"r": 0.3})  # a column moving only r does not exist
    np.testing.assert_array_equal(alt.column(NAMES[1]), alt.values[:, 1])
    with pytest.raises(DataError, match="no alternative weight 'b'"):
        alt.column("b")
