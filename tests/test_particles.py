"""The particle path of the core: jagged EventSets, per-batch padding, training and
evaluation of a particle network, and the ``inputs`` section of a spec.

Uses the toy source ``gaussian_particles`` (exact ratio known) and small PFNs.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from pathlib import Path

import awkward as ak
import numpy as np
import pytest
from conftest import assert_float32_close

from ratiofit.batching import pad_batch, particle_dataset, ragged_particles
from ratiofit.errors import DataError, SpecError
from ratiofit.events import EventSet
from ratiofit.parameters import Parameter, ParameterSet
from ratiofit.registry import get_registry
from ratiofit.reweighter import Reweighter
from ratiofit.spec import TrainingSpec, load_spec_text
from ratiofit.training import train_reweighter

MU = ParameterSet([Parameter(name="mu", nominal=0.0, low=-1.0, high=1.0)])
SMALL_PFN = {"phi": [32, 32, 16], "f": [32, 32], "activation": "swish",
             "theta_injection": "particle", "latent_norm": "none", "theta_input": True}


def toy(n: int, mu: float | np.ndarray, seed: int, *, theta: bool) -> EventSet:
    src = get_registry().get("source", "gaussian_particles")
    mu_arr = np.broadcast_to(np.asarray(mu, dtype=float), (n,))
    ev = src.generate(n_events=n, theta={"mu": mu_arr}, rng=np.random.default_rng(seed),
                      options={"multiplicity": 8.0, "mean": "mu", "width": 1.0})
    return ev.with_theta(mu_arr[:, None], ["mu"]) if theta else ev


# -- EventSet ---------------------------------------------------------------------------
def test_particles_parquet_round_trip_and_chunks(tmp_path: Path) -> None:
    ev = toy(1000, 0.3, seed=1, theta=True)
    path = tmp_path / "toy.parquet"
    ev.to_parquet(path, row_group_size=300)
    back = EventSet.from_parquet(path)
    assert ak.array_equal(back.particles, ev.particles)
    np.testing.assert_array_equal(back.theta, ev.theta)
    chunks = list(EventSet.iter_parquet(path, chunk_size=300))
    assert [len(c) for c in chunks] == [300, 300, 300, 100]
    assert ak.array_equal(ak.concatenate([c.particles for c in chunks]), ev.particles)
    # θ is one value per event, never one per particle
    assert back.theta.shape == (1000, 1)


def test_nonfinite_particle_field_is_refused() -> None:
    parts = ak.Array([[{"x": 1.0}, {"x": np.nan}], [{"x": 0.5}]])
    with pytest.raises(DataError, match="particle field 'x' contains 1 NaN"):
        EventSet(features=np.zeros((2, 0)), feature_names=(), particles=parts)


def test_nonfinite_particle_check_sees_only_the_events_held() -> None:
    """The check reads the list-offset layout's values between its first and last offset
    (no copies): a NaN in an event sliced away is not the EventSet's, one kept is."""
    parts = ak.Array([[{"x": np.nan}], [{"x": 1.0}, {"x": 2.0}], [{"x": np.inf}]])
    EventSet(features=np.zeros((1, 0)), feature_names=(), particles=parts[1:2])
    with pytest.raises(DataError, match="particle field 'x' contains 1 NaN"):
        EventSet(features=np.zeros((2, 0)), feature_names=(), particles=parts[1:])


def test_finite_checks_made_by_the_caller_are_skipped_and_replace_makes_them() -> None:
    """A file source checks every value as it reads it (naming file, column and row) and
    tells the EventSet so; anything derived with ``replace`` is checked again."""
    import dataclasses

    parts = ak.Array([[{"x": np.nan}]])
    ev = EventSet(features=np.array([[np.inf]]), feature_names=("a",), weights=[np.nan],
                  particles=parts, _finite_checked=("features", "weights", "particles"))
    with pytest.raises(DataError, match="NaN"):
        dataclasses.replace(ev)
    with pytest.raises(DataError, match="features contain 1 NaN/inf"):
        EventSet(features=np.array([[np.inf]]), feature_names=("a",),
                 _finite_checked=("weights",))


def test_particle_arrays_flat_and_counts() -> None:
    parts = ak.Array([[{"x": 1.0, "y": 2.0}, {"x": 3.0, "y": 4.0}], [{"x": 5.0, "y": 6.0}]])
    ev = EventSet(features=np.zeros((2, 0)), feature_names=(), particles=parts)
    flat, counts = ev.particle_arrays(["y", "x"])
    np.testing.assert_array_equal(flat, [[2, 1], [4, 3], [6, 5]])
    np.testing.assert_array_equal(counts, [2, 1])
    with pytest.raises(DataError, match="no particle field"):
        ev.particle_arrays(["pt"])


# -- batching ---------------------------------------------------------------------------
def test_pad_batch_pads_to_the_batch_maximum_rounded_to_8() -> None:
    flat = np.arange(20, dtype=float).reshape(10, 2)
    ragged = ragged_particles(flat, np.array([3, 1, 6]))
    dense, mask = pad_batch(ragged)
    assert tuple(dense.shape) == (3, 8, 2)
    np.testing.assert_array_equal(mask.numpy().sum(axis=1), [3, 1, 6])
    np.testing.assert_array_equal(dense.numpy()[2, :6], flat[4:10])
    assert np.all(dense.numpy()[0, 3:] == 0)


def test_bucketed_batches_cover_every_event_once_and_pad_less() -> None:
    rng = np.random.default_rng(0)
    counts = rng.integers(1, 60, size=5000)
    flat = rng.normal(size=(int(counts.sum()), 1))
    ragged = ragged_particles(flat, counts)
    index = np.arange(5000)
    y = np.zeros(5000, np.float32)
    ds, steps = particle_dataset(particles=ragged, flat={"n": counts[:, None].astype(float)},
                                 index=index, y=y, w=y + 1, batch_size=50, seed=1)
    seen, padded = [], 0
    for inputs, _, _ in ds.take(steps):
        seen.append(inputs["n"].numpy()[:, 0])
        padded += int(np.prod(inputs["mask"].shape))
        # the mask agrees with the event's own multiplicity
        np.testing.assert_array_equal(inputs["mask"].numpy().sum(axis=1), seen[-1])
    assert sorted(np.concatenate(seen).tolist()) == sorted(counts.tolist())
    global_padding = 5000 * 64  # every event padded to the global maximum (59 → 64)
    assert padded < 0.7 * global_padding


# -- training and evaluation ------------------------------------------------------------
@pytest.fixture(scope="module")
def trained_pfn() -> Reweighter:
    rng = np.random.default_rng(2)
    reference = toy(8000, 0.0, seed=3, theta=False)
    target = toy(8000, rng.uniform(-1, 1, 8000), seed=4, theta=True)
    reg = get_registry()
    return train_reweighter(
        reference=reference, target=target, parameters=MU,
        architecture=reg.get("architecture", "pfn"), architecture_options=SMALL_PFN,
        loss=reg.get("loss", "bce"),
        training=TrainingSpec(epochs=6, batch_size=256, patience=6, checkpoint=False,
                              restore_best=False),
        seed=5, features=(), particles=("x", "y"))


def test_pfn_reweighter_learns_the_toy_ratio(trained_pfn: Reweighter) -> None:
    """Learned log w at μ = 0.5 vs the exact one. With 8·10³ events per class and 6 epochs,
    the learned log w scatters by ~0.1–0.2 around the exact log w, whose spread over events
    is ~√8·0.5 ≈ 1.4; a correlation above 0.95 fails for an unparameterised or broken
    network (correlation ~0) while leaving room for the statistical noise."""
    src = get_registry().get("source", "gaussian_particles")
    events = toy(4000, 0.5, seed=9, theta=False)
    opts = {"multiplicity": 8.0, "mean": "mu", "width": 1.0}
    exact = (src.event_log_density(events=events, theta={"mu": 0.5}, options=opts)
             - src.event_log_density(events=events, theta={"mu": 0.0}, options=opts))
    learned = trained_pfn.log_ratio(features=events, theta={"mu": 0.5})
    assert np.corrcoef(exact, learned)[0, 1] > 0.95


def test_evaluation_independent_of_event_order_and_chunking(trained_pfn: Reweighter) -> None:
    events = toy(3000, 0.2, seed=11, theta=False)
    whole = trained_pfn.log_ratio(features=events, theta={"mu": 0.2})
    perm = np.random.default_rng(1).permutation(3000)
    shuffled = trained_pfn.log_ratio(features=events.take(perm), theta={"mu": 0.2})
    np.testing.assert_allclose(shuffled, whole[perm], rtol=1e-5, atol=1e-5)
    parts = np.concatenate([trained_pfn.log_ratio(features=events.take(np.arange(a, a + 700)),
                                                  theta={"mu": 0.2})
                            for a in range(0, 2800, 700)])
    np.testing.assert_allclose(parts, whole[:2800], rtol=1e-5, atol=1e-5)
    lw, grad = trained_pfn.log_ratio_and_gradient(features=events, theta={"mu": 0.2})
    np.testing.assert_allclose(lw, whole, rtol=1e-5, atol=1e-5)
    assert grad.shape == (3000, 1) and np.all(np.isfinite(grad))


def test_particle_reweighter_save_load_round_trip(trained_pfn: Reweighter,
                                                  tmp_path: Path) -> None:
    trained_pfn.save(tmp_path / "rw")
    back = Reweighter.load(tmp_path / "rw")
    events = toy(500, 0.0, seed=12, theta=False)
    assert_float32_close(back.log_ratio(features=events, theta={"mu": -0.3}),
                         trained_pfn.log_ratio(features=events, theta={"mu": -0.3}))
    assert back.signature.particle_names == ("x", "y")


def test_particle_reweighter_refuses_a_bare_feature_array(trained_pfn: Reweighter) -> None:
    with pytest.raises(DataError, match="reads particles"):
        trained_pfn.log_ratio(features=np.zeros((3, 2)), theta={"mu": 0.0})


# -- spec `inputs` ----------------------------------------------------------------------
SPEC = """\
seed: 1
parameters:
  mu: {nominal: 0.0, range: [-1.0, 1.0]}
samples:
  nominal: {source: gaussian_particles, n_events: 100, options: {mean: mu}}
  varied: {source: gaussian_particles, n_events: 100, theta: {mu: uniform},
           options: {mean: mu}}
reweighter:
  architecture: pfn
  reference: nominal
  target: varied
  inputs: INPUTS
"""


def test_inputs_section_is_validated_against_the_source() -> None:
    spec = load_spec_text(SPEC.replace("INPUTS", "{features: none, particles: [x, y]}"))
    assert spec.reweighter is not None
    assert spec.reweighter.features == () and spec.reweighter.particles == ("x", "y")
    with pytest.raises(SpecError, match=r"reweighter.inputs.particles: .*no particle 'xx'; "
                                        r"did you mean 'x'"):
        load_spec_text(SPEC.replace("INPUTS", "{particles: [xx]}"))
    with pytest.raises(SpecError, match=r"inputs.features: .*no feature 'n_part'"):
        load_spec_text(SPEC.replace("INPUTS", "{features: [n_part]}"))
    with pytest.raises(SpecError, match="needs some input"):
        load_spec_text(SPEC.replace("INPUTS", "{features: none}"))
    with pytest.raises(SpecError, match=r":12: reweighter.inputs.particles: expected 'none'"):
        load_spec_text(SPEC.replace("INPUTS", "{particles: 3}"))


def test_ensemble_mapping_form() -> None:
    base = SPEC.replace("INPUTS", "{features: all}")
    spec = load_spec_text(base + "ensemble: {members: 3, training_samples: independent}\n")
    assert spec.ensemble == 3 and spec.ensemble_independent_samples
    assert load_spec_text(base + "ensemble: 2\n").ensemble_independent_samples is False
    with pytest.raises(SpecError, match=r"ensemble.training_samples: must be one of \['shared', "
                                        r"'independent'\], got 'fresh'"):
        load_spec_text(base + "ensemble: {members: 3, training_samples: fresh}\n")
    with pytest.raises(SpecError, match=r"ensemble.members: must be >= 1"):
        load_spec_text(base + "ensemble: {members: 0}\n")


def test_split_evaluation_matches_the_full_network() -> None:
    """With θ injected after the particle sum, the reweighter caches the θ-free embedding
    and runs only the head per θ; values and θ-gradients must equal the full network's
    (float32 round-off)."""
    from ratiofit.plugin_api import InputSignature

    reg = get_registry()
    arch = reg.get("architecture", "pfn")
    sig = InputSignature(feature_names=("n_particles",), feature_mean=(8.0,), feature_std=(3.0,),
                         theta_names=("mu",), theta_centre=(0.0,), theta_half_width=(1.0,),
                         particle_names=("x", "y"), particle_mean=(0.0, 0.0),
                         particle_std=(1.0, 1.0))
    options = {**SMALL_PFN, "theta_injection": "latent"}
    model = arch.build(signature=sig, output_activation="sigmoid", options=options)
    loss = reg.get("loss", "bce")
    split = Reweighter(model=model, loss=loss, parameters=MU, signature=sig, architecture=arch)
    full = Reweighter(model=model, loss=loss, parameters=MU, signature=sig)
    assert split._split is not None and full._split is None
    events = toy(3000, 0.1, seed=13, theta=False)
    for mu in (-0.4, 0.7):
        np.testing.assert_allclose(split.log_ratio(features=events, theta={"mu": mu}),
                                   full.log_ratio(features=events, theta={"mu": mu}),
                                   rtol=1e-4, atol=1e-5)
        lw_s, g_s = split.log_ratio_and_gradient(features=events, theta={"mu": mu})
        lw_f, g_f = full.log_ratio_and_gradient(features=events, theta={"mu": mu})
        np.testing.assert_allclose(lw_s, lw_f, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(g_s, g_f, rtol=1e-3, atol=1e-5)
    # θ per particle: nothing to split
    per_particle = arch.build(signature=sig, output_activation="sigmoid", options=SMALL_PFN)
    assert arch.split(per_particle) is None
