"""Every loss of ensembles.md Table I (and guide Eq. 3.11) learns the right log w.

Fixed-θ task N(0.5, 1) vs N(0, 1): log w = 0.5 x − 0.125. With 3·10⁴ events per class a
20-bin histogram ratio has standard error sqrt(2/1500) ≈ 0.04 per bin; a wrong output →
log w map (sign, logit vs log) gives errors of order 0.3–1, so RMSE < 0.1 separates a
correct map from a wrong one with a wide margin.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import gaussian_events

from ratiofit.parameters import ParameterSet
from ratiofit.registry import get_registry
from ratiofit.spec import TrainingSpec
from ratiofit.training import train_reweighter

LOSSES = ["bce", "mse", "sqrt", "mlc", "mlc_exp", "lr_direct"]


@pytest.mark.parametrize("loss", LOSSES)
def test_loss_learns_log_ratio(loss):
    reg = get_registry()
    reference = gaussian_events(30_000, 0.0, seed=1, theta=False)
    target = gaussian_events(30_000, 0.5, seed=2, theta=False)
    rw = train_reweighter(
        reference=reference, target=target, parameters=ParameterSet(),
        architecture=reg.get("architecture", "mlp"),
        architecture_options={"hidden": [32, 32], "activation": "swish", "theta_input": True},
        loss=reg.get("loss", loss),
        training=TrainingSpec(epochs=6, batch_size=256, learning_rate=2e-3, patience=6,
                              checkpoint=False),
        seed=4)
    x = np.linspace(-1.5, 2.0, 200)[:, None]  # central region of both densities
    lw = rw.log_ratio(features=x)
    rmse = float(np.sqrt(np.mean((lw - (0.5 * x[:, 0] - 0.125)) ** 2)))
    assert rmse < 0.1, f"{loss}: RMSE {rmse:.3f}"
