"""Protocols that plugin objects satisfy (structural typing, no base class required).

The hook specifications in :mod:`ratiofit.hookspecs` return lists of these objects.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from .options import Option

if TYPE_CHECKING:
    from .fitting import FitProblem, FitResult

__all__ = ["KINDS", "Architecture", "InputSignature", "Loss", "Source", "Strategy"]

#: The plugin kinds and the hook that provides each.
KINDS: dict[str, str] = {
    "architecture": "ratiofit_architectures",
    "loss": "ratiofit_losses",
    "strategy": "ratiofit_strategies",
    "source": "ratiofit_sources",
}


@dataclass(frozen=True)
class InputSignature:
    """What a network sees: feature names with their standardisation, and θ names with
    their ranges (θ enters standardised to [-1, 1] over its range)."""

    feature_names: tuple[str, ...]
    feature_mean: tuple[float, ...]
    feature_std: tuple[float, ...]
    theta_names: tuple[str, ...]
    theta_centre: tuple[float, ...]
    theta_half_width: tuple[float, ...]

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) for k, v in self.__dict__.items()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> InputSignature:
        return cls(**{k: tuple(v) for k, v in d.items()})


@runtime_checkable
class Architecture(Protocol):
    name: str
    options: Mapping[str, Option]

    def build(self, *, signature: InputSignature, output_activation: str,
              options: Mapping[str, Any]) -> Any:
        """Return an uncompiled Keras model ``{features, theta} -> [n, 1]``."""
        ...


@runtime_checkable
class Loss(Protocol):
    name: str
    output_activation: str

    def keras_loss(self) -> Any:
        """A Keras loss (callable ``(y_true, y_pred)``; label 1 = target)."""
        ...

    def log_ratio(self, output: Any) -> Any:
        """Map network output ``[n, 1]`` to log w ``[n, 1]`` with keras.ops (numpy works too)."""
        ...


@runtime_checkable
class Strategy(Protocol):
    name: str
    options: Mapping[str, Option]

    def fit(self, *, problem: FitProblem, options: Mapping[str, Any]) -> FitResult: ...


@runtime_checkable
class Source(Protocol):
    name: str
    options: Mapping[str, Option]

    def feature_names(self, options: Mapping[str, Any]) -> Sequence[str]: ...

    def generate(self, *, n_events: int, theta: Mapping[str, np.ndarray],
                 options: Mapping[str, Any], rng: np.random.Generator) -> np.ndarray: ...
