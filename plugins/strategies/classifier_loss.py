"""Strategy ``classifier_loss``: θ that maximises the loss of a classifier trained to
separate θ′ from the data (ensembles.md Eqs. 25–26).

For every θ′ on a grid, a classifier is trained to tell the data (label 1, θ_A = θ_data)
from a synthetic sample at θ′ (label 0, θ_B = θ′); its trained loss value is the score
of θ′, and θ_CL = argmax_θ′ score (Eq. 25: negative losses are divergences, Table I, so
the θ′ sample closest to the data leaves the classifier with the largest loss).

Here the synthetic θ′ sample is the fit's reference sample reweighted by the frozen
parameterised reweighter, w(x, θ′)/Z(θ′), and the classifier is trained within the
family whose log-ratio is ℓ_φ(x) − ℓ_θ′(x), ℓ_θ = log w(x, θ), with one trainable
parameter φ (trained by scanning the same grid and refining with a parabola). This
family holds the optimal classifier p(x|θ_data)/p(x|θ′) whenever the data follow some
p(x|θ), so the trained loss approaches the loss minimum of Table I. The loss ``loss``
is any row of Table I; for ``mlc`` the score is −KL(θ_data ‖ θ′) and θ_CL equals the
maximum-likelihood θ (Eq. 26), other losses minimise other divergences.

The reference term of the loss does not depend on the data, so it is computed once per
grid and reused (:func:`reference_loss_table`), which makes the strategy cheap to run on
thousands of ensembles.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from scipy.special import expit, log_expit

from ratiofit.errors import DataError
from ratiofit.fitting import FitProblem, FitResult
from ratiofit.hookspecs import hookimpl
from ratiofit.options import Option
from ratiofit.plugins.strategies.regression import log_ratio_grid, theta_grid
from ratiofit.weights import kish_ess

__all__ = ["LOSS_TERMS", "ClassifierLoss", "classifier_loss_estimate", "data_loss_table",
           "parabola_extremum", "reference_loss_table"]

Term = Callable[[np.ndarray], np.ndarray]

#: Table I: loss name → (A, B) as functions of the log-ratio ℓ at the loss' optimal output
#: (BCE, MSE: f = σ(ℓ); square root, MLC: f = e^ℓ), so that L[f] = −∫ (p_A A(f) + p_B B(f))
#: (Eq. 5).
LOSS_TERMS: dict[str, tuple[Term, Term]] = {
    "bce": (lambda lw: log_expit(lw), lambda lw: log_expit(-lw)),
    "mse": (lambda lw: -(1.0 - expit(lw)) ** 2, lambda lw: -expit(lw) ** 2),
    "sqrt": (lambda lw: -np.exp(-0.5 * lw), lambda lw: -np.exp(0.5 * lw)),
    "mlc": (lambda lw: lw, lambda lw: 1.0 - np.exp(lw)),
}


def reference_loss_table(*, loss: str, reference_log_ratio: np.ndarray,
                         reference_weights: np.ndarray | None = None) -> np.ndarray:
    """R[j, k] = −⟨B(ℓ_k − ℓ_j)⟩ over the reference reweighted to θ′_j, ``[K, K]``.

    ``reference_log_ratio`` is ``[n_r, K]`` = log w(x, θ_k) on the reference events;
    ``reference_weights`` their event weights, negative ones included (the average is the
    signed weighted mean Σ w₀ w_j B / Σ w₀ w_j, which must have a positive denominator).
    """
    _, b_term = LOSS_TERMS[loss]
    lw = np.asarray(reference_log_ratio, dtype=np.float64)
    w = np.ones(len(lw)) if reference_weights is None else np.asarray(reference_weights)
    table = np.empty((lw.shape[1], lw.shape[1]))
    for j in range(lw.shape[1]):
        wt = w * np.exp(lw[:, j] - lw[:, j].max())
        if not wt.sum() > 0:
            raise DataError(f"classifier_loss: the reference reweighted to grid point {j} "
                            "has a total weight that is not positive")
        table[j] = -(wt / wt.sum()) @ b_term(lw - lw[:, [j]])
    return table


def data_loss_table(*, loss: str, data_log_ratio: np.ndarray,
                    data_weights: np.ndarray | None = None) -> np.ndarray:
    """D[..., j, k] = −⟨A(ℓ_k − ℓ_j)⟩ over the data events; ``[..., n, K]`` → ``[..., K, K]``."""
    a_term, _ = LOSS_TERMS[loss]
    lw = np.asarray(data_log_ratio, dtype=np.float64)
    w = np.ones(lw.shape[:-1]) if data_weights is None else np.asarray(data_weights, float)
    w = w / w.sum(axis=-1, keepdims=True)
    diff = lw[..., None, :] - lw[..., :, None]  # [..., n, j, k]
    return np.asarray(-np.einsum("...i,...ijk->...jk", w, a_term(diff)))


def parabola_extremum(values: np.ndarray, *, grid: np.ndarray, maximum: bool
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Refine the best point of ``values [..., K]`` on an evenly spaced 1-D ``grid`` with a
    parabola through it and its neighbours (kept on the grid point at the edges or when
    the parabola has the wrong curvature).

    Returns position, value and second derivative at the extremum, each ``[...]``.
    """
    v = np.asarray(values, dtype=np.float64)
    sign = -1.0 if maximum else 1.0
    best = np.argmin(sign * v, axis=-1)
    inner = np.clip(best, 1, v.shape[-1] - 2)
    left = np.take_along_axis(v, (inner - 1)[..., None], axis=-1)[..., 0]
    mid = np.take_along_axis(v, inner[..., None], axis=-1)[..., 0]
    right = np.take_along_axis(v, (inner + 1)[..., None], axis=-1)[..., 0]
    step = float(grid[1] - grid[0])
    second = (left - 2 * mid + right) / step ** 2
    slope = (right - left) / (2 * step)
    good = (best == inner) & (sign * second > 0)
    shift = np.where(good, -slope / np.where(good, second, 1.0), 0.0)
    shift = np.clip(shift, -step, step)
    at_best = np.take_along_axis(v, best[..., None], axis=-1)[..., 0]
    position = np.where(good, grid[inner] + shift, grid[best])
    value = np.where(good, mid + slope * shift + 0.5 * second * shift ** 2, at_best)
    return position, value, second


def classifier_loss_estimate(*, data_table: np.ndarray, reference_table: np.ndarray,
                             grid: np.ndarray) -> dict[str, np.ndarray]:
    """Score(θ′_j) = min_φ L(θ′_j, φ) and θ_CL = argmax_j Score (Eq. 25) on a 1-D grid.

    ``data_table`` is ``[..., K, K]``; returns ``theta`` ``[...]``, ``score`` ``[..., K]``
    and ``curvature`` (second derivative of the score at θ_CL).
    """
    total = np.asarray(data_table) + np.asarray(reference_table)
    _, score, _ = parabola_extremum(total, grid=grid, maximum=False)  # train φ
    theta, _, curvature = parabola_extremum(score, grid=grid, maximum=True)
    return {"theta": theta, "score": score, "curvature": curvature}


class ClassifierLoss:
    """θ_CL of ensembles.md Eq. 25 with a classifier family built on the reweighter."""

    name = "classifier_loss"
    options: Mapping[str, Option] = {
        "loss": Option(kind="str", default="mlc", choices=sorted(LOSS_TERMS),
                       doc="Table I loss of the θ′-vs-data classifier (mlc: θ_CL = θ_ML)"),
        "points": Option(kind="int", default=41, minimum=3,
                         doc="grid points for θ′ and for the classifier parameter φ"),
    }

    def fit(self, *, problem: FitProblem, options: Mapping[str, Any]) -> FitResult:
        """Scan θ′, train the classifier at each point, return the loss-maximising θ′."""
        names = problem.parameters.names
        if len(names) != 1:
            raise DataError(f"classifier_loss fits one parameter, got {names}")
        if problem.reference is None:
            raise DataError("classifier_loss needs the fit's reference sample (the θ′ samples "
                            "are the reweighted reference)")
        grid = theta_grid(parameters=problem.parameters, points=options["points"])
        lw_data = log_ratio_grid(reweighter=problem.reweighter, events=problem.data, grid=grid,
                                 names=names, fixed=problem.fixed)
        lw_ref = log_ratio_grid(reweighter=problem.reweighter, events=problem.reference,
                                grid=grid, names=names, fixed=problem.fixed)
        ref_table = reference_loss_table(loss=options["loss"], reference_log_ratio=lw_ref,
                                         reference_weights=problem.reference.event_weights)
        data_table = data_loss_table(loss=options["loss"], data_log_ratio=lw_data,
                                     data_weights=problem.data.event_weights)
        est = classifier_loss_estimate(data_table=data_table, reference_table=ref_table,
                                       grid=grid[:, 0])
        n_eff = kish_ess(problem.data.event_weights)
        curvature = float(est["curvature"])
        step = float(grid[1, 0] - grid[0, 0])
        best = int(np.argmax(est["score"]))
        # A maximum on the grid's edge (or a flat score) has no curvature error: the fit is
        # marked invalid and its error is the grid step.
        inside = 0 < best < len(grid) - 1 and curvature < 0
        error = float(1.0 / np.sqrt(-n_eff * curvature)) if inside else step
        name = names[0]
        return FitResult(
            strategy=self.name, names=[name], values={name: float(est["theta"])},
            errors={name: error}, covariance=[[error ** 2]],
            objective_min=float(-np.max(est["score"])), valid=inside, n_evaluations=len(grid),
            extra={"loss": options["loss"], "grid": grid[:, 0].tolist(),
                   "maximum_inside_grid": inside,
                   "score": np.asarray(est["score"]).tolist(),
                   "error_meaning": "1/sqrt(−N·score″): a likelihood error for mlc (Eq. 26), "
                   "a curvature scale for other losses"})


@hookimpl
def ratiofit_strategies() -> list[Any]:
    return [ClassifierLoss()]
