"""The binned model's inputs: channels, samples, reweighter nuisances and their templates.

A :class:`ReweighterNuisance` is a trained reweighter's parameter θ used as a constrained
nuisance through the standardised

    α = (θ − θ₀) / σ,        θ = θ₀ + σ·α,

so that its constraint is the unit normal that HistFactory uses for every shape nuisance
and α̂ is the pull directly. :func:`build_templates` fills, for every :class:`Channel` and
:class:`Sample`, the plain nominal histogram n_b = Σ w₀ᵢ, the reweighted templates
h_b(θ) = Σ w₀ᵢ·w(xᵢ, θ) (:mod:`ratiofit.inference.templates`) at θ₀ and θ₀ ± σ and, for
the exact mode, their :class:`TemplateMorphing` on a θ grid; :func:`add_learned_ratio`
adds the learned ratio's own ±1σ shifts (:mod:`ratiofit.inference.learned`). The result,
:class:`BinnedTemplates`, is the input of both pyhf modes
(:mod:`ratiofit.inference.pyhf_model`). The template at θ₀ is kept because both modes take
the variations relative to it, never to n_b.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
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
    "BinnedTemplates",
    "Channel",
    "ChannelTemplates",
    "ReweighterNuisance",
    "Sample",
    "SampleTemplates",
    "StandardModifier",
    "add_learned_ratio",
    "build_templates",
]


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
class StandardModifier:
    """A standard HistFactory modifier on a sample (pyhf's JSON schema), beside the
    reweighter nuisances.

    ``kind`` and ``data``:

    ``normsys``
        ``{"lo": f, "hi": f}``: the yield times f at α = ∓1 (exponential interpolation);
    ``lumi``
        ``{"sigma": s}``: the luminosity, one parameter (named ``lumi``) for every sample
        that carries it, constrained to 1 ± s;
    ``normfactor``
        no data: a free scale factor (a normalisation fitted from data);
    ``shapesys``
        ``{"relative": r}``: uncorrelated per-bin uncertainties of r times the nominal
        count (a number, or one per bin), Poisson-constrained (Barlow–Beeston).

    Samples that carry a modifier of the same name share its parameter (correlated).
    """

    kind: Literal["normsys", "lumi", "normfactor", "shapesys"]
    name: str
    data: Mapping[str, Any] = field(default_factory=dict)

    def to_pyhf(self, nominal: np.ndarray) -> dict[str, Any]:
        """The pyhf modifier dict for a sample of ``nominal`` counts."""
        if self.kind == "normsys":
            return {"name": self.name, "type": "normsys",
                    "data": {"lo": float(self.data["lo"]), "hi": float(self.data["hi"])}}
        if self.kind in ("lumi", "normfactor"):
            return {"name": self.name, "type": self.kind, "data": None}
        if self.kind == "shapesys":
            rel = np.broadcast_to(np.asarray(self.data["relative"], dtype=np.float64),
                                  nominal.shape)
            return {"name": self.name, "type": "shapesys", "data": (rel * nominal).tolist()}
        raise InferenceError(f"unknown modifier kind '{self.kind}'")


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
    modifiers
        Standard HistFactory modifiers (:class:`StandardModifier`).
    """

    name: str
    events: EventSet
    weights: Any = None
    signal: bool = False
    nuisances: tuple[str, ...] = ()
    staterror: bool = True
    modifiers: tuple[StandardModifier, ...] = ()


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
    #: standard HistFactory modifiers, as pyhf dicts (:class:`StandardModifier`)
    standard: list[dict[str, Any]] = field(default_factory=list)
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
    #: the luminosity's relative uncertainty, where a sample carries a ``lumi`` modifier
    lumi_sigma: float | None = None
    #: the auxiliary measurements of the constrained standard modifiers (lumi, normsys)
    #: that declare one (``measured``; default: lumi 1, normsys 0)
    measured: dict[str, float] = field(default_factory=dict)

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
    lumi_sigma: float | None = None
    measured: dict[str, float] = {}
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
                                 nominal=nominal,
                                 standard=[m.to_pyhf(nominal.values) for m in s.modifiers])
            for m in s.modifiers:
                if m.kind == "lumi":
                    sigma = float(m.data["sigma"])
                    if lumi_sigma is not None and lumi_sigma != sigma:
                        raise InferenceError(f"the lumi modifiers disagree on sigma "
                                             f"({lumi_sigma} and {sigma})")
                    lumi_sigma = sigma
                if m.kind in ("lumi", "normsys") and m.data.get("measured") is not None:
                    value = float(m.data["measured"])
                    if measured.setdefault(m.name, value) != value:
                        raise InferenceError(f"the '{m.name}' modifiers disagree on measured "
                                             f"({measured[m.name]} and {value})")
                if m.name in by_name:
                    raise InferenceError(f"channel '{ch.name}', sample '{s.name}': modifier "
                                         f"'{m.name}' is also a reweighter nuisance's name")
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
    return BinnedTemplates(channels=out, nuisances=by_name, lumi_sigma=lumi_sigma,
                           measured=measured)


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
