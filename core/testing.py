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

__all__ = ["analytic_gaussian_reweighter", "analytic_gaussian_width_reweighter", "check_plugin",
           "latent_gaussian_events"]


def _fail(obj: Any, kind: str, message: str) -> AssertionError:
    return AssertionError(f"{kind} plugin '{getattr(obj, 'name', obj)!s}': {message}")


def check_plugin(obj: Any, *, kind: str, options: Mapping[str, Any] | None = None,
                 signature: InputSignature | None = None) -> None:
    """Assert that ``obj`` satisfies the contract of plugin ``kind``.

    Parameters
    ----------
    obj
        The plugin object (as returned by its hook).
    kind
        ``architecture``, ``loss``, ``strategy``, ``source`` or ``study``.
    options
        Options to exercise the plugin with (required when it declares required options).
    signature
        Architectures only: the inputs to build with (default: two flat features and one
        θ). A signature with ``particle_names`` also checks that padding does not change
        the output.
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
    if kind == "architecture":
        _check_architecture(obj, resolved, signature or _signature())
        return
    {"loss": _check_loss, "strategy": _check_strategy, "source": _check_source,
     "study": _check_study}[kind](obj, resolved)


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


def _architecture_inputs(sig: InputSignature, n: int, m: int, rng: np.random.Generator
                         ) -> dict[str, np.ndarray]:
    x: dict[str, np.ndarray] = {}
    if sig.feature_names:
        x["features"] = rng.normal(size=(n, len(sig.feature_names))).astype(np.float32)
    if sig.theta_names:
        x["theta"] = rng.uniform(-1, 1, size=(n, len(sig.theta_names))).astype(np.float32)
    if sig.particle_names:
        x["particles"] = rng.normal(size=(n, m, len(sig.particle_names))).astype(np.float32)
        lengths = np.arange(n) % m + 1
        x["mask"] = (np.arange(m)[None, :] < lengths[:, None]).astype(np.float32)
        x["particles"] *= x["mask"][..., None]
    return x


def _check_architecture(obj: Any, opts: Mapping[str, Any], sig: InputSignature) -> None:
    import keras

    model = obj.build(signature=sig, output_activation="linear", options=opts)
    x = _architecture_inputs(sig, 4, 5, np.random.default_rng(0))
    out = np.asarray(model(x))
    if out.shape != (4, 1):
        raise _fail(obj, "architecture", f"output shape {out.shape}, expected (4, 1)")
    if not np.all(np.isfinite(out)):
        raise _fail(obj, "architecture", "output is not finite")
    if sig.particle_names:
        # Appending padding (mask 0, arbitrary values) must not change anything.
        extra = 3
        padded = dict(x)
        junk = np.full((4, extra, len(sig.particle_names)), 7.0, np.float32)
        padded["particles"] = np.concatenate([x["particles"], junk], axis=1)
        padded["mask"] = np.concatenate([x["mask"], np.zeros((4, extra), np.float32)], axis=1)
        out_padded = np.asarray(model(padded))
        if not np.allclose(out, out_padded, rtol=1e-5, atol=1e-5):
            raise _fail(obj, "architecture", "padding particles (mask 0) changed the output by "
                        f"{float(np.max(np.abs(out - out_padded))):.3g}")
    custom = obj.custom_objects() if callable(getattr(obj, "custom_objects", None)) else None
    cfg = model.get_config()
    try:
        if type(model) is keras.Model:
            keras.Model.from_config(cfg, custom_objects=custom)
    except Exception as exc:
        raise _fail(obj, "architecture", f"model config does not round-trip: {exc}") from exc


def _check_strategy(obj: Any, opts: Mapping[str, Any]) -> None:
    if not callable(getattr(obj, "fit", None)):
        raise _fail(obj, "strategy", "missing 'fit(*, problem, options)'")


def _check_study(obj: Any, opts: Mapping[str, Any]) -> None:
    if not callable(getattr(obj, "run", None)):
        raise _fail(obj, "study", "missing 'run(*, context, options)'")
    check = getattr(obj, "check", None)
    if check is not None and not callable(check):
        raise _fail(obj, "study", "'check' must be callable as check(*, options, samples, "
                    "parameters)")


def _check_source(obj: Any, opts: Mapping[str, Any]) -> None:
    from .events import EventSet

    names = list(obj.feature_names(opts))
    made = [obj.generate(n_events=50, theta={}, options=opts, rng=np.random.default_rng(0))
            for _ in range(2)]
    if isinstance(made[0], EventSet):
        if made[0].particles is not None:
            import awkward as ak

            if not ak.array_equal(made[0].particles, made[1].particles):
                raise _fail(obj, "source", "generate is not reproducible with the same rng seed "
                            "(particles differ)")
        if len(made[0]) != 50:
            raise _fail(obj, "source", f"generate returned {len(made[0])} events, expected 50")
        if made[0].feature_names != tuple(names):
            raise _fail(obj, "source", f"generate returned features {made[0].feature_names}, "
                        f"feature_names() says {tuple(names)}")
    a, b = (np.asarray(m.features if isinstance(m, EventSet) else m) for m in made)
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


class _IdentityLoss:
    """A 'loss' whose network output already is log w (for analytic test reweighters)."""

    name = "identity"
    output_activation = "linear"

    def keras_loss(self) -> Any:
        raise NotImplementedError("analytic reweighters are not trained")

    def log_ratio(self, output: Any) -> Any:
        return output


def analytic_gaussian_reweighter(*, mu_range: tuple[float, float] = (-2.0, 2.0),
                                 theta_scale: float = 1.0) -> Any:
    """A :class:`~ratiofit.reweighter.Reweighter` with the *exact* ratio of N(μ, 1) to
    N(0, 1) in one feature ``x0``: log w(x, μ) = μx − μ²/2 (srgn.md Eq. 10).

    For tests of everything downstream of training (templates, fits, inference): the
    numbers it gives are known in closed form. In memory only (not saveable).
    ``theta_scale`` = 1 + ε evaluates the exact ratio at μ·(1 + ε) instead: a reweighter
    off by a known fraction of μ, like a trained one whose error grows away from the
    nominal (for tests of the learned ratio's error).

    Examples
    --------
    >>> import numpy as np
    >>> rw = analytic_gaussian_reweighter()
    >>> float(rw.log_ratio(features=np.array([[1.0]]), theta={"mu": 0.5})[0])
    0.375
    """
    import keras

    from .parameters import Parameter, ParameterSet
    from .reweighter import Reweighter

    scale = float(theta_scale)

    class ExactGaussianRatio(keras.Model):  # type: ignore[misc]
        def call(self, inputs: Any) -> Any:
            x, mu = inputs["features"], inputs["theta"] * scale
            return x * mu - 0.5 * mu * mu

    params = ParameterSet([Parameter(name="mu", nominal=0.0, low=mu_range[0],
                                     high=mu_range[1])])
    sig = InputSignature(feature_names=("x0",), feature_mean=(0.0,), feature_std=(1.0,),
                         theta_names=("mu",), theta_centre=(0.0,), theta_half_width=(1.0,))
    return Reweighter(model=ExactGaussianRatio(), loss=_IdentityLoss(), parameters=params,
                      signature=sig,
                      metadata={"architecture": "analytic", "note": "exact Gaussian ratio"})


def analytic_gaussian_width_reweighter(*, mu_range: tuple[float, float] = (-2.0, 2.0),
                                       sigma_range: tuple[float, float] = (0.5, 2.0)) -> Any:
    """The exact ratio of N(μ, σ²) to N(0, 1) in ``x0``, parameterised in (μ, σ):
    log w = −log σ − (x − μ)²/(2σ²) + x²/2 — a two-parameter
    :func:`analytic_gaussian_reweighter` (in memory only).

    Examples
    --------
    >>> import numpy as np
    >>> rw = analytic_gaussian_width_reweighter()
    >>> x = np.array([[1.0]])
    >>> round(float(rw.log_ratio(features=x, theta={"mu": 0.5, "sigma": 1.0})[0]), 6)
    0.375
    """
    import keras

    from .parameters import Parameter, ParameterSet
    from .reweighter import Reweighter

    class ExactGaussianWidthRatio(keras.Model):  # type: ignore[misc]
        def call(self, inputs: Any) -> Any:
            x, theta = inputs["features"], inputs["theta"]
            mu, sigma = theta[:, 0:1], theta[:, 1:2]
            return -keras.ops.log(sigma) - 0.5 * ((x - mu) / sigma) ** 2 + 0.5 * x * x

    params = ParameterSet([
        Parameter(name="mu", nominal=0.0, low=mu_range[0], high=mu_range[1]),
        Parameter(name="sigma", nominal=1.0, low=sigma_range[0], high=sigma_range[1])])
    sig = InputSignature(feature_names=("x0",), feature_mean=(0.0,), feature_std=(1.0,),
                         theta_names=("mu", "sigma"), theta_centre=(0.0, 0.0),
                         theta_half_width=(1.0, 1.0))
    return Reweighter(model=ExactGaussianWidthRatio(), loss=_IdentityLoss(), parameters=params,
                      signature=sig, metadata={"architecture": "analytic",
                                               "note": "exact Gaussian (mean, width) ratio"})


def latent_gaussian_events(n: int, *, mus: Any, rng: np.random.Generator,
                           mu: float = 0.0) -> Any:
    """``n`` events with a hidden history and the exact *joint* ratios to other μ, the
    shape of a simulator's per-event weights (:class:`~ratiofit.events.AltWeights`).

    Each event has a latent z ~ N(μ, 1) and observes x0 = (z + ε)/√2 and x1 = ε′
    (ε, ε′ ~ N(0, 1)), so x0 ~ N(μ/√2, 1); its alternative weight at μ_k is the joint
    ratio w_k = p(z|μ_k)/p(z|μ) = exp((μ_k − μ)z − (μ_k² − μ²)/2), noisy given x, whose
    mean given x is the marginal ratio of x0, E[w_k|x] = p(x0|μ_k)/p(x0|μ) =
    exp((ν_k − ν)x0 − (ν_k² − ν²)/2) with ν = μ/√2 (for μ = 0 exactly what
    ``analytic_gaussian_reweighter(theta_scale=2 ** -0.5)`` returns; x1 carries no
    information).
    θ is the column ``mu`` (constant ``mu``); the columns are named ``mu=<value>``.

    Examples
    --------
    >>> ev = latent_gaussian_events(5, mus=(0.5,), rng=np.random.default_rng(0))
    >>> ev.feature_names, ev.alt_weights.names
    (('x0', 'x1'), ('mu=0.5',))
    """
    from .events import AltWeights, EventSet

    mus = tuple(float(m) for m in mus)
    z = mu + rng.standard_normal(n)
    x0 = (z + rng.standard_normal(n)) / np.sqrt(2.0)
    x1 = rng.standard_normal(n)
    values = np.stack([np.exp((m - mu) * z - 0.5 * (m * m - mu * mu)) for m in mus], axis=1) \
        if mus else np.zeros((n, 0))
    alt = AltWeights(values=values, names=tuple(f"mu={m:g}" for m in mus),
                     theta=tuple({"mu": m} for m in mus))
    return EventSet(features=np.stack([x0, x1], axis=1), feature_names=("x0", "x1"),
                    theta=np.full((n, 1), mu), theta_names=("mu",), alt_weights=alt,
                    provenance={"source": "latent_gaussian_events",
                                "origin": "latent Gaussian events"})
