"""``ratiofit reweight`` (log w and w of the events in parquet and ROOT files) and
``ratiofit export`` (ONNX, checked with onnxruntime).

Two tiny reweighters are trained per module (1 epoch on 2000 + 2000 events): an MLP on
two features with a normalisation and moment calibration, and a PFN on jagged particles.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import uproot
from click.testing import CliRunner, Result
from conftest import assert_float32_close

from ratiofit.cli import main
from ratiofit.events import EventSet
from ratiofit.options import resolve_options
from ratiofit.parameters import Parameter, ParameterSet
from ratiofit.registry import get_registry
from ratiofit.reweighter import Reweighter
from ratiofit.spec import TrainingSpec
from ratiofit.training import train_reweighter

N = 2000
MU = ParameterSet([Parameter(name="mu", nominal=0.0, low=-2.0, high=2.0)])


# ---------------------------------------------------------------------------------------
# reweighters and files
# ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def mlp_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """x = (a, b): a ~ N(mu, 1), b ~ N(0, 1); calibrated (normalisation and a 2-moment tilt)."""
    reg = get_registry()
    rng = np.random.default_rng(1)
    mu = rng.uniform(-2.0, 2.0, N)
    target = EventSet(features=np.stack([rng.normal(mu, 1.0), rng.normal(0, 1, N)], 1),
                      feature_names=("a", "b"), theta=mu[:, None], theta_names=("mu",))
    reference = EventSet(features=rng.normal(0, 1, (N, 2)), feature_names=("a", "b"))
    rw = train_reweighter(
        reference=reference, target=target, parameters=MU,
        architecture=reg.get("architecture", "mlp"),
        architecture_options={"hidden": [16, 16], "activation": "swish", "theta_input": True},
        loss=reg.get("loss", "bce"), training=TrainingSpec(epochs=1, batch_size=256), seed=7)
    rw.calibrate(reference_features=reference, points=5, degree=2,
                 rng=np.random.default_rng(2), moments=2, target=target)
    assert rw.calibration is not None and rw.calibration.tilt is not None
    return rw.save(tmp_path_factory.mktemp("mlp") / "reweighter")


@pytest.fixture(scope="module")
def mlp(mlp_dir: Path) -> Reweighter:
    return Reweighter.load(mlp_dir)


@pytest.fixture(scope="module")
def pfn_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Particles (x, y) with x ~ N(mu, 1), about 6 per event, and the flat n_particles."""
    reg = get_registry()
    source = reg.get("source", "gaussian_particles")
    options = {"multiplicity": 6.0, "mean": "mu", "width": 1.0}
    rng = np.random.default_rng(3)
    mu = rng.uniform(-1.0, 1.0, N)
    target = source.generate(n_events=N, theta={"mu": mu}, options=options, rng=rng
                             ).with_theta(mu[:, None], ("mu",))
    reference = source.generate(n_events=N, theta={"mu": np.zeros(N)}, options=options,
                                rng=rng)
    arch = reg.get("architecture", "pfn")
    rw = train_reweighter(
        reference=reference, target=target,
        parameters=ParameterSet([Parameter(name="mu", nominal=0.0, low=-1.0, high=1.0)]),
        architecture=arch,
        architecture_options=resolve_options(arch.options, {"phi": [16, 16, 8], "f": [16]},
                                             where="options"),
        loss=reg.get("loss", "bce"), training=TrainingSpec(epochs=1, batch_size=256), seed=7,
        features=["n_particles"], particles=["x", "y"])
    rw.calibrate(reference_features=reference, points=5, degree=2,
                 rng=np.random.default_rng(4))
    return rw.save(tmp_path_factory.mktemp("pfn") / "reweighter")


def flat_events(n: int, seed: int) -> dict[str, np.ndarray]:
    """The MLP's features (b as float32, as a ROOT file might store it) and two columns it
    does not read."""
    rng = np.random.default_rng(seed)
    return {"other": np.arange(n, dtype=np.int64), "b": rng.normal(0, 1, n).astype(np.float32),
            "a": rng.normal(0.3, 1.2, n), "weight": np.ones(n)}


def write_parquet(path: Path, columns: dict[str, Any], row_group_size: int = 1500) -> Path:
    pq.write_table(pa.table(columns), path, row_group_size=row_group_size)
    return path


def write_root(path: Path, columns: dict[str, Any], *, tree: str = "events",
               pieces: int = 3) -> Path:
    """A TTree filled in ``pieces`` baskets (so chunks cross basket boundaries)."""
    n = len(next(iter(columns.values())))
    with uproot.recreate(path) as f:
        f.mktree(tree, {k: v.type if isinstance(v, ak.Array) else v.dtype
                        for k, v in columns.items()})
        for part in np.array_split(np.arange(n), pieces):
            f[tree].extend({k: v[part[0]:part[-1] + 1] for k, v in columns.items()})
    return path


def expected(rw: Any, cols: dict[str, np.ndarray], mu: float) -> np.ndarray:
    x = np.stack([np.asarray(cols["a"], np.float64), np.asarray(cols["b"], np.float64)], 1)
    return rw.log_ratio(features=x, theta={"mu": mu})


def invoke(*args: Any) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


def read_parquet(path: Path) -> tuple[np.ndarray, np.ndarray]:
    t = pq.read_table(path)
    return t["log_w"].to_numpy(), t["w"].to_numpy()


def read_friend(path: Path) -> tuple[np.ndarray, np.ndarray, int]:
    with uproot.open(path) as f:
        tree = f["ratiofit_weights"]
        return (tree["log_w"].array(library="np"), tree["w"].array(library="np"),
                int(tree.num_entries))


# ---------------------------------------------------------------------------------------
# reweight: values
# ---------------------------------------------------------------------------------------
def test_parquet_output_is_log_ratio(mlp_dir: Path, mlp: Reweighter, tmp_path: Path) -> None:
    cols = flat_events(5000, seed=11)
    src = write_parquet(tmp_path / "events.parquet", cols)
    out = tmp_path / "out" / "weights.parquet"
    res = invoke("reweight", "--reweighter", mlp_dir, "--input", src, "--theta", "mu=0.7",
                 "-o", out, "-q")
    assert res.exit_code == 0, res.output
    assert f"wrote {out} (5000 events of {src}" in res.stdout
    log_w, w = read_parquet(out)
    assert_float32_close(log_w, expected(mlp, cols, 0.7))
    assert np.array_equal(w, np.exp(log_w))
    record = json.loads(pq.read_schema(out).metadata[b"ratiofit"])
    meta = json.loads((mlp_dir / "metadata.json").read_text())
    assert record["theta"] == {"mu": 0.7} and record["entries"] == 5000
    assert record["reweighters"][0]["model_sha256"] == meta["model_sha256"]
    assert sorted(p.name for p in out.parent.iterdir()) == ["weights.parquet"]  # no temporaries


def test_root_friend_tree(mlp_dir: Path, mlp: Reweighter, tmp_path: Path) -> None:
    cols = flat_events(4000, seed=12)
    src = write_root(tmp_path / "events.root", cols)
    out = tmp_path / "friend.root"
    # a run directory stands for its reweighter/
    res = invoke("reweight", "--reweighter", mlp_dir.parent, "--input", src, "--theta",
                 "mu=-1.2", "-o", out, "--step-size", 1500, "-q")
    assert res.exit_code == 0, res.output
    log_w, w, entries = read_friend(out)
    with uproot.open(src) as f:
        assert entries == f["events"].num_entries == 4000
    assert_float32_close(log_w, expected(mlp, cols, -1.2))
    assert np.array_equal(w, np.exp(log_w))
    with uproot.open(out) as f:
        assert json.loads(str(f["ratiofit_weights_info"]))["tree"] == "events"


def test_chunked_equals_unchunked(mlp_dir: Path, tmp_path: Path) -> None:
    src = write_parquet(tmp_path / "events.parquet", flat_events(5000, seed=13))
    root = write_root(tmp_path / "events.root", flat_events(5000, seed=13))
    outs = {}
    for step in (100_000, 777):
        for path in (src, root):
            out = tmp_path / f"w{step}{path.suffix}"
            res = invoke("reweight", "--reweighter", mlp_dir, "--input", path, "--theta",
                         "mu=1.1", "-o", out, "--step-size", step, "-q")
            assert res.exit_code == 0, res.output
            outs[step, path.suffix] = read_parquet(out)[0] if out.suffix == ".parquet" \
                else read_friend(out)[0]
    for suffix in (".parquet", ".root"):
        assert np.array_equal(outs[777, suffix], outs[100_000, suffix])
    # the same numbers from either file (b is float32 in both)
    assert np.array_equal(outs[100_000, ".parquet"], outs[100_000, ".root"])


def test_several_inputs_and_an_ensemble(mlp_dir: Path, mlp: Reweighter, tmp_path: Path
                                        ) -> None:
    # a second member: the same network without its calibration
    other = Reweighter.load(mlp_dir)
    other.calibration = None
    other_dir = other.save(tmp_path / "member-1")
    first, second = flat_events(1200, seed=14), flat_events(900, seed=15)
    inputs = [write_parquet(tmp_path / "first.parquet", first),
              write_root(tmp_path / "second.root", second)]
    res = invoke("reweight", "--reweighter", mlp_dir, "--reweighter", other_dir,
                 "--input", inputs[0], "--input", inputs[1], "--theta", "mu=0.4",
                 "-o", tmp_path / "w" / "weights.root", "-q")
    assert res.exit_code == 0, res.output
    for cols, name in ((first, "weights.first.root"), (second, "weights.second.root")):
        log_w, _, entries = read_friend(tmp_path / "w" / name)
        assert entries == len(cols["a"])
        x = np.stack([cols["a"], cols["b"].astype(np.float64)], 1)
        mean = 0.5 * (mlp.log_ratio(features=x, theta={"mu": 0.4})
                      + mlp.log_ratio(features=x, theta={"mu": 0.4}, calibrated=False))
        assert_float32_close(log_w, mean)


def test_particles_from_jagged_branches(pfn_dir: Path, tmp_path: Path) -> None:
    rw = Reweighter.load(pfn_dir)
    rng = np.random.default_rng(16)
    n = 1500
    counts = 1 + rng.poisson(5.0, n)
    x, y = rng.normal(0.2, 1.0, counts.sum()), rng.normal(0.0, 1.0, counts.sum())
    parts = ak.zip({"x": ak.unflatten(x, counts), "y": ak.unflatten(y, counts)})
    events = EventSet(features=counts[:, None].astype(np.float64),
                      feature_names=("n_particles",), particles=parts)
    want = rw.log_ratio(features=events, theta={"mu": 0.3})
    # ROOT: a record branch 'part' becomes the jagged branches part_x, part_y
    src = write_root(tmp_path / "jets.root", {"n_particles": counts.astype(np.float64),
                                              "part": parts})
    pcols = {"n_particles": counts.astype(np.float64),
             "part_x": ak.to_arrow(parts.x, extensionarray=False),
             "part_y": ak.to_arrow(parts.y, extensionarray=False)}
    psrc = write_parquet(tmp_path / "jets.parquet", pcols, row_group_size=600)
    for path in (src, psrc):
        out = tmp_path / f"w{path.suffix}.parquet"
        res = invoke("reweight", "--reweighter", pfn_dir, "--input", path, "--theta", "mu=0.3",
                     "--particle", "x=part_x", "--particle", "y=part_y", "-o", out,
                     "--step-size", 500, "-q")
        assert res.exit_code == 0, res.output
        assert_float32_close(read_parquet(out)[0], want)
    # without the mapping: the branch named like the field is missing
    res = invoke("reweight", "--reweighter", pfn_dir, "--input", src, "--theta", "mu=0.3",
                 "-o", tmp_path / "none.root")
    assert_one_line(res, "jets.root:events: no branch 'x'")
    assert not (tmp_path / "none.root").exists()


# ---------------------------------------------------------------------------------------
# reweight: bad input
# ---------------------------------------------------------------------------------------
def assert_one_line(res: Result, *fragments: str) -> str:
    assert res.exit_code == 2, res.output
    lines = res.stderr.strip().splitlines()
    errors = [ln for ln in lines if ln.startswith("ratiofit: error:")]
    assert len(errors) == 1 and "Traceback" not in res.stderr, res.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]


@pytest.mark.parametrize(("case", "fragments"), [
    ("missing_file", ["nowhere.parquet: file not found"]),
    ("missing_column", ["events.parquet: no column 'a'"]),
    ("nan_parquet", ["events.parquet: column 'a' has a NaN/inf value at row 2345"]),
    ("nan_root", ["events.root: column 'b' has a NaN/inf value at row 3001"]),
    ("null", ["events.parquet: column 'a' has a null value at row 17"]),
    ("theta_outside", ["--theta mu=2.5: outside the reweighter's range [-2, 2]"]),
    ("theta_missing", ["--theta: no value for mu"]),
    ("theta_unknown", ["--theta: unknown parameter 'nu'"]),
    ("string_column", ["column 'a' is of type string, not a number per event"]),
    ("no_tree", ["events.root: no tree 'nope' (has: events)"]),
    ("bad_output", ["weights.csv: unknown output format '.csv'"]),
])
def test_bad_input_is_one_line_and_writes_nothing(case: str, fragments: list[str],
                                                  mlp_dir: Path, tmp_path: Path) -> None:
    cols: dict[str, Any] = flat_events(4000, seed=17)
    src = tmp_path / "events.parquet"
    theta = ["--theta", "mu=0.5"]
    extra: list[str] = []
    out = tmp_path / "out" / "weights.root"
    if case == "missing_file":
        src = tmp_path / "nowhere.parquet"
    elif case == "missing_column":
        write_parquet(src, {k: v for k, v in cols.items() if k != "a"})
    elif case == "nan_parquet":
        cols["a"][2345] = np.nan
        write_parquet(src, cols)
    elif case == "nan_root":  # in the third chunk: the row counts from the file's start
        cols["b"][3001] = np.inf
        src = write_root(tmp_path / "events.root", cols)
        extra = ["--step-size", "1000"]
    elif case == "null":
        a = pa.array(cols["a"], mask=np.arange(4000) == 17)
        write_parquet(src, {**cols, "a": a})
    elif case == "string_column":
        write_parquet(src, {**cols, "a": np.array(["x"] * 4000)})
    elif case == "no_tree":
        src = write_root(tmp_path / "events.root", cols)
        extra = ["--tree", "nope"]
    else:
        write_parquet(src, cols)
        theta = {"theta_outside": ["--theta", "mu=2.5"], "theta_missing": [],
                 "theta_unknown": ["--theta", "mu=0.1", "--theta", "nu=1"]}.get(case, theta)
        if case == "bad_output":
            out = tmp_path / "out" / "weights.csv"
    res = invoke("reweight", "--reweighter", mlp_dir, "--input", src, *theta, "-o", out,
                 *extra)
    assert_one_line(res, *fragments)
    assert not out.parent.exists() or not list(out.parent.iterdir())


def test_interrupted_write_leaves_nothing(mlp: Reweighter, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C in the middle of the second input: neither output exists, no temporaries."""
    from ratiofit import apply

    inputs = [write_parquet(tmp_path / f"in{k}.parquet", flat_events(3000, seed=k))
              for k in range(2)]
    calls = {"n": 0}
    write = apply._ParquetOutput.write

    def interrupted(self: Any, log_w: np.ndarray, w: np.ndarray) -> None:
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        write(self, log_w, w)

    monkeypatch.setattr(apply._ParquetOutput, "write", interrupted)
    out = tmp_path / "out" / "weights.parquet"
    with pytest.raises(KeyboardInterrupt):
        apply.reweight_files(mlp, [str(p) for p in inputs], theta={"mu": 0.2}, output=out,
                             step_size=1000)
    assert calls["n"] == 5 and list(out.parent.iterdir()) == []


# ---------------------------------------------------------------------------------------
# export
# ---------------------------------------------------------------------------------------
def onnx_log_w(path: Path, feed: dict[str, np.ndarray]) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == list(feed)
    return np.asarray(session.run(["log_w"], feed)[0], np.float64)


def test_export_mlp_matches_keras(mlp_dir: Path, mlp: Reweighter, tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    out = tmp_path / "model.onnx"
    res = invoke("export", "--reweighter", mlp_dir, "-o", out)
    assert res.exit_code == 0, res.output
    assert "check: onnxruntime vs Keras on 4096 random events: max |d log w| =" in res.stdout
    side = json.loads((tmp_path / "model.json").read_text())
    meta = json.loads((mlp_dir / "metadata.json").read_text())
    assert [i["name"] for i in side["inputs"]] == ["features", "theta"]
    assert side["inputs"][0]["columns"] == ["a", "b"]
    assert side["theta"] == [{"name": "mu", "nominal": 0.0, "range": [-2.0, 2.0]}]
    assert side["source"]["model_sha256"] == meta["model_sha256"]
    assert side["output"]["calibration_included"] and side["calibration"]["tilt"]
    assert side["check"]["max_relative_difference"] <= 1e-5
    # our own events, θ per event, against the calibrated Keras reweighter
    rng = np.random.default_rng(21)
    x = rng.normal(0.0, 1.5, (3000, 2)).astype(np.float32)
    mu = rng.uniform(-2, 2, 3000).astype(np.float32)
    got = onnx_log_w(out, {"features": x, "theta": mu[:, None]})
    want = mlp.log_ratio(features=x.astype(np.float64), theta={"mu": mu.astype(np.float64)})
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * (1 + np.abs(want).max()))
    uncalibrated = mlp.log_ratio(features=x.astype(np.float64),
                                 theta={"mu": mu.astype(np.float64)}, calibrated=False)
    assert np.abs(got - uncalibrated).max() > 1e-3  # the calibration is in the graph
    # same reweighter, same bytes
    again = tmp_path / "again.onnx"
    assert invoke("export", "--reweighter", mlp_dir, "-o", again).exit_code == 0
    assert again.read_bytes() == out.read_bytes()


def test_export_pfn_matches_keras(pfn_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    rw = Reweighter.load(pfn_dir)
    out = tmp_path / "pfn.onnx"
    res = invoke("export", "--reweighter", pfn_dir, "-o", out)
    assert res.exit_code == 0, res.output
    side = json.loads((tmp_path / "pfn.json").read_text())
    assert [i["name"] for i in side["inputs"]] == ["features", "particles", "mask", "theta"]
    assert side["inputs"][1]["columns"] == ["x", "y"]
    rng = np.random.default_rng(22)
    counts = 1 + rng.poisson(5.0, 800)
    m = int(counts.max()) + 3  # padding beyond the longest event changes nothing
    mask = (np.arange(m)[None, :] < counts[:, None]).astype(np.float32)
    particles = rng.normal(0.0, 1.0, (800, m, 2)).astype(np.float32) * mask[..., None]
    feed = {"features": counts[:, None].astype(np.float32), "particles": particles,
            "mask": mask, "theta": np.full((800, 1), -0.4, np.float32)}
    got = onnx_log_w(out, feed)
    flat = particles[mask > 0].astype(np.float64)
    events = EventSet(features=counts[:, None].astype(np.float64),
                      feature_names=("n_particles",),
                      particles=ak.unflatten(ak.zip({"x": flat[:, 0], "y": flat[:, 1]}),
                                             counts))
    want = rw.log_ratio(features=events, theta={"mu": -0.4})
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * (1 + np.abs(want).max()))


def test_export_bad_output(mlp_dir: Path, tmp_path: Path) -> None:
    res = invoke("export", "--reweighter", mlp_dir, "-o", tmp_path / "model.txt")
    assert_one_line(res, "model.txt: the output must end in .onnx")
    res = invoke("export", "--reweighter", tmp_path / "nothing", "-o", tmp_path / "m.onnx")
    assert_one_line(res, "nothing: reweighter directory does not exist")
    assert list(tmp_path.iterdir()) == []


def test_run_directory_with_ensemble_notes_member_0(mlp_dir: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(mlp_dir, run / "reweighter")
    (run / "ensemble" / "member-1").mkdir(parents=True)
    src = write_parquet(tmp_path / "e.parquet", flat_events(100, seed=23))
    res = invoke("reweight", "--reweighter", run, "--input", src, "--theta", "mu=0", "-o",
                 tmp_path / "w.parquet", "-q")
    assert res.exit_code == 0, res.output
    assert "using" in res.stderr and "ensemble member 0" in res.stderr
