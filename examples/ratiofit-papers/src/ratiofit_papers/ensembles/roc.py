"""Weighted ROC curves and AUC in numpy (ensembles.md Figs. 1, 5).

Label 1 = target = "positive" (the signal of ensembles.md Sec. III A), label 0 =
reference. A classifier score may be anything monotonic in the log-ratio (a logit, Σ log w
over an ensemble, …). The AUC is the weighted probability that a target example scores
above a reference one, ties counting one half (the Mann–Whitney statistic), which equals
the trapezoidal area under the ROC curve built on the distinct score values.

Weights may be negative (NLO samples): the rates are signed weighted fractions, so the
curve is that of the densities the signed samples represent in expectation, but one
sample's curve may step backwards or leave [0, 1] where negative weights sit; the AUC is
:func:`ratiofit.auc.weighted_auc` (bilinear in the weights). Each sample's total weight
must be positive.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import ndtr

from ratiofit.errors import DataError

__all__ = ["auc", "auc_standard_error", "fpr_at_tpr", "normal_scores_auc", "roc_curve"]


def _scores(name: str, scores: Any, weights: Any) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64).ravel()
    w = np.ones_like(s) if weights is None else np.asarray(weights, dtype=np.float64).ravel()
    if len(s) == 0:
        raise DataError(f"{name}: no scores")
    if w.shape != s.shape:
        raise DataError(f"{name}: {len(w)} weights for {len(s)} scores")
    if not (np.all(np.isfinite(s)) and np.all(np.isfinite(w))):
        raise DataError(f"{name}: scores or weights contain NaN/inf")
    if not w.sum() > 0:
        raise DataError(f"{name}: the weights sum to {w.sum():g}; a sample's total weight "
                        "must be positive")
    return s, w


def roc_curve(*, reference_scores: Any, target_scores: Any, reference_weights: Any = None,
              target_weights: Any = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """False- and true-positive rates at every distinct score threshold.

    Returns
    -------
    fpr, tpr, thresholds
        ``fpr[k]``/``tpr[k]``: weighted fraction of reference/target examples with score
        ≥ ``thresholds[k]``; thresholds decrease, and the curve starts at (0, 0) with an
        infinite threshold and ends at (1, 1).
    """
    s_ref, w_ref = _scores("reference", reference_scores, reference_weights)
    s_tgt, w_tgt = _scores("target", target_scores, target_weights)
    scores = np.concatenate([s_tgt, s_ref])
    positive = np.concatenate([w_tgt, np.zeros_like(w_ref)])
    negative = np.concatenate([np.zeros_like(w_tgt), w_ref])
    order = np.argsort(-scores, kind="stable")
    scores, positive, negative = scores[order], positive[order], negative[order]
    last_of_value = np.r_[np.flatnonzero(np.diff(scores) != 0), len(scores) - 1]
    tpr = np.r_[0.0, np.cumsum(positive)[last_of_value] / w_tgt.sum()]
    fpr = np.r_[0.0, np.cumsum(negative)[last_of_value] / w_ref.sum()]
    return fpr, tpr, np.r_[np.inf, scores[last_of_value]]


def auc(*, reference_scores: Any, target_scores: Any, reference_weights: Any = None,
        target_weights: Any = None) -> float:
    """Weighted area under the ROC curve, P(score_target > score_reference) + ½ P(=).

    Examples
    --------
    >>> auc(reference_scores=[0.0, 1.0], target_scores=[1.0, 2.0])
    0.875
    """
    from ratiofit.auc import weighted_auc  # the one AUC (the ROC curve's area, exactly)

    return weighted_auc(target_scores=np.asarray(target_scores, dtype=np.float64),
                        reference_scores=np.asarray(reference_scores, dtype=np.float64),
                        target_weights=target_weights, reference_weights=reference_weights)


def auc_standard_error(*, auc_value: float, n_reference: int, n_target: int) -> float:
    """Standard error of an empirical AUC (Hanley & McNeil 1982, exponential approximation).

    Used for tolerances: the AUC of n_target vs n_reference independent examples
    scatters by about this much around its expectation.
    """
    a = float(auc_value)
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    var = (a * (1 - a) + (n_target - 1) * (q1 - a * a) + (n_reference - 1) * (q2 - a * a)) \
        / (n_target * n_reference)
    return float(np.sqrt(max(var, 0.0)))


def fpr_at_tpr(*, reference_scores: Any, target_scores: Any, tpr_value: float = 0.5,
               reference_weights: Any = None, target_weights: Any = None) -> float:
    """False-positive rate at a fixed true-positive rate (ensembles.md Fig. 4 uses 50 %),
    interpolated linearly along the ROC curve."""
    fpr, tpr, _ = roc_curve(reference_scores=reference_scores, target_scores=target_scores,
                            reference_weights=reference_weights, target_weights=target_weights)
    if np.any(np.diff(tpr) < 0):
        raise DataError("fpr_at_tpr: negative target weights make this ROC curve step back "
                        "in tpr, so the fpr at a given tpr is not one number")
    return float(np.interp(tpr_value, tpr, fpr))


def normal_scores_auc(*, reference_mean: float, reference_variance: float, target_mean: float,
                      target_variance: float) -> float:
    """AUC when the score is Gaussian under each hypothesis: Φ(Δm / √(v_T + v_R)).

    For two unit Gaussians N(±ε, 1) the exact per-event log-ratio is 2εx, so the ensemble
    score Σᵢ log w(xᵢ) over N events is N(±2Nε², 4Nε²) and the optimal N-event AUC is
    Φ(ε√(2N)) (ensembles.md Sec. III A 1, "analytic" curve of Fig. 1).

    Examples
    --------
    >>> round(normal_scores_auc(reference_mean=-0.2, reference_variance=0.4,
    ...                         target_mean=0.2, target_variance=0.4), 4)
    0.6726
    """
    spread = np.sqrt(target_variance + reference_variance)
    return float(ndtr((target_mean - reference_mean) / spread))
