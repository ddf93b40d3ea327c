"""Blinded data: a sample generated at a θ nobody has seen, unsealed after the fit.

A fit that lands on its spec's target may have been tuned to it, knowingly or not (a
training length, a binning, a start value changed until the number looked right). The
DCTR paper's answer is a blinded sample: data generated at parameters the analyst does not
know, fitted with the settings frozen, the truth read only at the end.

:func:`blind_sample` generates the spec's data sample (its source and options) at a θ
drawn uniformly over the central 90 % of each fitted parameter's range (the coverage
command's truth range, :func:`ratiofit.coverage.truth_ranges`), from a seed drawn from
the operating system's entropy unless one is given, and writes

* ``OUT`` (parquet): the events' features as flat columns, particle fields as list
  columns ``particle_<field>``, the weights as ``weight`` where the source weights its
  events; no θ column and no metadata that holds θ or the seed. The ``parquet`` source
  reads it (:attr:`BlindedSample.sample_yaml` is the sample declaration to paste into the
  spec in place of the data sample);
* ``OUT.truth.json``: the file's SHA-256 and, sealed (base64 of its JSON, so that a
  glance at the file does not unblind it; it is not encrypted), θ, the seed, the range it
  was drawn from, the spec and the sample. Same seed → the same events and θ.

:func:`unblind` opens the seal after the fit: it checks the data file is the one written
(its SHA-256), reads the run's ``result.json`` (or ``ratiofit fit``'s ``fit.json``) and
reports per parameter the truth, the fit's value and error, the pull (value − truth)/error
and whether the 68 % (±error) and 95 % intervals hold the truth. ``ratiofit blind`` and
``ratiofit unblind`` are the commands.

Examples
--------
>>> import base64, json
>>> sealed = base64.b64encode(json.dumps({"theta": {"mu": 0.3}}).encode()).decode()
>>> unseal({"format": TRUTH_FORMAT, "sealed": sealed})["theta"]
{'mu': 0.3}
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ._atomic import file_sha256, json_default, publish, write_text_atomic
from .errors import RatiofitError
from .registry import Registry
from .seeding import derive_seed
from .spec import SampleSpec, Spec, ThetaSpec

__all__ = ["TRUTH_FORMAT", "BlindedSample", "BlindingError", "blind_sample", "truth_path",
           "unblind", "unseal"]

#: The truth file's format tag.
TRUTH_FORMAT = "ratiofit-blinded-truth/1"


class BlindingError(RatiofitError):
    """A blinded sample cannot be written or unsealed (one line: the file and why)."""


def truth_path(data: str | os.PathLike[str]) -> Path:
    """The sealed truth file beside the blinded data file: ``OUT.truth.json``."""
    p = Path(data)
    return p.with_name(p.name + ".truth.json")


@dataclass(frozen=True)
class BlindedSample:
    """What :func:`blind_sample` wrote: the data file, the truth file, the number of
    events, and the sample declaration that reads it."""

    data: Path
    truth: Path
    n_events: int
    sample_yaml: str



def blind_sample(spec: Spec, out: str | os.PathLike[str], *, registry: Registry,
                 sample: str | None = None, seed: int | None = None,
                 n_events: int | None = None) -> BlindedSample:
    """Write ``sample`` (default: the fit's data sample) of ``spec`` generated at a blinded
    θ to ``out`` and its sealed truth beside it (module docstring). ``n_events`` defaults
    to the sample's. Refuses a sample whose source reads files (it cannot be generated at
    another θ), a spec without a fit section, and an existing truth file (a sealed truth
    is never overwritten)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from .coverage import truth_ranges
    from .sampling import make_sample

    out = Path(out)
    if spec.fit is None:
        raise BlindingError(f"{spec.path}: blinding draws the fitted parameters' θ: the spec "
                            "needs a 'fit' section")
    name = sample or spec.fit.data
    if name not in spec.samples:
        raise BlindingError(f"{spec.path}: no sample '{name}' (samples: "
                            f"{sorted(spec.samples)})")
    sd = spec.samples[name]
    if getattr(registry.get("source", sd.source), "reads_files", False):
        raise BlindingError(f"{spec.path}: sample '{name}' reads files (source "
                            f"'{sd.source}'): a blinded sample is generated, give one whose "
                            "source simulates")
    truth_file = truth_path(out)
    if truth_file.exists():
        raise BlindingError(f"{truth_file}: a sealed truth is there already; write the "
                            "blinded sample elsewhere")
    count = int(n_events if n_events is not None else (sd.n_events or 0))
    if count <= 0:
        raise BlindingError(f"{spec.path}: sample '{name}' has no n_events: give --n-events")
    if seed is None:
        seed = secrets.randbelow(2 ** 31)
    rng = np.random.default_rng(derive_seed(seed, "blind", "theta"))
    ranges = truth_ranges(spec)
    theta = {n: float(rng.uniform(*ranges[n])) for n in spec.fit.parameters}
    fixed = dict(sd.theta)
    fixed.update({n: ThetaSpec(kind="fixed", value=v) for n, v in theta.items()})
    events = make_sample(SampleSpec(name=name, source=sd.source, n_events=count, theta=fixed,
                                    options=sd.options),
                         parameters=spec.parameters, seed=derive_seed(seed, "blind", "events"),
                         registry=registry)
    cols: dict[str, Any] = {n: events.features[:, i]
                            for i, n in enumerate(events.feature_names)}
    fields: dict[str, str] = {}
    if events.particles is not None:
        import awkward as ak

        for f in ak.fields(events.particles):
            fields[f] = f"particle_{f}"
            cols[fields[f]] = ak.to_arrow(events.particles[f], extensionarray=False)
    if events.weights is not None:
        cols["weight"] = events.weights
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    os.close(fd)
    try:  # no schema metadata: nothing in the file says where it came from
        pq.write_table(pa.table(cols), tmp)
        publish(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    sealed = {"theta": theta, "seed": int(seed), "range": {n: list(ranges[n]) for n in theta},
              "spec": str(spec.path), "sample": name, "n_events": len(events)}
    record = {"format": TRUTH_FORMAT, "data": out.name, "sha256": file_sha256(out),
              "note": "sealed: base64 of the truth's JSON, so that a glance does not unblind "
                      "it; 'ratiofit unblind RUN --truth THIS' opens it after the fit",
              "sealed": base64.b64encode(json.dumps(sealed).encode()).decode()}
    write_text_atomic(truth_file, json.dumps(record, indent=1) + "\n")
    lines = [f"{name}:", "  source: parquet", "  options:", f"    files: {out.resolve()}",
             f"    features: [{', '.join(events.feature_names)}]"]
    if fields:
        lines.append("    particles: {" + ", ".join(f"{f}: {c}" for f, c in fields.items())
                     + "}")
    if events.weights is not None:
        lines.append("    weight: weight")
    return BlindedSample(data=out, truth=truth_file, n_events=len(events),
                         sample_yaml="\n".join(lines))


def unseal(record: Mapping[str, Any]) -> dict[str, Any]:
    """The sealed truth of a truth file's ``record``."""
    if record.get("format") != TRUTH_FORMAT or "sealed" not in record:
        raise BlindingError(f"not a ratiofit truth file (format {record.get('format')!r})")
    try:
        return dict(json.loads(base64.b64decode(record["sealed"]).decode()))
    except ValueError as exc:
        raise BlindingError(f"the sealed truth does not decode: {exc}") from None


def unblind(run_dir: str | os.PathLike[str], truth_file: str | os.PathLike[str]
            ) -> dict[str, Any]:
    """Compare the fit of ``run_dir`` (a ``ratiofit run``'s ``result.json``, or a
    ``ratiofit fit``'s ``fit.json``: the blinded data fitted with a reweighter trained
    before) with the sealed truth of ``truth_file``, after checking the blinded data file is
    unchanged; written to ``run_dir/unblinded.json`` and returned (module docstring)."""
    truth_file = Path(truth_file)
    try:
        record = json.loads(truth_file.read_text())
    except (OSError, ValueError) as exc:
        raise BlindingError(f"{truth_file}: cannot read: {exc}") from None
    data = truth_file.parent / str(record.get("data", ""))
    if not data.is_file():
        raise BlindingError(f"{truth_file}: its data file {data} is not there")
    if file_sha256(data) != record.get("sha256"):
        raise BlindingError(f"{data}: changed since it was blinded (SHA-256 differs from "
                            f"{truth_file})")
    sealed = unseal(record)
    result_file = Path(run_dir) / "result.json"
    if not result_file.exists() and (Path(run_dir) / "fit.json").exists():
        result_file = Path(run_dir) / "fit.json"
    try:
        result = json.loads(result_file.read_text())
    except (OSError, ValueError) as exc:
        raise BlindingError(f"{result_file}: cannot read: {exc}") from None
    fitted = (result.get("fit") or {}).get("parameters") or {}
    at_limit = set(((result.get("fit") or {}).get("extra") or {}).get("at_limit", []))
    rows = {}
    for n, t in sealed["theta"].items():
        if n not in fitted:
            raise BlindingError(f"{result_file}: the fit has no parameter '{n}' (has "
                                f"{sorted(fitted)})")
        e = fitted[n]
        value, error = float(e["value"]), float(e["error"])
        lo95, hi95 = e.get("interval_95") or (value - 1.959963984540054 * error,
                                              value + 1.959963984540054 * error)
        rows[n] = {"truth": float(t), "value": value, "error": error,
                   "pull": (value - float(t)) / error if error > 0 else float("nan"),
                   "in_68": bool(abs(value - float(t)) <= error),
                   "in_95": bool(float(lo95) <= float(t) <= float(hi95)),
                   "interval_95": [float(lo95), float(hi95)],
                   "at_range_limit": n in at_limit}
    out = {"truth_file": str(truth_file), "data": str(data), "fit_file": result_file.name,
           "seed": sealed.get("seed"),
           "range": sealed.get("range"), "parameters": rows,
           "warnings": list((result.get("fit") or {}).get("warnings", []))}
    write_text_atomic(Path(run_dir) / "unblinded.json",
                      json.dumps(out, indent=1, default=json_default) + "\n")
    return out
