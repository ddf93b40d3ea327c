"""Where the unbinned backend's POI bias comes from (issue 18): the coverage repeats of
``specs/inference_analysis.yaml`` at ``--scale 0.1`` (the same seeds, truths and data as
``ratiofit coverage ... --backend unbinned --scale 0.1``), fitted with exact and learned
pieces swapped in:

* ``exact``: the exact (mean, width) ratio (ratiofit.testing.analytic_gaussian_width_reweighter)
  and the exact signal ratio log N(x; 1.5, 0.3) − log N(x; 0, 1);
* ``sig``: the exact background ratio, the signal ratio trained as the backend trains it;
* ``rw``: the reweighter trained as the spec says, the exact signal ratio;
* ``rwcorr``: as ``rw``, then the simulation correction (ratiofit.unbinned_correction).

Each repeat's fit is one JSON line in docs/data/unbinned_bias/<mode>.jsonl;
``--summary`` prints the paired shifts of μ̂ against ``exact``. Run from the repository root:

    python docs/unbinned_bias.py exact 0 100
    python docs/unbinned_bias.py rw 0 60
    python docs/unbinned_bias.py --summary
"""

import json
import sys
from pathlib import Path

import numpy as np

from ratiofit import inference as inf
from ratiofit.coverage import repeat_inference_spec, truth_ranges
from ratiofit.inference.unbinned_analysis import fit_model
from ratiofit.inference.unbinned_model import (
    UnbinnedChannel,
    UnbinnedComponent,
    UnbinnedModel,
    UnbinnedNuisance,
    concatenate_events,
)
from ratiofit.registry import get_registry
from ratiofit.seeding import derive_rng
from ratiofit.spec import load_spec, scale_spec
from ratiofit.testing import analytic_gaussian_width_reweighter
from ratiofit.workflow import Samples

OUT = Path(__file__).parent / "data" / "unbinned_bias"


def _load(mode: str) -> dict[int, dict]:
    rows = {}
    path = OUT / f"{mode}.jsonl"
    if path.exists():
        for line in path.read_text().splitlines():
            r = json.loads(line)
            rows[r["k"]] = r
    return rows


def summary() -> None:
    exact = _load("exact")
    t = np.array([r["truth"]["signal_strength"] for r in exact.values()])
    mu = np.array([r["mu"] for r in exact.values()])
    print(f"exact: {len(t)} repeats, mu-hat - truth {np.mean(mu - t):+.2f} +- "
          f"{np.std(mu - t) / np.sqrt(len(t)):.2f}")
    for mode in ("sig", "rw", "rwcorr"):
        other = _load(mode)
        ks = sorted(set(exact) & set(other))
        if len(ks) < 2:
            continue
        d = np.array([other[k]["mu"] - exact[k]["mu"] for k in ks])
        print(f"{mode}: {len(ks)} repeats, mu-hat minus the exact fit's {d.mean():+.2f} +- "
              f"{d.std(ddof=1) / np.sqrt(len(d)):.2f}")


def _exact_signal(events):  # log N(x; 1.5, 0.3) − log N(x; 0, 1)
    x = events.features[:, 0]
    return (-np.log(0.3) - 0.5 * ((x - 1.5) / 0.3) ** 2) + 0.5 * x * x


def repeat(mode: str, spec, registry, k: int, truth: dict[str, float]) -> dict:
    """Repeat ``k``'s data fitted with the ``mode``'s pieces (module docstring)."""
    from ratiofit.unbinned_correction import simulation_correction
    from ratiofit.unbinned_stage import _log_ratio, _ratio_closure, _train_ratio
    from ratiofit.workflow import train_from_spec

    rep = repeat_inference_spec(spec, k, truth)
    ispec = rep.inference
    samples = Samples(rep, registry)
    rw = analytic_gaussian_width_reweighter(mu_range=(-0.6, 0.6), sigma_range=(0.8, 1.25))
    sig = _exact_signal
    extra: dict = {}
    if mode in ("rw", "rwcorr"):
        rw = train_from_spec(rep, samples, member=0, checkpoint_dir=None, progress=False,
                             registry=registry)
    if mode == "sig":
        sig = _log_ratio(_train_ratio(rep, registry, samples["nominal"], samples["signal"],
                                      key="nominal/signal", replica=None, progress=False))
        extra["closure"] = _ratio_closure(samples["nominal"], samples["signal"], sig)
    nuisances = [UnbinnedNuisance(name=n, parameter=ns.parameter, nominal=ns.nominal,
                                  sigma=ns.sigma, measured=ns.measured)
                 for n, ns in ispec.nuisances.items()]
    channels = []
    for cname, cs in ispec.channels.items():
        comps = [UnbinnedComponent(
            name=name, events=samples[ss.sample], yield_=ss.yield_, poi=ss.poi,
            log_ratio=None if name == cs.background else sig,
            modifiers=tuple(inf.StandardModifier(kind=kind, name=n, data=d)
                            for kind, n, d in ss.modifiers))
            for name, ss in cs.samples.items()]
        data = concatenate_events([(samples[d], samples[d].event_weights) for d in cs.data])
        channels.append(UnbinnedChannel(name=cname, data=data, components=tuple(comps),
                                        nuisances=cs.samples[cs.background].nuisances))
    model = UnbinnedModel(channels=channels, reweighter=rw, nuisances=nuisances,
                          pois=list(ispec.pois), fixed={})
    fit = fit_model(model, intervals=True)
    lo, hi = fit.poi_intervals["68"]
    t = truth["signal_strength"]
    row = {"k": k, "truth": truth, "mu": fit.poi_value, "err": fit.poi_error, "lo": lo,
           "hi": hi, "cov68": bool(lo <= t <= hi),
           "values": dict(zip(fit.names, map(float, fit.values), strict=True)),
           "errors": dict(zip(fit.names, map(float, fit.errors), strict=True)), **extra}
    if mode == "rwcorr":
        c = simulation_correction(rep, registry, model, fit, fit_model=fit_model)
        row["corrected"] = dict(zip(c.names, c.corrected.tolist(), strict=True))
        row["corr_err"] = dict(zip(c.names, np.sqrt(np.diag(c.covariance)).tolist(),
                                   strict=True))
    return row


def main() -> None:
    if sys.argv[1] == "--summary":
        summary()
        return
    mode, start, stop = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    spec = scale_spec(load_spec("specs/inference_analysis.yaml"), 0.1)
    registry = get_registry()
    ranges = truth_ranges(spec)
    rng = derive_rng(spec.seed, "coverage-truths")  # the coverage command's truths
    truths = [{n: float(rng.uniform(*ranges[n])) for n in ranges} for _ in range(stop)]
    OUT.mkdir(parents=True, exist_ok=True)
    done = _load(mode)
    for k in range(start, stop):
        if k in done:
            continue
        row = repeat(mode, spec, registry, k, truths[k])
        with (OUT / f"{mode}.jsonl").open("a") as f:
            f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
