"""Reweighter save/load, corrupt directories, input checks and weight diagnostics.

One tiny reweighter (1 epoch on 2000 + 2000 Gaussian events) is trained per module.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import assert_float32_close, gaussian_spec

from ratiofit.cli import main
from ratiofit.errors import DataError, ReweighterLoadError
from ratiofit.events import EventSet
from ratiofit.parameters import Parameter, ParameterSet
from ratiofit.registry import get_registry
from ratiofit.reweighter import Reweighter
from ratiofit.spec import TrainingSpec
from ratiofit.training import train_reweighter

N = 2000
OPTIONS = {"dim": 1, "mean": "mu", "width": 1.0}


@pytest.fixture(scope="module")
def reference_features() -> np.ndarray:
    source = get_registry().get("source", "gaussian")
    return source.generate(n_events=N, theta={"mu": np.zeros(N)}, options=OPTIONS,
                           rng=np.random.default_rng(11))


@pytest.fixture(scope="module")
def reweighter(reference_features: np.ndarray) -> Reweighter:
    reg = get_registry()
    source = reg.get("source", "gaussian")
    rng = np.random.default_rng(12)
    mu = rng.uniform(-2.0, 2.0, N)
    target = EventSet(features=source.generate(n_events=N, theta={"mu": mu}, options=OPTIONS,
                                               rng=rng),
                      feature_names=("x0",), theta=mu[:, None], theta_names=("mu",))
    reference = EventSet(features=reference_features, feature_names=("x0",))
    return train_reweighter(
        reference=reference, target=target,
        parameters=ParameterSet([Parameter(name="mu", nominal=0, low=-2, high=2)]),
        architecture=reg.get("architecture", "mlp"),
        architecture_options={"hidden": [16, 16], "activation": "relu", "theta_input": True},
        loss=reg.get("loss", "bce"), training=TrainingSpec(epochs=1, batch_size=256), seed=7)


@pytest.fixture(scope="module")
def saved(reweighter: Reweighter, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return reweighter.save(tmp_path_factory.mktemp("saved") / "reweighter")


@pytest.fixture
def copy_of_saved(saved: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(saved, tmp_path / "reweighter"))


X = np.linspace(-3.0, 3.0, 61)


# ---------------------------------------------------------------------------------------
# round trip
# ---------------------------------------------------------------------------------------
def test_save_writes_model_and_metadata(saved: Path) -> None:
    assert sorted(p.name for p in saved.iterdir()) == ["metadata.json", "model.keras"]
    meta = json.loads((saved / "metadata.json").read_text())
    assert meta["loss"] == "bce"
    assert meta["parameters"] == [{"name": "mu", "nominal": 0, "range": [-2, 2],
                                   "scale": None}]
    assert meta["model_sha256"] == hashlib.sha256((saved / "model.keras").read_bytes()
                                                  ).hexdigest()
    assert meta["signature"]["feature_names"] == ["x0"]
    assert meta["signature"]["theta_names"] == ["mu"]
    assert meta["epochs_run"] == 1
    # No temporary sibling is left behind.
    assert [p.name for p in saved.parent.iterdir()] == ["reweighter"]


def test_round_trip_gives_identical_log_ratio(reweighter: Reweighter, saved: Path) -> None:
    loaded = Reweighter.load(saved)
    assert loaded.theta_names == ["mu"]
    assert loaded.loss.name == "bce"
    assert loaded.signature == reweighter.signature
    assert loaded.calibration is None
    for mu in (-2.0, -0.5, 0.0, 1.25, 2.0):
        before = reweighter.log_ratio(features=X, theta={"mu": mu})
        after = loaded.log_ratio(features=X, theta={"mu": mu})
        assert before.shape == (len(X),) and before.dtype == np.float64
        np.testing.assert_array_equal(after, before)
    # The trained function is not constant in x or in mu (else the check above is empty).
    lw = reweighter.log_ratio(features=X, theta={"mu": 1.0})
    assert np.ptp(lw) > 0
    assert not np.array_equal(lw, reweighter.log_ratio(features=X, theta={"mu": -1.0}))


def test_per_event_theta_matches_scalar_theta(reweighter: Reweighter) -> None:
    scalar = reweighter.log_ratio(features=X, theta={"mu": 0.7})
    per_event = reweighter.log_ratio(features=X, theta={"mu": np.full(len(X), 0.7)})
    np.testing.assert_array_equal(per_event, scalar)
    mixed = reweighter.log_ratio(features=X[:2], theta={"mu": np.array([0.7, -1.0])})
    assert mixed[0] == scalar[0]
    assert mixed[1] == reweighter.log_ratio(features=X[1:2], theta={"mu": -1.0})[0]


def test_round_trip_keeps_calibration(reweighter: Reweighter, tmp_path: Path,
                                      reference_features: np.ndarray) -> None:
    # A new object around the trained model, so the module's reweighter stays uncalibrated.
    rw = Reweighter(model=reweighter.model, loss=reweighter.loss,
                    parameters=reweighter.parameters, signature=reweighter.signature,
                    metadata=reweighter.metadata)
    rw.calibrate(reference_features=reference_features, points=5, degree=2,
                 rng=np.random.default_rng(0))
    assert rw.calibration is not None
    calibrated = rw.log_ratio(features=X, theta={"mu": 1.5})
    raw = rw.log_ratio(features=X, theta={"mu": 1.5}, calibrated=False)
    assert not np.array_equal(calibrated, raw)

    again = Reweighter.load(rw.save(tmp_path / "calibrated"))
    assert again.calibration is not None
    np.testing.assert_array_equal(again.calibration.coefficients, rw.calibration.coefficients)
    assert_float32_close(again.log_ratio(features=X, theta={"mu": 1.5}), calibrated)
    assert_float32_close(
        again.log_ratio(features=X, theta={"mu": 1.5}, calibrated=False), raw)


def test_save_over_an_existing_directory_replaces_it(reweighter: Reweighter,
                                                     tmp_path: Path) -> None:
    target = tmp_path / "rw"
    target.mkdir()
    (target / "stale.txt").write_text("old")
    reweighter.save(target)
    assert sorted(p.name for p in target.iterdir()) == ["metadata.json", "model.keras"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rw"]
    loaded = Reweighter.load(target)
    np.testing.assert_array_equal(loaded.log_ratio(features=X, theta={"mu": 0.3}),
                                  reweighter.log_ratio(features=X, theta={"mu": 0.3}))


def test_loaded_then_calibrated_reweighter_can_be_saved_and_loaded(
        saved: Path, tmp_path: Path, reference_features: np.ndarray) -> None:
    rw = Reweighter.load(saved)
    rw.calibrate(reference_features=reference_features, points=5, degree=2,
                 rng=np.random.default_rng(0))
    again = Reweighter.load(rw.save(tmp_path / "resaved"))
    assert again.calibration is not None
    np.testing.assert_array_equal(again.log_ratio(features=X, theta={"mu": 1.5}),
                                  rw.log_ratio(features=X, theta={"mu": 1.5}))


# ---------------------------------------------------------------------------------------
# broken directories
# ---------------------------------------------------------------------------------------
def _rewrite_meta(d: Path, change: Callable[[dict[str, Any]], None]) -> None:
    meta = json.loads((d / "metadata.json").read_text())
    change(meta)
    (d / "metadata.json").write_text(json.dumps(meta))


def _flip_a_byte(d: Path) -> None:
    data = bytearray((d / "model.keras").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (d / "model.keras").write_bytes(bytes(data))


def _garbage_model_with_matching_checksum(d: Path) -> None:
    from ratiofit.reweighter import _metadata_sha256

    (d / "model.keras").write_bytes(b"this is not a keras zip file")
    digest = hashlib.sha256(b"this is not a keras zip file").hexdigest()

    def resign(m: dict[str, Any]) -> None:  # both checksums consistent: only the model is bad
        m.update(model_sha256=digest)
        m.update(metadata_sha256=_metadata_sha256(m))

    _rewrite_meta(d, resign)


CORRUPTIONS: dict[str, tuple[Callable[[Path], Any], str]] = {
    "missing-model": (lambda d: (d / "model.keras").unlink(), "missing model.keras"),
    "missing-metadata": (lambda d: (d / "metadata.json").unlink(), "missing metadata.json"),
    "truncated-metadata": (
        lambda d: (d / "metadata.json").write_text((d / "metadata.json").read_text()[:40]),
        "corrupt metadata"),
    "binary-metadata": (lambda d: (d / "metadata.json").write_bytes(b"\xff\xfe\x00garbage"),
                        "corrupt metadata"),
    "metadata-without-checksum": (lambda d: _rewrite_meta(d, lambda m: m.pop("model_sha256")),
                                  "missing 'model_sha256'"),
    "future-format": (lambda d: _rewrite_meta(d, lambda m: m.update(format_version=99)),
                      "unsupported format_version 99"),
    "modified-model": (_flip_a_byte, "checksum mismatch"),
    "appended-model": (lambda d: (d / "model.keras").open("ab").write(b"\0"),
                       "checksum mismatch"),
    "unloadable-model": (_garbage_model_with_matching_checksum, "cannot load model"),
    # metadata that a fit reads: covered by metadata_sha256
    "edited-nominal": (lambda d: _rewrite_meta(d, lambda m: m["parameters"][0].update(
        nominal=0.3)), "the metadata is corrupt or was edited"),
    "edited-loss": (lambda d: _rewrite_meta(d, lambda m: m.update(loss="mse")),
                    "the metadata is corrupt or was edited"),
    "edited-range": (lambda d: _rewrite_meta(d, lambda m: m["parameters"][0].update(high=9.0)),
                     "the metadata is corrupt or was edited"),
}


@pytest.mark.parametrize("case", list(CORRUPTIONS))
def test_broken_directory_is_a_load_error(copy_of_saved: Path, case: str) -> None:
    corrupt, message = CORRUPTIONS[case]
    corrupt(copy_of_saved)
    with pytest.raises(ReweighterLoadError, match=message) as info:
        Reweighter.load(copy_of_saved)
    assert str(copy_of_saved) in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_directory_is_a_load_error(tmp_path: Path) -> None:
    with pytest.raises(ReweighterLoadError, match="does not exist"):
        Reweighter.load(tmp_path / "nowhere")


def test_a_file_is_not_a_reweighter_directory(saved: Path) -> None:
    with pytest.raises(ReweighterLoadError):
        Reweighter.load(saved / "metadata.json")


@pytest.mark.parametrize("content", ["null", "42"])
def test_metadata_that_is_not_an_object_is_a_load_error(copy_of_saved: Path,
                                                        content: str) -> None:
    (copy_of_saved / "metadata.json").write_text(content)
    with pytest.raises(ReweighterLoadError):
        Reweighter.load(copy_of_saved)


# ---------------------------------------------------------------------------------------
# CLI: ratiofit fit with a bad --reweighter
# ---------------------------------------------------------------------------------------
FIT_SPEC = gaussian_spec(n_nominal=500, n_data=200,
                         training={"epochs": 1, "batch_size": 256})


def _fit_cli(tmp_path: Path, reweighter_dir: Path) -> Any:
    spec = tmp_path / "fit.yaml"
    spec.write_text(FIT_SPEC)
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["fit", str(spec), "--reweighter", str(reweighter_dir),
                                       "-o", str(out)])
    assert not (out / "fit.json").exists()
    return result


def test_cli_fit_with_missing_reweighter_dir(tmp_path: Path) -> None:
    bad = tmp_path / "BADDIR"
    result = _fit_cli(tmp_path, bad)
    assert result.exit_code == 2, result.output
    lines = result.stderr.splitlines()
    assert lines == [f"ratiofit: error: {bad}: reweighter directory does not exist"]
    assert "Traceback" not in result.output


def test_cli_fit_with_modified_model(tmp_path: Path, copy_of_saved: Path) -> None:
    _flip_a_byte(copy_of_saved)
    result = _fit_cli(tmp_path, copy_of_saved)
    assert result.exit_code == 2, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"ratiofit: error: {copy_of_saved / 'model.keras'}: ")
    assert "checksum mismatch" in lines[0]


def test_cli_fit_debug_reraises(tmp_path: Path) -> None:
    spec = tmp_path / "fit.yaml"
    spec.write_text(FIT_SPEC)
    result = CliRunner().invoke(main, ["fit", str(spec), "--reweighter", str(tmp_path / "no"),
                                       "-o", str(tmp_path / "out"), "--debug"])
    assert isinstance(result.exception, ReweighterLoadError)


# ---------------------------------------------------------------------------------------
# input checks
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("features", "theta", "message"),
    [
        (X, {"mu": 5.0}, r"theta\.mu: values outside the range \[-2(\.0)?, 2(\.0)?\]"),
        (X, {"mu": -2.0001}, "outside the range"),
        (X, {"mu": np.where(np.arange(len(X)) == 3, 2.5, 0.0)}, r"max 2\.5"),
        (X, {"mu": 0.0, "nu": 1.0}, r"unknown theta name\(s\) \['nu'\]"),
        (X, {"sigma": 1.0}, "unknown theta name"),
        (X, {}, "missing value for parameter 'mu'"),
        (X, None, "needs theta"),
        (X, {"mu": np.nan}, r"theta\.mu: NaN or inf"),
        (np.where(X == X[5], np.nan, X), {"mu": 0.0}, "NaN/inf"),
        (np.where(X == X[5], np.inf, X), {"mu": 0.0}, "NaN/inf"),
        (np.zeros((4, 2)), {"mu": 0.0}, r"expects \[n, 1\]"),
    ],
)
def test_bad_inputs_to_log_ratio_are_data_errors(reweighter: Reweighter, features: Any,
                                                 theta: Any, message: str) -> None:
    with pytest.raises(DataError, match=message):
        reweighter.log_ratio(features=features, theta=theta)
    with pytest.raises(DataError):
        reweighter.weights(features=features, theta=theta)
    with pytest.raises(DataError):
        reweighter.diagnostics(features=features, theta=theta)


def test_range_edges_are_accepted(reweighter: Reweighter) -> None:
    for mu in (-2.0, 2.0):
        assert np.all(np.isfinite(reweighter.log_ratio(features=X, theta={"mu": mu})))


def test_gradient_checks_inputs_and_matches_log_ratio(reweighter: Reweighter) -> None:
    with pytest.raises(DataError, match="outside the range"):
        reweighter.log_ratio_and_gradient(features=X, theta={"mu": 3.0})
    with pytest.raises(DataError, match="unknown theta name"):
        reweighter.log_ratio_and_gradient(features=X, theta={"mu": 0.0, "nu": 0.0})
    lw, grad = reweighter.log_ratio_and_gradient(features=X, theta={"mu": 0.5})
    assert grad.shape == (len(X), 1)
    np.testing.assert_allclose(lw, reweighter.log_ratio(features=X, theta={"mu": 0.5}),
                               rtol=1e-5, atol=1e-6)


def test_theta_array_of_wrong_length_is_a_data_error(reweighter: Reweighter) -> None:
    with pytest.raises(DataError):
        reweighter.log_ratio(features=X, theta={"mu": np.zeros(3)})


# ---------------------------------------------------------------------------------------
# weights and diagnostics
# ---------------------------------------------------------------------------------------
def test_diagnostics_without_clip(reweighter: Reweighter, reference_features: np.ndarray
                                  ) -> None:
    theta = {"mu": 1.0}
    w = reweighter.weights(features=reference_features, theta=theta)
    np.testing.assert_allclose(
        w, np.exp(reweighter.log_ratio(features=reference_features, theta=theta)))
    d = reweighter.diagnostics(features=reference_features, theta=theta)
    assert d["n_events"] == N
    assert 0 < d["ess"] <= N
    assert d["ess"] == pytest.approx(w.sum() ** 2 / np.sum(w ** 2))
    assert d["ess_fraction"] == pytest.approx(d["ess"] / N)
    assert d["max_weight"] == pytest.approx(w.max())
    assert d["mean_weight"] == pytest.approx(w.mean())
    assert d["n_clipped"] == 0 and d["fraction_clipped"] == 0
    assert d["n_nonfinite"] == 0


def test_diagnostics_counts_clipping(reweighter: Reweighter, reference_features: np.ndarray
                                     ) -> None:
    theta = {"mu": 1.0}
    w = reweighter.weights(features=reference_features, theta=theta)
    clip = float(np.quantile(w, 0.8))
    expected = int(np.count_nonzero(w > clip))
    assert 0 < expected < N

    clipped = reweighter.weights(features=reference_features, theta=theta, clip=clip)
    assert clipped.max() <= clip
    np.testing.assert_array_equal(clipped, np.minimum(w, clip))

    d = reweighter.diagnostics(features=reference_features, theta=theta, clip=clip)
    assert d["n_clipped"] == expected
    assert d["fraction_clipped"] == pytest.approx(expected / N)
    assert d["max_weight"] <= clip
    assert 0 < d["ess"] <= N
    # Clipping the largest weights can only make the weights more even.
    assert d["ess"] >= reweighter.diagnostics(features=reference_features,
                                              theta=theta)["ess"] - 1e-9


def test_diagnostics_with_event_weights(reweighter: Reweighter,
                                        reference_features: np.ndarray) -> None:
    ev_w = np.random.default_rng(1).uniform(0.0, 2.0, N)
    d = reweighter.diagnostics(features=reference_features, theta={"mu": -0.5},
                               event_weights=ev_w)
    w = reweighter.weights(features=reference_features, theta={"mu": -0.5}) * ev_w
    assert d["ess"] == pytest.approx(w.sum() ** 2 / np.sum(w ** 2))
    assert d["ess"] <= N


def test_averaged_reweighter_is_the_mean_of_its_members(trained_1d, tmp_path):
    """Mean log w and mean ∂log w/∂θ of the members; mismatched members are refused."""
    from ratiofit.reweighter import AveragedReweighter, load_reweighters
    from ratiofit.testing import analytic_gaussian_reweighter

    exact = analytic_gaussian_reweighter()
    avg = AveragedReweighter(members=[trained_1d, exact])
    x = np.linspace(-2, 2, 9)[:, None]
    lw, grad = avg.log_ratio_and_gradient(features=x, theta={"mu": 0.4})
    lw_a, g_a = trained_1d.log_ratio_and_gradient(features=x, theta={"mu": 0.4})
    lw_b, g_b = exact.log_ratio_and_gradient(features=x, theta={"mu": 0.4})
    np.testing.assert_allclose(lw, (lw_a + lw_b) / 2, rtol=1e-12)
    np.testing.assert_allclose(grad, (g_a + g_b) / 2, rtol=1e-12)
    np.testing.assert_allclose(avg.log_ratio(features=x, theta={"mu": 0.4}), lw, rtol=1e-6)
    assert avg.diagnostics(features=x, theta={"mu": 0.4})["n_events"] == 9

    trained_1d.save(tmp_path / "a")
    assert isinstance(load_reweighters([tmp_path / "a"]), Reweighter)
    both = load_reweighters([tmp_path / "a", tmp_path / "a"])
    np.testing.assert_allclose(both.log_ratio(features=x, theta={"mu": -1.0}),
                               trained_1d.log_ratio(features=x, theta={"mu": -1.0}), rtol=1e-6)

    other = analytic_gaussian_reweighter()
    other.parameters = ParameterSet([Parameter(name="nu", nominal=0.0, low=-1.0, high=1.0)])
    with pytest.raises(DataError, match="member 1 is parameterised in"):
        AveragedReweighter(members=[exact, other])
    with pytest.raises(ReweighterLoadError, match="no reweighter directory"):
        load_reweighters([])


def test_a_feature_beyond_float32_is_named_not_blamed_on_theta(reweighter: Reweighter) -> None:
    """float64 1e39 would become inf in the network's float32: one line naming the feature."""
    with pytest.raises(DataError, match=r"feature 'x0' has values beyond float32's range"):
        reweighter.log_ratio(features=np.array([[1e39]]), theta={"mu": 0.5})


def test_events_far_outside_the_training_range_are_counted_and_warned(
        reweighter: Reweighter) -> None:
    """The diagnostics count events more than one training span outside the features'
    training range (there the network extrapolates: at x = 1e30 its ratio can flip sign)."""
    lo, hi = reweighter.metadata["feature_ranges"]["x0"]
    span = hi - lo
    x = np.array([[0.0], [hi + 0.5 * span], [hi + 2 * span], [1e30]])
    assert reweighter.outside_training_range(x) == 2
    diag = reweighter.diagnostics(features=x, theta={"mu": 0.5})
    assert diag["n_outside_training_range"] == 2
    assert "2 of 4 events lie more than one training span outside" in diag["warning"]
    inside = reweighter.diagnostics(features=x[:2], theta={"mu": 0.5})
    assert inside["n_outside_training_range"] == 0 and "warning" not in inside
