"""Source ``ncr_gaussian``: the generator/simulator Gaussians of ncr.md Sec. III.

Each event is one two-level row (:mod:`ratiofit.events` convention): the particle-level
truth ``gen_t`` with T ~ N(μ, σ) (ncr.md Eq. 20–21), optionally with a hole,
Pr(|T − c| < δ) = 0 (ncr.md Eq. 34), and the detector-level reconstruction ``sim_r`` with
R = T + Z, Z ~ N(b, ε) (ncr.md Eq. 22–24). The hole is cut exactly: events are drawn by
vectorised rejection, so the truth density is the Gaussian restricted to |T − c| ≥ δ and
renormalised. The exact densities are available through :meth:`NCRGaussian.log_density`
(both levels) and :meth:`NCRGaussian.log_response` (R given T), so studies and tests can
compare learned ratios with exact ones.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy.special import log_ndtr, ndtr

from ratiofit.hookspecs import hookimpl
from ratiofit.options import Option

#: Feature names of one event: truth (generator level) and reconstruction (detector level).
TRUTH_FEATURE = "gen_t"
RECO_FEATURE = "sim_r"
#: Refuse holes that leave less than this probability mass (rejection would never end).
_MIN_ACCEPTANCE = 1e-4


def _option_error(field: str, message: str) -> ValueError:
    exc = ValueError(message)
    exc.field = field  # type: ignore[attr-defined]
    return exc


class NCRGaussian:
    """T ~ N(mean, width) outside the hole, R = T + N(bias, resolution) (ncr.md Eq. 20–24, 34)."""

    name = "ncr_gaussian"
    options: Mapping[str, Option] = {
        "mean": Option(kind="float", default=0.0, doc="mean μ of the truth T (ncr.md Eq. 20)"),
        "width": Option(kind="float", default=1.0, minimum=0.0,
                        doc="standard deviation σ > 0 of the truth T (ncr.md Eq. 20)"),
        "hole_centre": Option(kind="float", default=0.0,
                              doc="centre c of the truth hole (ncr.md Eq. 34)"),
        "hole_half_width": Option(kind="float", default=0.0, minimum=0.0,
                                  doc="half-width δ of the hole Pr(|T − c| < δ) = 0; "
                                      "0 = no hole (ncr.md Eq. 34)"),
        "bias": Option(kind="float", default=0.0,
                       doc="mean b of the smearing Z in R = T + Z (ncr.md Eq. 22–24)"),
        "resolution": Option(kind="float", default=0.5, minimum=0.0,
                             doc="standard deviation ε > 0 of the smearing Z (ncr.md Eq. 22)"),
    }

    def check(self, *, options: Mapping[str, Any], theta: Mapping[str, Any]) -> None:
        """Refuse zero widths and holes that leave (almost) no probability mass."""
        for key in ("width", "resolution"):
            if not options[key] > 0:
                raise _option_error(key, f"must be positive, got {options[key]}")
        if self._kept_mass(options) < _MIN_ACCEPTANCE:
            raise _option_error("hole_half_width", "the hole removes more than "
                                f"{1 - _MIN_ACCEPTANCE:.4%} of the truth distribution")

    def feature_names(self, options: Mapping[str, Any]) -> Sequence[str]:
        return [TRUTH_FEATURE, RECO_FEATURE]

    @staticmethod
    def _kept_mass(options: Mapping[str, Any]) -> float:
        """Probability that T ~ N(μ, σ) falls outside the hole."""
        mu, sigma = options["mean"], options["width"]
        c, delta = options["hole_centre"], options["hole_half_width"]
        if delta == 0:
            return 1.0
        inside = ndtr((c + delta - mu) / sigma) - ndtr((c - delta - mu) / sigma)
        return float(1.0 - inside)

    def generate(self, *, n_events: int, theta: Mapping[str, np.ndarray],
                 options: Mapping[str, Any], rng: np.random.Generator) -> np.ndarray:
        """``[n_events, 2]`` columns (``gen_t``, ``sim_r``)."""
        self.check(options=options, theta={})
        truth = self._truth(n_events=n_events, options=options, rng=rng)
        reco = truth + options["bias"] + options["resolution"] * rng.standard_normal(n_events)
        return np.stack([truth, reco], axis=1)

    def _truth(self, *, n_events: int, options: Mapping[str, Any], rng: np.random.Generator
               ) -> np.ndarray:
        mu, sigma = options["mean"], options["width"]
        c, delta = options["hole_centre"], options["hole_half_width"]
        out = np.empty(n_events)
        filled = 0
        while filled < n_events:  # vectorised rejection: one round per batch, not per event
            need = n_events - filled
            draw = mu + sigma * rng.standard_normal(int(need / self._kept_mass(options)) + 16)
            if delta > 0:
                draw = draw[np.abs(draw - c) >= delta]
            take = draw[:need]
            out[filled:filled + len(take)] = take
            filled += len(take)
        return out

    def log_truth_density(self, *, truth: np.ndarray, options: Mapping[str, Any]
                          ) -> np.ndarray:
        """log p(T): the Gaussian outside the hole, renormalised; −inf inside it."""
        mu, sigma = options["mean"], options["width"]
        t = np.asarray(truth, dtype=np.float64)
        z = (t - mu) / sigma
        logp = -0.5 * z * z - np.log(sigma) - 0.5 * np.log(2 * np.pi) \
            - np.log(self._kept_mass(options))
        if options["hole_half_width"] > 0:
            inside = np.abs(t - options["hole_centre"]) < options["hole_half_width"]
            logp = np.where(inside, -np.inf, logp)
        return logp

    @staticmethod
    def log_response(*, truth: np.ndarray, reco: np.ndarray, options: Mapping[str, Any]
                     ) -> np.ndarray:
        """log p(R | T) = log N(R − T; b, ε) (ncr.md Eq. 22)."""
        eps = options["resolution"]
        z = (np.asarray(reco) - np.asarray(truth) - options["bias"]) / eps
        return -0.5 * z * z - np.log(eps) - 0.5 * np.log(2 * np.pi)

    def log_density(self, *, features: np.ndarray, theta: Mapping[str, Any],
                    options: Mapping[str, Any]) -> np.ndarray:
        """log p(T, R) for ``[n, 2]`` rows (``gen_t``, ``sim_r``)."""
        x = np.asarray(features, dtype=np.float64)
        return self.log_truth_density(truth=x[:, 0], options=options) \
            + self.log_response(truth=x[:, 0], reco=x[:, 1], options=options)

    @staticmethod
    def log_reco_density(*, reco: np.ndarray, options: Mapping[str, Any]) -> np.ndarray:
        """log p(R) without a hole: N(μ + b, √(σ² + ε²)); with a hole, the Gaussian
        convolution minus the hole's share (closed form through the bivariate split)."""
        mu, sigma, b, eps = (options[k] for k in ("mean", "width", "bias", "resolution"))
        r = np.asarray(reco, dtype=np.float64)
        total = np.hypot(sigma, eps)
        z = (r - mu - b) / total
        log_full = -0.5 * z * z - np.log(total) - 0.5 * np.log(2 * np.pi)
        delta = options["hole_half_width"]
        if delta == 0:
            return log_full
        # Given R = r, T is Gaussian with mean m(r), width s; subtract Pr(T in hole | r).
        s = sigma * eps / total
        m = mu + sigma**2 / total**2 * (r - mu - b)
        c = options["hole_centre"]
        lo, hi = log_ndtr((c - delta - m) / s), log_ndtr((c + delta - m) / s)
        in_hole = np.exp(hi) - np.exp(lo)
        kept = NCRGaussian._kept_mass(options)
        return log_full + np.log1p(-in_hole) - np.log(kept)


@hookimpl
def ratiofit_sources() -> list[Any]:
    return [NCRGaussian()]
