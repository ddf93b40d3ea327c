"""Named generator parameters θ.

Nothing in ratiofit depends on the positional order of parameters: a
:class:`ParameterSet` maps names to :class:`Parameter` objects, and arrays of θ values
always travel with the list of names that labels their columns.

Networks see θ standardised to its range, ``(θ - centre) / half_width`` (DESIGN.md).

Examples
--------
>>> ps = ParameterSet([Parameter(name="mu", nominal=0.0, low=-2.0, high=2.0)])
>>> ps["mu"].standardise(1.0)
0.5
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import DataError

__all__ = ["Parameter", "ParameterSet"]


@dataclass(frozen=True)
class Parameter:
    """One generator parameter.

    Parameters
    ----------
    name
        Identifier used everywhere (``mu``, ``alpha_s``).
    nominal
        The reference value θ₀.
    low, high
        The range over which reweighters are trained and fits may move.
    scale
        A typical size of variations (step size for minimisers); defaults to 1/10 of the range.
    """

    name: str
    nominal: float
    low: float
    high: float
    scale: float | None = None

    @property
    def centre(self) -> float:
        return 0.5 * (self.low + self.high)

    @property
    def half_width(self) -> float:
        return 0.5 * (self.high - self.low)

    @property
    def step(self) -> float:
        return self.scale if self.scale is not None else 0.1 * (self.high - self.low)

    def standardise(self, value: Any) -> Any:
        """Map θ to the network's input scale, [low, high] → [-1, 1]."""
        return (value - self.centre) / self.half_width

    def contains(self, value: Any) -> bool:
        v = np.asarray(value)
        return bool(np.all((v >= self.low) & (v <= self.high)))

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "nominal": self.nominal, "range": [self.low, self.high],
                "scale": self.scale}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Parameter:
        low, high = d["range"]
        return cls(name=d["name"], nominal=float(d["nominal"]), low=float(low),
                   high=float(high), scale=d.get("scale"))


@dataclass(frozen=True)
class ParameterSet:
    """An ordered, name-addressed collection of parameters."""

    parameters: tuple[Parameter, ...] = field(default_factory=tuple)

    def __init__(self, parameters: Iterable[Parameter] = ()) -> None:
        object.__setattr__(self, "parameters", tuple(parameters))
        names = [p.name for p in self.parameters]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate parameter names in {names}")

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.parameters]

    def __getitem__(self, name: str) -> Parameter:
        for p in self.parameters:
            if p.name == name:
                return p
        raise KeyError(name)

    def __contains__(self, name: object) -> bool:
        return any(p.name == name for p in self.parameters)

    def __iter__(self) -> Iterator[Parameter]:
        return iter(self.parameters)

    def __len__(self) -> int:
        return len(self.parameters)

    def subset(self, names: Iterable[str]) -> ParameterSet:
        return ParameterSet(self[n] for n in names)

    def nominal(self) -> dict[str, float]:
        return {p.name: p.nominal for p in self.parameters}

    def as_matrix(self, theta: Mapping[str, Any], n: int) -> np.ndarray:
        """Stack named θ values (scalars or per-event arrays) into ``[n, p]`` in this set's order.

        Raises :class:`DataError` when a value is missing, non-finite or outside its range.
        """
        cols = []
        for p in self.parameters:
            if p.name not in theta:
                raise DataError(f"theta: missing value for parameter '{p.name}'")
            try:
                col = np.broadcast_to(np.asarray(theta[p.name], dtype=np.float64), (n,))
            except (ValueError, TypeError):
                raise DataError(f"theta.{p.name}: expected a number or {n} values, got shape "
                                f"{np.shape(theta[p.name])}") from None
            if not np.all(np.isfinite(col)):
                raise DataError(f"theta.{p.name}: NaN or inf values")
            if not p.contains(col):
                raise DataError(
                    f"theta.{p.name}: values outside the range [{p.low}, {p.high}] "
                    f"(min {col.min():.6g}, max {col.max():.6g})")
            cols.append(col)
        return np.stack(cols, axis=1) if cols else np.zeros((n, 0))

    def to_list(self) -> list[dict[str, Any]]:
        return [p.to_dict() for p in self.parameters]

    @classmethod
    def from_list(cls, items: Iterable[Mapping[str, Any]]) -> ParameterSet:
        return cls(Parameter.from_dict(d) for d in items)
