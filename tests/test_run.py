"""End to end through the CLI on a tiny spec: result.json layout, ensembles, plots, reruns."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from click.testing import CliRunner
from conftest import assert_float32_close, gaussian_spec

from ratiofit.cli import main
from ratiofit.reweighter import Reweighter
from ratiofit.spec import load_spec

TINY_KW = {"n_nominal": 6000,
           "calibration": {"method": "normalisation", "points": 5, "degree": 2,
                           "events": 6000},
           "fit": {"strategy": "likelihood", "data": "data", "parameters": ["mu"]},
           "ensemble": {"members": 2, "average_fit": True},
           "outputs": {"closure": {"mu": [0.5]}, "closure_events": 5000}}
TINY = gaussian_spec(**TINY_KW)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("run")
    spec = d / "tiny.yaml"
    spec.write_text(TINY)
    res = CliRunner().invoke(main, ["run", str(spec), "-o", str(d / "out"), "-q"])
    assert res.exit_code == 0, res.output
    return d / "out", res


def test_result_json_layout(tiny_run):
    out, res = tiny_run
    result = json.loads((out / "result.json").read_text())
    mu = result["fit"]["parameters"]["mu"]
    for key in ("value", "error", "analytic", "analytic_error", "minos"):
        assert key in mu
    assert np.isfinite(mu["value"]) and mu["error"] > 0
    assert len(result["ensemble"]["values"]["mu"]) == 2
    assert result["ensemble"]["std"]["mu"] > 0  # different seeds → different fits
    assert result["timing"]["total_seconds"] > 0
    assert "rmse" in result["closure"]["points"][0]
    assert "fit mu =" in res.output


def test_run_writes_artefacts(tiny_run):
    out, _ = tiny_run
    assert (out / "reweighter" / "model.keras").is_file()
    assert (out / "ensemble" / "member-1" / "reweighter" / "metadata.json").is_file()
    assert sorted(p.name for p in (out / "plots").iterdir()) == [
        "closure_0_x0.png", "landscape.png", "logw_0.png", "summary.md"]
    summary = (out / "plots" / "summary.md").read_text()
    # the tables carry the numbers of result.json
    result = json.loads((out / "result.json").read_text())
    chi2 = result["closure"]["points"][0]["histograms"][0]["chi2_ndf"]
    assert f"| {chi2:.2f} |" in summary and "ESS fraction" in summary
    assert not (out / "checkpoints").exists()
    # The copied spec is the resolved spec and validates as it stands.
    resolved = load_spec(out / "spec.yaml")
    assert resolved.reweighter.training.epochs == 2
    assert resolved.reweighter.architecture_options["activation"] == "swish"
    rw = Reweighter.load(out / "reweighter")
    assert rw.calibration is not None and rw.theta_names == ["mu"]


def test_report_redraws_plots(tiny_run):
    out, _ = tiny_run
    for p in (out / "plots").iterdir():
        p.unlink()
    res = CliRunner().invoke(main, ["report", str(out)])
    assert res.exit_code == 0
    assert len(list((out / "plots").iterdir())) == 4


def test_same_spec_same_numbers(tiny_run, tmp_path):
    out, _ = tiny_run
    spec = tmp_path / "tiny.yaml"
    text = yaml.safe_load(TINY)
    text["ensemble"] = 1  # member 0 does not depend on the ensemble size
    text["outputs"]["plots"] = False
    spec.write_text(yaml.safe_dump(text))
    res = CliRunner().invoke(main, ["run", str(spec), "-o", str(tmp_path / "again"), "-q"])
    assert res.exit_code == 0, res.output
    first = json.loads((out / "result.json").read_text())["fit"]["parameters"]["mu"]["value"]
    again = json.loads((tmp_path / "again" / "result.json").read_text())
    assert again["fit"]["parameters"]["mu"]["value"] == first


def test_parquet_data_with_nan_is_refused(tmp_path):
    x = np.random.default_rng(0).normal(size=100)
    x[17] = np.nan
    pq.write_table(pa.table({"x0": x}), tmp_path / "data.parquet")
    text = yaml.safe_load(TINY)
    text["samples"]["data"] = {"source": "parquet", "n_events": 100,
                               "options": {"path": str(tmp_path / "data.parquet")}}
    spec = tmp_path / "nan.yaml"
    spec.write_text(yaml.safe_dump(text))
    res = CliRunner().invoke(main, ["run", str(spec), "-o", str(tmp_path / "o"), "-q"])
    assert res.exit_code == 2
    lines = res.output.strip().splitlines()
    assert len(lines) == 1
    assert "data.parquet" in lines[0] and "'x0'" in lines[0] and "row 17" in lines[0]


def test_average_fit_matches_the_cli_and_train_member_reproduces_the_run(tiny_run, tmp_path):
    """``ensemble.average_fit`` = ``ratiofit fit`` with every member's --reweighter, and
    ``ratiofit train --member 1`` makes the run's member 1 bit for bit (same seed, same
    samples), so ensembles can be trained one member per machine."""
    out, _ = tiny_run
    result = json.loads((out / "result.json").read_text())
    avg = result["ensemble"]["average_fit"]["parameters"]["mu"]
    assert np.isfinite(avg["value"]) and avg["error"] > 0 and "analytic" in avg
    spec = tmp_path / "tiny.yaml"
    spec.write_text(TINY)
    res = CliRunner().invoke(main, ["fit", str(spec), "-o", str(tmp_path / "fit"),
                                    "--reweighter", str(out / "reweighter"),
                                    "--reweighter", str(out / "ensemble/member-1/reweighter")])
    assert res.exit_code == 0, res.output
    cli = json.loads((tmp_path / "fit" / "fit.json").read_text())["fit"]["parameters"]["mu"]
    assert cli["value"] == avg["value"] and cli["error"] == avg["error"]
    # The average differs from both members (it is not a copy of one of them).
    members = result["ensemble"]["values"]["mu"]
    assert all(v != avg["value"] for v in members)

    res = CliRunner().invoke(main, ["train", str(spec), "--member", "1", "-q",
                                    "-o", str(tmp_path / "m1")])
    assert res.exit_code == 0, res.output
    x = np.linspace(-3, 3, 7)[:, None]
    again = Reweighter.load(tmp_path / "m1" / "ensemble" / "member-1" / "reweighter")
    run_m1 = Reweighter.load(out / "ensemble" / "member-1" / "reweighter")
    assert_float32_close(again.log_ratio(features=x, theta={"mu": 0.7}),
                         run_m1.log_ratio(features=x, theta={"mu": 0.7}))

    res = CliRunner().invoke(main, ["train", str(spec), "--member", "2", "-o",
                                    str(tmp_path / "m2")])
    assert res.exit_code == 2 and "ensemble has 2 member(s)" in res.output


def test_fit_option_overrides_a_strategy_option(tiny_run, tmp_path):
    """``--option`` sets one strategy option over the spec's; a bad one is a one-line error."""
    out, _ = tiny_run
    spec = tmp_path / "tiny.yaml"
    spec.write_text(TINY)
    base = ["fit", str(spec), "--reweighter", str(out / "reweighter")]
    res = CliRunner().invoke(main, [*base, "-o", str(tmp_path / "a"), "--option", "minos=false",
                                    "--option", "landscape_points=0"])
    assert res.exit_code == 0, res.output
    fit = json.loads((tmp_path / "a" / "fit.json").read_text())["fit"]
    assert "minos" not in fit["parameters"]["mu"] and not fit.get("landscape")
    first = json.loads((out / "result.json").read_text())["fit"]["parameters"]["mu"]["value"]
    assert fit["parameters"]["mu"]["value"] == first  # same objective, same minimum
    res = CliRunner().invoke(main, [*base, "-o", str(tmp_path / "b"), "--option", "minso=false"])
    assert res.exit_code == 2
    assert res.output.strip() == ("ratiofit: error: --option minso: unknown option 'minso'; "
                                  "did you mean 'minos'? (strategy 'likelihood')")


def test_calibrate_recalibrates_without_training(tiny_run, tmp_path):
    """``ratiofit calibrate`` with the run's own spec reproduces the run's calibration bit
    for bit; with ``calibration: moments`` it adds the tilt and the fit uses it."""
    out, _ = tiny_run
    spec = tmp_path / "tiny.yaml"
    spec.write_text(TINY)
    member = out / "ensemble" / "member-1" / "reweighter"
    res = CliRunner().invoke(main, ["calibrate", str(spec), "--reweighter", str(member),
                                    "--member", "1", "-o", str(tmp_path / "same")])
    assert res.exit_code == 0, res.output
    x = np.linspace(-3, 3, 7)[:, None]
    again = Reweighter.load(tmp_path / "same" / "ensemble" / "member-1" / "reweighter")
    assert_float32_close(again.log_ratio(features=x, theta={"mu": 0.7}),
                         Reweighter.load(member).log_ratio(features=x, theta={"mu": 0.7}))

    moments = tmp_path / "moments.yaml"
    moments.write_text(gaussian_spec(**{**TINY_KW, "calibration": {
        **TINY_KW["calibration"], "method": "moments"}}))
    res = CliRunner().invoke(main, ["calibrate", str(moments), "--reweighter",
                                    str(out / "reweighter"), "-o", str(tmp_path / "tilt")])
    assert res.exit_code == 0, res.output
    tilted = Reweighter.load(tmp_path / "tilt" / "reweighter")
    assert tilted.calibration is not None and tilted.calibration.tilt is not None
    assert tilted.metadata["calibrated_from"] == str(out / "reweighter")
    res = CliRunner().invoke(main, ["fit", str(moments), "--reweighter",
                                    str(tmp_path / "tilt" / "reweighter"), "-o",
                                    str(tmp_path / "fit"), "--option", "minos=false"])
    assert res.exit_code == 0, res.output
    tilt_fit = json.loads((tmp_path / "fit" / "fit.json").read_text())["fit"]
    first = json.loads((out / "result.json").read_text())["fit"]["parameters"]["mu"]["value"]
    assert tilt_fit["parameters"]["mu"]["value"] != first

    res = CliRunner().invoke(main, ["calibrate", str(spec), "--reweighter", str(tmp_path),
                                    "-o", str(tmp_path / "bad")])
    assert res.exit_code == 2 and "incomplete reweighter" in res.output
    assert len(res.output.strip().splitlines()) == 1
