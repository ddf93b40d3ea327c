"""The one log-ratio protocol: what fits, inference and studies need of a learned ratio.

A :class:`~ratiofit.reweighter.Reweighter` and an
:class:`~ratiofit.reweighter.AveragedReweighter` (an ensemble's mean log w) both satisfy
it, and so does anything else with these members (an exact ratio for tests,
:func:`ratiofit.testing.analytic_gaussian_reweighter`): an ensemble average then works
wherever a single reweighter does — in the fit strategies, the pyhf templates and the
unbinned costs alike (DESIGN.md's one ratio convention: log w(x, θ) = log p(x|θ) −
log p(x|θ₀)).

>>> from ratiofit.reweighter import AveragedReweighter
>>> from ratiofit.testing import analytic_gaussian_reweighter
>>> single = analytic_gaussian_reweighter()
>>> isinstance(single, LogRatioModel)
True
>>> isinstance(AveragedReweighter(members=[single, single]), LogRatioModel)
True
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import numpy as np

from .parameters import ParameterSet
from .plugin_api import InputSignature

__all__ = ["LogRatioModel"]


@runtime_checkable
class LogRatioModel(Protocol):
    """A learned (or exact) log w(x, θ), parameterised in named θ.

    Attributes
    ----------
    parameters
        The θ it is parameterised in (names, nominal values, ranges).
    signature
        The features (and particle fields) it reads, in order.
    """

    parameters: ParameterSet
    signature: InputSignature

    @property
    def theta_names(self) -> list[str]:
        """The θ names, in the order of :attr:`parameters`."""
        ...

    def log_ratio(self, *, features: Any, theta: Mapping[str, Any] | None = None,
                  calibrated: bool = True) -> np.ndarray:
        """log w(x, θ) per event, ``[n]``."""
        ...

    def log_ratio_and_gradient(self, *, features: Any, theta: Mapping[str, float],
                               calibrated: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """log w at one θ and ∂ log w/∂θ, ``[n]`` and ``[n, p]``."""
        ...

    def weights(self, *, features: Any, theta: Mapping[str, Any] | None = None,
                clip: float | None = None) -> np.ndarray:
        """exp(log w), ``[n]``."""
        ...
