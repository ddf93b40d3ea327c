"""Architecture ``pfn``: a parameterised Particle Flow Network, f = F(Σᵢ Φ(pᵢ, θ)).

The per-particle network Φ maps every particle (its standardised fields, and θ when
``theta_injection: particle``, as in dctr.md) into a latent space; the latent vectors of
the real particles are summed, which makes the output independent of the particles'
order and of how far an event is zero-padded; the event network F maps the sum (with
the flat features and, for ``theta_injection: latent``, θ appended) to the output
(dctr.md; ensembles.md Eq. 31).

Inputs follow :class:`ratiofit.plugin_api.InputSignature`: ``particles`` ``[n, m, k]``
with ``m`` free, ``mask`` ``[n, m]`` (1 = real, 0 = padding), optional ``features``
``[n, d]`` and ``theta`` ``[n, p]``. Particle fields, features and θ are standardised by
fixed ``Normalization`` layers, so a saved model is self-contained.

Padding never reaches the output: padded entries are set to zero before Φ (so any
content, even NaN, is harmless, also for gradients) and weighted by the mask in the sum.

Three small custom layers (``ZeroPadded``, ``BroadcastToParticles``, ``MaskedSum``; no
``Lambda``) are defined and registered with Keras under the package ``ratiofit`` by
:func:`custom_layers`, which ``build`` calls. A saved PFN therefore loads with
``safe_mode=True`` once they are registered: call ``PFN().custom_objects()`` (or
:func:`custom_layers`) first, or pass its result as ``custom_objects`` to
``keras.saving.load_model``.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

from ratiofit.hookspecs import hookimpl
from ratiofit.options import Option
from ratiofit.plugin_api import InputSignature

__all__ = ["PFN", "custom_layers"]


@functools.cache
def custom_layers() -> dict[str, type]:
    """Define the PFN's custom Keras layers and register them (package ``ratiofit``).

    Keras is imported here, on first use, not when the plugin is discovered (the CLI's
    ``validate`` and ``plugins`` stay fast). The layers take no arguments of their own,
    so the base ``Layer.get_config`` describes them completely.

    Returns
    -------
    dict
        Registered name (``ratiofit>Name``) → class, fit for ``custom_objects`` of
        ``keras.saving.load_model``:

        ``ZeroPadded``
            ``[x, mask]`` → ``x`` where ``mask > 0``, exactly 0 elsewhere (a select, not a
            product, so NaN or inf padding vanishes and passes no gradient).
        ``BroadcastToParticles``
            ``[v, mask]`` with ``v`` ``[n, c]`` → ``[n, m, c]``: ``v`` in every particle
            slot, padding included (only the shape of ``mask`` is used).
        ``MaskedSum``
            ``[x, mask]`` with ``x`` ``[n, m, c]`` → ``Σ_j mask[:, j] · x[:, j, :]``,
            ``[n, c]``; padding adds exactly zero wherever ``x`` is finite.
    """
    import keras
    from keras import ops

    @keras.saving.register_keras_serializable(package="ratiofit")
    class ZeroPadded(keras.layers.Layer):  # type: ignore[misc]
        def call(self, inputs: Sequence[Any]) -> Any:
            x, mask = inputs
            keep = ops.expand_dims(ops.greater(mask, 0), -1)
            return ops.where(keep, x, ops.zeros_like(x))

        def compute_output_shape(self, input_shape: Sequence[Any]) -> Any:
            return tuple(input_shape[0])

    @keras.saving.register_keras_serializable(package="ratiofit")
    class BroadcastToParticles(keras.layers.Layer):  # type: ignore[misc]
        def call(self, inputs: Sequence[Any]) -> Any:
            v, mask = inputs
            zeros = ops.zeros_like(ops.expand_dims(ops.cast(mask, v.dtype), -1))
            return ops.expand_dims(v, 1) + zeros

        def compute_output_shape(self, input_shape: Sequence[Any]) -> Any:
            v_shape, mask_shape = input_shape
            return (v_shape[0], mask_shape[1], v_shape[-1])

    @keras.saving.register_keras_serializable(package="ratiofit")
    class MaskedSum(keras.layers.Layer):  # type: ignore[misc]
        def call(self, inputs: Sequence[Any]) -> Any:
            x, mask = inputs
            return ops.sum(x * ops.expand_dims(ops.cast(mask, x.dtype), -1), axis=1)

        def compute_output_shape(self, input_shape: Sequence[Any]) -> Any:
            x_shape = input_shape[0]
            return (x_shape[0], x_shape[-1])

    return {f"ratiofit>{c.__name__}": c for c in (ZeroPadded, BroadcastToParticles, MaskedSum)}


def _normalization(mean: Sequence[float], std: Sequence[float], name: str) -> Any:
    import keras
    import numpy as np

    return keras.layers.Normalization(mean=np.asarray(mean, dtype=np.float64),
                                      variance=np.asarray(std, dtype=np.float64) ** 2,
                                      name=name)


class PFN:
    """Parameterised Particle Flow Network builder (see the module docstring)."""

    name = "pfn"
    options: Mapping[str, Option] = {
        "phi": Option(kind="int_list", default=[100, 100, 128],
                      doc="per-particle network Φ widths; the last is the latent dimension",
                      minimum=1),
        "f": Option(kind="int_list", default=[100, 100, 100],
                    doc="event network F hidden widths after the particle sum", minimum=1),
        "activation": Option(kind="str", default="swish",
                             doc="hidden activation (smooth default: fits use θ-derivatives)",
                             choices=["relu", "gelu", "swish", "tanh", "elu"]),
        "theta_injection": Option(kind="str", default="particle",
                                  doc="where θ enters: 'particle' appends it to every "
                                  "particle's Φ input (dctr.md), 'latent' to the summed "
                                  "latent vector before F. Default 'particle': lower "
                                  "validation loss and better held-out closure in the "
                                  "measured comparison (bench/compare_theta_injection.py, "
                                  "bench/results/pfn_theta_injection.json); 'latent' makes "
                                  "fits far cheaper (Φ runs once per jet, only F per θ)",
                                  choices=["particle", "latent"]),
        "latent_norm": Option(kind="str", default="none",
                              doc="normalisation of the summed latent vector before F "
                              "('layer': LayerNormalization, 'batch': BatchNormalization)",
                              choices=["none", "layer", "batch"]),
        "theta_input": Option(kind="bool", default=True,
                              doc="feed θ to the network (false: a θ-blind classifier)"),
    }

    def custom_objects(self) -> dict[str, type]:
        """The custom layers a saved PFN needs, registered (see :func:`custom_layers`)."""
        return custom_layers()

    def split(self, model: Any) -> tuple[Any, Any] | None:
        """``(embed, head)`` for a PFN whose θ enters after the particle sum, else ``None``.

        ``embed`` maps the θ-free inputs (``particles``, ``mask``, ``features``) to the
        latent vector (with the standardised features appended); ``head`` maps
        ``{"embedding", "theta"}`` to the output with the *same* layers, so
        ``head({"embedding": embed(x), "theta": θ}) == model({**x, "theta": θ})``. A fit
        that evaluates many θ on fixed events then runs Φ and the sum once per event and
        only F per θ.
        """
        import keras

        names = {layer.name for layer in model.layers}
        if "theta" not in model.input or "theta_per_particle" in names \
                or "standardise_theta" not in names:
            return None  # θ per particle (or unused): every part of the net sees θ
        latent = model.get_layer("latent_norm" if "latent_norm" in names else "particle_sum")
        pieces = [latent.output]
        if "features" in model.input:
            pieces.append(model.get_layer("standardise_features").output)
        embedded = pieces[0] if len(pieces) == 1 else \
            keras.layers.Concatenate(name="embedding")(pieces)
        embed = keras.Model(inputs={k: v for k, v in model.input.items() if k != "theta"},
                            outputs=embedded, name="pfn_embed")
        width = int(embedded.shape[-1])
        emb_in = keras.Input(shape=(width,), name="embedding")
        theta_in = keras.Input(shape=(model.input["theta"].shape[-1],), name="theta")
        t = model.get_layer("standardise_theta")(theta_in)
        z = model.get_layer("latent_inputs")([emb_in, t]) if len(pieces) == 1 else \
            keras.layers.Concatenate(name="latent_inputs_split")([emb_in, t])
        for layer in model.layers:
            if layer.name.startswith("f_"):
                z = layer(z)
        out = model.get_layer("output")(z)
        head = keras.Model(inputs={"embedding": emb_in, "theta": theta_in}, outputs=out,
                           name="pfn_head")
        return embed, head

    def build(self, *, signature: InputSignature, output_activation: str,
              options: Mapping[str, Any]) -> Any:
        """Return the uncompiled Keras PFN for ``signature``.

        Parameters
        ----------
        signature
            Input names and standardisation; ``particle_names`` must be non-empty.
        output_activation
            Activation of the single output unit (set by the loss).
        options
            Resolved options (see :attr:`options`).

        Returns
        -------
        keras.Model
            Inputs ``particles``, ``mask`` and, when named, ``features`` and ``theta``;
            output ``[n, 1]``.
        """
        import keras

        layers = {name.split(">")[1]: cls for name, cls in custom_layers().items()}
        k = len(signature.particle_names)
        d, p = len(signature.feature_names), len(signature.theta_names)
        if k == 0:
            raise ValueError("architecture 'pfn' needs particle inputs, but the input "
                             "signature names no particle fields")
        if not options["phi"]:
            raise ValueError("architecture 'pfn': option 'phi' needs at least one layer")
        act = options["activation"]

        particles = keras.Input(shape=(None, k), name="particles")
        mask = keras.Input(shape=(None,), name="mask")
        inputs: dict[str, Any] = {"particles": particles, "mask": mask}
        clean = layers["ZeroPadded"](name="zero_padding")([particles, mask])
        h = _normalization(signature.particle_mean, signature.particle_std,
                           "standardise_particles")(clean)

        t = None
        if p:
            theta = keras.Input(shape=(p,), name="theta")
            inputs["theta"] = theta
            if options["theta_input"]:
                t = _normalization(signature.theta_centre, signature.theta_half_width,
                                   "standardise_theta")(theta)
        if t is not None and options["theta_injection"] == "particle":
            t_each = layers["BroadcastToParticles"](name="theta_per_particle")([t, mask])
            h = keras.layers.Concatenate(name="particles_theta")([h, t_each])

        for i, width in enumerate(options["phi"]):
            h = keras.layers.Dense(width, activation=act, name=f"phi_{i}")(h)
        z = layers["MaskedSum"](name="particle_sum")([h, mask])
        if options["latent_norm"] == "layer":
            z = keras.layers.LayerNormalization(name="latent_norm")(z)
        elif options["latent_norm"] == "batch":
            z = keras.layers.BatchNormalization(name="latent_norm")(z)

        extra = []
        if d:
            features = keras.Input(shape=(d,), name="features")
            inputs["features"] = features
            extra.append(_normalization(signature.feature_mean, signature.feature_std,
                                        "standardise_features")(features))
        if t is not None and options["theta_injection"] == "latent":
            extra.append(t)
        if extra:
            z = keras.layers.Concatenate(name="latent_inputs")([z, *extra])

        for i, width in enumerate(options["f"]):
            z = keras.layers.Dense(width, activation=act, name=f"f_{i}")(z)
        out = keras.layers.Dense(1, activation=output_activation, name="output")(z)
        return keras.Model(inputs=inputs, outputs=out, name="pfn")


@hookimpl
def ratiofit_architectures() -> list[Any]:
    return [PFN()]
