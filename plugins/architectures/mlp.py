"""Architecture ``mlp``: a fully connected network on standardised features and θ.

Features are standardised with the training means and widths, θ with its range
(→ [-1, 1]); both are fixed ``Normalization`` layers inside the model so a saved
model is self-contained.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ratiofit.hookspecs import hookimpl
from ratiofit.options import Option
from ratiofit.plugin_api import InputSignature


class MLP:
    name = "mlp"
    options: Mapping[str, Option] = {
        "hidden": Option(kind="int_list", default=[64, 64, 64], doc="hidden layer widths",
                         minimum=1),
        "activation": Option(kind="str", default="swish",
                             doc="hidden activation (smooth default: fits use θ-derivatives)",
                             choices=["relu", "gelu", "swish", "tanh", "elu"]),
        "theta_input": Option(kind="bool", default=True,
                              doc="feed θ to the network (false: a θ-blind classifier)"),
    }

    def build(self, *, signature: InputSignature, output_activation: str,
              options: Mapping[str, Any]) -> Any:
        import keras
        import numpy as np

        d, p = len(signature.feature_names), len(signature.theta_names)
        features = keras.Input(shape=(d,), name="features")
        inputs = {"features": features}
        h = keras.layers.Normalization(mean=np.asarray(signature.feature_mean),
                                       variance=np.asarray(signature.feature_std) ** 2,
                                       name="standardise_features")(features)
        if p:
            theta = keras.Input(shape=(p,), name="theta")
            inputs["theta"] = theta
            if options["theta_input"]:
                t = keras.layers.Normalization(
                    mean=np.asarray(signature.theta_centre),
                    variance=np.asarray(signature.theta_half_width) ** 2,
                    name="standardise_theta")(theta)
                h = keras.layers.Concatenate(name="features_theta")([h, t])
        for i, width in enumerate(options["hidden"]):
            h = keras.layers.Dense(width, activation=options["activation"], name=f"hidden_{i}")(h)
        out = keras.layers.Dense(1, activation=output_activation, name="output")(h)
        return keras.Model(inputs=inputs, outputs=out, name="mlp")


@hookimpl
def ratiofit_architectures() -> list[Any]:
    return [MLP()]
