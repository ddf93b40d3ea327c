"""Conformance checks for plugin authors: ``check_plugin(obj, kind=...)``.

Run it in your plugin's test suite::

    from ratiofit.testing import check_plugin
    def test_my_loss():
        check_plugin(MyLoss(), kind="loss")

Each check exercises the contract that ratiofit relies on (see :mod:`ratiofit.hookspecs`)
with tiny inputs and raises :class:`AssertionError` naming the plugin and the broken rule.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from .options import Option, resolve_options
from .plugin_api import KINDS, InputSignature

__all__ = ["check_plugin"]


def _fail(obj: Any, kind: str, message: str) -> AssertionError:
    return AssertionError(f"{kind} plugin '{getattr(obj, 'name', obj)!s}': {message}")


def check_plugin(obj: Any, *, kind: str, options: Mapping[str, Any] | None = None) -> None:
    """Assert that ``obj`` satisfies the contract of plugin ``kind``.

    Parameters
    ----------
    obj
        The plugin object (as returned by its hook).
    kind
        ``architecture``, ``loss``, ``strategy`` or ``source``.
    options
        Options to exercise the plugin with (required when it declares required options).
    """
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; use one of {list(KINDS)}")
    name = getattr(obj, "name", None)
    if not isinstance(name, str) or not name.isidentifier():
        raise _fail(obj, kind, f"'name' must be an identifier string, got {name!r}")
    if kind != "loss":
        opts = getattr(obj, "options", None)
        if not isinstance(opts, dict) or not all(isinstance(o, Option) for o in opts.values()):
            raise _fail(obj, kind, "'options' must be a dict of ratiofit.options.Option")
        try:
            resolved = resolve_options(opts, options or {}, where=name)
        except Exception as exc:
            raise _fail(obj, kind, f"options {dict(options or {})} do not validate: {exc} "
                        "(pass options=... for required options)") from exc
    else:
        resolved = {}
    {"architecture": _check_architecture, "loss": _check_loss, "strategy": _check_strategy,
     "source": _check_source}[kind](obj, resolved)


def _check_loss(obj: Any, opts: Mapping[str, Any]) -> None:
    import keras

    for attr in ("output_activation", "keras_loss", "log_ratio"):
        if not hasattr(obj, attr):
            raise _fail(obj, "loss", f"missing '{attr}'")
    try:
        act = keras.activations.get(obj.output_activation)
    except Exception as exc:
        raise _fail(obj, "loss", f"unknown output activation {obj.output_activation!r}") from exc
    z = np.linspace(-3, 3, 13, dtype=np.float32)[:, None]
    out = np.asarray(act(z))
    lw = np.asarray(obj.log_ratio(out))
    if lw.shape != out.shape:
        raise _fail(obj, "loss", f"log_ratio changed the shape {out.shape} -> {lw.shape}")
    if not np.all(np.isfinite(lw)):
        raise _fail(obj, "loss", "log_ratio is not finite on ordinary outputs")
    if not np.all(np.diff(lw[:, 0]) > 0):
        raise _fail(obj, "loss", "log_ratio must increase with the pre-activation output")
    # The loss must be minimised, per example, where log w matches the true log-ratio:
    # scan a constant output against a known class mixture with ratio r = 2.
    loss = obj.keras_loss()
    y = np.array([1.0] * 2 + [0.0] * 1, dtype=np.float32)[:, None]
    values = []
    for zi in z[:, 0]:
        pred = np.full((3, 1), act(np.array([[zi]], dtype=np.float32))[0, 0], dtype=np.float32)
        values.append(float(np.mean(np.asarray(loss(y, pred)))))
    best = float(np.asarray(obj.log_ratio(np.asarray(act(z[[int(np.argmin(values))]])))).ravel()[0])
    if abs(best - np.log(2.0)) > 0.75:
        raise _fail(obj, "loss", f"loss minimum at log w = {best:.2f}, expected log 2 ≈ 0.69 "
                    "for a 2:1 target:reference mixture (label 1 = target)")


def _signature() -> InputSignature:
    return InputSignature(feature_names=("x0", "x1"), feature_mean=(0.0, 0.0),
                          feature_std=(1.0, 1.0), theta_names=("mu",), theta_centre=(0.0,),
                          theta_half_width=(1.0,))


def _check_architecture(obj: Any, opts: Mapping[str, Any]) -> None:
    model = obj.build(signature=_signature(), output_activation="linear", options=opts)
    x = {"features": np.zeros((4, 2), np.float32), "theta": np.zeros((4, 1), np.float32)}
    out = np.asarray(model(x))
    if out.shape != (4, 1):
        raise _fail(obj, "architecture", f"output shape {out.shape}, expected (4, 1)")
    import keras

    cfg = model.get_config()
    try:
        keras.Model.from_config(cfg) if type(model) is keras.Model else None
    except Exception as exc:
        raise _fail(obj, "architecture", f"model config does not round-trip: {exc}") from exc


def _check_strategy(obj: Any, opts: Mapping[str, Any]) -> None:
    if not callable(getattr(obj, "fit", None)):
        raise _fail(obj, "strategy", "missing 'fit(*, problem, options)'")


def _check_source(obj: Any, opts: Mapping[str, Any]) -> None:
    names = list(obj.feature_names(opts))
    rng = np.random.default_rng(0)
    a = np.asarray(obj.generate(n_events=50, theta={}, options=opts, rng=rng))
    b = np.asarray(obj.generate(n_events=50, theta={}, options=opts,
                                rng=np.random.default_rng(0)))
    if a.shape != (50, len(names)):
        raise _fail(obj, "source", f"generate returned shape {a.shape}, expected (50, "
                    f"{len(names)}) for features {names}")
    if not np.array_equal(a, b):
        raise _fail(obj, "source", "generate is not reproducible with the same rng seed")
    if not np.all(np.isfinite(a)):
        raise _fail(obj, "source", "generate returned NaN/inf")
    if hasattr(obj, "log_density"):
        ld = np.asarray(obj.log_density(features=a, theta={}, options=opts))
        if ld.shape != (50,) or not np.all(np.isfinite(ld)):
            raise _fail(obj, "source", "log_density must return finite values of shape [n]")
