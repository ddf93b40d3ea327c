"""Command line: ``ratiofit run | validate | plugins | train | fit | calibrate | coverage |
report | reweight | export``.

Errors caused by input are one line on stderr with exit status 2; ``--debug`` shows the
traceback instead.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import numpy as np
import yaml

from .errors import RatiofitError

__all__ = ["main"]


def _quiet_tf() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")


def _guard(debug: bool, fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except RatiofitError as exc:
        if debug:
            raise
        click.echo(f"ratiofit: error: {exc}", err=True)
        sys.exit(2)


def _progress(quiet: bool, verbose: bool = False) -> bool:
    """Progress bars on a terminal (and the stage lines where it is not: ratiofit.console)."""
    from .console import configure

    configure(verbose=verbose, quiet=quiet)
    return not quiet and sys.stderr.isatty()


#: Subcommands that never train or evaluate a network: they do not import TensorFlow.
_WITHOUT_TENSORFLOW = ("validate", "plugins", "report")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="ratiofit")
@click.pass_context
def main(ctx: click.Context) -> None:
    """ratiofit: learned likelihood ratios for reweighting, fitting and profiling θ."""
    _quiet_tf()
    if ctx.invoked_subcommand not in _WITHOUT_TENSORFLOW:
        from ._quiet import import_tensorflow_quietly

        import_tensorflow_quietly()


debug_opt = click.option("--debug", is_flag=True, help="Show tracebacks.")
quiet_opt = click.option("--quiet", "-q", is_flag=True,
                         help="No progress bars and no stage lines (warnings only).")
verbose_opt = click.option("--verbose", "-v", is_flag=True,
                           help="Stage lines on a terminal too (they are on wherever stderr "
                                "is not a terminal).")


@main.command()
@click.argument("spec_path", type=click.Path(dir_okay=False))
@click.option("-o", "--output", type=click.Path(file_okay=False), default=None,
              help="Output directory (default: runs/<spec name>).")
@click.option("--no-plots", is_flag=True, help="Skip plots.")
@click.option("--scale", type=float, default=1.0, show_default=True,
              help="Multiply every sample's n_events (e.g. 10 for paper sizes on a GPU); "
                   "a file sample without n_events keeps that fraction of its rows (it "
                   "cannot be scaled up).")
@click.option("--scheduler", metavar="ADDR", default=None,
              help="Run the independent jobs (ensemble members) on this dask scheduler "
                   "(tcp://host:8786); workers must share OUTPUT's file system.")
@click.option("--workers", type=click.IntRange(min=1), default=None, metavar="N",
              help="Run the independent jobs on a local dask cluster of N worker processes.")
@click.option("--backend", "backend", type=click.Choice(["pyhf", "unbinned"]), default=None,
              help="Fit the spec's inference section with this backend instead of its own.")
@click.option("--mode", "mode", type=click.Choice(["exact", "portable"]), default=None,
              help="The pyhf backend's mode instead of the spec's.")
@quiet_opt
@verbose_opt
@debug_opt
def run(spec_path: str, output: str | None, no_plots: bool, scale: float,
        scheduler: str | None, workers: int | None, backend: str | None, mode: str | None,
        quiet: bool, verbose: bool, debug: bool) -> None:
    """Run everything a spec declares; write OUTPUT/result.json, reweighter/, plots/.

    Each finished job (ensemble member) is also kept in OUTPUT/jobs/; running the same
    spec with the same ratiofit into the same OUTPUT again reuses them instead of
    training again (delete OUTPUT/jobs to retrain).
    """
    from .execution import DaskExecutor, LocalExecutor
    from .spec import load_spec, scale_spec
    from .workflow import run_spec

    def go() -> None:
        if scheduler is not None and workers is not None:
            raise RatiofitError("give --scheduler or --workers, not both")
        spec = _with_inference(load_spec(spec_path), backend, mode)
        if scale != 1.0:
            spec = scale_spec(spec, scale)
        out = Path(output or Path("runs") / Path(spec_path).stem)
        jobs_dir, fingerprint = out / "jobs", _run_fingerprint(spec)
        executor: LocalExecutor | DaskExecutor
        if scheduler is None and workers is None:
            executor = LocalExecutor(results_dir=jobs_dir, fingerprint=fingerprint)
        else:
            executor = DaskExecutor(scheduler=scheduler, workers=workers,
                                    results_dir=jobs_dir, fingerprint=fingerprint)
        with executor:
            result = run_spec(spec, out, progress=_progress(quiet, verbose),
                              fingerprint=fingerprint,
                              plots=False if no_plots else None, executor=executor)
        if executor.skipped:
            click.echo(f"reused finished job(s) {', '.join(executor.skipped)} from {jobs_dir} "
                       "(delete it to run them again)")
        _summary(result, out)

    _guard(debug, go)


def _with_inference(spec: Any, backend: str | None, mode: str | None) -> Any:
    """``spec`` with its inference section's backend or mode replaced (--backend, --mode),
    validated again as a whole (the unbinned backend has rules of its own)."""
    if backend is None and mode is None:
        return spec
    from .spec import with_inference

    return with_inference(spec, backend=backend, mode=mode)


def _run_fingerprint(spec: Any) -> str:
    """What a run's job results depend on: the resolved spec, ratiofit's source files,
    the versions of the distributions providing plugins and the size and modification
    time of the files that samples read (stored job results are reused only while all of
    them are unchanged)."""
    import hashlib
    import importlib.metadata as md

    import yaml

    from . import __version__
    from .registry import get_registry
    from .spec import resolved_dict

    h = hashlib.sha256(yaml.safe_dump(resolved_dict(spec), sort_keys=True).encode())
    h.update(__version__.encode())
    core = Path(__file__).resolve().parent
    files = set(core.rglob("*.py"))
    # Plugin code is found through the registry (core does not import the plugins package):
    # every module a registered plugin object is defined in.
    for rec in get_registry().all_records():
        module = sys.modules.get(type(rec.obj).__module__)
        source = getattr(module, "__file__", None)
        if source:
            files.add(Path(source).resolve())
    for f in sorted(files):
        h.update(f.name.encode())
        h.update(f.read_bytes())
    from .file_events import file_stamps

    for sample in spec.samples.values():  # options naming files (kinds path, path_list)
        declared = getattr(get_registry().get("source", sample.source), "options", {})
        for key, opt in declared.items():
            if opt.kind in ("path", "path_list") and sample.options.get(key):
                h.update(repr(file_stamps(sample.options[key])).encode())
    for dist in sorted({r.distribution for r in get_registry().all_records()}):
        try:
            h.update(f"{dist}=={md.version(dist)}".encode())
        except md.PackageNotFoundError:
            h.update(dist.encode())
    return h.hexdigest()[:20]


def _summary(result: dict[str, Any], out: Path) -> None:
    click.echo(f"wrote {out}")
    for p in result.get("closure", {}).get("points", []):
        if "rmse" in p:
            click.echo(f"closure {p['theta']}: RMSE(log w) = {p['rmse']:.4f}")
    for p in result.get("gold_closure", {}).get("points", []):
        worst = next((f for f in p["features"] if f["observable"] == p["worst_feature"]), None)
        detail = f"{p['reason']}; " if p["reason"] else ("" if worst is None else
                                 f"worst paired chi2/ndf {worst['chi2_ndf']:.2f} on "
                                 f"{worst['observable']}; ")
        click.echo(f"gold closure {p['theta']}: {p['verdict'].upper()} ({detail}exact "
                   f"weights' ESS {100 * p['ess_fraction']:.0f}%)")
    fit = result.get("fit")
    if fit:
        _fit_lines(fit)
    inference = result.get("inference")
    if inference:
        _inference_lines(inference)
    ens = result.get("ensemble")
    if ens:
        for n in ens["mean"]:
            click.echo(f"ensemble {n}: {ens['mean'][n]:.5g} ± {ens['std'][n]:.2g} "
                       f"({ens['members']} members)")


def _inference_lines(inference: dict[str, Any]) -> None:
    """The POI and nuisances of an inference fit with the learned ratio's share, the upper
    limit, and the inference's warnings."""
    fit = inference["fit"]
    comps = fit.get("error_components", {})
    names = [fit["poi"], *[n for n in fit["pulls"] if n in comps and n != fit["poi"]]]
    for n in names:
        i = fit["names"].index(n)
        pull = fit["pulls"].get(n)
        if pull and pull.get("theta") is not None:  # a reweighter nuisance: θ units
            line = (f"inference {n}: theta = {pull['theta']:.4g} ± {pull['theta_error']:.2g} "
                    f"(pull {pull['pull']:+.2f})")
        else:
            line = f"inference {n} = {fit['values'][i]:.4g} ± {fit['errors'][i]:.2g}"
        if n in comps:
            nonclosure = inference.get("learned_ratio", {}).get("nonclosure")
            what = "replicas, non-closure" if nonclosure else "replicas"
            line += (f" [learned ratio ({what}) "
                     f"{comps[n]['learned_ratio']:.2g}, "
                     + (f"simulation correction {comps[n]['simulation']:.2g}, "
                        if comps[n].get("simulation") else "")
                     + f"the rest {comps[n]['without_learned_ratio']:.2g}]")
        correction = fit.get("correction") or {}
        if correction.get("applied") and n in correction.get("parameters", {}) \
                and not (pull and pull.get("theta") is not None):  # (a nuisance's is in α)
            c = correction["parameters"][n]
            line += f" (learned fit {c['fitted']:.4g}, corrected by {-c['bias']:+.3g})"
        click.echo(line)
    for t in inference.get("learned_ratio", {}).get("nonclosure", []):
        click.echo(f"inference {t['nuisance']}: non-closure at theta = {t['theta']:.4g} "
                   f"(simulated vs reweighted): chi2/ndf = {t['chi2']:.1f}/{t['ndf']}, "
                   "a constrained modifier")
    ul = inference.get("upper_limit")
    if ul and "observed" in ul:
        click.echo(f"inference 95% CLs upper limit on {fit['poi']}: {ul['observed']:.3g}")
    for w in inference.get("warnings", []):
        click.echo(f"warning: {w}")


def _fit_lines(fit: dict[str, Any], label: str = "fit") -> None:
    """One line per fitted parameter (total error and its components), the closure gate's
    verdict, and a ``warning:`` line for each of the fit's warnings."""
    for n, e in fit["parameters"].items():
        line = f"{label} {n} = {e['value']:.5g} ± {e['error']:.2g}"
        comps = e.get("error_components")
        if comps:
            line += " (" + ", ".join(f"{k} {v:.2g}" for k, v in comps.items() if v > 0) + ")"
        if "analytic" in e:
            line += f"  [analytic MLE {e['analytic']:.5g} ± {e['analytic_error']:.2g}]"
        click.echo(line)
    learned = fit.get("learned")
    if learned is not None:
        moved = ", ".join(f"{n} {e['value']:.5g} ± {e['error']:.2g}"
                          for n, e in learned["parameters"].items())
        click.echo(f"  (simulation-corrected at the fitted theta; the learned fit alone: "
                   f"{moved})")
    gate = fit.get("gate")
    if gate is not None and gate.get("verdict") in ("pass", "fail"):
        power = gate["power"].get("score_detectable_bias_stat_errors",
                                  [gate["power"]["detectable_bias_stat_errors"]])
        click.echo(f"closure gate at the fitted theta: {gate['verdict'].upper()} "
                   f"(level {gate['level']:g}; sees a bias of "
                   f"{'/'.join(f'{p:.2g}' for p in power)} statistical errors half of the time)")
    for w in fit.get("warnings", []):
        click.echo(f"warning: {w}")


@main.command()
@click.argument("spec_path", type=click.Path(dir_okay=False))
@debug_opt
def validate(spec_path: str, debug: bool) -> None:
    """Check a spec; exit 0 when valid, 2 with a one-line error otherwise."""
    from .spec import load_spec

    _guard(debug, lambda: load_spec(spec_path))
    click.echo(f"{spec_path}: valid")


@main.command()
@click.option("--options", "show_options", is_flag=True, help="List each plugin's options.")
def plugins(show_options: bool) -> None:
    """List the registered plugins by kind, and any plugin that failed to load."""
    from .registry import get_registry

    reg = get_registry()
    for rec in reg.all_records():
        click.echo(f"{rec.kind:13s} {rec.name:14s} {rec.distribution} ({rec.plugin})")
        if show_options:
            for name, opt in getattr(rec.obj, "options", {}).items():
                click.echo(f"{'':15s}{name}: {opt.kind} = {opt.default!r}  {opt.doc}")
    problems = reg.problems()
    for p in problems:
        click.echo(f"problem: {p}", err=True)


@main.command()
@click.argument("spec_path", type=click.Path(dir_okay=False))
@click.option("-o", "--output", type=click.Path(file_okay=False), required=True)
@click.option("--member", type=click.IntRange(min=0), default=0, show_default=True,
              help="Train this ensemble member (its own seed, and its own samples with "
              "ensemble.training_samples: independent) into OUTPUT/ensemble/member-K/"
              "reweighter, the layout of `ratiofit run`; 0 is OUTPUT/reweighter.")
@quiet_opt
@verbose_opt
@debug_opt
def train(spec_path: str, output: str, member: int, quiet: bool, verbose: bool,
          debug: bool) -> None:
    """Train (and calibrate) the spec's reweighter into OUTPUT/reweighter."""
    from .registry import get_registry
    from .spec import load_spec
    from .workflow import Samples, train_from_spec

    def go() -> None:
        spec = load_spec(spec_path)
        if spec.reweighter is None:
            raise RatiofitError(f"{spec_path}: the spec has no 'reweighter' section")
        reg = get_registry()
        if member >= spec.ensemble:
            raise RatiofitError(f"{spec_path}: --member {member}: the spec's ensemble has "
                                f"{spec.ensemble} member(s)")
        out = Path(output)
        rw = train_from_spec(spec, Samples(spec, reg), member=member,
                             checkpoint_dir=out / "checkpoints" / f"member-{member}",
                             progress=_progress(quiet, verbose), registry=reg)
        target = out / "reweighter" if member == 0 else \
            out / "ensemble" / f"member-{member}" / "reweighter"
        rw.save(target)
        click.echo(f"wrote {target}")

    _guard(debug, go)


@main.command()
@click.argument("spec_path", type=click.Path(dir_okay=False))
@click.option("--reweighter", "reweighter_dir", type=click.Path(), required=True,
              help="A saved reweighter directory (trained for SPEC).")
@click.option("-o", "--output", type=click.Path(file_okay=False), required=True)
@click.option("--member", type=click.IntRange(min=0), default=0, show_default=True,
              help="The ensemble member it is (its own samples with "
              "ensemble.training_samples: independent); sets the output layout as for train.")
@debug_opt
def calibrate(spec_path: str, reweighter_dir: str, output: str, member: int,
              debug: bool) -> None:
    """Re-calibrate a saved reweighter with the spec's calibration section (no retraining);
    write OUTPUT/reweighter (or OUTPUT/ensemble/member-K/reweighter)."""
    from .registry import get_registry
    from .reweighter import Reweighter
    from .spec import load_spec
    from .workflow import Samples, calibrate_from_spec

    def go() -> None:
        spec = load_spec(spec_path)
        if spec.reweighter is None:
            raise RatiofitError(f"{spec_path}: the spec has no 'reweighter' section")
        if member >= spec.ensemble:
            raise RatiofitError(f"{spec_path}: --member {member}: the spec's ensemble has "
                                f"{spec.ensemble} member(s)")
        reg = get_registry()
        rw = Reweighter.load(reweighter_dir, registry=reg)
        wanted = list(spec.reweighter.parameters)
        if rw.theta_names != wanted:
            raise RatiofitError(f"{reweighter_dir}: parameterised in {rw.theta_names}, the "
                                f"spec's reweighter in {wanted}")
        calibrate_from_spec(spec, rw, Samples(spec, reg), member=member)
        out = Path(output)
        target = out / "reweighter" if member == 0 else \
            out / "ensemble" / f"member-{member}" / "reweighter"
        rw.metadata["calibrated_from"] = str(reweighter_dir)
        rw.save(target)
        click.echo(f"wrote {target}")

    _guard(debug, go)


@main.command()
@click.argument("spec_path", type=click.Path(dir_okay=False))
@click.option("--reweighter", "reweighter_dirs", type=click.Path(), required=True, multiple=True,
              help="A saved reweighter directory; given several times, the fit uses the "
              "members' mean log-ratio (AveragedReweighter).")
@click.option("-o", "--output", type=click.Path(file_okay=False), required=True)
@click.option("--strategy", default=None, help="Use this strategy instead of the spec's.")
@click.option("--option", "strategy_options", multiple=True, metavar="NAME=VALUE",
              help="Set a strategy option (VALUE read as YAML), over the spec's; repeatable.")
@debug_opt
def fit(spec_path: str, reweighter_dirs: tuple[str, ...], output: str, strategy: str | None,
        strategy_options: tuple[str, ...], debug: bool) -> None:
    """Fit the spec's data with a saved reweighter; write OUTPUT/fit.json."""
    from .honest import finish_fit
    from .registry import get_registry
    from .reweighter import load_reweighters
    from .spec import load_spec
    from .workflow import Samples, analytic_fit, fit_reweighter, with_analytic, write_json

    def go() -> None:
        spec = load_spec(spec_path)
        if spec.fit is None:
            raise RatiofitError(f"{spec_path}: the spec has no 'fit' section")
        reg = get_registry()
        if strategy is not None or strategy_options:
            from dataclasses import replace

            from .options import OptionError, resolve_options

            name = strategy or spec.fit.strategy
            given = {} if strategy is not None else dict(spec.fit.options)
            for item in strategy_options:
                key, sep, text = item.partition("=")
                if not sep or not key:
                    raise RatiofitError(f"--option {item!r}: expected NAME=VALUE")
                given[key.strip()] = yaml.safe_load(text)
            try:
                options = resolve_options(reg.get("strategy", name).options, given,
                                          where="--option")
            except OptionError as exc:
                raise RatiofitError(f"--option {exc.field}: {exc.message} "
                                    f"(strategy '{name}')") from None
            spec = replace(spec, fit=replace(spec.fit, strategy=name, options=options))
        rw = load_reweighters(list(reweighter_dirs), registry=reg)
        samples = Samples(spec, reg)
        res = fit_reweighter(spec, rw, samples, reg, member=0).to_dict()
        # The replicas `ratiofit run` saved next to this reweighter (RUN/replicas/…) give
        # the learned ratio's error; an average of several reweighters has none saved.
        saved = sorted(Path(reweighter_dirs[0]).resolve().parent.glob(
            "replicas/replica-*/reweighter")) if len(reweighter_dirs) == 1 else []
        finish_fit(spec, rw, samples, reg, res, outdir=Path(output), executor=None,
                   progress=False, saved_replicas=saved, train=False)
        res = with_analytic(res, analytic_fit(spec, samples, reg))
        from .provenance import provenance

        write_json(Path(output) / "fit.json", {"ratiofit": provenance(), "fit": res,
                                               "spec": spec_path,
                                               "reweighters": list(reweighter_dirs)})
        _summary({"fit": res}, Path(output))

    _guard(debug, go)


@main.command()
@click.argument("spec_path", type=click.Path(dir_okay=False))
@click.option("--repeats", type=click.IntRange(min=2), required=True,
              help="Number of whole pipelines (fresh samples, training and data) to run.")
@click.option("-o", "--output", type=click.Path(file_okay=False), default=None,
              help="Output directory (default: runs/<spec name>-coverage).")
@click.option("--truths", type=click.Choice(["range", "spec"]), default="range",
              show_default=True, help="Draw the data's truths uniformly over the range, or "
              "keep the spec's data theta.")
@click.option("--truth-range", "truth_ranges", multiple=True, metavar="NAME=LOW:HIGH",
              help="Draw NAME's truths in [LOW, HIGH] (default: the central 90%% of its "
              "range); repeatable.")
@click.option("--scale", type=float, default=1.0, show_default=True,
              help="Multiply every sample's n_events (say which scale in any report).")
@click.option("--scheduler", metavar="ADDR", default=None,
              help="Run the repeats on this dask scheduler.")
@click.option("--workers", type=click.IntRange(min=1), default=None, metavar="N",
              help="Run the repeats on a local dask cluster of N worker processes.")
@click.option("--backend", "backend", type=click.Choice(["pyhf", "unbinned"]), default=None,
              help="Fit the spec's inference section with this backend instead of its own.")
@click.option("--mode", "mode", type=click.Choice(["exact", "portable"]), default=None,
              help="The pyhf backend's mode instead of the spec's.")
@quiet_opt
@verbose_opt
@debug_opt
def coverage(spec_path: str, repeats: int, output: str | None, truths: str,
             truth_ranges: tuple[str, ...], scale: float, scheduler: str | None,
             workers: int | None, backend: str | None, mode: str | None, quiet: bool,
             verbose: bool, debug: bool) -> None:
    """Repeat SPEC's whole pipeline; report pulls and 68%/95% coverage of the truth.

    Writes OUTPUT/coverage.json and OUTPUT/pulls.png; each finished repeat is kept in
    OUTPUT/jobs/ and reused by a rerun with the same spec and ratiofit.
    """
    from .coverage import plot_pulls, run_coverage
    from .coverage import truth_ranges as default_truth_ranges
    from .execution import DaskExecutor, LocalExecutor
    from .spec import load_spec, scale_spec
    from .workflow import write_json

    def go() -> None:
        if scheduler is not None and workers is not None:
            raise RatiofitError("give --scheduler or --workers, not both")
        _progress(quiet, verbose)  # the repeats draw no bars; this sets the stage lines
        spec = _with_inference(load_spec(spec_path), backend, mode)
        if spec.fit is None and spec.inference is None:
            raise RatiofitError(f"{spec_path}: coverage needs a 'fit' or an 'inference' "
                                "section")
        if scale != 1.0:
            spec = scale_spec(spec, scale)
        ranges: dict[str, tuple[float, float]] = {}
        defaults = default_truth_ranges(spec)
        fitted = list(defaults)
        for item in truth_ranges:
            name, sep, text = item.partition("=")
            lo, sep2, hi = text.partition(":")
            try:
                bounds = (float(lo), float(hi))
            except ValueError:
                bounds = (float("nan"), float("nan"))
            # a fit's parameter must stay in its range; an inference's POI and θ are free
            inside = spec.fit is None or (name in fitted and all(
                spec.parameters[name].contains(b) for b in bounds))
            if not sep or not sep2 or name not in fitted \
                    or not all(np.isfinite(bounds)) or not bounds[0] < bounds[1] \
                    or not inside:
                raise RatiofitError(f"--truth-range {item!r}: expected NAME=LOW:HIGH with NAME "
                                    f"one of {fitted} and LOW < HIGH "
                                    "inside its range")
            ranges[name] = bounds
        out = Path(output or Path("runs") / f"{Path(spec_path).stem}-coverage")
        # the ranges the truths are drawn from, defaults included: a finished repeat is
        # reused only for the same truths
        fingerprint = (_run_fingerprint(spec)
                       + f"-cov-{truths}-{sorted({**defaults, **ranges}.items())}")
        executor: LocalExecutor | DaskExecutor
        if scheduler is None and workers is None:
            executor = LocalExecutor(results_dir=out / "jobs", fingerprint=fingerprint)
        else:
            executor = DaskExecutor(scheduler=scheduler, workers=workers,
                                    results_dir=out / "jobs", fingerprint=fingerprint)
        with executor:
            result = run_coverage(spec, repeats=repeats, outdir=out / "repeats", truths=truths,
                                  truth_range=ranges, executor=executor)
        result["scale"] = scale
        write_json(out / "coverage.json", result)
        plot_pulls(result, out / "pulls.png")
        click.echo(f"wrote {out / 'coverage.json'}")
        for n, s in result["summary"].items():
            line = (f"coverage {n}: 68% {100 * s['covered_68']:.0f} ± "
                    f"{100 * s['covered_68_error']:.0f}%, 95% {100 * s['covered_95']:.0f} ± "
                    f"{100 * s['covered_95_error']:.0f}%, pull {s['pull_mean']:+.2f} ± "
                    f"{s['pull_mean_error']:.2f}, width {s['pull_width']:.2f} ± "
                    f"{s['pull_width_error']:.2f} ({s['repeats']} repeats)")
            if "median_error_over_analytic" in s:
                line += f", error/analytic {s['median_error_over_analytic']:.2f}"
            click.echo(line)

    _guard(debug, go)


@main.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@debug_opt
def report(run_dir: str, debug: bool) -> None:
    """Redraw the plots of a run directory from its result.json."""
    from .report import report_directory

    files = _guard(debug, lambda: report_directory(run_dir))
    click.echo(f"wrote {len(files)} plot(s) to {Path(run_dir) / 'plots'}")


@main.command()
@click.argument("spec_path", type=click.Path(dir_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True,
              help="The blinded parquet file; its sealed truth goes to OUTPUT.truth.json.")
@click.option("--sample", default=None, help="The sample to blind (default: the fit's data).")
@click.option("--seed", type=click.IntRange(min=0), default=None,
              help="Seed of θ and the events (default: drawn from the system's entropy and "
                   "sealed with the truth).")
@click.option("--n-events", type=click.IntRange(min=1), default=None,
              help="Events to generate (default: the sample's).")
@debug_opt
def blind(spec_path: str, output: str, sample: str | None, seed: int | None,
          n_events: int | None, debug: bool) -> None:
    """Generate SPEC's data sample at a θ drawn at random (central 90 % of each fitted
    parameter's range) into a parquet file, its θ sealed beside it; no θ is printed."""
    from .blinding import blind_sample
    from .registry import get_registry
    from .spec import load_spec

    def go() -> Any:
        registry = get_registry()
        spec = load_spec(spec_path, registry=registry)
        return blind_sample(spec, output, registry=registry, sample=sample, seed=seed,
                            n_events=n_events)

    made = _guard(debug, go)
    click.echo(f"wrote {made.n_events} blinded events to {made.data} and the sealed truth "
               f"to {made.truth} (do not open it before the fit is final); the sample that "
               f"reads them, for the spec's samples:\n{made.sample_yaml}")


@main.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--truth", "truth_file", type=click.Path(dir_okay=False), required=True,
              help="The sealed truth file that 'ratiofit blind' wrote.")
@debug_opt
def unblind(run_dir: str, truth_file: str, debug: bool) -> None:
    """Open a blinded sample's sealed truth and compare RUN_DIR's fit with it; writes
    RUN_DIR/unblinded.json."""
    from .blinding import unblind as compare

    out = _guard(debug, lambda: compare(run_dir, truth_file))
    for n, r in out["parameters"].items():
        click.echo(f"{n}: truth {r['truth']:.6g}, fit {r['value']:.6g} ± {r['error']:.3g}, "
                   f"pull {r['pull']:+.2f}, inside 68 %: {'yes' if r['in_68'] else 'no'}, "
                   f"inside 95 %: {'yes' if r['in_95'] else 'no'}"
                   + (" (the fit was on its range limit)" if r["at_range_limit"] else ""))
    click.echo(f"wrote {Path(run_dir) / 'unblinded.json'}")


def _reweighter_dir(path: str) -> str:
    """A run directory stands for its ``reweighter/`` (ensemble member 0)."""
    p = Path(path)
    if not (p / "metadata.json").exists() and (p / "reweighter" / "metadata.json").exists():
        if (p / "ensemble").is_dir():
            click.echo(f"note: {path} is a run directory: using {p / 'reweighter'} (ensemble "
                       "member 0); give each member's reweighter with --reweighter to use "
                       "their mean", err=True)
        return str(p / "reweighter")
    return path


@main.command()
@click.option("--reweighter", "reweighter_dirs", type=click.Path(), required=True, multiple=True,
              help="A saved reweighter directory, or a run directory (its reweighter/); "
              "given several times, the members' mean log-ratio.")
@click.option("--input", "inputs", type=click.Path(dir_okay=False), required=True,
              multiple=True, help="A parquet (.parquet) or ROOT (.root) file; repeatable.")
@click.option("--theta", "theta_items", multiple=True, metavar="NAME=VALUE",
              help="The θ to reweight to: every parameter of the reweighter, inside its "
              "range; repeatable.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True,
              help="OUT.parquet (columns log_w, w) or OUT.root (a friend tree "
              "'ratiofit_weights' with branches log_w, w). With several inputs, input "
              "NAME.EXT writes OUT_STEM.NAME.OUT_EXT beside OUT.")
@click.option("--tree", default=None, help="The TTree of ROOT inputs (default: the file's "
              "only TTree).")
@click.option("--step-size", type=click.IntRange(min=1), default=131_072, show_default=True,
              help="Events read, evaluated and written at a time (2^17: whole evaluation "
              "batches of 65536).")
@click.option("--feature", "feature_items", multiple=True, metavar="NAME=COLUMN",
              help="Read the reweighter's feature NAME from COLUMN (default: the column "
              "named NAME); repeatable.")
@click.option("--particle", "particle_items", multiple=True, metavar="FIELD=BRANCH",
              help="Read particle field FIELD from the jagged column/branch BRANCH "
              "(default: the one named FIELD); repeatable.")
@quiet_opt
@verbose_opt
@debug_opt
def reweight(reweighter_dirs: tuple[str, ...], inputs: tuple[str, ...],
             theta_items: tuple[str, ...], output: str, tree: str | None, step_size: int,
             feature_items: tuple[str, ...], particle_items: tuple[str, ...], quiet: bool,
             verbose: bool, debug: bool) -> None:
    """Write log w(x, θ) and w = exp(log w) of every event in the input files.

    The reweighter's features (and particle fields) are read by name, in chunks of
    --step-size events; the output holds one row (entry) per input row (entry), in the
    same order. A NaN/inf/null input value is refused, naming the file, column and row.
    Outputs are written to temporary files and renamed at the end: an error or Ctrl-C
    leaves none.
    """
    from .apply import parse_assignments, parse_theta, reweight_files
    from .registry import get_registry
    from .reweighter import load_reweighters

    def go() -> None:
        dirs = [_reweighter_dir(d) for d in reweighter_dirs]
        features = parse_assignments(feature_items, option="--feature")
        particles = parse_assignments(particle_items, option="--particle")
        rw = load_reweighters(list(dirs), registry=get_registry())
        theta = parse_theta(theta_items, rw.parameters)
        from . import __version__

        members = getattr(rw, "members", [rw])
        record: dict[str, Any] = {
            "ratiofit": __version__,
            "reweighters": [{"path": d, "model_sha256": m.metadata.get("model_sha256")}
                            for d, m in zip(dirs, members, strict=True)]}
        summaries = reweight_files(rw, list(inputs), theta=theta, output=output, tree=tree,
                                   step_size=step_size, features=features,
                                   particles=particles, progress=_progress(quiet, verbose),
                                   record=record)
        for s in summaries:
            line = (f"wrote {s['output']} ({s['events']} events of {s['input']}; mean w "
                    f"{s['mean_w']:.4g}, ESS {s['ess']:.4g})")
            click.echo(line)
            if s["nonfinite_w"]:
                click.echo(f"warning: {s['output']}: {s['nonfinite_w']} event(s) with w = inf "
                           "(log w > 709): the reweighter extrapolates there", err=True)
            if s["outside_training_range"]:
                click.echo(f"warning: {s['output']}: {s['outside_training_range']} event(s) "
                           "more than one training span outside the features' training "
                           "range: their weights are extrapolations", err=True)

    _guard(debug, go)


@main.command()
@click.option("--reweighter", "reweighter_dir", type=click.Path(), required=True,
              help="A saved reweighter directory, or a run directory (its reweighter/).")
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True,
              help="OUT.onnx; the sidecar OUT.json is written beside it.")
@click.option("--opset", type=click.IntRange(min=13), default=None,
              help="ONNX opset (default: tf2onnx's).")
@debug_opt
def export(reweighter_dir: str, output: str, opset: int | None, debug: bool) -> None:
    """Write the reweighter as ONNX, checked against Keras with onnxruntime.

    The ONNX model takes the Keras model's inputs (float32: features [n, d], particles
    [n, m, k] and mask [n, m] for particle reweighters, theta [n, p]; raw values, the
    standardisation is inside) and returns log_w [n], calibration included. OUT.json
    records the inputs' columns, θ's names and ranges, the SHA-256 of the source model and
    of the ONNX file, and the check. Needs the 'export' extra: pip install
    'ratiofit[export]' (tf2onnx, onnx, onnxruntime).
    """
    from .export import export_onnx, sidecar_path
    from .registry import get_registry
    from .reweighter import Reweighter

    def go() -> None:
        d = _reweighter_dir(reweighter_dir)
        rw = Reweighter.load(d, registry=get_registry())
        doc = export_onnx(rw, output, source=d, opset=opset)
        check = doc["check"]
        click.echo(f"wrote {output} and {sidecar_path(output)}")
        click.echo(f"check: onnxruntime vs Keras on {check['events']} random events: max "
                   f"|d log w| = {check['max_abs_difference']:.2g} (relative "
                   f"{check['max_relative_difference']:.2g}, tolerance {check['tolerance']:g})")

    _guard(debug, go)


if __name__ == "__main__":  # pragma: no cover
    main()
