"""Source ``bumphunt``: the bump-hunt toy of guide-searches.md Sec. 2, with its exact density.

The model (guide-searches.md Sec. 2, Fig. 1–2):

* the "mass" X is ``Uniform(-0.5, 0.5)`` for background and a δ-function at ``location``
  (0 in the paper) for signal;
* the two "decay products" are X₀ = X₁ = X/2;
* each is smeared independently, Yᵢ = Xᵢ + Zᵢ with Zᵢ ~ N(0, σᵢ²);
* all arithmetic is mod [−0.5, 0.5]: an integer is added until the value lies in
  [−0.5, 0.5) (the paper's example: X₀ = 0.4, Z₀ = 0.2 gives Y₀ = −0.4).

Features ``y0``, ``y1`` (Y₀, Y₁). Optionally ``sigma`` (or ``sigma0``, ``sigma1``): the
per-event resolution as a "nuisance feature" (Sec. 3.3, Fig. 5: a classifier using
Y₀ + Y₁ and σ), and the derived ``y0_plus_y1`` = (Y₀ + Y₁) mod 1, the reconstructed mass,
and ``y0_minus_y1`` = (Y₀ − Y₁) mod 1, which carries no signal information but measures σ
(Sec. 2, Fig. 2).

σ is one value (σ₀ = σ₁ = σ) or a pair [σ₀, σ₁]; each is a number (scenario 1 of Sec. 2,
a global σ) or a parameter name, which the sample can vary per event (scenario 2, σ known
event by event; Sec. 3.3 draws σ uniformly in [0, 0.29], Sec. 4.3 trains at
σ = 0.02 … 0.32). ``location`` and ``signal_fraction`` (α = S/(S + B), Eq. 3.13) may be
parameter names as well.

Exact density
-------------
With the wrapped normal w_σ(t) = Σ_{k∈ℤ} φ_σ(t + k) and c = location/2,

    p_S(y₀, y₁) = w_σ₀(y₀ − c) · w_σ₁(y₁ − c),

    p_B(y₀, y₁) = ∫_{−1/4}^{1/4} 2 · w_σ₀(y₀ − u) · w_σ₁(y₁ − u) du
               = Σ_{k₀,k₁∈ℤ} 2 φ_s(a − b) [Φ((1/4 − m)/τ) − Φ((−1/4 − m)/τ)],

with a = y₀ + k₀, b = y₁ + k₁, s² = σ₀² + σ₁², m = (σ₁² a + σ₀² b)/s², τ = σ₀σ₁/s (the
product of the two Gaussians in u is φ_s(a − b) φ_τ(u − m)); a mixture has
α p_S + (1 − α) p_B. Both are densities on [−0.5, 0.5)², conditional on σ when σ varies.

Truncation: each image sum keeps |k| ≤ K = ⌈9 σ_max⌉ + 1 (per coordinate; σ_max the largest
σᵢ in a block of events, blocks taken in order of σ). For y ∈ [−0.5, 0.5) and a centre
(c or u) in [−1/4, 1/4], the nearest image lies within 1/2 and every dropped one at least
K + 1/4 away, so the dropped terms sum to less than 3 exp(−((K + 1/4)² − 1/4)/(2σ²)) <
3 e^{−40} ≈ 10⁻¹⁷ of the kept ones (at every u, hence also after the u integral): the
truncation error is below double precision, relative, even far in the tails (the sums are
done in log space). σ ≤ 1 is required: beyond it the wrapped Gaussian differs from uniform
by < 2 e^{−2π²} ≈ 5·10⁻⁹, so larger values add only cost, which grows as (18 σ + 3)² image
pairs per background event.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ratiofit.hookspecs import hookimpl
from ratiofit.options import Option, OptionError

__all__ = ["BumpHunt"]

PROCESSES = ("background", "signal", "mixture")
DERIVED = ("y0_plus_y1", "y0_minus_y1")
SIGMA_MAX = 1.0
_LOG_2PI = math.log(2.0 * math.pi)
_CHUNK = 1 << 20  # array elements per block in log_density (events × image pairs)


@dataclass(frozen=True)
class _Settings:
    """Validated options (per-event values are resolved later from θ)."""

    sigma: tuple[float | str, ...]
    location: float | str
    process: str
    signal_fraction: float | str | None
    sigma_feature: bool
    derived_features: tuple[str, ...]


def wrap(v: np.ndarray) -> np.ndarray:
    """Map values into [−0.5, 0.5) by adding integers (guide-searches.md Sec. 2).

    Parameters
    ----------
    v
        Any real values.

    Returns
    -------
    numpy.ndarray
        ``v + k`` with integer ``k`` such that the result lies in [−0.5, 0.5).
    """
    w = np.mod(np.asarray(v, dtype=np.float64) + 0.5, 1.0) - 0.5
    # np.mod of a tiny negative number rounds to 1.0, which would give +0.5 ≡ −0.5.
    return np.where(w >= 0.5, -0.5, w)


def _log_normal(t: np.ndarray, s: np.ndarray) -> np.ndarray:
    """log φ_s(t) for the centred normal density with standard deviation ``s``."""
    return -0.5 * (t / s) ** 2 - np.log(s) - 0.5 * _LOG_2PI


def _log_ndtr_diff(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """log(Φ(hi) − Φ(lo)) for lo < hi, accurate in both tails."""
    from scipy.special import log_ndtr  # here: validating a spec loads this module

    flip = lo + hi > 0  # evaluate in the lower tail, where log_ndtr keeps relative precision
    lo, hi = np.where(flip, -hi, lo), np.where(flip, -lo, hi)
    l_hi, l_lo = log_ndtr(hi), log_ndtr(lo)
    x = l_lo - l_hi  # < 0
    log1mexp = np.where(x > -math.log(2.0), np.log(-np.expm1(x)), np.log1p(-np.exp(x)))
    return np.asarray(l_hi + log1mexp)


def n_images(sigma_max: float) -> int:
    """Images kept on each side in the wrapped-normal sums: K = ⌈9 σ_max⌉ + 1.

    Parameters
    ----------
    sigma_max
        The largest resolution σᵢ among the events evaluated.

    Returns
    -------
    int
        K; the sums run over integer shifts |k| ≤ K (see the module docstring for the bound).
    """
    return math.ceil(9.0 * sigma_max) + 1


class BumpHunt:
    """Uniform background and δ-function signal, smeared and wrapped (guide-searches.md Sec. 2)."""

    name = "bumphunt"
    options: Mapping[str, Option] = {
        "process": Option(kind="str", default="background", choices=PROCESSES,
                          doc="background (X uniform), signal (X = location) or mixture"),
        "sigma": Option(kind="number_or_name_list", default=0.08,
                        doc="resolution σ (σ₀ = σ₁) or [σ₀, σ₁], each in (0, 1]: number or "
                            "parameter name (per event)"),
        "location": Option(kind="number_or_name", default=0.0, minimum=-0.5, maximum=0.5,
                           doc="signal mass X (the δ-function position, 0 in the paper): "
                               "number or parameter name"),
        "signal_fraction": Option(kind="number_or_name", default=None, minimum=0.0,
                                  maximum=1.0,
                                  doc="α = S/(S+B) of a mixture (process 'mixture' only): "
                                      "number or parameter name"),
        "sigma_feature": Option(kind="bool", default=False,
                                doc="append the per-event σ as feature 'sigma' ('sigma0', "
                                    "'sigma1' for a pair)"),
        "derived_features": Option(kind="str_list", default=[],
                                   doc="append any of 'y0_plus_y1', 'y0_minus_y1' (mod 1)"),
    }

    # -- options ---------------------------------------------------------------------------
    def _settings(self, options: Mapping[str, Any]) -> _Settings:
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            raise OptionError(unknown[0], f"unknown option '{unknown[0]}'; known options: "
                                          f"{', '.join(sorted(self.options))}")
        opts: dict[str, Any] = {}
        for key, opt in self.options.items():
            value = options.get(key, opt.default)
            opts[key] = None if value is None and opt.default is None else opt.check(key, value)
        sigma = opts["sigma"] if isinstance(opts["sigma"], list) else [opts["sigma"]]
        if len(sigma) not in (1, 2):
            raise OptionError("sigma", f"option 'sigma' takes one value (σ₀ = σ₁) or two "
                                       f"[σ₀, σ₁], got {len(sigma)}: {sigma!r}")
        for s in sigma:
            if not isinstance(s, str):
                _check_sigma_values(np.asarray([s], dtype=np.float64), "sigma")
        if opts["process"] == "mixture" and opts["signal_fraction"] is None:
            raise OptionError("signal_fraction", "process 'mixture' needs option "
                                                 "'signal_fraction' (α = S/(S+B), a number "
                                                 "in [0, 1] or a parameter name)")
        if opts["process"] != "mixture" and opts["signal_fraction"] is not None:
            raise OptionError("signal_fraction", f"option 'signal_fraction' is only used with "
                                                 f"process 'mixture', not "
                                                 f"'{opts['process']}'")
        derived = list(opts["derived_features"])
        for d in derived:
            if d not in DERIVED:
                raise OptionError("derived_features", f"unknown derived feature {d!r}; "
                                                      f"choose from {list(DERIVED)}")
        if len(set(derived)) != len(derived):
            raise OptionError("derived_features", f"repeated names in {derived!r}")
        return _Settings(sigma=tuple(sigma), location=opts["location"],
                         process=opts["process"], signal_fraction=opts["signal_fraction"],
                         sigma_feature=opts["sigma_feature"], derived_features=tuple(derived))

    def check(self, *, options: Mapping[str, Any],
              theta: Mapping[str, tuple[float | None, float | None]]) -> None:
        """Reject settings ``generate`` would reject, before anything is generated.

        Parameters
        ----------
        options
            The source options (defaults filled in or not).
        theta
            Each spec parameter's ``(low, high)`` for this sample (equal when fixed).

        Raises
        ------
        ratiofit.options.OptionError
            A ``ValueError`` whose ``field`` names the option at fault: σ not in (0, 1]
            (a varied σ may start at 0, as in guide-searches.md Sec. 3.3), ``location``
            outside [−0.5, 0.5], ``signal_fraction`` outside [0, 1], an unknown parameter.
        """
        st = self._settings(options)
        named: list[tuple[str, float | str | None, float, float]] = [
            ("location", st.location, -0.5, 0.5),
            ("signal_fraction", st.signal_fraction, 0.0, 1.0)]
        for field, value, low, high in [*[("sigma", s, 0.0, SIGMA_MAX) for s in st.sigma],
                                        *named]:
            if not isinstance(value, str):
                continue
            if value not in theta:
                raise OptionError(field, f"option '{field}' names parameter '{value}', which "
                                         f"the spec does not define (defined: "
                                         f"{', '.join(theta) or 'none'})")
            lo, hi = theta[value]
            if lo is None or hi is None:
                continue
            fixed = lo == hi
            bad_low = lo <= low if field == "sigma" and fixed else lo < low
            if bad_low or hi > high or (field == "sigma" and hi <= 0):
                what = "σ must be in (0, 1]" if field == "sigma" else (
                    f"must be in [{low}, {high}]")
                span = f"= {lo}" if fixed else f"range [{lo}, {hi}]"
                raise OptionError(field, f"option '{field}' is parameter '{value}' {span}, but "
                                         f"{what}")

    # -- features --------------------------------------------------------------------------
    def feature_names(self, options: Mapping[str, Any]) -> Sequence[str]:
        """``y0``, ``y1``, then the σ column(s) and the derived features asked for."""
        st = self._settings(options)
        names = ["y0", "y1"]
        if st.sigma_feature:
            names += ["sigma"] if len(st.sigma) == 1 else ["sigma0", "sigma1"]
        return names + list(st.derived_features)

    def _per_event(self, field: str, value: float | str, theta: Mapping[str, Any], n: int
                   ) -> np.ndarray:
        if isinstance(value, str):
            if value not in theta:
                raise OptionError(field, f"option '{field}' names parameter '{value}', but no "
                                         f"θ value was given for it (given: "
                                         f"{', '.join(theta) or 'none'})")
            return np.broadcast_to(np.asarray(theta[value], dtype=np.float64), (n,)).copy()
        return np.full(n, float(value))

    def _values(self, st: _Settings, theta: Mapping[str, Any], n: int
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Per-event σ₀, σ₁, signal location and α (α = 1 signal, 0 background)."""
        sig = [self._per_event("sigma", s, theta, n) for s in st.sigma]
        for s in sig:
            _check_sigma_values(s, "sigma")
        s0, s1 = sig[0], sig[-1]
        loc = self._per_event("location", st.location, theta, n)
        if n and not (np.all(np.isfinite(loc)) and loc.min() >= -0.5 and loc.max() <= 0.5):
            raise OptionError("location", f"option 'location' must be in [-0.5, 0.5], got "
                                          f"values in [{loc.min()}, {loc.max()}]")
        if st.process == "mixture":
            assert st.signal_fraction is not None
            alpha = self._per_event("signal_fraction", st.signal_fraction, theta, n)
            if n and not (np.all(np.isfinite(alpha)) and alpha.min() >= 0
                          and alpha.max() <= 1):
                raise OptionError("signal_fraction", f"option 'signal_fraction' must be in "
                                                     f"[0, 1], got values in [{alpha.min()}, "
                                                     f"{alpha.max()}]")
        else:
            alpha = np.full(n, 1.0 if st.process == "signal" else 0.0)
        return s0, s1, loc, alpha

    # -- generation ------------------------------------------------------------------------
    def generate(self, *, n_events: int, theta: Mapping[str, np.ndarray],
                 options: Mapping[str, Any], rng: np.random.Generator) -> np.ndarray:
        """Draw events of guide-searches.md Sec. 2.

        Parameters
        ----------
        n_events
            Number of events.
        theta
            Per-event parameter values ``[n_events]``, used by options that name a parameter.
        options
            The source options.
        rng
            The only source of randomness.

        Returns
        -------
        numpy.ndarray
            ``[n_events, d]`` features in [−0.5, 0.5), columns as in :meth:`feature_names`.
        """
        st = self._settings(options)
        s0, s1, loc, alpha = self._values(st, theta, n_events)
        x = rng.uniform(-0.5, 0.5, size=n_events)  # X | background ~ Uniform(-0.5, 0.5)
        if st.process == "signal":
            x = loc.copy()  # X | signal = δ(location)
        elif st.process == "mixture":
            is_signal = rng.random(n_events) < alpha
            x = np.where(is_signal, loc, x)
        z = rng.standard_normal(size=(n_events, 2))
        y0 = wrap(x / 2 + s0 * z[:, 0])  # Yᵢ = Xᵢ + Zᵢ, Xᵢ = X/2, mod [-0.5, 0.5]
        y1 = wrap(x / 2 + s1 * z[:, 1])
        cols = [y0, y1]
        if st.sigma_feature:
            cols += [s0] if len(st.sigma) == 1 else [s0, s1]
        for d in st.derived_features:
            cols.append(wrap(y0 + y1) if d == "y0_plus_y1" else wrap(y0 - y1))
        return np.stack(cols, axis=1)

    # -- exact density ---------------------------------------------------------------------
    def log_density(self, *, features: np.ndarray, theta: Mapping[str, Any],
                    options: Mapping[str, Any]) -> np.ndarray:
        """Exact log p(y₀, y₁ | σ) on [−0.5, 0.5)² (module docstring; guide-searches.md Sec. 2).

        Parameters
        ----------
        features
            ``[n, d]`` with ``y0``, ``y1`` in the first two columns; further columns
            (σ, derived features) are functions of (y₀, y₁, σ) and add no density. Only the
            first two columns may be passed as well.
        theta
            Parameter values (scalars or ``[n]``) for options that name a parameter; a σ
            parameter missing here is read from the ``sigma`` feature column(s) if present.
        options
            The source options (``process`` picks p_S, p_B or the mixture).

        Returns
        -------
        numpy.ndarray
            ``[n]`` log-densities; ``-inf`` for points outside [−0.5, 0.5]².
        """
        st = self._settings(options)
        y = np.asarray(features, dtype=np.float64)
        names = list(self.feature_names(options))
        if y.ndim != 2 or y.shape[1] not in (2, len(names)):
            raise ValueError(f"features must be [n, 2] or [n, {len(names)}] (columns "
                             f"{names}), got shape {y.shape}")
        n = len(y)
        th = dict(theta)
        if st.sigma_feature and y.shape[1] == len(names):
            for j, s in enumerate(st.sigma):
                if isinstance(s, str) and s not in th:
                    th[s] = y[:, 2 + j]
        s0, s1, loc, alpha = self._values(st, th, n)
        out = np.full(n, -np.inf)
        inside = np.all((y[:, :2] >= -0.5) & (y[:, :2] <= 0.5), axis=1)
        if not inside.any():
            return out
        y0, y1 = y[inside, 0], y[inside, 1]
        s0, s1, loc, alpha = s0[inside], s1[inside], loc[inside], alpha[inside]
        terms = []
        if st.process != "background":
            with np.errstate(divide="ignore"):
                terms.append(np.log(alpha) + _log_signal(y0, y1, s0, s1, loc / 2))
        if st.process != "signal":
            with np.errstate(divide="ignore"):
                terms.append(np.log1p(-alpha) + _log_background(y0, y1, s0, s1))
        out[inside] = terms[0] if len(terms) == 1 else np.logaddexp(*terms)
        return out


def _check_sigma_values(s: np.ndarray, field: str) -> None:
    if s.size and not (np.all(np.isfinite(s)) and s.min() > 0 and s.max() <= SIGMA_MAX):
        raise OptionError(field, f"option '{field}' (the resolution σᵢ) must be in "
                                 f"(0, {SIGMA_MAX}], got values in [{s.min()}, {s.max()}]")


def _blocks(smax: np.ndarray, images: int) -> list[tuple[np.ndarray, int]]:
    """Event blocks, sorted by σ, each with its own K (so narrow events need few images).

    ``images`` is 1 for single sums and 2 for double sums; a block holds at most about
    ``_CHUNK`` event-image terms at the largest K.
    """
    order = np.argsort(smax, kind="stable")
    step = max(1, _CHUNK // (2 * n_images(float(smax.max())) + 1) ** images)
    return [(idx, n_images(float(smax[idx[-1]])))
            for idx in (order[i:i + step] for i in range(0, len(order), step))]


def _log_wrapped_normal(t: np.ndarray, s: np.ndarray) -> np.ndarray:
    """log w_s(t) = log Σ_{|j|≤K} φ_s(t + j), K = :func:`n_images` of each block."""
    from scipy.special import logsumexp

    out = np.empty(len(t))
    for idx, k in _blocks(s, 1):
        shifts = np.arange(-k, k + 1, dtype=np.float64)
        out[idx] = logsumexp(_log_normal(t[idx, None] + shifts, s[idx, None]), axis=1)
    return out


def _log_signal(y0: np.ndarray, y1: np.ndarray, s0: np.ndarray, s1: np.ndarray,
                c: np.ndarray) -> np.ndarray:
    """log p_S = log w_σ₀(y₀ − c) + log w_σ₁(y₁ − c), c = X/2 of the signal."""
    return _log_wrapped_normal(y0 - c, s0) + _log_wrapped_normal(y1 - c, s1)


def _log_background(y0: np.ndarray, y1: np.ndarray, s0: np.ndarray, s1: np.ndarray
                    ) -> np.ndarray:
    """log p_B: the image double sum of the module docstring, blockwise over events."""
    from scipy.special import logsumexp

    out = np.empty(len(y0))
    for idx, k in _blocks(np.maximum(s0, s1), 2):
        shifts = np.arange(-k, k + 1, dtype=np.float64)
        k0, k1 = (g.ravel() for g in np.meshgrid(shifts, shifts, indexing="ij"))
        v0, v1 = s0[idx, None] ** 2, s1[idx, None] ** 2
        var = v0 + v1
        tau = np.sqrt(v0 * v1 / var)
        a, b = y0[idx, None] + k0, y1[idx, None] + k1
        m = (v1 * a + v0 * b) / var
        log_terms = (_log_normal(a - b, np.sqrt(var)) + math.log(2.0)
                     + _log_ndtr_diff((-0.25 - m) / tau, (0.25 - m) / tau))
        out[idx] = logsumexp(log_terms, axis=1)
    return out


@hookimpl
def ratiofit_sources() -> list[Any]:
    return [BumpHunt()]
