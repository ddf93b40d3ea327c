"""ratiofit benchmarks: training throughput and fit wall time (``make bench``).

Writes five JSON files (atomically: a temporary file renamed into place) under
``bench/results/`` and prints a short summary.

``training_throughput.json``
    Training examples per second of :func:`ratiofit.training.train_reweighter` (the
    ``mlp`` architecture, hidden [64, 64, 64], its other options at the plugin defaults,
    ``bce`` loss, both from the plugin registry) against a plain Keras ``model.fit`` of
    the *same* model in the same process: built with the same plugin ``build(...)``
    call, compiled with the same loss and optimizer (Adam with the same cosine
    schedule), fed the same arrays (from :func:`ratiofit.training.prepare_training_data`
    with the same seed, so the very arrays ``train_reweighter`` uses), with the same
    sample weights, batch size, shuffling and validation data. Data: reference N(0, 1),
    target N(μ, 1) with μ ~ U[-2, 2] per event, 2·10^5 events per class (20% of them
    held out for validation), ``TrainingSpec(epochs=3, batch_size=1024, patience=10,
    checkpoint=False)``.

    A small Keras callback records the wall time of every epoch (``on_epoch_begin`` →
    ``on_epoch_end``, which includes the validation pass) and, separately, of the
    validation pass (``on_test_begin`` → ``on_test_end``). The first epoch (tracing)
    is excluded. Throughput = training examples × measured epochs / measured time; it is
    given both for the whole epoch (``examples_per_second``, the headline) and for the
    training steps alone (epoch minus validation, ``train_steps_only``). Each path is
    measured twice with the order alternated (ratiofit, plain, plain, ratiofit) and the
    ratio ratiofit/plain is computed from the summed times over the repetitions (goal
    ≥ 0.9).

``fit_time.json``
    Wall time of the ``dctr`` and ``likelihood`` strategies (from the registry,
    options resolved with ``landscape_points: 0``; likelihood also ``minos: false``) on
    10^6 data events drawn from N(0.5, 1), with a 10^6-event N(0, 1) reference sample for
    dctr. The reweighter is trained for the benchmark (1 epoch on 2·10^5 events per
    class) and calibrated (11 θ points, degree 4). Reported: seconds, number of objective
    evaluations (the strategy's count), seconds per evaluation, and, as an in-run
    reference, the time of one plain forward pass ``rw.log_ratio`` over the 10^6 data
    events (after a warm-up call; the median of three; the uncalibrated pass is timed too)
    and the ratio fit_time / forward_time. The time of one ``log_ratio_and_gradient`` pass
    is recorded as well, because that is what each objective evaluation runs.

``pfn_training.json``
    Jets/s of PFN training (the ``pfn`` plugin through ``train_reweighter``: batches padded
    to their own longest jet, bucketed by multiplicity) against a plain Keras PFN with the
    same layers padded to the global maximum multiplicity, on the same 3·10^4 + 3·10^4
    PYTHIA jets, plus the fraction of the CPU's fp32 peak reached (FLOPs estimated from
    the layer sizes and the real multiplicity); see ``bench/bench_pfn.py``.

``binned_fit.json``
    pyhf fit wall time of the exact-mode morphing modifier against the portable histosys
    workspace on the same templates (``bench/bench_binned.py``, seconds).

``pythia_source.json``
    e+e- events/s of the ``pythia`` source against a bare ``pythia.next()`` loop in the
    same run, with 1 and 2 worker processes, and the stages of a block; see
    ``bench/bench_pythia.py`` (about 1.5 minutes on 2 idle CPU cores).

Seeds are fixed throughout. Both files carry the machine (CPU count, library versions,
git commit, date) and the 1-minute load average before and after, because anything else
running on the machine distorts the timings. The whole run takes about 4–8 minutes on 2
CPU cores, most of it in the two fits (their number of objective evaluations decides).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
SEED = 20240611
N_PER_CLASS_TRAIN = 200_000
N_FIT = 1_000_000
MU_DATA = 0.5
HIDDEN = [64, 64, 64]
REPEATS = 2


# ---------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------
def write_json(path: Path, payload: dict[str, Any]) -> None:
    """Write JSON atomically (temporary file in the same directory, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(payload, f, indent=2)
            f.write("\n")
        os.chmod(tmp, 0o644)  # mkstemp makes it 0600
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def machine_info() -> dict[str, Any]:
    import iminuit
    import keras
    import tensorflow as tf

    import ratiofit

    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        affinity = None
    try:
        root = Path(__file__).resolve().parent.parent
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                                text=True, check=False).stdout.strip() or None
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--", "core", "plugins"],
                                    cwd=root, capture_output=True, text=True,
                                    check=False).stdout.strip())
    except OSError:
        commit, dirty = None, None
    return {
        "date_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "load_average_at_start": list(os.getloadavg()),
        "hostname_platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "cpu_affinity_count": affinity,
        "gpus": [d.name for d in tf.config.list_physical_devices("GPU")],
        "python": sys.version.split()[0],
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "iminuit": iminuit.__version__,
        "ratiofit": getattr(ratiofit, "__version__", None),
        "git_commit": commit,
        "git_core_plugins_dirty": dirty,
    }


def gaussian_samples(n_per_class: int, seed: int) -> tuple[Any, Any, Any]:
    """Reference N(0, 1) and target N(μ, 1), μ ~ U[-2, 2] per event; the μ ParameterSet."""
    from ratiofit.events import EventSet
    from ratiofit.parameters import Parameter, ParameterSet

    rng = np.random.default_rng(seed)
    params = ParameterSet([Parameter(name="mu", nominal=0.0, low=-2.0, high=2.0)])
    ref = EventSet(features=rng.standard_normal((n_per_class, 1)), feature_names=("x0",),
                   provenance={"source": "bench gaussian", "mu": 0.0, "seed": seed})
    mu = rng.uniform(-2.0, 2.0, size=n_per_class)
    tgt = EventSet(features=(mu + rng.standard_normal(n_per_class))[:, None],
                   feature_names=("x0",), theta=mu[:, None], theta_names=("mu",),
                   provenance={"source": "bench gaussian", "mu": "U[-2,2]", "seed": seed})
    return ref, tgt, params


def epoch_timer() -> Any:
    """A Keras callback recording per-epoch and per-validation wall times."""
    import keras

    class EpochTimer(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.epoch_seconds: list[float] = []
            self.validation_seconds: list[float] = []
            self._t_epoch = 0.0
            self._t_val = 0.0
            self._val = 0.0

        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self._val = 0.0
            self._t_epoch = time.perf_counter()

        def on_test_begin(self, logs: Any = None) -> None:
            self._t_val = time.perf_counter()

        def on_test_end(self, logs: Any = None) -> None:
            self._val += time.perf_counter() - self._t_val

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            self.epoch_seconds.append(time.perf_counter() - self._t_epoch)
            self.validation_seconds.append(self._val)

    return EpochTimer()


def _timing(timer: Any, n_train: int) -> dict[str, Any]:
    ep = timer.epoch_seconds[1:]
    tr = [e - v for e, v in zip(timer.epoch_seconds[1:], timer.validation_seconds[1:],
                                strict=True)]
    return {
        "epoch_seconds_all": timer.epoch_seconds,
        "validation_seconds_all": timer.validation_seconds,
        "measured_epochs": len(ep),
        "measured_epoch_seconds": float(sum(ep)),
        "measured_train_step_seconds": float(sum(tr)),
        "examples_per_second": n_train * len(ep) / sum(ep),
        "examples_per_second_train_steps_only": n_train * len(tr) / sum(tr),
    }


# ---------------------------------------------------------------------------------------
# 1. training throughput
# ---------------------------------------------------------------------------------------
def bench_training(info: dict[str, Any]) -> dict[str, Any]:
    import keras

    from ratiofit.options import resolve_options
    from ratiofit.registry import get_registry
    from ratiofit.spec import TrainingSpec
    from ratiofit.training import prepare_training_data, train_reweighter

    reg = get_registry()
    arch, loss = reg.get("architecture", "mlp"), reg.get("loss", "bce")
    arch_opts = resolve_options(arch.options, {"hidden": HIDDEN}, where="bench.architecture")
    training = TrainingSpec(epochs=3, batch_size=1024, patience=10, checkpoint=False)
    ref, tgt, params = gaussian_samples(N_PER_CLASS_TRAIN, SEED)
    train_seed = SEED + 1

    def run_ratiofit() -> dict[str, Any]:
        timer = epoch_timer()
        t0 = time.perf_counter()
        rw = train_reweighter(reference=ref, target=tgt, parameters=params, architecture=arch,
                              architecture_options=arch_opts, loss=loss, training=training,
                              seed=train_seed, extra_callbacks=[timer])
        wall = time.perf_counter() - t0
        n_train = int(rw.metadata["n_train"])
        return {"n_train": n_train, **_timing(timer, n_train),
                "call_wall_seconds": wall,
                "model_fit_seconds": float(rw.metadata["train_seconds"]),
                "final_val_loss": rw.metadata["history"]["val_loss"][-1]}

    def run_plain() -> dict[str, Any]:
        # Exactly the arrays train_reweighter builds: same function, same rng seed.
        t0 = time.perf_counter()
        data = prepare_training_data(reference=ref, target=tgt, parameters=params,
                                     validation_fraction=training.validation_fraction,
                                     class_balance=training.class_balance,
                                     rng=np.random.default_rng(train_seed))
        keras.utils.set_random_seed(train_seed)
        model = arch.build(signature=data.signature, output_activation=loss.output_activation,
                           options=arch_opts)
        steps = int(np.ceil(len(data.y) / training.batch_size)) * training.epochs
        lr = keras.optimizers.schedules.CosineDecay(training.learning_rate, decay_steps=steps)
        model.compile(optimizer=keras.optimizers.Adam(learning_rate=lr), loss=loss.keras_loss())
        timer = epoch_timer()
        t1 = time.perf_counter()
        hist = model.fit(data.x, data.y, sample_weight=data.w, batch_size=training.batch_size,
                         epochs=training.epochs, shuffle=True, verbose=0, callbacks=[timer],
                         validation_data=(data.x_val, data.y_val, data.w_val))
        t2 = time.perf_counter()
        n_train = len(data.y)
        return {"n_train": n_train, **_timing(timer, n_train), "call_wall_seconds": t2 - t0,
                "model_fit_seconds": t2 - t1,
                "final_val_loss": float(hist.history["val_loss"][-1])}

    runs: dict[str, list[dict[str, Any]]] = {"ratiofit": [], "plain_keras": []}
    orders = [["ratiofit", "plain_keras"], ["plain_keras", "ratiofit"]]
    for rep in range(REPEATS):
        for name in orders[rep % 2]:
            out = run_ratiofit() if name == "ratiofit" else run_plain()
            out["repeat"] = rep
            runs[name].append(out)
            print(f"  training rep {rep} {name:12s}: "
                  f"{out['examples_per_second']:10.0f} examples/s "
                  f"(epochs {', '.join(f'{s:.2f}' for s in out['epoch_seconds_all'])} s)",
                  flush=True)

    def summary(rs: list[dict[str, Any]], key_s: str) -> float:
        return sum(r["n_train"] * r["measured_epochs"] for r in rs) / sum(r[key_s] for r in rs)

    eps = {k: summary(v, "measured_epoch_seconds") for k, v in runs.items()}
    eps_tr = {k: summary(v, "measured_train_step_seconds") for k, v in runs.items()}
    ratio = eps["ratiofit"] / eps["plain_keras"]
    ratio_tr = eps_tr["ratiofit"] / eps_tr["plain_keras"]
    per_rep = [runs["ratiofit"][i]["examples_per_second"]
               / runs["plain_keras"][i]["examples_per_second"] for i in range(REPEATS)]
    return {
        "benchmark": "training_throughput",
        "description": "training examples/s of ratiofit.training.train_reweighter vs a plain "
                       "keras model.fit of the same model, loss, optimizer and arrays; first "
                       "epoch excluded; epoch time includes the validation pass",
        "machine": info,
        "settings": {
            "architecture": "mlp", "architecture_options": arch_opts, "loss": "bce",
            "training_spec": dict(training.__dict__),
            "reference": "N(0,1)", "target": "N(mu,1), mu ~ U[-2,2] per event",
            "events_per_class": N_PER_CLASS_TRAIN, "data_seed": SEED, "train_seed": train_seed,
            "repeats": REPEATS, "order": [orders[r % 2] for r in range(REPEATS)],
            "excluded_epochs": 1,
        },
        "examples_per_second": {"ratiofit": eps["ratiofit"], "plain_keras": eps["plain_keras"]},
        "ratio_ratiofit_over_plain": ratio,
        "ratio_per_repeat": per_rep,
        "train_steps_only": {"examples_per_second": eps_tr, "ratio_ratiofit_over_plain": ratio_tr},
        "goal_ratio": 0.9,
        "meets_goal": bool(ratio >= 0.9),
        "runs": runs,
    }


# ---------------------------------------------------------------------------------------
# 2. fit time
# ---------------------------------------------------------------------------------------
def bench_fit(info: dict[str, Any]) -> dict[str, Any]:
    from ratiofit.events import EventSet
    from ratiofit.fitting import FitProblem
    from ratiofit.options import resolve_options
    from ratiofit.registry import get_registry
    from ratiofit.spec import TrainingSpec
    from ratiofit.training import train_reweighter

    reg = get_registry()
    arch, loss = reg.get("architecture", "mlp"), reg.get("loss", "bce")
    arch_opts = resolve_options(arch.options, {"hidden": HIDDEN}, where="bench.architecture")
    training = TrainingSpec(epochs=1, batch_size=1024, patience=10, checkpoint=False)
    ref_train, tgt_train, params = gaussian_samples(N_PER_CLASS_TRAIN, SEED + 10)
    t0 = time.perf_counter()
    rw = train_reweighter(reference=ref_train, target=tgt_train, parameters=params,
                          architecture=arch, architecture_options=arch_opts, loss=loss,
                          training=training, seed=SEED + 11)
    train_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    norm = rw.calibrate(reference_features=ref_train.features, points=11, degree=4,
                        rng=np.random.default_rng(0))
    calib_s = time.perf_counter() - t0
    print(f"  fit reweighter: trained in {train_s:.1f} s, calibrated in {calib_s:.1f} s "
          f"(max |log norm| {norm['max_abs_log_norm']:.3f})", flush=True)

    rng = np.random.default_rng(SEED + 20)
    data = EventSet(features=MU_DATA + rng.standard_normal((N_FIT, 1)), feature_names=("x0",),
                    provenance={"source": "bench gaussian", "mu": MU_DATA})
    reference = EventSet(features=rng.standard_normal((N_FIT, 1)), feature_names=("x0",),
                         provenance={"source": "bench gaussian", "mu": 0.0})
    theta = {"mu": MU_DATA}

    # In-run reference: one plain forward pass over the data (warm-up call first).
    rw.log_ratio(features=data.features, theta=theta)
    fwd = []
    for _ in range(3):
        t0 = time.perf_counter()
        rw.log_ratio(features=data.features, theta=theta)
        fwd.append(time.perf_counter() - t0)
    forward_s = float(np.median(fwd))
    rw.log_ratio(features=data.features, theta=theta, calibrated=False)
    fwd_raw = []
    for _ in range(3):
        t0 = time.perf_counter()
        rw.log_ratio(features=data.features, theta=theta, calibrated=False)
        fwd_raw.append(time.perf_counter() - t0)
    rw.log_ratio_and_gradient(features=data.features, theta=theta)
    grad = []
    for _ in range(3):
        t0 = time.perf_counter()
        rw.log_ratio_and_gradient(features=data.features, theta=theta)
        grad.append(time.perf_counter() - t0)
    grad_s = float(np.median(grad))
    print(f"  forward pass over {N_FIT:.0e} events: {forward_s:.3f} s "
          f"(uncalibrated {np.median(fwd_raw):.3f} s); with gradient: {grad_s:.3f} s",
          flush=True)

    strategies: dict[str, Any] = {}
    for name, given, needs_ref in (("dctr", {"landscape_points": 0}, True),
                                   ("likelihood", {"landscape_points": 0, "minos": False},
                                    False)):
        strat = reg.get("strategy", name)
        options = resolve_options(strat.options, given, where=f"bench.{name}")
        problem = FitProblem(reweighter=rw, data=data, reference=reference if needs_ref else None,
                             parameters=params, seed=SEED)
        t0 = time.perf_counter()
        result = strat.fit(problem=problem, options=options)
        secs = time.perf_counter() - t0
        n_eval = int(result.n_evaluations)
        events_per_eval = 2 * N_FIT if needs_ref else N_FIT
        strategies[name] = {
            "options": options,
            "seconds": secs,
            "n_evaluations": n_eval,
            "seconds_per_evaluation": secs / max(n_eval, 1),
            "events_per_evaluation": events_per_eval,
            "fit_over_forward": secs / forward_s,
            "evaluation_over_gradient_pass": secs / max(n_eval, 1) / (grad_s * events_per_eval
                                                                       / N_FIT),
            "value": result.values["mu"], "error": result.errors["mu"],
            "valid": bool(result.valid),
        }
        if name == "dctr":
            strategies[name]["note"] = ("the dctr strategy runs one more objective+gradient "
                                        "pass after MIGRAD/HESSE for the sandwich covariance; "
                                        "it is in 'seconds' but not in 'n_evaluations'")
        s = strategies[name]
        print(f"  {name:10s}: {secs:6.1f} s, {n_eval} evaluations, "
              f"{s['seconds_per_evaluation']:.2f} s/eval, {s['fit_over_forward']:.1f}× forward; "
              f"mu = {s['value']:.4f} ± {s['error']:.4f} (valid={s['valid']})", flush=True)

    return {
        "benchmark": "fit_time",
        "description": "wall time of the dctr and likelihood strategies on 1e6 data events "
                       "(and a 1e6-event reference for dctr) with a benchmark-trained, "
                       "calibrated mlp/bce reweighter",
        "machine": info,
        "settings": {
            "n_data": N_FIT, "data": f"N({MU_DATA},1)", "n_reference": N_FIT,
            "reference": "N(0,1)", "parameter": {"name": "mu", "nominal": 0.0,
                                                 "range": [-2.0, 2.0]},
            "reweighter": {"architecture": "mlp", "architecture_options": arch_opts,
                           "loss": "bce", "training_spec": dict(training.__dict__),
                           "events_per_class": N_PER_CLASS_TRAIN, "train_seconds": train_s,
                           "calibration": {"points": 11, "degree": 4,
                                           "events": len(ref_train),
                                           "max_abs_log_norm": norm["max_abs_log_norm"],
                                           "seconds": calib_s}},
            "seeds": {"training_data": SEED + 10, "train": SEED + 11, "fit_data": SEED + 20,
                      "calibration": 0, "problem": SEED},
        },
        "forward_pass": {"what": "rw.log_ratio over the data events at mu=0.5, median of 3 "
                                 "after a warm-up call",
                         "events": N_FIT, "seconds": forward_s, "all_seconds": fwd,
                         "uncalibrated_seconds": float(np.median(fwd_raw)),
                         "uncalibrated_all_seconds": fwd_raw},
        "gradient_pass": {"what": "rw.log_ratio_and_gradient over the data events at mu=0.5, "
                                  "median of 3 after a warm-up call",
                          "events": N_FIT, "seconds": grad_s, "all_seconds": grad},
        "strategies": strategies,
    }


def bench_pfn_on_pythia(n_jets: int = 30_000) -> dict[str, Any]:
    """PFN training throughput on PYTHIA jets (nominal vs αs ~ U[0.10, 0.18], cached),
    see ``bench/bench_pfn.py``."""
    from bench_pfn import bench_pfn_training

    from ratiofit.registry import get_registry
    from ratiofit.sampling import make_sample
    from ratiofit.spec import load_spec_text

    opts = '{parameters: {alpha_s: "TimeShower:alphaSvalue"}, processes: 2, block_size: 300}'
    spec = load_spec_text(f"""
seed: {SEED}
parameters: {{alpha_s: {{nominal: 0.1365, range: [0.10, 0.18]}}}}
samples:
  nominal: {{source: pythia, n_events: {n_jets}, options: {opts}}}
  varied: {{source: pythia, n_events: {n_jets}, theta: {{alpha_s: uniform}}, options: {opts}}}
""", path="<bench pfn>")
    reg = get_registry()
    ref, tgt = (make_sample(spec.samples[k], parameters=spec.parameters, seed=SEED,
                            registry=reg) for k in ("nominal", "varied"))
    return bench_pfn_training(reference=ref, target=tgt, parameters=spec.parameters,
                              particle_fields=("z", "deta", "dphi", "pid_code"), epochs=3)


def main() -> int:
    t_start = time.perf_counter()
    info = machine_info()
    print(f"ratiofit bench — {info['cpu_affinity_count'] or info['cpu_count']} CPU cores, "
          f"TF {info['tensorflow']}, Keras {info['keras']}", flush=True)
    load = info["load_average_at_start"][0]
    if load > 0.5:
        print(f"  note: 1-minute load average is {load:.2f}; other processes on this "
              "machine will distort the timings", flush=True)

    print("training throughput:", flush=True)
    tr = bench_training(info)
    tr["total_seconds"] = time.perf_counter() - t_start
    tr["load_average_at_end"] = list(os.getloadavg())
    write_json(RESULTS / "training_throughput.json", tr)
    e = tr["examples_per_second"]
    print(f"  => ratiofit {e['ratiofit']:.0f} ex/s, plain keras {e['plain_keras']:.0f} ex/s, "
          f"ratio {tr['ratio_ratiofit_over_plain']:.3f} (goal ≥ 0.9; train steps only: "
          f"{tr['train_steps_only']['ratio_ratiofit_over_plain']:.3f})", flush=True)

    print("fit time:", flush=True)
    t1 = time.perf_counter()
    load_begin = list(os.getloadavg())
    ft = bench_fit(info)
    ft["load_average_at_begin"] = load_begin
    ft["total_seconds"] = time.perf_counter() - t1
    ft["load_average_at_end"] = list(os.getloadavg())
    write_json(RESULTS / "fit_time.json", ft)

    print("pythia source:", flush=True)
    import bench_pythia  # bench/ is on sys.path: it is the script's directory

    t2 = time.perf_counter()
    load_begin = list(os.getloadavg())
    py = bench_pythia.bench_pythia(info)
    py["load_average_at_begin"] = load_begin
    py["total_seconds"] = time.perf_counter() - t2
    py["load_average_at_end"] = list(os.getloadavg())
    write_json(RESULTS / "pythia_source.json", py)
    bench_pythia.summary(py)

    print("pfn training:", flush=True)
    t3 = time.perf_counter()
    load_begin = list(os.getloadavg())
    pf = bench_pfn_on_pythia()
    pf.update({"machine": info, "load_average_at_begin": load_begin,
               "total_seconds": time.perf_counter() - t3,
               "load_average_at_end": list(os.getloadavg())})
    write_json(RESULTS / "pfn_training.json", pf)
    print(f"  => ratiofit {pf['ratiofit_jets_per_second']:.0f} jets/s, plain padded "
          f"{pf['plain_padded_jets_per_second']:.0f} jets/s, ratio {pf['ratio']:.2f} (goal ≥ "
          f"2.5); {pf['fraction_of_fp32_peak']:.1%} of the fp32 peak", flush=True)
    print("binned fit (exact morphing vs portable histosys):", flush=True)
    import bench_binned

    bench_binned.main()
    print(f"wrote {RESULTS}/*.json ({time.perf_counter() - t_start:.0f} s in all); the unbinned "
          "fit benchmark runs separately: python bench/bench_unbinned.py", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
