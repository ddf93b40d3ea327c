"""ratiofit: learned likelihood ratios to reweight, fit and profile simulation parameters θ.

The one convention (DESIGN.md): label 0 = reference (θ₀), label 1 = target (θ or data);
a reweighter returns log w(x, θ) = log p(x|θ) − log p(x|θ₀).

Heavy modules (TensorFlow) are imported only when used.
"""

from ._version import __version__

__all__ = ["__version__"]
