"""Write docs/coverage.md from the coverage runs under runs/ (``ratiofit coverage``).

Each row is read from ``runs/<name>/coverage.json``; the command that made it is in
COVERAGE below and printed next to the table. A run that was stopped before its end has
no coverage.json: its finished repeats (``runs/<name>/jobs/repeat-K.json``) are summarised
with the same :func:`ratiofit.coverage.summarise` and the row says how many were done.
Each run's summary is kept under docs/data/coverage/<name>.json (committed), so the
table is regenerated on a machine without the run directories; a run with neither keeps
the rows an earlier generation wrote for its command (the note says so), and a run never
made is listed as such. The finished repeats' job files of the runs in :data:`KEEP_JOBS`
are kept too, verbatim, under docs/data/coverage/<name>/ (a few kB each: the per-repeat
values, errors, components and correction diagnostics), so that a later machine can
summarise them again or finish a stopped run: ``python docs/coverage_tables.py --restore
NAME`` puts them back into runs/NAME/jobs/, and the run's command, at the commit its
note names, then runs only the repeats still missing (a job result is reused while the
spec and ratiofit's source are unchanged, ``ratiofit coverage --help``).
Usage: ``python docs/coverage_tables.py`` (``make docs-tables`` runs it).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STORE = ROOT / "docs" / "data" / "coverage"
PREVIOUS = (ROOT / "docs" / "coverage.md").read_text() \
    if (ROOT / "docs" / "coverage.md").exists() else ""


def _previous_rows(command: str) -> list[str]:
    """The rows an earlier generation of docs/coverage.md wrote for ``command``."""
    return [line for line in PREVIOUS.splitlines() if line.startswith(f"| `{command}`")]


#: Runs whose finished repeats' job files are kept under STORE/<run>/ (module docstring).
KEEP_JOBS = ("coverage-inference_analysis-unbinned-0.1-bracket",
             "coverage-inference_analysis-unbinned-0.1-jmapped")


def _keep_jobs(run: str) -> None:
    """Copy runs/<run>/jobs/repeat-*.json into STORE/<run>/ (those not kept yet or changed)."""
    jobs = ROOT / "runs" / run / "jobs"
    if run not in KEEP_JOBS or not jobs.is_dir():
        return
    from ratiofit._atomic import write_text_atomic

    dest = STORE / run
    dest.mkdir(parents=True, exist_ok=True)
    for f in sorted(jobs.glob("repeat-*.json")):
        text = f.read_text()
        if not (dest / f.name).exists() or (dest / f.name).read_text() != text:
            write_text_atomic(dest / f.name, text)


def restore_jobs(run: str) -> int:
    """Put STORE/<run>/'s kept job files back into runs/<run>/jobs/ (never over an existing
    one); returns how many were written."""
    from ratiofit._atomic import write_text_atomic

    kept = sorted((STORE / run).glob("repeat-*.json"))
    if not kept:
        raise SystemExit(f"docs/data/coverage/{run}/ holds no kept repeats")
    jobs = ROOT / "runs" / run / "jobs"
    jobs.mkdir(parents=True, exist_ok=True)
    n = 0
    for f in kept:
        if not (jobs / f.name).exists():
            write_text_atomic(jobs / f.name, f.read_text())
            n += 1
    return n


def _summary(run: str, scale: float) -> dict | None:
    """A coverage run's summary: from runs/ (then kept in STORE), else the kept one."""
    path = ROOT / "runs" / run / "coverage.json"
    _keep_jobs(run)
    repeats = _repeats(ROOT / "runs" / run / "jobs")
    res = json.loads(path.read_text()) if path.exists() else _partial(repeats, scale)
    if res is not None:
        keep = {k: res[k] for k in ("summary", "gate_failures", "scale", "ratiofit_commit")
                if k in res}
        keep["limit_split"] = _limit_split(repeats)
        from ratiofit._atomic import write_text_atomic

        STORE.mkdir(parents=True, exist_ok=True)
        write_text_atomic(STORE / f"{run}.json",
                          json.dumps(keep, indent=1, sort_keys=True) + "\n")
        return keep
    stored = STORE / f"{run}.json"
    return json.loads(stored.read_text()) if stored.exists() else None

#: run directory → (the command that makes it, its --scale, a note on the code it ran);
#: every spec is committed under specs/. A run's coverage.json names its commit.
COVERAGE = {
    "coverage-quickstart-0.1": (
        "ratiofit coverage specs/quickstart.yaml --repeats 50 --scale 0.1 "
        "-o runs/coverage-quickstart-0.1", 0.1,
        "run with the code of commit c2085da (its coverage.json names a later commit, "
        "the HEAD when the run ended; the commits between changed no fit)"),
    "coverage-quickstart": ("ratiofit coverage specs/quickstart.yaml --repeats 10 "
                            "-o runs/coverage-quickstart", 1.0, ""),
    "coverage-inference_gaussian": (
        "ratiofit coverage specs/inference_gaussian.yaml --repeats 30 "
        "-o runs/coverage-inference_gaussian", 1.0,
        "with the non-closure modifier at the fitted theta (commit 8732a17); its "
        "chi2/ndf (repeat-K/result.json, inference.learned_ratio.nonclosure) lay between "
        "0.36 and 1.43 in all 30 repeats: the learned ratio closes at the fitted theta "
        "within the Monte-Carlo noise, so no bias of the ratio beyond that noise explains "
        "the POI's width above 1"),
    "coverage-inference_gaussian-7162ed7": (
        "ratiofit coverage specs/inference_gaussian.yaml --repeats 30 "
        "-o runs/coverage-inference_gaussian (at commit 7162ed7)", 1.0,
        "the same 30 repeats (same seeds) before the non-closure modifier"),
    "coverage-dctr_gaussian-0.03": ("ratiofit coverage specs/dctr_gaussian.yaml --repeats 10 "
                                    "--scale 0.03 -o runs/coverage-dctr_gaussian-0.03", 0.03,
                                    ""),
    "coverage-srgn_gaussian-0.25": ("ratiofit coverage specs/srgn_gaussian.yaml --repeats 10 "
                                    "--scale 0.25 -o runs/coverage-srgn_gaussian-0.25", 0.25,
                                    ""),
    "coverage-inference_analysis-0.25": (
        "ratiofit coverage specs/inference_analysis.yaml --repeats 100 --scale 0.25 "
        "-o runs/coverage-inference_analysis-0.25", 0.25,
        "pyhf, exact mode: two channels, the learned (mean, width) nuisance with its "
        "learned-ratio and non-closure modifiers, lumi, normsys, staterror"),
    "coverage-inference_analysis-unbinned-0.1-hesse": (
        "ratiofit coverage specs/inference_analysis.yaml --backend unbinned --repeats 100 "
        "--scale 0.1 -o runs/coverage-inference_analysis-unbinned-0.1 (at commit ccc7e1e)",
        0.1,
        "the unbinned backend with the signal's density ratio trained with "
        "inference.ratio_training in every repeat and the replicas' refits as the learned "
        "ratios' error, its POI error HESSE's (symmetric; MINOS only near the bound). "
        "Stopped after 29 repeats: the POI under-covered, with negative pulls. With a few "
        "signal events per unit of POI the likelihood is not parabolic and HESSE's error, "
        "taken at the fitted POI, shrinks with it; at the truth of the repeats whose POI "
        "fell three HESSE errors below it, 2·ΔNLL of the profile likelihood was 2.4-3.7 "
        "(a 1.6-1.9σ fluctuation). An earlier run of the same command, before "
        "inference.ratio_training (commit 516e8a7), failed outright: there the trained "
        "signal ratio did not close"),
    "coverage-inference_analysis-unbinned-0.1-minos": (
        "ratiofit coverage specs/inference_analysis.yaml --backend unbinned --repeats 100 "
        "--scale 0.1 --workers 2 -o runs/coverage-inference_analysis-unbinned-0.1 (code of "
        "commit 6d09e25)", 0.1,
        "the POI's profile-likelihood (MINOS) intervals, each side widened by the learned "
        "ratios' share; a repeat covers where its interval holds the truth, and its pull is "
        "taken with the side towards the truth. mu-hat - truth averaged -0.80 +- 0.16: "
        "refitting the same 100 repeats' data with the exact (mean, width) ratio "
        "(ratiofit.testing.analytic_gaussian_width_reweighter) gave POI 68 % coverage 66 %, "
        "pull mean -0.10 +- 0.10; with the exact background ratio and the learned signal "
        "ratio mu-hat moved by +0.01 +- 0.02 (35 repeats), with the learned background "
        "ratio by -0.59 +- 0.14 (27 repeats) (python docs/unbinned_bias.py --summary): the "
        "learned reweighter's bias, common to its bootstrap replicas, which the simulation "
        "correction (next row) is for"),
    "coverage-inference_analysis-unbinned-0.1": (
        "ratiofit coverage specs/inference_analysis.yaml --backend unbinned --repeats 100 "
        "--scale 0.1 --workers 2 -o runs/coverage-inference_analysis-unbinned-0.1", 0.1,
        "with the simulation correction (ratiofit.unbinned_correction) as of commit "
        "3c0f973: simulated data at the fitted point refitted, fixed-point steps (at most "
        "4) to the point whose simulation the learned model fits to the data's values, the "
        "POI's MINOS intervals moved with it and widened by the learned ratios' and the "
        "correction's shares. Stopped early for lack of CPU time (2 shared cores, about 5 "
        "repeats per 10 minutes). In 29 of the 46 finished repeats the steps had not "
        "converged after 4 simulations (the learned width dependence put the simulated "
        "fits on the range limit); the secant (Broyden) steps, the error widening through "
        "the Jacobian and the unconverged-step error of commit b64fd18 came after it and "
        "are not measured here"),
    "coverage-inference_analysis-unbinned-0.1-secant": (
        "ratiofit coverage specs/inference_analysis.yaml --backend unbinned --repeats 100 "
        "--scale 0.1 --workers 2 -o runs/coverage-inference_analysis-unbinned-0.1-secant "
        "(code of commit 4404b20)", 0.1,
        "the simulation correction with Broyden secant steps (up to 6 simulations), the "
        "data's error widened through the Jacobian, an unconverged correction's last step "
        "added to its error (commit b64fd18; 4404b20 changed no number). The "
        "first 22 repeats ran with the code of bce8306 in an earlier session and were "
        "reused: rerun with 4404b20, repeats 0-4, 6 and 8 gave the same POI pulls to the "
        "last digit"),
    "coverage-inference_analysis-0.25-limits": (
        "ratiofit coverage specs/inference_analysis.yaml --repeats 100 --scale 0.25 "
        "-o runs/coverage-inference_analysis-0.25-limits (code of commit 6e5495c)", 0.25,
        "pyhf, exact mode, as coverage-inference_analysis-0.25 above but with the binned "
        "simulation correction (ratiofit.binned_correction) in place of the non-closure "
        "modifier, a learned fit on a range limit resolved by probes and the others' "
        "errors widened by the held span (ratiofit.refit_correction); the 'learned fit, "
        "before the correction' rows are "
        "the same repeats' fit with the learned-ratio modifiers, before the correction"),
    "coverage-inference_analysis-unbinned-0.1-bound": (
        "ratiofit coverage specs/inference_analysis.yaml --backend unbinned --repeats 100 "
        "--scale 0.1 --workers 2 -o runs/coverage-inference_analysis-unbinned-0.1-bound "
        "(code of commit 51b127d)", 0.1,
        "as the secant run above, plus: a learned fit on a nuisance's range limit resolved "
        "by probes (3b79642), and the POI biased onto its bound 0 probed the same way, its "
        "intervals running from 0 to the span's edge plus the learned upper side "
        "(51b127d; in the secant run the 17 repeats whose learned mu sat on 0 covered in "
        "1 of 17 at 68 %)"),
    "coverage-inference_analysis-0.25-bound": (
        "ratiofit coverage specs/inference_analysis.yaml --repeats 100 --scale 0.25 "
        "-o runs/coverage-inference_analysis-0.25-bound (code of commit 51b127d)", 0.25,
        "pyhf, exact mode, as the -limits run above, plus the POI's bound probed and its "
        "68 % / 95 % intervals (the learned +-1 and +-1.96 errors mapped through the "
        "correction) used for its coverage. Six repeats met a bug fixed in 7d2c15d (next "
        "row): a fit started on the width's range limit stopped on theta = NaN, so "
        "repeat 66's learned fit failed (counted as not covering) and in repeats 44, 67, "
        "74, 77 and 97 the simulated data's fit failed, leaving the learned fit "
        "uncorrected (with a warning); for the same reason this run has no 'learned fit' "
        "rows (they need every repeat)"),
    "coverage-inference_analysis-0.25-bound-inset": (
        "ratiofit coverage specs/inference_analysis.yaml --repeats 100 --scale 0.25 "
        "--workers 2 -o runs/coverage-inference_analysis-0.25-bound-inset (code of commit "
        "7d2c15d)", 0.25,
        "as the -bound run above, with a binned fit's start on a bound moved a thousandth "
        "of the range inside (7d2c15d). That did not cure the NaN fits: repeat 93's "
        "learned fit failed (counted as not covering), and in repeats 44, 67, 74, 77 and "
        "97 the simulated data's fit failed, leaving the learned fit uncorrected (hence "
        "no 'learned fit' rows); the cause, a NaN 2NLL at large histosys pulls, is fixed "
        "in 695f070 (next row)"),
    "coverage-inference_analysis-0.25-finite": (
        "ratiofit coverage specs/inference_analysis.yaml --repeats 100 --scale 0.25 "
        "-o runs/coverage-inference_analysis-0.25-finite (code of commit 695f070)", 0.25,
        "as the -bound-inset run above, with pyhf's non-finite logpdf a finite wall for "
        "MIGRAD and a failed fit tried once more from the suggested start (695f070): no "
        "repeat failed and every repeat was corrected. The width nuisance over-covers in "
        "the repeats whose learned fit did not end on a limit (its rows 'the other "
        "repeats'): its reported error is larger than the corrected values' scatter. The "
        "correction widens a statistical error by |J^-1| where the learned fit follows a "
        "parameter less than one-to-one but never shrinks one where it follows more "
        "steeply (ratiofit.refit_correction.RefitCorrection.error_scale); the repeats of "
        "later runs record J's diagonal to tell (365dc7a)"),
    "coverage-inference_analysis-0.25-measured": (
        "ratiofit coverage specs/inference_analysis.yaml --repeats 100 --scale 0.25 "
        "--workers 2 -o runs/coverage-inference_analysis-0.25-measured (code of commit "
        "40500cd)", 0.25,
        "as the -finite run above, with the learned fit's errors and the simulation's "
        "noise mapped through J^-1 both ways, an error shrunk only where a secant step "
        "measured J above the noise (40500cd). Width still over-covers away from its "
        "limits: in the repeats near its nominal value the learned fit is nearly "
        "unbiased, the steps are too small to measure J by MEASURED_STEP and its error "
        "is left as large as the learned fit's (each repeat's 'correction' entry has J's "
        "diagonal and the error scale)"),
    "coverage-inference_analysis-0.25-probed": (
        "ratiofit coverage specs/inference_analysis.yaml --repeats 100 --scale 0.25 "
        "--workers 2 -o runs/coverage-inference_analysis-0.25-probed (code of commit "
        "d103fbb)", 0.25,
        "as the -measured run above, with J probed (one simulation a measuring step away, "
        "along the parameter alone) for each reweighter nuisance that no step of the solve "
        "had moved far enough to measure it (d103fbb). Stopped after 33 repeats when "
        "their corrections showed the probes' steps, sized for J = 1, reaching the range's "
        "limit in f where J is about 3 (a J cut short: the width's error shrunk too "
        "little); the next run sizes them by the J the solve suggests"),
    "coverage-inference_analysis-0.25-local": (
        "ratiofit coverage specs/inference_analysis.yaml --repeats 100 --scale 0.25 "
        "--workers 2 -o runs/coverage-inference_analysis-0.25-local (code of commit "
        "c7111b2)", 0.25,
        "as the -probed run above, with J's learned columns from probes only, each "
        "changing the simulated fit by the measuring threshold at the J the solve "
        "suggests, towards the side with room in the range (c7111b2). Stopped after 63 "
        "repeats to rerun with the lumi and normsys constraints' auxiliary data drawn per "
        "repeat (next run): here they stayed at their nominal values while the fit's "
        "errors held their uncertainty (suspected of the POI's over-coverage, which the "
        "next run showed they were not)"),
    "coverage-inference_analysis-0.25-aux": (
        "ratiofit coverage specs/inference_analysis.yaml --repeats 100 --scale 0.25 "
        "--workers 2 -o runs/coverage-inference_analysis-0.25-aux (code of commit "
        "023d2ac)", 0.25,
        "as the -local run above, with each repeat's lumi and normsys auxiliary "
        "measurements drawn around the nominal its data are simulated at (023d2ac). "
        "The POI barely moves with them here (the control region fixes the normalisation; "
        "per repeat the POI moved by a few hundredths of its error). Its reported error "
        "is the learned fit's times 1.05 at the median (the simulation's noise) and 1.17 "
        "on average (the unconverged repeats' last step, the spans of repeats on a "
        "limit); the learned fit's own interval covered 71 % of the same repeats"),
    "coverage-inference_analysis-unbinned-0.1-probed": (
        "ratiofit coverage specs/inference_analysis.yaml --backend unbinned --repeats 100 "
        "--scale 0.1 --workers 2 -o runs/coverage-inference_analysis-unbinned-0.1-probed "
        "(code of commit dc64b38)", 0.1,
        "as the -bound run above, with the correction's J probed (c7111b2) and the "
        "auxiliary data drawn (023d2ac). Stopped after 23 repeats for lack of CPU time "
        "(about 2.3 repeats per 10 minutes on the 2 shared cores); the width over-covers "
        "here (its J from the probes about 1.5-1.9, the error shrunk to 0.52-0.68 of the "
        "learned fit's, pull width 0.74): not yet diagnosed"),
    "coverage-inference_analysis-unbinned-0.1-bracket": (
        "ratiofit coverage specs/inference_analysis.yaml --backend unbinned --repeats 100 "
        "--scale 0.1 --workers 2 -o runs/coverage-inference_analysis-unbinned-0.1-bracket "
        "(code of commit 7b6b2aa)", 0.1,
        "as the -probed run above, with the bootstrap replicas' differences from the "
        "learned model mapped through the correction's J⁻¹ as the data's error is "
        "(8fd564d; before, their spread stayed in the learned fit's units) and the "
        "correction's steps bisecting a bracket where a simulated fit lands on a range "
        "limit (7b6b2aa). Stopped at repeat 36: a replica refit's MINOS stepped to a NaN "
        "width, and the reweighter's refusal of NaN θ stopped the whole run (a112fdb makes "
        "it a failed fit). Repeats 0-9 ran with TensorFlow's default threads, 10-35 with "
        "one per worker (TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1 "
        "OMP_NUM_THREADS=1: twice the repeats per minute on the 2 cores). Its repeats are "
        "kept in docs/data/coverage/ (module docstring of docs/coverage_tables.py)"),
    "coverage-inference_analysis-unbinned-0.1-jmapped": (
        "TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1 OMP_NUM_THREADS=1 "
        "ratiofit coverage specs/inference_analysis.yaml --backend unbinned --repeats 100 "
        "--scale 0.1 --workers 2 -o runs/coverage-inference_analysis-unbinned-0.1-jmapped "
        "(code of commit a112fdb)", 0.1,
        "the -bracket run's code with the replicas' refits without MINOS (their values "
        "only, which MINOS does not change: e60c740) and a minimiser's step to a "
        "non-finite point a failed fit (a112fdb). Its repeats are kept in "
        "docs/data/coverage/; a run stopped for the session's end is finished with "
        "`python docs/coverage_tables.py --restore NAME` and the same command at that "
        "commit"),
    "coverage-gaussian_2d_likelihood": ("ratiofit coverage specs/gaussian_2d_likelihood.yaml "
                                        "--repeats 20 -o runs/coverage-gaussian_2d_likelihood",
                                        1.0, ""),
}


def _on_limit(repeat: dict, name: str) -> bool:
    """Whether the repeat's learned fit of ``name`` ended on a range limit or on the POI's
    bound (the simulation correction's span): recorded per parameter since 365dc7a, read
    from the run's warning before."""
    corr = repeat["parameters"][name].get("correction")
    if corr is not None:
        return bool(corr["at_limit"])
    return any(w.startswith(f"the learned fit of {name} ends on its")
               for w in repeat.get("warnings", []))


def _repeats(jobs: Path) -> list[dict]:
    """A coverage run's finished repeats (``jobs/repeat-K.json``' results)."""
    return [json.loads(f.read_text())["result"] for f in sorted(jobs.glob("repeat-*.json"))]


def _limit_split(repeats: list[dict]) -> dict:
    """Per parameter of an inference run, the summary of the repeats whose learned fit
    ended on a limit and of the others (where both have at least 2), else {}."""
    from ratiofit.coverage import summarise_runs

    runs = [r for r in repeats if "failed" not in r]
    if not runs or "components" not in next(iter(runs[0]["parameters"].values())):
        return {}
    out = {}
    for name in runs[0]["parameters"]:
        on = [r for r in runs if _on_limit(r, name)]
        off = [r for r in runs if not _on_limit(r, name)]
        if len(on) >= 2 and len(off) >= 2:
            out[name] = {"on": summarise_runs(on, [name])[name],
                         "off": summarise_runs(off, [name])[name]}
    return out


def _pct(c: float, e: float) -> str:
    return f"{100 * c:.0f} ± {100 * e:.0f}%"


def _partial(runs: list[dict], scale: float) -> dict | None:
    """The summary of the finished repeats of a stopped coverage run, or ``None``."""
    from ratiofit.coverage import COMPARISONS, summarise_runs

    if len(runs) < 2:
        return None
    summary = summarise_runs(runs)
    for s in summary.values():
        for part in (s, *(s[other] for other in COMPARISONS if other in s)):
            part["partial"] = True
    return {"summary": summary, "gate_failures": sum(r["gate"] == "fail" for r in runs),
            "scale": scale}


def _row(command: str, res: dict, name: str, s: dict) -> str:
    ratio = s.get("median_error_over_analytic")
    done = f"{s['repeats']} (stopped early)" if s.get("partial") else f"{s['repeats']}"
    if s.get("failed"):  # fits that did not converge: counted as not covering
        done += f", {s['failed']} failed"
    return (f"| `{command}` (scale {res.get('scale', 1):g}) | {name} | {done} | "
            f"{_pct(s['covered_68'], s['covered_68_error'])} | "
            f"{_pct(s['covered_95'], s['covered_95_error'])} | "
            f"{s['pull_mean']:+.2f} ± {s['pull_mean_error']:.2f} | "
            f"{s['pull_width']:.2f} ± {s['pull_width_error']:.2f} | "
            f"{s['max_abs_pull']:.2f} | {'' if ratio is None else f'{ratio:.2f}'} | "
            f"{res['gate_failures']} |")


def coverage_markdown() -> str:
    lines = ["# Coverage (generated by `python docs/coverage_tables.py` — do not edit)", "",
             "Whole pipelines repeated with fresh samples, trainings and data; the data's "
             "truth drawn uniformly over the central 90% of the parameter range. pull = "
             "(fit − truth)/error with the total error (docs/concepts.md, \"Honest "
             "errors\"): the simulation-corrected fit, and below it the learned fit of the "
             "same repeats before the correction (stat + reweighter replicas + reference); "
             "coverage with binomial errors. For an inference (pyhf) spec the rows are "
             "the POI and the nuisance in θ units, with the learned-ratio modifiers and, "
             "below, without them (data with injected signal, docs/concepts.md "
             "\"Coverage\"); error/analytic = median total error over the "
             "exact likelihood's; gate failures = repeats whose closure gate failed.", "",
             "| command | parameter | repeats done | 68% coverage | 95% coverage | pull mean "
             "| pull width | max abs pull | error/analytic | gate failures |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    missing = []
    notes = []
    for run, (command, scale, note) in COVERAGE.items():
        res = _summary(run, scale)
        if res is None:
            kept = _previous_rows(command)
            if kept:
                lines += kept
                notes.append(f"- `{run}`: {note + '; ' if note else ''}rows kept from an "
                             "earlier generation of this page (its run directory and summary "
                             "are not on the machine that wrote it)")
            else:
                missing.append(command)
            continue
        commit = res.get("ratiofit_commit")
        if note or commit:
            notes.append(f"- `{run}`: {note or f'run at commit {commit[:7]}'}")
        for name, summary in res["summary"].items():
            for label, s in (("", summary), (" (learned fit, before the correction)",
                                             summary.get("learned")),
                             (" (without the learned-ratio modifiers)",
                              summary.get("without_learned_ratio"))):
                if s is None:
                    continue
                lines.append(_row(command, res, name + label, s))
            split = res.get("limit_split", {}).get(name)
            if split is not None:
                for label, s in ((" (repeats whose learned fit ended on a limit)",
                                  split["on"]), (" (the other repeats)", split["off"])):
                    lines.append(_row(command, res, name + label, s))
    if notes:
        lines += ["", *notes]
    for run in COVERAGE:
        png = ROOT / "runs" / run / "pulls.png"
        dest = ROOT / "docs" / "figures" / "coverage" / f"{run}.png"
        if png.exists():
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(png, dest)
        if dest.exists():
            lines += ["", f"![pulls of {run}](figures/coverage/{run}.png)"]
    if missing:
        lines += ["", "Not yet run (the command makes the row):", "",
                  *[f"- `{c}`" for c in missing]]
    lines += single_fits_markdown()
    return "\n".join(lines) + "\n"


#: Single honest fits at a spec's own size (too costly to repeat on 2 cores): run directory →
#: the command that makes it.
SINGLE = {
    "dctr_pythia_alphas": (
        "ratiofit run specs/dctr_pythia_alphas.yaml -o runs/dctr_pythia_alphas",
        "run at commit b1aa224, before a correction step within the simulation's noise "
        "counted as converged: its last step moved 2.2e-4 against a noise bound of "
        "2·√2·1.3e-4 = 3.7e-4, so the same run now reports the same value as converged, "
        "without that warning"),
    "dctr_pythia_alund_exact": (
        "ratiofit run specs/dctr_pythia_alund_exact.yaml -o runs/dctr_pythia_alund_exact", ""),
    "dctr_pythia_probstoud_exact": (
        "ratiofit run specs/dctr_pythia_probstoud_exact.yaml "
        "-o runs/dctr_pythia_probstoud_exact", ""),
    "dctr_pythia_3d_exact": (
        "ratiofit run specs/dctr_pythia_3d_exact.yaml -o runs/dctr_pythia_3d_exact", ""),
}

#: Blinded fits (:mod:`ratiofit.blinding`): run directory → (the commands that make it, a
#: note); the truth is read from the run's unblinded.json, written by ``ratiofit unblind``
#: after the fit, and the sealed truth file is kept under docs/data/blinded/.
BLINDED = {
    "dctr_pythia_alund_exact_blinded": (
        "ratiofit fit docs/data/blinded/dctr_pythia_alund_exact.yaml --reweighter "
        "runs/dctr_pythia_alund_exact/reweighter -o runs/dctr_pythia_alund_exact_blinded; "
        "ratiofit unblind runs/dctr_pythia_alund_exact_blinded --truth "
        "runs/blinded/dctr_pythia_alund_exact.parquet.truth.json", ""),
}


def _fmt(v: float, e: float) -> str:
    return f"{v:.4f} ± {e:.4f}"


def _kept_rows(run: str, command: str, note: str, columns: int, notes: list[str]
               ) -> list[str]:
    """A run not on this machine: the rows an earlier generation wrote for ``command`` (and
    a note saying so), else one "not yet run" row of ``columns`` cells."""
    kept = [r for r in _previous_rows(command) if "| not yet run |" not in r]
    if kept:
        notes.append(f"- `{run}`: {note + '; ' if note else ''}rows kept from an "
                     "earlier generation of this page")
    return kept or [f"| `{command}` | not yet run |" + " |" * (columns - 2)]


def single_fits_markdown() -> list[str]:
    """One row per fitted parameter of each SINGLE run: the target, the reported value ±
    total error with its components, the learned fit before the correction, the pull of
    each, the closure gate's verdict and the fit's warnings."""
    import yaml

    rows, notes = [], []
    for run, (command, note) in SINGLE.items():
        out = ROOT / "runs" / run
        if not (out / "result.json").exists():
            rows += _kept_rows(run, command, note, 8, notes)
            continue
        res = json.loads((out / "result.json").read_text())
        spec = yaml.safe_load((out / "spec.yaml").read_text())
        fit = res["fit"]
        if note:
            notes.append(f"- `{run}`: {note}")
        data = spec["samples"][spec["fit"]["data"]]["theta"]
        gate = (fit.get("gate") or {}).get("verdict", "–")
        for n, e in fit["parameters"].items():
            truth = float(data[n])
            comps = ", ".join(f"{k} {v:.2g}" for k, v in e.get("error_components", {}).items()
                              if v > 0)
            learned = (fit.get("learned") or {}).get("parameters", {}).get(n)
            learned_txt = "–" if learned is None else (
                f"{_fmt(learned['value'], learned['error'])} "
                f"({(learned['value'] - truth) / learned['error']:+.2f})")
            warnings = "; ".join(fit.get("warnings", [])) or "none"
            rows.append(f"| `{command}` | {n} = {truth:g} | {_fmt(e['value'], e['error'])} "
                        f"({comps}) | {(e['value'] - truth) / e['error']:+.2f} | "
                        f"{learned_txt} | {gate} | {warnings} | "
                        f"{res['timing']['total_seconds'] / 60:.0f} min |")
    brows = []
    for run, (command, note) in BLINDED.items():
        out = ROOT / "runs" / run
        if not (out / "unblinded.json").exists():
            brows += _kept_rows(run, command, note, 7, notes)
            continue
        unblinded = json.loads((out / "unblinded.json").read_text())
        fit = json.loads((out / unblinded.get("fit_file", "result.json")).read_text())["fit"]
        if note:
            notes.append(f"- `{run}`: {note}")
        gate = (fit.get("gate") or {}).get("verdict", "–")
        for n, r in unblinded["parameters"].items():
            e = fit["parameters"][n]
            comps = ", ".join(f"{k} {v:.2g}" for k, v in e.get("error_components", {}).items()
                              if v > 0)
            limit = " (on its range limit)" if r["at_range_limit"] else ""
            brows.append(f"| `{command}` | {n} = {r['truth']:.4f} (drawn in "
                         f"[{unblinded['range'][n][0]:g}, {unblinded['range'][n][1]:g}]) | "
                         f"{_fmt(r['value'], r['error'])}{limit} ({comps}) | "
                         f"{r['pull']:+.2f} | {'yes' if r['in_68'] else 'no'} / "
                         f"{'yes' if r['in_95'] else 'no'} | {gate} | "
                         f"{'; '.join(fit.get('warnings', [])) or 'none'} |")
    return ["", "## Single fits at the spec's own size", "",
            "The whole `ratiofit run` once, with the defaults (replicas, simulation "
            "correction, closure gate); pull = (value − target)/total error.", "",
            "| command | target | value ± total error (components) | pull | learned fit "
            "before the correction (pull) | closure gate | warnings | time (2 cores) |",
            "|---|---|---|---|---|---|---|---|", *rows, "",
            "### Blinded fits", "",
            "Data generated by `ratiofit blind` at a θ drawn at random and sealed; fitted "
            "with the settings frozen, and only then unsealed with `ratiofit unblind` (the "
            "paper's blinded row, dctr.md Sec. III). pull = (value − truth)/total error.", "",
            "| commands | truth (unsealed after the fit) | value ± total error (components) | "
            "pull | inside 68 % / 95 % | closure gate | warnings |",
            "|---|---|---|---|---|---|---|", *brows, "", *notes]


if __name__ == "__main__":
    import sys

    if sys.argv[1:2] == ["--restore"] and len(sys.argv) == 3:
        print(f"{restore_jobs(sys.argv[2])} repeats restored into runs/{sys.argv[2]}/jobs/")
    elif sys.argv[1:]:
        raise SystemExit("usage: python docs/coverage_tables.py [--restore RUN]")
    else:
        (ROOT / "docs" / "coverage.md").write_text(coverage_markdown())
        print(coverage_markdown())
