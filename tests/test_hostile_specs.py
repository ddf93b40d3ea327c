"""Hostile specs: what an adversarial user writes is refused by `ratiofit validate` in one
line naming file, line and field, exit status 2, before anything is sampled or trained.

The corpus below is generated: every section of a valid spec, each kind of wrong (a wrong
type, a non-finite number, out of range, unknown key, unknown reference, YAML abuse). Every
case must be rejected cleanly: exit 2, one stderr line ``ratiofit: error: FILE:LINE: ...``,
no traceback.
"""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from ratiofit.cli import main

ROOT = Path(__file__).resolve().parents[1]
BASE: dict[str, Any] = yaml.safe_load((ROOT / "specs" / "quickstart.yaml").read_text())
INFERENCE: dict[str, Any] = yaml.safe_load((ROOT / "specs" / "inference_gaussian.yaml")
                                           .read_text())

NAN, INF = float("nan"), float("inf")


def _set(doc: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    node = out
    for key in path[:-1]:
        node = node.setdefault(key, {})
    if value is _DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return out


_DELETE = object()

#: (name, base spec, path, bad value): every section, every kind of wrong.
CASES: list[tuple[str, dict[str, Any], tuple[Any, ...], Any]] = []


def _case(name: str, path: tuple[Any, ...], value: Any, base: dict[str, Any] = BASE) -> None:
    CASES.append((name, base, path, value))


for bad_name, bad in (("nan", NAN), ("inf", INF), ("string", "many"), ("bool", True),
                      ("list", [1]), ("null", None)):
    _case(f"seed-{bad_name}", ("seed",), bad)
    _case(f"nominal-{bad_name}", ("parameters", "mu", "nominal"), bad)
    _case(f"n_events-{bad_name}", ("samples", "nominal", "n_events"), bad)
    _case(f"epochs-{bad_name}", ("reweighter", "training", "epochs"), bad)
    _case(f"learning_rate-{bad_name}", ("reweighter", "training", "learning_rate"), bad)
    _case(f"source-option-{bad_name}", ("samples", "nominal", "options", "width"),
          [1.0, 2.0] if bad_name == "list" else bad)  # one width per dimension (dim 1)
    _case(f"gate_level-{bad_name}", ("uncertainty", "gate_level"), bad)
    _case(f"closure_events-{bad_name}", ("outputs", "closure_events"), bad)
    _case(f"sigma-{bad_name}", ("inference", "nuisances", "shape", "sigma"), bad, INFERENCE)
    _case(f"yield-{bad_name}", ("inference", "samples", "bkg", "yield"), bad, INFERENCE)
for name, path, value in [
        ("seed-negative", ("seed",), -1),
        ("seed-huge", ("seed",), 2**70),
        ("range-reversed", ("parameters", "mu", "range"), [2.0, -2.0]),
        ("range-infinite", ("parameters", "mu", "range"), [-INF, 2.0]),
        ("nominal-outside", ("parameters", "mu", "nominal"), 5.0),
        ("n_events-zero", ("samples", "nominal", "n_events"), 0),
        ("n_events-too-many", ("samples", "nominal", "n_events"), 10**15),
        ("unknown-source", ("samples", "nominal", "source"), "gausian"),
        ("unknown-source-option", ("samples", "nominal", "options", "widht"), 1.0),
        ("negative-width", ("samples", "nominal", "options", "width"), -1.0),
        ("unknown-parameter-in-theta", ("samples", "varied", "theta"), {"nu": "uniform"}),
        ("theta-outside-range", ("samples", "data", "theta"), {"mu": 7.0}),
        ("unknown-architecture", ("reweighter", "architecture"), "mpl"),
        ("unknown-loss", ("reweighter", "loss"), "bcee"),
        ("unknown-reference", ("reweighter", "reference"), "nomnal"),
        ("unknown-training-key", ("reweighter", "training", "epoch"), 3),
        ("negative-epochs", ("reweighter", "training", "epochs"), -3),
        ("validation-fraction-one", ("reweighter", "training", "validation_fraction"), 1.0),
        ("calibration-zero", ("reweighter", "calibration"), 0),
        ("calibration-degree", ("reweighter", "calibration"), {"points": 3, "degree": 5}),
        ("unknown-strategy", ("fit", "strategy"), "dctrr"),
        ("unknown-fit-data", ("fit", "data"), "dta"),
        ("fit-unknown-parameter", ("fit", "parameters"), ["nu"]),
        ("strategy-option-nan", ("fit", "strategy"), {"name": "dctr",
                                                      "options": {"tolerance": NAN}}),
        ("replicas-one", ("uncertainty", "replicas"), 1),
        ("unknown-uncertainty-key", ("uncertainty", "replica"), 3),
        ("correction-unknown", ("uncertainty", "correction"), "magic"),
        ("ensemble-zero", ("ensemble",), 0),
        ("ensemble-samples", ("ensemble",), {"members": 2, "training_samples": "fresh"}),
        ("closure-outside", ("outputs", "closure"), {"mu": [9.0]}),
        ("unknown-top-level", ("fitt",), {}),
        ("missing-samples", ("samples",), _DELETE),
]:
    _case(name, path, value)
for name, path, value in [
        ("inference-unknown-observable", ("inference", "observable"), "x7"),
        ("inference-poi-like-nuisance", ("inference", "poi"), "shape"),
        ("inference-bins-reversed", ("inference", "bins"), [1.0, 0.0]),
        ("inference-unknown-data", ("inference", "data"), "dta"),
        ("inference-unknown-nuisance", ("inference", "samples", "bkg", "nuisances"), ["shap"]),
        ("inference-no-signal", ("inference", "samples", "sig", "signal"), False),
        ("inference-unknown-parameter", ("inference", "nuisances", "shape", "parameter"), "nu"),
        ("inference-calctype", ("inference", "hypotest"), {"calctype": "exact"}),
]:
    _case(name, path, value, INFERENCE)

#: YAML abuse, as text.
TEXT_CASES = {
    "alias-bomb": "seed: 1\na: &a [x,x,x,x,x,x,x,x,x,x]\n" + "".join(
        f"{c}: &{c} [{', '.join([f'*{p}'] * 10)}]\n" for p, c in zip("abcdefgh", "bcdefghi",
                                                                  strict=True)),
    "recursive-alias": "seed: 1\nparameters: &p {mu: *p}\n",
    "unknown-tag-mapping": "seed: 1\nparameters: !mytag {mu: {nominal: 0, range: [0, 1]}}\n",
    "python-object-tag": "seed: 1\nparameters: !!python/object:os.system {mu: 1}\n",
    "unknown-tag-scalar": "seed: !!python/name:os.system 1\n",
    "malformed": "seed: [1, 2\n",
    "duplicate-key": "seed: 1\nseed: 2\n",
    "not-a-mapping": "- 1\n- 2\n",
    "deep-nesting": "seed: " + "[" * 200 + "]" * 200 + "\n",
}


def _validate(path: Path) -> Any:
    return CliRunner().invoke(main, ["validate", str(path)])


def _clean_rejection(result: Any, path: Path) -> str:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"ratiofit: error: {path}:"), lines[0]
    assert "Traceback" not in result.output
    return lines[0]


@pytest.mark.parametrize(("name", "base", "path", "value"), CASES, ids=[c[0] for c in CASES])
def test_malformed_spec_is_rejected_cleanly(name: str, base: dict[str, Any],
                                            path: tuple[Any, ...], value: Any,
                                            tmp_path: Path) -> None:
    spec = tmp_path / f"{name}.yaml"
    spec.write_text(yaml.safe_dump(_set(base, path, value), sort_keys=False))
    line = _clean_rejection(_validate(spec), spec)
    field = ".".join(str(p) for p in path[:2])
    assert field in line or path[0] in line, line  # names the field (or its section)


@pytest.mark.parametrize("name", list(TEXT_CASES))
def test_yaml_abuse_is_rejected_cleanly(name: str, tmp_path: Path) -> None:
    spec = tmp_path / f"{name}.yaml"
    spec.write_text(TEXT_CASES[name])
    _clean_rejection(_validate(spec), spec)


def test_the_corpus_covers_every_section() -> None:
    sections = {c[2][0] for c in CASES}
    assert {"seed", "parameters", "samples", "reweighter", "fit", "uncertainty", "ensemble",
            "outputs", "inference"} <= sections
    assert len(CASES) + len(TEXT_CASES) >= 100


def test_an_alias_bomb_stays_within_a_memory_limit(tmp_path: Path) -> None:
    """Validated in a process capped at 1 GiB of address space beyond its start: the
    expansion is refused long before memory is."""
    spec = tmp_path / "bomb.yaml"
    spec.write_text(TEXT_CASES["alias-bomb"].replace("[x,x", "[" + "y" * 50 + ",x"))
    code = ("import resource, sys\n"
            "soft, hard = resource.getrlimit(resource.RLIMIT_AS)\n"
            "from ratiofit.cli import main\n"  # imports first: their mappings count
            "import ratiofit.spec\n"
            "used = int(open('/proc/self/statm').read().split()[0]) * "
            "resource.getpagesize()\n"
            "resource.setrlimit(resource.RLIMIT_AS, (used + (1 << 30), hard))\n"
            f"main(['validate', {str(spec)!r}])\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 2, res.stderr[-2000:]
    assert "expands to more than" in res.stderr


@pytest.mark.parametrize("what", ["directory", "missing", "not-parquet"])
def test_a_bad_parquet_path_is_one_line_at_validation(what: str, tmp_path: Path) -> None:
    path = tmp_path / "data.parquet"
    if what == "directory":
        path.mkdir()
    elif what == "not-parquet":
        path.write_text("a,b\n1,2\n")
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({
        "seed": 1, "parameters": {"mu": {"nominal": 0.0, "range": [-1.0, 1.0]}},
        "samples": {"data": {"source": "parquet", "n_events": 10,
                             "options": {"path": str(path)}}}}))
    line = _clean_rejection(_validate(spec), spec)
    assert "samples.data.options.path" in line
