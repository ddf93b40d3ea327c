"""Blinded data (ratiofit.blinding, ``ratiofit blind`` / ``ratiofit unblind``): the file
holds the events and nothing that says θ, the parquet source reads them back, the seal
opens only on an unchanged file, and the comparison is the fit's own numbers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from ratiofit.blinding import unseal
from ratiofit.cli import main
from ratiofit.registry import get_registry
from ratiofit.sampling import make_sample
from ratiofit.spec import load_spec, load_spec_text

SPEC = """
seed: 3
parameters:
  mu: {nominal: 0.0, range: [-2.0, 2.0]}
samples:
  nominal: {source: gaussian, n_events: 1000, options: {mean: mu, width: 1.0}}
  varied:
    source: gaussian
    n_events: 1000
    theta: {mu: uniform}
    options: {mean: mu, width: 1.0}
  data:
    source: gaussian
    n_events: 1000
    theta: {mu: 0.5}
    options: {mean: mu, width: 1.0}
reweighter:
  reference: nominal
  target: varied
  training: {epochs: 1}
fit: {strategy: dctr, data: data, reference: nominal, parameters: [mu]}
"""


@pytest.fixture()
def spec_file(tmp_path: Path) -> Path:
    p = tmp_path / "spec.yaml"
    p.write_text(SPEC)
    return p


def _blind(spec_file: Path, out: Path, *extra: str) -> tuple[object, dict]:
    res = CliRunner().invoke(main, ["blind", str(spec_file), "-o", str(out), *extra])
    assert res.exit_code == 0, res.output
    return res, json.loads((out.parent / (out.name + ".truth.json")).read_text())


def test_the_blinded_file_holds_the_events_and_not_theta(spec_file: Path,
                                                         tmp_path: Path) -> None:
    """N(θ, 1) events at the sealed θ: their mean is θ within 4 standard errors (1/√5000),
    θ lies in the central 90 % of the range, and neither the file (columns, metadata) nor
    the command's output holds it. The parquet source reads the file back as the spec's
    data sample, event for event."""
    out = tmp_path / "blind" / "data.parquet"
    res, record = _blind(spec_file, out, "--seed", "7", "--n-events", "5000")
    truth = unseal(record)
    theta = truth["theta"]["mu"]
    assert -1.8 <= theta <= 1.8 and truth["range"]["mu"] == pytest.approx([-1.8, 1.8])
    table = pq.read_table(out)
    assert table.column_names == ["x0"] and table.schema.metadata is None
    x = table.column("x0").to_numpy()
    assert len(x) == 5000 and abs(x.mean() - theta) < 4 / np.sqrt(5000)
    assert f"{theta:.4g}" not in res.output and record["sealed"] not in res.output
    assert "source: parquet" in res.output
    # the printed declaration reads the same events
    text = SPEC.replace("""  data:
    source: gaussian
    n_events: 1000
    theta: {mu: 0.5}
    options: {mean: mu, width: 1.0}
""", "\n".join("  " + line for line in res.output.split("samples:\n", 1)[1].splitlines())
                        + "\n")
    spec = load_spec_text(text, path=str(spec_file), base_dir=tmp_path)
    ev = make_sample(spec.samples["data"], parameters=spec.parameters, seed=1,
                     registry=get_registry())
    np.testing.assert_array_equal(ev.features[:, 0], x)


def test_the_same_seed_gives_the_same_blinded_sample(spec_file: Path,
                                                     tmp_path: Path) -> None:
    _, a = _blind(spec_file, tmp_path / "a.parquet", "--seed", "11")
    _, b = _blind(spec_file, tmp_path / "b.parquet", "--seed", "11")
    _, c = _blind(spec_file, tmp_path / "c.parquet", "--seed", "12")
    assert unseal(a)["theta"] == unseal(b)["theta"] != unseal(c)["theta"]
    assert a["sha256"] == b["sha256"] != c["sha256"]


def test_without_a_seed_each_blinding_draws_its_own(spec_file: Path, tmp_path: Path) -> None:
    _, a = _blind(spec_file, tmp_path / "a.parquet")
    _, b = _blind(spec_file, tmp_path / "b.parquet")
    assert unseal(a)["seed"] != unseal(b)["seed"]  # 31-bit seeds: equal with p = 5e-10


def _result(run: Path, value: float, error: float, interval: list[float] | None = None,
            at_limit: bool = False, file: str = "result.json") -> None:
    run.mkdir(parents=True, exist_ok=True)
    entry = {"value": value, "error": error}
    if interval is not None:
        entry["interval_95"] = interval
    fit = {"parameters": {"mu": entry}, "warnings": ["w"],
           "extra": {"at_limit": ["mu"] if at_limit else []}}
    (run / file).write_text(json.dumps({"fit": fit}))


def test_unblind_compares_the_fit_with_the_sealed_truth(spec_file: Path,
                                                        tmp_path: Path) -> None:
    """pull = (value − truth)/error; the 95 % interval is the fit's where it reports one
    (else ±1.96 errors); the comparison is written to the run directory."""
    out = tmp_path / "data.parquet"
    _, record = _blind(spec_file, out, "--seed", "5")
    theta = unseal(record)["theta"]["mu"]
    run = tmp_path / "run"
    _result(run, theta + 0.3, 0.2, interval=[theta - 0.1, theta + 0.7], at_limit=True)
    res = CliRunner().invoke(main, ["unblind", str(run), "--truth", str(out) + ".truth.json"])
    assert res.exit_code == 0, res.output
    got = json.loads((run / "unblinded.json").read_text())["parameters"]["mu"]
    assert got["pull"] == pytest.approx(1.5) and got["truth"] == theta
    assert not got["in_68"] and got["in_95"] and got["at_range_limit"]
    assert "pull +1.50" in res.output and "range limit" in res.output
    _result(run, theta - 0.5, 0.2)
    res = CliRunner().invoke(main, ["unblind", str(run), "--truth", str(out) + ".truth.json"])
    assert res.exit_code == 0, res.output
    got = json.loads((run / "unblinded.json").read_text())["parameters"]["mu"]
    assert got["pull"] == pytest.approx(-2.5) and not got["in_95"]
    # a `ratiofit fit` of the blinded data with a reweighter trained before: its fit.json
    refit = tmp_path / "refit"
    _result(refit, theta + 0.1, 0.2, file="fit.json")
    res = CliRunner().invoke(main, ["unblind", str(refit), "--truth", str(out) + ".truth.json"])
    assert res.exit_code == 0, res.output
    got = json.loads((refit / "unblinded.json").read_text())
    assert got["fit_file"] == "fit.json" and got["parameters"]["mu"]["pull"] == pytest.approx(0.5)


def _one_line_error(res: object, *needles: str) -> None:
    assert res.exit_code == 2, res.output  # type: ignore[attr-defined]
    msg = res.output.strip()  # type: ignore[attr-defined]
    assert msg.startswith("ratiofit: error: ") and "\n" not in msg and "Traceback" not in msg
    for n in needles:
        assert n in msg, msg


def test_bad_blinding_input_is_one_line(spec_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "data.parquet"
    _blind(spec_file, out, "--seed", "1")
    # a sealed truth is never overwritten
    _one_line_error(CliRunner().invoke(main, ["blind", str(spec_file), "-o", str(out)]),
                    "truth.json", "sealed truth")
    _one_line_error(CliRunner().invoke(main, ["blind", str(spec_file), "-o",
                                              str(tmp_path / "x.parquet"), "--sample", "nope"]),
                    "no sample 'nope'")
    # a sample that reads files cannot be generated at another θ
    files = tmp_path / "files.yaml"
    files.write_text(SPEC.replace("fit: {strategy: dctr, data: data", "fit: {strategy: dctr, "
                                  "data: real").replace("samples:\n", "samples:\n  real: "
                                  "{source: parquet, options: {files: data.parquet}}\n"))
    assert load_spec(files).samples["real"].source == "parquet"
    _one_line_error(CliRunner().invoke(main, ["blind", str(files), "-o",
                                              str(tmp_path / "y.parquet")]),
                    "reads files", "'real'")
    # the data file changed after blinding: the seal stays shut
    run = tmp_path / "run"
    _result(run, 0.0, 0.1)
    tampered = tmp_path / "t.parquet"
    _blind(spec_file, tampered, "--seed", "2")
    tampered.write_bytes(out.read_bytes())
    _one_line_error(CliRunner().invoke(main, ["unblind", str(run), "--truth",
                                              str(tampered) + ".truth.json"]),
                    "changed since it was blinded")
    # a truth file that is not one
    (tmp_path / "bad.json").write_text(json.dumps({"format": "x"}))
    _one_line_error(CliRunner().invoke(main, ["unblind", str(run), "--truth",
                                              str(tmp_path / "bad.json")]), "bad.json")
