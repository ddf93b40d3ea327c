"""docs/tutorial-files.md: the results the tutorial's commands give, written into the page.

The page is written by hand except for its generated blocks, each between a line
``% begin generated: NAME`` and a line ``% end generated: NAME``, which this script
rewrites from the run directories that the page's commands make (:data:`COMMANDS`; each
command is checked to appear in the page word for word, and is named above its block).
A command whose output is missing, or older than the output it reads, is run first
(``--rerun``: every one, the run directories deleted first so that no job is reused).
The page's Python snippets (fenced ``python`` blocks whose first line is ``# file:
NAME.py``) are then run, in order, in a temporary directory where ``specs/`` and
``runs/`` are the repository's, so a snippet that no longer works stops the script.
Nothing in the blocks is typed in: every number is read from the runs' files or computed
here from the files they read.

Usage: ``python docs/tutorial_tables.py [--rerun]`` (``make docs-tables`` runs it). The
four commands take about 3-4 minutes on 2 CPU cores.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "tutorial-files.md"
FIGURE = ROOT / "docs" / "figures" / "tutorial-files-postfit.png"

#: The θ the data file was generated at (specs/data/make_files.py: data.parquet at mu = 0.4),
#: the signal strength specs/files_inference.yaml injects (40 events for a yield of 40).
TRUE_MU, TRUE_SIGNAL_STRENGTH = 0.4, 1.0

#: block name → (the command, the file it makes, the commands it reads the output of)
COMMANDS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "fit": ("ratiofit run specs/files_gaussian.yaml -o runs/files_gaussian",
            "runs/files_gaussian/result.json", ()),
    "reweight": ("ratiofit reweight --reweighter runs/files_gaussian "
                 "--input specs/data/nominal.root --theta mu=0.4 "
                 "-o runs/files_gaussian/nominal_mu0.4.root",
                 "runs/files_gaussian/nominal_mu0.4.root", ("fit",)),
    "export": ("ratiofit export --reweighter runs/files_gaussian "
               "-o runs/files_gaussian/reweighter.onnx",
               "runs/files_gaussian/reweighter.onnx", ("fit",)),
    "inference": ("ratiofit run specs/files_inference.yaml -o runs/files_inference",
                  "runs/files_inference/result.json", ()),
}

_SNIPPET = re.compile(r"^```python\n(# file: (\S+\.py)[^\n]*\n.*?)^```", re.S | re.M)


def snippets(text: str) -> list[tuple[str, str]]:
    """The page's runnable Python snippets: (file name, code), in page order.

    >>> snippets("```python\\n# file: a.py\\nprint(1)\\n```\\n")
    [('a.py', '# file: a.py\\nprint(1)\\n')]
    """
    return [(m.group(2), m.group(1)) for m in _SNIPPET.finditer(text)]


def replace_block(text: str, name: str, lines: list[str]) -> str:
    """``text`` with the lines between ``% begin generated: name`` and ``% end generated:
    name`` replaced by ``lines`` (with a blank line either side).

    >>> replace_block("a\\n% begin generated: x\\nold\\n% end generated: x\\nb", "x", ["new"])
    'a\\n% begin generated: x\\n\\nnew\\n\\n% end generated: x\\nb'
    """
    pattern = re.compile(rf"^(% begin generated: {re.escape(name)}\n).*?"
                         rf"(^% end generated: {re.escape(name)}$)", re.S | re.M)
    if not pattern.search(text):
        raise ValueError(f"{PAGE.name}: no block '{name}' (% begin/end generated: {name})")
    body = "\n".join(["", *lines, "", ""])
    return pattern.sub(lambda m: m.group(1) + body + m.group(2), text, count=1)


def _run(command: str) -> None:
    argv = shlex.split(command)
    assert argv[0] == "ratiofit"
    print(f"$ {command}", flush=True)
    subprocess.run([sys.executable, "-m", "ratiofit.cli", *argv[1:]], check=True, cwd=ROOT)


def ensure_runs(text: str, *, rerun: bool) -> None:
    """Run each command whose output is missing or older than what it reads."""
    done: set[str] = set()
    for name, (command, output, needs) in COMMANDS.items():
        if command not in text:
            raise ValueError(f"{PAGE.name} does not show the command {command!r}")
        out = ROOT / output
        stale = any(d in done or (ROOT / COMMANDS[d][1]).stat().st_mtime > out.stat().st_mtime
                    for d in needs) if out.exists() else True
        if rerun or stale:
            if rerun and command.startswith("ratiofit run "):
                # 'ratiofit run' reuses the finished jobs of its output directory
                shutil.rmtree(out.parent, ignore_errors=True)
            _run(command)
            done.add(name)


def run_snippets(text: str) -> None:
    """Run every ``# file:`` snippet in a temporary directory beside specs/ and runs/."""
    with tempfile.TemporaryDirectory(prefix="ratiofit-tutorial-") as tmp:
        for link in ("specs", "runs"):
            (Path(tmp) / link).symlink_to(ROOT / link)
        for name, code in snippets(text):
            (Path(tmp) / name).write_text(code)
            proc = subprocess.run([sys.executable, name], cwd=tmp, capture_output=True,
                                  text=True, check=False)
            if proc.returncode != 0:
                raise RuntimeError(f"{PAGE.name}: snippet {name} failed:\n{proc.stderr}")
            print(f"snippet {name}: ok", flush=True)


# ---------------------------------------------------------------------------------------
# the blocks
# ---------------------------------------------------------------------------------------
def _g(x: float, digits: int = 3) -> str:
    return f"{x:.{digits}g}"


def _pm(value: float, error: float) -> str:
    """value ± error, the value to the error's second significant digit."""
    if not np.isfinite(error) or error <= 0:
        return f"{value:.4g} ± {error:.2g}"
    decimals = max(0, 1 - int(np.floor(np.log10(error))))
    return f"{value:.{decimals}f} ± {error:.{decimals}f}"


def _origin(command: str, run: str, *, timed: bool = True) -> list[str]:
    """The line naming the command and the run it read (its commit; its wall time)."""
    result = json.loads((ROOT / "runs" / run / "result.json").read_text())
    commit = result.get("ratiofit", {}).get("commit") or "unknown"
    seconds = result.get("timing", {}).get("total_seconds")
    took = f", {seconds:.0f} s wall time" if timed and seconds is not None else ""
    made = "made with" if timed else "reweighter of runs/" + run + ", trained with"
    return [f"`{command}` ({made} ratiofit commit `{commit[:12]}"
            f"{'-dirty' if commit.endswith('-dirty') else ''}`{took}):", ""]


def _weighted(x: np.ndarray, w: np.ndarray) -> tuple[float, float]:
    mean = float(np.sum(w * x) / np.sum(w))
    return mean, float(np.sqrt(np.sum(w * (x - mean) ** 2) / np.sum(w)))


def _kish(w: np.ndarray) -> float:
    return float(np.sum(w) ** 2 / np.sum(w ** 2))


def fit_block() -> list[str]:
    from ratiofit.sampling import make_sample
    from ratiofit.spec import load_spec

    command = COMMANDS["fit"][0]
    result = json.loads((ROOT / "runs/files_gaussian/result.json").read_text())
    spec = load_spec(ROOT / "specs/files_gaussian.yaml")
    out = [*_origin(command, "files_gaussian"),
           "The samples as the spec reads them (computed here from the files):", "",
           "| sample | source | events | Σw | negative weights | Kish ESS (Σw)²/Σw² |",
           "|---|---|---|---|---|---|"]
    for name, sample in spec.samples.items():
        ev = make_sample(sample, parameters=spec.parameters, seed=spec.seed)
        w = ev.event_weights
        neg = float(np.mean(w < 0))
        out.append(f"| {name} | {sample.source} | {len(ev)} | {np.sum(w):.6g} | "
                   f"{100 * neg:.1f} % | {_kish(w):.5g} |")
    mu = result["fit"]["parameters"]["mu"]
    comps = ", ".join(f"{k} {_g(v, 2)}" for k, v in mu.get("error_components", {}).items())
    lo, hi = mu.get("interval_95", [float("nan"), float("nan")])
    out += ["", f"The DCTR fit to data.parquet (generated at mu = {TRUE_MU:g}):", "",
            "| parameter | fitted | error components | 95 % interval |", "|---|---|---|---|",
            f"| mu | {_pm(mu['value'], mu['error'])} | {comps} | [{lo:.3f}, {hi:.3f}] |"]
    return out


def reweight_block() -> list[str]:
    import pyarrow.parquet as pq
    import uproot

    command = COMMANDS["reweight"][0]
    nominal = uproot.open(ROOT / "specs/data/nominal.root")["events"].arrays(
        ["x0", "x1", "w"], library="np")
    friend = uproot.open(ROOT / "runs/files_gaussian/nominal_mu0.4.root")[
        "ratiofit_weights"].arrays(["w", "log_w"], library="np")
    data = pq.read_table(ROOT / "specs/data/data.parquet", columns=["x0", "x1"])
    rows = [("nominal.root, weights w", nominal, nominal["w"]),
            (f"nominal.root, weights w × ratiofit_weights.w (mu = {TRUE_MU:g})", nominal,
             nominal["w"] * friend["w"]),
            ("data.parquet (unweighted)", {c: data[c].to_numpy() for c in ("x0", "x1")},
             np.ones(data.num_rows))]
    out = [*_origin(command, "files_gaussian", timed=False),
           f"The friend tree holds {len(friend['w'])} entries for the "
           f"{len(nominal['w'])} of nominal.root. Weighted means and standard deviations "
           "(computed here from the files):", "",
           "| events | mean x0 | std x0 | mean x1 | std x1 | Kish ESS |",
           "|---|---|---|---|---|---|"]
    for label, cols, w in rows:
        m0, s0 = _weighted(np.asarray(cols["x0"], float), w)
        m1, s1 = _weighted(np.asarray(cols["x1"], float), w)
        out.append(f"| {label} | {m0:+.3f} | {s0:.3f} | {m1:+.3f} | {s1:.3f} | "
                   f"{_kish(w):.5g} |")
    return out


def export_block() -> list[str]:
    import onnxruntime as ort
    import uproot

    command = COMMANDS["export"][0]
    side = json.loads((ROOT / "runs/files_gaussian/reweighter.json").read_text())
    check = side.get("check", {})
    inputs = {i["name"]: i for i in side["inputs"]}
    columns = inputs["features"]["columns"]
    events = uproot.open(ROOT / "specs/data/nominal.root")["events"].arrays(columns,
                                                                         library="np")
    x = np.stack([events[c] for c in columns], axis=1).astype(np.float32)
    theta = np.full((len(x), 1), TRUE_MU, dtype=np.float32)
    session = ort.InferenceSession(str(ROOT / "runs/files_gaussian/reweighter.onnx"))
    (log_w,) = session.run(["log_w"], {"features": x, "theta": theta})
    friend = uproot.open(ROOT / "runs/files_gaussian/nominal_mu0.4.root")[
        "ratiofit_weights"]["log_w"].array(library="np")
    diff = float(np.max(np.abs(log_w.astype(np.float64) - friend)))
    out = [*_origin(command, "files_gaussian", timed=False),
           "| check | max abs difference in log w | events |", "|---|---|---|"]
    if check:
        out.append(f"| `ratiofit export`'s own check: onnxruntime against Keras "
                   f"(tolerance {_g(check.get('tolerance', float('nan')), 2)}) | "
                   f"{_g(check.get('max_abs_difference', float('nan')), 2)} | "
                   f"{check.get('events', '')} random |")
    out.append(f"| onnxruntime on nominal.root at mu = {TRUE_MU:g} against the friend "
               f"tree's log_w (float32 against float64) | {_g(diff, 2)} | {len(x)} |")
    return out


def inference_block() -> list[str]:
    import pyhf

    command = COMMANDS["inference"][0]
    run = ROOT / "runs" / "files_inference"
    inf = json.loads((run / "result.json").read_text())["inference"]
    fit = inf["fit"]
    poi = fit["poi"]
    i = fit["names"].index(poi)
    comps = fit.get("error_components", {})
    out = [*_origin(command, "files_inference"),
           "| parameter | truth | fitted | without the learned ratio's modifiers | "
           "learned ratio's share |", "|---|---|---|---|---|"]
    c = comps.get(poi, {})
    out.append(f"| {poi} | {TRUE_SIGNAL_STRENGTH:g} | {_pm(fit['values'][i], fit['errors'][i])}"
               f" | ± {_g(c.get('without_learned_ratio', float('nan')), 2)} | "
               f"{_g(c.get('learned_ratio', float('nan')), 2)} |")
    for name, p in fit["pulls"].items():
        if p.get("theta") is None:
            continue
        c = comps.get(name, {})
        out.append(f"| {name} (θ, in mu) | {TRUE_MU:g} | {_pm(p['theta'], p['theta_error'])}"
                   f" (pull {p['pull']:+.2f}) | ± "
                   f"{_g(c.get('without_learned_ratio', float('nan')), 2)} | "
                   f"{_g(c.get('learned_ratio', float('nan')), 2)} |")
    learned = [n for n in fit["names"] if "_learned_" in n or n.endswith("_nonclosure")]
    ht, ul = inf.get("hypotest"), inf.get("upper_limit")
    workspace = pyhf.Workspace(json.loads((run / "workspace.json").read_text()))
    model = workspace.model()
    out += ["", f"The learned ratio's modifiers: {', '.join(learned) or 'none'}. "
            "Tests and limits:", "",
            "| quantity | observed | expected (median) |", "|---|---|---|"]
    if ht:
        cls_obs, cls_exp = pyhf.infer.hypotest(ht["poi_value"], workspace.data(model), model,
                                               test_stat="qtilde", return_expected=True)
        out += [f"| CLs at {poi} = {ht['poi_value']:g} (exact mode, result.json) | "
                f"{_g(ht['cls_observed'])} | {_g(ht['cls_expected'][2])} |",
                f"| the same from workspace.json (portable histosys; what `pyhf cls` "
                f"computes) | {_g(float(cls_obs))} | {_g(float(cls_exp))} |"]
    if ul:
        out.append(f"| 95 % CLs upper limit on {poi} | {_g(ul['observed'])} | "
                   f"{_g(ul['expected'][2])} |")
    warnings = inf.get("warnings") or []
    out += ["", "Warnings of the run: " + ("; ".join(warnings) if warnings else "none") + "."]
    postfit = run / "plots" / "postfit_channel.png"
    if postfit.exists():
        shutil.copyfile(postfit, FIGURE)
        out += ["", "The post-fit distribution (runs/files_inference/plots/postfit_channel.png, "
                "copied to docs/figures/):", "",
                f"![post-fit x0 of specs/files_inference.yaml](figures/{FIGURE.name})"]
    return out


BLOCKS: dict[str, Callable[[], list[str]]] = {
    "fit": fit_block, "reweight": reweight_block, "export": export_block,
    "inference": inference_block}


def main(argv: list[str] | None = None) -> str:
    argv = sys.argv[1:] if argv is None else argv
    text = PAGE.read_text()
    ensure_runs(text, rerun="--rerun" in argv)
    run_snippets(text)
    for name, block in BLOCKS.items():
        text = replace_block(text, name, block())
    PAGE.write_text(text)
    print(f"wrote {PAGE.relative_to(ROOT)}")
    return text


if __name__ == "__main__":
    main()
