"""Spec validation errors: one line ``ratiofit: error: FILE:LINE: field: message``, exit 2.

Every bad spec is a one-line edit of a valid block-style spec, so the expected line is
the line of the edited text.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from ratiofit.cli import main
from ratiofit.errors import SpecError
from ratiofit.spec import load_spec, load_spec_text

BASE = """\
description: spec-error tests
seed: 1
parameters:
  mu:
    nominal: 0.0
    range: [-2.0, 2.0]
samples:
  nominal:
    source: gaussian
    n_events: 100
    options:
      mean: mu
      width: 1.0
  varied:
    source: gaussian
    n_events: 120
    theta:
      mu: uniform
    options:
      mean: mu
  data:
    source: gaussian
    n_events: 50
    theta:
      mu: 0.5
    options:
      mean: mu
reweighter:
  architecture: mlp
  loss: bce
  reference: nominal
  target: varied
  training:
    epochs: 2
    batch_size: 64
fit:
  strategy: dctr
  data: data
  reference: nominal
  parameters: [mu]
"""


def edit(old: str, new: str) -> str:
    """BASE with the first occurrence of ``old`` replaced by ``new``."""
    assert old in BASE, old
    return BASE.replace(old, new, 1)


def line_of(text: str, needle: str) -> int:
    """1-based number of the first line of ``text`` that contains ``needle``."""
    for i, line in enumerate(text.splitlines(), start=1):
        if needle in line:
            return i
    raise AssertionError(f"{needle!r} not in text")


# id: (old, new, expected field, substrings of the message)
CASES: dict[str, tuple[str, str, str, list[str]]] = {
    "unknown-architecture": ("architecture: mlp", "architecture: mpl",
                             "reweighter.architecture",
                             ["unknown architecture 'mpl'", "did you mean 'mlp'?"]),
    "unknown-architecture-name": ("architecture: mlp", "architecture: {name: mpl}",
                                  "reweighter.architecture.name", ["did you mean 'mlp'?"]),
    "unknown-loss": ("loss: bce", "loss: bec", "reweighter.loss",
                     ["unknown loss 'bec'", "did you mean 'bce'?"]),
    "unknown-strategy": ("strategy: dctr", "strategy: dctrr", "fit.strategy",
                         ["unknown strategy 'dctrr'", "did you mean 'dctr'?"]),
    "unknown-source": ("source: gaussian", "source: gausian", "samples.nominal.source",
                       ["unknown source 'gausian'", "did you mean 'gaussian'?"]),
    "n_events-string": ("n_events: 100", 'n_events: "many"', "samples.nominal.n_events",
                        ["expected int", "'many'"]),
    "n_events-zero": ("n_events: 120", "n_events: 0", "samples.varied.n_events", [">= 1"]),
    "range-not-list": ("range: [-2.0, 2.0]", "range: 2.0", "parameters.mu.range",
                       ["[low, high]"]),
    "range-reversed": ("range: [-2.0, 2.0]", "range: [2.0, -2.0]", "parameters.mu.range",
                       ["low must be below high"]),
    "epochs-float": ("epochs: 2", "epochs: 1.5", "reweighter.training.epochs",
                     ["expected int", "1.5"]),
    "seed-string": ("seed: 1", "seed: one", "seed", ["expected int"]),
    "unknown-top-field": ("seed: 1", "sed: 1", "sed",
                          ["unknown field 'sed'", "did you mean 'seed'?"]),
    "unknown-sample-field": ("n_events: 100", "n_event: 100", "samples.nominal.n_event",
                             ["unknown field 'n_event'", "did you mean 'n_events'?"]),
    "unknown-training-field": ("batch_size: 64", "batchsize: 64",
                               "reweighter.training.batchsize",
                               ["unknown field 'batchsize'", "did you mean 'batch_size'?"]),
    "fit-undefined-sample": ("data: data", "data: dat", "fit.data",
                             ["undefined sample 'dat'", "did you mean 'data'?"]),
    "reweighter-undefined-target": ("target: varied", "target: varie", "reweighter.target",
                                    ["undefined sample 'varie'", "did you mean 'varied'?"]),
    "fit-undefined-parameter": ("parameters: [mu]", "parameters: [nu]", "fit.parameters[0]",
                                ["undefined parameter 'nu'", "defined: mu"]),
    "sample-theta-undefined-parameter": ("mu: uniform", "nu: uniform",
                                         "samples.varied.theta.nu",
                                         ["undefined parameter 'nu'"]),
    "source-option-undefined-parameter": ("mean: mu", "mean: nu",
                                          "samples.nominal.options.mean",
                                          ["undefined parameter 'nu'"]),
    "theta-outside-range": ("mu: 0.5", "mu: 5.0", "samples.data.theta.mu",
                            ["5.0 is outside the range of 'mu'", "[-2.0, 2.0]"]),
    "uniform-outside-range": ("mu: uniform", "mu: {uniform: [-3.0, 1.0]}",
                              "samples.varied.theta.mu.uniform", ["outside the range"]),
    "nominal-outside-range": ("nominal: 0.0", "nominal: 3.0", "parameters.mu.nominal",
                              ["nominal 3.0 outside range"]),
    "unknown-source-option": ("width: 1.0", "widht: 1.0", "samples.nominal.options.widht",
                              ["unknown option 'widht'", "did you mean 'width'?",
                               "plugin 'gaussian'"]),
    "unknown-architecture-option": ("architecture: mlp",
                                    "architecture: {name: mlp, options: {hiden: [8]}}",
                                    "reweighter.architecture.options.hiden",
                                    ["unknown option 'hiden'", "did you mean 'hidden'?"]),
    "bad-architecture-option-value": ("architecture: mlp",
                                      "architecture: {name: mlp, options: {activation: sigh}}",
                                      "reweighter.architecture.options.activation",
                                      ["must be one of"]),
    "average-fit-one-member": ("seed: 1", "ensemble: {members: 1, average_fit: true}",
                               "ensemble.average_fit", ["at least 2 members"]),
    "unknown-strategy-option": ("strategy: dctr", "strategy: {name: dctr, options: {tol: 1}}",
                                "fit.strategy.options.tol", ["unknown option 'tol'"]),
    "unknown-calibration-method": ("  architecture: mlp\n",
                                   "  calibration: {method: tilt}\n  architecture: mlp\n",
                                   "reweighter.calibration.method",
                                   ["must be one of ['normalisation', 'moments']", "got 'tilt'"]),
    "calibration-zero-is-not-off": ("  architecture: mlp\n",
                                    "  calibration: 0\n  architecture: mlp\n",
                                    "reweighter.calibration",
                                    ["expected none, normalisation, moments or a mapping",
                                     "got 0"]),
    "training-nan-learning-rate": ("    epochs: 2\n", "    learning_rate: .nan\n    epochs: 2\n",
                                   "reweighter.training.learning_rate",
                                   ["must be a finite number, got nan"]),
    "training-unknown-schedule": ("    epochs: 2\n", "    schedule: cosin\n    epochs: 2\n",
                                  "reweighter.training.schedule",
                                  ["must be one of ['cosine', 'constant']", "got 'cosin'"]),
    "calibration-moments-zero": ("  architecture: mlp\n",
                                 "  calibration: {method: moments, moments: 0}\n"
                                 "  architecture: mlp\n",
                                 "reweighter.calibration.moments", [">= 1"]),
    "duplicate-key": ("  loss: bce\n", "  loss: bce\n  loss: mse\n", "reweighter.loss",
                      ["duplicate key 'loss'"]),
}


def _expected_line(case: str) -> int:
    old, new, _, _ = CASES[case]
    text = edit(old, new)
    # The duplicate key is reported at its second occurrence.
    needle = "loss: mse" if case == "duplicate-key" else new.strip().splitlines()[0]
    return line_of(text, needle)


def _write(tmp_path: Path, text: str, name: str = "spec.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _one_error_line(stderr: str) -> str:
    lines = stderr.splitlines()
    assert len(lines) == 1, f"expected exactly one line on stderr, got:\n{stderr}"
    assert "Traceback" not in stderr
    return lines[0]


def _validate(path: Path, *extra: str):
    return CliRunner().invoke(main, ["validate", str(path), *extra])


# ---------------------------------------------------------------------------------------
# CLI (in process)
# ---------------------------------------------------------------------------------------
def test_valid_spec_exits_0(tmp_path: Path) -> None:
    path = _write(tmp_path, BASE)
    result = _validate(path)
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    assert f"{path}: valid" in result.stdout


def test_repository_specs_are_valid() -> None:
    specs = sorted((Path(__file__).resolve().parents[1] / "specs").glob("*.yaml"))
    assert specs, "no specs/ directory next to tests/"
    for spec in specs:
        result = _validate(spec)
        assert result.exit_code == 0, f"{spec}: {result.stderr}"


@pytest.mark.parametrize("case", list(CASES))
def test_bad_spec_one_line_with_file_line_field(tmp_path: Path, case: str) -> None:
    old, new, field, fragments = CASES[case]
    path = _write(tmp_path, edit(old, new))
    result = _validate(path)
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)
    line = _one_error_line(result.stderr)
    prefix = f"ratiofit: error: {path}:{_expected_line(case)}: {field}: "
    assert line.startswith(prefix), f"{line!r} does not start with {prefix!r}"
    for fragment in fragments:
        assert fragment in line
    assert "valid" not in result.stdout


@pytest.mark.parametrize(
    ("case", "old", "new", "needle"),
    [
        ("mapping-in-scalar", "n_events: 100", "n_events: 100: 3", "n_events: 100: 3"),
        ("unclosed-bracket", "range: [-2.0, 2.0]", "range: [-2.0, 2.0", "nominal: 0.0"),
        ("tab-indent", "    n_events: 120", "\tn_events: 120", "\tn_events: 120"),
    ],
)
def test_malformed_yaml(tmp_path: Path, case: str, old: str, new: str, needle: str) -> None:
    text = edit(old, new)
    path = _write(tmp_path, text)
    result = _validate(path)
    assert result.exit_code == 2, result.output
    line = _one_error_line(result.stderr)
    m = re.fullmatch(rf"ratiofit: error: {re.escape(str(path))}:(\d+): malformed YAML: .+", line)
    assert m, line
    reported = int(m.group(1))
    if case == "unclosed-bracket":
        # The scanner only notices at the next key after the bracket was opened.
        assert reported >= line_of(text, "range: [-2.0, 2.0")
    else:
        assert reported == line_of(text, needle)


def test_missing_spec_file_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    result = _validate(path)
    assert result.exit_code == 2
    line = _one_error_line(result.stderr)
    assert line.startswith(f"ratiofit: error: {path}")
    assert "cannot read spec" in line


def test_debug_reraises_in_process(tmp_path: Path) -> None:
    path = _write(tmp_path, edit("loss: bce", "loss: bec"))
    result = _validate(path, "--debug")
    assert result.exit_code != 0
    assert isinstance(result.exception, SpecError)
    assert result.exception.field == "reweighter.loss"


# ---------------------------------------------------------------------------------------
# CLI (real process: exit status, stderr, traceback with --debug)
# ---------------------------------------------------------------------------------------
def _ratiofit_cmd() -> list[str]:
    exe = Path(sys.executable).with_name("ratiofit")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "ratiofit.cli"]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([*_ratiofit_cmd(), *args], capture_output=True, text=True,
                          env=env, timeout=120, check=False)


def test_subprocess_exit_status_and_debug_traceback(tmp_path: Path) -> None:
    text = edit("source: gaussian", "source: gausian")
    path = _write(tmp_path, text)
    expected = (f"ratiofit: error: {path}:{line_of(text, 'gausian')}: samples.nominal.source: "
                "unknown source 'gausian'; did you mean 'gaussian'?")

    proc = _run("validate", str(path))
    assert proc.returncode == 2, proc.stderr
    line = _one_error_line(proc.stderr)
    assert line.startswith(expected)
    assert proc.stdout == ""

    proc = _run("validate", str(path), "--debug")
    assert proc.returncode not in (0, 2)
    assert "Traceback (most recent call last)" in proc.stderr
    assert "SpecError" in proc.stderr
    assert "did you mean 'gaussian'?" in proc.stderr

    good = _write(tmp_path, BASE, "good.yaml")
    proc = _run("validate", str(good))
    assert proc.returncode == 0, proc.stderr
    assert "valid" in proc.stdout


# ---------------------------------------------------------------------------------------
# load_spec_text / SpecError attributes
# ---------------------------------------------------------------------------------------
def test_valid_spec_is_typed() -> None:
    spec = load_spec_text(BASE, path="inline.yaml")
    assert spec.seed == 1
    assert spec.parameters.names == ["mu"]
    assert spec.samples["varied"].varied == ["mu"]
    assert spec.samples["data"].theta["mu"].value == 0.5
    assert spec.samples["nominal"].theta["mu"].value == 0.0
    assert spec.reweighter is not None and spec.reweighter.parameters == ("mu",)
    assert spec.reweighter.training.epochs == 2
    assert spec.fit is not None and spec.fit.strategy == "dctr"
    assert spec.fit.parameters == ("mu",)


@pytest.mark.parametrize("case", list(CASES))
def test_spec_error_attributes(case: str) -> None:
    old, new, field, fragments = CASES[case]
    with pytest.raises(SpecError) as info:
        load_spec_text(edit(old, new), path="where.yaml")
    err = info.value
    assert err.file == "where.yaml"
    assert err.line == _expected_line(case)
    assert err.field == field
    assert str(err) == f"where.yaml:{err.line}: {field}: {err.message}"
    for fragment in fragments:
        assert fragment in err.message


def test_spec_error_line_in_nested_block() -> None:
    text = edit("    epochs: 2\n", "    patience: 3\n    epochs: 0\n")
    with pytest.raises(SpecError) as info:
        load_spec_text(text, path="x.yaml")
    assert info.value.field == "reweighter.training.epochs"
    assert info.value.line == line_of(text, "epochs: 0")


def test_malformed_yaml_has_line_and_no_field() -> None:
    text = edit("n_events: 100", "n_events: 100: 3")
    with pytest.raises(SpecError) as info:
        load_spec_text(text, path="x.yaml")
    assert info.value.field is None
    assert info.value.line == line_of(text, "n_events: 100: 3")
    assert info.value.message.startswith("malformed YAML")


def test_missing_required_field_points_at_its_mapping() -> None:
    text = edit("    source: gaussian\n    n_events: 100\n", "    n_events: 100\n")
    with pytest.raises(SpecError) as info:
        load_spec_text(text, path="x.yaml")
    assert info.value.field == "samples.nominal"
    assert "missing required field 'source'" in info.value.message
    assert info.value.line == line_of(text, "n_events: 100")


def test_fit_start_outside_range() -> None:
    text = edit("  parameters: [mu]\n", "  parameters: [mu]\n  start: {mu: 9}\n")
    with pytest.raises(SpecError) as info:
        load_spec_text(text, path="x.yaml")
    assert info.value.field == "fit.start.mu"
    assert info.value.line == line_of(text, "start: {mu: 9}")


def test_load_spec_uses_the_file_name(tmp_path: Path) -> None:
    path = _write(tmp_path, edit("loss: bce", "loss: bec"))
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert info.value.file == str(path)
    assert str(info.value).startswith(f"{path}:{line_of(path.read_text(), 'bec')}: ")


# ---------------------------------------------------------------------------------------
# Regression tests for input-handling bugs found during review (now fixed).
# ---------------------------------------------------------------------------------------
def test_bad_tagged_scalar_is_a_spec_error() -> None:
    text = edit("seed: 1", "seed: !!int abc")
    with pytest.raises(SpecError) as info:
        load_spec_text(text, path="x.yaml")
    assert info.value.field == "seed"


def test_unknown_tag_message_is_one_line() -> None:
    text = edit("seed: 1", "seed: !!python/object:os.system x")
    with pytest.raises(SpecError) as info:
        load_spec_text(text, path="x.yaml")
    assert "\n" not in str(info.value)


def test_non_utf8_spec_file_is_a_spec_error(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(BASE.replace("spec-error tests", "caf\xe9").encode("latin-1"))
    with pytest.raises(SpecError):
        load_spec(path)
