"""Source ``pythia_detector``: PYTHIA jets at generator and simulation level (srgn.md Sec. II).

The ``pythia`` source makes the jets (generator level); the toy detector of
:mod:`ratiofit.plugins.jets.detector` turns every jet's constituents into
simulation-level constituents, and the jet observables of
:func:`ratiofit.plugins.jets.observables.jet_observables` are computed at both levels.

Returned EventSet (two-level events, one row per jet):

- features ``gen_<name>`` for the ``pythia`` features (jet kinematics and observables) and
  ``sim_<observable>`` for the observables of the detector-level constituents;
- particles: the generator-level constituents (with the preprocessed fields), for a
  generator-level PFN reweighter (srgn.md Sec. III B);
- θ: the per-block values PYTHIA used.

Options are those of ``pythia`` plus those of the detector (:data:`DETECTOR_OPTIONS`).
The detector draws from a stream derived from the ``rng`` passed in after PYTHIA's own
seed, so the same seed gives the same simulation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ratiofit.hookspecs import hookimpl
from ratiofit.options import Option, resolve_options
from ratiofit.plugins.jets.detector import DETECTOR_OPTIONS, simulate_detector
from ratiofit.plugins.jets.observables import OBSERVABLES, jet_observables
from ratiofit.plugins.sources.pythia import Pythia


class PythiaDetector:
    name = "pythia_detector"
    options: Mapping[str, Option] = {**Pythia.options, **DETECTOR_OPTIONS}

    def __init__(self) -> None:
        self._pythia = Pythia()

    def _split(self, options: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        pythia = {k: v for k, v in options.items() if k in Pythia.options}
        detector = resolve_options(DETECTOR_OPTIONS, {k: v for k, v in options.items()
                                                      if k in DETECTOR_OPTIONS},
                                   where="pythia_detector")
        return pythia, detector

    def feature_names(self, options: Mapping[str, Any]) -> Sequence[str]:
        gen = [f"gen_{n}" for n in self._pythia.feature_names(self._split(options)[0])]
        return [*gen, *(f"sim_{n}" for n in OBSERVABLES)]

    def particle_fields(self, options: Mapping[str, Any]) -> Sequence[str]:
        """Generator-level particle fields (those of ``pythia``)."""
        return self._pythia.particle_fields(self._split(options)[0])

    def check(self, *, options: Mapping[str, Any],
              theta: Mapping[str, tuple[float | None, float | None]]) -> None:
        """The ``pythia`` checks (PYTHIA names, ranges, settings)."""
        self._pythia.check(options=self._split(options)[0], theta=theta)

    def generate(self, *, n_events: int, theta: Mapping[str, np.ndarray],
                 options: Mapping[str, Any], rng: np.random.Generator) -> Any:
        """``n_events`` jets at both levels (see the module docstring)."""
        from dataclasses import replace

        pythia_opts, detector_opts = self._split(options)
        gen = self._pythia.generate(n_events=n_events, theta=theta, options=pythia_opts, rng=rng)
        detector_rng = np.random.default_rng(int(rng.integers(1, 2**63 - 1)))
        sim_particles = simulate_detector(gen.particles, rng=detector_rng, options=detector_opts)
        sim = jet_observables(sim_particles)
        features = np.concatenate([gen.features,
                                   np.stack([sim[n] for n in OBSERVABLES], axis=1)], axis=1)
        names = (*(f"gen_{n}" for n in gen.feature_names), *(f"sim_{n}" for n in OBSERVABLES))
        return replace(gen, features=features, feature_names=names,
                       provenance={**dict(gen.provenance), "detector": detector_opts})


@hookimpl
def ratiofit_sources() -> list[Any]:
    return [PythiaDetector()]
