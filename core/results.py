"""The family of fit results: what every fit ratiofit makes answers to.

Three fits, three typed results, one protocol:

- :class:`ratiofit.fitting.FitResult`: a fit of θ to data with a learned ratio (a
  strategy's result; in ``result.json`` under ``fit``);
- :class:`ratiofit.inference.BinnedFitResult`: a binned (pyhf) fit with reweighters as
  nuisances (under ``inference.fit``);
- :class:`ratiofit.inference.UnbinnedFitResult`: an unbinned extended-likelihood fit
  (:func:`ratiofit.inference.fit_unbinned`).

Each has ``names`` (parameters in order), ``valid`` (the minimiser's verdict),
``value(name)``, ``error(name)`` and a JSON-ready ``to_dict()``; code that only reports a
fit takes a :class:`ParameterFit`. The JSON layout is documented in
docs/results-reference.md.

>>> from ratiofit.fitting import FitResult
>>> fit = FitResult(strategy="dctr", names=["mu"], values={"mu": 0.5}, errors={"mu": 0.01},
...                 covariance=[[1e-4]], objective_min=0.0, valid=True, n_evaluations=10)
>>> isinstance(fit, ParameterFit), fit.value("mu"), fit.error("mu")
(True, 0.5, 0.01)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

__all__ = ["ParameterFit"]


@runtime_checkable
class ParameterFit(Protocol):
    """A fit's parameters: names, values, errors, validity, and its JSON form."""

    @property
    def names(self) -> Sequence[str]:
        """Parameter names, in the fit's order."""
        ...

    @property
    def valid(self) -> bool:
        """Whether the minimiser converged."""
        ...

    def value(self, name: str) -> float:
        """The fitted value of ``name``."""
        ...

    def error(self, name: str) -> float:
        """The (68.27 %) error of ``name``."""
        ...

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        ...
