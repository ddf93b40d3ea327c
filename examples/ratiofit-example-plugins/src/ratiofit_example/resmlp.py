"""Architecture ``resmlp``: a residual fully connected network on features and θ.

Features are standardised with the training means and widths and θ with its range
(→ [-1, 1]) by fixed ``Normalization`` layers, as in the built-in ``mlp``. A dense layer
projects the concatenation to ``width`` units, then ``blocks`` residual blocks follow::

    h ← act(h + Dense(width)(act(Dense(width)(h))))

Only standard Keras layers are used, so a saved model loads with ``safe_mode`` and no
``custom_objects``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ratiofit.hookspecs import hookimpl
from ratiofit.options import Option
from ratiofit.plugin_api import InputSignature

__all__ = ["ResidualMLP", "ratiofit_architectures"]


class ResidualMLP:
    """A residual MLP: ``blocks`` two-layer residual blocks of ``width`` units."""

    name = "resmlp"
    options: Mapping[str, Option] = {
        "width": Option(kind="int", default=32, minimum=1, doc="units of every hidden layer"),
        "blocks": Option(kind="int", default=2, minimum=0, doc="number of residual blocks"),
        "activation": Option(kind="str", default="swish", doc="hidden activation",
                             choices=["relu", "gelu", "swish", "tanh", "elu"]),
    }

    def build(self, *, signature: InputSignature, output_activation: str,
              options: Mapping[str, Any]) -> Any:
        """Return the uncompiled Keras model ``{features, theta} → [n, 1]``.

        Parameters
        ----------
        signature
            Input names and standardisation constants (flat features only).
        output_activation
            The loss's output activation, applied to the last layer.
        options
            Resolved ``width``, ``blocks`` and ``activation``.
        """
        import keras
        import numpy as np

        if signature.particle_names:
            raise ValueError("resmlp takes flat features only, not particles")
        act = options["activation"]
        width = options["width"]
        d, p = len(signature.feature_names), len(signature.theta_names)
        features = keras.Input(shape=(d,), name="features")
        inputs = {"features": features}
        h = keras.layers.Normalization(mean=np.asarray(signature.feature_mean),
                                       variance=np.asarray(signature.feature_std) ** 2,
                                       name="standardise_features")(features)
        if p:
            theta = keras.Input(shape=(p,), name="theta")
            inputs["theta"] = theta
            t = keras.layers.Normalization(mean=np.asarray(signature.theta_centre),
                                           variance=np.asarray(signature.theta_half_width) ** 2,
                                           name="standardise_theta")(theta)
            h = keras.layers.Concatenate(name="features_theta")([h, t])
        h = keras.layers.Dense(width, activation=act, name="project")(h)
        for i in range(options["blocks"]):
            u = keras.layers.Dense(width, activation=act, name=f"block_{i}_dense_a")(h)
            u = keras.layers.Dense(width, name=f"block_{i}_dense_b")(u)
            h = keras.layers.Add(name=f"block_{i}_add")([h, u])
            h = keras.layers.Activation(act, name=f"block_{i}_act")(h)
        out = keras.layers.Dense(1, activation=output_activation, name="output")(h)
        return keras.Model(inputs=inputs, outputs=out, name="resmlp")


@hookimpl
def ratiofit_architectures() -> list[Any]:
    """The architectures of this module."""
    return [ResidualMLP()]
