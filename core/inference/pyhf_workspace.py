"""The portable export: binned templates as a standard HistFactory workspace (pyhf JSON).

:func:`portable_workspace` encodes each reweighter nuisance as a ``histosys`` with
``lo_data``/``hi_data`` = the templates at θ₀ ∓ σ, taken relative to the reweighter's own
template at θ₀: n_b + h_b(θ₀ ∓ σ) − h_b(θ₀) (optionally a ``normsys`` for the
normalisation plus a shape-only ``histosys``). The JSON validates against pyhf's schema
and runs with the ``pyhf`` command-line tool, anywhere, without ratiofit
(:func:`write_workspace`). Between and beyond ±1σ it follows pyhf's 3-point
interpolation, not the reweighter; the exact mode (:func:`~ratiofit.inference.exact_model`)
follows the reweighter instead. The channel, sample and measurement specs built here
(POI ``normfactor``, learned-ratio ``histosys``, ``staterror``) are shared by both modes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .binned_templates import BinnedTemplates, ChannelTemplates, SampleTemplates
from .errors import InferenceError
from .templates import Template

__all__ = ["portable_workspace", "write_workspace"]

WORKSPACE_VERSION = "1.0.0"


def _shifted(st: SampleTemplates, n: str, which: Template) -> np.ndarray:
    """n_b + h_b(θ) − h_b(θ₀): the variation relative to the reweighter's own θ₀ template."""
    return st.nominal.values + which.values - st.reference[n].values


def _poi_parameter(poi: str, bounds: tuple[float, float], init: float) -> dict[str, Any]:
    lo, hi = (float(b) for b in bounds)
    if not lo < hi:
        raise InferenceError(f"POI bounds must be increasing, got {bounds}")
    return {"name": poi, "bounds": [[lo, hi]], "inits": [float(init)]}


def _measured_parameters(templates: BinnedTemplates) -> list[dict[str, Any]]:
    """Measurement parameters: a nuisance's auxiliary datum (``measured``), the
    luminosity's constraint where a sample carries a ``lumi`` modifier (its auxiliary
    datum 1 unless ``measured``), and a normsys's auxiliary datum where it declares one
    (pyhf's default 0 otherwise)."""
    out = [{"name": n, "auxdata": [nu.auxdata]} for n, nu in templates.nuisances.items()
           if nu.measured is not None]
    kinds = {m["name"]: m["type"] for ch in templates.channels for st in ch.samples
             for m in st.standard}
    if templates.lumi_sigma is not None:
        out += [{"name": n, "auxdata": [templates.measured.get(n, 1.0)],
                 "sigmas": [templates.lumi_sigma],
                 "bounds": [[max(1e-6, 1.0 - 10 * templates.lumi_sigma),
                             1.0 + 10 * templates.lumi_sigma]], "inits": [1.0]}
                for n in sorted(n for n, k in kinds.items() if k == "lumi")]
    out += [{"name": n, "auxdata": [v], "inits": [0.0], "bounds": [[-5.0, 5.0]]}
            for n, v in sorted(templates.measured.items()) if kinds.get(n) == "normsys"]
    return out


def _channel_specs(templates: BinnedTemplates, poi: str, staterror: bool,
                   nuisance_modifiers: Any) -> list[dict[str, Any]]:
    channels = []
    for ch in templates.channels:
        samples = []
        for st in ch.samples:
            mods: list[dict[str, Any]] = []
            if st.signal:
                mods.append({"name": poi, "type": "normfactor", "data": None})
            for n in st.reference:
                mods.extend(nuisance_modifiers(ch, st, n))
            mods.extend(st.standard)
            for name, shift in st.learned.items():
                mods.append({"name": name, "type": "histosys", "data": {
                    "lo_data": (st.nominal.values - shift).tolist(),
                    "hi_data": (st.nominal.values + shift).tolist()}})
            if staterror and st.staterror:
                mods.append({"name": f"staterror_{ch.name}", "type": "staterror",
                             "data": np.sqrt(st.nominal.variances).tolist()})
            samples.append({"name": st.name, "data": st.nominal.values.tolist(),
                            "modifiers": mods})
        channels.append({"name": ch.name, "samples": samples})
    return channels


def portable_workspace(templates: BinnedTemplates, *, poi: str = "mu", split_norm: bool = False,
                       staterror: bool = True, poi_bounds: tuple[float, float] = (0.0, 10.0),
                       poi_init: float = 1.0, measurement: str = "ratiofit") -> dict[str, Any]:
    """A standard HistFactory workspace (pyhf JSON schema 1.0.0), validated.

    Parameters
    ----------
    templates
        From :func:`build_templates`.
    poi
        Name of the signal-strength ``normfactor`` (the parameter of interest μ).
    split_norm
        Encode each reweighter nuisance as a ``normsys`` (the yield ratio at θ₀ ± σ) plus a
        shape-only ``histosys`` (±σ templates scaled to the nominal yield), sharing one
        parameter; default: one ``histosys`` carrying shape and normalisation.
    staterror
        Add a ``staterror`` per channel from Σw² of the nominal histograms.
    poi_bounds, poi_init
        The POI's range and starting value in the measurement.
    measurement
        The measurement's name.

    Returns
    -------
    dict
        JSON-serialisable; ``pyhf.Workspace(spec)`` accepts it and ``pyhf fit``/``pyhf cls``
        run on it (write it with :func:`write_workspace`).
    """
    import pyhf

    def modifiers(ch: ChannelTemplates, st: SampleTemplates, n: str) -> list[dict[str, Any]]:
        lo, hi = _shifted(st, n, st.down[n]), _shifted(st, n, st.up[n])
        if not split_norm:
            return [{"name": n, "type": "histosys",
                     "data": {"lo_data": lo.tolist(), "hi_data": hi.tolist()}}]
        total = float(st.nominal.values.sum())
        if total <= 0 or lo.sum() <= 0 or hi.sum() <= 0:
            raise InferenceError(f"channel '{ch.name}', sample '{st.name}', nuisance '{n}': "
                                 "split_norm needs positive yields at θ₀ and θ₀ ± σ")
        return [{"name": n, "type": "normsys",
                 "data": {"lo": float(lo.sum()) / total, "hi": float(hi.sum()) / total}},
                {"name": n, "type": "histosys",
                 "data": {"lo_data": (lo * total / lo.sum()).tolist(),
                          "hi_data": (hi * total / hi.sum()).tolist()}}]

    spec = {
        "channels": _channel_specs(templates, poi, staterror, modifiers),
        "observations": [{"name": ch.name, "data": ch.observed.tolist()}
                         for ch in templates.channels],
        "measurements": [{"name": measurement, "config": {
            "poi": poi, "parameters": [_poi_parameter(poi, poi_bounds, poi_init),
                                       *_measured_parameters(templates)]}}],
        "version": WORKSPACE_VERSION,
    }
    _require_poi(templates, poi)
    try:
        pyhf.Workspace(spec)  # validates against the schema
    except Exception as exc:
        raise InferenceError(f"the workspace does not validate: {exc}") from exc
    return spec


def _require_poi(templates: BinnedTemplates, poi: str) -> None:
    if not any(st.signal for ch in templates.channels for st in ch.samples):
        raise InferenceError(f"no sample has signal=True, so the POI '{poi}' scales nothing")
    if poi in templates.nuisances:
        raise InferenceError(f"the POI name '{poi}' is also a nuisance name")


def write_workspace(spec: Mapping[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write a workspace dict as JSON (readable by ``pyhf fit PATH``)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(spec, indent=1) + "\n")
    return target
