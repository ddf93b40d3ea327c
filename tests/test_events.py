"""EventSet: construction checks, parquet round trip, θ handling."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ratiofit.errors import DataError
from ratiofit.events import EventSet, assign_theta_from


def _events(n: int = 50, *, seed: int = 0, weights: bool = True) -> EventSet:
    rng = np.random.default_rng(seed)
    return EventSet(
        features=rng.normal(size=(n, 3)), feature_names=("pt", "eta", "phi"),
        theta=np.stack([rng.uniform(-2, 2, n), rng.uniform(0.5, 1.5, n)], axis=1),
        theta_names=("mu", "sigma"),
        weights=rng.uniform(0.5, 2.0, n) if weights else None,
        provenance={"source": "gaussian", "seed": seed, "options": {"mean": "mu", "dim": 3},
                    "sample": "varied"})


# ---------------------------------------------------------------------------------------
# parquet
# ---------------------------------------------------------------------------------------
def test_parquet_round_trip(tmp_path: Path) -> None:
    ev = _events()
    path = tmp_path / "sub" / "events.parquet"
    ev.to_parquet(path)
    assert path.is_file()
    assert [p.name for p in path.parent.iterdir()] == ["events.parquet"]  # no temp file left

    back = EventSet.from_parquet(path)
    assert len(back) == len(ev)
    assert back.feature_names == ("pt", "eta", "phi")
    assert back.theta_names == ("mu", "sigma")
    np.testing.assert_array_equal(back.features, ev.features)
    np.testing.assert_array_equal(back.theta, ev.theta)
    assert back.weights is not None
    np.testing.assert_array_equal(back.weights, ev.weights)
    for key, value in ev.provenance.items():
        assert back.provenance[key] == value
    assert back.provenance["origin"] == str(path)


def test_parquet_round_trip_without_weights_or_theta(tmp_path: Path) -> None:
    ev = EventSet(features=np.arange(12.0).reshape(6, 2), feature_names=("a", "b"))
    path = tmp_path / "plain.parquet"
    ev.to_parquet(path)
    back = EventSet.from_parquet(path)
    assert back.weights is None
    np.testing.assert_array_equal(back.event_weights, np.ones(6))
    assert back.theta_names == ()
    assert back.theta.shape == (6, 0)
    np.testing.assert_array_equal(back.features, ev.features)


def test_parquet_columns_are_named(tmp_path: Path) -> None:
    path = tmp_path / "e.parquet"
    _events(5).to_parquet(path)
    names = pq.read_table(path).column_names
    assert names == ["pt", "eta", "phi", "theta.mu", "theta.sigma", "weight"]


def test_parquet_overwrite_replaces(tmp_path: Path) -> None:
    path = tmp_path / "e.parquet"
    _events(5, seed=1).to_parquet(path)
    second = _events(7, seed=2)
    second.to_parquet(path)
    np.testing.assert_array_equal(EventSet.from_parquet(path).features, second.features)


def test_non_finite_values_in_a_parquet_file_are_refused(tmp_path: Path) -> None:
    good = tmp_path / "good.parquet"
    _events(5).to_parquet(good)
    table = pq.read_table(good)
    cols = {n: table.column(n).to_numpy().copy() for n in table.column_names}
    cols["theta.sigma"][3] = np.inf
    bad = tmp_path / "bad.parquet"
    pq.write_table(pa.table(cols).replace_schema_metadata(table.schema.metadata), bad)
    with pytest.raises(DataError, match=r"theta contain 1 NaN/inf") as info:
        EventSet.from_parquet(bad)
    assert str(bad) in str(info.value)


def test_foreign_or_missing_parquet_is_a_data_error(tmp_path: Path) -> None:
    foreign = tmp_path / "foreign.parquet"
    pq.write_table(pa.table({"x": [1.0, 2.0]}), foreign)
    with pytest.raises(DataError, match="not a ratiofit event file"):
        EventSet.from_parquet(foreign)
    with pytest.raises(DataError, match="cannot read parquet"):
        EventSet.from_parquet(tmp_path / "missing.parquet")
    text = tmp_path / "text.parquet"
    text.write_text("not parquet")
    with pytest.raises(DataError, match="cannot read parquet"):
        EventSet.from_parquet(text)


def test_parquet_with_a_missing_column_is_a_data_error(tmp_path: Path) -> None:
    good = tmp_path / "good.parquet"
    _events(5).to_parquet(good)
    table = pq.read_table(good)
    bad = tmp_path / "bad.parquet"
    pq.write_table(table.drop_columns(["theta.mu"]), bad)
    with pytest.raises(DataError):
        EventSet.from_parquet(bad)


# ---------------------------------------------------------------------------------------
# non-finite and malformed inputs
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("where", ["features", "theta", "weights"])
def test_non_finite_input_is_refused(where: str, bad: float) -> None:
    feats = np.zeros((4, 2))
    theta = np.zeros((4, 1))
    weights = np.ones(4)
    {"features": feats, "theta": theta, "weights": weights}[where].flat[2] = bad
    with pytest.raises(DataError, match=rf"{where} contain 1 NaN/inf value"):
        EventSet(features=feats, feature_names=("a", "b"), theta=theta, theta_names=("mu",),
                 weights=weights, provenance={"origin": "sample 'x'"})


def test_non_finite_error_names_its_origin() -> None:
    with pytest.raises(DataError, match=r"^sample 'data': features"):
        EventSet(features=np.array([[np.nan]]), feature_names=("x",),
                 provenance={"origin": "sample 'data'"})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"features": np.zeros((3, 2)), "feature_names": ("a",)}, "feature columns"),
        ({"features": np.zeros((3, 1, 1)), "feature_names": ("a",)}, r"must be \[n, d\]"),
        ({"features": np.zeros((3, 1)), "feature_names": ("a",), "theta": np.zeros((3, 1))},
         "theta has shape"),
        ({"features": np.zeros((3, 1)), "feature_names": ("a",), "theta_names": ("mu",)},
         "theta has shape"),
        ({"features": np.zeros((3, 1)), "feature_names": ("a",), "weights": np.ones(2)},
         "weights have shape"),
    ],
)
def test_shape_mismatches_are_data_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(DataError, match=message):
        EventSet(**kwargs)


def test_one_dimensional_features_become_a_column() -> None:
    ev = EventSet(features=np.arange(4.0), feature_names=("x",))
    assert ev.features.shape == (4, 1)
    assert len(ev) == 4


# ---------------------------------------------------------------------------------------
# θ
# ---------------------------------------------------------------------------------------
def test_theta_matrix_orders_columns_by_name() -> None:
    theta = np.array([[1.0, 10.0, 100.0], [2.0, 20.0, 200.0]])
    ev = EventSet(features=np.zeros((2, 1)), feature_names=("x",), theta=theta,
                  theta_names=("a", "b", "c"))
    np.testing.assert_array_equal(ev.theta_matrix(["c", "a"]), [[100.0, 1.0], [200.0, 2.0]])
    np.testing.assert_array_equal(ev.theta_matrix(["b"]), [[10.0], [20.0]])
    np.testing.assert_array_equal(ev.theta_matrix(["a", "b", "c"]), theta)
    assert ev.theta_matrix([]).shape == (2, 0)
    assert {k: v.tolist() for k, v in ev.theta_dict().items()} == {
        "a": [1.0, 2.0], "b": [10.0, 20.0], "c": [100.0, 200.0]}
    with pytest.raises(DataError, match=r"no theta column\(s\) \['d'\]"):
        ev.theta_matrix(["a", "d"])


def _varied() -> EventSet:
    return EventSet(features=np.zeros((3, 1)), feature_names=("x",),
                    theta=np.array([[0.25, 10.0], [0.5, 20.0], [0.75, 30.0]]),
                    theta_names=("mu", "sigma"))


def test_assign_theta_from_draws_varied_values_for_every_reference_event() -> None:
    reference = EventSet(features=np.arange(200.0)[:, None], feature_names=("x",))
    varied = _varied()
    out = assign_theta_from(reference, varied=varied, names=["mu", "sigma"],
                            rng=np.random.default_rng(5))
    assert len(out) == len(reference) == 200
    assert out.theta_names == ("mu", "sigma")
    np.testing.assert_array_equal(out.features, reference.features)
    rows = {tuple(r) for r in out.theta}
    # Whole rows of the varied sample: (mu, sigma) pairs are kept together.
    assert rows == {(0.25, 10.0), (0.5, 20.0), (0.75, 30.0)}
    # The same seed gives the same draws; another seed different ones.
    again = assign_theta_from(reference, varied=varied, names=["mu", "sigma"],
                              rng=np.random.default_rng(5))
    np.testing.assert_array_equal(again.theta, out.theta)
    other = assign_theta_from(reference, varied=varied, names=["mu", "sigma"],
                              rng=np.random.default_rng(6))
    assert not np.array_equal(other.theta, out.theta)


def test_assign_theta_from_keeps_other_columns_and_orders_by_names() -> None:
    reference = EventSet(features=np.zeros((40, 1)), feature_names=("x",),
                         theta=np.full((40, 1), 7.0), theta_names=("other",))
    out = assign_theta_from(reference, varied=_varied(), names=["sigma"],
                            rng=np.random.default_rng(0))
    assert out.theta_names == ("other", "sigma")
    np.testing.assert_array_equal(out.theta_matrix(["other"]), np.full((40, 1), 7.0))
    assert set(out.theta_matrix(["sigma"]).ravel()) <= {10.0, 20.0, 30.0}
    assert reference.theta_names == ("other",)  # the input is not modified


def test_assign_theta_from_errors() -> None:
    reference = EventSet(features=np.zeros((4, 1)), feature_names=("x",))
    with pytest.raises(DataError, match="empty varied sample"):
        assign_theta_from(reference, varied=_varied().take(np.array([], dtype=int)),
                          names=["mu"], rng=np.random.default_rng(0))
    with pytest.raises(DataError, match="no theta column"):
        assign_theta_from(reference, varied=_varied(), names=["nu"],
                          rng=np.random.default_rng(0))


def test_take_and_split_keep_rows_aligned() -> None:
    ev = _events(20)
    first, second = ev.split(0.25, rng=np.random.default_rng(3))
    assert (len(first), len(second)) == (15, 5)
    both = np.concatenate([first.features, second.features])
    order = np.lexsort(both.T)
    np.testing.assert_array_equal(both[order], ev.features[np.lexsort(ev.features.T)])
    # Each event's θ and weight travel with its features.
    for part in (first, second):
        for i in range(len(part)):
            j = int(np.flatnonzero((ev.features == part.features[i]).all(axis=1))[0])
            np.testing.assert_array_equal(part.theta[i], ev.theta[j])
            assert part.weights is not None and ev.weights is not None
            assert part.weights[i] == ev.weights[j]
