"""The weighted AUC: the one implementation that the closure gate's classifier test, SRGN's
objective and the studies use.

AUC = Pr(s(x_target) > s(x_reference)) + ½ Pr(tie), each pair weighted by the product of
the two events' weights (srgn.md Eq. 5); 0.5 means the score cannot tell the samples apart.

With negative weights (NLO samples) the same formula is used with the signed weights: the
weighted Mann–Whitney statistic is bilinear in the two samples' weights, so its
expectation is the AUC of the two densities the signed samples represent, which lies in
[0, 1]. One finite sample's value need not: a few negative-weight events can push it
below 0 or above 1 in small samples (its statistical error grows as the Kish effective
sizes (Σw)²/Σw² fall). Each sample's total weight must be positive.
"""

from __future__ import annotations

import numpy as np

from .errors import DataError

__all__ = ["weighted_auc"]


def weighted_auc(*, target_scores: np.ndarray, reference_scores: np.ndarray,
                 target_weights: np.ndarray | None = None,
                 reference_weights: np.ndarray | None = None) -> float:
    """Weighted AUC = Pr(g(x_target) > g(x_reference)) + ½ Pr(tie) (srgn.md Eq. 5).

    Each (target, reference) pair counts with the product of their weights:

        AUC = Σ_t Σ_r w_t w_r [1(s_t > s_r) + ½ 1(s_t = s_r)] / (Σ_t w_t · Σ_r w_r),

    computed in O(n log n) by sorting the scores; 0.5 means g cannot tell the weighted
    reference from the target. Weights must be finite with positive sums; negative ones
    enter with their sign (module docstring: the value may then leave [0, 1]).

    Examples
    --------
    >>> import numpy as np
    >>> weighted_auc(target_scores=np.array([1.0, 2.0]), reference_scores=np.array([0.0, 1.0]))
    0.875
    """
    s_t = np.asarray(target_scores, dtype=np.float64).ravel()
    s_r = np.asarray(reference_scores, dtype=np.float64).ravel()
    w_t = np.ones_like(s_t) if target_weights is None else \
        np.asarray(target_weights, dtype=np.float64).ravel()
    w_r = np.ones_like(s_r) if reference_weights is None else \
        np.asarray(reference_weights, dtype=np.float64).ravel()
    for what, s, w in (("target", s_t, w_t), ("reference", s_r, w_r)):
        if s.shape != w.shape:
            raise DataError(f"weighted_auc: {what} scores {s.shape} and weights {w.shape} "
                            "differ in shape")
        if not (np.all(np.isfinite(s)) and np.all(np.isfinite(w))):
            raise DataError(f"weighted_auc: {what} scores or weights contain NaN/inf")
        if not w.sum() > 0:
            raise DataError(f"weighted_auc: the {what} weights sum to {w.sum():g}; each "
                            "sample's total weight must be positive")
    scores = np.concatenate([s_t, s_r])
    unique, inverse = np.unique(scores, return_inverse=True)
    inverse = inverse.reshape(-1)
    m = len(unique)
    wt_per = np.bincount(inverse[: len(s_t)], weights=w_t, minlength=m)
    wr_per = np.bincount(inverse[len(s_t):], weights=w_r, minlength=m)
    below = np.concatenate([[0.0], np.cumsum(wr_per)[:-1]])  # reference weight strictly below
    pairs = np.sum(wt_per * (below + 0.5 * wr_per))
    return float(pairs / (w_t.sum() * w_r.sum()))
