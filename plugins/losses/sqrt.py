"""Loss ``sqrt``: the square-root loss of ensembles.md Table I (row 3).

A(f) = −1/√f on target, B(f) = −√f on reference; the optimum is f = p_T/p_R, so
log w = log f. The output is kept positive with a softplus.
"""

from __future__ import annotations

from typing import Any

from ratiofit.hookspecs import hookimpl


def _sqrt_loss(y_true: Any, y_pred: Any) -> Any:
    from keras import ops

    y, f = ops.reshape(y_true, (-1,)), ops.reshape(y_pred, (-1,))
    return y / ops.sqrt(f) + (1.0 - y) * ops.sqrt(f)


class Sqrt:
    name = "sqrt"
    output_activation = "softplus"

    def keras_loss(self) -> Any:
        return _sqrt_loss

    def log_ratio(self, output: Any) -> Any:
        from keras import ops

        return ops.log(output)


@hookimpl
def ratiofit_losses() -> list[Any]:
    return [Sqrt()]
