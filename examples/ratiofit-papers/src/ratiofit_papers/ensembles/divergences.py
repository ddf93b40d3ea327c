"""Divergences and mutual information from classifier loss values (ensembles.md Table I, Sec. II E).

Each loss of Table I, L[f] = −∫ (p_A A(f) + p_B B(f)) dx (Eq. 5), evaluated at its
minimiser, is a divergence between p_A (target, label 1) and p_B (reference, label 0) up
to scale and offset. The functions here take a log-ratio estimate ℓ(x) ≈ log p_A/p_B on
held-out A and B events, map it to each loss' optimal output f(ℓ) (BCE, MSE: f = σ(ℓ);
square root, MLC: f = e^ℓ) and evaluate the loss with sample means:

- binary cross-entropy: −min L = 2(JS − log 2)          → JS = log 2 − L/2
- mean squared error:   −min L = ½(Δ − 1)               → Δ = 1 − 2L (triangular
  discrimination, Δ = ½∫(p_A − p_B)²/(p_A + p_B) ∈ [0, 1])
- square root:          −min L = 2(H² − 1)              → H² = 1 + … = 1 − L/2
  (squared Hellinger distance, H² = 1 − ∫√(p_A p_B))
- MLC:                  −min L = KL(p_A ‖ p_B)          → KL = −L (Eq. 9)

An imperfect ℓ gives a larger loss, so every estimate is biased towards "no separation"
(a variational bound). The mutual information (Eq. 30) is the KL divergence between
p(x, y) and p(x)p(y), estimated by the MLC loss of a classifier separating the two.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ratiofit.errors import DataError

# Table I's loss terms live with the product's classifier_loss strategy, which needs them
# too; re-exported here for the divergence estimates.
from ratiofit.plugins.strategies.classifier_loss import LOSS_TERMS

__all__ = ["LOSS_TERMS", "divergences_from_losses", "gaussian_pair_divergences",
           "loss_value", "mutual_information_mlc"]


def _checked(name: str, values: Any, weights: Any) -> tuple[np.ndarray, np.ndarray]:
    v = np.asarray(values, dtype=np.float64).ravel()
    w = np.ones_like(v) if weights is None else np.asarray(weights, dtype=np.float64).ravel()
    if len(v) < 2 or w.shape != v.shape:
        raise DataError(f"{name}: need ≥ 2 log-ratios with matching weights, got {len(v)} "
                        f"values and {len(w)} weights")
    if not (np.all(np.isfinite(v)) and np.all(np.isfinite(w))) or np.any(w < 0):
        raise DataError(f"{name}: log-ratios/weights must be finite (weights ≥ 0)")
    return v, w / w.sum()


def _mean_and_error(values: np.ndarray, weights: np.ndarray) -> tuple[float, float]:
    """Weighted mean and its standard error (Kish effective sample size)."""
    mean = float(np.dot(weights, values))
    var = float(np.dot(weights, (values - mean) ** 2))
    n_eff = 1.0 / float(np.sum(weights ** 2))
    return mean, float(np.sqrt(var / n_eff))


def loss_value(*, loss: str, target_log_ratio: Any, reference_log_ratio: Any,
               target_weights: Any = None, reference_weights: Any = None
               ) -> tuple[float, float]:
    """L = −⟨A(f(ℓ))⟩_target − ⟨B(f(ℓ))⟩_reference for a Table I ``loss`` (ensembles.md Eq. 5).

    Returns the value and its statistical standard error (the two sample means are
    independent).
    """
    if loss not in LOSS_TERMS:
        raise DataError(f"loss: {loss!r} is not one of {sorted(LOSS_TERMS)}")
    a_term, b_term = LOSS_TERMS[loss]
    lw_t, w_t = _checked("target_log_ratio", target_log_ratio, target_weights)
    lw_r, w_r = _checked("reference_log_ratio", reference_log_ratio, reference_weights)
    mean_a, err_a = _mean_and_error(a_term(lw_t), w_t)
    mean_b, err_b = _mean_and_error(b_term(lw_r), w_r)
    return -mean_a - mean_b, float(np.hypot(err_a, err_b))


def divergences_from_losses(*, target_log_ratio: Any, reference_log_ratio: Any,
                            target_weights: Any = None, reference_weights: Any = None
                            ) -> dict[str, dict[str, float]]:
    """Jensen–Shannon, triangular, squared Hellinger and KL from the four Table I losses.

    Returns ``{name: {"value", "error", "loss"}}``; the error is statistical only.
    """
    common = {"target_log_ratio": target_log_ratio, "reference_log_ratio": reference_log_ratio,
              "target_weights": target_weights, "reference_weights": reference_weights}
    out: dict[str, dict[str, float]] = {}
    for name, loss, scale, offset in (("jensen_shannon", "bce", -0.5, np.log(2.0)),
                                      ("triangular", "mse", -2.0, 1.0),
                                      ("hellinger_squared", "sqrt", -0.5, 1.0),
                                      ("kullback_leibler", "mlc", -1.0, 0.0)):
        value, error = loss_value(loss=loss, **common)
        out[name] = {"value": float(offset + scale * value), "error": abs(scale) * error,
                     "loss": value}
    return out


def mutual_information_mlc(*, joint_log_ratio: Any, product_log_ratio: Any,
                           joint_weights: Any = None, product_weights: Any = None
                           ) -> dict[str, float]:
    """I(X; Y) ≈ −L_MLC of a classifier separating p(x, y) (label 1) from p(x)p(y) (label 0)
    (ensembles.md Eq. 30 and Sec. II E), in nats, with its statistical error.

    ``joint_log_ratio``: ℓ(x, y) on held-out pairs from p(x, y); ``product_log_ratio``:
    ℓ on held-out pairs from p(x)p(y). For a discrete Y the product expectation may be
    taken exactly: pass every x with every label value y′ weighted by p(y′).
    """
    value, error = loss_value(loss="mlc", target_log_ratio=joint_log_ratio,
                              reference_log_ratio=product_log_ratio,
                              target_weights=joint_weights, reference_weights=product_weights)
    return {"value": -value, "error": error}


def gaussian_pair_divergences(*, mean_difference: float) -> dict[str, float]:
    """Exact divergences between N(δ/2, 1) and N(−δ/2, 1) (δ = ``mean_difference``).

    KL = δ²/2, H² = 1 − exp(−δ²/8); JS and Δ by quadrature. With a balanced binary label
    Y choosing between the two, the mutual information I(X; Y) equals JS (the reference
    curve of ensembles.md Fig. 9, where δ = 2ε).

    Examples
    --------
    >>> d = gaussian_pair_divergences(mean_difference=0.2)
    >>> round(d["kullback_leibler"], 6), round(d["hellinger_squared"], 6)
    (0.02, 0.004988)
    """
    half = 0.5 * float(mean_difference)

    def density(x: float, centre: float) -> float:
        return float(np.exp(-0.5 * (x - centre) ** 2) / np.sqrt(2 * np.pi))

    def js_integrand(x: float) -> float:
        pa, pb = density(x, half), density(x, -half)
        m = 0.5 * (pa + pb)
        return 0.5 * (pa * np.log(pa / m) + pb * np.log(pb / m)) if m > 0 else 0.0

    def tri_integrand(x: float) -> float:
        pa, pb = density(x, half), density(x, -half)
        return 0.5 * (pa - pb) ** 2 / (pa + pb) if pa + pb > 0 else 0.0

    limit = abs(half) + 12.0
    from scipy import integrate  # here: loading the plugin must stay light

    js = integrate.quad(js_integrand, -limit, limit, epsabs=1e-13, epsrel=1e-10, limit=200)[0]
    tri = integrate.quad(tri_integrand, -limit, limit, epsabs=1e-13, epsrel=1e-10, limit=200)[0]
    return {"jensen_shannon": js, "triangular": tri,
            "hellinger_squared": 1.0 - float(np.exp(-mean_difference ** 2 / 8.0)),
            "kullback_leibler": 0.5 * mean_difference ** 2}
