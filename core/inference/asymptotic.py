"""Asymptotic CLs from the q̃_μ test statistic and its Asimov value.

With q̃_μ of the data and q_A of the background-only Asimov data (Cowan, Cranmer, Gross,
Vitells, arXiv:1007.1727, Eq. 16 and §3.8), the test statistic in pyhf's variable

    t = √q̃ − √q_A                      (q̃ ≤ q_A)
    t = (q̃ − q_A) / (2√q_A)            (q̃ > q_A)

is normal with unit width, at −√q_A under the signal-plus-background hypothesis and at 0
under background only (Eq. 65-66), so CL_{s+b} = Φ̄(t + √q_A), CL_b = Φ̄(t) and
CLs = CL_{s+b}/CL_b (guide-searches.md Eq. 3.4-3.5). The expected band under background
only puts t at +2 … −2 σ: CLs = Φ̄(n + √q_A)/Φ̄(n). These are the numbers of
``pyhf.infer.calculators.AsymptoticCalculator`` with its default base distribution; the
binned upper-limit scan (:func:`ratiofit.inference.upper_limit`) and the unbinned
hypothesis test (:func:`ratiofit.inference.hypotest_model`) both use them.

Examples
--------
>>> c = cls(4.0, 4.0)  # data as the background-only Asimov data: the median expected
>>> round(c.observed, 4), round(c.expected[2], 4)
(0.0455, 0.0455)
>>> round(cls(0.0, 4.0).observed, 3)  # data at the tested value: CLs = 0.5/Φ(2)
0.512
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["AsymptoticCLs", "cls"]


@dataclass(frozen=True)
class AsymptoticCLs:
    """CLs, CL_{s+b}, CL_b and the expected CLs at +2, +1, 0, −1, −2 σ (pyhf's order)."""

    observed: float
    clsb: float
    clb: float
    expected: tuple[float, float, float, float, float]


def cls(q: float, q_a: float) -> AsymptoticCLs:
    """The asymptotic CLs of q̃_μ = ``q`` with Asimov value ``q_a`` (module docstring)."""
    from scipy.stats import norm

    sq, sq_a = math.sqrt(max(q, 0.0)), math.sqrt(max(q_a, 1e-300))
    t = sq - sq_a if sq <= sq_a else (q - q_a) / (2 * sq_a)
    clsb, clb = float(norm.sf(t + sq_a)), float(norm.sf(t))
    expected = tuple(float(norm.sf(n + sq_a) / norm.sf(n)) for n in (2.0, 1.0, 0.0, -1.0, -2.0))
    return AsymptoticCLs(observed=clsb / clb if clb > 0 else 1.0, clsb=clsb, clb=clb,
                         expected=expected)  # type: ignore[arg-type]
