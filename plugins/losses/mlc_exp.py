"""Loss ``mlc_exp``: MLC with the exponential parametrisation (ensembles.md footnote 1, Fig. 10).

The ratio is C(f) = exp(f), so the linear output f is log w itself:
loss = −y f + (1 − y) exp(f).
"""

from __future__ import annotations

from typing import Any

from ratiofit.hookspecs import hookimpl


def _mlc_exp_loss(y_true: Any, y_pred: Any) -> Any:
    from keras import ops

    y, f = ops.reshape(y_true, (-1,)), ops.reshape(y_pred, (-1,))
    return -y * f + (1.0 - y) * ops.exp(f)


class MLCExp:
    name = "mlc_exp"
    output_activation = "linear"

    def keras_loss(self) -> Any:
        return _mlc_exp_loss

    def log_ratio(self, output: Any) -> Any:
        return output


@hookimpl
def ratiofit_losses() -> list[Any]:
    return [MLCExp()]
