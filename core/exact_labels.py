"""Training labels from the simulator's exact per-event weights (the joint ratio).

Where the reference sample (generated at θ₀) carries, for every event, the exact ratio
w_k = p(event|θ_k)/p(event|θ₀) at grid points θ_k (:attr:`ratiofit.events.EventSet.alt_weights`,
e.g. the ``pythia`` source's ``variations``), a parameterised reweighter can be trained on
those weights instead of (``labels: exact``) or besides (``labels: both``) a classification
of the reference against a generated target sample (``labels: sample``, the default).

**The rows.** Every reference event x_i is paired with every usable grid point θ_k, and
with θ₀ itself (w = 1 exactly); the row (x_i, θ_k) gets the soft label and weight

    y_ik = w_ik / (1 + w_ik),        s_ik = e_i (1 + w_ik)

(e_i the event's own weight). This is the two-class problem "class 0: the event with
weight 1, class 1: the same event with weight w_ik" folded into one row: every loss of
the form ℓ(f, y) = y A(f) + (1 − y) B(f) (BCE, MLC, the square-root loss, ``lr_direct``;
MSE up to a term free of f) contributes s_ik ℓ(f, y_ik) = e_i [w_ik A(f) + B(f)], exactly
what the two copies would. Its expectation over the events at fixed (x, θ_k) is
e [E[w|x,θ_k] A(f) + B(f)], the expected loss of a classifier of p(x|θ₀) against
E[w|x,θ_k] p(x|θ₀) = p(x|θ_k) (the exact weights' defining property, E[w_k|x] =
p(x|θ_k)/p(x|θ₀)). So every loss keeps its optimum and its output → log w map
(ensembles.md Table I) with p_T/p_R replaced by E[w|x, θ]:

- ``bce``: d = σ(f) → E[w|x,θ]/(1 + E[w|x,θ]), so the logit → log E[w|x,θ]. This is the
  cross-entropy with soft labels from the joint ratio of ALICE (Stoye, Brehmer, Louppe,
  Pavez, Cranmer, arXiv 1808.00973), with its expectation over the mixture ½(p(x,z|θ₀) +
  p(x,z|θ_k)) taken by importance sampling from θ₀ alone (the weight 1 + w).
- ``mse``: the same d, by least squares against the soft label (a Brier-score variant).
- ``lr_direct``: s ℓ = ½ (f − w)² + (a term free of f), so f → E[w|x,θ]: regression of
  the ratio itself, the "ROLR" loss of the "Mining gold" papers (Brehmer, Cranmer, Louppe,
  Pavez, arXiv 1805.00020 and 1805.12244) on the θ₀ events (their term for events of θ_k,
  (1/r − 1/r̂)², needs a sample at θ_k and is left out). Squared errors weigh a
  heavy-tailed w with w², so this estimator is noisier than the cross-entropy wherever the
  weights' effective sample size is small (1808.00973 finds the same for ROLR/RASCAL
  against ALICE); ``bce`` is the one the specs use.

The joint-score term of RASCAL/ALICES (‖t(x,z) − ∇_θ log r̂‖², 1805.12244, 1808.00973)
needs ∇_θ log p(event|θ), which a grid of ratios does not give; it is not implemented.

Compared with a classification against a target sample, the noise of the label is that
of w given x rather than that of a 0/1 label: in the local limit (w near 1) a
parameter's Fisher-information-based variance is Var(w|x)/N per grid point against
about 2/N for reference-vs-target at one θ (both samples of N events), and every event
serves every grid point; far from θ₀ the weights grow heavy-tailed and the advantage
shrinks with their effective sample size.

**Refusals.** Columns that move a parameter the reweighter is not parameterised in, or
to a value outside its range, are left out (and listed); with ``labels: exact`` a
reweighter parameter that no remaining column moves cannot be learned from the weights
and is refused (with ``both`` it is learned from the classification alone, e.g.
``alpha_s``, which PYTHIA's hadronization variations cannot weight, in a 3-D fit whose
``a_lund`` and ``prob_s_ud`` the weights cover: their rows sit at the reference's
``alpha_s``, where they are exact; a grid that moves none is refused), as is a
reference not at one θ (the weights are ratios to the θ each event was made at), and a
weight ≤ −1 (its soft label would not exist). :func:`check_grid` is the check a spec
makes from the θ a source declares (``alt_weight_theta``), :func:`exact_grid` the one on
the events.

>>> from ratiofit.parameters import Parameter, ParameterSet
>>> from ratiofit.testing import latent_gaussian_events
>>> events = latent_gaussian_events(4, mus=(0.5, 3.0), rng=np.random.default_rng(0))
>>> grid = exact_grid(events, ParameterSet([Parameter("mu", 0.0, -1.0, 1.0)]))
>>> grid.names, grid.theta[:, 0].tolist(), sorted(grid.skipped)
(('nominal', 'mu=0.5'), [0.0, 0.5], ['mu=3'])
>>> y, s = soft_labels(np.array([1.0, 3.0]))
>>> y.tolist(), s.tolist()
([0.5, 0.75], [2.0, 4.0])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import DataError
from .events import EventSet
from .parameters import ParameterSet
from .weights import kish_ess

__all__ = ["LABELS", "NOMINAL", "ExactGrid", "GridCheck", "check_grid", "describe_points",
           "exact_grid", "soft_labels"]

#: What a reweighter is trained against: the target sample, the reference's exact
#: weights, or both.
LABELS = ("sample", "exact", "both")
#: The name of the grid point at the reference's own θ (weight 1).
NOMINAL = "nominal"


@dataclass(frozen=True)
class GridCheck:
    """Which grid points a reweighter can train on: ``usable`` (indices into the points),
    ``skipped`` (index → reason) and ``uncovered`` (reweighter parameters that no usable
    point moves away from θ₀)."""

    usable: tuple[int, ...]
    skipped: Mapping[int, str]
    uncovered: tuple[str, ...]


def check_grid(points: Sequence[Mapping[str, float]], parameters: ParameterSet,
               theta0: Mapping[str, float]) -> GridCheck:
    """The grid points (each: parameter → value it moves to) usable by a reweighter in
    ``parameters`` whose reference is at ``theta0``: every parameter a point moves must be
    one of them, within its range.

    >>> from ratiofit.parameters import Parameter
    >>> ps = ParameterSet([Parameter("a", 0.0, -1.0, 1.0), Parameter("b", 0.0, -1.0, 1.0)])
    >>> c = check_grid([{"a": 0.5}, {"c": 1.0}, {"a": 2.0}], ps, {"a": 0.0, "b": 0.0})
    >>> c.usable, sorted(c.skipped), c.uncovered
    ((0,), [1, 2], ('b',))
    """
    usable: list[int] = []
    skipped: dict[int, str] = {}
    for k, point in enumerate(points):
        unknown = sorted(set(point) - set(parameters.names))
        if unknown:
            skipped[k] = (f"moves {', '.join(unknown)}, which the reweighter is not "
                          "parameterised in")
            continue
        outside = [f"{p} = {v:g} outside [{parameters[p].low:g}, {parameters[p].high:g}]"
                   for p, v in point.items() if not parameters[p].contains(v)]
        if outside:
            skipped[k] = f"{'; '.join(outside)} (the reweighter's range)"
            continue
        usable.append(k)
    moved = {p for k in usable for p, v in points[k].items()
             if not np.isclose(v, theta0[p], rtol=1e-12, atol=0.0)}
    uncovered = tuple(p for p in parameters.names if p not in moved)
    return GridCheck(usable=tuple(usable), skipped=skipped, uncovered=uncovered)


def describe_points(points: Sequence[Mapping[str, float]]) -> str:
    """``a=0.5; a=0.5,b=1`` (``none`` for no points), for messages."""
    return "; ".join(",".join(f"{p}={v:g}" for p, v in pt.items()) for pt in points) or "none"


@dataclass(frozen=True)
class ExactGrid:
    """The grid a reweighter trains on: point ``names`` (``nominal`` first: θ₀ with
    weight 1), full θ per point ``theta`` ``[K, p]`` in the parameters' order, the events'
    exact ``weights`` ``[n, K]``, θ₀, and the columns left out (name → reason)."""

    names: tuple[str, ...]
    theta: np.ndarray
    weights: np.ndarray
    theta0: Mapping[str, float]
    skipped: Mapping[str, str] = field(default_factory=dict)

    def summary(self, event_weights: np.ndarray) -> dict[str, Any]:
        """What the training's metadata records: per point its θ, mean weight and the
        Kish effective fraction of the events (the weights' information)."""
        e = event_weights
        ess_events = kish_ess(e)
        points = []
        for k, name in enumerate(self.names):
            w = self.weights[:, k]
            points.append({"name": name, "theta": self.theta[k].tolist(),
                           "mean_weight": float(np.average(w, weights=e)),
                           "ess_fraction": kish_ess(e * w) / ess_events
                           if ess_events > 0 else 0.0})
        return {"theta0": dict(self.theta0), "points": points, "skipped": dict(self.skipped)}


def _theta0(reference: EventSet, parameters: ParameterSet, origin: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for name in parameters.names:
        if name in reference.theta_names:
            col = reference.theta_matrix([name])[:, 0]
            if len(col) and np.ptp(col) > 0:
                raise DataError(f"exact-weight training: the reference {origin} varies θ "
                                f"'{name}' ({col.min():.6g} to {col.max():.6g}); its weights "
                                "are ratios to the θ each event was made at, and the "
                                "reweighter's to one θ₀: give it a reference at one θ")
            out[name] = float(col[0]) if len(col) else parameters[name].nominal
        else:
            out[name] = float(parameters[name].nominal)
    return out


def exact_grid(reference: EventSet, parameters: ParameterSet, *,
               cover_all: bool = True) -> ExactGrid:
    """The grid points of ``reference``'s exact weights that a reweighter in
    ``parameters`` trains on (module docstring), θ₀ first; a one-line
    :class:`~ratiofit.errors.DataError` where there are none, a parameter is not covered
    (``cover_all``, ``labels: exact``; else where none is: ``labels: both``), the
    reference is not at one θ or a weight is ≤ −1."""
    prov = reference.provenance or {}
    origin = str(prov.get("origin", prov.get("source", "events")))
    alt = reference.alt_weights
    if alt is None:
        raise DataError(f"exact-weight training: the reference {origin} carries no exact "
                        "per-event weights (EventSet.alt_weights); declare them at its "
                        "source, e.g. the pythia source's 'variations'")
    if not parameters.names:
        raise DataError("exact-weight training needs a parameterised reweighter (its target "
                        "sample varies no parameter)")
    theta0 = _theta0(reference, parameters, origin)
    check = check_grid(alt.theta, parameters, theta0)
    if check.uncovered if cover_all else len(check.uncovered) == len(parameters.names):
        usable = [alt.theta[k] for k in check.usable]
        raise DataError(f"exact-weight training: no exact-weight column of the reference "
                        f"{origin} moves {', '.join(check.uncovered)} (usable grid: "
                        f"{describe_points(usable)}; all: {describe_points(alt.theta)})")
    values = alt.values[:, list(check.usable)]
    if values.size and values.min() <= -1.0:
        k = int(np.argmax((values <= -1.0).any(axis=0)))
        raise DataError(f"exact-weight training: column '{alt.names[check.usable[k]]}' of the "
                        f"reference {origin} has weights <= -1 (min {values.min():.6g}), "
                        "whose soft label w/(1 + w) does not exist")
    names = (NOMINAL, *(alt.names[k] for k in check.usable))
    theta = np.array([[theta0[p] for p in parameters.names]]
                     + [[alt.theta[k].get(p, theta0[p]) for p in parameters.names]
                        for k in check.usable], dtype=np.float64)
    weights = np.concatenate([np.ones((len(reference), 1)), values], axis=1)
    return ExactGrid(names=names, theta=theta, weights=weights, theta0=theta0,
                     skipped={alt.names[k]: why for k, why in check.skipped.items()})


def soft_labels(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The soft label w/(1 + w) and the row weight 1 + w of exact weights ``w``
    (> −1; module docstring)."""
    w = np.asarray(w, dtype=np.float64)
    return w / (1.0 + w), 1.0 + w
