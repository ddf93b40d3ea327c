"""Shared fixtures: one small parameterised reweighter trained once per session."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import pytest

from ratiofit.events import EventSet
from ratiofit.parameters import Parameter, ParameterSet
from ratiofit.registry import get_registry
from ratiofit.spec import TrainingSpec
from ratiofit.training import train_reweighter


def gaussian_spec(*, seed: int = 3, mu_range: tuple[float, float] = (-2.0, 2.0),
                  n_nominal: int = 5000, n_varied: int | None = None, n_data: int = 3000,
                  data_mu: float = 0.5, source_options: dict | None = None,
                  hidden: list[int] | None = (16, 16), loss: str | None = "bce",
                  training: dict | None = None, calibration: dict | None = None,
                  fit: dict | None = None, **sections: object) -> str:
    """The YAML text of the tests' standard spec: N(0, 1) → N(μ, 1) with a parameterised
    reweighter, data at μ = ``data_mu``; keyword ``sections`` (``ensemble``,
    ``uncertainty``, ``outputs``, ``inference``, …) are added as they are, and a ``None``
    argument leaves its key out (the spec's default then applies).

    >>> "n_events: 5000" in gaussian_spec()
    True
    """
    import yaml

    options = {"mean": "mu", **(source_options or {})}
    architecture: object = "mlp" if hidden is None else {
        "name": "mlp", "options": {"hidden": list(hidden)}}
    reweighter = {"architecture": architecture, "loss": loss, "reference": "nominal",
                  "target": "varied", "training": training or {"epochs": 2,
                                                              "batch_size": 512},
                  "calibration": calibration}
    doc = {
        "seed": seed,
        "parameters": {"mu": {"nominal": 0.0, "range": list(mu_range)}},
        "samples": {
            "nominal": {"source": "gaussian", "n_events": n_nominal, "options": options},
            "varied": {"source": "gaussian", "n_events": n_varied or n_nominal,
                       "theta": {"mu": "uniform"}, "options": options},
            "data": {"source": "gaussian", "n_events": n_data, "theta": {"mu": data_mu},
                     "options": options}},
        "reweighter": {k: v for k, v in reweighter.items() if v is not None},
        "fit": fit if fit is not None else {"strategy": "dctr", "data": "data",
                                            "parameters": ["mu"]},
        **sections,
    }
    return yaml.safe_dump(doc, sort_keys=False)


def assert_float32_close(actual: np.ndarray, expected: np.ndarray) -> None:
    """Two float32 network outputs agree within float32 rounding.

    A saved and reloaded Keras model runs a freshly traced graph, whose reductions may
    sum in another order: outputs then differ by a few units in the last place (measured:
    up to 7e-7 on values of order 1, about 6 ulp). 16 ulp of the largest magnitude
    (float32 eps = 1.19e-7) bounds that and is still 10^4 below any real change of a
    learned log-ratio.
    """
    actual, expected = np.asarray(actual), np.asarray(expected)
    scale = max(1.0, float(np.max(np.abs(expected), initial=0.0)))
    np.testing.assert_allclose(actual, expected, rtol=0,
                               atol=16 * float(np.finfo(np.float32).eps) * scale)


MU = ParameterSet([Parameter(name="mu", nominal=0.0, low=-2.0, high=2.0)])
N_PER_CLASS = 60_000


def gaussian_events(n: int, mu: np.ndarray | float, seed: int, *, theta: bool) -> EventSet:
    rng = np.random.default_rng(seed)
    mu_arr = np.broadcast_to(np.asarray(mu, dtype=float), (n,))
    x = rng.normal(mu_arr, 1.0)[:, None]
    return EventSet(features=x, feature_names=("x0",),
                    theta=mu_arr[:, None] if theta else None,
                    theta_names=("mu",) if theta else ())


@pytest.fixture(scope="session")
def trained_1d():
    """BCE/MLP reweighter w(x, mu) for N(mu,1)/N(0,1), mu in [-2, 2]; ~20 s on 2 cores."""
    rng = np.random.default_rng(3)
    reference = gaussian_events(N_PER_CLASS, 0.0, seed=1, theta=False)
    target = gaussian_events(N_PER_CLASS, rng.uniform(-2, 2, N_PER_CLASS), seed=2, theta=True)
    reg = get_registry()
    rw = train_reweighter(
        reference=reference, target=target, parameters=MU,
        architecture=reg.get("architecture", "mlp"),
        architecture_options={"hidden": [64, 64, 64], "activation": "swish", "theta_input": True},
        loss=reg.get("loss", "bce"),
        # A short cosine-decayed training: keep the final weights. The validation loss of a
        # 2.4·10⁴-event split cannot resolve the small differences between late epochs, so
        # "restore best" would pick an epoch by noise.
        training=TrainingSpec(epochs=8, batch_size=512, patience=8, checkpoint=False,
                              restore_best=False),
        seed=5)
    calib_ref = gaussian_events(400_000, 0.0, seed=4, theta=False)
    rw.calibrate(reference_features=calib_ref.features, points=21, degree=6,
                 rng=np.random.default_rng(0))
    return rw
