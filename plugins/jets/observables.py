"""Jet substructure observables of the DCTR / SRGN papers, computed for many jets at once.

:func:`jet_observables` turns jet constituents (an awkward array ``n_jets * var * {pt, eta,
phi, pid, ...}``) into one float64 array per observable:

``multiplicity``
    number of constituents.
``n_strange``
    number of constituents whose ``|pid|`` is in :data:`STRANGE_PIDS` (strange hadrons).
``tau1``, ``tau2``, ``tau3``
    N-subjettiness with angular exponent β = 1, normalised:
    ``τ_N = Σ_i pT_i min_k ΔR(i, axis_k) / (Σ_i pT_i · R0)`` with ``R0 =`` :data:`R0`.
``tau21``, ``tau32``
    ``τ2/τ1`` and ``τ3/τ2``; **0 where the denominator is 0** (a jet with at most one, resp.
    two, constituents, or with all constituents on its axes), never NaN.
``ecf2``, ``ecf3``, ``ecf4``
    energy correlation functions ``ECF(N, β)`` for N = 2, 3, 4 in the normalised form
    ``Σ_{i<j<…} (Π_a z_a) (Π_{pairs a<b} ΔR_ab)^β`` with ``z_a = pT_a / Σ_jet pT``: the
    plain ECF divided by ``(Σ pT)^N``, so dimensionless and invariant under a common scaling
    of the momenta.

Conventions
-----------
* ``ΔR² = Δy² + Δφ²`` with Δφ wrapped into [-π, π]. Constituents are treated as massless,
  so their rapidity is their pseudorapidity ``eta``; ``phi`` may lie in any 2π range.
* A jet with fewer constituents than N (or exactly N) has ``τ_N = 0``; a jet with fewer than
  N constituents has ``ECF(N) = 0``; an empty jet has every observable 0.
* Every constituent must have finite ``pt > 0``, ``eta`` and ``phi`` (else :class:`DataError`).

N-subjettiness axes: exclusive kt
---------------------------------
The N axes are the directions (rapidity, φ) of the N exclusive subjets of the kt algorithm
(E-scheme recombination of massless four-vectors built from pt, eta, phi), obtained with the
``fastjet`` package (scikit-hep bindings to FastJet; its multi-event awkward interface runs the
clustering of all jets in one C++ call, no Python loop per jet). ``kt_algorithm`` is used with
the radius :data:`KT_RADIUS` = 1000: since ``d_ij = min(pT_i², pT_j²) ΔR_ij²/R²`` is then
below every beam distance ``pT_k²`` whenever all ΔR < R, no subjet is ever merged with the
beam and the result is the beamless exclusive kt clustering (merge the pair of smallest
``min(pT_i², pT_j²) ΔR_ij²`` until N subjets remain). The axes are massive subjets: their
*rapidity* is used, not their pseudorapidity. The axes are not re-optimised, so
``τ_N ≥ τ_{N+1}`` holds for typical jets but is not a theorem for every jet.

Vectorisation and memory
------------------------
ECFs are computed per group of jets of equal multiplicity m on dense ``[jets, m, m]`` angle
matrices ``D_ab = ΔR_ab^β`` (``D_aa = 0``, so repeated indices drop out of every sum):
``ECF2 = zᵀDz/2``, ``ECF3 = tr((D·diag z)³)/6`` and, for ECF4, for every pair a<b the vector
``u_c = z_c D_ac D_bc`` gives ``ECF4 = Σ_{a<b} z_a z_b D_ab Σ_{c,d>b} u_c D_cd u_d / 2`` —
batched matrix products, about ``m⁴/12`` multiply-adds per jet, with one Python step per
index b (never per jet).
The groups are processed in chunks whose ``[jets, m, m]`` work arrays stay below
:data:`CHUNK_BYTES` each (peak memory about eight of them, ~256 MiB). N-subjettiness and the
counts are flat numpy operations over the constituents; the kt clustering runs in chunks of
:data:`KT_CHUNK_CONSTITUENTS` constituents. Measured on the 2-core development machine: 0.9 s
for 10⁴ jets of 20–30 constituents, 16 s and 0.55 GB peak for 10⁵ jets of 15–40, before the
ECF4 loop over b (6× fewer multiply-adds than the earlier loop over a) and the other changes
of issue 20, item 5, which take the 10⁴ jets from 0.65 s to 0.40 s of CPU time (measured
side by side on the loaded machine).

Examples
--------
>>> import awkward as ak
>>> jets = ak.Array([
...     [{"pt": 10.0, "eta": 0.0, "phi": 0.0, "pid": 211},
...      {"pt": 10.0, "eta": 0.0, "phi": 0.3, "pid": 321}],
...     [{"pt": 5.0, "eta": 1.0, "phi": 3.0, "pid": 22}],
... ])
>>> obs = jet_observables(jets, beta_ecf=1.0)
>>> list(obs)
['multiplicity', 'n_strange', 'tau1', 'tau2', 'tau3', 'tau21', 'tau32', 'ecf2', 'ecf3', 'ecf4']
>>> obs["multiplicity"].tolist(), obs["n_strange"].tolist()
([2.0, 1.0], [1.0, 0.0])
>>> obs["tau1"].round(6).tolist()   # both particles 0.15 from the jet axis: 0.15/0.8
[0.1875, 0.0]
>>> obs["ecf2"].round(6).tolist()   # z_1 z_2 ΔR = 0.5 · 0.5 · 0.3
[0.075, 0.0]
>>> obs["tau21"].tolist()            # τ2 = 0 for two constituents
[0.0, 0.0]
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from ratiofit.errors import DataError

if TYPE_CHECKING:
    import awkward as ak

# awkward and fastjet are imported where they are used: a spec's validation and
# `ratiofit plugins` load this module (through the PYTHIA sources) and must not pay for them.

__all__ = [
    "CHUNK_BYTES", "KT_CHUNK_CONSTITUENTS", "KT_RADIUS", "OBSERVABLES", "R0", "STRANGE_PIDS",
    "jet_observables",
]

#: Absolute PDG ids counted by ``n_strange``: K± (321), K0S (310), K0L (130), Λ (3122),
#: Σ+ (3222), Σ- (3112), Ξ- (3312), Ξ0 (3322), Ω- (3334) and their antiparticles (the sign
#: is ignored). With PYTHIA's default decays K0S, Λ, Σ, Ξ and Ω decay, so final-state strange
#: hadrons are in practice K± and K0L. K0/K̄0 (±311) are not listed: PYTHIA turns them into
#: K0S/K0L. Strange charm/bottom hadrons (D_s, B_s, ...) are not counted.
STRANGE_PIDS: frozenset[int] = frozenset({321, 310, 130, 3122, 3222, 3112, 3312, 3322, 3334})

#: Jet radius R0 in the N-subjettiness normalisation Σ pT · R0 (the papers' anti-kt R = 0.8).
R0: float = 0.8

#: Radius handed to FastJet's kt algorithm for the axes: large enough that no jet has a pair
#: with ΔR > R, so no beam merging happens (see the module docstring).
KT_RADIUS: float = 1000.0

#: Largest number of constituents clustered in one FastJet call (bounds its memory, about
#: 0.4 kB per constituent).
KT_CHUNK_CONSTITUENTS: int = 2**18

#: Upper bound in bytes of each ``[jets, m, m]`` work array of the ECF computation (the peak
#: memory is about eight times this).
CHUNK_BYTES: int = 32 * 2**20

#: Names of the returned observables, in order.
OBSERVABLES: tuple[str, ...] = (
    "multiplicity", "n_strange", "tau1", "tau2", "tau3", "tau21", "tau32",
    "ecf2", "ecf3", "ecf4",
)

_FloatArray = npt.NDArray[np.float64]
_IntArray = npt.NDArray[np.int64]


def jet_observables(
    constituents: ak.Array, *, beta_ecf: float = 4.0, r0: float = R0
) -> dict[str, np.ndarray]:
    """Multiplicity, strange-hadron count, N-subjettiness and ECFs of every jet.

    Parameters
    ----------
    constituents
        Awkward array ``n_jets * var * {pt, eta, phi, pid, ...}``: pt in GeV (> 0),
        pseudorapidity, azimuth (any 2π range), PDG id. Extra fields are ignored.
    beta_ecf
        Angular exponent β > 0 of the energy correlation functions.
    r0
        Jet radius in the N-subjettiness normalisation (default :data:`R0` = 0.8).

    Returns
    -------
    dict[str, numpy.ndarray]
        float64 arrays of length ``n_jets``, keys in the order of :data:`OBSERVABLES`
        (definitions in the module docstring).

    Raises
    ------
    DataError
        If a field is missing, the array is not jagged jets of records, or a constituent has
        non-finite kinematics or ``pt <= 0``.
    ValueError
        If ``beta_ecf`` or ``r0`` is not a finite positive number.

    Examples
    --------
    >>> import awkward as ak
    >>> jets = ak.Array([[{"pt": 1.0, "eta": 0.0, "phi": 0.0, "pid": 130},
    ...                   {"pt": 3.0, "eta": 0.4, "phi": 0.0, "pid": -321},
    ...                   {"pt": 1.0, "eta": 0.0, "phi": 0.4, "pid": 2212}]])
    >>> obs = jet_observables(jets, beta_ecf=2.0)
    >>> obs["multiplicity"], obs["n_strange"]
    (array([3.]), array([2.]))
    >>> round(float(obs["ecf3"][0]), 12)   # (0.2 · 0.6 · 0.2) · (0.16 · 0.16 · 0.32)
    0.000196608
    """
    if not (np.isfinite(beta_ecf) and beta_ecf > 0):
        raise ValueError(f"beta_ecf must be a finite positive number, got {beta_ecf!r}")
    if not (np.isfinite(r0) and r0 > 0):
        raise ValueError(f"r0 must be a finite positive number, got {r0!r}")
    counts, pt, eta, phi, pid = _flatten(constituents)
    n_jets = len(counts)
    jet_of = np.repeat(np.arange(n_jets), counts)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)

    out: dict[str, np.ndarray] = {}
    out["multiplicity"] = counts.astype(np.float64)
    strange = np.isin(np.abs(pid), np.fromiter(STRANGE_PIDS, dtype=np.int64))
    out["n_strange"] = np.bincount(jet_of, weights=strange.astype(np.float64),
                                   minlength=n_jets).astype(np.float64)

    taus = _nsubjettiness(counts, pt, eta, phi, jet_of, r0=r0, n_max=3)
    for n, tau in enumerate(taus, start=1):
        out[f"tau{n}"] = tau
    out["tau21"] = _safe_ratio(taus[1], taus[0])
    out["tau32"] = _safe_ratio(taus[2], taus[1])

    ecf2, ecf3, ecf4 = _ecfs(counts, starts, pt, eta, phi, beta=float(beta_ecf))
    out["ecf2"], out["ecf3"], out["ecf4"] = ecf2, ecf3, ecf4
    return {name: out[name] for name in OBSERVABLES}


def _flatten(
    constituents: ak.Array,
) -> tuple[_IntArray, _FloatArray, _FloatArray, _FloatArray, _IntArray]:
    """Counts per jet and flat float64 pt, eta, phi and int64 pid; validated."""
    import awkward as ak

    if not isinstance(constituents, ak.Array):
        constituents = ak.Array(constituents)
    if constituents.ndim != 2:
        raise DataError(f"constituents must be n_jets * var * {{pt, eta, phi, pid}}, "
                        f"got type {constituents.type}")
    fields = set(ak.fields(constituents))
    missing = [f for f in ("pt", "eta", "phi", "pid") if f not in fields]
    if missing:
        raise DataError(f"constituents lack the field(s) {', '.join(missing)} "
                        f"(have: {', '.join(sorted(fields)) or 'none'})")
    try:
        counts = np.asarray(ak.to_numpy(ak.num(constituents, axis=1), allow_missing=False),
                            dtype=np.int64)
        flat = {f: ak.to_numpy(ak.flatten(constituents[f], axis=1), allow_missing=False)
                for f in ("pt", "eta", "phi", "pid")}
    except (ValueError, TypeError) as exc:
        raise DataError(f"constituents cannot be read as flat numbers "
                        f"(missing values?): {exc}") from None
    pt, eta, phi = (np.asarray(flat[f], dtype=np.float64) for f in ("pt", "eta", "phi"))
    pid_raw = np.asarray(flat["pid"])
    pid = pid_raw.astype(np.int64)
    if not np.array_equal(pid, pid_raw):
        raise DataError("constituent pid must hold integer PDG ids")
    for name, values in (("pt", pt), ("eta", eta), ("phi", phi)):
        bad = ~np.isfinite(values)
        if bad.any():
            raise DataError(f"constituent {name} is not finite ({int(bad.sum())} values)")
    if (pt <= 0).any():
        raise DataError(f"constituent pt must be > 0 ({int((pt <= 0).sum())} values are not)")
    return counts, pt, eta, phi, pid


def _abs_dphi(dphi: np.ndarray) -> np.ndarray:
    """|Δφ| folded into [0, π] (in place: ``dphi`` must be a temporary), for φ values in
    any one 2π range; only its square is used, so the sign Δφ would carry is not needed."""
    np.abs(dphi, out=dphi)
    np.minimum(dphi, 2 * np.pi - dphi, out=dphi)
    return dphi


def flat_lists(array: ak.Array | ak.contents.Content) -> tuple[_IntArray, ak.contents.Content]:
    """Lengths of the lists of a ``n * var * ...`` awkward array and their concatenated
    content, read from its layout: no per-list work, and far cheaper than ``ak.num`` plus
    ``ak.flatten`` (whose dispatch costs more than the copy for arrays of this size)."""
    import awkward as ak

    layout = ak.to_layout(array).to_ListOffsetArray64(True)  # offsets start at 0
    offsets = np.asarray(layout.offsets.data, dtype=np.int64)
    return np.diff(offsets), layout.content[: int(offsets[-1])]


def jagged_columns(array: ak.Array, fields: tuple[str, ...]
                   ) -> tuple[_IntArray, dict[str, np.ndarray]]:
    """Lengths and flat numpy columns of a ``n * var * {fields...}`` awkward array."""
    import awkward as ak

    counts, content = flat_lists(array)
    return counts, {f: np.asarray(ak.to_numpy(content[f])) for f in fields}


def _jagged_momenta(counts: _IntArray, px: _FloatArray, py: _FloatArray, pz: _FloatArray,
                    energy: _FloatArray) -> ak.Array:
    """``n * var * {px, py, pz, E}`` built directly as a layout from flat arrays."""
    import awkward as ak

    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return ak.Array(ak.contents.ListOffsetArray(
        ak.index.Index64(offsets),
        ak.contents.RecordArray([ak.contents.NumpyArray(np.ascontiguousarray(a))
                                 for a in (px, py, pz, energy)], ["px", "py", "pz", "E"])))


def _safe_ratio(num: _FloatArray, den: _FloatArray) -> _FloatArray:
    """num/den, and 0 where den == 0."""
    out = np.zeros_like(num)
    np.divide(num, den, out=out, where=den > 0)
    return out


def _kt_axes(
    counts: _IntArray, pt: _FloatArray, eta: _FloatArray, phi: _FloatArray, n_max: int
) -> Iterator[tuple[_IntArray, _FloatArray, _FloatArray]]:
    """For N = 1..n_max: (jets with more than N constituents, axis rapidities, axis φ).

    The axes arrays have shape ``[len(jets), N]``: the exclusive-kt subjets of those jets.
    """

    from ratiofit.extras import require

    fastjet = require("fastjet", extra="jets", by="jet observables (kt subjets)")
    px, py = pt * np.cos(phi), pt * np.sin(phi)
    pz, energy = pt * np.sinh(eta), pt * np.cosh(eta)
    particles = _jagged_momenta(counts, px, py, pz, energy)
    jetdef = fastjet.JetDefinition(fastjet.kt_algorithm, KT_RADIUS)
    # fastjet's awkward interface warns about exclusive jets for every algorithm (its test
    # compares a JetDefinition with an enum) and, on the way, replaces the process-wide
    # warnings.formatwarning: silence the warning and put the formatter back.
    formatwarning = warnings.formatwarning
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="dcut and exclusive jets",
                                    category=UserWarning)
            sequence = fastjet.ClusterSequence(particles, jetdef)
            for n in range(1, n_max + 1):
                n_sub, sub = jagged_columns(sequence.exclusive_jets_up_to(n),
                                            ("px", "py", "pz", "E"))
                jets = np.flatnonzero(counts > n)
                if not np.array_equal(n_sub[jets], np.full(len(jets), n)):
                    raise RuntimeError(f"fastjet returned a wrong number of exclusive jets "
                                       f"for N = {n}")
                offsets = np.concatenate([[0], np.cumsum(n_sub)])
                take = offsets[jets][:, None] + np.arange(n)[None, :]
                sx, sy, sz, se = (np.asarray(sub[f], dtype=np.float64)[take]
                                  for f in ("px", "py", "pz", "E"))
                rapidity = 0.5 * np.log((se + sz) / (se - sz))
                yield jets, rapidity, np.arctan2(sy, sx)
    finally:
        warnings.formatwarning = formatwarning


def _nsubjettiness(
    counts: _IntArray, pt: _FloatArray, eta: _FloatArray, phi: _FloatArray,
    jet_of: _IntArray, *, r0: float, n_max: int,
) -> list[_FloatArray]:
    """τ_1 … τ_{n_max} (β = 1, normalised by Σ pT · r0) of every jet.

    Clustered in chunks of at most :data:`KT_CHUNK_CONSTITUENTS` constituents (FastJet keeps
    every clustering sequence of a call alive, ~0.4 kB per constituent).
    """
    n_jets = len(counts)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    sums = [np.zeros(n_jets) for _ in range(n_max)]  # Σ_i pT_i min_k ΔR(i, axis_k)
    lo = 0
    while lo < n_jets:
        hi = int(np.searchsorted(offsets, offsets[lo] + KT_CHUNK_CONSTITUENTS, side="right")) - 1
        hi = min(max(hi, lo + 1), n_jets)
        part = slice(int(offsets[lo]), int(offsets[hi]))
        local_jet = jet_of[part] - lo
        axes = _kt_axes(counts[lo:hi], pt[part], eta[part], phi[part], n_max)
        for total, (jets, axis_y, axis_phi) in zip(sums, axes, strict=True):
            if not len(jets):
                continue
            # constituents of the selected jets, with their row in the axes arrays
            row_of_jet = np.full(hi - lo, -1)
            row_of_jet[jets] = np.arange(len(jets))
            rows = row_of_jet[local_jet]
            keep = rows >= 0
            rows = rows[keep]
            deta = eta[part][keep, None] - axis_y[rows]
            dphi = _abs_dphi(phi[part][keep, None] - axis_phi[rows])
            deta *= deta
            dphi *= dphi
            deta += dphi  # ΔR² to each axis; sqrt after the min (it is monotonic)
            dist = np.sqrt(deta.min(axis=1))
            total[lo + jets] = np.bincount(rows, weights=pt[part][keep] * dist,
                                           minlength=len(jets))
        lo = hi
    norm = np.asarray(np.bincount(jet_of, weights=pt, minlength=n_jets), dtype=np.float64) * r0
    return [_safe_ratio(total, norm) for total in sums]


def _ecfs(
    counts: _IntArray, starts: _IntArray, pt: _FloatArray, eta: _FloatArray,
    phi: _FloatArray, *, beta: float,
) -> tuple[_FloatArray, _FloatArray, _FloatArray]:
    """ECF(2, β), ECF(3, β), ECF(4, β) (normalised, z = pT / Σ pT) of every jet."""
    n_jets = len(counts)
    ecf2, ecf3, ecf4 = np.zeros(n_jets), np.zeros(n_jets), np.zeros(n_jets)
    for m in np.unique(counts[counts >= 2]):
        m = int(m)
        group = np.flatnonzero(counts == m)
        size = max(1, CHUNK_BYTES // (8 * m * m))
        for lo in range(0, len(group), size):
            jets = group[lo:lo + size]
            index = starts[jets][:, None] + np.arange(m)[None, :]
            p, y, f = pt[index], eta[index], phi[index]
            z = p / p.sum(axis=1, keepdims=True)
            angle = _abs_dphi(f[:, :, None] - f[:, None, :])
            angle *= angle
            angle += (y[:, :, None] - y[:, None, :]) ** 2
            angle **= beta / 2  # D_ab = ΔR_ab^β; D_aa = 0 since β > 0
            # ECF2 = Σ_{a<b} z_a z_b D_ab
            ecf2[jets] = 0.5 * np.einsum("ja,jab,jb->j", z, angle, z)
            if m < 3:
                continue
            # ECF3 = tr((D·diag z)³)/6 (terms with repeated indices vanish)
            dz = angle * z[:, None, :]
            ecf3[jets] = np.einsum("jab,jba->j", dz @ dz, dz) / 6.0
            if m < 4:
                continue
            # ECF4: for a pair a<b, u_c = z_c D_ac D_bc; the quadruples a<b<c<d with that
            # pair sum to ½ Σ_{c,d>b} u_c D_cd u_d (each {c, d} twice, D_cc = 0). One Python
            # step per index b (not per jet): all a < b at once, [jets, b, m-b-1].
            total = np.zeros(len(jets))
            for b in range(1, m - 2):
                tail = slice(b + 1, m)
                u = dz[:, :b, tail] * angle[:, b, None, tail]  # u[j, a, c], a < b < c
                inner = np.einsum("jac,jac->ja", u @ angle[:, tail, tail], u)
                total += z[:, b] * np.einsum("ja,ja->j", dz[:, b, :b], inner)
            ecf4[jets] = total / 2.0
    return ecf2, ecf3, ecf4
