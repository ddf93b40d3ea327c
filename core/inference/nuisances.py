"""The parameters an unbinned fit profiles besides the signal strength, and their resolution.

* :class:`Nuisance`: a parameter θ of a :class:`~ratiofit.reweighter.Reweighter` (the
  background shape model w(x, θ) = p_b(x|θ)/p_b0(x)), with a normal constraint (θ₀, σ)
  (the auxiliary measurement) or free;
* :class:`NormFactor`: a multiplicative factor k on the background yield, constrained or
  free.

``_resolve_nuisances`` fills a nuisance's unset centre and limits from the reweighter and
holds the reweighter's other θ fixed; ``_as_events`` turns the events a cost, a
reference normalisation or a θ grid is given into an EventSet in the reweighter's
feature order. The costs that use them: :mod:`ratiofit.inference.costs`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..events import EventSet
from ..log_ratio import LogRatioModel
from .errors import InferenceError

__all__ = ["NormFactor", "Nuisance"]


@dataclass(frozen=True)
class Nuisance:
    """A reweighter parameter θ profiled in the fit.

    Parameters
    ----------
    name
        The reweighter's parameter name.
    nominal
        Constraint centre (the auxiliary measurement θ₀) and start value; ``None``: the
        reweighter's nominal value.
    sigma
        Width of the normal constraint (θ − θ₀)²/(2σ²); ``None``: free (no constraint).
    limits
        Range the minimiser may use; ``None``: the reweighter's training range (the
        network is not trusted outside it).
    """

    name: str
    nominal: float | None = None
    sigma: float | None = None
    limits: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if self.sigma is not None and not (math.isfinite(self.sigma) and self.sigma > 0):
            raise InferenceError(f"nuisance '{self.name}': constraint sigma must be a positive "
                                 f"number, got {self.sigma}")
        if self.nominal is not None and not math.isfinite(self.nominal):
            raise InferenceError(f"nuisance '{self.name}': nominal must be finite, got "
                                 f"{self.nominal}")
        if self.limits is not None:
            lo, hi = self.limits
            if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
                raise InferenceError(f"nuisance '{self.name}': limits must be finite with low < "
                                     f"high, got {self.limits}")


@dataclass(frozen=True)
class NormFactor:
    """A multiplicative factor k on the background yield, constrained N(nominal, σ) or free.

    Parameters
    ----------
    name
        Parameter name in the fit.
    sigma
        Constraint width (relative, since k is 1 at nominal); ``None``: free.
    nominal
        Constraint centre and start value.
    """

    name: str = "background_norm"
    sigma: float | None = None
    nominal: float = 1.0

    def __post_init__(self) -> None:
        if self.sigma is not None and not (math.isfinite(self.sigma) and self.sigma > 0):
            raise InferenceError(f"normalisation '{self.name}': constraint sigma must be a "
                                 f"positive number, got {self.sigma}")
        if not (math.isfinite(self.nominal) and self.nominal > 0):
            raise InferenceError(f"normalisation '{self.name}': nominal must be positive, got "
                                 f"{self.nominal}")


def _centre(nu: Nuisance) -> float:
    """The constraint centre of a resolved nuisance (always set after resolution)."""
    assert nu.nominal is not None
    return float(nu.nominal)


def _as_events(features: Any, reweighter: LogRatioModel, what: str) -> EventSet:
    """An EventSet, or an ``[n, d]`` array in the reweighter's feature order."""
    if isinstance(features, EventSet):
        return features
    x = np.asarray(features, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    names = tuple(reweighter.signature.feature_names)
    if x.ndim != 2 or x.shape[1] != len(names):
        raise InferenceError(f"{what}: features have shape {x.shape}; expected [n, {len(names)}] "
                             f"({', '.join(names)})")
    bad = int(np.count_nonzero(~np.isfinite(x)))
    if bad:
        raise InferenceError(f"{what}: features contain {bad} NaN/inf value(s)")
    return EventSet(features=x, feature_names=names, provenance={"origin": what})


def _resolve_nuisances(reweighter: LogRatioModel, nuisances: Sequence[Nuisance | str],
                       fixed: Mapping[str, float] | None
                       ) -> tuple[list[Nuisance], dict[str, float]]:
    """Fill defaults from the reweighter and check names; the other θ are held fixed."""
    out: list[Nuisance] = []
    names = reweighter.theta_names
    for n in nuisances:
        nu = Nuisance(n) if isinstance(n, str) else n
        if nu.name not in names:
            raise InferenceError(f"nuisance '{nu.name}' is not a parameter of the reweighter "
                                 f"(it has {names})")
        p = reweighter.parameters[nu.name]
        limits = nu.limits if nu.limits is not None else (p.low, p.high)
        if limits[0] < p.low or limits[1] > p.high:
            raise InferenceError(f"nuisance '{nu.name}': limits {limits} leave the reweighter's "
                                 f"range [{p.low}, {p.high}]")
        nominal = nu.nominal if nu.nominal is not None else p.nominal
        out.append(Nuisance(nu.name, nominal=nominal, sigma=nu.sigma, limits=limits))
    seen = [n.name for n in out]
    if len(set(seen)) != len(seen):
        raise InferenceError(f"nuisance names are repeated: {seen}")
    if not out:
        raise InferenceError("at least one nuisance parameter of the reweighter is needed")
    fixed_out = {p.name: p.nominal for p in reweighter.parameters if p.name not in seen}
    for k, v in (fixed or {}).items():
        if k not in names:
            raise InferenceError(f"fixed theta '{k}' is not a parameter of the reweighter "
                                 f"(it has {names})")
        if k in seen:
            raise InferenceError(f"theta '{k}' is both fixed and a nuisance")
        fixed_out[k] = float(v)
    return out, fixed_out
