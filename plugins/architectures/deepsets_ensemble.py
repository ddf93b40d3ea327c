"""Architecture ``deepsets_ensemble``: a permutation-invariant per-ensemble network
(ensembles.md Eq. 31) and its fixed-output form (Eq. 32).

The input ``features`` of an ensemble are its N events' features concatenated event by
event (``N·d`` columns, e.g. ``e0_x0, e0_x1, e1_x0, …``, as the ratiofit-papers
distribution's ``ratiofit_papers.ensembles.sampling.draw_ensembles`` builds them);
``event_dim`` = d tells the network how to cut them back into ``[N, d]``. Then

    f_N^set(x⃗) = F( Σᵢ Φ(xᵢ) )                                    (Eq. 31)

with Φ: ℝ^d → ℝ^L applied to every event (shared weights) and F a dense network. The sum
makes the output invariant under any permutation of the events. Every event slot is
standardised with the same per-feature mean and width (pooled over slots), otherwise the
standardisation itself would break the invariance.

With ``fixed_output: true`` (Eq. 32) L = 1 and F is no network: the output is the loss'
output activation applied to Σᵢ Φ(xᵢ). For ``bce`` (linear logit output) this is exactly
Eq. 32, and for ``mlc_exp`` (output = log w) it is Eq. 14 with f = exp(Φ): either way the
ensemble log-ratio is Σᵢ Φ(xᵢ), so Φ alone is a per-event classifier f_{N→1}
(extract it with :func:`per_event_model`).

θ, when the signature has any, is standardised to [-1, 1] and given to Φ alongside every
event (a parameterised f_N(x⃗, θ)) and, in the free form, to F as well.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ratiofit.errors import PluginError
from ratiofit.hookspecs import hookimpl
from ratiofit.options import Option
from ratiofit.plugin_api import InputSignature

__all__ = ["DeepSetsEnsemble", "per_event_model"]


def _event_standardisation(signature: InputSignature, event_dim: int
                           ) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and variance pooled over the N event slots (same for every slot)."""
    mean = np.asarray(signature.feature_mean, dtype=np.float64).reshape(-1, event_dim)
    std = np.asarray(signature.feature_std, dtype=np.float64).reshape(-1, event_dim)
    pooled_mean = mean.mean(axis=0)
    pooled_var = (std ** 2 + mean ** 2).mean(axis=0) - pooled_mean ** 2
    return pooled_mean, np.where(pooled_var > 0, pooled_var, 1.0)


class DeepSetsEnsemble:
    """Deep-sets ensemble classifier / regressor (ensembles.md Eqs. 31–32)."""

    name = "deepsets_ensemble"
    options: Mapping[str, Option] = {
        "event_dim": Option(kind="int", default=1, minimum=1,
                            doc="features per event d; the input holds N·d concatenated columns"),
        "phi": Option(kind="int_list", default=[100, 100], minimum=1,
                      doc="hidden widths of the per-event network Φ"),
        "latent": Option(kind="int", default=128, minimum=1,
                         doc="latent dimension L of Σ Φ (ignored with fixed_output)"),
        "head": Option(kind="int_list", default=[100, 100, 100], minimum=1,
                       doc="hidden widths of F (ignored with fixed_output)"),
        "activation": Option(kind="str", default="relu",
                             choices=["relu", "gelu", "swish", "tanh", "elu"],
                             doc="hidden activation"),
        "fixed_output": Option(kind="bool", default=False,
                               doc="Eq. 32: L = 1 and output = activation(Σ Φ), so Φ is a "
                               "per-event classifier f_{N→1}"),
    }

    def build(self, *, signature: InputSignature, output_activation: str,
              options: Mapping[str, Any]) -> Any:
        """A Keras model ``{"features": [n, N·d], "theta": [n, p]} → [n, 1]``."""
        import keras

        event_dim = int(options["event_dim"])
        width = len(signature.feature_names)
        if width == 0 or width % event_dim:
            raise PluginError(f"architecture 'deepsets_ensemble': {width} input features do "
                              f"not split into events of event_dim={event_dim}")
        n_events = width // event_dim
        fixed = bool(options["fixed_output"])
        features = keras.Input(shape=(width,), name="features")
        inputs = {"features": features}
        mean, var = _event_standardisation(signature, event_dim)
        events = keras.layers.Reshape((n_events, event_dim), name="split_events")(features)
        h = keras.layers.Normalization(mean=mean, variance=var, name="standardise_events")(events)
        theta_std = None
        if signature.theta_names:
            theta = keras.Input(shape=(len(signature.theta_names),), name="theta")
            inputs["theta"] = theta
            theta_std = keras.layers.Normalization(
                mean=np.asarray(signature.theta_centre),
                variance=np.asarray(signature.theta_half_width) ** 2,
                name="standardise_theta")(theta)
            tiled = keras.layers.RepeatVector(n_events, name="theta_per_event")(theta_std)
            h = keras.layers.Concatenate(name="events_theta")([h, tiled])
        for i, units in enumerate(options["phi"]):
            h = keras.layers.Dense(units, activation=options["activation"],
                                   name=f"phi_hidden_{i}")(h)
        latent = 1 if fixed else int(options["latent"])
        h = keras.layers.Dense(latent, activation="linear", name="phi_output")(h)
        # Σᵢ Φ(xᵢ) = N · mean: built-in layers only, so saved models load in safe mode.
        pooled = keras.layers.GlobalAveragePooling1D(name="mean_over_events")(h)
        pooled = keras.layers.Rescaling(float(n_events), name="sum_over_events")(pooled)
        if fixed:
            out = keras.layers.Activation(output_activation, name="output")(pooled)
            return keras.Model(inputs=inputs, outputs=out, name="deepsets_ensemble_fixed")
        h = pooled
        if theta_std is not None:
            h = keras.layers.Concatenate(name="latent_theta")([h, theta_std])
        for i, units in enumerate(options["head"]):
            h = keras.layers.Dense(units, activation=options["activation"],
                                   name=f"head_hidden_{i}")(h)
        out = keras.layers.Dense(1, activation=output_activation, name="output")(h)
        return keras.Model(inputs=inputs, outputs=out, name="deepsets_ensemble")


def per_event_model(model: Any) -> Any:
    """Φ of a fixed-output ``deepsets_ensemble`` model as a per-event network f_{N→1}.

    The returned model maps ``{"features": [n, d]}`` (plus ``"theta"`` when the ensemble
    model has it) to ``[n, 1]`` = Φ(x), the per-event contribution to the ensemble
    log-ratio (ensembles.md Eq. 32 with BCE: a per-event logit; Eq. 14 with ``mlc_exp``:
    log f_{N→1}). It shares its weights with ``model``.
    """
    import keras

    names = {layer.name for layer in model.layers}
    if "phi_output" not in names or "split_events" not in names:
        raise PluginError("per_event_model: not a deepsets_ensemble model")
    if model.get_layer("phi_output").units != 1:
        raise PluginError("per_event_model: needs the fixed-output form (fixed_output: true, "
                          "L = 1)")
    event_dim = int(model.get_layer("split_events").target_shape[-1])
    features = keras.Input(shape=(event_dim,), name="features")
    inputs = {"features": features}
    # The shared layers were built on [n, N, ·]; each event is fed as an ensemble of one.
    h = keras.layers.Reshape((1, event_dim))(features)
    h = model.get_layer("standardise_events")(h)
    if "standardise_theta" in names:
        n_theta = int(model.get_layer("standardise_theta").input.shape[-1])
        theta = keras.Input(shape=(n_theta,), name="theta")
        inputs["theta"] = theta
        theta_std = keras.layers.Reshape((1, n_theta))(
            model.get_layer("standardise_theta")(theta))
        h = keras.layers.Concatenate()([h, theta_std])
    i = 0
    while f"phi_hidden_{i}" in names:
        h = model.get_layer(f"phi_hidden_{i}")(h)
        i += 1
    out = keras.layers.Reshape((1,))(model.get_layer("phi_output")(h))
    return keras.Model(inputs=inputs, outputs=out, name="per_event_phi")


@hookimpl
def ratiofit_architectures() -> list[Any]:
    return [DeepSetsEnsemble()]
