"""Architecture ``ncr_trunk``: the NCR classifier of ncr.md Eq. 17–19 and App. A.

Inputs are NCR triples (x, x', y') as one ``features`` tensor whose columns are found by
name prefix (:func:`ratiofit.plugins.losses.ncr.triple_names`): ``sim_*`` = reco x,
``gen_*`` = reference-slot truth x', ``paired_gen_*`` = target-slot truth y'. Optional θ
columns join every sub-network's input (a parameterised conditional reweighter).

ncr.md Eq. 17 writes the reference-class probability as e^{f₀(x,x')}/(e^{f₀}+e^{f₁(x,y')});
in ratiofit's convention (label 1 = target) the model returns the target-class logit

    logit = f₁(x, y') − f₀(x, x'),

so at y' = x' the logit is log q(x|x')/p(x|x') (ncr.md Eq. 15–16: f₀ and f₁ are the two
conditional log-densities up to a common term). ``scheme`` picks the form:

- ``nominal`` (ncr.md Eq. 18–19): one trunk g(·,·) (``trunk`` hidden ReLU layers, default
  two of 50, output L₀ = last width) applied to (x, x') and to (x, y') with shared
  weights, then two shallow heads f_i = W'_i ReLU(W_i g + b_i) + b'_i of width L₁ = ``head``;
- ``1f-2NN`` (App. A): f₀ and f₁ are two independent networks of ``independent`` hidden
  ReLU layers (default three of 50, the marginal network);
- ``1f`` (App. A): one unconstrained network on (x, x', y') of ``independent`` layers
  whose output is the logit.

The truth slots x' and y' are standardised with the same mean and width (the average of
the two slots' training statistics), so the trunk sees them on one scale, which the
shared g and the y' = x' evaluation require.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ratiofit.hookspecs import hookimpl
from ratiofit.options import Option
from ratiofit.plugin_api import InputSignature
from ratiofit.plugins.losses.ncr import RECO_PREFIX, REFERENCE_TRUTH_PREFIX, TARGET_TRUTH_PREFIX

SCHEMES = ("nominal", "1f-2NN", "1f")


def triple_columns(feature_names: tuple[str, ...]) -> tuple[list[int], list[int], list[int]]:
    """Column indices of (reco, reference-slot truth, target-slot truth) in a triple.

    Raises
    ------
    ValueError
        If the names do not form a triple (each truth name present in both slots).
    """
    reco = [i for i, n in enumerate(feature_names) if n.startswith(RECO_PREFIX)]
    target = [i for i, n in enumerate(feature_names) if n.startswith(TARGET_TRUTH_PREFIX)]
    reference = [i for i, n in enumerate(feature_names) if n.startswith(REFERENCE_TRUTH_PREFIX)]
    ref_names = [feature_names[i][len(REFERENCE_TRUTH_PREFIX):] for i in reference]
    tgt_names = [feature_names[i][len(TARGET_TRUTH_PREFIX):] for i in target]
    if not reco or not reference or ref_names != tgt_names \
            or len(reco) + 2 * len(reference) != len(feature_names):
        raise ValueError(
            "ncr_trunk: features must be NCR triples (sim_<reco>..., gen_<truth>..., "
            f"paired_gen_<truth>... with the same truth names), got {list(feature_names)}")
    return reco, reference, target


_SELECT: Any = None


def _select_columns_class() -> Any:
    """The Keras layer that picks columns of its input (built once, registered for loading)."""
    global _SELECT
    if _SELECT is None:
        import keras

        @keras.saving.register_keras_serializable(package="ratiofit_ncr")
        class SelectColumns(keras.layers.Layer):
            """Columns ``columns`` of a ``[n, d]`` input."""

            def __init__(self, *, columns: list[int], **kwargs: Any) -> None:
                super().__init__(**kwargs)
                self.columns = [int(c) for c in columns]

            def call(self, inputs: Any) -> Any:
                return keras.ops.take(inputs, self.columns, axis=1)

            def compute_output_shape(self, input_shape: Any) -> Any:
                return (input_shape[0], len(self.columns))

            def get_config(self) -> dict[str, Any]:
                return {**super().get_config(), "columns": self.columns}

        _SELECT = SelectColumns
    return _SELECT


class NCRTrunk:
    """Builder of the NCR classifier (ncr.md Eq. 17–19; App. A schemes)."""

    name = "ncr_trunk"
    options: Mapping[str, Option] = {
        "scheme": Option(kind="str", default="nominal", choices=list(SCHEMES),
                         doc="nominal (shared trunk, ncr.md Eq. 17–19), 1f-2NN or 1f (App. A)"),
        "trunk": Option(kind="int_list", default=[50, 50], minimum=1,
                        doc="hidden widths of the shared trunk g; L₀ = last (ncr.md Eq. 18)"),
        "head": Option(kind="int", default=50, minimum=1,
                       doc="hidden width L₁ of the shallow heads f₀, f₁ (ncr.md Eq. 18–19)"),
        "independent": Option(kind="int_list", default=[50, 50, 50], minimum=1,
                              doc="hidden widths of each network in schemes 1f-2NN and 1f"),
    }

    def custom_objects(self) -> dict[str, type]:
        """The column-selection layer, for loading saved models (``safe_mode``)."""
        cls = _select_columns_class()
        return {"SelectColumns": cls, "ratiofit_ncr>SelectColumns": cls}

    def build(self, *, signature: InputSignature, output_activation: str,
              options: Mapping[str, Any]) -> Any:
        import keras

        reco, reference, target = triple_columns(signature.feature_names)
        mean = np.asarray(signature.feature_mean, dtype=np.float64)
        std = np.asarray(signature.feature_std, dtype=np.float64)
        truth_mean = 0.5 * (mean[reference] + mean[target])
        truth_std = 0.5 * (std[reference] + std[target])
        mean[reference] = mean[target] = truth_mean
        std[reference] = std[target] = truth_std

        d, p = len(signature.feature_names), len(signature.theta_names)
        features = keras.Input(shape=(d,), name="features")
        inputs = {"features": features}
        z = keras.layers.Normalization(mean=mean, variance=std**2,
                                       name="standardise_features")(features)
        extra = []
        if p:
            theta = keras.Input(shape=(p,), name="theta")
            inputs["theta"] = theta
            extra.append(keras.layers.Normalization(
                mean=np.asarray(signature.theta_centre),
                variance=np.asarray(signature.theta_half_width) ** 2,
                name="standardise_theta")(theta))

        def columns(idx: list[int], name: str) -> Any:
            return _select_columns_class()(columns=idx, name=name)(z)

        x, x_ref, y_tgt = (columns(reco, "reco"), columns(reference, "reference_truth"),
                           columns(target, "target_truth"))

        def join(parts: list[Any], name: str) -> Any:
            return keras.layers.Concatenate(name=name)(parts)

        def dense_stack(h: Any, widths: list[int], prefix: str) -> Any:
            for i, width in enumerate(widths):
                h = keras.layers.Dense(width, activation="relu", name=f"{prefix}_{i}")(h)
            return h

        scheme = options["scheme"]
        if scheme == "1f":
            h = dense_stack(join([x, x_ref, y_tgt, *extra], "triple"), options["independent"],
                            "hidden")
            logit = keras.layers.Dense(1, name="logit")(h)
        elif scheme == "1f-2NN":
            heads = []
            for which, truth in (("f0", x_ref), ("f1", y_tgt)):
                h = dense_stack(join([x, truth, *extra], f"{which}_input"),
                                options["independent"], which)
                heads.append(keras.layers.Dense(1, name=f"{which}_out")(h))
            logit = keras.layers.Subtract(name="logit")([heads[1], heads[0]])
        else:
            trunk = [keras.layers.Dense(w, activation="relu", name=f"trunk_{i}")
                     for i, w in enumerate(options["trunk"])]

            def g(truth: Any, name: str) -> Any:
                h = join([x, truth, *extra], f"{name}_input")
                for layer in trunk:  # the same layer objects: shared weights (ncr.md Eq. 18–19)
                    h = layer(h)
                return h

            heads = []
            for which, truth in (("f0", x_ref), ("f1", y_tgt)):
                h = keras.layers.Dense(options["head"], activation="relu",
                                       name=f"{which}_hidden")(g(truth, f"g_{which}"))
                heads.append(keras.layers.Dense(1, name=f"{which}_out")(h))
            logit = keras.layers.Subtract(name="logit")([heads[1], heads[0]])
        out = keras.layers.Activation(output_activation, name="output")(logit)
        return keras.Model(inputs=inputs, outputs=out, name=f"ncr_{scheme.replace('-', '_')}")


@hookimpl
def ratiofit_architectures() -> list[Any]:
    return [NCRTrunk()]
