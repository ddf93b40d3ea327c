"""A trained reweighter as a constrained nuisance parameter in a pyhf (HistFactory) fit.

The binned likelihood is guide-searches.md Eq. 3.6, a product of Poisson terms over bins,
with expected counts μ·S_b + B_b(θ), times a normal constraint N(a | α, 1) for each
nuisance. The reweighter's parameter θ enters through the standardised nuisance

    α = (θ − θ₀) / σ,        θ = θ₀ + σ·α,

so that its constraint is the unit normal that HistFactory uses for every shape nuisance
and α̂ is the pull directly. B_b(θ) comes from the reweighted templates
h_b(θ) = Σ w₀ᵢ·w(xᵢ, θ) (:mod:`ratiofit.inference.templates`) in one of two ways:

portable (:func:`portable_workspace`)
    a standard HistFactory workspace: the reweighter's effect is a ``histosys`` with
    ``lo_data``/``hi_data`` = the templates at θ₀ ∓ σ (optionally a ``normsys`` for the
    normalisation plus a shape-only ``histosys``). The JSON validates against pyhf's schema
    and runs with the ``pyhf`` command-line tool, anywhere, without ratiofit. Between and
    beyond ±1σ it follows pyhf's 3-point interpolation, not the reweighter.
exact (:func:`exact_model`)
    a :class:`pyhf.pdf.Model` with a custom modifier (type ``ratiofit_morph``) registered
    through ``modifier_set``: its applier evaluates a :class:`TemplateMorphing` of h_b(θ)
    fitted on a θ grid, so the fit follows the reweighter's own θ dependence. Its
    parameter is declared ``constrained_by_normal`` (auxiliary datum 0, width 1) in the
    builder's required parameter set, so pyhf's own constraint term covers it: no
    workaround is needed. This model lives in memory only (its modifier is Python code).

In both modes the variations are taken relative to the reweighter's own template at θ₀:
B_b(θ) = n_b + h_b(θ) − h_b(θ₀) (additive, like ``histosys``) or n_b·h_b(θ)/h_b(θ₀)
(multiplicative), where n_b = Σ w₀ᵢ is the plain nominal histogram. A learned
reweighter's small deviation from 1 at θ₀ thus never shifts the nominal prediction.

Fits use pyhf's numpy backend and the minuit optimizer (:func:`fit`, :func:`hypotest`,
:func:`upper_limit`, :func:`impacts`); each call sets them for its duration and restores
the previous backend afterwards.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..events import EventSet
from .errors import InferenceError
from .learned import LearnedRatioTerm, NonClosureTerm
from .templates import (
    FlowPolicy,
    Template,
    TemplateMorphing,
    histogram_template,
    reweighted_template,
)

__all__ = [
    "MORPH_MODIFIER",
    "BinnedFitResult",
    "BinnedModel",
    "BinnedTemplates",
    "CLsResult",
    "Channel",
    "ChannelTemplates",
    "Impact",
    "MorphEntry",
    "Pull",
    "ReweighterNuisance",
    "Sample",
    "SampleTemplates",
    "UpperLimitResult",
    "add_learned_ratio",
    "asimov_data",
    "build_templates",
    "exact_model",
    "expected_by_sample",
    "fit",
    "hypotest",
    "impacts",
    "morphing_modifier_set",
    "parameter_vector",
    "portable_model",
    "portable_workspace",
    "upper_limit",
    "write_workspace",
]

MORPH_MODIFIER = "ratiofit_morph"
WORKSPACE_VERSION = "1.0.0"
Op = Literal["additive", "multiplicative"]


# -- inputs ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class ReweighterNuisance:
    """A reweighter's parameter θ used as a constrained nuisance α = (θ − θ₀)/σ.

    Parameters
    ----------
    name
        The fit parameter's name (the pyhf modifier name), e.g. ``"theta_mu"``.
    reweighter
        A :class:`~ratiofit.reweighter.Reweighter` parameterised in ``parameter``.
    parameter
        The θ it varies.
    nominal
        θ₀, the centre of the normal constraint.
    sigma
        The constraint's width σ > 0 (θ units).
    fixed_theta
        Values of the reweighter's other θ (default: their nominal values).
    grid_points
        Number of θ points of the exact-mode morphing grid.
    grid_sigmas
        The grid spans θ₀ ± ``grid_sigmas``·σ, clipped to the reweighter's range.
    morph_options
        Options of :class:`TemplateMorphing` (``method``, ``degree``, ``rtol``, ...).
    measured
        The auxiliary measurement of θ, the constraint's datum (default θ₀): the
        constraint is N(a | α, 1) with a = (measured − θ₀)/σ, while the templates stay
        relative to the reweighter's θ₀.
    """

    name: str
    reweighter: Any
    parameter: str
    nominal: float
    sigma: float
    fixed_theta: Mapping[str, float] = field(default_factory=dict)
    grid_points: int = 13
    grid_sigmas: float = 5.0
    morph_options: Mapping[str, Any] = field(default_factory=dict)
    measured: float | None = None

    def __post_init__(self) -> None:
        where = f"nuisance '{self.name}'"
        if not isinstance(self.name, str) or not self.name:
            raise InferenceError(f"nuisance name must be a non-empty string, got {self.name!r}")
        sigma = float(self.sigma)
        if not np.isfinite(sigma) or sigma <= 0:
            raise InferenceError(f"{where}: constraint sigma must be a finite number > 0, got "
                                 f"{self.sigma!r}")
        names = list(getattr(self.reweighter, "theta_names", []))
        if self.parameter not in names:
            raise InferenceError(f"{where}: the reweighter has no parameter '{self.parameter}' "
                                 f"(it is parameterised in {names})")
        extra = sorted(set(self.fixed_theta) - (set(names) - {self.parameter}))
        if extra:
            raise InferenceError(f"{where}: fixed_theta names {extra} are not other parameters "
                                 f"of the reweighter ({names})")
        p = self.reweighter.parameters[self.parameter]
        nominal = float(self.nominal)
        if not p.low <= nominal - sigma or not nominal + sigma <= p.high:
            raise InferenceError(f"{where}: θ₀ ± σ = [{nominal - sigma:g}, {nominal + sigma:g}] "
                                 f"leaves the reweighter's range [{p.low:g}, {p.high:g}] of "
                                 f"'{self.parameter}'")
        if int(self.grid_points) < 3:
            raise InferenceError(f"{where}: grid_points must be ≥ 3, got {self.grid_points}")
        if not float(self.grid_sigmas) >= 1.0:
            raise InferenceError(f"{where}: grid_sigmas must be ≥ 1, got {self.grid_sigmas}")
        if self.measured is not None:
            measured = float(self.measured)
            if not np.isfinite(measured):
                raise InferenceError(f"{where}: measured must be finite, got {self.measured!r}")
            object.__setattr__(self, "measured", measured)
        object.__setattr__(self, "sigma", sigma)
        object.__setattr__(self, "nominal", nominal)

    @property
    def auxdata(self) -> float:
        """The constraint's datum a = (measured − θ₀)/σ (0 without a measurement)."""
        return 0.0 if self.measured is None else (self.measured - self.nominal) / self.sigma

    def theta(self, alpha: Any) -> Any:
        """θ = θ₀ + σ·α."""
        return self.nominal + self.sigma * np.asarray(alpha, dtype=np.float64)

    def alpha(self, theta: Any) -> Any:
        """α = (θ − θ₀)/σ."""
        return (np.asarray(theta, dtype=np.float64) - self.nominal) / self.sigma

    def theta_point(self, value: float) -> dict[str, float]:
        """All θ of the reweighter with ``parameter`` at ``value``."""
        point = {p.name: p.nominal for p in self.reweighter.parameters}
        point.update({k: float(v) for k, v in self.fixed_theta.items()})
        point[self.parameter] = float(value)
        return point

    def grid(self) -> np.ndarray:
        """The morphing grid: θ₀ is a node; spacing as even as the range clipping allows."""
        p = self.reweighter.parameters[self.parameter]
        lo = max(p.low, self.nominal - self.grid_sigmas * self.sigma)
        hi = min(p.high, self.nominal + self.grid_sigmas * self.sigma)
        n = int(self.grid_points)
        # split the points between the two sides in proportion to their widths
        n_lo = max(2, round((n - 1) * (self.nominal - lo) / (hi - lo)) + 1)
        n_hi = max(2, n - n_lo + 1)
        return np.unique(np.concatenate([np.linspace(lo, self.nominal, n_lo),
                                         np.linspace(self.nominal, hi, n_hi)]))


@dataclass(frozen=True)
class Sample:
    """One simulated process in a channel.

    Parameters
    ----------
    name
        Sample name in the workspace.
    events
        Its simulated events (at θ₀ for samples with nuisances).
    weights
        ``[n]`` event weights w₀ (normalised to the expected yield); default: the events'.
    signal
        Scaled by the parameter of interest (a ``normfactor``).
    nuisances
        Names of the :class:`ReweighterNuisance` acting on it.
    staterror
        Include its Σw² in the channel's Barlow–Beeston-lite ``staterror``.
    """

    name: str
    events: EventSet
    weights: Any = None
    signal: bool = False
    nuisances: tuple[str, ...] = ()
    staterror: bool = True


@dataclass(frozen=True)
class Channel:
    """A binned region: one observable, its binning, the samples and the observed data.

    ``observed`` is an EventSet (binned like the samples) or the per-bin counts.
    """

    name: str
    observable: str
    edges: Any
    samples: tuple[Sample, ...]
    observed: Any


@dataclass
class SampleTemplates:
    """Nominal histogram, ±1σ templates and morphing of each nuisance for one sample."""

    name: str
    signal: bool
    staterror: bool
    nominal: Template
    down: dict[str, Template] = field(default_factory=dict)
    up: dict[str, Template] = field(default_factory=dict)
    reference: dict[str, Template] = field(default_factory=dict)
    morphing: dict[str, TemplateMorphing] = field(default_factory=dict)
    #: learned-ratio modifier name → ±1σ shift per bin (:mod:`ratiofit.inference.learned`)
    learned: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class ChannelTemplates:
    """One channel's binning, observed counts and sample templates."""

    name: str
    edges: np.ndarray
    observed: np.ndarray
    samples: list[SampleTemplates]


@dataclass
class BinnedTemplates:
    """Everything the two export modes need, computed once by :func:`build_templates`."""

    channels: list[ChannelTemplates]
    nuisances: dict[str, ReweighterNuisance]

    def summary(self) -> dict[str, Any]:
        """Morphing residuals per channel/sample/nuisance (JSON-ready)."""
        return {c.name: {s.name: {n: m.summary() for n, m in s.morphing.items()}
                         for s in c.samples} for c in self.channels}


def _observed_counts(channel: Channel, edges: np.ndarray, flow: FlowPolicy) -> np.ndarray:
    obs = channel.observed
    if isinstance(obs, EventSet):
        return histogram_template(events=obs, observable=channel.observable, edges=edges,
                                  flow=flow).values
    counts = np.asarray(obs, dtype=np.float64)
    if counts.shape != (len(edges) - 1,):
        raise InferenceError(f"channel '{channel.name}': observed has shape {counts.shape}, "
                             f"expected ({len(edges) - 1},) for {len(edges) - 1} bins")
    if not np.all(np.isfinite(counts)) or np.any(counts < 0):
        raise InferenceError(f"channel '{channel.name}': observed counts must be finite and ≥ 0")
    return counts


def build_templates(*, channels: Sequence[Channel], nuisances: Sequence[ReweighterNuisance],
                    flow: FlowPolicy = "error", morph: bool = True) -> BinnedTemplates:
    """Fill the nominal, θ₀ ± σ and morphing-grid templates of every sample.

    Parameters
    ----------
    channels
        The regions, each with its samples and observed data.
    nuisances
        The reweighter nuisances the samples refer to by name.
    flow
        Policy for events outside a channel's binning (applies to every sample and to
        observed events): ``"error"``, ``"fold"`` or ``"exclude"``.
    morph
        Also fill the θ grid and fit the exact-mode morphing (skip for portable export only).

    Returns
    -------
    BinnedTemplates
        Input of :func:`portable_workspace` and :func:`exact_model`.
    """
    by_name: dict[str, ReweighterNuisance] = {}
    for nu in nuisances:
        if nu.name in by_name:
            raise InferenceError(f"nuisance name '{nu.name}' is used twice")
        by_name[nu.name] = nu
    if not channels:
        raise InferenceError("at least one channel is needed")
    seen: set[str] = set()
    out = []
    for ch in channels:
        if ch.name in seen:
            raise InferenceError(f"channel name '{ch.name}' is used twice")
        seen.add(ch.name)
        edges = np.asarray(ch.edges, dtype=np.float64)
        names = [s.name for s in ch.samples]
        if not names or len(set(names)) != len(names):
            raise InferenceError(f"channel '{ch.name}': samples must be non-empty with unique "
                                 f"names, got {names}")
        samples = []
        for s in ch.samples:
            unknown = [n for n in s.nuisances if n not in by_name]
            if unknown:
                raise InferenceError(f"channel '{ch.name}', sample '{s.name}': unknown "
                                     f"nuisance(s) {unknown} (defined: {sorted(by_name)})")
            nominal = histogram_template(events=s.events, observable=ch.observable, edges=edges,
                                         weights=s.weights, flow=flow)
            st = SampleTemplates(name=s.name, signal=s.signal, staterror=s.staterror,
                                 nominal=nominal)
            for n in s.nuisances:
                nu = by_name[n]
                for target, value in ((st.reference, nu.nominal),
                                      (st.down, nu.nominal - nu.sigma),
                                      (st.up, nu.nominal + nu.sigma)):
                    target[n] = reweighted_template(
                        reweighter=nu.reweighter, events=s.events, observable=ch.observable,
                        edges=edges, theta=nu.theta_point(value), weights=s.weights, flow=flow)
                if morph:
                    st.morphing[n] = TemplateMorphing.from_reweighter(
                        reweighter=nu.reweighter, events=s.events, observable=ch.observable,
                        edges=edges, parameter=nu.parameter, grid=nu.grid(),
                        fixed={k: v for k, v in nu.theta_point(nu.nominal).items()
                               if k != nu.parameter},
                        weights=s.weights, flow=flow, **dict(nu.morph_options))
            samples.append(st)
        out.append(ChannelTemplates(name=ch.name, edges=edges,
                                    observed=_observed_counts(ch, edges, flow), samples=samples))
    return BinnedTemplates(channels=out, nuisances=by_name)


# -- portable export ------------------------------------------------------------------------
def _shifted(st: SampleTemplates, n: str, which: Template) -> np.ndarray:
    """n_b + h_b(θ) − h_b(θ₀): the variation relative to the reweighter's own θ₀ template."""
    return st.nominal.values + which.values - st.reference[n].values


def _poi_parameter(poi: str, bounds: tuple[float, float], init: float) -> dict[str, Any]:
    lo, hi = (float(b) for b in bounds)
    if not lo < hi:
        raise InferenceError(f"POI bounds must be increasing, got {bounds}")
    return {"name": poi, "bounds": [[lo, hi]], "inits": [float(init)]}


def _measured_parameters(templates: BinnedTemplates) -> list[dict[str, Any]]:
    """Measurement parameters that set a nuisance's auxiliary datum (``measured``)."""
    return [{"name": n, "auxdata": [nu.auxdata]} for n, nu in templates.nuisances.items()
            if nu.measured is not None]


def add_learned_ratio(templates: BinnedTemplates,
                      terms: Sequence[LearnedRatioTerm | NonClosureTerm]) -> BinnedTemplates:
    """Put the learned-ratio modifiers of ``terms`` (:func:`learned_ratio_term`,
    :func:`nonclosure_term`) on the
    samples they shift (in place; returned for chaining); both export modes then carry
    them as ``histosys``."""
    by_key = {(ch.name, st.name): st for ch in templates.channels for st in ch.samples}
    taken = {n for st in by_key.values() for n in st.learned} | set(templates.nuisances)
    for term in terms:
        for name, per in term.shifts.items():
            if name in taken:
                raise InferenceError(f"learned-ratio modifier '{name}' is already a parameter")
            for key, shift in per.items():
                if key not in by_key:
                    raise InferenceError(f"learned-ratio modifier '{name}': no sample "
                                         f"'{key[1]}' in channel '{key[0]}'")
                st = by_key[key]
                if shift.shape != st.nominal.values.shape:
                    raise InferenceError(f"learned-ratio modifier '{name}': {shift.shape} "
                                         f"bins for sample '{key[1]}', which has "
                                         f"{st.nominal.values.shape}")
                st.learned[name] = np.asarray(shift, dtype=np.float64)
    return templates


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
    """

    model: Any
    data: np.ndarray
    spec: dict[str, Any]
    nuisances: dict[str, ReweighterNuisance]
    mode: str


def portable_model(templates: BinnedTemplates, **options: Any) -> BinnedModel:
    """The pyhf model of :func:`portable_workspace` (same options), with its data."""
    import pyhf

    spec = portable_workspace(templates, **options)
    ws = pyhf.Workspace(spec)
    model = ws.model()
    return BinnedModel(model=model, data=np.asarray(ws.data(model), dtype=np.float64), spec=spec,
                       nuisances=dict(templates.nuisances), mode="portable")


# -- exact mode: the custom modifier --------------------------------------------------------
@dataclass(frozen=True)
class MorphEntry:
    """One (nuisance, channel, sample) morphing, with the θ mapping of its nuisance."""

    morphing: TemplateMorphing
    nominal: float
    sigma: float
    reference: np.ndarray  # the morphing at θ₀: the variation is taken relative to it
    op: Op

    def modification(self, alpha: np.ndarray) -> np.ndarray:
        """``[batch, n_bins]`` delta (additive) or factor (multiplicative) at α."""
        values = self.morphing.value(self.nominal + self.sigma * alpha)
        if self.op == "additive":
            return values - self.reference  # type: ignore[no-any-return]
        safe = np.where(self.reference > 0, self.reference, 1.0)
        return np.where(self.reference > 0, values / safe, 1.0)  # type: ignore[no-any-return]

    @property
    def bounds(self) -> tuple[float, float]:
        g = self.morphing.grid
        return ((g[0] - self.nominal) / self.sigma, (g[-1] - self.nominal) / self.sigma)


def morphing_modifier_set(entries: Mapping[str, MorphEntry], *, op: Op
                          ) -> dict[str, tuple[type, type]]:
    """pyhf's HistFactory modifiers plus ``ratiofit_morph`` evaluating ``entries``.

    pyhf 0.7 builds a model from a ``modifier_set``: modifier type → (builder, applier).
    For each spec modifier of our type, ``data = {"entry": KEY}`` names a morphing in
    ``entries``. The builder records, per sample and channel, which entry applies and
    declares the parameter ``constrained_by_normal`` (auxiliary datum 0, width 1, bounds =
    the morphing grid in α), which gives it pyhf's Gaussian constraint. The applier returns,
    like ``histosys``, a tensor ``[n_modifiers, n_samples, batch, n_bins]`` of per-bin
    deltas (op ``addition``) or factors (op ``multiplication``) evaluated at θ = θ₀ + σα.
    Numpy backend only: the morphing is numpy code.
    """
    import pyhf

    op_code = {"additive": "addition", "multiplicative": "multiplication"}[op]
    neutral = 0.0 if op == "additive" else 1.0

    class MorphBuilder:
        """Collects which morphing entry applies to each (sample, channel)."""

        is_shared = True

        def __init__(self, config: Any) -> None:
            self.config = config
            self.builder_data: dict[str, Any] = {}
            self.required_parsets: dict[str, list[dict[str, Any]]] = {}

        def append(self, key: str, channel: str, sample: str, thismod: Any,
                   defined_samp: Any) -> None:
            nbins = self.config.channel_nbins[channel]
            entry_key = None
            if thismod:
                entry_key = thismod["data"]["entry"]
                if entry_key not in entries:
                    raise InferenceError(f"{MORPH_MODIFIER} modifier '{thismod['name']}': "
                                         f"unknown morphing entry '{entry_key}'")
                entry = entries[entry_key]
                if entry.morphing.n_bins != nbins:
                    raise InferenceError(f"{MORPH_MODIFIER} '{thismod['name']}' on sample "
                                         f"'{sample}': morphing has {entry.morphing.n_bins} "
                                         f"bins, channel '{channel}' has {nbins}")
                lo, hi = entry.bounds
                # the same name on several samples/channels must ask for the same parset
                self.required_parsets.setdefault(thismod["name"], [{
                    "paramset_type": "constrained_by_normal", "n_parameters": 1,
                    "is_scalar": True, "inits": (0.0,), "bounds": ((lo, hi),),
                    "fixed": False, "auxdata": (0.0,)}])
            self.builder_data.setdefault(key, {}).setdefault(sample, []).append(
                (channel, nbins, entry_key))

        def finalize(self) -> dict[str, Any]:
            return self.builder_data

    class MorphApplier:
        """Evaluates the morphing entries at the current parameter values."""

        name = MORPH_MODIFIER

        def __init__(self, modifiers: Sequence[tuple[str, str]], pdfconfig: Any,
                     builder_data: Any, batch_size: int | None = None, **settings: Any) -> None:
            if settings:
                raise InferenceError(f"{MORPH_MODIFIER} takes no modifier settings, got "
                                     f"{sorted(settings)}")
            self.batch_size = batch_size
            self.n_samples = len(pdfconfig.samples)
            self.n_bins = int(sum(pdfconfig.channel_nbins.values()))
            self.plan: list[tuple[int, int, list[tuple[int, slice, MorphEntry]]]] = []
            for m, (name, mtype) in enumerate(modifiers):
                segments = []
                for s_index, sample in enumerate(pdfconfig.samples):
                    offset = 0
                    # appended channel by channel in pdfconfig.channels order: the global
                    # bin order of pyhf's mega-channel
                    for _channel, nbins, entry_key in builder_data[f"{mtype}/{name}"][sample]:
                        if entry_key is not None:
                            segments.append((s_index, slice(offset, offset + nbins),
                                             entries[entry_key]))
                        offset += nbins
                self.plan.append((m, pdfconfig.par_slice(name).start, segments))

        def apply(self, pars: Any) -> Any:
            if not self.plan:
                return None
            tensorlib, _ = pyhf.get_backend()
            if tensorlib.name != "numpy":
                raise InferenceError(f"{MORPH_MODIFIER} needs pyhf's numpy backend, not "
                                     f"'{tensorlib.name}'")
            p = np.asarray(pars, dtype=np.float64)
            p = p[None, :] if self.batch_size is None else p.reshape(self.batch_size, -1)
            out = np.full((len(self.plan), self.n_samples, p.shape[0], self.n_bins), neutral)
            for m, index, segments in self.plan:
                alpha = p[:, index]
                for s_index, bins, entry in segments:
                    out[m, s_index, :, bins] = entry.modification(alpha)
            return out

    MorphApplier.op_code = op_code  # type: ignore[attr-defined]
    return {**pyhf.modifiers.histfactory_set, MORPH_MODIFIER: (MorphBuilder, MorphApplier)}


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
                       mode="exact")


# -- model helpers --------------------------------------------------------------------------
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


@contextlib.contextmanager
def _numpy_minuit() -> Iterator[None]:
    """pyhf with the numpy backend and minuit for the duration, then the previous setting."""
    import pyhf

    before = pyhf.get_backend()
    switch = before[0].name != "numpy" or before[1].name != "minuit"
    if switch:
        pyhf.set_backend("numpy", "minuit")
    try:
        yield
    finally:
        if switch:
            pyhf.set_backend(*before)


def _unpack(model: Any, data: Any, nuisances: Mapping[str, ReweighterNuisance] | None
            ) -> tuple[Any, np.ndarray, dict[str, ReweighterNuisance]]:
    if isinstance(model, BinnedModel):
        nus = dict(model.nuisances if nuisances is None else nuisances)
        return model.model, np.asarray(model.data if data is None else data, np.float64), nus
    if data is None:
        raise InferenceError("data are required with a bare pyhf model")
    return model, np.asarray(data, dtype=np.float64), dict(nuisances or {})


# -- fits -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Pull:
    """A constrained parameter after the fit.

    ``pull`` = (θ̂ − θ₀)/σ and ``constraint`` = σ̂/σ, with θ₀ and σ the prefit constraint's
    centre and width. For a reweighter nuisance, ``theta``/``theta_error`` are in θ units.
    """

    name: str
    value: float
    error: float
    prefit: float
    prefit_error: float
    pull: float
    constraint: float
    theta: float | None = None
    theta_error: float | None = None


@dataclass(frozen=True)
class BinnedFitResult:
    """A binned (pyhf) maximum-likelihood fit: best-fit values, Hesse errors, pulls,
    correlations (ratiofit.fitting.FitResult is a fit of θ, UnbinnedFitResult an unbinned one).

    Attributes
    ----------
    names
        Parameter names in the model's order (vector parameters as ``name[i]``).
    values, errors
        Best-fit values and their Hesse uncertainties (0 for fixed parameters).
    correlation
        ``[p, p]`` correlation matrix from minuit's covariance.
    twice_nll
        −2 log L at the minimum (guide-searches.md Eq. 3.6 times the constraints).
    poi
        The parameter of interest's name.
    pulls
        Constrained parameters by name.
    valid
        minuit's validity flag.
    nfev
        Objective evaluations.
    """

    names: tuple[str, ...]
    values: np.ndarray
    errors: np.ndarray
    correlation: np.ndarray
    twice_nll: float
    poi: str
    pulls: dict[str, Pull]
    valid: bool
    nfev: int

    def value(self, name: str) -> float:
        return float(self.values[self._index(name)])

    def error(self, name: str) -> float:
        return float(self.errors[self._index(name)])

    def _index(self, name: str) -> int:
        if name not in self.names:
            raise InferenceError(f"'{name}' is not a fitted parameter ({list(self.names)})")
        return self.names.index(name)

    @property
    def covariance(self) -> np.ndarray:
        """``[p, p]`` covariance, correlation × σᵢσⱼ (zero rows for fixed parameters)."""
        return self.correlation * np.outer(self.errors, self.errors)  # type: ignore[no-any-return]

    @property
    def poi_value(self) -> float:
        return self.value(self.poi)

    @property
    def poi_error(self) -> float:
        return self.error(self.poi)

    def to_dict(self) -> dict[str, Any]:
        return {"names": list(self.names), "values": self.values.tolist(),
                "errors": self.errors.tolist(), "correlation": self.correlation.tolist(),
                "twice_nll": self.twice_nll, "poi": self.poi, "valid": self.valid,
                "nfev": self.nfev,
                "pulls": {k: vars(p) for k, p in self.pulls.items()}}


def _flat_names(model: Any) -> list[str]:
    return list(model.config.par_names)


def _constrained(model: Any) -> list[tuple[str, int, float, float]]:
    """(flat name, flat index, prefit centre, prefit width) of every constrained parameter."""
    cfg = model.config
    aux = list(cfg.auxdata)
    out = []
    start = 0
    for pname in cfg.auxdata_order:
        ps = cfg.param_set(pname)
        widths = ps.width()
        sl = cfg.par_slice(pname)
        for i in range(ps.n_parameters):
            flat = pname if ps.is_scalar else f"{pname}[{i}]"
            centre = aux[start + i]
            if ps.pdf_type == "poisson":
                centre = 1.0  # shapesys: the auxdatum is a count, the parameter a factor
            out.append((flat, sl.start + i, float(centre), float(widths[i])))
        start += ps.n_parameters
    return out


def fit(model: Any, data: Any = None, *, nuisances: Mapping[str, ReweighterNuisance] | None = None,
        init: Mapping[str, Any] | None = None, fixed: Mapping[str, Any] | None = None
        ) -> BinnedFitResult:
    """Maximum-likelihood fit with minuit (numpy backend), with errors and correlations.

    Parameters
    ----------
    model
        A :class:`BinnedModel` or a :class:`pyhf.pdf.Model`.
    data
        Observations + auxiliary data (default: the BinnedModel's).
    nuisances
        Reweighter nuisances by name, to report α̂ as θ̂ (default: the BinnedModel's).
    init
        Starting values by parameter name.
    fixed
        Parameters held constant, by name, at the given values.

    Returns
    -------
    BinnedFitResult
    """
    import pyhf

    pdf, d, nus = _unpack(model, data, nuisances)
    start = parameter_vector(pdf, {**(init or {}), **(fixed or {})})
    is_fixed = list(pdf.config.suggested_fixed())
    for name in fixed or {}:
        for i in _indices(pdf, name):
            is_fixed[i] = True
    with _numpy_minuit():
        try:
            pars, corr, twice_nll, res = pyhf.infer.mle.fit(
                d, pdf, init_pars=start.tolist(), fixed_params=is_fixed,
                return_uncertainties=True, return_correlations=True, return_fitted_val=True,
                return_result_obj=True)
        except pyhf.exceptions.FailedMinimization as exc:
            raise InferenceError(f"the fit did not converge: {exc}") from exc
    pars = np.asarray(pars, dtype=np.float64)
    values, errors = pars[:, 0], pars[:, 1]
    names = _flat_names(pdf)
    pulls = {}
    for flat, i, centre, width in _constrained(pdf):
        nu = nus.get(flat)
        pulls[flat] = Pull(
            name=flat, value=float(values[i]), error=float(errors[i]), prefit=centre,
            prefit_error=width, pull=(float(values[i]) - centre) / width,
            constraint=float(errors[i]) / width,
            theta=None if nu is None else float(nu.theta(values[i])),
            theta_error=None if nu is None else float(nu.sigma * errors[i]))
    return BinnedFitResult(names=tuple(names), values=values, errors=errors,
                     correlation=np.asarray(corr, dtype=np.float64),
                     twice_nll=float(np.asarray(twice_nll).reshape(-1)[0]),
                     poi=str(pdf.config.poi_name), pulls=pulls, valid=bool(res.success),
                     nfev=int(res.nfev))


@dataclass(frozen=True)
class CLsResult:
    """CLs of guide-searches.md Eq. 3.4–3.5 at one POI value.

    ``cls_expected`` is the −2σ … +2σ band under the background-only hypothesis.
    """

    poi_value: float
    cls_observed: float
    clsb: float
    clb: float
    cls_expected: tuple[float, ...]
    calctype: str
    test_stat: str
    ntoys: int | None = None


def hypotest(model: Any, data: Any = None, *, poi_value: float = 1.0,
             calctype: Literal["asymptotics", "toybased"] = "asymptotics", ntoys: int = 1000,
             test_stat: Literal["q", "qtilde"] = "qtilde", seed: int | None = None) -> CLsResult:
    """CLs = CL_{s+b}/CL_b (guide-searches.md Eq. 3.4–3.5) with the profile likelihood
    ratio (Eq. 3.3) as test statistic, asymptotic or from pseudo-experiments.

    Parameters
    ----------
    model, data
        A :class:`BinnedModel` (data default to its own) or a pyhf model and data.
    poi_value
        The tested signal strength.
    calctype
        ``"asymptotics"`` (asymptotic formulae) or ``"toybased"``.
    ntoys
        Pseudo-experiments per hypothesis (toy-based only).
    test_stat
        ``"qtilde"`` (default, needs a POI bounded below by 0) or ``"q"``.
    seed
        Toys draw from numpy's global generator; a seed makes them reproducible and the
        global state is restored afterwards.
    """
    import pyhf

    pdf, d, _ = _unpack(model, data, None)
    if calctype not in ("asymptotics", "toybased"):
        raise InferenceError(f"calctype must be 'asymptotics' or 'toybased', got {calctype!r}")
    state = np.random.get_state() if seed is not None else None
    try:
        if seed is not None:
            np.random.seed(seed)
        with _numpy_minuit():
            if calctype == "asymptotics":
                obs, tails, expected = pyhf.infer.hypotest(
                    float(poi_value), d, pdf, test_stat=test_stat, calctype=calctype,
                    return_tail_probs=True, return_expected_set=True)
            else:
                obs, tails, expected = _toy_hypotest(float(poi_value), d, pdf, test_stat,
                                                     int(ntoys))
    except pyhf.exceptions.FailedMinimization as exc:
        raise InferenceError(f"a fit of the hypothesis test at {poi_value:g} did not "
                             f"converge: {str(exc).splitlines()[0]}") from exc
    finally:
        if state is not None:
            np.random.set_state(state)
    return CLsResult(poi_value=float(poi_value), cls_observed=float(obs),
                     clsb=float(tails[0]), clb=float(tails[1]),
                     cls_expected=tuple(float(e) for e in expected), calctype=calctype,
                     test_stat=test_stat, ntoys=int(ntoys) if calctype == "toybased" else None)


# percentiles of a standard normal at −2, −1, 0, +1, +2 σ
_NORMAL_PERCENTILES = [2.27501319, 15.86552539, 50.0, 84.13447461, 97.72498681]


def _toy_hypotest(poi_value: float, data: np.ndarray, pdf: Any, test_stat: str, ntoys: int
                  ) -> tuple[float, tuple[float, float], list[float]]:
    """pyhf's toy calculator, with the expected band computed here.

    ``pyhf.infer.hypotest(calctype="toybased")`` in pyhf 0.7.6 calls
    ``np.percentile(..., interpolation=...)``, a keyword numpy 2.4 removed (fixed in pyhf
    after 0.7, scikit-hep/pyhf#2652). The observed CLs uses only the calculator's public
    ``teststatistic``/``distributions``/``pvalues``; the expected band is the same
    percentiles of the background-only toys' CLs, taken with ``method="linear"``.
    """
    import pyhf

    calc = pyhf.infer.calculators.ToyCalculator(data, pdf, test_stat=test_stat, ntoys=ntoys,
                                                track_progress=False)
    observed = calc.teststatistic(poi_value)
    sb, b = calc.distributions(poi_value)
    clsb, clb, cls = (float(v) for v in calc.pvalues(observed, sb, b))
    per_toy = np.array([[float(v) for v in calc.pvalues(t, sb, b)] for t in b.samples])
    band = np.percentile(per_toy[:, 2], _NORMAL_PERCENTILES, method="linear")
    return cls, (clsb, clb), [float(v) for v in band]


@dataclass(frozen=True)
class UpperLimitResult:
    """The POI's CLs upper limit at ``1 − level`` and the scan it was read from."""

    observed: float
    expected: tuple[float, ...]
    level: float
    scan: np.ndarray
    cls_observed: np.ndarray
    cls_expected: np.ndarray


def upper_limit(model: Any, data: Any = None, *, scan: Any = None, level: float = 0.05,
                ) -> UpperLimitResult:
    """CLs upper limit on the POI (asymptotic), interpolated on a scan of POI values.

    Parameters
    ----------
    model, data
        A :class:`BinnedModel` or a pyhf model and data.
    scan
        POI values (default: 41 points from the lower POI bound to 5 postfit σ above μ̂).
    level
        1 − confidence level (0.05 → 95% CL).
    """
    import pyhf

    pdf, d, _ = _unpack(model, data, None)
    if scan is None:
        best = fit(pdf, d)
        lo, hi = pdf.config.suggested_bounds()[pdf.config.poi_index]
        top = min(hi, max(best.poi_value, lo) + 5 * best.poi_error + 1e-3)
        scan = np.linspace(lo, top, 41)
    grid = np.asarray(scan, dtype=np.float64)
    with _numpy_minuit():
        try:
            obs, exp, (points, results) = pyhf.infer.intervals.upper_limits.upper_limit(
                d, pdf, grid, level=level, return_results=True)
        except pyhf.exceptions.FailedMinimization as exc:
            raise InferenceError(f"a fit of the upper-limit scan did not converge: "
                                 f"{str(exc).splitlines()[0]}") from exc
    cls_obs = np.array([float(r[0]) for r in results])
    cls_exp = np.array([[float(e) for e in r[1]] for r in results])
    return UpperLimitResult(observed=float(obs), expected=tuple(float(e) for e in exp),
                            level=float(level), scan=np.asarray(points, dtype=np.float64),
                            cls_observed=cls_obs, cls_expected=cls_exp)


@dataclass(frozen=True)
class Impact:
    """Shift of the POI when one nuisance is fixed at θ̂ ± its postfit and prefit σ."""

    name: str
    value: float
    postfit_error: float
    prefit_error: float
    postfit_up: float
    postfit_down: float
    prefit_up: float
    prefit_down: float

    @property
    def size(self) -> float:
        """The ranking key: the larger |Δμ| of the postfit variations."""
        return max(abs(self.postfit_up), abs(self.postfit_down))


def impacts(model: Any, data: Any = None, *, parameters: Sequence[str] | None = None,
            nominal: BinnedFitResult | None = None) -> list[Impact]:
    """Impact ranking: for each constrained nuisance, refit with it fixed at θ̂ ± σ̂
    (postfit) and θ̂ ± σ (prefit) and record Δμ̂; sorted by the postfit |Δμ̂|, largest first.

    Parameters
    ----------
    model, data
        A :class:`BinnedModel` or a pyhf model and data.
    parameters
        Scalar parameter names to rank (default: every scalar constrained parameter; vector
        ones such as ``staterror`` gammas are skipped unless named).
    nominal
        The unconstrained-nuisance fit, when already done.
    """
    pdf, d, nus = _unpack(model, data, None)
    best = nominal or fit(pdf, d, nuisances=nus)
    bounds = {n: b for n, b in zip(_flat_names(pdf), pdf.config.suggested_bounds(), strict=True)}
    constrained = {flat: (centre, width) for flat, _, centre, width in _constrained(pdf)}
    if parameters is None:
        names = [n for n in constrained if "[" not in n]
    else:
        names = list(parameters)
        unknown = [n for n in names if n not in constrained]
        if unknown:
            raise InferenceError(f"impacts: {unknown} are not constrained parameters "
                                 f"({sorted(constrained)})")
    mu0 = best.poi_value
    out = []
    for name in names:
        value, post = best.value(name), best.error(name)
        pre = constrained[name][1]
        lo, hi = bounds[name]
        shifts = []
        for target in (value + post, value - post, value + pre, value - pre):
            refit = fit(pdf, d, init=dict(zip(best.names, best.values, strict=True)),
                        fixed={name: float(np.clip(target, lo, hi))})
            shifts.append(refit.poi_value - mu0)
        out.append(Impact(name=name, value=value, postfit_error=post, prefit_error=pre,
                          postfit_up=shifts[0], postfit_down=shifts[1], prefit_up=shifts[2],
                          prefit_down=shifts[3]))
    return sorted(out, key=lambda i: i.size, reverse=True)


def _split_flat(name: str) -> tuple[str, int | None]:
    if name.endswith("]") and "[" in name:
        base, idx = name[:-1].split("[", 1)
        if idx.isdigit():
            return base, int(idx)
    return name, None
