"""Training mechanics: determinism, resume after interruption, class balance, pairing."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from conftest import MU, assert_float32_close, gaussian_events

from ratiofit.registry import get_registry
from ratiofit.spec import TrainingSpec
from ratiofit.training import prepare_training_data, train_reweighter


def _samples(n: int = 4000):
    rng = np.random.default_rng(0)
    ref = gaussian_events(n, 0.0, seed=1, theta=False)
    tgt = gaussian_events(n, rng.uniform(-2, 2, n), seed=2, theta=True)
    return ref, tgt


def _train(ref, tgt, *, epochs=4, checkpoint_dir=None, callbacks=None, seed=3):
    reg = get_registry()
    return train_reweighter(
        reference=ref, target=tgt, parameters=MU, architecture=reg.get("architecture", "mlp"),
        architecture_options={"hidden": [16, 16], "activation": "swish", "theta_input": True},
        loss=reg.get("loss", "bce"),
        training=TrainingSpec(epochs=epochs, batch_size=256, patience=10),
        seed=seed, checkpoint_dir=checkpoint_dir, extra_callbacks=callbacks)


def test_same_seed_same_numbers():
    ref, tgt = _samples()
    x = np.linspace(-2, 2, 9)[:, None]
    a = _train(ref, tgt).log_ratio(features=x, theta={"mu": 0.7})
    b = _train(ref, tgt).log_ratio(features=x, theta={"mu": 0.7})
    np.testing.assert_array_equal(a, b)
    c = _train(ref, tgt, seed=4).log_ratio(features=x, theta={"mu": 0.7})
    assert not np.array_equal(a, c)


class _Interrupt(keras.callbacks.Callback):
    def __init__(self, after_epoch: int) -> None:
        super().__init__()
        self.after_epoch = after_epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.after_epoch:
            raise KeyboardInterrupt("simulated kill")


def test_interrupted_training_resumes_from_checkpoint(tmp_path):
    ref, tgt = _samples()
    ckpt = tmp_path / "ckpt"
    with pytest.raises(KeyboardInterrupt):
        _train(ref, tgt, epochs=6, checkpoint_dir=ckpt, callbacks=[_Interrupt(after_epoch=2)])
    assert (ckpt / "early_stopping.json").exists()
    assert (ckpt / "state.json").exists()
    rw = _train(ref, tgt, epochs=6, checkpoint_dir=ckpt)
    # Epochs 0-2 were done before the kill, the rerun ran epochs 3-5: the history and
    # epochs_run count all six.
    assert rw.metadata["epochs_run"] == 6
    assert len(rw.metadata["history"]["loss"]) == 6
    assert not ckpt.exists()  # the checkpoint is removed after a completed training
    lw = rw.log_ratio(features=np.array([[1.0]]), theta={"mu": 1.0})
    assert abs(lw[0] - 0.5) < 0.5  # trained, not re-initialised (exact value 0.5)


X_PROBE = np.linspace(-2, 2, 9)[:, None]


def _killed(tmp_path, ref, tgt):
    ckpt = tmp_path / "ckpt"
    with pytest.raises(KeyboardInterrupt):
        _train(ref, tgt, epochs=4, checkpoint_dir=ckpt, callbacks=[_Interrupt(after_epoch=1)])
    return ckpt


def test_a_checkpoint_of_another_training_is_discarded(tmp_path, caplog):
    """Killed, then rerun with another seed: the old checkpoint is not continued (it was,
    labelled with the new seed); the result is the clean run's with the new seed."""
    ref, tgt = _samples()
    ckpt = _killed(tmp_path, ref, tgt)
    with caplog.at_level("WARNING", logger="ratiofit"):
        rerun = _train(ref, tgt, epochs=4, checkpoint_dir=ckpt, seed=4)
    assert "belongs to another training" in caplog.text
    clean = _train(ref, tgt, epochs=4, seed=4)
    np.testing.assert_array_equal(rerun.log_ratio(features=X_PROBE, theta={"mu": 0.7}),
                                  clean.log_ratio(features=X_PROBE, theta={"mu": 0.7}))
    assert rerun.metadata["epochs_run"] == clean.metadata["epochs_run"] == 4


def test_a_torn_checkpoint_is_discarded(tmp_path, caplog):
    """A backup file cut short (killed while it was written) is detected by its checksum;
    the rerun starts afresh instead of failing with a traceback at every rerun."""
    ref, tgt = _samples()
    ckpt = _killed(tmp_path, ref, tgt)
    weights = ckpt / "backup" / "latest.weights.h5"
    weights.write_bytes(weights.read_bytes()[:100])
    with caplog.at_level("WARNING", logger="ratiofit"):
        rerun = _train(ref, tgt, epochs=4, checkpoint_dir=ckpt)
    assert "it is torn" in caplog.text
    clean = _train(ref, tgt, epochs=4)
    np.testing.assert_array_equal(rerun.log_ratio(features=X_PROBE, theta={"mu": 0.7}),
                                  clean.log_ratio(features=X_PROBE, theta={"mu": 0.7}))


def test_a_diverged_training_is_an_error_and_saves_nothing(tmp_path):
    from ratiofit.errors import DataError

    ref, tgt = _samples(2000)
    reg = get_registry()
    ckpt = tmp_path / "ckpt"
    with pytest.raises(DataError, match=r"^training diverged: .* \(learning_rate 1e\+30\)"):
        train_reweighter(
            reference=ref, target=tgt, parameters=MU,
            architecture=reg.get("architecture", "mlp"),
            architecture_options={"hidden": [16, 16], "activation": "swish", "theta_input": True},
            loss=reg.get("loss", "bce"),
            training=TrainingSpec(epochs=3, batch_size=256, learning_rate=1e30,
                                  schedule="constant"),
            seed=3, checkpoint_dir=ckpt)
    assert not ckpt.exists()


def test_validation_split_is_shuffled_and_classes_balanced():
    ref, tgt = _samples(3000)
    tgt_small = tgt.take(np.arange(1000))
    data = prepare_training_data(reference=ref, target=tgt_small, parameters=MU,
                                 validation_fraction=0.2, class_balance=True,
                                 rng=np.random.default_rng(0))
    # Both classes appear in validation in proportion (Keras' validation_split would not).
    frac_target = data.y_val.mean()
    assert abs(frac_target - 0.25) < 0.05
    # Equal total weight per class.
    w_all = np.concatenate([data.w, data.w_val])
    y_all = np.concatenate([data.y, data.y_val])
    assert np.isclose(w_all[y_all == 1].sum(), w_all[y_all == 0].sum(), rtol=1e-5)
    assert data.class_factor == pytest.approx(3.0)


def test_reference_theta_drawn_from_target_theta():
    ref, tgt = _samples(2000)
    data = prepare_training_data(reference=ref, target=tgt, parameters=MU,
                                 validation_fraction=0.1, class_balance=True,
                                 rng=np.random.default_rng(0))
    th = np.concatenate([data.x["theta"], data.x_val["theta"]])[:, 0]
    y = np.concatenate([data.y, data.y_val])
    target_values = set(np.float32(tgt.theta[:, 0]).tolist())
    assert set(th[y == 0].tolist()) <= target_values
    assert not np.any(th[y == 0] == 0.0)  # never paired with θ₀


def test_mixed_precision_keeps_the_ratio_map_in_float32(tmp_path):
    """training.mixed_precision: hidden layers compute in float16, the output and the
    loss-to-ratio map in float32; the global Keras policy is restored; the model saves
    and loads (safe mode) and gives the same log w."""
    from ratiofit.reweighter import Reweighter

    ref, tgt = _samples(2000)
    reg = get_registry()
    rw = train_reweighter(
        reference=ref, target=tgt, parameters=MU, architecture=reg.get("architecture", "mlp"),
        architecture_options={"hidden": [16, 16], "activation": "swish", "theta_input": True},
        loss=reg.get("loss", "bce"),
        training=TrainingSpec(epochs=1, batch_size=256, patience=10, mixed_precision=True),
        seed=3)
    assert keras.config.dtype_policy().name == "float32"
    hidden = [layer for layer in rw.model.layers if layer.name.startswith("hidden")]
    assert hidden and all(layer.compute_dtype == "float16" for layer in hidden)
    assert rw.model.layers[-1].compute_dtype == "float32"
    x = np.linspace(-2, 2, 9)[:, None]
    lw = rw.log_ratio(features=x, theta={"mu": 0.7})
    # The loss's map applied in float64 to the same float32 output: agreement to float32
    # rounding (a float16 map would be off by ~1e-3 relative).
    # The network standardises its own inputs: it is fed raw x and θ.
    feed = {"features": x.astype("float32"), "theta": np.full((9, 1), 0.7, dtype="float32")}
    f = np.asarray(rw.model(feed), dtype=np.float64)[:, 0]
    assert np.asarray(rw.model(feed)).dtype == np.float32
    expected = np.asarray(rw.loss.log_ratio(keras.ops.convert_to_tensor(f, dtype="float64")))
    np.testing.assert_allclose(lw, expected.reshape(-1), rtol=1e-6, atol=1e-6)
    rw.save(tmp_path / "rw")
    again = Reweighter.load(tmp_path / "rw")
    assert_float32_close(again.log_ratio(features=x, theta={"mu": 0.7}), lw)
