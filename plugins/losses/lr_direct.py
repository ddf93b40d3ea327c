"""Loss ``lr_direct``: learn the likelihood ratio directly (guide-searches.md Eq. 3.11).

loss = −f on target + f²/2 on reference; the optimum is f = p_T/p_R, so log w = log f.
The output is kept positive with a softplus so that log f exists.
"""

from __future__ import annotations

from typing import Any

from ratiofit.hookspecs import hookimpl


def _lr_direct_loss(y_true: Any, y_pred: Any) -> Any:
    from keras import ops

    y, f = ops.reshape(y_true, (-1,)), ops.reshape(y_pred, (-1,))
    return -y * f + (1.0 - y) * 0.5 * f * f


class LRDirect:
    name = "lr_direct"
    output_activation = "softplus"

    def keras_loss(self) -> Any:
        return _lr_direct_loss

    def log_ratio(self, output: Any) -> Any:
        from keras import ops

        return ops.log(output)


@hookimpl
def ratiofit_losses() -> list[Any]:
    return [LRDirect()]
