"""Loss ``bce``: binary cross-entropy on a logit output (ensembles.md Table I, row 1).

The optimum is f = p_T/(p_T + p_R), so the logit is log w directly (dctr.md Eq. A5–A8).
"""

from __future__ import annotations

from typing import Any

from ratiofit.hookspecs import hookimpl


class BCE:
    name = "bce"
    output_activation = "linear"

    def keras_loss(self) -> Any:
        import keras

        return keras.losses.BinaryCrossentropy(from_logits=True)

    def log_ratio(self, output: Any) -> Any:
        return output


@hookimpl
def ratiofit_losses() -> list[Any]:
    return [BCE()]
