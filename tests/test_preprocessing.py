"""Jet preprocessing: momentum fractions, coordinates about the axis, PID encodings."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest

from ratiofit.plugins.jets.preprocessing import (
    ONEHOT_SPECIES,
    PID_CODES,
    pid_charge,
    pid_code,
    preprocess_jets,
)

STABLE = [22, 11, -11, 13, -13, 211, -211, 321, -321, 130, 2212, -2212, 2112, -2112]


def random_jets(n: int, seed: int) -> tuple[ak.Array, np.ndarray, np.ndarray]:
    """``n`` jets of 0–30 constituents around random axes (φ near ±π on purpose)."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(0, 31, size=n)
    total = int(counts.sum())
    jet_eta = rng.uniform(-2, 2, n)
    jet_phi = rng.choice([-np.pi + 0.05, np.pi - 0.05, 0.3], size=n)
    eta = np.repeat(jet_eta, counts) + rng.normal(0, 0.3, total)
    phi = np.repeat(jet_phi, counts) + rng.normal(0, 0.3, total)
    phi = np.arctan2(np.sin(phi), np.cos(phi))  # stored in [-π, π] like a generator does
    flat = ak.zip({"pt": rng.exponential(3.0, total), "eta": eta, "phi": phi,
                   "pid": rng.choice(STABLE, size=total).astype(np.int32)})
    return ak.unflatten(flat, counts), jet_eta, jet_phi


def test_z_sums_to_one_and_fields_kept() -> None:
    jets, jet_eta, jet_phi = random_jets(500, seed=1)
    out = preprocess_jets(jets, jet_eta=jet_eta, jet_phi=jet_phi)
    assert set(out.fields) == {"pt", "eta", "phi", "pid", "z", "deta", "dphi", "pid_code"}
    sums = ak.to_numpy(ak.sum(out.z, axis=1))
    nonempty = ak.to_numpy(ak.num(out, axis=1)) > 0
    np.testing.assert_allclose(sums[nonempty], 1.0, rtol=1e-12)
    assert np.all(sums[~nonempty] == 0)
    assert ak.all(out.pt == jets.pt) and ak.all(out.pid == jets.pid)
    # An explicit jet pT normalises instead of the scalar sum.
    jpt = np.full(len(jets), 10.0)
    np.testing.assert_allclose(ak.to_numpy(ak.flatten(preprocess_jets(
        jets, jet_pt=jpt, jet_eta=jet_eta, jet_phi=jet_phi).z)),
        ak.to_numpy(ak.flatten(jets.pt)) / 10.0)


def test_deta_and_dphi_wrapped() -> None:
    jets, jet_eta, jet_phi = random_jets(500, seed=2)
    out = preprocess_jets(jets, jet_eta=jet_eta, jet_phi=jet_phi)
    counts = ak.to_numpy(ak.num(out, axis=1))
    dphi = ak.to_numpy(ak.flatten(out.dphi))
    assert np.all(dphi > -np.pi) and np.all(dphi <= np.pi)
    # Constituents are within ~1 of the axis even across the ±π seam.
    assert np.abs(dphi).max() < 2.0
    expected = ak.to_numpy(ak.flatten(jets.phi)) - np.repeat(jet_phi, counts)
    np.testing.assert_allclose(np.cos(dphi), np.cos(expected), atol=1e-12)
    np.testing.assert_allclose(ak.to_numpy(ak.flatten(out.deta)),
                               ak.to_numpy(ak.flatten(jets.eta)) - np.repeat(jet_eta, counts))
    # The half-open interval: exactly ±π maps to +π.
    edge = ak.Array([[{"pt": 1.0, "eta": 0.0, "phi": np.pi, "pid": 22},
                      {"pt": 1.0, "eta": 0.0, "phi": -np.pi, "pid": 22}]])
    got = ak.to_numpy(preprocess_jets(edge, jet_eta=[0.0], jet_phi=[0.0]).dphi[0])
    np.testing.assert_allclose(got, [np.pi, np.pi])


def test_float32_input_stays_float32() -> None:
    jets, jet_eta, jet_phi = random_jets(20, seed=3)
    jets32 = ak.zip({"pt": ak.values_astype(jets.pt, np.float32),
                     "eta": ak.values_astype(jets.eta, np.float32),
                     "phi": ak.values_astype(jets.phi, np.float32), "pid": jets.pid})
    out = preprocess_jets(jets32, jet_eta=jet_eta, jet_phi=jet_phi)
    for f in ("z", "deta", "dphi", "pid_code"):
        assert ak.to_numpy(ak.flatten(out[f])).dtype == np.float32


def test_remap_table_distinct_in_unit_interval_and_signed() -> None:
    codes = np.array(list(PID_CODES.values()))
    assert len(np.unique(codes)) == len(codes)
    assert np.all(codes > 0) and np.all(codes <= 1)  # 0 is left to padding
    for pid in (11, 13, 211, 321, 2212, 2112, 3122):  # particle and antiparticle differ
        assert PID_CODES[pid] != PID_CODES[-pid]
    np.testing.assert_array_equal(pid_code(STABLE), [PID_CODES[p] for p in STABLE])
    np.testing.assert_array_equal(pid_charge([22, 211, -211, 11, -11, 2112]),
                                  [0, 1, -1, -1, 1, 0])


def test_unknown_pid_names_it() -> None:
    jets = ak.Array([[{"pt": 1.0, "eta": 0.0, "phi": 0.0, "pid": 211},
                      {"pt": 1.0, "eta": 0.0, "phi": 0.0, "pid": 4122}]])
    with pytest.raises(ValueError, match="4122"):
        preprocess_jets(jets, jet_eta=[0.0], jet_phi=[0.0])
    with pytest.raises(ValueError, match="-99"):
        pid_code([22, -99])
    # No PID fields asked for: no lookup, so no error.
    out = preprocess_jets(jets, jet_eta=[0.0], jet_phi=[0.0], pid_encoding="none")
    assert "pid_code" not in out.fields


def test_onehot_encoding() -> None:
    jets, jet_eta, jet_phi = random_jets(50, seed=4)
    out = preprocess_jets(jets, jet_eta=jet_eta, jet_phi=jet_phi, pid_encoding="onehot")
    names = [f"pid_{s}" for s in ONEHOT_SPECIES]
    assert "pid_code" not in out.fields
    assert set(names) | {"charge"} <= set(out.fields)
    onehot = np.stack([ak.to_numpy(ak.flatten(out[n])) for n in names], axis=1)
    np.testing.assert_array_equal(onehot.sum(axis=1), 1.0)
    pid = ak.to_numpy(ak.flatten(out.pid))
    np.testing.assert_array_equal(onehot[:, ONEHOT_SPECIES.index("pion")] == 1,
                                  np.abs(pid) == 211)
    np.testing.assert_array_equal(ak.to_numpy(ak.flatten(out.charge)), pid_charge(pid))
    both = preprocess_jets(jets, jet_eta=jet_eta, jet_phi=jet_phi, pid_encoding="both")
    assert {"pid_code", "charge", *names} <= set(both.fields)


def test_bad_inputs() -> None:
    jets, jet_eta, jet_phi = random_jets(5, seed=5)
    with pytest.raises(ValueError, match="pid_encoding"):
        preprocess_jets(jets, jet_eta=jet_eta, jet_phi=jet_phi, pid_encoding="hot")
    with pytest.raises(ValueError, match="one value per jet"):
        preprocess_jets(jets, jet_eta=jet_eta[:3], jet_phi=jet_phi)
    with pytest.raises(ValueError, match="lack field"):
        preprocess_jets(jets[["pt", "eta", "phi"]], jet_eta=jet_eta, jet_phi=jet_phi)
