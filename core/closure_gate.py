"""The closure gate: does the reweighted reference look like the target at the fitted θ?

A fit is only as good as the reweighting at the point it lands on. After every fit the
gate takes a held-out reference sample (never seen in training) reweighted to θ̂ and a
target sample at θ̂ (generated there when the source can; otherwise the varied sample's
events within a window around θ̂), and runs two kinds of test:

* per feature, χ² between the unit-normalised histograms with Σw² variances, on ndf − 1
  degrees of freedom (the normalisation removes one);
* a classifier two-sample test: a logistic regression on the standardised features and
  their pairwise products (quadratic terms: it sees shifts of means, widths and
  correlations) is trained on one half of both samples and its weighted AUC measured on
  the other half; under the null hypothesis the AUC is 1/2 with variance
  (1/n₀ + 1/n₁)/12 in Kish effective numbers (Mann–Whitney), tested one-sided.

* the score test, aimed at the fitted parameters: with s(x) = ∂_θ log w(x, θ̂), a
  reweighting that reproduces the target has E_target[s] = E_reference[w s] / E_reference[w].
  The difference Δ, divided by the Fisher information I = Cov_target(s), is the bias
  b = I⁻¹ Δ the reweighting at θ̂ implies for θ (in the parameter's own units; its
  statistical error from both samples is I⁻¹ C I⁻¹). It is tested against the error
  budget's reweighter component R: χ² = bᵀ (R + I⁻¹ C I⁻¹)⁻¹ b on p degrees of freedom.
  A failure means the learned ratio is off at θ̂ by more than its stated error.

Event weights (the reference's times w(x, θ̂), the target's) enter every test with their
sign: the histograms' contents and Σw² variances, the logistic regression's loss, the
weighted AUC and the score means; the effective numbers are Kish's (Σw)²/Σw² of the
signed weights (:mod:`ratiofit.weights`).

The tests share a family-wise level ``level`` (Bonferroni). The result states the gate's
power: the AUC excess it detects with 50 % probability, and the mean shift of a
unit-width feature that this excess corresponds to (AUC = Φ(δ/√2) for two unit
Gaussians), also in units of the statistical error of a location parameter measured on
``n_data`` events. A gate that cannot detect biases of several statistical errors says so.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> a, b = rng.normal(size=2000), rng.normal(size=2000)
>>> round(weighted_auc(target_scores=a, reference_scores=b), 1)
0.5
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from .auc import weighted_auc
from .events import EventSet
from .weights import kish_ess, variance_of_mean

__all__ = ["chi2_between", "closure_gate", "reweighted_histograms"]


def _design(z: np.ndarray) -> np.ndarray:
    d = z.shape[1]
    cols = [np.ones(len(z)), *z.T]
    if d <= 12:  # pairwise products: 1 + d + d(d+1)/2 columns
        cols += [z[:, i] * z[:, j] for i in range(d) for j in range(i, d)]
    return np.column_stack(cols)


def _logistic(x: np.ndarray, y: np.ndarray, w: np.ndarray, ridge: float = 1e-6) -> np.ndarray:
    """Weighted logistic regression by Newton–Raphson (IRLS); a tiny ridge keeps it finite."""
    from scipy.special import expit

    beta = np.zeros(x.shape[1])
    for _ in range(25):
        p = expit(x @ beta)
        grad = x.T @ (w * (p - y)) + ridge * beta
        hess = (x * (w * p * (1 - p))[:, None]).T @ x + ridge * np.eye(x.shape[1])
        step = np.linalg.solve(hess, grad)
        beta -= step
        if np.max(np.abs(step)) < 1e-8:
            break
    return beta


def _classifier_test(ref_x: np.ndarray, ref_w: np.ndarray, tgt_x: np.ndarray,
                     tgt_w: np.ndarray, rng: np.random.Generator) -> dict[str, Any]:
    x = np.concatenate([ref_x, tgt_x])
    y = np.concatenate([np.zeros(len(ref_x)), np.ones(len(tgt_x))])
    w = np.concatenate([ref_w / ref_w.sum(), tgt_w / tgt_w.sum()]) * len(y) / 2
    half = rng.random(len(y)) < 0.5
    mean = x[half].mean(axis=0)
    std = x[half].std(axis=0)
    z = (x - mean) / np.where(std > 0, std, 1.0)
    design = _design(z)
    beta = _logistic(design[half], y[half], w[half])
    test = ~half
    score = design[test] @ beta
    yt, wt = y[test], w[test]
    auc = weighted_auc(target_scores=score[yt == 1], reference_scores=score[yt == 0],
                       target_weights=wt[yt == 1], reference_weights=wt[yt == 0])
    n0 = kish_ess(w[test][y[test] == 0])
    n1 = kish_ess(w[test][y[test] == 1])
    sigma = float(np.sqrt((1 / n0 + 1 / n1) / 12))
    return {"auc": auc, "auc_null_sigma": sigma, "n_eff_reference": n0, "n_eff_target": n1}


def reweighted_histograms(reference: EventSet, target: EventSet, weights: np.ndarray,
                          bins: int = 40, min_effective_entries: float = 0.0
                          ) -> list[dict[str, Any]]:
    """Per feature: nominal, reweighted nominal and target histograms (unit-normalised,
    Σw² variances) with the χ²/ndf of reweighted vs target and of nominal vs target.

    ``min_effective_entries`` leaves out of the χ² the bins where either histogram has
    fewer Kish effective entries (Σw)²/Σw²: there a handful of large weights make the Σw²
    variance itself unreliable (measured: an exact ratio's reweighted tail bin with a
    pull of −5 on 4·10⁴ events)."""
    import hist

    w_ref = reference.event_weights
    out = []
    for j, name in enumerate(reference.feature_names):
        xt = target.features[:, j]
        lo, hi = np.quantile(xt, [0.001, 0.999])
        if np.all(xt == np.round(xt)) and hi - lo < 4 * bins:
            # Counts (multiplicities): one bin per integer, so no bin straddles two values.
            axis: Any = hist.axis.Regular(int(hi - lo) + 1, float(lo) - 0.5, float(hi) + 0.5,
                                          name=name)
        else:
            axis = hist.axis.Regular(bins, float(lo), float(hi), name=name)
        hs = {}
        for key, vals, wts in (("nominal", reference.features[:, j], w_ref),
                               ("reweighted", reference.features[:, j], w_ref * weights),
                               ("target", xt, target.event_weights)):
            h = hist.Hist(axis, storage=hist.storage.Weight())
            h.fill(vals, weight=wts / wts.sum())
            hs[key] = h
        chi2, ndf = chi2_between(hs["reweighted"], hs["target"],
                                 min_effective_entries=min_effective_entries)
        chi2_nominal, ndf_nominal = chi2_between(hs["nominal"], hs["target"])
        out.append({"feature": name, "edges": axis.edges.tolist(),
                    **{f"{k}_values": h.values().tolist() for k, h in hs.items()},
                    **{f"{k}_variances": h.variances().tolist() for k, h in hs.items()},
                    "chi2": chi2, "ndf": ndf, "chi2_ndf": chi2 / max(ndf, 1),
                    "chi2_ndf_nominal": chi2_nominal / max(ndf_nominal, 1)})
    return out


def chi2_between(a: Any, b: Any, *, min_effective_entries: float = 0.0) -> tuple[float, int]:
    """χ² between two unit-normalised weighted histograms over bins with entries (Σw²),
    leaving out bins with fewer than ``min_effective_entries`` effective entries."""
    var = a.variances() + b.variances()
    ok = var > 0
    if min_effective_entries > 0:
        with np.errstate(divide="ignore", invalid="ignore"):
            for h in (a, b):
                n_eff = np.where(h.variances() > 0, h.values()**2 / h.variances(), 0.0)
                ok &= n_eff >= min_effective_entries
    return float(np.sum((a.values() - b.values())[ok] ** 2 / var[ok])), int(ok.sum())


def score_test(*, reweighter: Any, reference: EventSet, target: EventSet,
               theta: Mapping[str, float], names: list[str], weights: np.ndarray,
               reweighter_covariance: np.ndarray, stat_errors: np.ndarray) -> dict[str, Any]:
    """The implied bias b = I⁻¹ Δ of the fitted parameters ``names`` and its χ² against the
    reweighter covariance (module docstring)."""
    from scipy.stats import chi2 as chi2_dist

    cols = [reweighter.theta_names.index(n) for n in names]
    _, g_r = reweighter.log_ratio_and_gradient(features=reference, theta=dict(theta))
    _, g_t = reweighter.log_ratio_and_gradient(features=target, theta=dict(theta))
    s_r, s_t = g_r[:, cols], g_t[:, cols]
    a = weights * reference.event_weights
    a = a / a.sum()
    b_w = target.event_weights / target.event_weights.sum()
    m_r, m_t = a @ s_r, b_w @ s_t
    c_t = ((s_t - m_t).T * b_w) @ (s_t - m_t)
    # Variances of the two weighted means (delta method for the self-normalised one; right
    # for signed weights too: ratiofit.weights.variance_of_mean).
    v_t = np.atleast_2d(variance_of_mean(s_t, b_w))
    v_r = np.atleast_2d(variance_of_mean(s_r, a))
    fisher_inv = np.linalg.inv(np.atleast_2d(c_t))
    bias = fisher_inv @ (m_t - m_r)
    cov_b = fisher_inv @ (v_t + v_r) @ fisher_inv
    total = np.asarray(reweighter_covariance, dtype=np.float64) + cov_b
    chi2 = float(bias @ np.linalg.solve(total, bias))
    return {"test": "score", "names": names, "implied_bias": bias.tolist(),
            "implied_bias_error": np.sqrt(np.diag(cov_b)).tolist(),
            "implied_bias_stat_errors": (bias / stat_errors).tolist(),
            "reweighter_errors": np.sqrt(np.diag(reweighter_covariance)).tolist(),
            "chi2": chi2, "ndf": len(names),
            "p_value": float(chi2_dist.sf(chi2, len(names)))}


def closure_gate(*, reweighter: Any, reference: EventSet, target: EventSet,
                 theta: Mapping[str, float], level: float, n_data: float, seed: int,
                 target_method: str = "generated", fitted: list[str] | None = None,
                 reweighter_covariance: Any = None, stat_errors: Any = None
                 ) -> dict[str, Any]:
    """Test the reweighting of ``reference`` to ``theta`` against ``target``.

    ``fitted`` (with the error budget's ``reweighter_covariance`` and ``stat_errors``)
    adds the score test of those parameters. Returns the verdict (``pass``/``fail``),
    every test with its statistic and p-value, and the gate's power (module docstring).
    """
    from scipy.stats import chi2 as chi2_dist
    from scipy.stats import norm

    w = reweighter.weights(features=reference, theta=dict(theta))
    if not np.all(np.isfinite(w)):
        return {"verdict": "fail", "theta": dict(theta), "level": level,
                "reason": f"{int(np.count_nonzero(~np.isfinite(w)))} non-finite weights",
                "tests": []}
    tests: list[dict[str, Any]] = []
    # Bins with fewer than 25 effective entries leave the χ² (the Σw² variance needs them).
    for h in reweighted_histograms(reference, target, w, min_effective_entries=25):
        dof = max(h["ndf"] - 1, 1)
        tests.append({"test": f"chi2:{h['feature']}", "chi2": h["chi2"], "ndf": dof,
                      "p_value": float(chi2_dist.sf(h["chi2"], dof))})
    rng = np.random.default_rng(seed)
    c = _classifier_test(reference.features, w * reference.event_weights, target.features,
                         target.event_weights, rng)
    c["p_value"] = float(norm.sf((c["auc"] - 0.5) / c["auc_null_sigma"]))
    tests.append({"test": "classifier", **c})
    if fitted:
        p = len(fitted)
        tests.append(score_test(
            reweighter=reweighter, reference=reference, target=target, theta=theta,
            names=list(fitted), weights=w,
            reweighter_covariance=np.zeros((p, p)) if reweighter_covariance is None
            else np.asarray(reweighter_covariance),
            stat_errors=np.ones(p) if stat_errors is None else np.asarray(stat_errors)))
    threshold = level / len(tests)
    failed = [t["test"] for t in tests if t["p_value"] < threshold]
    # Power: the AUC excess found with probability 1/2 at the per-test level.
    d_auc = float(norm.isf(threshold) * c["auc_null_sigma"])
    shift = float(np.sqrt(2) * norm.ppf(min(0.5 + d_auc, 1 - 1e-12)))
    power: dict[str, Any] = {
        "detectable_auc_excess": d_auc, "detectable_mean_shift_sd": shift,
        "detectable_bias_stat_errors": shift * float(np.sqrt(n_data)),
        "meaning": "50% detection probability at the per-test level; the shift of a "
                   "unit-width feature's mean, and that shift in statistical errors of a "
                   "location parameter fitted to the data"}
    score = [t for t in tests if t["test"] == "score"]
    if score:
        st = np.ones(len(fitted or [])) if stat_errors is None else np.asarray(stat_errors)
        power["score_detectable_bias_stat_errors"] = (
            norm.isf(threshold / 2) * np.asarray(score[0]["implied_bias_error"]) / st).tolist()
    return {
        "verdict": "fail" if failed else "pass", "failed": failed, "theta": dict(theta),
        "level": level, "per_test_level": threshold, "target": target_method,
        "n_reference": len(reference), "n_target": len(target),
        "ess_reference": kish_ess(w * reference.event_weights), "tests": tests,
        "power": power}
