"""Per-particle jet preprocessing: momentum fractions, coordinates about the jet axis, PID codes.

:func:`preprocess_jets` takes jets as a jagged awkward record array ``n * var * {pt, eta,
phi, pid, ...}`` (one entry per jet, one record per constituent) and returns the same
array with fields added:

- ``z``: the constituent's share of the jet's transverse momentum, ``pt / Σ pt`` over
  the jet's constituents (so it sums to one per jet), or ``pt / jet_pt`` when a jet
  transverse momentum is given;
- ``deta``, ``dphi``: pseudorapidity and azimuth relative to the jet axis, ``dphi``
  wrapped into (−π, π];
- the particle type, as one float ``pid_code`` (``pid_encoding="remap"``), as one-hot
  fields ``pid_<species>`` plus ``charge`` (``"onehot"``), or both (``"both"``).

The PID code table is :data:`PID_CODES`: every signed PDG id a stable (or long-lived)
particle can have after hadronisation gets its own value in (0, 1]. Zero is left out on
purpose: padded particles are zeros, so a real photon never looks like padding. An id
outside the table raises :class:`ValueError` naming it instead of being mapped to a
catch-all value, because a silently merged class would change what the network sees.

Everything runs on flat numpy arrays (no Python loop over jets or particles).

Examples
--------
>>> import awkward as ak
>>> jets = ak.Array([[{"pt": 3.0, "eta": 0.1, "phi": 3.1, "pid": 211},
...                   {"pt": 1.0, "eta": -0.1, "phi": -3.1, "pid": 22}]])
>>> out = preprocess_jets(jets, jet_eta=[0.0], jet_phi=[3.14159])
>>> [round(float(v), 3) for v in out.z[0]]
[0.75, 0.25]
>>> bool(abs(out.dphi[0][1]) < 0.1)  # wrapped across ±π
True
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["ONEHOT_SPECIES", "PID_CODES", "PID_ENCODINGS", "pid_charge", "pid_code",
           "preprocess_jets"]

#: Accepted values of ``pid_encoding``.
PID_ENCODINGS = ("remap", "onehot", "both", "none")

# (signed PDG id, electric charge, species) in the order that fixes the code values:
# leptons and the photon first, then mesons, then baryons; a particle is followed by its
# antiparticle so both signs stay neighbours but distinct.
_TABLE: tuple[tuple[int, int, str], ...] = (
    (22, 0, "photon"),
    (11, -1, "electron"), (-11, 1, "electron"),
    (13, -1, "muon"), (-13, 1, "muon"),
    (211, 1, "pion"), (-211, -1, "pion"),
    (321, 1, "kaon"), (-321, -1, "kaon"),
    (130, 0, "k0"), (310, 0, "k0"),
    (2212, 1, "proton"), (-2212, -1, "proton"),
    (2112, 0, "neutron"), (-2112, 0, "neutron"),
    (3122, 0, "lambda"), (-3122, 0, "lambda"),
    (3222, 1, "sigma"), (-3222, -1, "sigma"),
    (3112, -1, "sigma"), (-3112, 1, "sigma"),
    (3322, 0, "xi"), (-3322, 0, "xi"),
    (3312, -1, "xi"), (-3312, 1, "xi"),
    (3334, -1, "omega"), (-3334, 1, "omega"),
)

#: Signed PDG id → code in (0, 1]: evenly spaced in table order, ``(i + 1) / len(table)``.
PID_CODES: Mapping[int, float] = {pid: (i + 1) / len(_TABLE)
                                  for i, (pid, _, _) in enumerate(_TABLE)}

#: One-hot species, in field order (``pid_<species>``); the sign is carried by ``charge``.
ONEHOT_SPECIES: tuple[str, ...] = tuple(dict.fromkeys(s for _, _, s in _TABLE))

_KEYS = np.array(sorted(PID_CODES), dtype=np.int64)
_CODES = np.array([PID_CODES[int(k)] for k in _KEYS], dtype=np.float64)
_CHARGE = {pid: q for pid, q, _ in _TABLE}
_CHARGES = np.array([_CHARGE[int(k)] for k in _KEYS], dtype=np.float64)
_SPECIES = {pid: ONEHOT_SPECIES.index(s) for pid, _, s in _TABLE}
_SPECIES_INDEX = np.array([_SPECIES[int(k)] for k in _KEYS], dtype=np.int64)


def _lookup(pid: np.ndarray) -> np.ndarray:
    """Row of each id in the sorted table; raises naming the first unknown id."""
    pid = np.asarray(pid, dtype=np.int64)
    pos = np.clip(np.searchsorted(_KEYS, pid), 0, len(_KEYS) - 1)
    bad = _KEYS[pos] != pid
    if np.any(bad):
        unknown = np.unique(pid[bad])
        more = f" (and {len(unknown) - 1} other unknown id(s))" if len(unknown) > 1 else ""
        raise ValueError(f"unknown particle id (PDG) {int(unknown[0])}{more}: the PID table "
                         f"covers {sorted(PID_CODES)}")
    return pos


def pid_code(pid: np.ndarray | Sequence[int]) -> np.ndarray:
    """Map signed PDG ids to their code in (0, 1] (:data:`PID_CODES`), vectorised.

    Raises
    ------
    ValueError
        For an id outside the table; the message names it.
    """
    return _CODES[_lookup(np.asarray(pid))]


def pid_charge(pid: np.ndarray | Sequence[int]) -> np.ndarray:
    """Electric charge (units of e) of each signed PDG id in the table, vectorised."""
    return _CHARGES[_lookup(np.asarray(pid))]


def _jet_values(values: Any, n: int, name: str) -> np.ndarray:
    import awkward as ak

    arr = ak.to_numpy(values) if isinstance(values, ak.Array) else np.asarray(values)
    arr = np.asarray(arr, dtype=np.float64)
    if arr.shape != (n,):
        raise ValueError(f"{name} must have one value per jet ({n}), got shape {arr.shape}")
    return arr


def preprocess_jets(constituents: Any, *, jet_pt: Any = None, jet_eta: Any, jet_phi: Any,
                    pid_encoding: str = "remap") -> Any:
    """Add ``z``, ``deta``, ``dphi`` and PID fields to jet constituents.

    Parameters
    ----------
    constituents
        Awkward array ``n_jets * var * {pt, eta, phi, pid, ...}``; other fields are kept.
    jet_pt
        ``[n_jets]`` normalisation of ``z``; ``None`` (default) uses the scalar sum of the
        constituents' pT so that ``z`` sums to one per jet.
    jet_eta, jet_phi
        ``[n_jets]`` jet axis.
    pid_encoding
        ``"remap"`` adds ``pid_code`` (:data:`PID_CODES`); ``"onehot"`` adds one float
        field ``pid_<species>`` per entry of :data:`ONEHOT_SPECIES` and ``charge``;
        ``"both"`` adds all of them; ``"none"`` adds no PID field (``pid`` not needed).

    Returns
    -------
    awkward.Array
        The constituents with the new fields, in the floating type of ``pt``.

    Raises
    ------
    ValueError
        For a missing field, jet arrays of the wrong length, an unknown ``pid_encoding``
        or a particle id outside the table (named in the message).
    """
    import awkward as ak

    if pid_encoding not in PID_ENCODINGS:
        raise ValueError(f"pid_encoding must be one of {list(PID_ENCODINGS)}, "
                         f"got {pid_encoding!r}")
    constituents = ak.Array(constituents)
    needed = ["pt", "eta", "phi"] + (["pid"] if pid_encoding != "none" else [])
    missing = [f for f in needed if f not in constituents.fields]
    if missing:
        raise ValueError(f"constituents lack field(s) {missing} (have {constituents.fields})")
    n = len(constituents)
    counts = ak.to_numpy(ak.num(constituents, axis=1)).astype(np.int64)
    flat = ak.flatten(constituents, axis=1)
    pt = ak.to_numpy(flat["pt"])
    dtype = pt.dtype if pt.dtype.kind == "f" else np.dtype(np.float64)
    pt64 = pt.astype(np.float64)
    eta = ak.to_numpy(flat["eta"]).astype(np.float64)
    phi = ak.to_numpy(flat["phi"]).astype(np.float64)

    if jet_pt is None:
        # Per-jet sums on the flat array: reduceat needs non-empty segments, bincount not.
        owner = np.repeat(np.arange(n), counts)
        norm = np.bincount(owner, weights=pt64, minlength=n)
    else:
        norm = _jet_values(jet_pt, n, "jet_pt")
    norm_each = np.repeat(norm, counts)
    # A jet with zero pT can only have zero-pT constituents; their share is defined as 0.
    z = np.divide(pt64, norm_each, out=np.zeros_like(pt64), where=norm_each > 0)
    deta = eta - np.repeat(_jet_values(jet_eta, n, "jet_eta"), counts)
    d = phi - np.repeat(_jet_values(jet_phi, n, "jet_phi"), counts)
    dphi = d + 2.0 * np.pi * np.floor((np.pi - d) / (2.0 * np.pi))  # into (-π, π]

    new: dict[str, np.ndarray] = {"z": z, "deta": deta, "dphi": dphi}
    if pid_encoding != "none":
        rows = _lookup(ak.to_numpy(flat["pid"]))
        if pid_encoding in ("remap", "both"):
            new["pid_code"] = _CODES[rows]
        if pid_encoding in ("onehot", "both"):
            species = _SPECIES_INDEX[rows]
            for i, s in enumerate(ONEHOT_SPECIES):
                new[f"pid_{s}"] = (species == i).astype(np.float64)
            new["charge"] = _CHARGES[rows]
    cols: dict[str, Any] = {f: flat[f] for f in flat.fields}
    cols.update({k: v.astype(dtype, copy=False) for k, v in new.items()})
    return ak.unflatten(ak.zip(cols, depth_limit=1), counts, axis=0)
