"""Loss ``mse``: mean squared error on a sigmoid output (ensembles.md Table I, row 2).

The optimum is f = p_T/(p_T + p_R), so log w = log f − log(1 − f).
"""

from __future__ import annotations

from typing import Any

from ratiofit.hookspecs import hookimpl


class MSE:
    name = "mse"
    output_activation = "sigmoid"

    def keras_loss(self) -> Any:
        import keras

        return keras.losses.MeanSquaredError()

    def log_ratio(self, output: Any) -> Any:
        from keras import ops

        return ops.log(output) - ops.log1p(-output)


@hookimpl
def ratiofit_losses() -> list[Any]:
    return [MSE()]
