"""ratiofit's paper reproductions, packaged as a third-party plugin distribution.

The study plugins register through the ``ratiofit`` entry-point group in this package's
``pyproject.toml``, exactly as any plugin package does; ratiofit itself keeps the
architectures, losses, strategies and sources they use.

- :mod:`ratiofit_papers.studies`: the studies ``ensemble_classification``,
  ``ensemble_regression``, ``mutual_information`` (ensembles.md), ``ncr`` (ncr.md) and
  ``search_power``, ``search_nuisance_feature``, ``search_parameterised_sigma``,
  ``search_pvalues`` (guide-searches.md);
- :mod:`ratiofit_papers.ensembles`: their per-ensemble helpers (ensembles of events,
  ROC/AUC, divergences, shared training and plotting pieces).
"""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
