"""The refit correction of a likelihood fit: solve f(v) = v̂ with simulated data.

A likelihood fit whose model holds a learned piece (a reweighter's θ dependence, a trained
density ratio) finds v̂ where the *learned* model matches the data. Where the learned piece
is off near v̂, every v̂ moves by the same amount whatever the data statistics, and the
bootstrap replicas of the learned piece cannot see it (the bias is common to every training
of the same network on the same number of events). Where the sources can simulate, the
same model fitted to **simulated data at a point v** (data with the expectation of the
fitted model at v, from the true simulator) gives f(v); f(v) − v is the model's bias at v.
The corrected value v* solves f(v*) = v̂ (a parametric-bootstrap bias correction): it is
the point whose simulation the learned model fits to the data's values.

:func:`solve_refit_correction` finds it from v = v̂, one simulation per step (the caller
keeps the same seeds every step, so that steps differ by v alone), with Broyden's secant
Jacobian of f (:func:`ratiofit.correction.secant_jacobian`): one step where the bias is
constant near v̂, a few where it grows with the parameters or where the learned model's fit
sits at a bound. No step moves a parameter by more than :data:`MAX_STEP_ERRORS` of its
errors; it stops when a step would move every parameter by less than a fifth of its error,
or after :data:`MAX_STEPS` simulations (``converged`` False, and the last step's size is
then part of the correction's error).

A learned fit that ends on a parameter's range limit is the case where the learned model
follows that parameter too weakly (measured on ``specs/inference_analysis.yaml`` at
``--scale 0.25``, pyhf: the learned width fit ran to its limit whenever the truth was more
than 1.3 prior widths from nominal). There f is flat: every v between the limit and some
edge e gives f(v) on the limit, so f(v) = v̂ has no unique solution and the secant steps
cannot move. :func:`solve_refit_correction` then finds e (simulations moving that
parameter inwards by 1/16, 1/8, 1/4, 1/2 of its range until the simulated fit leaves the
limit, and one bisection) and reports the middle of [limit, e] with half its length as an
error component (``at_limit``), the parameter then held there while the others are solved.
The others' solution depends on the held value (the POI on the background's width, say):
it is solved again with the held parameter at e, and the shift is one more error component
of each (``at_limit[name]["shift"]``).

A simulated fit that lands on a range limit (or a POI's bound) while the learned fit is
not on it meets the same flat piece from the side: f(v) − v̂ there understates the way to
the solution, Broyden's update from it flattens J, and steps of that size crawled along
it (on the clipped maps of tests/test_refit_correction.py, 13 of 63 solves had not
converged after :data:`MAX_STEPS`). Such a step goes :data:`MAX_STEP_ERRORS` errors
towards the solution, J's row is not updated from it, and once simulations lie on both
sides the steps stay within that bracket: its middle until two simulations off the limit
have measured a secant, the secant's step where it lands inside (a safeguarded secant,
:data:`LIMIT_EXTRA_STEPS` more simulations allowed). Elsewhere the secant is as it was.

A POI's physical bound (μ ≥ 0) is the same flat piece of f where the learned model biases
the POI towards it: every signal strength between 0 and the bias then gives a learned fit
at 0. Measured on the unbinned coverage run of ``specs/inference_analysis.yaml`` at
``--scale 0.1`` (code of 4404b20, 96 repeats with their results): the learned μ̂ sat on 0 in
17 repeats, the simulation at 0 returned to 0 in 16 of them, so the correction left μ at 0
and its interval [0, upper MINOS end] covered the truth in 1 of 17 (6 %) at 68 %, while
the other 79 repeats covered in 62 ± 5 %, pull width 1.02. There the bound is probed like a
range limit (``bounded``), in steps of the POI's fitted error (:data:`BOUND_PROBES`, the
range's width being arbitrary), and ``at_limit[name]["kind"]`` is ``"bound"``. The
interval of a parameter on a limit (:meth:`RefitCorrection.interval`) runs from the limit
to e plus the learned interval's side beyond the limit: the learned fit's upper end u maps
to about e + u, where f leaves the flat piece. An unbiased model leaves the bound at the
first probe: its value moves by 1/32 of an error, its interval's upper end by 1/16.

The errors: the learned fit's error maps through the correction as J⁻¹
(:meth:`RefitCorrection.error_scale`). Where the learned fit follows a parameter less than
one-to-one it grows; where it follows more steeply (a learned dependence too weak, whose
fit's own error is larger by as much) it shrinks. The J for this is measured by probes,
one simulation per parameter of the learned model's (``learned``) from the last step's
point, along that parameter alone (a finite difference: J's column). A probe changes the
simulated fit by :data:`MEASURED_STEP` times the noise of two simulated fits'
difference (√(2/K) of an error), at the J the solve's steps suggest, so that J's noise is
a quarter of J at most; where J turns out smaller a second, longer probe follows. It goes
towards the side where the simulated fit has more room in the range, and a simulated fit
that ends on a range limit (a J cut short) sends it to the other side. The solve's own
steps are not used for this: they span several errors, where a learned dependence is not
linear, and one that reaches a range limit in f flattens J. Measured in the pyhf coverage
run of ``specs/inference_analysis.yaml`` at ``--scale 0.25`` (docs/coverage.md): with J
from every step but only to grow the error (code of 695f070), the width nuisance's
repeats away from its limits covered 97 % at 68 %, pull width 0.44; with the shrink from
the solve's large steps only (40500cd) 89 %, the rest in repeats near nominal whose steps
were too small to measure the J of 2.3 they had. The simulation's noise (the simulated
fit's covariance over K) is in the learned fit's units and maps the same way. On known
maps (tests/test_refit_correction.py) learned fits three or two times too steep,
one-to-one or half as steep cover 66-71 %, with the same seeds every step or a new draw
each (half as steep with a new draw each covered 56 % before the probes).

Its backends: the unbinned fit (:mod:`ratiofit.unbinned_correction`) and the binned pyhf
fit (:mod:`ratiofit.binned_correction`); each supplies the simulate-and-fit callable.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .correction import secant_jacobian

__all__ = ["BOUND_PROBES", "LIMIT_EXTRA_STEPS", "LIMIT_PROBES", "MAX_STEPS",
           "MAX_STEP_ERRORS", "MEASURED_STEP", "RefitCorrection",
           "correction_warnings", "limit_warnings", "solve_refit_correction"]

#: At most this many simulations (steps) in the correction.
MAX_STEPS = 6
#: Further simulations allowed where a simulated fit lands on a range limit or a bound
#: that the learned fit is not on (the steps then bisect a bracket; module docstring).
LIMIT_EXTRA_STEPS = 3
#: A step moves no parameter by more than this many of its errors.
MAX_STEP_ERRORS = 2.0
#: A probe of J changes the simulated fit by this many times the noise of a difference of
#: two simulated fits, √(2/K) of its error (K events per expected event; the same seeds
#: every step make it smaller, a source without them not): J's noise is then at most a
#: quarter of J.
MEASURED_STEP = 4.0


@dataclass
class RefitCorrection:
    """The outcome of :func:`solve_refit_correction`: per parameter (``names`` order) the
    fitted value v̂ and the corrected one (the learned model's bias b = v̂ − corrected);
    ``covariance`` the correction's own (``simulation``) covariance; the replicas'
    biases where the backend corrects replicas."""

    names: list[str]
    values: np.ndarray
    corrected: np.ndarray
    covariance: np.ndarray
    events: dict[str, int]
    events_per_expected: int
    #: the simulations: the point each was made at and the fitted values there
    steps: list[dict[str, Any]] = field(default_factory=list)
    converged: bool = False
    #: the Jacobian ∂f/∂v of the learned model's fit of simulated data, from the steps
    jacobian: np.ndarray | None = None
    #: J from the probes (:data:`MEASURED_STEP`): one where no probe measured a column,
    #: and per parameter whether a probe measured it
    measured_jacobian: np.ndarray | None = None
    measured: np.ndarray | None = None
    #: per replica its bias, ``None`` where its fit of the simulated data failed
    replica_bias: list[np.ndarray | None] = field(default_factory=list)
    #: the learned model's own bias on the simulated set the replicas' are taken on
    #: (:meth:`corrected_replica`)
    replica_reference: np.ndarray | None = None
    #: parameters whose learned fit ended on a range limit (``kind`` "range") or a POI's
    #: physical bound (``kind`` "bound") that the simulated fits keep returning to:
    #: name → {"limit", "edge"} (the data are consistent with any value between them) and
    #: "shift" (the other parameters' solution with it held at the edge;
    #: :func:`solve_refit_correction`)
    at_limit: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def bias(self) -> np.ndarray:
        return self.values - self.corrected

    def noise_covariance(self) -> np.ndarray:
        """:attr:`covariance` without the spans of the parameters on a limit (their half
        lengths squared): the simulation's noise, the steps' and the held parameters'
        shifts; :meth:`interval` places a span's ends itself."""
        cov = np.array(self.covariance, dtype=np.float64)
        for n, d in self.at_limit.items():
            i = self.names.index(n)
            cov[i, i] -= (0.5 * (float(d["edge"]) - float(d["limit"]))) ** 2
        return cov

    def noise_error(self, name: str) -> float:
        """The standard error of ``name`` from :meth:`noise_covariance` (the correction's
        share that :meth:`interval` adds in quadrature)."""
        k = self.names.index(name)
        return float(np.sqrt(max(self.noise_covariance()[k, k], 0.0)))

    def interval(self, name: str, *, learned: tuple[float, float], z: float,
                 extra: float = 0.0) -> tuple[float, float]:
        """The corrected interval of ``name`` from the learned fit's interval ``learned``
        (around its fitted value, at the confidence of ``z`` standard errors): each side's
        distance mapped through the correction (:meth:`error_scale`) and combined in
        quadrature with ``z``·``extra`` (the other error components' standard error, as
        the caller counts them), placed around the corrected value; for a parameter on a
        limit (:attr:`at_limit`) around the span [limit, edge] instead (module
        docstring). Not clipped to any bound (the caller's)."""
        k = self.names.index(name)
        g = float(self.error_scale()[k])
        v = float(self.values[k])
        below = float(np.hypot(g * (v - learned[0]), z * extra))
        above = float(np.hypot(g * (learned[1] - v), z * extra))
        if name in self.at_limit:
            ends = sorted((float(self.at_limit[name]["limit"]),
                           float(self.at_limit[name]["edge"])))
            return ends[0] - below, ends[1] + above
        c = float(self.corrected[k])
        return c - below, c + above

    def error_scale(self) -> np.ndarray:
        """Per parameter, how the learned fit's error maps through the correction:
        abs((J⁻¹)ᵢᵢ) in [1/3, 3] (beyond, the steps did not determine J; ``jacobian``
        shows it), J from the probes that :attr:`measured` it above the noise.
        It grows the error where the learned fit follows the parameter less than
        one-to-one; where it follows more steeply (a learned dependence too weak: the
        fit's own error is larger by as much) it shrinks it. A parameter not measured
        (held on a limit, or no room for a probe) only grows, by every step's J."""
        return _error_scale(len(self.names), self.jacobian, self.measured_jacobian,
                            self.measured)

    def corrected_replica(self, values: np.ndarray, bias: np.ndarray) -> np.ndarray:
        """A bootstrap replica's corrected values, from its fitted ``values`` and its
        ``bias`` on the simulated set of :attr:`replica_reference`: the corrected value
        plus the replica's difference from the learned model in one-step corrected values
        (v̂ᵣ − bᵣ against v̂ − b), mapped through J⁻¹ (:meth:`error_scale`) as the data's
        error is. In a linear f that is the replica's own solution, c_r − c =
        J⁻¹[(v̂ᵣ − fᵣ(p)) − (v̂ − f(p))], with the replica's J the learned model's. Unmapped,
        the replicas' spread stays in the learned fit's units: a learned dependence
        twice too steep would double it.

        >>> c = RefitCorrection(names=["a"], values=np.array([1.0]),
        ...                     corrected=np.array([0.5]), covariance=np.zeros((1, 1)),
        ...                     events={}, events_per_expected=10,
        ...                     measured_jacobian=np.array([[2.0]]),
        ...                     measured=np.array([True]),
        ...                     replica_reference=np.array([0.5]))
        >>> round(float(c.corrected_replica(np.array([1.4]), np.array([0.6]))[0]), 12)
        0.65
        """
        reference = np.zeros(len(self.names)) if self.replica_reference is None \
            else self.replica_reference
        own = np.asarray(values, dtype=np.float64) - np.asarray(bias, dtype=np.float64)
        return self.corrected + self.error_scale() * (own - (self.values - reference))

    def to_dict(self) -> dict[str, Any]:
        err = np.sqrt(np.clip(np.diag(self.covariance), 0.0, None))
        return {"applied": True, "events": self.events,
                "events_per_expected": self.events_per_expected, "converged": self.converged,
                "steps": self.steps, "error_scale": self.error_scale().tolist(),
                "jacobian": None if self.jacobian is None else self.jacobian.tolist(),
                "measured": None if self.measured is None else
                [bool(m) for m in self.measured],
                "measured_jacobian": None if self.measured_jacobian is None else
                self.measured_jacobian.tolist(),
                "parameters": {n: {"fitted": float(v), "bias": float(v - c),
                                   "corrected": float(c), "error": float(e)}
                               for n, v, c, e in zip(self.names, self.values, self.corrected,
                                                     err, strict=True)},
                "replica_bias": [None if b is None else b.tolist()
                                 for b in self.replica_bias],
                "replica_reference": None if self.replica_reference is None
                else self.replica_reference.tolist(),
                "at_limit": self.at_limit}


def _inverse_diagonal(jacobian: np.ndarray | None, p: int) -> np.ndarray:
    """abs((J⁻¹)ᵢᵢ), 1 where J is missing, singular or the entry not finite."""
    if jacobian is None:
        return np.ones(p)
    try:
        d = np.abs(np.diag(np.linalg.inv(jacobian)))
    except np.linalg.LinAlgError:
        return np.ones(p)
    return np.where(np.isfinite(d), d, 1.0)


def _error_scale(p: int, jacobian: np.ndarray | None, measured_jacobian: np.ndarray | None,
                 measured: np.ndarray | None) -> np.ndarray:
    """:meth:`RefitCorrection.error_scale` of ``p`` parameters: from the measuring J
    (the probes above the noise) where it was measured, in [1/3, 3]; elsewhere
    grown (never shrunk) by every step's J, as the solve used it."""
    grow = np.clip(_inverse_diagonal(jacobian, p), 1.0, 3.0)
    if measured is None:
        return grow
    return np.where(measured, np.clip(_inverse_diagonal(measured_jacobian, p), 1 / 3, 3.0),
                    grow)


#: ``simulate_fit(point)`` → (the learned model's fitted values of data simulated at
#: ``point``, their covariance, the events drawn per component)
SimulateFit = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray, dict[str, int]]]


def solve_refit_correction(*, names: Sequence[str], fitted: np.ndarray, errors: np.ndarray,
                           lower: np.ndarray, upper: np.ndarray, simulate_fit: SimulateFit,
                           events_per_expected: int, range_limited: Sequence[str] = (),
                           bounded: Sequence[str] = (), learned: Sequence[str] | None = None
                           ) -> RefitCorrection:
    """Solve f(v) = v̂ (module docstring) for ``fitted`` = v̂ with ``errors`` its errors;
    the simulations are made at v within [``lower``, ``upper``] (a POI below its bound is
    simulated at the bound: no negative yields). The correction's covariance is the last
    simulated fit's over ``events_per_expected`` (its events per expected event: the
    weighted events' covariance I⁻¹·(Σw²/Σw) with equal weights 1/K, bounded by the fit's
    covariance over K because constraints add curvature but no noise), plus the last
    step's size where the steps did not converge. ``simulate_fit``'s errors propagate.
    ``range_limited`` names the parameters whose limits are the range a learned model was
    trained on (a reweighter nuisance's θ range), where a fit on the limit is resolved by
    probes (module docstring); ``bounded`` the POIs, whose lower and upper limits are
    physical bounds probed in steps of their ``errors`` (:data:`BOUND_PROBES`).
    ``learned`` names the parameters whose dependence the learned model carries (``None``:
    all); J along the others is one by construction, along these it is measured by probe
    simulations (module docstring)."""
    p = len(names)
    fitted = np.asarray(fitted, dtype=np.float64)
    errors = np.asarray(errors, dtype=np.float64)
    scale = np.where(errors > 0, errors, np.inf)
    steps: list[dict[str, Any]] = []
    start = fitted.copy()
    at_limit, frozen, half = _limits(names, fitted, errors, lower, upper, simulate_fit, start,
                                     steps, [n in set(range_limited) for n in names],
                                     [n in set(bounded) for n in names])

    # the errors' J: its learned columns measured by probes (module docstring), each
    # changing the simulated fit by at least ``threshold``, the noise of a difference of
    # two simulated fits (√(2/K) of an error) times MEASURED_STEP
    threshold = MEASURED_STEP * np.sqrt(2 / events_per_expected) * scale
    measuring_jac = np.eye(p)
    measured = np.zeros(p, dtype=bool)
    on_limit_tol = _limit_tolerance(lower, upper, errors)

    previous: tuple[np.ndarray, np.ndarray] | None = None
    # a simulated fit on a range limit or a bound that the learned fit is not on: there f
    # is flat and f(v) − v̂ only a lower bound of the way to go (module docstring)
    limited_mask = (np.isin(names, list(range_limited)) & np.isfinite(upper - lower)) | \
        np.isin(names, list(bounded))
    fitted_on_limit = np.minimum(np.abs(fitted - lower), np.abs(fitted - upper)) <= on_limit_tol

    def truncated(got: np.ndarray) -> np.ndarray:
        near = np.minimum(np.abs(got - lower), np.abs(got - upper)) <= on_limit_tol
        return limited_mask & near & ~fitted_on_limit

    def secant(at: np.ndarray, jac: np.ndarray, label: dict[str, Any]
               ) -> tuple[np.ndarray, np.ndarray, bool, np.ndarray, np.ndarray,
                          dict[str, int]]:
        """Secant steps from ``at`` (the ``frozen`` parameters held): the solution, J,
        whether it converged, the last step's size, the last covariance and counts
        (``previous`` is left at its last simulation: the probes' base)."""
        nonlocal previous
        previous = None
        moved = np.zeros(p)
        cov = np.zeros((p, p))
        counts: dict[str, int] = {}
        history: list[tuple[np.ndarray, np.ndarray]] = []  # (point, v̂ − f(point))
        cut_seen = np.zeros(p, dtype=bool)  # a simulated fit on a limit so far
        secant_rows = np.zeros(p, dtype=bool)  # rows of J a secant (off the limits) set
        n = 0
        while n < (MAX_STEPS + LIMIT_EXTRA_STEPS if cut_seen.any() else MAX_STEPS):
            n += 1
            point = np.clip(at, lower, upper)
            got, cov, counts = simulate_fit(point)
            cut = truncated(got)
            if previous is not None:
                dv, df = point - previous[0], got - previous[1]
                if float(dv @ dv) > 0:  # Broyden's update of J along the step
                    # (not of a row whose simulated fit was on a limit at either end:
                    # a flat f there is the limit's, not the learned model's)
                    keep = cut | truncated(previous[1])
                    jac = np.where(keep[:, None], jac,
                                   secant_jacobian(jac, step=dv, change=df))
                    secant_rows |= ~keep & (dv != 0)
            previous = (point, got)
            history.append((point, fitted - got))
            cut_seen |= cut
            try:
                delta = np.linalg.solve(jac, fitted - got)
            except np.linalg.LinAlgError:
                delta = fitted - got
            if not np.all(np.isfinite(delta)):
                delta = fitted - got
            # a truncated residual understates the way: the longest step towards it
            delta = np.where(cut, np.sign(fitted - got) * np.maximum(
                np.abs(delta), MAX_STEP_ERRORS * errors), delta)
            delta = np.clip(delta, -MAX_STEP_ERRORS * errors, MAX_STEP_ERRORS * errors)
            delta[frozen] = 0.0
            new = np.where(frozen, at, point + delta)
            if cut_seen.any():
                new = _within_bracket(new, history, jac, scale, ~frozen & cut_seen,
                                      secant_rows)
            moved = np.abs(new - at)
            steps.append({"at": point.tolist(), "simulated_fit": got.tolist(),
                          "next": new.tolist(), **label})
            at = new
            if np.all(moved <= 0.2 * scale):
                return at, jac, True, moved, cov, counts
        return at, jac, False, moved, cov, counts

    at, jac, converged, moved, cov, counts = secant(start, np.eye(p), {})

    def probe_column(i: int, base: np.ndarray, base_got: np.ndarray) -> None:
        """J's column along parameter ``i`` by a finite difference from ``base``: a step
        that changes the simulated fit by ``threshold`` at the J guessed from the solve's
        steps (a longer one where J turns out smaller), towards the side where the
        simulated fit has more room in the range; a simulated fit that ends on a range
        limit measures only a lower bound of J (the other direction is tried)."""
        guess = float(np.clip(abs(jac[i, i]), 1 / 3, 3.0))
        up_first = upper[i] - base_got[i] >= base_got[i] - lower[i]
        for sign in ((1.0, -1.0) if up_first else (-1.0, 1.0)):
            for _ in range(2):
                h = threshold[i] / guess
                point = base.copy()
                point[i] = np.clip(base[i] + sign * h, lower[i], upper[i])
                dv = float(point[i] - base[i])
                if abs(dv) < 0.999 * h:  # (rounding of base + h)
                    break  # no room in the range on this side
                got, _, _ = simulate_fit(point)
                steps.append({"at": point.tolist(), "simulated_fit": got.tolist(),
                              "measures": names[i]})
                if min(abs(got[i] - lower[i]), abs(got[i] - upper[i])) <= on_limit_tol[i]:
                    break  # truncated by the range: the other side
                column = (got - base_got) / dv
                if not np.all(np.isfinite(column)):
                    return
                measuring_jac[:, i] = column
                measured[i] = True
                if abs(column[i]) * h >= 0.75 * threshold[i] or guess <= 1 / 3:
                    return
                guess = float(max(abs(column[i]), 1 / 3))  # J smaller: a longer step
            if measured[i]:
                return

    if previous is not None:
        probe = np.ones(p, dtype=bool) if learned is None else \
            np.isin(names, list(learned))
        base, base_got = previous
        for i in np.flatnonzero(probe & ~frozen & (errors > 0)):
            probe_column(int(i), base, base_got)
    # the simulated fit's noise is in the learned fit's units: it maps through J⁻¹ as the
    # data's error does (a learned dependence twice too weak doubles both)
    grow = np.diag(_error_scale(p, jac, measuring_jac, measured))
    cov = grow @ (np.asarray(cov, dtype=np.float64) / events_per_expected) @ grow
    if not converged:  # still moving: the last step's size is part of the error
        cov = cov + np.diag(np.where(errors > 0, moved, 0.0) ** 2)
    cov = cov + np.diag(half ** 2)  # a limit's span (module docstring)
    for i in np.flatnonzero(frozen):
        # the others' solution moves with the held value: solved again with it at the
        # edge (half the span away), their shift is one more error component
        edge = at.copy()
        edge[i] = at_limit[names[int(i)]]["edge"]
        other, _, _, _, _, _ = secant(edge, jac, {"held_at_edge": names[int(i)]})
        shift = np.where(frozen, 0.0, other - at)
        at_limit[names[int(i)]]["shift"] = shift.tolist()
        cov = cov + np.outer(shift, shift)
    return RefitCorrection(names=list(names), values=fitted, corrected=at, covariance=cov,
                           events=counts, events_per_expected=events_per_expected,
                           steps=steps, converged=converged, jacobian=jac,
                           measured_jacobian=measuring_jac, measured=measured,
                           at_limit=at_limit)


def _within_bracket(new: np.ndarray, history: Sequence[tuple[np.ndarray, np.ndarray]],
                    jac: np.ndarray, scale: np.ndarray, bracketed: np.ndarray,
                    secant_rows: np.ndarray) -> np.ndarray:
    """``new`` with each coordinate that leaves its bracket set to the bracket's middle (a
    safeguarded secant), for the ``bracketed`` parameters (not held, and whose simulated
    fit was on a limit in one of the ``history``'s simulations); where no two
    simulations off the limits have measured a secant along it yet (``secant_rows``),
    the middle whenever there is a bracket (J there is still the identity, whose step
    from a point near a flat piece lands on it again). The bracket of parameter i is the
    nearest points on either side of the solution along i (v̂ᵢ − fᵢ of each sign, at the
    sign of Jᵢᵢ) among the simulations whose other parameters lie within half an error of
    ``new``'s. A secant from a flat piece of f (a simulated fit on a range limit)
    overshoots; it bounced between the sides of the solution in 3 of 33 inspected pyhf
    coverage repeats
    (docs/coverage.md's -0.25-aux run) and never converged. Elsewhere the secant is left
    alone: a bracket from noisy simulations (a source without common seeds) can be wrong
    by the noise, and its halving steps then stop the solve early (measured on the toys of
    tests/test_refit_correction.py, half as steep and a new draw each step: 64 % at 68 %
    with brackets everywhere, 66 % without)."""
    out = new.copy()
    free = np.isfinite(scale)
    for i in np.flatnonzero(bracketed & free):
        sign = float(np.sign(jac[i, i]))
        if sign == 0:
            continue
        others = np.ones(len(new), dtype=bool)
        others[i] = False
        below, above = -np.inf, np.inf  # where the solution lies along i
        for point, residual in history:
            if np.any(np.abs(point - new)[others & free] > 0.5 * scale[others & free]):
                continue
            side = sign * residual[i]
            if side > 0:
                below = max(below, float(point[i]))
            elif side < 0:
                above = min(above, float(point[i]))
        if np.isfinite(below) and np.isfinite(above) and below < above and \
                (not secant_rows[i] or not below < new[i] < above):
            out[i] = 0.5 * (below + above)
    return out


def _limit_tolerance(lower: np.ndarray, upper: np.ndarray, errors: np.ndarray) -> np.ndarray:
    """How close to a limit a fitted value counts as on it: a thousandth of the range
    (of the error where the range is unbounded)."""
    span = np.asarray(upper, dtype=np.float64) - np.asarray(lower, dtype=np.float64)
    return 1e-3 * np.where(np.isfinite(span), span, np.abs(errors))


#: Inward probes from a range limit, as fractions of the parameter's range.
LIMIT_PROBES = (1 / 16, 1 / 8, 1 / 4, 1 / 2)
#: Inward probes from a POI's physical bound, in units of its fitted error (a bias of
#: half an error is found by the third; one of more than four errors is reported as four).
BOUND_PROBES = (1 / 4, 1 / 2, 1.0, 2.0, 4.0)


def _limits(names: Sequence[str], fitted: np.ndarray, errors: np.ndarray, lower: np.ndarray,
            upper: np.ndarray, simulate_fit: SimulateFit, at: np.ndarray,
            steps: list[dict[str, Any]], limited: Sequence[bool], bounded: Sequence[bool]
            ) -> tuple[dict[str, dict[str, Any]], np.ndarray, np.ndarray]:
    """The parameters whose learned fit ends on a range limit or a physical bound that a
    simulation there returns to (module docstring): their edge e, ``at`` moved to the
    middle of [limit, e] (in place), the frozen mask and the half-lengths. Each simulation
    is recorded in ``steps``."""
    p = len(names)
    span = np.asarray(upper, dtype=np.float64) - np.asarray(lower, dtype=np.float64)
    tol = _limit_tolerance(lower, upper, errors)
    is_bound = np.asarray(bounded, dtype=bool) & (errors > 0)
    ok = (np.isfinite(span) & np.asarray(limited, dtype=bool)) | is_bound
    on_lower = ok & (np.abs(fitted - lower) <= tol)
    on_upper = ok & (np.abs(fitted - upper) <= tol)
    frozen = np.zeros(p, dtype=bool)
    half = np.zeros(p)
    out: dict[str, dict[str, Any]] = {}
    if not np.any(on_lower | on_upper):
        return out, frozen, half

    def probe(point: np.ndarray) -> np.ndarray:
        point = np.clip(point, lower, upper)
        got, _, _ = simulate_fit(point)
        steps.append({"at": point.tolist(), "simulated_fit": got.tolist(), "probe": True})
        return got

    first = probe(fitted.copy())
    for i in np.flatnonzero(on_lower | on_upper):
        limit = float(lower[i] if on_lower[i] else upper[i])
        inward = 1.0 if on_lower[i] else -1.0
        if abs(first[i] - limit) > tol[i]:
            continue  # the simulation leaves the limit: the ordinary steps solve it
        room = abs(float(upper[i] if on_lower[i] else lower[i]) - limit)
        distances = [m * float(errors[i]) for m in BOUND_PROBES] if is_bound[i] else \
            [f * float(span[i]) for f in LIMIT_PROBES]
        stuck, free = 0.0, None
        for d in distances:
            if d > room:
                break
            v = fitted.copy()
            v[i] = limit + inward * d
            if abs(probe(v)[i] - limit) > tol[i]:
                free = d
                break
            stuck = d
        if free is None:  # still on the limit at the last probe: the data say little
            edge_distance = stuck
        else:  # one bisection of [stuck, free], then its middle
            mid = 0.5 * (stuck + free)
            v = fitted.copy()
            v[i] = limit + inward * mid
            if abs(probe(v)[i] - limit) <= tol[i]:
                stuck = mid
            else:
                free = mid
            edge_distance = 0.5 * (stuck + free)
        edge = limit + inward * edge_distance
        at[i] = 0.5 * (limit + edge)
        half[i] = 0.5 * abs(edge - limit)
        frozen[i] = True
        out[names[int(i)]] = {"limit": limit, "edge": float(edge),
                              "kind": "bound" if is_bound[i] else "range"}
    return out, frozen, half


def limit_warnings(correction: RefitCorrection,
                   theta: Mapping[str, Callable[[float], float]] | None = None) -> list[str]:
    """One ``warning:`` line per parameter of ``correction.at_limit``, in θ units where
    ``theta`` maps its name (a nuisance's standardised value to its θ)."""
    out = []
    for n, d in correction.at_limit.items():
        to = (theta or {}).get(n, lambda v: v)
        limit, edge = float(to(d["limit"])), float(to(d["edge"]))
        if d.get("kind") == "bound":
            out.append(
                f"the learned fit of {n} ends on its bound {limit:.4g}, and data simulated "
                f"anywhere between {limit:.4g} and {edge:.4g} are fitted there too (the "
                f"learned model biases {n} towards its bound by up to {abs(edge - limit):.3g}"
                f"): {n} is reported as the middle of that span, its interval reaches from "
                f"the bound to {edge:.4g} plus the fit's upper error (train the reweighter "
                "longer or on more events)")
            continue
        out.append(
            f"the learned fit of {n} ends on its range limit {limit:.4g}, and data simulated "
            f"anywhere between {limit:.4g} and {edge:.4g} are fitted there too (the learned "
            f"model follows {n} too weakly): {n} is reported as the middle of that span, "
            "with half its length in its error (train the reweighter longer or on more "
            "events)")
    return out


def correction_warnings(correction: RefitCorrection, *, poi: str, poi_error: float,
                        inherit: str,
                        theta: Mapping[str, Callable[[float], float]] | None = None
                        ) -> list[str]:
    """The ``warning:`` lines of a stage that applied ``correction``: its parameters on a
    limit (:func:`limit_warnings`), a correction that did not converge, and a POI bias
    above half the learned fit's error ``poi_error``, whose CLs, limits and the like
    (``inherit``, e.g. "the CLs, upper limit, impacts and scan") are still the learned
    model's."""
    out = limit_warnings(correction, theta)
    if not correction.converged:
        out.append(
            f"the simulation correction did not converge in {len(correction.steps)} "
            "simulations: its last step is added to the errors (the learned model is far "
            "from the simulation here; train the reweighter longer or on more events)")
    if poi in correction.names and poi_error > 0:
        b = float(correction.bias[correction.names.index(poi)])
        if abs(b) > 0.5 * poi_error:
            out.append(
                f"the learned model biases {poi} by {b:+.3g} at the fit (simulation "
                f"correction, {b / poi_error:+.2f} of its error): the reported value and "
                f"intervals are corrected, {inherit} are the learned model's and inherit "
                "the bias (train the reweighter longer or on more events)")
    return out
