"""The spec's ``inference`` section: a binned fit with reweighters as constrained nuisances
(its dataclasses and its validator; :mod:`ratiofit.spec` documents the section)."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ._spec_yaml import Path_, _Ctx, _number, _unknown_sample
from .spec_sections import RatioTrainingSpec, _declared_section

if TYPE_CHECKING:
    from .registry import Registry
    from .spec import ReweighterSpec, SampleSpec

__all__ = ["ChannelSpec", "InferenceSampleSpec", "InferenceSpec", "NuisanceSpec",
           "WorkspaceStart"]

#: The fit backends an ``inference`` section runs on.
BACKENDS = ("pyhf", "unbinned")


@dataclass(frozen=True)
class InferenceSampleSpec:
    sample: str
    yield_: float | None
    signal: bool
    nuisances: tuple[str, ...]
    #: standard HistFactory modifiers: (kind, name, data) (ratiofit.inference.StandardModifier)
    modifiers: tuple[tuple[str, str, dict[str, Any]], ...] = ()
    #: the parameter of interest that scales this sample (a signal's; ``None`` otherwise)
    poi: str | None = None
    #: unbinned backend: a saved θ-free reweighter giving this sample's density relative to
    #: the channel's background (``None``: trained in the run)
    ratio: str | None = None


@dataclass(frozen=True)
class NuisanceSpec:
    reweighter: str  # "this" or a directory
    parameter: str
    nominal: float
    sigma: float
    measured: float | None = None  # the auxiliary measurement (default: nominal)


@dataclass(frozen=True)
class ChannelSpec:
    """One channel of the ``inference`` section: a binned observable, its data and the
    samples that model them."""

    name: str
    observable: str
    edges: tuple[float, ...]
    data: tuple[str, ...]  # observed = the sum of these samples' histograms (or events)
    samples: dict[str, InferenceSampleSpec]

    @property
    def background(self) -> str | None:
        """Unbinned backend: the sample whose density the reweighter models (the one that
        lists nuisances); the other samples' densities are taken relative to it."""
        names = [n for n, s in self.samples.items() if s.nuisances]
        return names[0] if len(names) == 1 else None


@dataclass(frozen=True)
class WorkspaceStart:
    """An analysis's existing pyhf workspace that the section adds learned nuisances to."""

    file: str  # absolute path
    measurement: str | None
    spec: dict[str, Any]  # the workspace JSON as read (validated against pyhf's schema)


@dataclass(frozen=True)
class InferenceSpec:
    """A binned fit with reweighters as constrained nuisances (see the module docstring).

    ``observable``, ``edges``, ``data`` and ``samples`` are the single channel's, where
    there is one (the section's own form); a spec with several ``channels`` names them.
    """

    backend: str
    mode: str
    flow: str
    poi: str
    channels: dict[str, ChannelSpec]
    nuisances: dict[str, NuisanceSpec]
    staterror: bool = True
    hypotest_poi: float | None = 1.0
    hypotest_calctype: str = "asymptotics"
    #: pseudo-experiments per hypothesis of a toy-based test
    hypotest_ntoys: int = 1000
    upper_limit: bool = True
    impacts: bool = True
    #: every parameter of interest; ``poi`` is the first (tests and limits are on it, the
    #: others are profiled like free normalisation factors)
    pois: tuple[str, ...] = ()
    workspace: WorkspaceStart | None = None
    #: unbinned backend: how each θ-free density ratio is trained
    ratio_training: RatioTrainingSpec = field(default_factory=RatioTrainingSpec)
    #: unbinned backend: a profile-likelihood scan of the POI around its best fit
    scan: bool = True

    def _single(self) -> ChannelSpec:
        if len(self.channels) != 1:
            raise ValueError(f"this inference has {len(self.channels)} channels "
                             f"({', '.join(self.channels)}); name the channel")
        return next(iter(self.channels.values()))

    @property
    def observable(self) -> str:
        return self._single().observable

    @property
    def edges(self) -> tuple[float, ...]:
        return self._single().edges

    @property
    def data(self) -> tuple[str, ...]:
        return self._single().data

    @property
    def samples(self) -> dict[str, InferenceSampleSpec]:
        return self._single().samples


def _reweighter_parameters(directory: str) -> list[str] | None:
    """θ names of a saved reweighter (``DIR`` or ``DIR/reweighter``), ``None`` if absent."""
    import json

    for d in (Path(directory), Path(directory) / "reweighter"):
        meta = d / "metadata.json"
        if meta.is_file():
            try:
                return [p["name"] for p in json.loads(meta.read_text())["parameters"]]
            except (ValueError, KeyError, TypeError):
                return None
    return None


def _channel(ctx: _Ctx, reg: Registry, samples: Mapping[str, SampleSpec],
             nuisances: Mapping[str, NuisanceSpec], channel_name: str, path: Path_,
             body: dict[str, Any], *, backend: str, pois: tuple[str, ...],
             workspace: WorkspaceStart | None, spec_dir: Path) -> ChannelSpec:
    """One channel: ``{observable, bins, data, samples}`` at ``path`` (the unbinned backend
    needs neither observable nor bins; with a workspace, data and yields are its own)."""
    unbinned = backend == "unbinned"
    binned_fields = unbinned and "observable" not in body and "bins" not in body
    observable = "" if binned_fields else ctx.get(body, path, "observable", str)
    bins = body.get("bins")
    bpath = (*path, "bins")
    if binned_fields:
        edges: tuple[float, ...] = ()
    elif isinstance(bins, list) and len(bins) >= 2 and all(
            isinstance(b, int | float) and not isinstance(b, bool) for b in bins):
        edges = tuple(float(b) for b in bins)
    elif isinstance(bins, dict):
        ctx.no_unknown(bins, bpath, ["n", "range"])
        n = ctx.get(bins, bpath, "n", int)
        rng = bins.get("range")
        if n < 1 or not (isinstance(rng, list) and len(rng) == 2 and all(
                isinstance(v, int | float) and not isinstance(v, bool) for v in rng)):
            raise ctx.error(bpath, f"expected {{n: >= 1, range: [lo, hi]}}, got {bins!r}")
        edges = tuple(float(v) for v in np.linspace(float(rng[0]), float(rng[1]), n + 1))
    else:
        raise ctx.error(bpath, f"expected a list of bin edges or {{n, range}}, got {bins!r}")
    if not all(a < b for a, b in pairwise(edges)):
        raise ctx.error(bpath, "bin edges must increase")
    ws_channel = None
    if workspace is not None:
        ws_channel = _workspace_channel(ctx, workspace, channel_name, path, len(edges))
    raw_data = body.get("data")
    if ws_channel is not None and raw_data is None:
        raw_data = []  # the workspace's observations
    data_names = [raw_data] if isinstance(raw_data, str) else raw_data
    if not (isinstance(data_names, list) and (data_names or ws_channel is not None)
            and all(isinstance(d, str) for d in data_names)):
        raise ctx.error((*path, "data"), f"expected a sample name or a list of sample names, "
                        f"got {raw_data!r}")
    for d in data_names:
        if d not in samples:
            raise ctx.error((*path, "data"), _unknown_sample(d, samples))
    if len(set(data_names)) != len(data_names):
        raise ctx.error((*path, "data"), f"a sample is listed twice: {data_names}")
    if ws_channel is not None and data_names:
        raise ctx.error((*path, "data"), "the workspace holds this channel's observations; "
                        "drop 'data'")
    data = tuple(data_names)
    isamples: dict[str, InferenceSampleSpec] = {}
    for name, sb in ctx.mapping(body.get("samples"), (*path, "samples")).items():
        spath = (*path, "samples", name)
        sb = ctx.mapping(sb, spath)
        ctx.no_unknown(sb, spath, ["sample", "yield", "signal", "nuisances", "modifiers",
                                   "ratio"])
        sample = ctx.get(sb, spath, "sample", str, default=name)
        if sample not in samples:
            raise ctx.error((*spath, "sample"), _unknown_sample(sample, samples))
        yield_ = _number(ctx, sb, spath, "yield") if "yield" in sb else None
        if yield_ is not None and not yield_ > 0:
            raise ctx.error((*spath, "yield"), f"must be > 0, got {yield_}")
        if ws_channel is not None:
            ws_samples = [str(x["name"]) for x in ws_channel["samples"]]
            if name not in ws_samples:
                close = difflib.get_close_matches(str(name), ws_samples, n=1)
                hint = f"; did you mean '{close[0]}'?" if close else ""
                raise ctx.error(spath, f"the workspace's channel '{channel_name}' has no "
                                f"sample '{name}'{hint} (it has: {', '.join(ws_samples)})")
            if yield_ is not None:
                raise ctx.error((*spath, "yield"), "the workspace gives this sample's yield "
                                "(its nominal counts); drop 'yield'")
            for key in ("signal", "modifiers", "ratio"):
                if key in sb:
                    raise ctx.error((*spath, key), "a workspace sample takes only 'sample' "
                                    "and 'nuisances' here (its modifiers are the workspace's)")
        raw_signal = sb.get("signal", False)
        if isinstance(raw_signal, bool):
            scaled_by = pois[0] if raw_signal else None
        elif isinstance(raw_signal, str) and raw_signal in pois:
            scaled_by = raw_signal
        else:
            raise ctx.error((*spath, "signal"), f"expected true, false or the name of a "
                            f"parameter of interest ({', '.join(pois)}), got {raw_signal!r}")
        ratio = ctx.get(sb, spath, "ratio", str, default=None) if "ratio" in sb else None
        if ratio is not None and not unbinned:
            raise ctx.error((*spath, "ratio"), "a density ratio is for the unbinned backend "
                            "(backend: unbinned)")
        names = sb.get("nuisances", [])
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ctx.error((*spath, "nuisances"), f"expected a list of names, got {names!r}")
        for n in names:
            if n not in nuisances:
                close = difflib.get_close_matches(n, list(nuisances), n=1)
                hint = f"; did you mean '{close[0]}'?" if close else ""
                raise ctx.error((*spath, "nuisances"), f"undefined nuisance '{n}'{hint}")
        if ratio is not None and names:
            raise ctx.error((*spath, "ratio"), "the sample with the nuisances is the channel's "
                            "background, which the others' ratios are relative to")
        if ratio is not None:
            ratio = _saved_reweighter_dir(ctx, (*spath, "ratio"), ratio, spec_dir,
                                          parameters=[])
        isamples[name] = InferenceSampleSpec(
            sample=sample, yield_=yield_, signal=scaled_by is not None, poi=scaled_by,
            ratio=ratio, nuisances=tuple(names),
            modifiers=tuple(_modifier(ctx, m, (*spath, "modifiers", i), nuisances)
                            for i, m in enumerate(_list(ctx, sb, spath, "modifiers"))))
        for i, (kind, _, mdata) in enumerate(isamples[name].modifiers):
            rel = mdata.get("relative")
            if kind == "shapesys" and isinstance(rel, list) and len(rel) != len(edges) - 1:
                raise ctx.error((*spath, "modifiers", i, kind, "relative"),
                                f"{len(rel)} values for {len(edges) - 1} bins")
            if kind == "shapesys" and unbinned:
                raise ctx.error((*spath, "modifiers", i, kind), "shapesys is a per-bin "
                                "modifier; the unbinned backend has no bins")
    # The observable is binned in every sample the fit reads: a feature of each (checked
    # here, not after the training).
    for sname in sorted({*(s.sample for s in isamples.values()), *data}) if observable else ():
        sspec = samples[sname]
        try:
            features = list(reg.get("source", sspec.source).feature_names(sspec.options))
        except Exception:  # a source that cannot say before generating: checked at run time
            continue
        if observable not in features:
            close = difflib.get_close_matches(observable, features, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise ctx.error((*path, "observable"), f"sample '{sname}' has no feature "
                            f"'{observable}'{hint} (it has: {', '.join(features)})")
    if not isamples:
        raise ctx.error((*path, "samples"), "at least one sample is required")
    if unbinned:
        with_nuisances = [n for n, s in isamples.items() if s.nuisances]
        if len(with_nuisances) != 1:
            raise ctx.error((*path, "samples"), "the unbinned backend needs exactly one sample "
                            "per channel that lists the reweighter's nuisances (the background "
                            "whose density the reweighter models; the others' densities are "
                            f"relative to it), got {with_nuisances or 'none'}")
    return ChannelSpec(name=channel_name, observable=observable, edges=edges, data=data,
                       samples=isamples)


def _inference(ctx: _Ctx, reg: Registry, samples: Mapping[str, SampleSpec],
               rw: ReweighterSpec | None, spec_path: str, body: dict[str, Any]
               ) -> InferenceSpec:
    path: Path_ = ("inference",)
    ctx.no_unknown(body, path, ["backend", "mode", "observable", "bins", "flow", "poi", "data",
                                "samples", "channels", "nuisances", "staterror", "hypotest",
                                "upper_limit", "impacts", "workspace", "ratio_training",
                                "scan"])
    spec_dir = Path(spec_path).parent
    backend = ctx.get(body, path, "backend", str, default="pyhf")
    if backend not in BACKENDS:
        close = difflib.get_close_matches(backend, BACKENDS, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise ctx.error((*path, "backend"), f"unknown backend '{backend}'{hint} (known: "
                        f"{', '.join(BACKENDS)})")
    workspace = None
    if "workspace" in body:
        if backend != "pyhf":
            raise ctx.error((*path, "workspace"), "an existing workspace is a pyhf model: "
                            "backend: pyhf")
        workspace = _workspace_start(ctx, (*path, "workspace"), body["workspace"], spec_dir)
    mode = ctx.get(body, path, "mode", str, default="exact")
    if mode not in ("exact", "portable"):
        raise ctx.error((*path, "mode"), f"expected 'exact' or 'portable', got {mode!r}")
    flow = ctx.get(body, path, "flow", str, default="error")
    if flow not in ("error", "fold", "exclude"):
        raise ctx.error((*path, "flow"), f"expected 'error', 'fold' or 'exclude', got {flow!r}")
    raw_poi = body.get("poi", _workspace_poi(workspace) if workspace is not None else "mu")
    raw_pois = [raw_poi] if isinstance(raw_poi, str) else raw_poi
    if not (isinstance(raw_pois, list) and raw_pois
            and all(isinstance(q, str) and q.isidentifier() for q in raw_pois)
            and len(set(raw_pois)) == len(raw_pois)):
        raise ctx.error((*path, "poi"), "expected a parameter name or a list of distinct "
                        f"names (the first is tested and limited), got {raw_poi!r}")
    pois = tuple(raw_pois)
    poi = pois[0]
    if workspace is not None and poi != _workspace_poi(workspace):
        raise ctx.error((*path, "poi"), f"the workspace's measurement tests "
                        f"'{_workspace_poi(workspace)}', not '{poi}'")
    # nuisances first: samples refer to them
    nuisances: dict[str, NuisanceSpec] = {}
    for name, nb in ctx.mapping(body.get("nuisances"), (*path, "nuisances")).items():
        npath = (*path, "nuisances", name)
        nb = ctx.mapping(nb, npath)
        ctx.no_unknown(nb, npath, ["reweighter", "parameter", "nominal", "sigma", "measured"])
        source = ctx.get(nb, npath, "reweighter", str, default="this")
        parameter = ctx.get(nb, npath, "parameter", str)
        if source == "this":
            if rw is None:
                raise ctx.error((*npath, "reweighter"), "'this' needs a reweighter section in "
                                "the spec (or give the directory of a saved reweighter)")
            known: list[str] | None = list(rw.parameters)
        else:
            source = _saved_reweighter_dir(ctx, (*npath, "reweighter"), source, spec_dir)
            known = _reweighter_parameters(source)
        assert known is not None
        if workspace is not None and name in _workspace_parameters(workspace):
            raise ctx.error(npath, f"'{name}' is already a parameter of the workspace "
                            f"{workspace.file}; name the learned nuisance apart")
        if parameter not in known:
            close = difflib.get_close_matches(parameter, known, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise ctx.error((*npath, "parameter"), f"the reweighter has no parameter "
                            f"'{parameter}'{hint} (it has: {', '.join(known) or 'none'})")
        nominal = _number(ctx, nb, npath, "nominal")
        sigma = _number(ctx, nb, npath, "sigma")
        if not sigma > 0:
            raise ctx.error((*npath, "sigma"), f"the constraint width must be > 0, got {sigma}")
        measured = _number(ctx, nb, npath, "measured") if "measured" in nb else None
        nuisances[name] = NuisanceSpec(reweighter=source, parameter=parameter, nominal=nominal,
                                       sigma=sigma, measured=measured)
    for q in pois:  # before the channels, whose samples name the POIs
        if q in nuisances:
            raise ctx.error((*path, "poi"), f"the parameter of interest '{q}' is also a "
                            "nuisance's name; name them apart")
    # channels: ``channels: {NAME: {observable, bins, data, samples}}``, or one channel
    # (named "channel") whose fields sit in the section itself
    single = [k for k in ("observable", "bins", "data", "samples") if k in body]
    channels: dict[str, ChannelSpec] = {}
    if "channels" in body:
        if single:
            raise ctx.error((*path, single[0]), "with 'channels', a channel's observable, "
                            "bins, data and samples go under its name")
        for cname, cb in ctx.mapping(body["channels"], (*path, "channels")).items():
            cpath = (*path, "channels", cname)
            if not str(cname).isidentifier():
                raise ctx.error(cpath, f"channel names must be identifiers, got {cname!r}")
            cb = ctx.mapping(cb, cpath)
            ctx.no_unknown(cb, cpath, ["observable", "bins", "data", "samples"])
            channels[cname] = _channel(ctx, reg, samples, nuisances, cname, cpath, cb,
                                       backend=backend, pois=pois, workspace=workspace,
                                       spec_dir=spec_dir)
        if not channels:
            raise ctx.error((*path, "channels"), "at least one channel is required")
    else:
        if workspace is not None:
            raise ctx.error((*path, "workspace"), "with a workspace, name its channels under "
                            "'channels' (the ones that get learned nuisances)")
        channels["channel"] = _channel(ctx, reg, samples, nuisances, "channel", path, body,
                                       backend=backend, pois=pois, workspace=workspace,
                                       spec_dir=spec_dir)
    all_samples = [s for ch in channels.values() for s in ch.samples.values()]
    for q in pois if workspace is None else ():
        if not any(s.poi == q for s in all_samples):
            raise ctx.error((*path, "samples") if "channels" not in body else
                            (*path, "channels"), f"no sample is scaled by the parameter of "
                            f"interest '{q}' (give one 'signal: {'true' if q == poi else q}')")
    if backend == "unbinned":
        sources = {ns.reweighter for ns in nuisances.values()}
        if len(sources) > 1:
            raise ctx.error((*path, "nuisances"), "the unbinned backend profiles the "
                            f"parameters of one reweighter; these name {len(sources)}: "
                            f"{sorted(sources)}")
        if not nuisances:
            raise ctx.error((*path, "nuisances"), "the unbinned backend needs the reweighter's "
                            "nuisances (its background density is w(x, theta) times the "
                            "reference's)")
        for (cname, ch) in channels.items():
            for n, ss in ch.samples.items():
                if n != ch.background and ss.ratio is None and rw is None:
                    raise ctx.error((*path, "channels", cname, "samples", n) if "channels" in
                                    body else (*path, "samples", n), "its density relative to "
                                    "the background is trained with the spec's reweighter "
                                    "settings: add a reweighter section, or give 'ratio: DIR' "
                                    "(a saved reweighter without parameters)")
                for i, (kind, mname, _) in enumerate(ss.modifiers):
                    if kind == "normfactor" and mname in nuisances:
                        raise ctx.error((*path, "channels", cname, "samples", n, "modifiers",
                                         i), f"'{mname}' is a reweighter nuisance")
    lumis = {float(d["sigma"]) for s in all_samples for k, _, d in s.modifiers
             if k == "lumi"}
    if len(lumis) > 1:
        raise ctx.error((*path, "samples"), f"the lumi modifiers disagree on sigma: "
                        f"{sorted(lumis)}")
    auxiliary: dict[str, set[float | None]] = {}
    for s in all_samples:
        for _, mname, d in s.modifiers:
            auxiliary.setdefault(mname, set()).add(d.get("measured"))
    for mname, values in auxiliary.items():
        if len(values) > 1:
            raise ctx.error((*path, "samples"), f"the '{mname}' modifiers disagree on "
                            f"measured (one constraint, one auxiliary measurement): "
                            f"{sorted(values, key=str)}")
    shapesys_channels: dict[str, set[str]] = {}
    for cname, ch in channels.items():
        for ss in ch.samples.values():
            for kind, mname, _ in ss.modifiers:
                if kind == "shapesys":
                    shapesys_channels.setdefault(mname, set()).add(cname)
    for mname, where in shapesys_channels.items():
        if len(where) > 1:  # pyhf: "Trying to add paramset shapesys/... but other exist"
            raise ctx.error((*path, "channels"), f"shapesys '{mname}' is used in channels "
                            f"{sorted(where)}: its per-bin parameters belong to one channel; "
                            "name it per channel")
    modifier_names = {n for s in all_samples for _, n, _ in s.modifiers}
    for q in pois:
        if q in modifier_names:
            raise ctx.error((*path, "poi"), f"the parameter of interest '{q}' is also a "
                            "modifier's name; name them apart")
        if q in nuisances:
            raise ctx.error((*path, "poi"), f"the parameter of interest '{q}' is also a "
                            "nuisance's name; name them apart")
    if workspace is not None:
        clash = sorted(modifier_names & set(_workspace_parameters(workspace)))
        if clash:
            raise ctx.error((*path, "channels"), f"modifier '{clash[0]}' is already a "
                            f"parameter of the workspace {workspace.file}")
    if backend != "unbinned":
        for key in ("ratio_training", "scan"):
            if key in body:
                raise ctx.error((*path, key), "only the unbinned backend (backend: unbinned) "
                                "trains density ratios and scans the profile likelihood")
    ratio_training: RatioTrainingSpec = _declared_section(
        ctx, ctx.mapping(body.get("ratio_training"), (*path, "ratio_training")),
        (*path, "ratio_training"), RatioTrainingSpec)
    # ``hypotest: none`` skips the hypothesis test (coverage repeats do)
    no_test = body.get("hypotest") in ("none", False)
    hbody = {} if no_test else ctx.mapping(body.get("hypotest", {}), (*path, "hypotest"))
    ctx.no_unknown(hbody, (*path, "hypotest"), ["poi_value", "calctype", "ntoys"])
    ntoys = ctx.get(hbody, (*path, "hypotest"), "ntoys", int, default=1000)
    if ntoys < 1:
        raise ctx.error((*path, "hypotest", "ntoys"), f"must be >= 1, got {ntoys}")
    calctype = ctx.get(hbody, (*path, "hypotest"), "calctype", str, default="asymptotics")
    if calctype not in ("asymptotics", "toybased"):
        raise ctx.error((*path, "hypotest", "calctype"),
                        f"expected 'asymptotics' or 'toybased', got {calctype!r}")
    return InferenceSpec(
        backend=backend, mode=mode, flow=flow, poi=poi, channels=channels, nuisances=nuisances,
        staterror=ctx.get(body, path, "staterror", bool, default=True),
        hypotest_poi=None if no_test else _number(ctx, hbody, (*path, "hypotest"),
                                                  "poi_value", 1.0),
        hypotest_calctype=calctype, hypotest_ntoys=ntoys,
        upper_limit=ctx.get(body, path, "upper_limit", bool, default=True),
        impacts=ctx.get(body, path, "impacts", bool, default=True), pois=pois,
        workspace=workspace, ratio_training=ratio_training,
        scan=ctx.get(body, path, "scan", bool, default=True))


def _saved_reweighter_dir(ctx: _Ctx, path: Path_, source: str, spec_dir: Path,
                          parameters: list[str] | None = None) -> str:
    """The directory of a saved reweighter named at ``path`` (relative to the spec's own
    directory, or to the working directory), checked to exist; with ``parameters``, its θ
    must be exactly those (``[]``: a θ-free density ratio)."""
    where = Path(source) if Path(source).is_absolute() else spec_dir / source
    known = _reweighter_parameters(str(where))
    if known is None and _reweighter_parameters(source) is not None:
        where, known = Path(source), _reweighter_parameters(source)
    if known is None:
        raise ctx.error(path, f"no saved reweighter at '{source}' (expected a run directory "
                        "or a reweighter directory with metadata.json)")
    if parameters is not None and known != parameters:
        raise ctx.error(path, f"expected a reweighter in {parameters or 'no parameters'} "
                        f"(a density ratio), '{source}' has {known}")
    return str(where)


def _workspace_start(ctx: _Ctx, path: Path_, raw: Any, spec_dir: Path) -> WorkspaceStart:
    """``workspace: FILE`` or ``{file: FILE, measurement: NAME}``: read and validated."""
    import json

    body = {"file": raw} if isinstance(raw, str) else ctx.mapping(raw, path)
    ctx.no_unknown(body, path, ["file", "measurement"])
    file = ctx.get(body, path, "file", str)
    fpath = (*path, "file") if "file" in body and not isinstance(raw, str) else path
    where = Path(file) if Path(file).is_absolute() else spec_dir / file
    try:
        text = where.read_text()
    except OSError as exc:
        raise ctx.error(fpath, f"cannot read the workspace '{file}': {exc.strerror}") from None
    try:
        ws = json.loads(text, parse_constant=lambda c: _nonfinite(c))
    except ValueError as exc:
        raise ctx.error(fpath, f"'{file}' is not JSON: {exc}") from None
    try:
        import pyhf

        pyhf.Workspace(ws)  # the schema
    except Exception as exc:  # pyhf's schema and model errors
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ctx.error(fpath, f"'{file}' is not a valid pyhf workspace: {first}") from None
    names = [m["name"] for m in ws["measurements"]]
    measurement = ctx.get(body, path, "measurement", str, default=None) \
        if "measurement" in body else None
    if measurement is not None and measurement not in names:
        raise ctx.error((*path, "measurement"), f"the workspace has no measurement "
                        f"'{measurement}' (it has: {', '.join(names)})")
    if measurement is None and len(names) > 1:
        raise ctx.error(path, f"the workspace has {len(names)} measurements "
                        f"({', '.join(names)}); choose one with 'measurement'")
    return WorkspaceStart(file=str(where.resolve()), measurement=measurement or names[0],
                          spec=ws)


def _nonfinite(constant: str) -> Any:
    raise ValueError(f"non-finite number {constant} (NaN/inf are refused)")


def _workspace_measurement(ws: WorkspaceStart) -> dict[str, Any]:
    return next(m for m in ws.spec["measurements"] if m["name"] == ws.measurement)


def _workspace_poi(ws: WorkspaceStart) -> str:
    return str(_workspace_measurement(ws)["config"]["poi"])


def _workspace_parameters(ws: WorkspaceStart) -> set[str]:
    """Every modifier name of the workspace (its parameters) and its POI."""
    return {str(m["name"]) for ch in ws.spec["channels"] for s in ch["samples"]
            for m in s["modifiers"]} | {_workspace_poi(ws)}


def _workspace_channel(ctx: _Ctx, ws: WorkspaceStart, name: str, path: Path_, n_edges: int
                       ) -> dict[str, Any]:
    """The workspace's channel ``name``, whose bin count the spec's ``bins`` must match."""
    channels = {str(c["name"]): c for c in ws.spec["channels"]}
    if name not in channels:
        close = difflib.get_close_matches(name, list(channels), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise ctx.error(path, f"the workspace has no channel '{name}'{hint} (it has: "
                        f"{', '.join(channels)})")
    nbins = len(channels[name]["samples"][0]["data"])
    if n_edges - 1 != nbins:
        raise ctx.error((*path, "bins"), f"{n_edges - 1} bins, the workspace's channel "
                        f"'{name}' has {nbins}")
    return channels[name]


def _list(ctx: _Ctx, body: Mapping[str, Any], path: Path_, key: str) -> list[Any]:
    value = body.get(key, [])
    if not isinstance(value, list):
        raise ctx.error((*path, key), f"expected a list, got {value!r}")
    return value


#: A modifier entry's kinds and their fields: (required, optional).
_MODIFIERS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "normsys": (("name", "lo", "hi"), ("measured",)),
    "lumi": (("sigma",), ("name", "measured")),
    "normfactor": (("name",), ()),
    "shapesys": (("name", "relative"), ()),
}


def _modifier(ctx: _Ctx, entry: Any, path: Path_, nuisances: Mapping[str, Any]
              ) -> tuple[str, str, dict[str, Any]]:
    """One ``modifiers`` entry: ``{normsys: {name, lo, hi}}``, ``{lumi: {sigma}}``,
    ``{normfactor: {name}}`` (or ``{normfactor: NAME}``), ``{shapesys: {name, relative}}``."""
    if not (isinstance(entry, dict) and len(entry) == 1):
        raise ctx.error(path, f"expected one of {{{', '.join(_MODIFIERS)}: ...}}, got {entry!r}")
    kind, body = next(iter(entry.items()))
    if kind not in _MODIFIERS:
        close = difflib.get_close_matches(str(kind), list(_MODIFIERS), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise ctx.error(path, f"unknown modifier '{kind}'{hint} (known: "
                        f"{', '.join(_MODIFIERS)})")
    mpath = (*path, kind)
    if kind == "normfactor" and isinstance(body, str):
        body = {"name": body}
    body = ctx.mapping(body, mpath)
    required, optional = _MODIFIERS[kind]
    ctx.no_unknown(body, mpath, [*required, *optional])
    for key in required:
        if key not in body:
            raise ctx.error(mpath, f"missing required field '{key}'")
    name = ctx.get(body, mpath, "name", str, default="lumi")
    if not name.isidentifier():
        raise ctx.error((*mpath, "name"), f"must be an identifier, got {name!r}")
    if name in nuisances:
        raise ctx.error((*mpath, "name"), f"'{name}' is also a reweighter nuisance's name")
    data: dict[str, Any] = {}
    if kind == "normsys":
        for key in ("lo", "hi"):
            data[key] = _number(ctx, body, mpath, key)
            if not data[key] > 0:
                raise ctx.error((*mpath, key), f"must be > 0 (a yield factor), got {data[key]}")
    elif kind == "lumi":
        data["sigma"] = _number(ctx, body, mpath, "sigma")
        if not 0 < data["sigma"] < 1:
            raise ctx.error((*mpath, "sigma"), f"must be in (0, 1), got {data['sigma']}")
    if "measured" in body:  # the constraint's auxiliary measurement
        data["measured"] = _number(ctx, body, mpath, "measured")
        if kind == "lumi" and not data["measured"] > 0:
            raise ctx.error((*mpath, "measured"), f"must be > 0 (a luminosity factor), got "
                            f"{data['measured']}")
    elif kind == "shapesys":
        rel = body["relative"]
        values = rel if isinstance(rel, list) else [rel]
        if not values or not all(isinstance(v, int | float) and not isinstance(v, bool)
                                 and np.isfinite(v) and v >= 0 for v in values):
            raise ctx.error((*mpath, "relative"), f"expected a number >= 0 or a list of them "
                            f"(one per bin), got {rel!r}")
        data["relative"] = [float(v) for v in values] if isinstance(rel, list) else float(rel)
    return kind, name, data
