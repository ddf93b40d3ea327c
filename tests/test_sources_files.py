"""File samples (issue 19, items 1-2): the ``root`` and ``parquet`` sources on files the
tests write themselves with uproot and pyarrow — flat and jagged branches, weights with
10 % negative ones, a θ column — and the spec around them: every row when ``n_events``
is absent, θ fixed or read from a column, relative paths, ``--scale``; each bad input
as one line, exit status 2, nothing written half-way; one end-to-end ``ratiofit run``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import uproot
import yaml
from click.testing import CliRunner

from ratiofit.cli import main
from ratiofit.errors import PluginError, RatiofitError
from ratiofit.sampling import make_sample
from ratiofit.spec import load_spec, load_spec_text, resolved_dict, scale_spec

MU_RANGE = [-1.0, 1.0]


# ---------------------------------------------------------------------------------------
# files and specs
# ---------------------------------------------------------------------------------------
def branches(n: int, *, seed: int, mu: float | None = None, negative: float = 0.1,
             ) -> dict[str, Any]:
    """One file's columns: flat x0 ~ N(mu, 1) (float64), x1 (float32), n_hits (int32),
    weights w (a fraction ``negative`` of them -0.5, the others 1), mu_gen (uniform in the
    range, or ``mu``) and particles (pt, eta), 0 to ~8 per event."""
    rng = np.random.default_rng(seed)
    mu_gen = rng.uniform(*MU_RANGE, size=n) if mu is None else np.full(n, mu)
    counts = rng.poisson(3.0, size=n)
    total = int(counts.sum())
    return {
        "x0": mu_gen + rng.standard_normal(n),
        "x1": rng.standard_normal(n).astype(np.float32),
        "n_hits": rng.integers(0, 5, size=n).astype(np.int32),
        "w": np.where(rng.random(n) < negative, -0.5, 1.0),
        "mu_gen": mu_gen,
        "part": ak.zip({"pt": ak.unflatten(rng.exponential(1.0, total) + 0.5, counts),
                        "eta": ak.unflatten(rng.standard_normal(total), counts)}),
    }


def write_root(path: Path, columns: dict[str, Any], *, tree: str = "events") -> Path:
    with uproot.recreate(path) as f:
        f.mktree(tree, {k: v.type if isinstance(v, ak.Array) else v.dtype
                        for k, v in columns.items()})
        f[tree].extend(columns)
    return path


def write_parquet(path: Path, columns: dict[str, Any]) -> Path:
    table = {}
    for k, v in columns.items():
        if isinstance(v, ak.Array):  # particles as list columns part_pt, part_eta
            for f in v.fields:
                table[f"{k}_{f}"] = ak.to_arrow(v[f], extensionarray=False)
        else:
            table[k] = v
    pq.write_table(pa.table(table), path)
    return path


def spec_text(samples: dict[str, Any], **sections: Any) -> str:
    return yaml.safe_dump({"seed": 1, "parameters": {"mu": {"nominal": 0.0,
                                                            "range": MU_RANGE}},
                           "samples": samples, **sections}, sort_keys=False)


def root_sample(files: Any, *, theta: Any = None, n_events: int | None = None,
                **options: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"source": "root"}
    if n_events is not None:
        out["n_events"] = n_events
    if theta is not None:
        out["theta"] = theta
    out["options"] = {"files": files, "tree": "events", **options}
    return out


PARTICLES = {"pt": "part_pt", "eta": "part_eta"}


def read(tmp_path: Path, sample: dict[str, Any], *, name: str = "s") -> Any:
    spec = load_spec_text(spec_text({name: sample}), path=str(tmp_path / "spec.yaml"))
    return make_sample(spec.samples[name], parameters=spec.parameters, seed=1)


def assert_same_events(a: Any, b: Any) -> None:
    assert a.feature_names == b.feature_names and a.theta_names == b.theta_names
    np.testing.assert_array_equal(a.features, b.features)
    np.testing.assert_array_equal(a.theta, b.theta)
    np.testing.assert_array_equal(a.event_weights, b.event_weights)
    assert (a.particles is None) == (b.particles is None)
    if a.particles is not None:
        assert ak.array_equal(a.particles, b.particles)


# ---------------------------------------------------------------------------------------
# reading
# ---------------------------------------------------------------------------------------
def test_root_reads_features_particles_weights_and_a_theta_column(tmp_path: Path) -> None:
    cols = branches(3000, seed=1)
    write_root(tmp_path / "varied.root", cols)
    spec = load_spec_text(spec_text({"varied": root_sample(
        "varied.root", theta={"mu": {"column": "mu_gen"}}, particles=PARTICLES,
        weight="w")}), path=str(tmp_path / "spec.yaml"))
    sample = spec.samples["varied"]
    assert sample.n_events is None and sample.varied == ["mu"]
    ev = make_sample(sample, parameters=spec.parameters, seed=1)
    assert len(ev) == 3000
    # every flat numeric branch but the weight and the θ column (npart counts particles)
    assert ev.feature_names == ("x0", "x1", "n_hits", "npart")
    np.testing.assert_array_equal(ev.feature_columns(["x0"])[:, 0], cols["x0"])
    np.testing.assert_array_equal(ev.feature_columns(["x1"])[:, 0],
                                  cols["x1"].astype(np.float64))
    np.testing.assert_array_equal(ev.theta_matrix(["mu"])[:, 0], cols["mu_gen"])
    np.testing.assert_array_equal(ev.weights, cols["w"])
    assert 0.07 < np.mean(ev.weights < 0) < 0.13  # about 10 % negative: kept as they are
    assert ev.particle_fields == ("pt", "eta")
    assert ak.array_equal(ev.particles, cols["part"])


def test_several_files_and_a_glob_are_read_in_order(tmp_path: Path) -> None:
    parts = [branches(500 + 100 * k, seed=10 + k) for k in range(3)]
    for k, cols in enumerate(parts):
        write_root(tmp_path / f"v_{k}.root", cols)
    opts = {"particles": PARTICLES, "weight": "w"}
    theta = {"mu": {"column": "mu_gen"}}
    by_glob = read(tmp_path, root_sample("v_*.root", theta=theta, **opts))
    by_list = read(tmp_path, root_sample([f"v_{k}.root" for k in range(3)], theta=theta,
                                         **opts))
    assert_same_events(by_glob, by_list)
    assert len(by_glob) == 1800
    np.testing.assert_array_equal(by_glob.theta[:, 0],
                                  np.concatenate([c["mu_gen"] for c in parts]))
    assert ak.array_equal(by_glob.particles, ak.concatenate([c["part"] for c in parts]))
    assert by_glob.provenance["files"] == [str(tmp_path / f"v_{k}.root") for k in range(3)]


@pytest.mark.parametrize("source", ["root", "parquet"])
def test_chunked_reading_gives_exactly_the_events_of_one_read(tmp_path: Path,
                                                               source: str) -> None:
    cols = branches(2500, seed=2)
    sample: dict[str, Any]
    if source == "root":
        write_root(tmp_path / "a.root", cols)
        write_root(tmp_path / "b.root", branches(700, seed=3))
        sample = root_sample(["a.root", "b.root"], theta={"mu": {"column": "mu_gen"}},
                             particles=PARTICLES, weight="w", selection="abs(x1) < 1.5")
    else:
        write_parquet(tmp_path / "a.parquet", cols)
        write_parquet(tmp_path / "b.parquet", branches(700, seed=3))
        sample = {"source": "parquet", "theta": {"mu": {"column": "mu_gen"}},
                  "options": {"files": ["a.parquet", "b.parquet"], "particles": PARTICLES,
                              "weight": "w", "selection": "abs(x1) < 1.5"}}
    whole = read(tmp_path, sample)
    sample["options"]["step_size"] = 7
    chunked = read(tmp_path, sample)
    assert_same_events(whole, chunked)
    sample["n_events"] = 1234  # stops inside a chunk and inside the first file
    first = read(tmp_path, sample)
    assert_same_events(first, whole.take(np.arange(1234)))


def test_all_rows_without_n_events_the_first_rows_with_it(tmp_path: Path) -> None:
    cols = branches(800, seed=4, mu=0.0)
    write_root(tmp_path / "nominal.root", cols)
    everything = read(tmp_path, root_sample("nominal.root", features=["x0"]))
    assert len(everything) == 800
    first = read(tmp_path, root_sample("nominal.root", n_events=100, features=["x0"]))
    np.testing.assert_array_equal(first.features[:, 0], cols["x0"][:100])
    with pytest.raises(PluginError, match=r"nominal\.root:events: has 800 rows, n_events "
                                          r"asks for 801"):
        read(tmp_path, root_sample("nominal.root", n_events=801, features=["x0"]))


def test_the_selection_keeps_passing_rows_and_its_columns_stay_out(tmp_path: Path) -> None:
    cols = branches(1000, seed=5)
    write_root(tmp_path / "v.root", cols)
    ev = read(tmp_path, root_sample("v.root", features=["x0"],
                                    selection="(x1 > 0) & (n_hits >= 2) | (x0 < -2)"))
    keep = ((cols["x1"] > 0) & (cols["n_hits"] >= 2)) | (cols["x0"] < -2)
    assert ev.feature_names == ("x0",)
    np.testing.assert_array_equal(ev.features[:, 0], cols["x0"][keep])
    n = read(tmp_path, root_sample("v.root", features=["x0"], n_events=50,
                                   selection="x1 > 0"))
    np.testing.assert_array_equal(n.features[:, 0], cols["x0"][cols["x1"] > 0][:50])


def test_fixed_theta_and_theta_column_round_trip_through_the_resolved_spec(
        tmp_path: Path) -> None:
    write_root(tmp_path / "v.root", branches(300, seed=6))
    write_root(tmp_path / "n.root", branches(300, seed=7, mu=0.5))
    spec = load_spec_text(spec_text({
        "varied": root_sample("v.root", theta={"mu": {"column": "mu_gen"}}, weight="w"),
        "fixed": root_sample("n.root", theta={"mu": 0.5}, features=["x0"])}),
        path=str(tmp_path / "spec.yaml"))
    assert spec.samples["fixed"].varied == []
    fixed = make_sample(spec.samples["fixed"], parameters=spec.parameters, seed=1)
    assert fixed.theta_names == () and len(fixed) == 300
    doc = resolved_dict(spec)
    varied = doc["samples"]["varied"]
    assert varied["theta"] == {"mu": {"column": "mu_gen"}}
    assert "n_events" not in varied and "_theta_columns" not in varied["options"]
    assert doc["samples"]["fixed"]["theta"] == {"mu": 0.5}
    again = load_spec_text(yaml.safe_dump(doc), path=str(tmp_path / "elsewhere" / "s.yaml"))
    assert again.samples == spec.samples


def test_relative_paths_are_relative_to_the_spec_file(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "analysis" / "data").mkdir(parents=True)
    cols = branches(200, seed=8)
    write_root(tmp_path / "analysis" / "data" / "v_0.root", cols)
    spec_path = tmp_path / "analysis" / "spec.yaml"
    spec_path.write_text(spec_text({"varied": root_sample(
        "data/v_*.root", theta={"mu": {"column": "mu_gen"}}, features=["x0"])}))
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    res = CliRunner().invoke(main, ["validate", "../analysis/spec.yaml"])
    assert res.exit_code == 0, res.output
    spec = load_spec("../analysis/spec.yaml")
    files = spec.samples["varied"].options["files"]
    assert files == [str(tmp_path / "analysis" / "data" / "v_*.root")]
    ev = make_sample(spec.samples["varied"], parameters=spec.parameters, seed=1)
    np.testing.assert_array_equal(ev.features[:, 0], cols["x0"])
    # the resolved spec holds absolute paths: it loads from any directory
    copy = tmp_path / "copy.yaml"
    copy.write_text(yaml.safe_dump(resolved_dict(spec)))
    assert load_spec(copy).samples["varied"].options["files"] == files


def test_parquet_weight_column_is_not_a_feature(tmp_path: Path) -> None:
    rng = np.random.default_rng(9)
    x = rng.normal(size=(400, 2))
    w = np.where(rng.random(400) < 0.1, -0.2, 1.0)
    pq.write_table(pa.table({"x0": x[:, 0], "x1": x[:, 1], "weight": w,
                             "mu_gen": rng.uniform(-1, 1, 400)}), tmp_path / "d.parquet")
    sample = {"source": "parquet", "theta": {"mu": {"column": "mu_gen"}},
              "options": {"files": "d.parquet", "weight": "weight"}}
    ev = read(tmp_path, sample)
    assert ev.feature_names == ("x0", "x1")
    np.testing.assert_array_equal(ev.weights, w)
    # the older spellings: path and columns
    old = read(tmp_path, {"source": "parquet", "n_events": 400,
                          "options": {"path": "d.parquet", "columns": ["x1"]}})
    np.testing.assert_array_equal(old.features[:, 0], x[:, 1])


def test_parquet_particles_match_the_root_ones(tmp_path: Path) -> None:
    cols = branches(600, seed=11)
    write_root(tmp_path / "e.root", cols)
    write_parquet(tmp_path / "e.parquet", cols)
    opts = {"particles": PARTICLES, "weight": "w", "features": ["x0", "x1", "n_hits"],
            "selection": "x0 > -0.5"}
    theta = {"mu": {"column": "mu_gen"}}
    from_root = read(tmp_path, root_sample("e.root", theta=theta, **opts))
    from_parquet = read(tmp_path, {"source": "parquet", "theta": theta,
                                   "options": {"files": "e.parquet", **opts}})
    assert_same_events(from_root, from_parquet)


def test_scale_reads_the_first_fraction_of_an_all_rows_sample(tmp_path: Path) -> None:
    cols = branches(1001, seed=12)
    write_root(tmp_path / "v.root", cols)
    spec = load_spec_text(spec_text({
        "varied": root_sample("v.root", theta={"mu": {"column": "mu_gen"}},
                              features=["x0"]),
        "counted": root_sample("v.root", n_events=400, features=["x0"])}),
        path=str(tmp_path / "spec.yaml"))
    small = scale_spec(spec, 0.5)
    assert small.samples["varied"].fraction == 0.5 and small.samples["counted"].n_events == 200
    ev = make_sample(small.samples["varied"], parameters=small.parameters, seed=1)
    assert len(ev) == 500  # round(0.5 * 1001): the first half of the file's rows
    np.testing.assert_array_equal(ev.features[:, 0], cols["x0"][:500])
    np.testing.assert_array_equal(ev.theta[:, 0], cols["mu_gen"][:500])
    doc = resolved_dict(small)
    assert doc["samples"]["varied"]["fraction"] == 0.5
    assert load_spec_text(yaml.safe_dump(doc)).samples == small.samples
    with pytest.raises(RatiofitError, match="sample 'varied' reads every row of its files, "
                                            "which cannot be scaled up"):
        scale_spec(spec, 2.0)


# ---------------------------------------------------------------------------------------
# bad input: one line, exit status 2
# ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("files")
    cols = branches(300, seed=20)
    write_root(d / "v.root", cols)
    with uproot.recreate(d / "odd.root") as f:  # a fixed-size array branch and a histogram
        f.mktree("events", {"x0": "f8", "triple": ("f8", (3,))})
        f["events"].extend({"x0": np.zeros(4), "triple": np.zeros((4, 3))})
        f["h"] = np.histogram(np.zeros(3))
    (d / "not_root.root").write_text("just text\n")
    write_parquet(d / "weighted.parquet", cols)
    pq.write_table(pa.table({"x0": cols["x0"], "weight": cols["w"]}), d / "w.parquet")
    # bad data (found when the events are read)
    for name, column, row, value in (("nan_x0", "x0", 17, np.nan), ("nan_w", "w", 5, np.inf),
                                     ("theta_out", "mu_gen", 9, 1.7)):
        bad = dict(cols)
        bad[column] = cols[column].copy()
        bad[column][row] = value
        write_root(d / f"{name}.root", bad)
    bad = dict(cols)
    pt = ak.to_numpy(ak.flatten(cols["part"].pt)).copy()
    counts = ak.to_numpy(ak.num(cols["part"]))
    pt[int(counts[:33].sum())] = np.nan  # the first particle of entry 33
    bad["part"] = ak.zip({"pt": ak.unflatten(pt, counts), "eta": cols["part"].eta})
    write_root(d / "nan_particle.root", bad)
    bad = dict(cols)
    bad["w"] = -np.abs(cols["w"])
    write_root(d / "negative_total.root", bad)
    bad = {k: v for k, v in cols.items() if k != "part"}
    counts2 = counts.copy()
    counts2[41] += 1  # one more eta than pt in entry 41
    bad["pt"] = cols["part"].pt
    bad["eta"] = ak.unflatten(np.zeros(int(counts2.sum())), counts2)
    write_root(d / "counts.root", bad)
    return d


def _one_line(res: Any, spec: Path) -> str:
    assert res.exit_code == 2, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert "Traceback" not in res.output
    return lines[0]


VALIDATE_CASES: dict[str, tuple[dict[str, Any], str, list[str]]] = {
    "missing-file": (root_sample("gone.root"), "samples.s.options.files",
                     ["gone.root: file not found"]),
    "glob-matches-nothing": (root_sample("gone_*.root"), "samples.s.options.files",
                             ["gone_*.root: the glob matches no ROOT file"]),
    "not-a-root-file": (root_sample("not_root.root"), "samples.s.options.files",
                        ["not_root.root: cannot read as a ROOT file"]),
    "missing-tree": (root_sample("v.root") | {"options": {"files": "v.root",
                                                          "tree": "tree2"}},
                     "samples.s.options.tree", ["v.root: no tree 'tree2' (has: events)"]),
    "not-a-tree": (root_sample("odd.root") | {"options": {"files": "odd.root", "tree": "h"}},
                   "samples.s.options.tree", ["'h' is a TH1D, not a TTree"]),
    "missing-feature": (root_sample("v.root", features=["x0", "x9"]),
                        "samples.s.options.features", ["v.root:events: no branch 'x9'"]),
    "missing-weight": (root_sample("v.root", weight="weight"), "samples.s.options.weight",
                       ["no branch 'weight'"]),
    "missing-particle-branch": (root_sample("v.root", particles={"pt": "part_ptt"}),
                                "samples.s.options.particles", ["no branch 'part_ptt'"]),
    "missing-theta-column": (root_sample("v.root", theta={"mu": {"column": "mu_true"}}),
                             "samples.s.theta.mu", ["no branch 'mu_true'"]),
    "jagged-as-feature": (root_sample("v.root", features=["part_pt"]),
                          "samples.s.options.features",
                          ["branch 'part_pt' is a list of numbers per event, not a number "
                           "per event"]),
    "flat-as-particles": (root_sample("v.root", particles={"pt": "x0"}),
                          "samples.s.options.particles",
                          ["branch 'x0' is a number per event, not a list of numbers"]),
    "array-as-feature": (root_sample("odd.root", features=["triple"]),
                         "samples.s.options.features", ["'triple' is of type double[3]"]),
    "jagged-as-theta": (root_sample("v.root", theta={"mu": {"column": "part_eta"}}),
                        "samples.s.theta.mu", ["'part_eta' is a list of numbers per event"]),
    "selection-attribute": (root_sample("v.root", selection="x0.sum() > 1"),
                            "samples.s.options.selection", ["attribute access '.sum'"]),
    "selection-call": (root_sample("v.root", selection="exp(x0) > 1"),
                       "samples.s.options.selection", ["the call exp(...)"]),
    "selection-unknown-name": (root_sample("v.root", selection="x2 > 1"),
                               "samples.s.options.selection", ["no column 'x2'"]),
    "selection-jagged": (root_sample("v.root", selection="part_pt > 1"),
                         "samples.s.options.selection", ["no column 'part_pt'"]),
    "selection-precedence": (root_sample("v.root", selection="x0 > 1 & x1 < 2"),
                             "samples.s.options.selection", ["put each in parentheses"]),
    "theta-drawn-on-files": (root_sample("v.root", theta={"mu": "uniform"}),
                             "samples.s.theta.mu",
                             ["reads files", "cannot be drawn at random",
                              "{column: NAME}"]),
    "theta-range-drawn-on-files": (root_sample("v.root",
                                               theta={"mu": {"uniform": [-0.5, 0.5]}}),
                                   "samples.s.theta.mu", ["cannot be drawn at random"]),
    "theta-column-on-a-generator": (
        {"source": "gaussian", "n_events": 10, "theta": {"mu": {"column": "mu_gen"}},
         "options": {"mean": "mu"}}, "samples.s.theta.mu",
        ["needs a source that reads files"]),
    "generator-without-n_events": ({"source": "gaussian", "options": {"mean": "mu"}},
                                   "samples.s", ["missing required field 'n_events'"]),
    "fraction-with-n_events": (root_sample("v.root", n_events=10) | {"fraction": 0.5},
                               "samples.s.fraction", ["without n_events"]),
    "weight-read-as-feature": ({"source": "parquet", "options": {"files": "w.parquet"}},
                               "samples.s.options",
                               ["column 'weight' looks like event weights"]),
    "parquet-path-and-files": ({"source": "parquet", "options": {
        "files": "w.parquet", "path": "w.parquet"}}, "samples.s.options.path", ["not both"]),
    "parquet-wrong-dtype": ({"source": "parquet", "options": {
        "files": "weighted.parquet", "features": ["part_pt"]}},
        "samples.s.options.features", ["'part_pt' is a list of numbers per event"]),
}


@pytest.mark.parametrize("case", list(VALIDATE_CASES))
def test_bad_file_samples_are_one_line_at_validation(case: str, files: Path) -> None:
    sample, field, fragments = VALIDATE_CASES[case]
    spec = files / f"{case}.yaml"
    spec.write_text(spec_text({"s": sample}))
    line = _one_line(CliRunner().invoke(main, ["validate", str(spec)]), spec)
    assert line.startswith(f"ratiofit: error: {spec}:"), line
    assert f": {field}: " in line, line
    for fragment in fragments:
        assert fragment in line, line


RUN_CASES: dict[str, tuple[dict[str, Any], list[str]]] = {
    "nan-feature": (root_sample("nan_x0.root", features=["x0", "x1"]),
                    ["nan_x0.root: column 'x0' has a NaN/inf value at row 17"]),
    "inf-weight": (root_sample("nan_w.root", features=["x0"], weight="w"),
                   ["nan_w.root: column 'w' has a NaN/inf value at row 5"]),
    "nan-particle": (root_sample("nan_particle.root", features=["x0"], particles=PARTICLES),
                     ["nan_particle.root: particle column 'part_pt' has a NaN/inf value at "
                      "row 33"]),
    "nan-in-the-second-file": (root_sample(["v.root", "nan_x0.root"], features=["x0"]),
                               ["nan_x0.root: column 'x0'", "row 17"]),
    "theta-outside-its-range": (root_sample("theta_out.root", features=["x0"],
                                            theta={"mu": {"column": "mu_gen"}}),
                                ["theta_out.root: column 'mu_gen' (theta 'mu') has 1.7 at "
                                 "row 9, outside the range of 'mu' [-1, 1]"]),
    "non-positive-total-weight": (root_sample("negative_total.root", features=["x0"],
                                              weight="w"),
                                  ["negative_total.root:events: the weights in column 'w' "
                                   "sum to"]),
    "particle-counts-differ": (root_sample("counts.root", features=["x0"],
                                           particles={"pt": "pt", "eta": "eta"}),
                               ["counts.root: particle columns 'pt' and 'eta' have different "
                                "counts at row 41"]),
    "more-events-than-rows": (root_sample("v.root", features=["x0"], n_events=301,
                                          selection="x0 > -100"),
                              ["v.root:events: has 300 rows passing the selection "
                               "'x0 > -100', n_events asks for 301"]),
}


@pytest.mark.parametrize("case", list(RUN_CASES))
def test_bad_data_are_one_line_when_read_and_nothing_is_written(case: str, files: Path,
                                                                 tmp_path: Path) -> None:
    sample, fragments = RUN_CASES[case]
    other = root_sample("v.root", theta={"mu": {"column": "mu_gen"}}, features=["x0"])
    if "theta" in sample:
        sample, other = other, sample  # the bad one is the target
    spec = files / f"run-{case}.yaml"
    spec.write_text(spec_text({"s": sample, "t": other}, reweighter={
        "reference": "s", "target": "t", "training": {"epochs": 1}}))
    assert CliRunner().invoke(main, ["validate", str(spec)]).exit_code == 0
    out = tmp_path / "out"
    res = CliRunner().invoke(main, ["run", str(spec), "-o", str(out), "-q"])
    line = _one_line(res, spec)
    assert "source 'root' failed for sample" in line, line
    for fragment in fragments:
        assert fragment in line, line
    assert not (out / "result.json").exists() and not (out / "reweighter").exists()


# ---------------------------------------------------------------------------------------
# end to end
# ---------------------------------------------------------------------------------------
def test_run_trains_a_reweighter_from_root_files_with_a_theta_column(tmp_path: Path) -> None:
    """Nominal ROOT file at mu = 0, two varied files (a glob) with mu per event in a
    branch, 10 % negative weights in all three (independent of the event, so the signed
    weights describe the same distribution; issue 19), data from parquet: train (2
    epochs), calibrate, fit, and the run directory's copy of the spec reruns from
    anywhere."""
    data = tmp_path / "files"
    data.mkdir()
    nominal = branches(4000, seed=30, mu=0.0, negative=0.1)
    assert 0.08 < np.mean(nominal["w"] < 0) < 0.12
    write_root(data / "nominal.root", nominal)
    for k in range(2):
        write_root(data / f"varied_{k}.root", branches(2000, seed=31 + k, negative=0.1))
    write_parquet(data / "data.parquet", {k: v for k, v in branches(
        1500, seed=33, mu=0.5, negative=0.0).items() if k in ("x0", "x1")})
    opts = {"tree": "events", "features": ["x0", "x1"], "particles": PARTICLES,
            "weight": "w"}
    spec = tmp_path / "spec.yaml"
    spec.write_text(spec_text(
        {"nominal": {"source": "root", "options": {"files": "files/nominal.root", **opts}},
         "varied": {"source": "root", "theta": {"mu": {"column": "mu_gen"}},
                    "options": {"files": "files/varied_*.root", **opts,
                                "selection": "n_hits >= 0", "step_size": 1500}},
         "data": {"source": "parquet", "options": {"files": "files/data.parquet"}}},
        reweighter={"architecture": {"name": "mlp", "options": {"hidden": [16, 16]}},
                    "reference": "nominal", "target": "varied",
                    "inputs": {"features": ["x0", "x1"]},
                    "training": {"epochs": 2, "batch_size": 256}},
        fit={"strategy": "dctr", "data": "data", "parameters": ["mu"]},
        uncertainty={"replicas": 0}, outputs={"plots": False}))
    out = tmp_path / "out"
    res = CliRunner().invoke(main, ["run", str(spec), "-o", str(out), "-q"])
    assert res.exit_code == 0, res.output
    result = json.loads((out / "result.json").read_text())
    mu = result["fit"]["parameters"]["mu"]
    assert np.isfinite(mu["value"]) and -1.0 <= mu["value"] <= 1.0
    assert np.isfinite(result["normalisation"]["max_abs_log_norm"])  # signed E_ref[w]
    assert result["fit"]["correction"]["applied"] is False  # the target reads files
    assert result["fit"]["gate"]["verdict"] == "not run"  # no held-out reference events
    meta = json.loads((out / "reweighter" / "metadata.json").read_text())
    assert "mu" in json.dumps(meta)
    copy = yaml.safe_load((out / "spec.yaml").read_text())
    assert copy["samples"]["varied"]["options"]["files"] == [str(data / "varied_*.root")]
    assert copy["samples"]["varied"]["theta"] == {"mu": {"column": "mu_gen"}}
    rerun = load_spec(out / "spec.yaml")
    assert rerun.samples == load_spec(spec).samples


def test_a_changed_file_changes_the_run_fingerprint(tmp_path: Path) -> None:
    """Stored job results are reused only while the files a run read are unchanged."""
    import os

    from ratiofit.cli import _run_fingerprint

    path = write_root(tmp_path / "v.root", branches(100, seed=40))
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(spec_text({"s": root_sample("v.root", features=["x0"])}))
    first = _run_fingerprint(load_spec(spec_path))
    assert _run_fingerprint(load_spec(spec_path)) == first
    write_root(path, branches(100, seed=41))
    stat = os.stat(path)  # even where the clock is coarse: a new size or time
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert _run_fingerprint(load_spec(spec_path)) != first


def test_coverage_refuses_data_read_from_files(tmp_path: Path) -> None:
    """Coverage redraws the data at each repeat's truth: a data sample that reads every row
    of its file cannot be redrawn, and says so in one line."""
    from ratiofit.coverage import run_coverage
    from ratiofit.errors import RatiofitError

    f = write_root(tmp_path / "data.root", branches(500, seed=5, mu=0.1))
    text = spec_text(
        {"nominal": {"source": "gaussian", "n_events": 500, "options": {"mean": "mu"}},
         "signal": {"source": "gaussian", "n_events": 200, "options": {"mean": 2.0}},
         "data": root_sample(str(f), theta={"mu": 0.1}, features=["x0"])},
        inference={"observable": "x0", "bins": {"n": 4, "range": [-4, 4]}, "flow": "fold",
                   "poi": "mu_sig", "data": "data",
                   "samples": {"sig": {"sample": "signal", "yield": 20, "signal": True},
                               "bkg": {"sample": "nominal", "yield": 500}},
                   "nuisances": {}})
    spec = load_spec_text(text, path=str(tmp_path / "spec.yaml"))
    with pytest.raises(RatiofitError, match="coverage redraws the data sample 'data'") as e:
        run_coverage(spec, repeats=2, outdir=tmp_path / "cov")
    assert "\n" not in str(e.value)
