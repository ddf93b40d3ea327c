"""Jet observables against direct per-jet Python references, and their physical properties.

The references below loop over jets, particles, pairs and ``itertools.combinations`` in
plain Python: slow and obviously correct. Exact-value comparisons use ``rtol = 1e-9`` (plus
``atol = 1e-12`` for values that are 0 up to round-off): the two computations differ only
by float64 round-off (summation order, a matrix product instead of a nested loop), which is
~1e-15 relative for these all-positive sums.
"""

from __future__ import annotations

import itertools
import math
import warnings

import awkward as ak
import numpy as np
import pytest

from ratiofit.errors import DataError
from ratiofit.plugins.jets import observables
from ratiofit.plugins.jets.observables import OBSERVABLES, STRANGE_PIDS, jet_observables

RTOL, ATOL = 1e-9, 1e-12  # float64 round-off, see the module docstring


# --------------------------------------------------------------------------- references


def delta_r(y1: float, phi1: float, y2: float, phi2: float) -> float:
    dphi = abs(phi1 - phi2) % (2 * math.pi)
    dphi = min(dphi, 2 * math.pi - dphi)
    return math.hypot(y1 - y2, dphi)


def four_vector(pt: float, eta: float, phi: float) -> list[float]:
    return [pt * math.cos(phi), pt * math.sin(phi), pt * math.sinh(eta), pt * math.cosh(eta)]


def rap_phi_pt(v: list[float]) -> tuple[float, float, float]:
    px, py, pz, e = v
    return 0.5 * math.log((e + pz) / (e - pz)), math.atan2(py, px), math.hypot(px, py)


def ref_kt_axes(jet: list[dict], n: int) -> list[tuple[float, float]]:
    """Beamless exclusive kt: merge the pair of smallest min(pT²)·ΔR² (E-scheme) to n jets."""
    vecs = [four_vector(p["pt"], p["eta"], p["phi"]) for p in jet]
    while len(vecs) > n:
        best, pair = math.inf, (0, 0)
        for i, j in itertools.combinations(range(len(vecs)), 2):
            yi, fi, pti = rap_phi_pt(vecs[i])
            yj, fj, ptj = rap_phi_pt(vecs[j])
            d = min(pti, ptj) ** 2 * delta_r(yi, fi, yj, fj) ** 2
            if d < best:
                best, pair = d, (i, j)
        i, j = pair
        merged = [a + b for a, b in zip(vecs[i], vecs[j], strict=True)]
        vecs = [v for k, v in enumerate(vecs) if k not in pair] + [merged]
    return [rap_phi_pt(v)[:2] for v in vecs]


def ref_tau(jet: list[dict], n: int, r0: float = 0.8) -> float:
    if len(jet) <= n:
        return 0.0
    axes = ref_kt_axes(jet, n)
    num = sum(p["pt"] * min(delta_r(p["eta"], p["phi"], y, f) for y, f in axes) for p in jet)
    return num / (sum(p["pt"] for p in jet) * r0)


def ref_ecf(jet: list[dict], n: int, beta: float) -> float:
    total_pt = sum(p["pt"] for p in jet)
    total = 0.0
    for combo in itertools.combinations(jet, n):
        weight = math.prod(p["pt"] / total_pt for p in combo)
        angles = math.prod(delta_r(a["eta"], a["phi"], b["eta"], b["phi"]) ** beta
                           for a, b in itertools.combinations(combo, 2))
        total += weight * angles
    return total


def ref_observables(jets: ak.Array, beta: float = 4.0) -> dict[str, np.ndarray]:
    rows = []
    for jet in jets.to_list():
        tau = [ref_tau(jet, n) for n in (1, 2, 3)]
        rows.append({
            "multiplicity": len(jet),
            "n_strange": sum(abs(p["pid"]) in STRANGE_PIDS for p in jet),
            "tau1": tau[0], "tau2": tau[1], "tau3": tau[2],
            "tau21": tau[1] / tau[0] if tau[0] > 0 else 0.0,
            "tau32": tau[2] / tau[1] if tau[1] > 0 else 0.0,
            "ecf2": ref_ecf(jet, 2, beta), "ecf3": ref_ecf(jet, 3, beta),
            "ecf4": ref_ecf(jet, 4, beta),
        })
    return {k: np.array([r[k] for r in rows], dtype=np.float64) for k in OBSERVABLES}


# --------------------------------------------------------------------------- samples

PIDS = np.array([211, -211, 22, 2212, -2112, 11, 311, 321, -321, 130, 310, 3122, -3122,
                 3222, -3112, 3312, -3322, 3334])


def random_jets(multiplicities: list[int] | np.ndarray, seed: int, *, spread: float = 0.3,
                phi0: float = 0.0) -> ak.Array:
    """Jets around (eta, phi) = (~U(-2, 2), phi0) with exponential pT; phi in (-π, π]."""
    rng = np.random.default_rng(seed)
    counts = np.asarray(multiplicities, dtype=np.int64)
    centre = np.repeat(rng.uniform(-2, 2, len(counts)), counts)
    n = int(counts.sum())
    phi = phi0 + rng.normal(0, spread, n)
    phi = np.where(phi > np.pi, phi - 2 * np.pi, np.where(phi <= -np.pi, phi + 2 * np.pi, phi))
    flat = {"pt": rng.exponential(20.0, n) + 0.5, "eta": centre + rng.normal(0, spread, n),
            "phi": phi, "pid": rng.choice(PIDS, n), "charge": rng.integers(-1, 2, n)}
    return ak.unflatten(ak.zip(flat), counts)


def assert_matches(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> None:
    assert list(got) == list(OBSERVABLES)
    for key in OBSERVABLES:
        assert got[key].dtype == np.float64, key
        np.testing.assert_allclose(got[key], want[key], rtol=RTOL, atol=ATOL, err_msg=key)


@pytest.fixture(scope="module")
def mixed_jets() -> ak.Array:
    """0…14 constituents, a few larger ones; half of them straddle φ = ±π."""
    mult = [*range(15), *range(15), 18, 20, 7, 9]
    jets = ak.concatenate([random_jets(mult[:19], seed=1),
                           random_jets(mult[19:], seed=2, phi0=np.pi)])
    return jets


# --------------------------------------------------------------------------- exact values


@pytest.mark.parametrize("beta", [4.0, 1.0, 0.5])
def test_all_observables_match_the_reference(mixed_jets, beta):
    assert_matches(jet_observables(mixed_jets, beta_ecf=beta),
                   ref_observables(mixed_jets, beta=beta))


def test_broad_jets_match_the_reference():
    # ΔR up to ~π: exercises the φ wrapping and kt clustering far from the collinear limit.
    jets = random_jets([5, 8, 11, 12], seed=3, spread=1.5)
    assert_matches(jet_observables(jets), ref_observables(jets))


def test_kt_axes_match_the_reference():
    jets = random_jets([6, 9, 13], seed=4)
    counts = np.asarray(ak.num(jets))
    pt, eta, phi = (np.asarray(ak.flatten(jets[f]), dtype=np.float64)
                    for f in ("pt", "eta", "phi"))
    axes = list(observables._kt_axes(counts, pt, eta, phi, n_max=3))
    assert len(axes) == 3
    for n, (selected, axis_rap, axis_phi) in enumerate(axes, start=1):
        assert selected.tolist() == [0, 1, 2] and axis_rap.shape == (3, n)
        for row, jet in enumerate(jets.to_list()):
            want = sorted(ref_kt_axes(jet, n))
            got = sorted(zip(axis_rap[row], axis_phi[row], strict=True))
            np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)


def test_strange_count_counts_each_listed_species_and_antiparticle():
    listed = [321, -321, 310, 130, 3122, -3122, 3222, -3222, 3112, -3112, 3312, -3312,
              3322, -3322, 3334, -3334]
    other = [211, -211, 111, 22, 2212, -2212, 2112, 11, -13, 311, -311, 431, 333]
    pids = listed + other
    jet = [{"pt": 1.0 + i, "eta": 0.01 * i, "phi": 0.02 * i, "pid": p} for i, p in enumerate(pids)]
    obs = jet_observables(ak.Array([jet, jet[len(listed):], jet[:3]]))
    assert obs["n_strange"].tolist() == [len(listed), 0.0, 3.0]
    assert STRANGE_PIDS == frozenset({321, 310, 130, 3122, 3222, 3112, 3312, 3322, 3334})


def test_small_jets_by_hand():
    one = [{"pt": 7.0, "eta": 0.5, "phi": 3.1, "pid": 22}]
    two = [{"pt": 1.0, "eta": 0.0, "phi": 3.0, "pid": 22},
           {"pt": 3.0, "eta": 0.0, "phi": -3.0, "pid": 22}]  # Δφ = 2π − 6 across the wrap
    three = [{"pt": 1.0, "eta": 0.0, "phi": 0.0, "pid": 22},
             {"pt": 3.0, "eta": 0.4, "phi": 0.0, "pid": 22},
             {"pt": 1.0, "eta": 0.0, "phi": 0.4, "pid": 22}]
    obs = jet_observables(ak.Array([[], one, two, three]), beta_ecf=2.0)
    assert obs["multiplicity"].tolist() == [0.0, 1.0, 2.0, 3.0]
    for key in ("n_strange", "tau1", "tau2", "tau3", "tau21", "tau32", "ecf2", "ecf3", "ecf4"):
        assert obs[key][:2].tolist() == [0.0, 0.0], key  # empty and single-particle jets
    dphi = 2 * np.pi - 6.0
    np.testing.assert_allclose(obs["ecf2"][2], 0.25 * 0.75 * dphi**2, rtol=RTOL)
    # two particles: the kt axis is their E-scheme sum (rapidity 0); τ2 = τ3 = 0
    axis_phi = math.atan2(math.sin(3.0) + 3 * math.sin(-3.0), math.cos(3.0) + 3 * math.cos(-3.0))
    tau1 = (delta_r(0, 3.0, 0, axis_phi) + 3 * delta_r(0, -3.0, 0, axis_phi)) / (4 * 0.8)
    np.testing.assert_allclose(obs["tau1"][2], tau1, rtol=RTOL)
    assert obs["tau2"][2] == obs["tau3"][2] == obs["tau21"][2] == obs["tau32"][2] == 0.0
    assert obs["ecf3"][2] == obs["ecf4"][2] == 0.0
    # three particles: z = (0.2, 0.6, 0.2), ΔR² = 0.16, 0.16, 0.32
    np.testing.assert_allclose(obs["ecf2"][3], 0.12 * 0.16 + 0.04 * 0.16 + 0.12 * 0.32,
                               rtol=RTOL)
    np.testing.assert_allclose(obs["ecf3"][3], 0.024 * 0.16 * 0.16 * 0.32, rtol=RTOL)
    assert obs["ecf4"][3] == 0.0
    assert obs["tau3"][3] == obs["tau32"][3] == 0.0
    assert obs["tau2"][3] > 0 and obs["tau1"][3] > obs["tau2"][3]


def test_ecf_of_four_particles_by_hand():
    # a unit square in (eta, phi) with equal pT: 4 sides of 1 and 2 diagonals of √2
    jet = [{"pt": 5.0, "eta": e, "phi": f, "pid": 0} for e, f in [(0, 0), (1, 0), (0, 1), (1, 1)]]
    obs = jet_observables(ak.Array([jet]), beta_ecf=2.0)
    np.testing.assert_allclose(obs["ecf4"], [0.25**4 * 1 * 2 * 2], rtol=RTOL)
    np.testing.assert_allclose(obs["ecf3"], [4 * 0.25**3 * 1 * 1 * 2], rtol=RTOL)
    np.testing.assert_allclose(obs["ecf2"], [0.25**2 * (4 * 1 + 2 * 2)], rtol=RTOL)


def test_r0_scales_tau_only(mixed_jets):
    a = jet_observables(mixed_jets)
    b = jet_observables(mixed_jets, r0=0.4)
    for key in OBSERVABLES:
        factor = 2.0 if key in ("tau1", "tau2", "tau3") else 1.0
        np.testing.assert_allclose(b[key], factor * a[key], rtol=RTOL, atol=ATOL, err_msg=key)


# --------------------------------------------------------------------------- properties


def test_invariances(mixed_jets):
    """Longitudinal boost (η shift), rotation across φ = ±π, pT scale, particle order."""
    base = jet_observables(mixed_jets)
    counts = ak.num(mixed_jets)
    flat = ak.flatten(mixed_jets)
    phi = np.asarray(flat.phi) + 2.5
    phi = np.where(phi > np.pi, phi - 2 * np.pi, phi)
    rng = np.random.default_rng(0)
    order = np.argsort(rng.random(len(flat)) + np.repeat(np.arange(len(counts)), counts))
    variants = {
        "boost": ak.with_field(flat, flat.eta + 1.7, "eta"),
        "rotate": ak.with_field(flat, phi, "phi"),
        "scale": ak.with_field(flat, flat.pt * 37.0, "pt"),
        "shuffle": flat[order],
    }
    for name, changed in variants.items():
        obs = jet_observables(ak.unflatten(changed, counts))
        for key in OBSERVABLES:
            np.testing.assert_allclose(obs[key], base[key], rtol=RTOL, atol=ATOL,
                                       err_msg=f"{name}: {key}")


def test_tau_is_non_negative_and_usually_decreasing():
    jets = random_jets(np.random.default_rng(5).integers(2, 30, 3000), seed=6)
    obs = jet_observables(jets)
    for key in ("tau1", "tau2", "tau3", "tau21", "tau32"):
        assert (obs[key] >= 0).all() and np.isfinite(obs[key]).all(), key
    # exclusive-kt axes are not optimised, so τ_N ≥ τ_{N+1} is not guaranteed for every jet
    # (see test_tau_ordering_can_fail_with_kt_axes) but holds for nearly all of them
    assert (obs["tau2"] > obs["tau1"]).mean() < 0.01
    assert (obs["tau3"] > obs["tau2"]).mean() < 0.01


def test_tau_ordering_can_fail_with_kt_axes():
    # kt merges the soft C with D first, which pulls the (C+D) axis away from D: τ2 > τ1
    jet = [{"pt": 4.0, "eta": -0.4, "phi": 0.1, "pid": 0},
           {"pt": 9.0, "eta": -0.1, "phi": 0.1, "pid": 0},
           {"pt": 2.0, "eta": 0.3, "phi": -0.1, "pid": 0},
           {"pt": 9.0, "eta": -0.1, "phi": 0.0, "pid": 0}]
    obs = jet_observables(ak.Array([jet]))
    want = ref_observables(ak.Array([jet]))
    assert_matches(obs, want)
    assert obs["tau2"][0] > obs["tau1"][0]


def test_tau_of_collinear_particles_is_zero():
    jet = [{"pt": pt, "eta": 0.3, "phi": -1.2, "pid": 0} for pt in (1.0, 2.0, 5.0, 9.0)]
    obs = jet_observables(ak.Array([jet]))
    for key in ("tau1", "tau2", "tau3", "ecf2", "ecf3", "ecf4"):
        assert abs(obs[key][0]) < 1e-12, key


def prongs(centres: list[tuple[float, float]], seed: int, n_jets: int = 50) -> ak.Array:
    """Jets of tight clusters (σ = 0.01, 8 particles each) at the given (eta, phi)."""
    rng = np.random.default_rng(seed)
    jets = []
    for _ in range(n_jets):
        jets.append([{"pt": float(rng.uniform(5, 15)), "eta": eta + rng.normal(0, 0.01),
                      "phi": phi + rng.normal(0, 0.01), "pid": 211}
                     for eta, phi in centres for _ in range(8)])
    return ak.Array(jets)


def test_two_and_three_prong_jets():
    two = jet_observables(prongs([(0.0, 0.0), (0.4, 0.3)], seed=7))
    three = jet_observables(prongs([(0.0, 0.0), (0.4, 0.3), (-0.3, 0.4)], seed=8))
    # prong width σ√(π/2) ≈ 0.0125 against half the prong separation, 0.25: τ21 ≈ 0.05
    assert (two["tau21"] < 0.1).all() and (two["tau32"] > 0.3).all()
    assert (three["tau32"] < 0.1).all() and (three["tau21"] > 0.3).all()
    for obs in (two, three):
        assert (obs["tau1"] >= obs["tau2"]).all() and (obs["tau2"] >= obs["tau3"]).all()


# --------------------------------------------------------------------------- mechanics


def test_chunking_does_not_change_results(mixed_jets, monkeypatch):
    base = jet_observables(mixed_jets)
    monkeypatch.setattr(observables, "CHUNK_BYTES", 1)  # one jet per ECF chunk
    monkeypatch.setattr(observables, "KT_CHUNK_CONSTITUENTS", 20)  # a few jets per clustering
    chunked = jet_observables(mixed_jets)
    for key in OBSERVABLES:
        np.testing.assert_allclose(chunked[key], base[key], rtol=1e-12, atol=1e-15)


def test_inputs_float32_regular_and_extra_fields():
    jets = random_jets([4, 4, 4], seed=9)
    as32 = ak.zip({"pt": ak.values_astype(jets.pt, np.float32),
                   "eta": ak.values_astype(jets.eta, np.float32),
                   "phi": ak.values_astype(jets.phi, np.float32), "pid": jets.pid,
                   "extra": jets.charge})
    back64 = ak.zip({f: ak.values_astype(as32[f], np.float64) for f in ("pt", "eta", "phi")}
                    | {"pid": jets.pid})
    assert_matches(jet_observables(ak.to_regular(as32, axis=1)), ref_observables(back64))
    empty = jet_observables(jets[:0])
    assert list(empty) == list(OBSERVABLES) and all(len(v) == 0 for v in empty.values())


def test_no_warning_and_formatwarning_untouched():
    before = warnings.formatwarning
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        jet_observables(random_jets([3, 5], seed=10))
    assert caught == []
    assert warnings.formatwarning is before


@pytest.mark.parametrize(("jets", "match"), [
    ([[{"pt": 1.0, "eta": 0.0, "phi": 0.0}]], "pid"),
    ([[{"pt": 0.0, "eta": 0.0, "phi": 0.0, "pid": 22}]], "pt must be > 0"),
    ([[{"pt": 1.0, "eta": float("nan"), "phi": 0.0, "pid": 22}]], "eta is not finite"),
    ([[{"pt": 1.0, "eta": 0.0, "phi": 0.0, "pid": 2.5}]], "integer PDG"),
    ([{"pt": 1.0, "eta": 0.0, "phi": 0.0, "pid": 22}], "n_jets \\* var"),
    ([[{"pt": 1.0, "eta": 0.0, "phi": 0.0, "pid": 22}, None]], "missing values"),
])
def test_bad_input_is_refused(jets, match):
    with pytest.raises(DataError, match=match):
        jet_observables(ak.Array(jets))


@pytest.mark.parametrize("kwargs", [{"beta_ecf": 0.0}, {"beta_ecf": -1.0},
                                    {"beta_ecf": float("inf")}, {"r0": 0.0}])
def test_bad_parameters_are_refused(kwargs):
    with pytest.raises(ValueError, match="finite positive"):
        jet_observables(random_jets([3], seed=11), **kwargs)
