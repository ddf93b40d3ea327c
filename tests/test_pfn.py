"""The ``pfn`` architecture: contract, padding and permutation invariance, θ injection,
saving with ``safe_mode`` and parameter counts."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import pytest

from ratiofit.options import Option, resolve_options
from ratiofit.plugin_api import InputSignature
from ratiofit.plugins.architectures.pfn import PFN
from ratiofit.registry import get_registry
from ratiofit.testing import check_plugin

SIG = InputSignature(feature_names=("mjj", "nconst"), feature_mean=(90.0, 40.0),
                     feature_std=(20.0, 12.0), theta_names=("alpha_s", "a_lund"),
                     theta_centre=(0.14, 0.7), theta_half_width=(0.04, 0.2),
                     particle_names=("pt", "eta", "phi"), particle_mean=(5.0, 0.0, 0.0),
                     particle_std=(8.0, 1.2, 1.8))
SMALL = {"phi": [16, 16, 8], "f": [16, 16]}
M, PAD = 7, 17


def opts(**given: Any) -> dict[str, Any]:
    return resolve_options(PFN.options, given, where="architecture.options")


def build(signature: InputSignature = SIG, **given: Any) -> Any:
    import keras

    keras.utils.set_random_seed(1)
    return PFN().build(signature=signature, output_activation="linear",
                       options=opts(**{**SMALL, **given}))


def events(n: int = 12, m: int = M, seed: int = 0) -> dict[str, np.ndarray]:
    """``n`` events with 1..m real particles each (front-padded layout), θ and features."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(1, m + 1, n)
    counts[0] = m  # one event with no padding at all
    mask = (np.arange(m)[None, :] < counts[:, None]).astype(np.float32)
    particles = np.stack([rng.exponential(5.0, (n, m)), rng.normal(0, 1.2, (n, m)),
                          rng.uniform(-np.pi, np.pi, (n, m))], axis=-1).astype(np.float32)
    particles *= mask[..., None]
    theta = np.stack([rng.uniform(0.10, 0.18, n), rng.uniform(0.5, 0.9, n)], 1)
    features = np.stack([rng.normal(90, 20, n), rng.normal(40, 12, n)], 1)
    return {"particles": particles, "mask": mask, "theta": theta.astype(np.float32),
            "features": features.astype(np.float32)}


def run(model: Any, x: dict[str, np.ndarray]) -> np.ndarray:
    names = [t.name for t in model.inputs]
    return np.asarray(model({k: v for k, v in x.items() if k in names}))


def with_garbage_padding(x: dict[str, np.ndarray], extra: int, seed: int = 5,
                         fill: float | None = None) -> dict[str, np.ndarray]:
    """Append ``extra`` padded slots; every padded slot (old and new) gets garbage fields."""
    rng = np.random.default_rng(seed)
    n, m, k = x["particles"].shape
    mask = np.concatenate([x["mask"], np.zeros((n, extra), np.float32)], axis=1)
    garbage = (rng.normal(0, 1e3, (n, m + extra, k)) if fill is None
               else np.full((n, m + extra, k), fill))
    real = np.concatenate([x["particles"], np.zeros((n, extra, k), np.float32)], axis=1)
    particles = np.where(mask[..., None] > 0, real, garbage).astype(np.float32)
    return {**x, "particles": particles, "mask": mask}


def close(a: np.ndarray, b: np.ndarray) -> None:
    """Equal up to float32 round-off (a few ulp of the output scale)."""
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * max(1.0, float(np.abs(a).max())))


# -- contract ---------------------------------------------------------------------------


def test_registered_through_entry_point() -> None:
    rec = get_registry().record("architecture", "pfn")
    assert isinstance(rec.obj, PFN) and rec.distribution == "ratiofit"


def test_check_plugin_with_particle_signature() -> None:
    sig = InputSignature(feature_names=("e",), feature_mean=(0.0,), feature_std=(1.0,),
                         theta_names=("a", "b"), theta_centre=(0.0, 0.0),
                         theta_half_width=(1.0, 1.0), particle_names=("z", "deta", "dphi"),
                         particle_mean=(0.1, 0.0, 0.0), particle_std=(0.2, 0.3, 0.3))
    for injection in ("particle", "latent"):
        check_plugin(PFN(), kind="architecture", options={**SMALL, "theta_injection": injection},
                     signature=sig)


def test_particle_contract_like_check_plugin() -> None:
    """What check_plugin checks, with particle inputs: options, shape, config round trip."""
    import keras

    assert isinstance(PFN.options, dict)
    assert all(isinstance(o, Option) for o in PFN.options.values())
    model = build()
    x = events(n=4)
    out = run(model, x)
    assert out.shape == (4, 1) and np.all(np.isfinite(out))
    assert {t.name for t in model.inputs} == {"particles", "mask", "theta", "features"}
    clone = keras.Model.from_config(model.get_config())
    clone.set_weights(model.get_weights())
    close(run(clone, x), out)


@pytest.mark.parametrize("given", [{"theta_names": (), "theta_centre": (),
                                    "theta_half_width": ()},
                                   {"feature_names": (), "feature_mean": (), "feature_std": ()}])
def test_optional_inputs_absent(given: dict[str, Any]) -> None:
    sig = InputSignature(**{**SIG.to_dict(), **given})
    model = build(sig)
    names = {t.name for t in model.inputs}
    assert {"particles", "mask"} <= names
    assert ("theta" in names) == bool(sig.theta_names)
    assert ("features" in names) == bool(sig.feature_names)
    assert run(model, events(n=3)).shape == (3, 1)


def test_rejects_flat_only_signature_and_empty_phi() -> None:
    flat = InputSignature(feature_names=("x",), feature_mean=(0.0,), feature_std=(1.0,),
                          theta_names=(), theta_centre=(), theta_half_width=())
    with pytest.raises(ValueError, match="particle"):
        PFN().build(signature=flat, output_activation="linear", options=opts())
    with pytest.raises(ValueError, match="phi"):
        build(phi=[])


# -- invariances ------------------------------------------------------------------------


@pytest.mark.parametrize("given", [{"theta_injection": "particle"},
                                   {"theta_injection": "latent"},
                                   {"theta_injection": "particle", "latent_norm": "layer"},
                                   {"theta_injection": "latent", "latent_norm": "batch"}])
def test_padding_invariance(given: dict[str, Any]) -> None:
    model = build(**given)
    x = events()
    ref = run(model, x)
    close(run(model, with_garbage_padding(x, PAD)), ref)
    # NaN / inf in padded slots must not leak either (select, not multiply, before Φ).
    for fill in (np.nan, np.inf):
        assert np.array_equal(np.isfinite(run(model, with_garbage_padding(x, PAD, fill=fill))),
                              np.ones_like(ref, bool))
        close(run(model, with_garbage_padding(x, PAD, fill=fill)), ref)


def test_padding_invariance_of_gradients() -> None:
    """NaN padding leaves the weight gradients finite and equal to the unpadded ones."""
    import tensorflow as tf

    model = build(theta_injection="particle")
    x = events()

    def grads(inp: dict[str, np.ndarray]) -> list[np.ndarray]:
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(model(inp) ** 2)
        return [np.asarray(g) for g in tape.gradient(loss, model.trainable_weights)]

    for g0, g1 in zip(grads(x), grads(with_garbage_padding(x, PAD, fill=np.nan)), strict=True):
        assert np.all(np.isfinite(g1))
        close(g1, g0)


@pytest.mark.parametrize("injection", ["particle", "latent"])
def test_permutation_invariance(injection: str) -> None:
    model = build(theta_injection=injection)
    x = with_garbage_padding(events(), 3)
    ref = run(model, x)
    rng = np.random.default_rng(9)
    for _ in range(2):
        # independent permutation per event, padding slots shuffled in among the real ones
        perm = np.argsort(rng.random(x["mask"].shape), axis=1)
        y = {**x, "particles": np.take_along_axis(x["particles"], perm[..., None], axis=1),
             "mask": np.take_along_axis(x["mask"], perm, axis=1)}
        close(run(model, y), ref)


@pytest.mark.parametrize("injection", ["particle", "latent"])
def test_theta_injection_modes(injection: str) -> None:
    model = build(theta_injection=injection)
    width_in = model.get_layer("phi_0").kernel.shape[0]
    assert width_in == (3 + 2 if injection == "particle" else 3)
    x = events()
    out = run(model, x)
    shifted = run(model, {**x, "theta": x["theta"] + np.float32(0.03)})
    assert np.max(np.abs(out - shifted)) > 1e-4  # θ reaches the output
    names = {layer.name for layer in model.layers}
    assert ("theta_per_particle" in names) == (injection == "particle")


def test_theta_input_false_is_theta_blind() -> None:
    model = build(theta_input=False)
    x = events()
    assert "theta" in {t.name for t in model.inputs}
    close(run(model, {**x, "theta": x["theta"] * 0.5}), run(model, x))


# -- saving -----------------------------------------------------------------------------


def test_save_load_safe_mode_fresh_process(tmp_path: Path) -> None:
    import keras

    model = build(theta_injection="particle", latent_norm="layer")
    x = with_garbage_padding(events(), 4)
    path = tmp_path / "pfn.keras"
    model.save(path)
    np.savez(tmp_path / "x.npz", **x)
    np.save(tmp_path / "ref.npy", run(model, x))
    # In-process, as Reweighter.load does it.
    loaded = keras.saving.load_model(path, compile=False, safe_mode=True,
                                     custom_objects=PFN().custom_objects())
    assert np.array_equal(run(loaded, x), run(model, x))
    # In a fresh process: the layers are registered by asking the plugin for them.
    script = textwrap.dedent(f"""
        import os
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
        import keras, numpy as np
        from ratiofit.registry import get_registry
        arch = get_registry().get("architecture", "pfn")
        model = keras.saving.load_model({str(path)!r}, compile=False, safe_mode=True,
                                        custom_objects=arch.custom_objects())
        x = dict(np.load({str(tmp_path / "x.npz")!r}))
        out = np.asarray(model({{t.name: x[t.name] for t in model.inputs}}))
        np.save({str(tmp_path / "out.npy")!r}, out)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert np.array_equal(np.load(tmp_path / "out.npy"), np.load(tmp_path / "ref.npy"))


# -- size -------------------------------------------------------------------------------


def dense(n_in: int, n_out: int) -> int:
    return n_in * n_out + n_out


@pytest.mark.parametrize("injection", ["particle", "latent"])
def test_default_parameter_count(injection: str) -> None:
    """Defaults Φ [100, 100, 128], F [100, 100, 100] with k = 3, p = 2, d = 2."""
    import keras

    keras.utils.set_random_seed(1)
    model = PFN().build(signature=SIG, output_activation="sigmoid",
                        options=opts(theta_injection=injection))
    k, p, d = 3, 2, 2
    phi_in = k + p if injection == "particle" else k
    f_in = 128 + d + (p if injection == "latent" else 0)
    expected = (dense(phi_in, 100) + dense(100, 100) + dense(100, 128)
                + dense(f_in, 100) + dense(100, 100) + dense(100, 100) + dense(100, 1))
    # particle: 600 + 10100 + 12928 + 13100 + 10100 + 10100 + 101 = 57029
    # latent:   400 + 10100 + 12928 + 13300 + 10100 + 10100 + 101 = 57029
    assert expected == 57029
    assert model.count_params() == expected  # the Normalization layers hold no weights
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == expected
