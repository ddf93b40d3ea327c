"""Source ``gaussian_detector``: Gaussian events with a detector (srgn.md Sec. III A).

Two-level events (``gen_<name>`` and ``sim_<name>`` columns of one EventSet, so the
pairing survives every shuffle, split and parquet round trip):

``variant: smearing`` (srgn.md Sec. III A, Figs. 2, 3, 5–7, Tables I–II)
    X_G ~ N(μ, σ²) with μ = ``mean``, σ = ``width``; X_S = X_G + Z, Z ~ N(0, ε²) with
    ε = ``smearing`` (0.5 in the paper). Columns ``gen_x0``, ``sim_x0``.

``variant: response`` (srgn.md Sec. III A, Fig. 4: a parameter-dependent response)
    X_G,0 ~ N(μ, 1), X_G,1 ~ N(0, ν²) with ν = (ω₀ + ω₁ μ)², ω₀ = ``omega0`` = 0.7 and
    ω₁ = ``omega1`` = 0.2; X_S = X_G,0 + Z, Z ~ N(4|x_G,1|, x_G,1⁴). The detector response
    depends on the secondary feature x_G,1 whose distribution depends on μ, so reweighting
    with x_G,0 alone cannot reproduce the simulation level (only the full phase space
    (x_G,0, x_G,1) can, srgn.md Eq. 9). Columns ``gen_x0``, ``gen_x1``, ``sim_x0``.

``levels`` picks the emitted levels: real-data-like samples use ``[sim]``.

The exact generator-level density is available (:meth:`GaussianDetector.log_density`):
log p(x_G|θ). The detector term log p(x_S|x_G) does not depend on θ and is left out (it
would cancel in every ratio, and with the response variant's width x_G,1² it is huge
where x_G,1 ≈ 0), so a difference of two log-densities is the exact generator-level
ratio (srgn.md Eq. 10 for the mean, Eq. 11 for mean and width).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ratiofit.hookspecs import hookimpl
from ratiofit.options import Option
from ratiofit.sampling import resolve_parameter_value

_LOG_2PI = float(np.log(2 * np.pi))


def _normal_log_pdf(x: np.ndarray, mean: np.ndarray | float, width: np.ndarray | float
                    ) -> np.ndarray:
    z = (x - mean) / width
    return -0.5 * z * z - np.log(width) - 0.5 * _LOG_2PI


class GaussianDetector:
    name = "gaussian_detector"
    options: Mapping[str, Option] = {
        "variant": Option(kind="str", default="smearing", choices=["smearing", "response"],
                          doc="smearing: X_S = X_G + N(0, eps^2); response: two generator "
                          "features, resolution set by the secondary one (srgn.md Fig. 4)"),
        "mean": Option(kind="number_or_name", default=0.0,
                       doc="generator-level mean mu: number or parameter name"),
        "width": Option(kind="number_or_name", default=1.0,
                        doc="generator-level width sigma (variant smearing): number or "
                        "parameter name"),
        "smearing": Option(kind="float", default=0.5, minimum=0.0,
                           doc="detector resolution eps of variant smearing"),
        "omega0": Option(kind="float", default=0.7, doc="nu = (omega0 + omega1 mu)^2"),
        "omega1": Option(kind="float", default=0.2, doc="nu = (omega0 + omega1 mu)^2"),
        "levels": Option(kind="str_list", default=["gen", "sim"],
                         doc="levels to emit: gen and/or sim (real-data-like: [sim])"),
    }

    def check(self, *, options: Mapping[str, Any], theta: Mapping[str, tuple[float, float]]
              ) -> None:
        """Refuse unknown levels and widths that are not positive over the θ range."""
        levels = list(options["levels"])
        bad = [lv for lv in levels if lv not in ("gen", "sim")] or (
            ["(none)"] if not levels else [])
        if bad or len(set(levels)) != len(levels):
            err = ValueError(f"levels must be a non-empty subset of [gen, sim], got {levels}")
            err.field = "levels"  # type: ignore[attr-defined]
            raise err
        width = options["width"]
        lows = [theta[width][0]] if isinstance(width, str) and width in theta else (
            [] if isinstance(width, str) else [float(width)])
        if any(v <= 0 for v in lows):
            err = ValueError(f"width must be positive, got {lows[0]}")
            err.field = "width"  # type: ignore[attr-defined]
            raise err

    def _generator_names(self, options: Mapping[str, Any]) -> list[str]:
        return ["x0", "x1"] if options["variant"] == "response" else ["x0"]

    def feature_names(self, options: Mapping[str, Any]) -> Sequence[str]:
        names = []
        if "gen" in options["levels"]:
            names += [f"gen_{n}" for n in self._generator_names(options)]
        if "sim" in options["levels"]:
            names.append("sim_x0")
        return names

    def _moments(self, theta: Mapping[str, Any], options: Mapping[str, Any], n: int
                 ) -> tuple[np.ndarray, np.ndarray]:
        mean = resolve_parameter_value(options["mean"], theta, n)
        width = resolve_parameter_value(options["width"], theta, n)
        if np.any(width <= 0):
            raise ValueError("option 'width' must be positive")
        return mean, width

    def _secondary_width(self, mean: np.ndarray, options: Mapping[str, Any]) -> np.ndarray:
        """ν = (ω₀ + ω₁ μ)² of the response variant (srgn.md Sec. III A)."""
        nu = (options["omega0"] + options["omega1"] * mean) ** 2
        if np.any(nu <= 0):
            raise ValueError("nu = (omega0 + omega1 * mean)^2 vanishes; choose omega0, omega1 "
                             "so that it stays positive over the parameter range")
        return nu

    def generate(self, *, n_events: int, theta: Mapping[str, np.ndarray],
                 options: Mapping[str, Any], rng: np.random.Generator) -> np.ndarray:
        """Generator level first (all columns are drawn whatever ``levels`` keeps, so the
        same seed gives the same events at every choice of levels)."""
        mean, width = self._moments(theta, options, n_events)
        if options["variant"] == "response":
            gen0 = mean + rng.standard_normal(n_events)
            gen1 = self._secondary_width(mean, options) * rng.standard_normal(n_events)
            sim = gen0 + 4 * np.abs(gen1) + gen1 ** 2 * rng.standard_normal(n_events)
            gen = [gen0, gen1]
        else:
            gen0 = mean + width * rng.standard_normal(n_events)
            sim = gen0 + options["smearing"] * rng.standard_normal(n_events)
            gen = [gen0]
        cols = (gen if "gen" in options["levels"] else []) + \
            ([sim] if "sim" in options["levels"] else [])
        return np.stack(cols, axis=1)

    def log_density(self, *, features: np.ndarray, theta: Mapping[str, Any],
                    options: Mapping[str, Any]) -> np.ndarray:
        """log p(x_G|θ) of the emitted columns (``feature_names`` order), ``[n]``.

        The θ-independent detector term log p(x_S|x_G) is omitted (see the module
        docstring). Simulation level only: the smearing variant's marginal
        N(μ, σ² + ε²); the response variant has no closed form there (``ValueError``).
        """
        x = np.asarray(features, dtype=np.float64)
        if x.ndim == 1:
            x = x[:, None]
        n = len(x)
        th = {k: np.broadcast_to(np.asarray(v, dtype=np.float64), (n,)) for k, v in theta.items()}
        mean, width = self._moments(th, options, n)
        if "gen" not in options["levels"]:
            if options["variant"] == "response":
                raise ValueError("variant 'response' has no closed-form simulation-level "
                                 "density; emit the gen level for closure")
            total = np.sqrt(width ** 2 + options["smearing"] ** 2)
            return np.asarray(_normal_log_pdf(x[:, 0], mean, total))
        if options["variant"] == "response":
            nu = self._secondary_width(mean, options)
            return np.asarray(_normal_log_pdf(x[:, 0], mean, 1.0)
                              + _normal_log_pdf(x[:, 1], 0.0, nu))
        return np.asarray(_normal_log_pdf(x[:, 0], mean, width))


@hookimpl
def ratiofit_sources() -> list[Any]:
    return [GaussianDetector()]
