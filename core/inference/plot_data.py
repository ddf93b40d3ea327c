"""Plot data of a binned (pyhf) fit: what the inference plots draw, as plain JSON numbers.

:func:`plot_data` evaluates a :class:`~ratiofit.inference.BinnedModel` and its
:class:`~ratiofit.inference.BinnedFitResult` into lists and floats that ``result.json``
keeps and :mod:`ratiofit.inference_report` draws without pyhf:

* per channel, the expected counts per sample before and after the fit, the observed
  counts, the bin edges, and the total model's uncertainty band. The band is the linear
  propagation σ_b² = Σᵢⱼ Jᵦᵢ Cᵢⱼ Jᵦⱼ of a parameter covariance C through the expected
  counts, with J = ∂ν_b/∂ηᵢ by central differences: after the fit C is the fit's (Hesse)
  covariance; before it, the prior: diag(width²) of the constrained parameters at their
  constraint centres, zero for free and fixed ones;
* the pulls of the constrained parameters, the correlation matrix of the floating ones;
* the CLs scan with the expected (Brazil) band of an
  :class:`~ratiofit.inference.UpperLimitResult`, and the impact ranking
  (:class:`~ratiofit.inference.Impact`), where given.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import numpy as np

from .binned_fit import BinnedFitResult, Impact, UpperLimitResult, _constrained, _numpy_minuit
from .pyhf_model import BinnedModel, expected_by_sample

__all__ = ["plot_data"]

#: central-difference step of the Jacobian, in units of each parameter's standard
#: deviation: small enough that the band is the linear one, large enough that the
#: difference of two expected counts is far above their rounding
_STEP = 1e-4
#: pyhf's expected band, in its order: −2σ, −1σ, median, +1σ, +2σ
_BAND = ("minus2", "minus1", "median", "plus1", "plus2")


def _floats(a: Any) -> list[float]:
    return [float(v) for v in np.asarray(a, dtype=np.float64).ravel()]


def _band(pdf: Any, pars: np.ndarray, covariance: np.ndarray) -> np.ndarray:
    """σ_b of the total expected main-data counts at ``pars`` (all channels, model order):
    √diag(J C Jᵀ) with J the central-difference Jacobian of ``expected_actualdata``.

    Only parameters with a positive variance enter (the others' rows of C are zero).
    pyhf's default interpolations (``normsys`` code4, ``histosys`` code4p) are smooth at
    α = 0; at the kink of a piecewise one (code1, code0) the central difference gives the
    mean of the two one-sided slopes, the symmetrised ±1σ effect.
    """
    sigma = np.sqrt(np.clip(np.diag(covariance), 0.0, None))
    varied = np.flatnonzero(sigma > 0)
    n_main = len(np.asarray(pdf.expected_actualdata(pars)))
    jac = np.zeros((n_main, len(varied)))
    for k, i in enumerate(varied):
        h = _STEP * sigma[i]
        up, down = pars.copy(), pars.copy()
        up[i] += h
        down[i] -= h
        jac[:, k] = (np.asarray(pdf.expected_actualdata(up), dtype=np.float64)
                     - np.asarray(pdf.expected_actualdata(down), dtype=np.float64)) / (2 * h)
    cov = covariance[np.ix_(varied, varied)]
    variance = np.einsum("bi,ij,bj->b", jac, cov, jac)
    # a covariance from minuit can be a hair non-positive-definite: rounding, not a band
    return np.sqrt(np.clip(variance, 0.0, None))  # type: ignore[no-any-return]


def _prior(pdf: Any) -> tuple[np.ndarray, np.ndarray]:
    """The pre-fit point and covariance: the suggested inits with every constrained
    parameter at its constraint's centre (its prior mean: a measured auxiliary datum moves
    it off the init), and diag(width²) for the constrained, non-fixed parameters."""
    pars = np.asarray(pdf.config.suggested_init(), dtype=np.float64)
    fixed = list(pdf.config.suggested_fixed())
    cov = np.zeros((len(pars), len(pars)))
    for _, i, centre, width in _constrained(pdf):
        pars[i] = centre
        if not fixed[i]:
            cov[i, i] = width ** 2
    return pars, cov


def _stage(pdf: Any, pars: np.ndarray, covariance: np.ndarray
           ) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Expected counts per sample and the total's band at ``pars`` (all channels)."""
    by_sample = expected_by_sample(pdf, dict(zip(pdf.config.par_names, pars, strict=True)))
    return by_sample, _band(pdf, pars, covariance)


def _channel_samples(pdf: Any) -> dict[str, list[str]]:
    """The samples each channel has (pyhf's per-sample counts are zero, not absent, in
    channels without the sample)."""
    return {ch["name"]: [s["name"] for s in ch["samples"]] for ch in pdf.spec["channels"]}


def _signal_samples(pdf: Any) -> set[str]:
    """The samples the POI scales (those carrying its ``normfactor``), so that plots can
    stack them on top of the backgrounds."""
    poi = pdf.config.poi_name
    return {s["name"] for ch in pdf.spec["channels"] for s in ch["samples"]
            if any(m["name"] == poi for m in s["modifiers"])}


def _cls_scan(limit: UpperLimitResult) -> dict[str, Any]:
    """The scan's observed CLs and expected band (−2σ, −1σ, median, +1σ, +2σ per point)."""
    expected = np.asarray(limit.cls_expected, dtype=np.float64)
    return {"poi_values": _floats(limit.scan), "cls_observed": _floats(limit.cls_observed),
            "cls_expected": {key: _floats(expected[:, k]) for k, key in enumerate(_BAND)},
            "level": float(limit.level), "limit_observed": float(limit.observed),
            "limit_expected": dict(zip(_BAND, _floats(limit.expected), strict=True))}


def _with_fit(channels: dict[str, Any], fit_result: BinnedFitResult,
              upper_limit: UpperLimitResult | None, impacts: Sequence[Impact] | None
              ) -> dict[str, Any]:
    """The plot data of both backends: the channels' histograms beside the POI, pulls,
    correlations of the floating parameters, CLs scan and impact ranking."""
    floating = [i for i, e in enumerate(fit_result.errors) if e > 0]
    corr = np.asarray(fit_result.correlation, dtype=np.float64)[np.ix_(floating, floating)]
    return {
        "poi": {"name": fit_result.poi, "value": fit_result.poi_value,
                "error": fit_result.poi_error},
        "channels": channels,
        "pulls": [asdict(p) for p in fit_result.pulls.values()],
        "correlation": {"names": [fit_result.names[i] for i in floating],
                        "matrix": [_floats(row) for row in corr]},
        "cls_scan": None if upper_limit is None else _cls_scan(upper_limit),
        "impacts": None if impacts is None else [
            {**asdict(i), "size": i.size} for i in sorted(impacts, key=lambda i: i.size,
                                                         reverse=True)],
    }


def plot_data(binned_model: BinnedModel, fit_result: BinnedFitResult, *,
              upper_limit: UpperLimitResult | None = None,
              impacts: Sequence[Impact] | None = None) -> dict[str, Any]:
    """Everything the inference plots draw, computed from the model and the fit.

    Parameters
    ----------
    binned_model
        The fitted :class:`BinnedModel` (its data are the observed counts).
    fit_result
        :func:`~ratiofit.inference.fit` of ``binned_model``.
    upper_limit
        :func:`~ratiofit.inference.upper_limit` of the model, for the CLs scan.
    impacts
        :func:`~ratiofit.inference.impacts` of the model, for the ranking.

    Returns
    -------
    dict
        JSON-able (lists, floats, strings, None):

        ``poi``
            ``{"name", "value", "error"}`` of the fit;
        ``channels``
            per channel name: ``edges`` (the model's bin edges, or bin numbers 0…n where
            the model has none), ``observed``, ``signal_samples`` (those the POI scales),
            and ``prefit``/``postfit``, each ``{"samples": {name: counts}, "total": the
            samples' sum, "band": σ per bin}``;
        ``pulls``
            one dict per constrained parameter, the fields of
            :class:`~ratiofit.inference.Pull` (α̂ ± σ̂, centre and width of the prior);
        ``correlation``
            ``{"names", "matrix"}`` of the floating parameters (fixed ones have none);
        ``cls_scan``
            ``None`` without ``upper_limit``; else ``poi_values``, ``cls_observed``,
            ``cls_expected`` (``minus2``, ``minus1``, ``median``, ``plus1``, ``plus2``:
            one list each, over the scan), ``level``, ``limit_observed`` and
            ``limit_expected`` (the same five keys);
        ``impacts``
            ``None`` without ``impacts``; else the fields of each
            :class:`~ratiofit.inference.Impact` and its ``size`` (the ranking key),
            largest first.
    """
    pdf = binned_model.model
    cfg = pdf.config
    with _numpy_minuit():
        pre_pars, pre_cov = _prior(pdf)
        prefit = _stage(pdf, pre_pars, pre_cov)
        post_pars = np.asarray(fit_result.values, dtype=np.float64)
        postfit = _stage(pdf, post_pars, np.asarray(fit_result.covariance, dtype=np.float64))
    observed = np.asarray(binned_model.data, dtype=np.float64)[:cfg.nmaindata]
    members, signal = _channel_samples(pdf), _signal_samples(pdf)
    channels: dict[str, Any] = {}
    # the channels in the model spec's order (the analysis's), not pyhf's sorted one
    for name in members:
        sl = cfg.channel_slices[name]
        nbins = sl.stop - sl.start
        edges = binned_model.edges.get(name, list(range(nbins + 1)))
        entry: dict[str, Any] = {"edges": _floats(edges), "observed": _floats(observed[sl]),
                                 "signal_samples": [s for s in cfg.samples
                                                    if s in members[name] and s in signal]}
        for stage, (by_sample, band) in (("prefit", prefit), ("postfit", postfit)):
            samples = {s: _floats(by_sample[s][sl]) for s in cfg.samples if s in members[name]}
            # the stack's top, so that what is drawn adds up to what is quoted
            total = np.sum([by_sample[s][sl] for s in samples], axis=0)
            entry[stage] = {"samples": samples, "total": _floats(total),
                            "band": _floats(band[sl])}
        channels[name] = entry
    return _with_fit(channels, fit_result, upper_limit, impacts)


def unbinned_plot_data(model: Any, fit_result: BinnedFitResult, *,
                       binning: dict[str, tuple[str, Sequence[float]]],
                       upper_limit: UpperLimitResult | None = None,
                       impacts: Sequence[Impact] | None = None) -> dict[str, Any]:
    """:func:`plot_data` for an :class:`~ratiofit.inference.UnbinnedModel`, the channels
    drawn as histograms of ``binning`` (channel → (observable, edges)): the observed
    events binned, and each sample's expected counts — its own simulated events, the
    background's weighted by w(x, θ), normalised to its expected yield at the prefit or
    fitted parameters. The band propagates the fit's covariance (prefit: the constraint
    widths) through those counts by central differences, as :func:`plot_data` does."""
    names = list(model.names)

    def counts(values: np.ndarray) -> dict[str, dict[str, np.ndarray]]:
        point = dict(zip(names, (float(v) for v in values), strict=True))
        theta = model.theta(point)
        yields = model.expected_yields(point)
        out: dict[str, dict[str, np.ndarray]] = {}
        for ch in model.channels:
            observable, edges = binning[ch.name]
            out[ch.name] = {}
            for c in ch.components:
                x = c.events.features[:, list(c.events.feature_names).index(observable)]
                w = c.events.event_weights.astype(np.float64)
                if c.log_ratio is None:
                    lw = np.asarray(model.reweighter.log_ratio(features=c.events, theta=theta),
                                    dtype=np.float64)
                    w = w * np.exp(lw - lw.max())
                h = np.histogram(x, bins=np.asarray(edges, dtype=np.float64), weights=w)[0]
                out[ch.name][c.name] = h * (yields[ch.name][c.name] / w.sum())
        return out

    def stage(values: np.ndarray, cov: np.ndarray) -> tuple[dict[str, Any], dict[str, Any]]:
        base = counts(values)
        jac: dict[str, list[np.ndarray]] = {c: [] for c in base}
        for j in range(len(values)):
            step = 1e-4 * max(float(np.sqrt(max(cov[j, j], 0.0))), 1e-3)
            if cov[j, j] <= 0:
                for c in base:
                    jac[c].append(np.zeros(len(next(iter(base[c].values())))))
                continue
            up, down = values.copy(), values.copy()
            up[j] += step
            down[j] -= step
            cu, cd = counts(up), counts(down)
            for c in base:
                jac[c].append(np.asarray(sum(cu[c].values()) - sum(cd[c].values()),
                                         dtype=np.float64) / (2 * step))
        bands = {c: np.sqrt(np.clip(np.einsum("jb,jk,kb->b", np.array(jac[c]), cov,
                                              np.array(jac[c])), 0.0, None)) for c in base}
        return base, bands

    post_values = np.asarray(fit_result.values, dtype=np.float64)
    prior = np.array([float(model.start[n]) if n not in model.constraints
                      else float(model.constraints[n][1]) for n in names])
    prior_cov = np.diag([float(model.constraints[n][2]) ** 2 if n in model.constraints
                         else 0.0 for n in names])
    stages = {"prefit": stage(prior, prior_cov),
              "postfit": stage(post_values, np.asarray(fit_result.covariance, np.float64))}
    channels: dict[str, Any] = {}
    for ch in model.channels:
        observable, edges = binning[ch.name]
        x = ch.data.features[:, list(ch.data.feature_names).index(observable)]
        observed = np.histogram(x, bins=np.asarray(edges, dtype=np.float64),
                                weights=ch.data.event_weights)[0]
        entry: dict[str, Any] = {"edges": _floats(edges), "observed": _floats(observed),
                                 "signal_samples": [c.name for c in ch.components
                                                    if c.poi is not None]}
        for key, (by_sample, bands) in stages.items():
            samples = {s: _floats(v) for s, v in by_sample[ch.name].items()}
            entry[key] = {"samples": samples,
                          "total": _floats(np.sum(list(by_sample[ch.name].values()), axis=0)),
                          "band": _floats(bands[ch.name])}
        channels[ch.name] = entry
    return _with_fit(channels, fit_result, upper_limit, impacts)
