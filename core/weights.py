"""Event weights, negative ones included: the checks they owe and the statistics of them.

A weighted sample estimates an expectation by the signed weighted mean

    Ê[f] = Σᵢ wᵢ f(xᵢ) / Σᵢ wᵢ,

which is unbiased (to O(1/N), the ratio's) whenever E[Σ wᵢ f(xᵢ)] = N ∫ f p — whatever the
signs of the wᵢ, as long as the signed sum represents a density p ≥ 0 (an NLO
generator's events with their ± weights do). Every quantity ratiofit takes that is linear
in the weights (losses, histograms, means, sums of w²) therefore takes negative weights as
they are. What it needs is a finite weight per event and a positive total Σ w > 0
(:func:`check_weights`); where a method genuinely needs w ≥ 0 (drawing events with
probability ∝ w: toys, accept/reject; a moment match in log space) it refuses negative
ones in one line that says why.

- :func:`weighted_standardisation`: the weighted mean m = Σ w x / Σ w and standard deviation
  s = √(Σ w (x − m)² / Σ w) of each column (the network's input standardisation).
- :func:`kish_ess`: Kish's effective sample size (Σ w)² / Σ w². For any f whose spread does
  not depend on w, Var(Ê[f]) = Var(f) Σ w² / (Σ w)² = Var(f) / ESS: the number of
  unit-weight events that would measure a mean as precisely. With negative weights it is
  computed from the signed weights and is smaller than N even when every |w| is equal:
  a fraction ε of −1 weights gives ESS = N (1 − 2ε)², 0.64 N at ε = 10 %.
- :func:`variance_of_mean`: Σ aᵢ² (fᵢ − Ê[f])², aᵢ = wᵢ / Σ w, the delta-method variance of the
  weighted mean that holds also where w and f are correlated (importance weights).

Examples
--------
>>> import numpy as np
>>> w = np.array([1.0, 1.0, -1.0, 1.0])
>>> kish_ess(w)
1.0
>>> mean, std = weighted_standardisation(np.array([[0.0], [2.0], [2.0], [4.0]]), w,
...                                      what="sample 'x'")
>>> mean.tolist(), std.round(6).tolist()
([2.0], [2.0])
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import DataError

__all__ = ["check_weights", "kish_ess", "variance_of_mean", "weighted_standardisation"]


def check_weights(weights: Any, *, what: str, n: int | None = None) -> np.ndarray | None:
    """``weights`` as float64 ``[n]`` (``None`` stays ``None``: unit weights), refused in
    one line naming ``what`` when a value is NaN/inf, the shape is wrong or the total is
    not positive (negative weights themselves are allowed).

    >>> check_weights([1.0, -0.5], what="sample 'a'")
    array([ 1. , -0.5])
    >>> check_weights([1.0, -2.0], what="sample 'a'")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ratiofit.errors.DataError: sample 'a': the event weights sum to -1 over 2 events; ...
    """
    if weights is None:
        return None
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 1 or (n is not None and len(w) != n):
        raise DataError(f"{what}: event weights of shape {w.shape}, expected "
                        f"({'n' if n is None else n},)")
    bad = ~np.isfinite(w)
    if bad.any():
        raise DataError(f"{what}: the event weights contain {int(bad.sum())} NaN/inf "
                        f"value(s), the first at event {int(np.argmax(bad))}")
    total = float(w.sum())
    if not total > 0:
        raise DataError(f"{what}: the event weights sum to {total:g} over {len(w)} events; "
                        "a sample's total weight must be positive")
    return w


def kish_ess(weights: Any) -> float:
    """Kish's effective sample size (Σ w)² / Σ w² of signed weights (module docstring);
    0 for no events or all-zero weights.

    >>> kish_ess(np.ones(10)), round(kish_ess(np.r_[np.ones(9), -1.0]), 2)
    (10.0, 6.4)
    """
    w = np.asarray(weights, dtype=np.float64)
    sq = float(np.sum(w * w))
    return float(w.sum()) ** 2 / sq if sq > 0 else 0.0


def variance_of_mean(values: np.ndarray, weights: Any) -> np.ndarray:
    """Covariance ``[p, p]`` of the weighted mean of ``values`` ``[n, p]`` (or its variance
    for ``[n]``): Σ aᵢ² (fᵢ − m)(fᵢ − m)ᵀ with aᵢ = wᵢ/Σ w, m = Σ aᵢ fᵢ (first-order
    delta method for a ratio of sums; non-negative for signed weights; for unit weights
    the sample covariance over n, the familiar σ²/n).

    >>> float(variance_of_mean(np.array([0.0, 2.0]), np.ones(2)))
    0.5
    """
    f = np.asarray(values, dtype=np.float64)
    a = np.asarray(weights, dtype=np.float64)
    a = a / a.sum()
    f2 = f.reshape(len(f), -1)
    centred = (f2 - a @ f2) * a[:, None]
    cov = centred.T @ centred
    return cov if f.ndim > 1 else cov[0, 0]


def weighted_standardisation(x: np.ndarray, weights: Any, *, what: str
                             ) -> tuple[np.ndarray, np.ndarray]:
    """Per column of ``x`` ``[n, d]``: the weighted mean m = Σ w x / Σ w and standard
    deviation s = √(Σ w (x − m)² / Σ w), with the signed weights (module docstring); a
    column of zero spread gets s = 1. ``weights=None``: the unweighted mean and standard
    deviation (numpy's, bit for bit). A non-positive total weight, or a negative variance
    estimate (negative-weight events outweighing the spread around the mean), is refused
    in one line naming ``what`` and the column.

    >>> m, s = weighted_standardisation(np.array([[1.0], [3.0]]), np.array([3.0, 1.0]),
    ...                                 what="sample 'a'")
    >>> m.tolist(), s.round(6).tolist()
    ([1.5], [0.866025])
    """
    x = np.asarray(x, dtype=np.float64)
    if weights is None:
        mean, std = x.mean(axis=0), x.std(axis=0)
        return mean, np.where(std > 0, std, 1.0)
    w = np.asarray(weights, dtype=np.float64)
    total = float(w.sum())
    if not total > 0:
        raise DataError(f"{what}: the event weights sum to {total:g} over {len(w)} events; "
                        "the weighted standardisation needs a positive total")
    mean = (w @ x) / total
    var = (w @ (x - mean) ** 2) / total
    if np.any(var < 0):
        j = int(np.argmax(var < 0))
        raise DataError(f"{what}: the weighted variance of input column {j} is {var[j]:.3g} "
                        "< 0: the negative-weight events outweigh the spread of the others "
                        "there, so the signed weights do not describe a distribution")
    std = np.sqrt(var)
    return mean, np.where(std > 0, std, 1.0)
