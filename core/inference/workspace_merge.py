"""Learned nuisances added to an analysis's existing pyhf workspace.

An analysis keeps its own HistFactory workspace (samples as histograms, its modifiers, its
observations and measurement). :func:`add_learned_nuisances` adds to chosen samples the
variation of a trained reweighter's θ, computed from simulated events of that sample
binned the workspace's way: the templates h_b(θ) of :func:`build_templates` enter
*multiplicatively*, relative to the reweighter's own template at θ₀, so the workspace's
nominal counts n_b stay what the analysis made them:

    n_b → n_b · h_b(θ) / h_b(θ₀)

(bins with h_b(θ₀) = 0 keep n_b). Portable mode writes it as a ``histosys`` with
``lo_data``/``hi_data`` = n_b·h_b(θ₀ ∓ σ)/h_b(θ₀); exact mode as the ``ratiofit_morph``
modifier (:mod:`ratiofit.inference.morph_modifier`, op ``multiplicative``). The learned
ratio's own error and the non-closure term (:mod:`ratiofit.inference.learned`), shifts
δ_b of h_b, enter as ``histosys`` of ±n_b·δ_b/h_b(θ₀). The result is a standard workspace
(portable) that pyhf and cabinetry read and fit, or the exact-mode model in memory.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import numpy as np

from .binned_templates import BinnedTemplates
from .errors import InferenceError
from .morph_modifier import MORPH_MODIFIER, MorphEntry, morphing_modifier_set
from .pyhf_model import BinnedModel

__all__ = ["add_learned_nuisances"]


def _ratio(values: np.ndarray, reference: np.ndarray) -> np.ndarray:
    safe = np.where(reference > 0, reference, 1.0)
    return np.where(reference > 0, values / safe, 1.0)  # type: ignore[no-any-return]


def add_learned_nuisances(workspace: Mapping[str, Any], templates: BinnedTemplates, *,
                          mode: str, measurement: str | None = None,
                          edges: Mapping[str, Any] | None = None) -> BinnedModel:
    """The analysis ``workspace`` with ``templates``' nuisances on its samples.

    Parameters
    ----------
    workspace
        A pyhf workspace (JSON dict). Its channels and samples named like the templates'
        channels and samples receive the modifiers; nothing else changes.
    templates
        From :func:`build_templates` (``morph=True`` for the exact mode), over the
        workspace's binning of those channels.
    mode
        ``"portable"`` (a standard workspace, :attr:`BinnedModel.spec`) or ``"exact"``.
    measurement
        The workspace's measurement (default: its first).

    Returns
    -------
    BinnedModel
        The model, its data (observations + auxiliary data), the spec and the nuisances.
    """
    import pyhf

    if mode not in ("exact", "portable"):
        raise InferenceError(f"mode must be 'exact' or 'portable', got {mode!r}")
    ws = copy.deepcopy(dict(workspace))
    names = [m["name"] for m in ws["measurements"]]
    measurement = measurement or names[0]
    if measurement not in names:
        raise InferenceError(f"the workspace has no measurement '{measurement}' ({names})")
    existing = {m["name"] for ch in ws["channels"] for s in ch["samples"]
                for m in s["modifiers"]}
    entries: dict[str, MorphEntry] = {}
    channels = {c["name"]: c for c in ws["channels"]}
    for ct in templates.channels:
        if ct.name not in channels:
            raise InferenceError(f"the workspace has no channel '{ct.name}'")
        samples = {s["name"]: s for s in channels[ct.name]["samples"]}
        for st in ct.samples:
            if st.name not in samples:
                raise InferenceError(f"the workspace's channel '{ct.name}' has no sample "
                                     f"'{st.name}'")
            target = samples[st.name]
            n_ws = np.asarray(target["data"], dtype=np.float64)
            if n_ws.shape != st.nominal.values.shape:
                raise InferenceError(f"channel '{ct.name}', sample '{st.name}': the workspace "
                                     f"has {n_ws.size} bins, the templates "
                                     f"{st.nominal.values.size}")
            for n in st.reference:
                if n in existing:
                    raise InferenceError(f"'{n}' is already a modifier of the workspace")
                ref = st.reference[n].values
                if mode == "portable":
                    target["modifiers"].append({"name": n, "type": "histosys", "data": {
                        "lo_data": (n_ws * _ratio(st.down[n].values, ref)).tolist(),
                        "hi_data": (n_ws * _ratio(st.up[n].values, ref)).tolist()}})
                else:
                    if n not in st.morphing:
                        raise InferenceError(f"sample '{st.name}' has no morphing for '{n}'; "
                                             "build the templates with morph=True")
                    nu = templates.nuisances[n]
                    key = f"{ct.name}/{st.name}/{n}"
                    morph = st.morphing[n]
                    entries[key] = MorphEntry(morphing=morph, nominal=nu.nominal,
                                              sigma=nu.sigma, reference=morph.value(nu.nominal),
                                              op="multiplicative")
                    target["modifiers"].append({"name": n, "type": MORPH_MODIFIER,
                                                "data": {"entry": key}})
            # the learned-ratio and non-closure shifts are relative to the sample's own
            # nominal histogram (build_templates' n_b): scaled to the workspace's counts
            for name, shift in st.learned.items():
                if name in existing:
                    raise InferenceError(f"'{name}' is already a modifier of the workspace")
                rel = _ratio(shift, st.nominal.values) * (st.nominal.values > 0)
                target["modifiers"].append({"name": name, "type": "histosys", "data": {
                    "lo_data": (n_ws * (1 - rel)).tolist(),
                    "hi_data": (n_ws * (1 + rel)).tolist()}})
    meas = next(m for m in ws["measurements"] if m["name"] == measurement)
    aux = [{"name": n, "auxdata": [nu.auxdata]} for n, nu in templates.nuisances.items()
           if nu.measured is not None]
    meas["config"]["parameters"] = [*meas["config"].get("parameters", []), *aux]
    poi = meas["config"]["poi"]
    if mode == "portable":
        try:
            w = pyhf.Workspace(ws)
        except Exception as exc:  # pyhf's schema/model errors, as one line
            raise InferenceError(f"the merged workspace does not validate: {exc}") from exc
        model = w.model(measurement_name=measurement)
        data = np.asarray(w.data(model), dtype=np.float64)
        return BinnedModel(model=model, data=data, spec=ws, nuisances=dict(templates.nuisances),
                           mode="portable", edges=dict(edges or {}))
    spec = {"channels": ws["channels"], "parameters": meas["config"]["parameters"]}
    model = pyhf.Model(spec, modifier_set=morphing_modifier_set(entries, op="multiplicative"),
                       validate=False, poi_name=poi)
    observed = {o["name"]: np.asarray(o["data"], dtype=np.float64) for o in ws["observations"]}
    data = np.concatenate([*(observed[c] for c in model.config.channels),
                           np.asarray(model.config.auxdata, dtype=np.float64)])
    return BinnedModel(model=model, data=data, spec=ws, nuisances=dict(templates.nuisances),
                       mode="exact", edges=dict(edges or {}))
