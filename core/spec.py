"""YAML spec → validated, typed :class:`Spec`.

The YAML is read with ``yaml.SafeLoader`` only. Every problem is reported as one line,
``FILE:LINE: path.to.field: message``, through :class:`~ratiofit.errors.SpecError`.
Plugin options are checked against the options the plugin declares, so the plugin's
declaration is both its validation and its documentation.

Top-level sections
------------------
``seed``
    Integer; every random stream of the run is derived from it.
``parameters``
    ``name: {nominal, range: [low, high], scale}``.
``samples``
    ``name: {source, n_events, theta: {param: nominal | <number> | uniform | {uniform: [lo, hi]}
    | {column: NAME}}, options}``; parameters not listed are at their nominal value.
    A sample of a source that reads files (``root``, ``parquet``) reads its events:
    ``n_events`` is optional there (absent: every row that passes the source's
    ``selection``; more than the files hold is an error), θ is fixed for the whole file
    or read per event from a column (``theta: {mu: {column: mu_gen}}``; values outside
    the parameter's range are refused), never drawn at random (``uniform`` is refused),
    and the source's path options (``files``, ``path``) are relative to the spec file's
    directory (the resolved spec a run writes holds them absolute). ``fraction: f``
    (0 < f <= 1, without ``n_events``) keeps the first fraction f of those rows; it is
    what ``--scale f`` sets, and a file sample without ``n_events`` cannot be scaled
    up. For example::

        varied: {source: root, theta: {mu: {column: mu_gen}},
                 options: {files: data/varied_*.root, tree: events, weight: w,
                           particles: {pt: part_pt, eta: part_eta}, selection: "x > -5"}}
``reweighter``
    ``{architecture: name | {name, options}, loss, reference, target, labels: sample |
    exact | both, inputs: {features: all | none | [names], particles: none | [fields]},
    training: {...}, calibration: none | normalisation | moments | {method, points, degree,
    events, moments, moment_degree}}``
    (``moments``: the reweighted reference also reproduces the target's feature moments
    up to power ``moments`` as functions of θ, see :mod:`ratiofit.reweighter`). The
    reweighter is parameterised in the parameters that vary per event in its ``target``
    sample; ``inputs`` picks what the network sees (default: all flat features, no
    particles). ``labels`` says what it is trained against: ``sample`` (default) the
    target sample; ``exact`` the reference's exact per-event weights (a source's
    alternative weights, e.g. the pythia source's ``variations``), every reference event
    at every grid point with the soft label w/(1 + w) and weight 1 + w, whose optimum is
    log E[w|x, θ] = log p(x|θ)/p(x|θ₀) (:mod:`ratiofit.exact_labels`; the target then only
    declares the parameters); ``both`` the two together. The reference must then be at one
    θ and its weights' grid must move every parameter the reweighter is parameterised in
    (``exact``) or at least one (``both``: the classification alone teaches the others).
``fit``
    ``{strategy: name | {name, options}, data, reference, parameters: [...], start: {...}}``.
``inference``
    A trained reweighter as a constrained nuisance in a pyhf or unbinned fit. One channel's
    ``observable``, ``bins``, ``data`` and ``samples`` sit in the section itself, or several
    channels under ``channels: {NAME: {observable, bins, data, samples}}`` (samples that
    share a modifier's or nuisance's name share its parameter across channels):
    ``{backend: pyhf | unbinned, mode: exact | portable, observable: <feature>, bins: [edges] |
    {n, range: [lo, hi]}, flow: error | fold | exclude, poi, data: <sample> | [<sample>,
    ...], samples: {name: {sample, yield, signal: bool, nuisances: [...], modifiers:
    [...]}}, nuisances:
    {name: {reweighter: this | <run dir or reweighter dir>, parameter, nominal, sigma,
    measured}}, staterror: bool, hypotest: {poi_value, calctype, ntoys}, upper_limit: bool,
    impacts: bool}``. ``this`` is the reweighter the spec trains; a path names a saved
    one. Several ``data`` samples are added bin by bin (e.g. a signal injected into
    background-only data). ``measured`` is the auxiliary measurement of θ that the
    constraint is centred on (default ``nominal``, where the templates stay anchored).
    The learned ratio's own error enters as constrained modifiers built from
    ``uncertainty.replicas`` bootstrap replicas (:mod:`ratiofit.inference.learned`).
    A sample's ``modifiers`` are standard HistFactory ones beside the learned nuisances:
    ``{normsys: {name, lo, hi}}``, ``{lumi: {sigma}}``, ``{normfactor: NAME}``,
    ``{shapesys: {name, relative: r | [r per bin]}}``; samples sharing a name share the
    parameter (:class:`ratiofit.inference.StandardModifier`). A normsys or lumi may give
    its constraint's auxiliary measurement, ``measured`` (default 0, in units of its σ,
    and 1; every declaration of the name gives the same); a coverage repeat draws it
    around the nominal.
    ``poi`` is a name or a list of names: the first is tested and limited, the others
    are fitted as free normalisation factors; a sample's ``signal`` is ``true`` (the
    first POI) or a POI's name. ``hypotest: none`` skips the hypothesis test.
    ``backend: unbinned`` fits the same channels with the extended unbinned likelihood
    (:mod:`ratiofit.unbinned_stage`): ``observable`` and ``bins`` are optional there,
    one sample per channel lists the nuisances (its density is the reweighter's), the
    others' densities relative to it come from a saved θ-free reweighter
    (``ratio: DIR``) or one trained with the reweighter's architecture and loss; no shapesys, CLs
    asymptotic or toy-based; ``ratio_training`` (the reweighter's ``training`` options, see
    below) sets how those ratios are trained and ``scan: false`` skips the POI's
    profile-likelihood scan. ``workspace: FILE`` or ``{file, measurement}`` starts from an
    analysis's pyhf workspace: ``channels`` name its channels and, under ``samples``,
    the workspace samples that get learned nuisances (``{sample: <events>, nuisances}``,
    binned with ``bins`` matching the workspace's); its data, yields, modifiers and POI
    are kept (:mod:`ratiofit.inference.workspace_merge`). ``ratiofit run --backend
    unbinned`` / ``--mode portable`` fit a spec's section with another backend or mode.
``ensemble``
    Number of independent trainings + fits with different seeds (default 1), or
    ``{members: N, training_samples: shared | independent, average_fit: bool}``: with
    ``independent`` every member also regenerates its reference and target samples from
    its own seed, so the spread of the members' fits includes the statistical noise of
    the training samples (the part of a learned ratio's error that more epochs cannot
    remove). ``average_fit: true`` also fits once with the members' mean log-ratio
    (:class:`~ratiofit.reweighter.AveragedReweighter`), whose training noise is about
    1/N of one member's.
``uncertainty``
    The learned ratio's own error in every fit (:mod:`ratiofit.uncertainty`):
    ``{replicas: int, correction: simulation | none, correction_events: int, gate: bool,
    gate_events: int, gate_level: float}``. ``replicas``
    reweighters (default 3; 0 turns it off) are retrained on Poisson(1)-weighted bootstrap
    replicas of the training samples with their own seeds and refitted to the same data;
    their spread is the ``reweighter`` component of every fitted parameter's error.
    ``correction: simulation`` (the default; used where the source can generate events at
    a given θ and the data have the reweighter's features) simulates ``gate_events`` at
    the fitted θ and takes one Newton step of the simulation's estimating equation in the
    learned score (:mod:`ratiofit.correction`), which removes the learned ratio's bias;
    in an inference it refits data simulated at the fitted point, ``correction_events``
    (default 10) events per expected event (the correction's noise is 1/K of the data's
    variance, and part of every reported error).
    ``gate`` (default on) tests the reweighting at the fitted θ (:mod:`ratiofit.closure_gate`)
    with ``gate_events`` events per side (default: 4x the data sample's size, at most 10^6)
    at significance ``gate_level`` (default 0.01).
``outputs``
    ``{plots: bool, closure: {param: [values]}, closure_events: int}``.
``studies``
    ``{label: {study: name, options: {...}}}``: method-specific analysis steps (plugin
    kind ``study``) run after training, fit and inference, each writing
    ``studies/<label>/`` and ``result.json["studies"][label]``.

Examples
--------
>>> text = '''
... seed: 1
... parameters: {mu: {nominal: 0.0, range: [-2, 2]}}
... samples:
...   nominal: {source: gaussian, n_events: 1000, options: {mean: mu}}
... '''
>>> spec = load_spec_text(text, path="inline.yaml")
>>> spec.samples["nominal"].theta["mu"].kind
'fixed'
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ._spec_yaml import Path_, _Ctx, _dotted, _Located, _unknown_param, _unknown_sample
from .errors import PluginError, RatiofitError, SpecError
from .options import OptionError, resolve_options, resolve_paths
from .parameters import Parameter, ParameterSet
from .plugin_api import THETA_COLUMNS
from .registry import Registry, get_registry
from .spec_inference import (
    InferenceSampleSpec,
    InferenceSpec,
    NuisanceSpec,
    _inference,
)
from .spec_sections import (
    CalibrationSpec,
    EnsembleSpec,
    OutputsSpec,
    RatioTrainingSpec,
    TrainingSpec,
    UncertaintySpec,
    _declared_section,
)

__all__ = [
    "CalibrationSpec",
    "EnsembleSpec",
    "FitSpec",
    "InferenceSampleSpec",
    "InferenceSpec",
    "NuisanceSpec",
    "OutputsSpec",
    "RatioTrainingSpec",
    "ReweighterSpec",
    "SampleSpec",
    "Spec",
    "StudySpec",
    "ThetaSpec",
    "TrainingSpec",
    "UncertaintySpec",
    "load_spec",
    "load_spec_text",
    "resolved_dict",
    "scale_spec",
    "with_inference",
]



@dataclass(frozen=True)
class ThetaSpec:
    """How a sample sets one parameter: ``fixed`` at ``value``, ``uniform`` in [low, high],
    or ``column``: read per event from the files' column ``column`` (a source that reads
    files), within the parameter's range [low, high]."""

    kind: str
    value: float | None = None
    low: float | None = None
    high: float | None = None
    column: str | None = None


@dataclass(frozen=True)
class SampleSpec:
    """One sample. ``n_events`` is ``None`` for a file sample that reads every row, of
    which it keeps the first ``fraction`` (``--scale`` below 1)."""

    name: str
    source: str
    n_events: int | None
    theta: dict[str, ThetaSpec]
    options: dict[str, Any]
    fraction: float = 1.0

    @property
    def varied(self) -> list[str]:
        """The parameters that vary per event: drawn (``uniform``) or read (``column``)."""
        return [n for n, t in self.theta.items() if t.kind in ("uniform", "column")]


@dataclass(frozen=True)
class ReweighterSpec:
    architecture: str
    architecture_options: dict[str, Any]
    loss: str
    reference: str
    target: str
    parameters: tuple[str, ...]
    training: TrainingSpec
    calibration: CalibrationSpec | None
    #: Flat features the network sees (``None``: all of the sample's features).
    features: tuple[str, ...] | None = None
    #: Per-particle fields the network sees (empty: no particle input).
    particles: tuple[str, ...] = ()
    #: What it is trained against: ``sample`` (the target), ``exact`` (the reference's
    #: exact per-event weights, :mod:`ratiofit.exact_labels`) or ``both``.
    labels: str = "sample"


@dataclass(frozen=True)
class FitSpec:
    strategy: str
    options: dict[str, Any]
    data: str
    reference: str | None
    parameters: tuple[str, ...]
    start: dict[str, float]


@dataclass(frozen=True)
class StudySpec:
    """One entry of ``studies``: the study plugin and its validated options."""

    label: str
    study: str
    options: dict[str, Any]


@dataclass(frozen=True)
class Spec:
    """A validated spec. ``raw`` is the parsed YAML (for the copy written next to results)."""

    path: str
    seed: int
    parameters: ParameterSet
    samples: dict[str, SampleSpec]
    reweighter: ReweighterSpec | None
    fit: FitSpec | None
    ensemble: int
    outputs: OutputsSpec
    raw: dict[str, Any]
    #: Ensemble members regenerate their training samples (``training_samples: independent``).
    ensemble_independent_samples: bool = False
    #: Also fit with the members' averaged log-ratio (``ensemble.average_fit``).
    ensemble_average_fit: bool = False
    inference: InferenceSpec | None = None
    studies: tuple[StudySpec, ...] = ()
    uncertainty: UncertaintySpec = field(default_factory=UncertaintySpec)


_TOP = ["seed", "parameters", "samples", "reweighter", "fit", "ensemble", "outputs",
        "inference", "studies", "description", "uncertainty"]


def load_spec(path: str | Path, *, registry: Registry | None = None) -> Spec:
    """Read and validate a spec file."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise SpecError(f"cannot read spec: {exc.strerror}", file=str(p), line=None) from None
    except UnicodeDecodeError:
        raise SpecError("cannot read spec: not UTF-8 text", file=str(p), line=None) from None
    return load_spec_text(text, path=str(p), registry=registry)


def load_spec_text(text: str, *, path: str = "<spec>", registry: Registry | None = None,
                   base_dir: str | Path | None = None) -> Spec:
    """Validate spec text; ``path`` names it in messages, and relative file paths in
    plugin options are taken from ``base_dir`` (default: the directory of ``path``, the
    current directory for ``<spec>``)."""
    doc = _Located(text, path)
    if base_dir is None:
        base_dir = Path(path).parent if path and not path.startswith("<") else Path(".")
    ctx = _Ctx(doc, base_dir=str(Path(base_dir).expanduser().absolute()))
    reg = registry or get_registry()
    top = ctx.mapping(doc.value, ())
    ctx.no_unknown(top, (), _TOP)

    seed = ctx.get(top, (), "seed", int, default=0)
    if not 0 <= seed < 2**63:
        raise ctx.error(("seed",), f"must be an integer in [0, 2^63), got {seed}")
    parameters = _parameters(ctx, ctx.mapping(top.get("parameters"), ("parameters",)))
    samples = {
        name: _sample(ctx, reg, parameters, name, ctx.mapping(s, ("samples", name)))
        for name, s in ctx.mapping(top.get("samples"), ("samples",)).items()
    }
    oversized = _oversized_sample(samples, len(parameters), reg)
    if oversized is not None:
        raise ctx.error(("samples", oversized[0], "n_events"), oversized[1])
    if not samples:
        raise ctx.error(("samples",), "at least one sample is required")
    reweighter = None
    if top.get("reweighter") is not None:
        reweighter = _reweighter(ctx, reg, samples, ctx.mapping(top["reweighter"], ("reweighter",)),
                                 parameters=parameters)
    fit = None
    if top.get("fit") is not None:
        fit = _fit(ctx, reg, parameters, samples, reweighter,
                   ctx.mapping(top["fit"], ("fit",)))
    if isinstance(top.get("ensemble"), dict):
        ens: EnsembleSpec = _declared_section(ctx, top["ensemble"], ("ensemble",),
                                              EnsembleSpec)
    else:  # a bare integer is the number of members
        members = ctx.get(top, (), "ensemble", int, default=1)
        if members < 1:
            raise ctx.error(("ensemble",), f"must be >= 1, got {members}")
        ens = EnsembleSpec(members=members)
    ensemble, average_fit = ens.members, ens.average_fit
    independent = ens.training_samples == "independent"
    if average_fit and (ensemble < 2 or fit is None):
        raise ctx.error(("ensemble", "average_fit"),
                        "needs at least 2 members and a 'fit' section")
    if independent and reweighter is not None:
        for role in ("reference", "target"):
            s = samples[getattr(reweighter, role)]
            if _reads_files(reg, s):
                raise ctx.error(("ensemble", "training_samples"),
                                f"independent samples are generated afresh per member, and "
                                f"the {role} sample '{s.name}' reads files (use 'shared')")
    outputs = _outputs(ctx, parameters, reweighter, ctx.mapping(top.get("outputs"), ("outputs",)))
    if outputs.closure and reweighter is not None and \
            _reads_files(reg, samples[reweighter.target]):
        raise ctx.error(("outputs", "closure"), f"closure points generate the target at "
                        f"given theta values, and the target sample '{reweighter.target}' "
                        "reads files")
    uncertainty = _uncertainty(ctx, ctx.mapping(top.get("uncertainty"), ("uncertainty",)))
    inference = None
    if top.get("inference") is not None:
        inference = _inference(ctx, reg, samples, reweighter, path,
                               ctx.mapping(top["inference"], ("inference",)))
    studies = tuple(_study(ctx, reg, parameters, samples, label, ctx.mapping(body, (
        "studies", label))) for label, body in ctx.mapping(top.get("studies"),
                                                           ("studies",)).items())
    return Spec(path=path, seed=seed, parameters=parameters, samples=samples,
                reweighter=reweighter, fit=fit, ensemble=ensemble, outputs=outputs, raw=top,
                ensemble_independent_samples=independent, ensemble_average_fit=average_fit,
                inference=inference, studies=studies, uncertainty=uncertainty)


def _reads_files(reg: Registry, sample: SampleSpec) -> bool:
    """Whether the sample's source reads files rather than generating events."""
    return bool(getattr(reg.get("source", sample.source), "reads_files", False))


def _uncertainty(ctx: _Ctx, body: dict[str, Any]) -> UncertaintySpec:
    path: Path_ = ("uncertainty",)
    unc: UncertaintySpec = _declared_section(ctx, body, path, UncertaintySpec)
    if unc.replicas == 1:
        raise ctx.error((*path, "replicas"), "must be 0 (off) or >= 2 (a spread needs two), "
                        "got 1")
    return unc


def _study(ctx: _Ctx, reg: Registry, params: ParameterSet, samples: Mapping[str, SampleSpec],
           label: str, body: dict[str, Any]) -> StudySpec:
    path: Path_ = ("studies", label)
    if not str(label).isidentifier():
        raise ctx.error(path, f"study labels must be identifiers, got {label!r}")
    ctx.no_unknown(body, path, ["study", "options"])
    name = ctx.get(body, path, "study", str)
    try:
        impl = reg.get("study", name)
    except PluginError as exc:
        raise ctx.error((*path, "study"), str(exc)) from None
    given = ctx.mapping(body.get("options"), (*path, "options"))
    options = _options(ctx, impl, given, (*path, "options"))
    check = getattr(impl, "check", None)
    if check is not None:  # references to samples and parameters, before anything runs
        try:
            check(options=options, samples=samples, parameters=params)
        except ValueError as exc:
            field = getattr(exc, "field", None)
            where = (*path, "options", field) if field in given else (*path, "options")
            raise ctx.error(where, f"{exc} (plugin '{impl.name}')") from None
    return StudySpec(label=str(label), study=name, options=options)


def _parameters(ctx: _Ctx, section: dict[str, Any]) -> ParameterSet:
    out = []
    for name, body in section.items():
        path: Path_ = ("parameters", name)
        body = ctx.mapping(body, path)
        ctx.no_unknown(body, path, ["nominal", "range", "scale"])
        nominal = ctx.get(body, path, "nominal", float, what="a number")
        rng = ctx.get(body, path, "range", list, what="[low, high]")
        if len(rng) != 2 or not all(isinstance(v, int | float) and not isinstance(v, bool)
                                    for v in rng):
            raise ctx.error((*path, "range"), f"expected [low, high] numbers, got {rng!r}")
        low, high = float(rng[0]), float(rng[1])
        if not (math.isfinite(low) and math.isfinite(high)):
            raise ctx.error((*path, "range"), f"range must be finite, got {rng!r}")
        if not low < high:
            raise ctx.error((*path, "range"), f"low must be below high, got {rng!r}")
        if not low <= nominal <= high:
            raise ctx.error((*path, "nominal"), f"nominal {nominal} outside range [{low}, {high}]")
        scale = ctx.get(body, path, "scale", float, default=None, what="a number")
        if scale is not None and scale <= 0:
            raise ctx.error((*path, "scale"), f"must be positive, got {scale}")
        out.append(Parameter(name=name, nominal=nominal, low=low, high=high, scale=scale))
    return ParameterSet(out)


def _plugin_ref(ctx: _Ctx, reg: Registry, kind: str, value: Any, path: Path_
                ) -> tuple[str, dict[str, Any], Any]:
    """``name`` or ``{name, options}`` → (name, raw options, implementation)."""
    if isinstance(value, str):
        name, opts = value, {}
    elif isinstance(value, dict):
        ctx.no_unknown(value, path, ["name", "options"])
        name = ctx.get(value, path, "name", str)
        opts = ctx.mapping(value.get("options"), (*path, "options"))
    else:
        raise ctx.error(path, f"expected a {kind} name or {{name, options}}, got {value!r}")
    npath = path if isinstance(value, str) else (*path, "name")
    try:
        impl = reg.get(kind, name)
    except PluginError as exc:
        raise ctx.error(npath, str(exc)) from None
    return name, opts, impl


def _options(ctx: _Ctx, impl: Any, given: dict[str, Any], path: Path_) -> dict[str, Any]:
    """Validated options with defaults; ``path`` options made absolute (spec's directory)."""
    declared = getattr(impl, "options", {})
    try:
        options = resolve_options(declared, given, where=_dotted(path))
    except OptionError as exc:
        fpath = (*path, exc.field) if exc.field in given else path
        raise ctx.error(fpath, f"{exc.message} (plugin '{impl.name}')") from None
    return resolve_paths(declared, options, ctx.base_dir)


def _sample(ctx: _Ctx, reg: Registry, params: ParameterSet, name: str, body: dict[str, Any]
            ) -> SampleSpec:
    path: Path_ = ("samples", name)
    ctx.no_unknown(body, path, ["source", "n_events", "fraction", "theta", "options"])
    src_name, _, impl = _plugin_ref(ctx, reg, "source", ctx.get(body, path, "source", str),
                                    (*path, "source"))
    reads_files = bool(getattr(impl, "reads_files", False))
    # a file sample reads every row unless n_events says how many
    n_events = ctx.get(body, path, "n_events", int, default=None if reads_files else ...)
    if n_events is not None and n_events < 1:
        raise ctx.error((*path, "n_events"), f"must be >= 1, got {n_events}")
    fraction = ctx.get(body, path, "fraction", float, default=1.0, what="a number")
    if "fraction" in body:
        if not reads_files or n_events is not None:
            raise ctx.error((*path, "fraction"), "only for a sample that reads files, without "
                            "n_events (the first fraction of its rows)")
        if not 0 < fraction <= 1:
            raise ctx.error((*path, "fraction"), f"must be in (0, 1], got {fraction}")
    theta: dict[str, ThetaSpec] = {}
    tbody = ctx.mapping(body.get("theta"), (*path, "theta"))
    for pname, tval in tbody.items():
        tpath = (*path, "theta", pname)
        if pname not in params:
            raise ctx.error(tpath, _unknown_param(pname, params))
        theta[pname] = _theta(ctx, params[pname], tval, tpath)
        if reads_files and theta[pname].kind == "uniform":
            raise ctx.error(tpath, f"sample '{name}' reads files (source '{src_name}'): theta "
                            f"'{pname}' cannot be drawn at random for its events; give the "
                            f"column that holds it per event ({{column: NAME}}) or a fixed "
                            "value")
        if not reads_files and theta[pname].kind == "column":
            raise ctx.error(tpath, f"theta from a column needs a source that reads files; "
                            f"source '{src_name}' generates its events (use a value, "
                            "'uniform' or {uniform: [low, high]})")
    for p in params:
        theta.setdefault(p.name, ThetaSpec(kind="fixed", value=p.nominal))
    options = _options(ctx, impl, ctx.mapping(body.get("options"), (*path, "options")),
                       (*path, "options"))
    columns = {n: {"column": t.column, "range": [t.low, t.high]}
               for n, t in theta.items() if t.kind == "column"}
    if columns:  # the reserved key: which θ columns the source reads (plugin_api.Source)
        options[THETA_COLUMNS] = columns
    # String values in number-or-name options are parameter references: check them.
    for oname, opt in getattr(impl, "options", {}).items():
        if opt.kind not in ("number_or_name", "number_or_name_list"):
            continue
        vals = options[oname] if isinstance(options[oname], list) else [options[oname]]
        for v in vals:
            if isinstance(v, str) and v not in params:
                raise ctx.error((*path, "options", oname), _unknown_param(v, params))
    check = getattr(impl, "check", None)
    if check is not None:  # the generator's own limits, before anything is generated
        used = {n: (t.value, t.value) if t.kind == "fixed" else (t.low, t.high)
                for n, t in theta.items()}
        try:
            check(options=options, theta=used)
        except ValueError as exc:
            field = getattr(exc, "field", None)
            given = ctx.mapping(body.get("options"), (*path, "options"))
            where = (*path, "options", field) if field in given else (*path, "options")
            if isinstance(field, str) and field.startswith("theta.") and \
                    field[len("theta."):] in tbody:  # a θ column the source cannot read
                where = (*path, "theta", field[len("theta."):])
            raise ctx.error(where, f"{exc} (plugin '{impl.name}')") from None
    return SampleSpec(name=name, source=src_name, n_events=n_events, theta=theta,
                      options=options, fraction=fraction)


def _theta(ctx: _Ctx, p: Parameter, value: Any, path: Path_) -> ThetaSpec:
    def in_range(v: float, where: Path_) -> float:
        if not p.low <= v <= p.high:
            raise ctx.error(where, f"{v} is outside the range of '{p.name}' [{p.low}, {p.high}]")
        return v

    if value == "nominal":
        return ThetaSpec(kind="fixed", value=p.nominal)
    if value == "uniform":
        return ThetaSpec(kind="uniform", low=p.low, high=p.high)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return ThetaSpec(kind="fixed", value=in_range(float(value), path))
    if isinstance(value, dict) and set(value) == {"uniform"}:
        lohi = value["uniform"]
        upath = (*path, "uniform")
        if not (isinstance(lohi, list) and len(lohi) == 2
                and all(isinstance(v, int | float) and not isinstance(v, bool) for v in lohi)):
            raise ctx.error(upath, f"expected [low, high], got {lohi!r}")
        lo, hi = in_range(float(lohi[0]), upath), in_range(float(lohi[1]), upath)
        if not lo < hi:
            raise ctx.error(upath, f"low must be below high, got {lohi!r}")
        return ThetaSpec(kind="uniform", low=lo, high=hi)
    if isinstance(value, dict) and set(value) == {"column"}:
        column = value["column"]
        if not isinstance(column, str) or not column:
            raise ctx.error((*path, "column"), f"expected a column name, got {column!r}")
        return ThetaSpec(kind="column", column=column, low=p.low, high=p.high)
    raise ctx.error(path, "expected 'nominal', a number, 'uniform', {uniform: [low, high]} or "
                    f"{{column: NAME}}, got {value!r}")


def _reweighter(ctx: _Ctx, reg: Registry, samples: Mapping[str, SampleSpec],
                body: dict[str, Any], *, parameters: ParameterSet) -> ReweighterSpec:
    path: Path_ = ("reweighter",)
    ctx.no_unknown(body, path, ["architecture", "loss", "reference", "target", "labels",
                                "inputs", "training", "calibration"])
    arch, arch_opts, arch_impl = _plugin_ref(
        ctx, reg, "architecture", body.get("architecture", "mlp"), (*path, "architecture"))
    arch_opts = _options(ctx, arch_impl, arch_opts, (*path, "architecture", "options"))
    loss, _, _ = _plugin_ref(ctx, reg, "loss", ctx.get(body, path, "loss", str, default="bce"),
                             (*path, "loss"))
    refs = {}
    for role in ("reference", "target"):
        s = ctx.get(body, path, role, str)
        if s not in samples:
            raise ctx.error((*path, role), _unknown_sample(s, samples))
        refs[role] = s
    if refs["reference"] == refs["target"]:
        raise ctx.error((*path, "target"), "reference and target must be different samples")
    varied = samples[refs["target"]].varied
    training = _training(ctx, ctx.mapping(body.get("training"), (*path, "training")))
    calibration = _calibration(ctx, body.get("calibration", "normalisation"),
                               (*path, "calibration"), parameterised=bool(varied))
    features, particles = _inputs(ctx, reg, samples[refs["target"]],
                                  ctx.mapping(body.get("inputs"), (*path, "inputs")))
    if calibration is not None and calibration.method == "moments" and features == ():
        raise ctx.error((*path, "calibration"), "a moment calibration matches flat-feature "
                        "moments, and inputs.features is none")
    labels = ctx.get(body, path, "labels", str, default="sample")
    if labels != "sample":
        _check_exact_labels(ctx, reg, parameters, reference=samples[refs["reference"]],
                            target=samples[refs["target"]], labels=labels,
                            training=training, body=body)
    return ReweighterSpec(architecture=arch, architecture_options=arch_opts, loss=loss,
                          reference=refs["reference"], target=refs["target"],
                          parameters=tuple(varied), training=training, calibration=calibration,
                          features=features, particles=particles, labels=labels)


def _check_exact_labels(ctx: _Ctx, reg: Registry, params: ParameterSet, *,
                        reference: SampleSpec, target: SampleSpec, labels: str,
                        training: TrainingSpec, body: dict[str, Any]) -> None:
    """``reweighter.labels: exact | both`` (:mod:`ratiofit.exact_labels`): the reference
    must be at one θ and declare exact per-event weights (its source's ``alt_weight_theta``)
    whose usable grid points move every parameter the reweighter is parameterised in
    (``exact``) or at least one (``both``)."""
    from .exact_labels import LABELS, check_grid, describe_points

    path: Path_ = ("reweighter", "labels")
    if labels not in LABELS:
        raise ctx.error(path, f"expected one of {', '.join(LABELS)}, got {labels!r}")
    names = target.varied
    if not names:
        raise ctx.error(path, f"labels '{labels}' train a parameterised reweighter, and the "
                        f"target sample '{target.name}' varies no parameter")
    moving = [n for n in names if reference.theta[n].kind != "fixed"]
    if moving:
        raise ctx.error(path, f"the exact weights are ratios to the reference's θ, and the "
                        f"reference sample '{reference.name}' varies {', '.join(moving)}: "
                        "give it one θ")
    if training.resample_reference_theta:
        where = ("reweighter", "training", "resample_reference_theta") \
            if "resample_reference_theta" in ctx.mapping(body.get("training"),
                                                         ("reweighter", "training")) else path
        raise ctx.error(where, f"draws θ for the reference events, and labels '{labels}' pair "
                        "them with the exact weights' grid points: turn one of them off")
    source = reg.get("source", reference.source)
    declared = getattr(source, "alt_weight_theta", None)
    if declared is None:
        raise ctx.error(path, f"labels '{labels}' need exact per-event weights on the reference "
                        f"sample '{reference.name}', and its source '{reference.source}' "
                        "records none (a source that can declares them with alt_weight_theta, "
                        "e.g. the pythia source's 'variations')")
    points = declared(reference.options)
    if points is None:  # the source cannot tell before generating: checked on the events
        return
    if not points:
        raise ctx.error(path, f"labels '{labels}' need exact per-event weights on the reference "
                        f"sample '{reference.name}', and it declares none (set them in its "
                        f"options, e.g. the pythia source's 'variations')")
    theta0: dict[str, float] = {}
    for n in names:
        value = reference.theta[n].value
        assert value is not None  # fixed (checked above)
        theta0[n] = float(value)
    check = check_grid(points, params.subset(names), theta0)
    # with 'both' the classification learns what the weights do not move (exact_labels)
    if check.uncovered if labels == "exact" else len(check.uncovered) == len(names):
        usable = [points[k] for k in check.usable]
        raise ctx.error(path, f"the reweighter is parameterised in {', '.join(names)}, and no "
                        f"usable exact-weight grid point of the reference sample "
                        f"'{reference.name}' moves {', '.join(check.uncovered)} (usable: "
                        f"{describe_points(usable)}; declared: {describe_points(points)})")


def _inputs(ctx: _Ctx, reg: Registry, target: SampleSpec, body: dict[str, Any]
            ) -> tuple[tuple[str, ...] | None, tuple[str, ...]]:
    """``inputs: {features, particles}`` checked against what the target's source declares."""
    path: Path_ = ("reweighter", "inputs")
    ctx.no_unknown(body, path, ["features", "particles"])
    source = reg.get("source", target.source)
    out: list[tuple[str, ...] | None] = []
    for key, default, known_fn in (("features", "all", "feature_names"),
                                   ("particles", "none", "particle_fields")):
        value = body.get(key, default)
        where = (*path, key)
        if value == "all" and key == "features":
            out.append(None)
            continue
        if value == "none":
            out.append(())
            continue
        if not (isinstance(value, list) and value and all(isinstance(v, str) for v in value)):
            allowed = "'all', 'none'" if key == "features" else "'none'"
            raise ctx.error(where, f"expected {allowed} or a list of names, got {value!r}")
        if len(set(value)) != len(value):
            raise ctx.error(where, f"repeated names in {value!r}")
        known_of = getattr(source, known_fn, None)
        known: list[str] = []
        if known_of is not None:
            try:
                known = list(known_of(target.options))
            except (ValueError, KeyError, TypeError):
                known_of = None  # the source cannot tell without generating; checked later
        if known_of is not None:
            for v in value:
                if v not in known:
                    close = difflib.get_close_matches(v, known, n=1)
                    hint = f"; did you mean '{close[0]}'?" if close else ""
                    raise ctx.error(where, f"source '{target.source}' of sample "
                                    f"'{target.name}' has no {key[:-1]} '{v}'{hint} "
                                    f"(has: {', '.join(known) or 'none'})")
        out.append(tuple(value))
    features, particles = out
    if features == () and not particles:
        raise ctx.error(path, "the network needs some input: features and particles are both "
                        "'none'")
    return features, particles or ()


def _training(ctx: _Ctx, body: dict[str, Any]) -> TrainingSpec:
    training: TrainingSpec = _declared_section(ctx, body, ("reweighter", "training"),
                                               TrainingSpec)
    return training


def _calibration(ctx: _Ctx, value: Any, path: Path_, *, parameterised: bool
                 ) -> CalibrationSpec | None:
    if value is None or value is False or value == "none":  # not `in`: 0 == False
        return None
    if value == "normalisation":
        return CalibrationSpec() if parameterised else CalibrationSpec(points=1, degree=0)
    if value == "moments":
        if not parameterised:
            raise ctx.error(path, "a moment calibration needs a parameterised reweighter")
        return CalibrationSpec(method="moments")
    if isinstance(value, str):
        raise ctx.error(path, f"expected none, normalisation, moments or a mapping, got "
                        f"{value!r}")
    if not isinstance(value, dict):
        raise ctx.error(path, f"expected none, normalisation, moments or a mapping, got "
                        f"{value!r}")
    cal: CalibrationSpec = _declared_section(ctx, value, path, CalibrationSpec)
    if cal.method == "moments" and not parameterised:
        raise ctx.error((*path, "method"), "a moment calibration needs a parameterised "
                        "reweighter")
    if not cal.degree < cal.points:
        raise ctx.error((*path, "degree"), "must be >= 0 and below 'points'")
    return cal


def _fit(ctx: _Ctx, reg: Registry, params: ParameterSet, samples: Mapping[str, SampleSpec],
         rw: ReweighterSpec | None, body: dict[str, Any]) -> FitSpec:
    path: Path_ = ("fit",)
    ctx.no_unknown(body, path, ["strategy", "data", "reference", "parameters", "start"])
    strategy_value = ctx.get(body, path, "strategy", (str, dict))
    name, opts, impl = _plugin_ref(ctx, reg, "strategy", strategy_value, (*path, "strategy"))
    spath = (*path, "strategy") if isinstance(body["strategy"], str) else \
        (*path, "strategy", "options")
    options = _options(ctx, impl, opts, spath)
    check = getattr(impl, "check", None)
    if check is not None:  # the strategy's own cross-checks, before anything trains
        try:
            check(options=options, samples=samples, parameters=params)
        except ValueError as exc:
            field = getattr(exc, "field", None)
            where = (*spath, field) if field in opts else spath
            raise ctx.error(where, f"{exc} (plugin '{impl.name}')") from None
    data = ctx.get(body, path, "data", str)
    if data not in samples:
        raise ctx.error((*path, "data"), _unknown_sample(data, samples))
    reference = ctx.get(body, path, "reference", str, default=rw.reference if rw else None)
    if reference is not None and reference not in samples:
        raise ctx.error((*path, "reference"), _unknown_sample(reference, samples))
    if rw is None:
        raise ctx.error(path, "a fit needs a 'reweighter' section")
    fitted = ctx.get(body, path, "parameters", list, default=list(rw.parameters))
    for i, pname in enumerate(fitted):
        if not isinstance(pname, str) or pname not in params:
            raise ctx.error((*path, "parameters", i), _unknown_param(str(pname), params))
        if pname not in rw.parameters:
            raise ctx.error((*path, "parameters", i),
                            f"the reweighter is not parameterised in '{pname}' (it varies "
                            f"{list(rw.parameters) or 'nothing'} in sample '{rw.target}')")
    if not fitted:
        raise ctx.error((*path, "parameters"), "no parameters to fit")
    start: dict[str, float] = {}
    for pname, v in ctx.mapping(body.get("start"), (*path, "start")).items():
        spath2 = (*path, "start", pname)
        if pname not in fitted:
            raise ctx.error(spath2, f"'{pname}' is not among the fitted parameters {fitted}")
        if not isinstance(v, int | float) or isinstance(v, bool):
            raise ctx.error(spath2, f"expected a number, got {v!r}")
        if not params[pname].contains(v):
            p = params[pname]
            raise ctx.error(spath2, f"{v} is outside the range of '{pname}' [{p.low}, {p.high}]")
        start[pname] = float(v)
    return FitSpec(strategy=name, options=options, data=data, reference=reference,
                   parameters=tuple(fitted), start=start)


def _outputs(ctx: _Ctx, params: ParameterSet, rw: ReweighterSpec | None, body: dict[str, Any]
             ) -> OutputsSpec:
    path: Path_ = ("outputs",)
    declared_outputs: OutputsSpec = _declared_section(ctx, body, path, OutputsSpec)
    closure: dict[str, list[float]] = {}
    for pname, vals in declared_outputs.closure.items():
        cpath = (*path, "closure", pname)
        if pname not in params:
            raise ctx.error(cpath, _unknown_param(pname, params))
        if rw is not None and pname not in rw.parameters:
            raise ctx.error(cpath, f"the reweighter is not parameterised in '{pname}'")
        if not isinstance(vals, list) or not all(
                isinstance(v, int | float) and not isinstance(v, bool) for v in vals):
            raise ctx.error(cpath, f"expected a list of numbers, got {vals!r}")
        for i, v in enumerate(vals):
            if not params[pname].contains(v):
                p = params[pname]
                raise ctx.error((*cpath, i), f"{v} is outside the range of '{pname}' "
                                f"[{p.low}, {p.high}]")
        closure[pname] = [float(v) for v in vals]
    if closure and rw is not None:
        lengths = {len(v) for v in closure.values()}
        if len(lengths) > 1:
            raise ctx.error((*path, "closure"), "all closure lists must have the same length")
    return replace(declared_outputs, closure=closure)


def _machine_memory() -> int:
    """This machine's physical memory in bytes (0 where unknown)."""
    import os

    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 0


def _oversized_sample(samples: Mapping[str, SampleSpec], n_parameters: int,
                      reg: Registry) -> tuple[str, str] | None:
    """The first sample whose events could not fit in memory, and why: its features and θ
    as float64 alone (a lower bound: particles, copies for training come on top) take
    more than half of this machine's memory. Refused before anything is allocated."""
    memory = _machine_memory()
    if not memory:
        return None
    for name, s in samples.items():
        if s.n_events is None:  # every row of its files: they are as large as they are
            continue
        try:
            d = len(reg.get("source", s.source).feature_names(s.options))
        except Exception:  # a source that cannot say: count one feature
            d = 1
        need = s.n_events * (d + n_parameters + 1) * 8
        if need > memory / 2:
            return name, (f"{s.n_events} events of {d} features need at least "
                          f"{need / 2**30:.3g} GiB, more than half of this machine's "
                          f"{memory / 2**30:.3g} GiB")
    return None


def scale_spec(spec: Spec, factor: float) -> Spec:
    """The spec with every sample's ``n_events`` (and ``closure_events``, calibration and
    gate events, and an inference's expected yields) times ``factor``.

    Specs are sized for a 2-core CPU; ``ratiofit run --scale 10`` runs the paper's sizes
    on a bigger machine without editing the file. A file sample without ``n_events``
    (every row) keeps the first ``factor`` of its rows (``fraction``) when ``factor`` is
    below 1, as the yields scale; it cannot be scaled up (its files hold what they hold),
    which is an error. A file sample with ``n_events`` scales like any other (more rows
    than the files hold is an error when it is read).
    """
    from dataclasses import replace

    if not (factor > 0 and math.isfinite(factor)):
        raise RatiofitError(f"{spec.path}: --scale must be a positive finite number, got "
                            f"{factor}")

    def n(value: int) -> int:
        return max(1, round(value * factor))

    samples = {}
    for k, s in spec.samples.items():
        if s.n_events is not None:
            samples[k] = replace(s, n_events=n(s.n_events))
        elif factor > 1:
            raise RatiofitError(f"{spec.path}: --scale {factor:g}: sample '{k}' reads every "
                                "row of its files, which cannot be scaled up (give it "
                                "n_events, or scale by at most 1)")
        else:
            samples[k] = replace(s, fraction=s.fraction * factor)
    outputs = replace(spec.outputs, closure_events=n(spec.outputs.closure_events))
    unc = spec.uncertainty
    if unc.gate_events is not None:
        unc = replace(unc, gate_events=max(100, n(unc.gate_events)))
    cal = spec.reweighter.calibration if spec.reweighter else None
    reweighter = spec.reweighter
    if reweighter is not None and cal is not None:
        reweighter = replace(reweighter, calibration=replace(cal, events=n(cal.events)))
    inference = spec.inference
    if inference is not None:  # expected yields scale with the data
        inference = replace(inference, channels={
            name: replace(ch, samples={
                k: replace(v, yield_=None if v.yield_ is None else v.yield_ * factor)
                for k, v in ch.samples.items()})
            for name, ch in inference.channels.items()})
    oversized = _oversized_sample(samples, len(spec.parameters), get_registry())
    if oversized is not None:
        raise RatiofitError(f"{spec.path}: --scale {factor:g}: samples.{oversized[0]}."
                            f"n_events: {oversized[1]}")
    return replace(spec, samples=samples, outputs=outputs, reweighter=reweighter,
                   uncertainty=unc, inference=inference)


def with_inference(spec: Spec, *, backend: str | None = None, mode: str | None = None
                   ) -> Spec:
    """``spec`` with the inference section's ``backend`` and/or ``mode`` replaced, validated
    again from its resolved form (errors name the spec and the override)."""
    if spec.inference is None:
        raise RatiofitError(f"{spec.path}: --backend/--mode need an inference section")
    doc = resolved_dict(spec)
    what = []
    if backend is not None:
        doc["inference"]["backend"] = backend
        if backend != "unbinned":  # the unbinned backend's own options go with it
            for key in ("ratio_training", "scan"):
                doc["inference"].pop(key, None)
        what.append(f"backend {backend}")
    if mode is not None:
        doc["inference"]["mode"] = mode
        what.append(f"mode {mode}")
    import yaml

    text = yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)
    out = load_spec_text(text, path=f"{spec.path} (resolved, with {' and '.join(what)})")
    return replace(out, path=spec.path)


def resolved_dict(spec: Spec) -> dict[str, Any]:
    """The spec with every default filled in, in the same YAML schema (loadable again)."""

    def theta(t: ThetaSpec) -> Any:
        if t.kind == "column":
            return {"column": t.column}
        return t.value if t.kind == "fixed" else {"uniform": [t.low, t.high]}

    def one_sample(s: SampleSpec) -> dict[str, Any]:
        return {"source": s.source,
                **({"n_events": s.n_events} if s.n_events is not None else {}),
                **({"fraction": s.fraction} if s.fraction != 1.0 else {}),
                "theta": {n: theta(t) for n, t in s.theta.items()},
                # the θ columns are written under theta, not as the reserved option
                "options": {k: v for k, v in s.options.items() if k != THETA_COLUMNS}}

    out: dict[str, Any] = {
        "seed": spec.seed,
        "parameters": {p.name: {"nominal": p.nominal, "range": [p.low, p.high],
                                **({"scale": p.scale} if p.scale is not None else {})}
                       for p in spec.parameters},
        "samples": {s.name: one_sample(s) for s in spec.samples.values()},
        "ensemble": {"members": spec.ensemble,
                     "training_samples": "independent" if spec.ensemble_independent_samples
                     else "shared", "average_fit": spec.ensemble_average_fit},
    }
    rw = spec.reweighter
    if rw is not None:
        out["reweighter"] = {
            "architecture": {"name": rw.architecture, "options": dict(rw.architecture_options)},
            "loss": rw.loss, "reference": rw.reference, "target": rw.target,
            "labels": rw.labels,
            "inputs": {"features": "all" if rw.features is None else list(rw.features) or "none",
                       "particles": list(rw.particles) or "none"},
            "training": dict(rw.training.__dict__),
            "calibration": dict(rw.calibration.__dict__) if rw.calibration else "none"}
    if spec.fit is not None:
        f = spec.fit
        out["fit"] = {"strategy": {"name": f.strategy, "options": dict(f.options)},
                      "data": f.data, "parameters": list(f.parameters), "start": dict(f.start),
                      **({"reference": f.reference} if f.reference else {})}
    out["uncertainty"] = {k: v for k, v in spec.uncertainty.__dict__.items() if v is not None}
    out["outputs"] = {"plots": spec.outputs.plots, "closure": dict(spec.outputs.closure),
                      "closure_events": spec.outputs.closure_events}
    inf = spec.inference
    if inf is not None:
        def sample(s: Any) -> dict[str, Any]:
            if inf.workspace is not None:  # a workspace sample: its own yield and modifiers
                return {"sample": s.sample, "nuisances": list(s.nuisances)}
            return {"sample": s.sample, **({"yield": s.yield_} if s.yield_ is not None else {}),
                    "signal": s.signal if s.poi in (None, inf.poi) else s.poi,
                    "nuisances": list(s.nuisances),
                    "modifiers": [{k: {"name": m, **d}} for k, m, d in s.modifiers],
                    **({"ratio": str(Path(s.ratio).resolve())} if s.ratio else {})}

        def channel(ch: Any) -> dict[str, Any]:
            return {
                **({"observable": ch.observable, "bins": list(ch.edges)} if ch.edges else {}),
                **({"data": list(ch.data)} if inf.workspace is None else {}),
                "samples": {n: sample(s) for n, s in ch.samples.items()}}

        # one channel named "channel" is the section's own form; otherwise ``channels``
        channels = list(inf.channels.values())
        body = channel(channels[0]) if len(channels) == 1 and channels[0].name == "channel" \
            else {"channels": {ch.name: channel(ch) for ch in channels}}
        out["inference"] = {
            "backend": inf.backend, "mode": inf.mode, "flow": inf.flow,
            "poi": inf.poi if len(inf.pois) <= 1 else list(inf.pois),
            **({"workspace": {"file": inf.workspace.file,
                              "measurement": inf.workspace.measurement}}
               if inf.workspace is not None else {}), **body,
            # a saved reweighter by absolute path: the copy sits in another directory
            "nuisances": {n: {"reweighter": ns.reweighter if ns.reweighter == "this"
                              else str(Path(ns.reweighter).resolve()),
                              "parameter": ns.parameter, "nominal": ns.nominal,
                              "sigma": ns.sigma,
                              **({"measured": ns.measured} if ns.measured is not None else {})}
                          for n, ns in inf.nuisances.items()},
            "staterror": inf.staterror,
            "hypotest": "none" if inf.hypotest_poi is None else {
                "poi_value": inf.hypotest_poi, "calctype": inf.hypotest_calctype,
                "ntoys": inf.hypotest_ntoys},
            "upper_limit": inf.upper_limit, "impacts": inf.impacts,
            **({"ratio_training": dict(inf.ratio_training.__dict__), "scan": inf.scan}
               if inf.backend == "unbinned" else {})}
    if spec.studies:
        out["studies"] = {st.label: {"study": st.study, "options": {
            k: v for k, v in st.options.items() if v is not None}} for st in spec.studies}
    # Options left at None (no value) are dropped so the file validates again.
    for section in ("samples",):
        for s in out[section].values():
            s["options"] = {k: v for k, v in s["options"].items() if v is not None}
    return out
