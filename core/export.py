"""Export a saved reweighter to ONNX (``ratiofit export``), checked with onnxruntime.

The ONNX model takes the Keras model's own inputs, float32, in the order ``features``
``[n, d]``, ``particles`` ``[n, m, k]``, ``mask`` ``[n, m]``, ``theta`` ``[n, p]`` (each
only where the reweighter reads it; raw values: the standardisation is inside the graph)
and returns ``log_w`` ``[n]`` float32: log w(x, θ) as :meth:`Reweighter.log_ratio
<ratiofit.reweighter.Reweighter.log_ratio>` returns it, **calibration included** (the
normalisation polynomial −c(θ) and, where fitted, the moment tilt a(θ)·T(x), in float32
inside the graph). ``w = exp(log_w)``.

A JSON sidecar (``OUT.json`` beside ``OUT.onnx``) records the inputs and their columns,
θ's names and ranges, the standardisation and calibration (for reference: both are in
the graph), the SHA-256 of the source ``model.keras``, of its metadata and of the ONNX
file, the tool versions and the check's result.

The conversion is tf2onnx's (``pip install 'ratiofit[export]'``) on a ``tf.function`` of
the model; Keras' own ``Model.export(format="onnx")`` (Keras 3.15, tf2onnx 1.17) leaves
the ``Normalization`` layers' constants as extra graph inputs, which
:func:`export_onnx` turns back into constants. Before the files are renamed into place,
onnxruntime runs the exported model on random events (features and particle fields
drawn around the training means, θ uniform in its range) and its ``log_w`` must agree
with the Keras reweighter's within :data:`RTOL` · (1 + |log w|).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ._atomic import file_sha256, json_default, publish
from .errors import RatiofitError

__all__ = ["CHECK_EVENTS", "INPUT_ORDER", "RTOL", "ExportError", "export_onnx",
           "sidecar_path"]

#: The ONNX inputs, in this order (those the model has).
INPUT_ORDER = ("features", "particles", "mask", "theta")
#: The check's tolerance on log w, relative to 1 + |log w| (float32 rounding is ~1e-7).
RTOL = 1e-5
#: Events of the check.
CHECK_EVENTS = 4096
_EXTRA = "pip install 'ratiofit[export]' (tf2onnx, onnx, onnxruntime)"


class ExportError(RatiofitError):
    """The export is impossible here (tooling missing) or failed its check."""


def sidecar_path(path: str | os.PathLike[str]) -> Path:
    """``OUT.onnx`` → ``OUT.json``."""
    return Path(path).with_suffix(".json")


def _tools() -> dict[str, Any]:
    try:
        import onnx
        import onnxruntime
        import tf2onnx
    except ImportError as exc:
        raise ExportError(f"ratiofit export needs {exc.name}: {_EXTRA}") from None
    try:  # tf2onnx 1.17 predates numpy 2; Keras' export applies the same patch
        from keras.src.export.tf2onnx_lib import patch_tf2onnx
    except ImportError:
        pass
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # its probe of np.object
            patch_tf2onnx()
    return {"onnx": onnx, "onnxruntime": onnxruntime, "tf2onnx": tf2onnx}


def _columns(x: Any, k: int) -> list[Any]:
    """The ``k`` columns of ``x`` ``[n, k]``, each ``[n, 1]``."""
    import tensorflow as tf

    return list(tf.split(x, k, axis=1)) if k > 1 else [x]


class _Monomials:
    """Products of powers of the columns of ``x`` ``[n, k]``, each built once.

    tf2onnx merges identical nodes in an arbitrary order: a graph that computes nothing
    twice (and slices nothing: a Split) converts to the same bytes every time.
    """

    def __init__(self, x: Any, k: int) -> None:
        self.cols = _columns(x, k)
        self.memo: dict[tuple[int, ...], Any] = {}

    def __call__(self, e: tuple[int, ...]) -> Any:
        import tensorflow as tf

        e = tuple(int(v) for v in e)
        if e not in self.memo:
            last = max((j for j, v in enumerate(e) if v), default=None)
            if last is None:
                self.memo[e] = tf.ones_like(self.cols[0])
            else:
                lower = list(e)
                lower[last] -= 1
                self.memo[e] = self.cols[last] if not any(lower) else \
                    self(tuple(lower)) * self.cols[last]
        return self.memo[e]

    def design(self, exponents: list[tuple[int, ...]]) -> Any:
        """``[n, len(exponents)]``."""
        import tensorflow as tf

        return tf.concat([self(e) for e in exponents], axis=1)


def _offset(cal: Any, theta: Any, features: Any, n: Any) -> Any:
    """:meth:`Calibration.offset <ratiofit.calibration.Calibration.offset>` in float32."""
    import tensorflow as tf

    f32 = tf.float32
    coef = np.asarray(cal.coefficients, np.float32)
    p = len(cal.centre)
    if theta is None or not p:
        return tf.fill([n], tf.constant(-coef[0], f32))
    z = _Monomials((theta - tf.constant(cal.centre, f32)) / tf.constant(cal.half_width, f32), p)
    out = -tf.matmul(z.design(cal.exponents), tf.constant(coef[:, None]))
    tilt = cal.tilt
    if tilt is not None:
        d = len(tilt.feature_centre)
        u = _Monomials((features - tf.constant(tilt.feature_centre, f32))
                       / tf.constant(tilt.feature_scale, f32), d)
        stats = u.design([tuple(k if i == f else 0 for i in range(d)) for f in range(d)
                          for k in range(1, tilt.moments + 1)])
        a = tf.matmul(z.design(tilt.exponents), tf.constant(tilt.coefficients, f32))
        out = out + tf.reduce_sum(stats * a, axis=1, keepdims=True)
    return tf.reshape(out, [-1])


def _graph(rw: Any) -> tuple[Any, list[str], list[Any]]:
    """A ``tf.function`` inputs → {"log_w": [n]}, its input names and specs."""
    import tensorflow as tf

    model, loss, cal = rw.model, rw.loss, rw.calibration
    given = model.input if isinstance(model.input, Mapping) else \
        {t.name.split(":")[0]: t for t in model.inputs}
    unknown = [k for k in given if k not in INPUT_ORDER]
    if unknown:
        raise ExportError(f"the model has input(s) {unknown} that a reweighter does not feed")
    names = [k for k in INPUT_ORDER if k in given]
    specs = [tf.TensorSpec(tuple(given[k].shape), tf.float32, name=k) for k in names]

    def log_w(*args: Any) -> dict[str, Any]:
        inputs = dict(zip(names, args, strict=True))
        out = tf.reshape(loss.log_ratio(tf.cast(model(inputs, training=False), tf.float32)),
                         [-1])
        if cal is not None:
            out = out + _offset(cal, inputs.get("theta"), inputs.get("features"),
                                tf.shape(out)[0])
        return {"log_w": tf.identity(out, name="log_w")}

    return tf.function(log_w, input_signature=specs, autograph=False), names, specs


def _captured_constants(concrete: Any) -> dict[str, np.ndarray]:
    """Graph placeholder name → value of every captured non-variable tensor."""
    import tensorflow as tf

    pairs = concrete.graph.captures  # (external, internal)
    return {internal.name: external.numpy() for external, internal in pairs
            if external.dtype != tf.resource and hasattr(external, "numpy")}


def _convert(rw: Any, opset: int | None) -> tuple[Any, list[str]]:
    tools = _tools()
    from onnx import numpy_helper

    fn, names, specs = _graph(rw)
    concrete = fn.get_concrete_function()
    constants = _captured_constants(concrete)
    try:
        proto, _ = tools["tf2onnx"].convert.from_function(fn, input_signature=specs,
                                                          opset=opset)
    except Exception as exc:
        raise ExportError(f"tf2onnx cannot convert the model: {type(exc).__name__}: "
                          f"{exc}") from None
    graph = proto.graph
    for inp in list(graph.input):
        if inp.name in constants:  # a captured constant left as an input: make it one
            graph.initializer.append(numpy_helper.from_array(
                np.asarray(constants[inp.name]), inp.name))
            graph.input.remove(inp)
    left = [i.name for i in graph.input if i.name not in names]
    if left:
        raise ExportError(f"the ONNX graph has inputs {left} besides {names}")
    dims = {"features": ("n_events", None), "theta": ("n_events", None),
            "particles": ("n_events", "n_particles", None), "mask": ("n_events", "n_particles")}
    for inp in graph.input:
        for d, label in zip(inp.type.tensor_type.shape.dim, dims[inp.name], strict=False):
            if label is not None and not d.HasField("dim_value"):
                d.dim_param = label
    for out in graph.output:
        for d in out.type.tensor_type.shape.dim:
            if not d.HasField("dim_value"):
                d.dim_param = "n_events"
    _canonical(proto)
    meta = rw.metadata
    for key, value in (("ratiofit.model_sha256", meta.get("model_sha256")),
                       ("ratiofit.theta", json.dumps([[q.name, q.low, q.high]
                                                      for q in rw.parameters])),
                       ("ratiofit.calibration_included", str(rw.calibration is not None))):
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, str(value)
    tools["onnx"].checker.check_model(proto)
    return proto, names


def _canonical(proto: Any) -> None:
    """Name every constant by its value and every node by what it computes, drop
    duplicates and order the nodes topologically by those names, in place.

    tf2onnx merges equal constants and nodes keeping an arbitrary one of each (their names
    and order vary from run to run); after this pass the same model gives the same bytes.
    """
    import heapq

    graph = proto.graph
    keep = {i.name for i in graph.input} | {o.name for o in graph.output}
    rename: dict[str, str] = {}
    inits: dict[str, Any] = {}
    for init in graph.initializer:
        bare = type(init)()
        bare.CopyFrom(init)
        bare.name = ""
        name = "c_" + hashlib.sha256(bare.SerializeToString(deterministic=True)).hexdigest()[:16]
        rename[init.name] = name
        init.name = name
        inits.setdefault(name, init)
    nodes: dict[str, Any] = {}
    for node in graph.node:  # tf2onnx writes them in a topological order
        ins = [rename.get(i, i) for i in node.input]
        attrs = b"".join(a.SerializeToString(deterministic=True) for a in node.attribute)
        key = hashlib.sha256(repr((node.op_type, node.domain, ins)).encode() + attrs
                             ).hexdigest()[:16]
        del node.input[:]
        node.input.extend(ins)
        node.name = f"{node.op_type}_{key}"
        outs = [o if o in keep else f"{node.name}:{k}" for k, o in enumerate(node.output)]
        for o, new in zip(node.output, outs, strict=True):
            rename[o] = new
        del node.output[:]
        node.output.extend(outs)
        if node.name in nodes and list(nodes[node.name].output) == outs:
            continue  # computed twice: once is enough
        if node.name in nodes:  # same computation, different outputs kept (graph outputs)
            node.name = f"{node.name}_{outs[0]}"
        nodes[node.name] = node
    # Kahn's algorithm, the smallest name first among the nodes ready
    producer = {o: name for name, n in nodes.items() for o in n.output}
    needs = {name: {producer[i] for i in n.input if i in producer} for name, n in nodes.items()}
    users: dict[str, list[str]] = {name: [] for name in nodes}
    for name, deps in needs.items():
        for d in deps:
            users[d].append(name)
    ready = [name for name, deps in needs.items() if not deps]
    heapq.heapify(ready)
    order = []
    while ready:
        name = heapq.heappop(ready)
        order.append(nodes[name])
        for u in users[name]:
            needs[u].discard(name)
            if not needs[u]:
                heapq.heappush(ready, u)
    used = {i for n in order for i in n.input}
    del graph.node[:]
    graph.node.extend(order)
    del graph.initializer[:]
    graph.initializer.extend(inits[k] for k in sorted(inits) if k in used)
    del graph.value_info[:]
    graph.name = "ratiofit_log_w"
    graph.doc_string = "log w(x, theta) of a ratiofit reweighter"  # not tf2onnx's counter


def _random_inputs(rw: Any, names: list[str], n: int, seed: int) -> dict[str, np.ndarray]:
    """Events around the training means (±3 widths), θ uniform in its range; particles with
    1 to 24 entries per event, zero-padded."""
    rng = np.random.default_rng(seed)
    sig = rw.signature
    out: dict[str, np.ndarray] = {}
    if "features" in names:
        mean, std = np.asarray(sig.feature_mean), np.asarray(sig.feature_std)
        out["features"] = (mean + std * rng.uniform(-3, 3, (n, len(mean)))).astype(np.float32)
    if "particles" in names:
        mean, std = np.asarray(sig.particle_mean), np.asarray(sig.particle_std)
        counts = rng.integers(1, 25, n)
        m = int(counts.max())
        mask = (np.arange(m)[None, :] < counts[:, None]).astype(np.float32)
        parts = (mean + std * rng.normal(size=(n, m, len(mean)))).astype(np.float32)
        out["particles"] = parts * mask[..., None]
        out["mask"] = mask
    if "theta" in names:
        lo = np.array([p.low for p in rw.parameters])
        hi = np.array([p.high for p in rw.parameters])
        out["theta"] = rng.uniform(lo, hi, (n, len(lo))).astype(np.float32)
    return out


def _keras_log_w(rw: Any, inputs: Mapping[str, np.ndarray]) -> np.ndarray:
    """The reweighter's own log w of the same events (float64 from the float32 inputs)."""
    from .events import EventSet

    n = len(next(iter(inputs.values())))
    feats = inputs.get("features", np.zeros((n, 0), np.float32)).astype(np.float64)
    theta = {p: inputs["theta"][:, i].astype(np.float64)
             for i, p in enumerate(rw.parameters.names)} if "theta" in inputs else None
    if "particles" not in inputs:
        return np.asarray(rw.log_ratio(features=feats, theta=theta))
    import awkward as ak

    mask = inputs["mask"] > 0
    counts = mask.sum(axis=1)
    parts = inputs["particles"][mask].astype(np.float64)  # [total, k], event order
    fields = rw.signature.particle_names
    particles = ak.unflatten(ak.zip({f: parts[:, i] for i, f in enumerate(fields)}), counts)
    events = EventSet(features=feats, feature_names=tuple(rw.signature.feature_names),
                      particles=particles)
    return np.asarray(rw.log_ratio(features=events, theta=theta))


def _check(path: str, rw: Any, names: list[str], seed: int) -> dict[str, Any]:
    import onnxruntime as ort

    inputs = _random_inputs(rw, names, CHECK_EVENTS, seed)
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    session = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    got = np.asarray(session.run(["log_w"], inputs)[0], np.float64)
    want = _keras_log_w(rw, inputs)
    diff = np.abs(got - want)
    worst = float(np.max(diff / (1.0 + np.abs(want))))
    result = {"events": CHECK_EVENTS, "seed": seed, "max_abs_difference": float(diff.max()),
              "max_relative_difference": worst, "tolerance": RTOL,
              "max_abs_log_w": float(np.max(np.abs(want)))}
    if not np.all(np.isfinite(got)) or not worst <= RTOL:
        raise ExportError(f"onnxruntime disagrees with the Keras reweighter: max |d log w| = "
                          f"{diff.max():.3g} (relative {worst:.3g} > {RTOL:g}); nothing written")
    return result



def _sidecar(rw: Any, names: list[str], onnx_name: str, onnx_sha: str, opset: int,
             check: Mapping[str, Any], source: str | None) -> dict[str, Any]:
    import importlib.metadata as md

    sig, meta = rw.signature, rw.metadata
    shapes = {"features": ["n_events", len(sig.feature_names)],
              "particles": ["n_events", "n_particles", len(sig.particle_names)],
              "mask": ["n_events", "n_particles"], "theta": ["n_events", len(rw.parameters)]}
    columns = {"features": list(sig.feature_names), "particles": list(sig.particle_names),
               "mask": ["1 = a particle, 0 = padding"], "theta": list(rw.parameters.names)}
    versions = {}
    for dist in ("ratiofit", "tensorflow", "tensorflow-cpu", "keras", "tf2onnx", "onnx",
                 "onnxruntime"):
        try:
            versions[dist] = md.version(dist)
        except md.PackageNotFoundError:
            pass
    cal = rw.calibration
    return {
        "format": "ratiofit-onnx-sidecar", "format_version": 1, "onnx": onnx_name,
        "onnx_sha256": onnx_sha, "opset": opset,
        "inputs": [{"name": n, "dtype": "float32", "shape": shapes[n], "columns": columns[n]}
                   for n in names],
        "output": {"name": "log_w", "dtype": "float32", "shape": ["n_events"],
                   "meaning": "log w(x, theta) = log p(x|theta) - log p(x|theta0); "
                              "w = exp(log_w)",
                   "calibration_included": cal is not None},
        "theta": [{"name": p.name, "nominal": p.nominal, "range": [p.low, p.high]}
                  for p in rw.parameters],
        "standardisation": {
            "inside_graph": True,
            "features": {"mean": list(sig.feature_mean), "std": list(sig.feature_std)},
            "particles": {"mean": list(sig.particle_mean), "std": list(sig.particle_std)},
            "theta": {"centre": list(sig.theta_centre),
                      "half_width": list(sig.theta_half_width)}},
        "calibration": None if cal is None else {
            "inside_graph": True,
            "applies": "log_w = network log w - c(theta) + a(theta) . T(x) "
                       "(ratiofit.calibration.Calibration.offset)",
            **{k: v for k, v in cal.to_dict().items() if k != "measured"}},
        "feature_ranges": meta.get("feature_ranges"),
        "source": {"reweighter": source, "loss": rw.loss.name,
                   "architecture": meta.get("architecture"),
                   "model_sha256": meta.get("model_sha256"),
                   "metadata_sha256": meta.get("metadata_sha256")},
        "check": dict(check), "versions": versions,
    }


def export_onnx(rw: Any, path: str | os.PathLike[str], *, source: str | None = None,
                opset: int | None = None, seed: int = 0) -> dict[str, Any]:
    """Write ``path`` (ONNX) and its sidecar (:func:`sidecar_path`) after the onnxruntime
    check; return the sidecar's content. ``rw``: a
    :class:`~ratiofit.reweighter.Reweighter`; ``source``: its directory, for the record."""
    target = Path(path)
    if target.suffix.lower() != ".onnx":
        raise ExportError(f"{target}: the output must end in .onnx")
    if not hasattr(rw, "model"):
        raise ExportError("export one reweighter (an ensemble average has no single network)")
    proto, names = _convert(rw, opset)
    target.parent.mkdir(parents=True, exist_ok=True)
    side = sidecar_path(target)
    tmps = []
    try:
        for p in (target, side):
            fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=".tmp")
            os.close(fd)
            tmps.append(tmp)
        with open(tmps[0], "wb") as f:
            f.write(proto.SerializeToString())
        check = _check(tmps[0], rw, names, seed)
        opset_used = max((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")),
                         default=0)
        doc = _sidecar(rw, names, target.name, file_sha256(tmps[0]), opset_used, check, source)
        with open(tmps[1], "w") as f:
            json.dump(doc, f, indent=2, default=json_default)
            f.write("\n")
        publish(tmps[0], target)
        publish(tmps[1], side)
        return doc
    finally:
        for tmp in tmps:
            if os.path.exists(tmp):
                os.unlink(tmp)
