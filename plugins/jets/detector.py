"""A simple particle-level detector for jets: generator-level particles → simulation level.

SRGN (srgn.md Sec. II) needs one sample with detector effects. This is a documented,
seeded toy detector in the spirit of a fast simulation (srgn.md uses DELPHES for the top
quark example), applied particle by particle to jet constituents ``n_jets * var * {pt,
eta, phi, pid, ...}``:

1. **Tracking efficiency** — charged particles (``pid_charge(pid) ≠ 0``) are reconstructed
   with probability ``tracking_efficiency``; the others are lost.
2. **Energy / momentum resolution by particle type** — the measured pT is
   ``pT · (1 + r·g)``, g ~ N(0, 1), with relative resolution r:

   - charged particles (tracker): ``r = tracker_a · pT ⊕ tracker_b`` (pT in GeV);
   - photons (|pid| = 22, EM calorimeter): ``r = em_a / √E ⊕ em_b``;
   - neutral hadrons (everything else, hadronic calorimeter): ``r = had_a / √E ⊕ had_b``;

   with E = pT cosh η and ⊕ the sum in quadrature. A particle whose measured pT is not
   positive is lost.
3. **Angular resolution** — η and φ are smeared by N(0, ``angular_resolution``²).
4. **Threshold** — particles with measured pT below ``pt_threshold`` are lost.

Particle identities are kept (perfect identification). Every random number comes from
the ``rng`` passed in, one draw per particle in a fixed order, so the same seed gives the
same simulation.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ratiofit.errors import DataError
from ratiofit.options import Option

__all__ = ["DETECTOR_OPTIONS", "simulate_detector"]

#: Options of the detector (used by the ``pythia_detector`` source).
DETECTOR_OPTIONS: dict[str, Option] = {
    "tracking_efficiency": Option(kind="float", default=0.9, minimum=0.0, maximum=1.0,
                                  doc="probability that a charged particle is reconstructed"),
    "tracker_a": Option(kind="float", default=5e-4, minimum=0.0,
                        doc="tracker relative pT resolution term proportional to pT [1/GeV]"),
    "tracker_b": Option(kind="float", default=0.01, minimum=0.0,
                        doc="tracker constant relative pT resolution"),
    "em_a": Option(kind="float", default=0.10, minimum=0.0,
                   doc="EM calorimeter stochastic term [sqrt(GeV)] (photons)"),
    "em_b": Option(kind="float", default=0.01, minimum=0.0, doc="EM calorimeter constant term"),
    "had_a": Option(kind="float", default=0.50, minimum=0.0,
                    doc="hadronic calorimeter stochastic term [sqrt(GeV)] (neutral hadrons)"),
    "had_b": Option(kind="float", default=0.05, minimum=0.0,
                    doc="hadronic calorimeter constant term"),
    "angular_resolution": Option(kind="float", default=0.01, minimum=0.0,
                                 doc="Gaussian smearing of eta and phi"),
    "pt_threshold": Option(kind="float", default=0.1, minimum=0.0,
                           doc="particles below this measured pT [GeV] are lost"),
}


def _relative_resolution(*, pt: np.ndarray, eta: np.ndarray, charged: np.ndarray,
                         photon: np.ndarray, options: Mapping[str, Any]) -> np.ndarray:
    energy = pt * np.cosh(eta)
    root_e = np.sqrt(np.maximum(energy, 1e-12))
    tracker = np.hypot(options["tracker_a"] * pt, options["tracker_b"])
    em = np.hypot(options["em_a"] / root_e, options["em_b"])
    had = np.hypot(options["had_a"] / root_e, options["had_b"])
    return np.where(charged, tracker, np.where(photon, em, had))


def simulate_detector(constituents: Any, *, rng: np.random.Generator,
                      options: Mapping[str, Any]) -> Any:
    """Simulation-level constituents (``pt``, ``eta``, ``phi``, ``pid``) of every jet.

    Parameters
    ----------
    constituents
        Awkward array ``n_jets * var * {pt, eta, phi, pid, ...}`` (extra fields dropped).
    rng
        The only source of randomness.
    options
        :data:`DETECTOR_OPTIONS` values (defaults filled in).

    Returns
    -------
    awkward.Array
        ``n_jets * var * {pt, eta, phi, pid}``, the surviving particles in the original
        order; a jet may lose every particle.
    """
    import awkward as ak

    from ratiofit.plugins.jets.preprocessing import pid_charge

    missing = [f for f in ("pt", "eta", "phi", "pid") if f not in ak.fields(constituents)]
    if missing:
        raise DataError(f"detector: constituents lack field(s) {missing}")
    counts = ak.to_numpy(ak.num(constituents, axis=1)).astype(np.int64)
    pt = ak.to_numpy(ak.flatten(constituents["pt"])).astype(np.float64)
    eta = ak.to_numpy(ak.flatten(constituents["eta"])).astype(np.float64)
    phi = ak.to_numpy(ak.flatten(constituents["phi"])).astype(np.float64)
    pid = ak.to_numpy(ak.flatten(constituents["pid"])).astype(np.int64)
    n = len(pt)
    charged = pid_charge(pid) != 0
    photon = np.abs(pid) == 22
    # Fixed draw order: efficiency, energy, eta, phi (one number each per particle).
    found = ~charged | (rng.random(n) < options["tracking_efficiency"])
    resolution = _relative_resolution(pt=pt, eta=eta, charged=charged, photon=photon,
                                      options=options)
    pt_sim = pt * (1.0 + resolution * rng.standard_normal(n))
    eta_sim = eta + options["angular_resolution"] * rng.standard_normal(n)
    phi_sim = phi + options["angular_resolution"] * rng.standard_normal(n)
    keep = found & (pt_sim > 0) & (pt_sim >= options["pt_threshold"])
    jet_of = np.repeat(np.arange(len(counts)), counts)
    new_counts = np.bincount(jet_of[keep], minlength=len(counts))
    record = ak.zip({"pt": pt_sim[keep].astype(np.float32),
                     "eta": eta_sim[keep].astype(np.float32),
                     "phi": phi_sim[keep].astype(np.float32),
                     "pid": pid[keep].astype(np.int32)})
    return ak.unflatten(record, new_counts)
