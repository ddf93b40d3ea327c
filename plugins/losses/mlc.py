"""Loss ``mlc``: maximum-likelihood classifier (ensembles.md Eq. 7, Table I row 4).

A(f) = log f on target, B(f) = 1 − f on reference; the optimum is f = p_T/p_R
(Eq. 8), so log w = log f. The output is kept positive with a softplus.
"""

from __future__ import annotations

from typing import Any

from ratiofit.hookspecs import hookimpl


def _mlc_loss(y_true: Any, y_pred: Any) -> Any:
    from keras import ops

    y, f = ops.reshape(y_true, (-1,)), ops.reshape(y_pred, (-1,))
    return -y * ops.log(f) + (1.0 - y) * f


class MLC:
    name = "mlc"
    output_activation = "softplus"

    def keras_loss(self) -> Any:
        return _mlc_loss

    def log_ratio(self, output: Any) -> Any:
        from keras import ops

        return ops.log(output)


@hookimpl
def ratiofit_losses() -> list[Any]:
    return [MLC()]
