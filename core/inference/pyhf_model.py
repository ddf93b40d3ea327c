"""The pyhf (HistFactory) model of a reweighter as a constrained nuisance parameter.

The binned likelihood is guide-searches.md Eq. 3.6, a product of Poisson terms over bins,
with expected counts μ·S_b + B_b(θ), times a normal constraint N(a | α, 1) for each
nuisance. The reweighter's parameter θ enters through the standardised nuisance

    α = (θ − θ₀) / σ,        θ = θ₀ + σ·α,

so that its constraint is the unit normal that HistFactory uses for every shape nuisance
and α̂ is the pull directly. B_b(θ) comes from the reweighted templates
h_b(θ) = Σ w₀ᵢ·w(xᵢ, θ) (:mod:`ratiofit.inference.binned_templates`) in one of two ways:

portable (:func:`portable_model`)
    the standard HistFactory workspace of :func:`portable_workspace`
    (:mod:`ratiofit.inference.pyhf_workspace`): the reweighter's effect is a ``histosys``
    with ``lo_data``/``hi_data`` = the templates at θ₀ ∓ σ (optionally a ``normsys`` for
    the normalisation plus a shape-only ``histosys``). The JSON validates against pyhf's
    schema and runs with the ``pyhf`` command-line tool, anywhere, without ratiofit.
    Between and beyond ±1σ it follows pyhf's 3-point interpolation, not the reweighter.
exact (:func:`exact_model`)
    a :class:`pyhf.pdf.Model` with a custom modifier (type ``ratiofit_morph``,
    :mod:`ratiofit.inference.morph_modifier`) registered through ``modifier_set``: its
    applier evaluates a :class:`TemplateMorphing` of h_b(θ) fitted on a θ grid, so the fit
    follows the reweighter's own θ dependence. Its parameter is declared
    ``constrained_by_normal`` (auxiliary datum 0, width 1) in the builder's required
    parameter set, so pyhf's own constraint term covers it: no workaround is needed. This
    model lives in memory only (its modifier is Python code).

In both modes the variations are taken relative to the reweighter's own template at θ₀:
B_b(θ) = n_b + h_b(θ) − h_b(θ₀) (additive, like ``histosys``) or n_b·h_b(θ)/h_b(θ₀)
(multiplicative), where n_b = Σ w₀ᵢ is the plain nominal histogram. A learned
reweighter's small deviation from 1 at θ₀ thus never shifts the nominal prediction.

Either mode gives a :class:`BinnedModel` (model, data, nuisances);
:func:`parameter_vector`, :func:`asimov_data` and :func:`expected_by_sample` evaluate a
model by parameter name. Fits and tests on it: :mod:`ratiofit.inference.binned_fit`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .binned_templates import BinnedTemplates, ChannelTemplates, ReweighterNuisance, SampleTemplates
from .errors import InferenceError
from .morph_modifier import MORPH_MODIFIER, MorphEntry, Op, morphing_modifier_set
from .pyhf_workspace import (
    _channel_specs,
    _measured_parameters,
    _poi_parameter,
    _require_poi,
    portable_workspace,
)

__all__ = [
    "BinnedModel",
    "asimov_data",
    "exact_model",
    "expected_by_sample",
    "parameter_vector",
    "portable_model",
]


@dataclass
class BinnedModel:
    """A pyhf model, its data (observations + auxiliary data) and the reweighter nuisances.

    Attributes
    ----------
    model
        The :class:`pyhf.pdf.Model`.
    data
        Observed counts in ``model.config.channels`` order followed by the auxiliary data.
    spec
        The workspace (portable) or model spec with ``ratiofit_morph`` modifiers (exact).
    nuisances
        Reweighter nuisances by name (to report α as θ).
    mode
        ``"portable"`` or ``"exact"``.
    edges
        Bin edges by channel name (the pyhf model itself knows only bin counts; plots of
        the model need the observable's axis). Empty for a model built by hand.
    """

    model: Any
    data: np.ndarray
    spec: dict[str, Any]
    nuisances: dict[str, ReweighterNuisance]
    mode: str
    edges: dict[str, list[float]] = field(default_factory=dict)


def portable_model(templates: BinnedTemplates, **options: Any) -> BinnedModel:
    """The pyhf model of :func:`portable_workspace` (same options), with its data."""
    import pyhf

    spec = portable_workspace(templates, **options)
    ws = pyhf.Workspace(spec)
    model = ws.model()
    return BinnedModel(model=model, data=np.asarray(ws.data(model), dtype=np.float64), spec=spec,
                       nuisances=dict(templates.nuisances), mode="portable",
                       edges=_edges(templates))



def exact_model(templates: BinnedTemplates, *, poi: str = "mu", op: Op = "additive",
                staterror: bool = True, poi_bounds: tuple[float, float] = (0.0, 10.0),
                poi_init: float = 1.0) -> BinnedModel:
    """The exact-mode pyhf model: reweighter nuisances as ``ratiofit_morph`` modifiers.

    Parameters
    ----------
    templates
        From :func:`build_templates` (with ``morph=True``).
    poi, staterror, poi_bounds, poi_init
        As for :func:`portable_workspace`.
    op
        ``"additive"`` (default; B_b = n_b + h_b(θ) − h_b(θ₀), like ``histosys``, so the two
        modes differ only in the interpolation) or ``"multiplicative"``
        (B_b = n_b·h_b(θ)/h_b(θ₀)). Several nuisances on one sample add their deltas or
        multiply their factors, as HistFactory combines its modifiers.

    Returns
    -------
    BinnedModel
        Model (built with ``validate=False``: the schema does not know the custom type),
        data and nuisances.
    """
    import pyhf

    if op not in ("additive", "multiplicative"):
        raise InferenceError(f"op must be 'additive' or 'multiplicative', got {op!r}")
    _require_poi(templates, poi)
    entries: dict[str, MorphEntry] = {}

    def modifiers(ch: ChannelTemplates, st: SampleTemplates, n: str) -> list[dict[str, Any]]:
        if n not in st.morphing:
            raise InferenceError(f"sample '{st.name}' has no morphing for nuisance '{n}'; "
                                 "build the templates with morph=True")
        nu = templates.nuisances[n]
        morph = st.morphing[n]
        key = f"{ch.name}/{st.name}/{n}"
        entries[key] = MorphEntry(morphing=morph, nominal=nu.nominal, sigma=nu.sigma,
                                   reference=morph.value(nu.nominal), op=op)
        return [{"name": n, "type": MORPH_MODIFIER, "data": {"entry": key}}]

    spec = {"channels": _channel_specs(templates, poi, staterror, modifiers),
            "parameters": [_poi_parameter(poi, poi_bounds, poi_init),
                           *_measured_parameters(templates)]}
    model = pyhf.Model(spec, modifier_set=morphing_modifier_set(entries, op=op),
                       validate=False, poi_name=poi)
    observed = {ch.name: ch.observed for ch in templates.channels}
    data = np.concatenate([*(observed[c] for c in model.config.channels),
                           np.asarray(model.config.auxdata, dtype=np.float64)])
    return BinnedModel(model=model, data=data, spec=spec, nuisances=dict(templates.nuisances),
                       mode="exact", edges=_edges(templates))


# -- model helpers --------------------------------------------------------------------------
def _edges(templates: BinnedTemplates) -> dict[str, list[float]]:
    return {ch.name: [float(e) for e in ch.edges] for ch in templates.channels}


def _indices(model: Any, name: str) -> list[int]:
    """Flat indices of a parameter (``name``) or of one component (``name[i]``)."""
    cfg = model.config
    if name in cfg.par_map:
        sl = cfg.par_slice(name)
        return list(range(sl.start, sl.stop))
    base, index = _split_flat(name)
    if index is not None and base in cfg.par_map:
        sl = cfg.par_slice(base)
        if 0 <= index < sl.stop - sl.start:
            return [sl.start + index]
    raise InferenceError(f"'{name}' is not a parameter of the model (parameters: "
                         f"{list(cfg.par_map)})")


def parameter_vector(model: Any, values: Mapping[str, Any] | None = None) -> np.ndarray:
    """The model's parameter vector: suggested inits, overridden by ``values`` by name
    (a parameter, or one component as ``name[i]``)."""
    pars = np.asarray(model.config.suggested_init(), dtype=np.float64)
    for name, v in (values or {}).items():
        idx = _indices(model, name)
        pars[idx] = np.broadcast_to(np.asarray(v, dtype=np.float64), (len(idx),))
    return pars


def asimov_data(model: Any, values: Mapping[str, Any] | None = None) -> np.ndarray:
    """Expected main data and the matching auxiliary data at ``values`` (an Asimov set).

    The auxiliary data are the constraint means at those values, so a fit recovers them.
    """
    return np.asarray(model.expected_data(parameter_vector(model, values)), dtype=np.float64)


def expected_by_sample(model: Any, values: Mapping[str, Any] | None = None
                       ) -> dict[str, np.ndarray]:
    """Expected counts per sample (all channels concatenated in model order)."""
    per = np.asarray(model.main_model.expected_data(parameter_vector(model, values),
                                                    return_by_sample=True))
    return {s: per[i] for i, s in enumerate(model.config.samples)}


def _split_flat(name: str) -> tuple[str, int | None]:
    if name.endswith("]") and "[" in name:
        base, idx = name[:-1].split("[", 1)
        if idx.isdigit():
            return base, int(idx)
    return name, None
