"""Example third-party plugins for ratiofit.

Three plugins, each in its own module and announced through the ``ratiofit`` entry-point
group in this package's ``pyproject.toml`` — exactly the path ratiofit's built-ins use:

- :mod:`ratiofit_example.resmlp`: architecture ``resmlp``, a residual MLP;
- :mod:`ratiofit_example.focal_bce`: loss ``focal_bce``, the binary focal loss with its
  exact map from the network output to log w;
- :mod:`ratiofit_example.grid_parabola`: strategy ``grid_parabola``, a coarse then fine
  likelihood scan with a parabola through the minimum.
"""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
