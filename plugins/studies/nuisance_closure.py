"""Study ``nuisance_closure``: a learned reweighter as a nuisance, checked against direct
simulation (guide-searches.md Sec. 3; the flagship example of the inference backend).

For a parameter θ with a normal constraint N(θ₀, σ), the nominal sample reweighted to
θ₀ + kσ gives the template h_b(θ) = Σᵢ w₀ᵢ w(xᵢ, θ) of one observable. For every shift k
with a sample simulated directly at θ₀ + kσ the study reports:

* per bin: the reweighted template, the direct template, the exact-mode morphing and
  the portable 3-point histosys prediction, with the pull of reweighted vs direct using
  both Monte Carlo variances (Σw²) — the χ²/ndf of that comparison is the closure of the
  reweighter itself on this observable;
* a fit of (μ, θ) to the direct sample as data (μ a free normalisation of the background
  template, θ profiled with its constraint centred at θ₀), in exact and in portable mode,
  with MC statistical uncertainties (staterror) on.

Plot data (templates and ratios) are written to ``templates.json`` and drawn into
``templates.png``; drawing is separate from the numbers.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ratiofit.hookspecs import hookimpl
from ratiofit.options import Option

_POI = "background_norm"  # μ: the free normalisation of the background template


def _fail(field: str, message: str) -> ValueError:
    exc = ValueError(message)
    exc.field = field  # type: ignore[attr-defined]
    return exc


class NuisanceClosure:
    name = "nuisance_closure"
    options: Mapping[str, Option] = {
        "reweighter": Option(kind="str", default="this",
                             doc="'this' (the spec's trained reweighter) or a run / reweighter "
                             "directory"),
        "parameter": Option(kind="str", default=None, doc="θ the nuisance varies"),
        "sigma": Option(kind="float", default=None, minimum=0.0,
                        doc="constraint width σ (θ₀ is the parameter's nominal value)"),
        "nominal": Option(kind="str", default=None, doc="sample simulated at θ₀ (the template)"),
        "direct": Option(kind="str_list", default=None,
                         doc="samples simulated directly at θ₀ + kσ (fixed θ), one per shift"),
        "observable": Option(kind="str", default=None, doc="feature to bin"),
        "edges": Option(kind="float_list", default=None, doc="bin edges, increasing"),
        "flow": Option(kind="str", default="fold", choices=["error", "fold", "exclude"],
                       doc="events outside the edges"),
        "grid_points": Option(kind="int", default=13, minimum=3,
                              doc="θ grid points of the exact-mode morphing"),
    }

    def check(self, *, options: Mapping[str, Any], samples: Mapping[str, Any],
              parameters: Any) -> None:
        for key in ("parameter", "sigma", "nominal", "direct", "observable", "edges"):
            if options[key] is None:
                raise _fail(key, f"option '{key}' is required")
        par = options["parameter"]
        if par not in parameters:
            raise _fail("parameter", f"unknown parameter {par!r} (parameters: "
                        f"{list(parameters.names)})")
        if options["sigma"] <= 0:
            raise _fail("sigma", f"the constraint width must be > 0, got {options['sigma']}")
        edges = np.asarray(options["edges"], dtype=float)
        if len(edges) < 2 or np.any(np.diff(edges) <= 0):
            raise _fail("edges", "bin edges must be at least two strictly increasing numbers")
        for key in ("nominal",):
            if options[key] not in samples:
                raise _fail(key, f"unknown sample {options[key]!r} (samples: {list(samples)})")
        for name in options["direct"]:
            if name not in samples:
                raise _fail("direct", f"unknown sample {name!r} (samples: {list(samples)})")
            t = samples[name].theta.get(par)
            if t is None or t.kind != "fixed":
                raise _fail("direct", f"sample {name!r} must have a fixed value of {par!r}")

    def run(self, *, context: Any, options: Mapping[str, Any]) -> Mapping[str, Any]:
        from ratiofit import inference as inf
        from ratiofit.reweighter import Reweighter

        spec = context.spec
        par = options["parameter"]
        theta0 = float(spec.parameters[par].nominal)
        sigma = float(options["sigma"])
        if options["reweighter"] == "this":
            if context.reweighter is None:
                raise _fail("reweighter", "the spec trains no reweighter; name a directory")
            rw = context.reweighter
        else:
            d = Path(options["reweighter"])
            rw = Reweighter.load(d / "reweighter" if (d / "reweighter").is_dir() else d,
                                 registry=context.registry)
        fixed = {n: float(spec.parameters[n].nominal) for n in rw.theta_names if n != par}
        edges = np.asarray(options["edges"], dtype=float)
        obs, flow = options["observable"], options["flow"]
        nominal = context.sample(options["nominal"])
        nuisance = inf.ReweighterNuisance(name=par, reweighter=rw, parameter=par,
                                          nominal=theta0, sigma=sigma, fixed_theta=fixed,
                                          grid_points=options["grid_points"])
        shifts: list[dict[str, Any]] = []
        plot: list[dict[str, Any]] = []
        for name in options["direct"]:
            direct_events = context.sample(name)
            theta = float(spec.samples[name].theta[par].value)
            k = (theta - theta0) / sigma
            # Background template normalised to the direct sample's size: the test is the
            # shape; μ absorbs any normalisation difference.
            scale = direct_events.event_weights.sum() / nominal.event_weights.sum()
            channel = inf.Channel(
                name="SR", observable=obs, edges=edges, observed=direct_events,
                samples=(inf.Sample(name="background", events=nominal,
                                    weights=nominal.event_weights * scale, signal=True,
                                    nuisances=(par,)),))
            templates = inf.build_templates(channels=[channel], nuisances=[nuisance], flow=flow)
            exact = inf.exact_model(templates, poi=_POI, staterror=True)
            portable = inf.portable_model(templates, poi=_POI, staterror=True)
            rew = inf.reweighted_template(reweighter=rw, events=nominal, observable=obs,
                                          edges=edges, theta={par: theta, **fixed},
                                          weights=nominal.event_weights * scale, flow=flow)
            dvals, dvars = _histogram(direct_events, obs, edges, flow)
            nom_t = _histogram(nominal, obs, edges, flow, scale=scale)
            ex = inf.expected_by_sample(exact.model, {par: k, _POI: 1.0})["background"]
            po = inf.expected_by_sample(portable.model, {par: k, _POI: 1.0})["background"]
            pulls = (rew.values - dvals) / np.sqrt(rew.variances + dvars)
            chi2_rew = float(np.sum(pulls**2))
            chi2_nom = float(np.sum((nom_t[0] - dvals) ** 2 / (nom_t[1] + dvars)))
            fits = {}
            for mode, model in (("exact", exact), ("histosys", portable)):
                r = inf.fit(model)
                pull = r.pulls[par]
                fits[mode] = {"mu": float(r.poi_value), "mu_error": float(r.poi_error),
                              "theta": pull.theta, "theta_error": pull.theta_error,
                              "valid": bool(r.valid)}
            shifts.append({
                "sample": name, "theta": theta, "k": k, "bins": len(edges) - 1,
                "chi2_ndf_reweighted_vs_direct": chi2_rew / (len(edges) - 1),
                "chi2_ndf_nominal_vs_direct": chi2_nom / (len(edges) - 1),
                "max_abs_pull": float(np.max(np.abs(pulls))),
                "max_rel_dev_exact_vs_reweighted": float(np.max(np.abs(ex / rew.values - 1))),
                "max_rel_dev_histosys_vs_reweighted": float(
                    np.max(np.abs(po / rew.values - 1))),
                "per_bin": {"reweighted": rew.values.tolist(),
                            "reweighted_var": rew.variances.tolist(),
                            "direct": dvals.tolist(), "direct_var": dvars.tolist(),
                            "nominal": nom_t[0].tolist(), "exact": ex.tolist(),
                            "histosys": po.tolist()},
                "fit": fits})
            plot.append({"label": f"{par} = {theta:g} (θ₀ {k:+.1f}σ)", **shifts[-1]["per_bin"]})
        payload = {"parameter": par, "theta0": theta0, "sigma": sigma, "observable": obs,
                   "edges": edges.tolist(), "shifts": shifts}
        from ratiofit.workflow import write_json

        write_json(context.outdir / "templates.json", {"edges": edges.tolist(),
                                                       "observable": obs, "panels": plot})
        if spec.outputs.plots:
            draw_templates(edges=edges, observable=obs, panels=plot,
                           path=context.outdir / "templates.png")
        return payload


def _histogram(events: Any, observable: str, edges: np.ndarray, flow: str,
               scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Σw and Σw² per bin with the study's flow policy (hist, Weight storage)."""
    import hist

    x = events.feature_columns([observable])[:, 0]
    w = events.event_weights * scale
    if flow == "fold":
        x = np.clip(x, edges[0], np.nextafter(edges[-1], -np.inf))
    elif flow == "error" and (np.any(x < edges[0]) or np.any(x >= edges[-1])):
        raise _fail("edges", f"events of {observable!r} fall outside [{edges[0]}, {edges[-1]})")
    h = hist.Hist(hist.axis.Variable(edges, flow=False), storage=hist.storage.Weight())
    h.fill(x, weight=w)
    return np.asarray(h.values()), np.asarray(h.variances())


def draw_templates(*, edges: np.ndarray, observable: str, panels: list[dict[str, Any]],
                   path: Path) -> None:
    """Reweighted vs direct templates (top) and their ratio to direct (bottom), per shift."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import mplhep

    fig, axes = plt.subplots(2, len(panels), figsize=(5 * len(panels), 5.5), squeeze=False,
                             gridspec_kw={"height_ratios": [3, 1]}, sharex=True)
    for i, p in enumerate(panels):
        top, bottom = axes[0, i], axes[1, i]
        direct = np.asarray(p["direct"])

        def ratio(values: Any, direct: np.ndarray = direct) -> np.ndarray:
            out = np.full(len(direct), np.nan)
            return np.divide(np.asarray(values), direct, out=out, where=direct > 0)
        mplhep.histplot(np.asarray(p["nominal"]), edges, ax=top, label="nominal (θ₀)",
                        color="grey")
        mplhep.histplot(direct, edges, yerr=np.sqrt(p["direct_var"]), ax=top,
                        label="direct simulation", color="black", histtype="errorbar")
        for key, colour in (("reweighted", "C0"), ("exact", "C1"), ("histosys", "C2")):
            vals = np.asarray(p[key])
            mplhep.histplot(vals, edges, ax=top, label=key, color=colour)
            bottom.stairs(ratio(vals), edges, color=colour, baseline=None)
        bottom.stairs(ratio(p["nominal"]), edges, color="grey", baseline=None)
        bottom.axhline(1.0, color="black", lw=0.8)
        bottom.set_ylim(0.5, 1.5)
        top.set_title(p["label"], fontsize=10)
        top.legend(fontsize=8)
        bottom.set_xlabel(observable)
        bottom.set_ylabel("/ direct")
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)


@hookimpl
def ratiofit_studies() -> list[Any]:
    return [NuisanceClosure()]
