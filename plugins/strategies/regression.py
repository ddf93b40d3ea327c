"""Strategy ``regression``: direct regression as the posterior mean (ensembles.md Eqs. 28–29).

A parameterised per-event classifier gives f(x, θ) = p(x|θ)/p(x|θ₀) (Eq. 23); over the
N data events f_N(x⃗, θ) = Πᵢ f(xᵢ, θ) (IID, Eq. 2), summed as logs. With the prior p(θ)
that was used in training (uniform over ``prior_range``, by default each parameter's
range), Eq. 29 gives the posterior

    p(θ|x⃗) = f_N(x⃗, θ) p(θ) / ∫ dθ′ f_N(x⃗, θ′) p(θ′),

and the MSE-optimal regression is its mean (Eq. 28). The integrals are sums over an
evenly spaced grid of ``points`` per fitted parameter (the paper uses 20 points; the
grid's cell centres are used so that every cell has the same prior mass). With
``normalisation: reference`` each θ's ratio is divided by its reference mean
Z(θ) = ⟨w(x, θ)⟩_{θ₀}, so f_N is a normalised density ratio even where training left
it slightly off; ``none`` uses the raw classifier (as the paper does).

The result's ``values`` are the posterior means, ``errors`` the posterior standard
deviations and ``covariance`` the posterior covariance; ``objective_min`` is the
smallest −log posterior on the grid.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy.special import logsumexp, softmax

from ratiofit.errors import DataError
from ratiofit.fitting import FitProblem, FitResult
from ratiofit.hookspecs import hookimpl
from ratiofit.options import Option
from ratiofit.parameters import ParameterSet

__all__ = ["Regression", "ensemble_log_likelihood", "log_normalisation", "log_ratio_grid",
           "posterior_moments", "theta_grid"]


def theta_grid(*, parameters: ParameterSet, points: int,
               ranges: Mapping[str, Sequence[float]] | None = None) -> np.ndarray:
    """Cell centres of an evenly spaced grid, ``[points^p, p]`` in ``parameters`` order.

    ``ranges`` overrides a parameter's (low, high); a range outside the parameter's is
    refused because the classifier was not trained there.
    """
    axes = []
    for p in parameters:
        low, high = (ranges or {}).get(p.name, (p.low, p.high))
        if not (p.low <= low < high <= p.high):
            raise DataError(f"prior_range.{p.name}: [{low}, {high}] must be an increasing "
                            f"interval inside the parameter range [{p.low}, {p.high}]")
        edges = np.linspace(low, high, points + 1)
        axes.append(0.5 * (edges[:-1] + edges[1:]))
    return np.array(list(itertools.product(*axes)), dtype=np.float64).reshape(-1, len(axes))


def log_ratio_grid(*, reweighter: Any, events: Any, grid: np.ndarray, names: Sequence[str],
                   fixed: Mapping[str, float] | None = None) -> np.ndarray:
    """log w(xᵢ, θ_k) for every event i and grid point k, ``[n, K]``."""
    columns = []
    for row in grid:
        theta = dict(fixed or {})
        theta.update({n: float(v) for n, v in zip(names, row, strict=True)})
        columns.append(reweighter.log_ratio(features=events, theta=theta, calibrated=False))
    return np.stack(columns, axis=1)


def log_normalisation(*, reference_log_ratio: np.ndarray, reference_weights: np.ndarray | None
                      = None) -> np.ndarray:
    """log Z(θ_k) = log ⟨w(x, θ_k)⟩ over the reference sample, ``[K]`` (ensembles.md Eq. 23:
    a perfect ratio has Z = 1); with signed event weights the signed weighted mean, which
    must be positive at every θ_k."""
    lw = np.asarray(reference_log_ratio, dtype=np.float64)
    w = np.ones(len(lw)) if reference_weights is None else np.asarray(reference_weights)
    log_z, sign = logsumexp(lw, axis=0, b=(w / w.sum())[:, None], return_sign=True)
    if np.any(sign <= 0):
        k = int(np.argmax(sign <= 0))
        raise DataError(f"the reference's signed weighted mean of w(x, θ) at grid point {k} "
                        "is not positive: the ratio cannot be normalised there")
    return np.asarray(log_z)


def ensemble_log_likelihood(*, log_ratio: np.ndarray, log_norm: np.ndarray | None = None,
                            weights: np.ndarray | None = None) -> np.ndarray:
    """log f_N(x⃗, θ_k) = Σᵢ wᵢ [log w(xᵢ, θ_k) − log Z(θ_k)] for one ensemble ``[n, K]`` →
    ``[K]`` or many ensembles ``[M, n, K]`` → ``[M, K]`` (ensembles.md Eqs. 13 and 24)."""
    lw = np.asarray(log_ratio, dtype=np.float64)
    w = np.ones(lw.shape[:-1]) if weights is None else np.asarray(weights, dtype=np.float64)
    total = np.einsum("...i,...ik->...k", w, lw)
    if log_norm is not None:
        total = total - w.sum(axis=-1)[..., None] * np.asarray(log_norm)
    return np.asarray(total)


def posterior_moments(*, log_likelihood: np.ndarray, grid: np.ndarray,
                      log_prior: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Posterior mean ``[..., p]`` and covariance ``[..., p, p]`` on the grid (Eqs. 28–29).

    ``log_likelihood`` is ``[..., K]``; ``log_prior`` ``[K]`` (``None``: uniform).
    """
    logp = np.asarray(log_likelihood, dtype=np.float64)
    if log_prior is not None:
        logp = logp + np.asarray(log_prior)
    if not np.all(np.isfinite(logp)):
        raise DataError("the ensemble log-likelihood is not finite on the θ grid")
    post = softmax(logp, axis=-1)
    mean = post @ grid
    centred = grid[None, :, :] - mean.reshape(-1, 1, grid.shape[1])
    cov = np.einsum("mk,mki,mkj->mij", post.reshape(-1, grid.shape[0]), centred, centred)
    return mean, cov.reshape((*mean.shape, grid.shape[1]))


class Regression:
    """Posterior-mean regression with a parameterised per-event classifier."""

    name = "regression"
    options: Mapping[str, Option] = {
        "points": Option(kind="int", default=41, minimum=2,
                         doc="grid points per fitted parameter for the Eq. 29 integrals"),
        "prior_range": Option(kind="mapping", default={},
                              doc="parameter → [low, high] of the uniform training prior "
                              "(default: the parameter's range)"),
        "normalisation": Option(kind="str", default="reference", choices=["reference", "none"],
                                doc="divide each θ's ratio by its reference mean (needs the "
                                "fit's reference sample) or use the raw classifier"),
    }

    def fit(self, *, problem: FitProblem, options: Mapping[str, Any]) -> FitResult:
        """Posterior mean and covariance of the fitted θ given ``problem.data``."""
        names = problem.parameters.names
        unknown = sorted(set(options["prior_range"]) - set(names))
        if unknown:
            raise DataError(f"prior_range: {unknown} are not fitted parameters {names}")
        grid = theta_grid(parameters=problem.parameters, points=options["points"],
                          ranges=options["prior_range"])
        lw = log_ratio_grid(reweighter=problem.reweighter, events=problem.data, grid=grid,
                            names=names, fixed=problem.fixed)
        log_norm = None
        if options["normalisation"] == "reference":
            if problem.reference is None:
                raise DataError("regression: normalisation 'reference' needs the fit's "
                                "reference sample")
            lw_ref = log_ratio_grid(reweighter=problem.reweighter, events=problem.reference,
                                    grid=grid, names=names, fixed=problem.fixed)
            log_norm = log_normalisation(reference_log_ratio=lw_ref,
                                         reference_weights=problem.reference.event_weights)
        loglike = ensemble_log_likelihood(log_ratio=lw, log_norm=log_norm,
                                          weights=problem.data.event_weights)
        mean, cov = posterior_moments(log_likelihood=loglike, grid=grid)
        log_post = loglike - logsumexp(loglike)
        return FitResult(
            strategy=self.name, names=list(names),
            values={n: float(v) for n, v in zip(names, mean, strict=True)},
            errors={n: float(np.sqrt(cov[i, i])) for i, n in enumerate(names)},
            covariance=cov.tolist(), objective_min=float(-log_post.max()), valid=True,
            n_evaluations=len(grid),
            extra={"grid": grid.tolist(), "log_posterior": log_post.tolist(),
                   "normalisation": options["normalisation"]})


@hookimpl
def ratiofit_strategies() -> list[Any]:
    return [Regression()]
