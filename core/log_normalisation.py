"""log Z(θ) = log E_reference[w(x, θ)]: the one implementation.

A perfectly learned ratio has Z(θ) = 1 at every θ. The calibration measures log Z on a θ
grid (:mod:`ratiofit.calibration`), the likelihood strategy divides the learned density by
Z(θ) at every step of its fit, and the unbinned costs' reference normalisation
(:class:`ratiofit.inference.ReferenceNormalisation`) does the same per θ the minimiser
visits. All three compute

    log Z = log Σᵢ w₀ᵢ exp(log wᵢ) − log Σᵢ w₀ᵢ,
    ∂ log Z/∂θ = Σᵢ w₀ᵢ exp(log wᵢ) ∂ log wᵢ/∂θ / Σᵢ w₀ᵢ exp(log wᵢ),

with the reference's event weights w₀ (zero for an event a bootstrap replica leaves out;
negative ones, as at NLO, enter as they are: both sums are linear in w₀, so log Z is the
log of a signed weighted mean, defined where that mean is positive), shifted by max log w
so that no exponential overflows.

>>> import numpy as np
>>> log_z, _ = log_mean_ratio(np.log([1.0, 3.0]))          # mean of w = 2
>>> round(float(np.exp(log_z)), 12)
2.0
>>> log_z, grad = log_mean_ratio(np.log([1.0, 3.0]), weights=np.array([3.0, 1.0]),
...                              gradient=np.array([[1.0], [0.0]]))
>>> round(float(np.exp(log_z)), 12), grad.round(6).tolist()   # (3·1 + 1·3)/4; 3/6
(1.5, [0.5])
"""

from __future__ import annotations

import math

import numpy as np

from .errors import DataError

__all__ = ["log_mean_ratio"]


def log_mean_ratio(log_w: np.ndarray, *, weights: np.ndarray | None = None,
                   gradient: np.ndarray | None = None) -> tuple[float, np.ndarray | None]:
    """log of the (``weights``-weighted) mean of exp(``log_w``) ``[n]``, and the weighted
    mean of ``gradient`` ``[n, p]`` under the normalised w₀·w (``None`` when not given).

    Raises :class:`~ratiofit.errors.DataError` where Σ w₀·w is not positive.
    """
    lw = np.asarray(log_w, dtype=np.float64)
    m = float(np.max(lw))
    e = np.exp(lw - m)
    if weights is not None:
        e = np.asarray(weights, dtype=np.float64) * e
        total = float(np.sum(weights))
    else:
        total = float(len(lw))
    s = float(e.sum())
    if not (s > 0 and total > 0):
        raise DataError("log Z(θ): Σ w₀·w over the reference is not positive")
    log_z = m + math.log(s) - math.log(total)
    # einsum, not e @ g: on a loaded machine BLAS's thread synchronisation costs
    # milliseconds per call for these tall shapes, einsum's own loop does not
    grad = None if gradient is None else np.einsum("i,ij->j", e, gradient) / s
    return log_z, grad
