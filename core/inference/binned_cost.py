"""The binned HistFactory model as an iminuit cost: the same likelihood as pyhf, in numpy.

:class:`HistFactoryNLL` is −log L of a :class:`~ratiofit.inference.BinnedModel` (either
mode, :mod:`ratiofit.inference.pyhf_model`), written out term by term rather than through
pyhf's ``logpdf``. With n_cb the observed counts, ν_cb(η, χ) the expected counts of bin b
of channel c (free parameters η, constrained χ) and a_χ the auxiliary data, the HistFactory
likelihood (Cranmer et al., CERN-OPEN-2012-016, Eq. 5; pyhf docs, "HistFactory" →
"Likelihood Specification", https://pyhf.readthedocs.io/en/v0.7.6/likelihood.html) is

    L(η, χ) = ∏_c ∏_b Pois(n_cb | ν_cb(η, χ)) · ∏_χ c_χ(a_χ | χ),

so that

    −log L = Σ_cb [ν_cb − n_cb log ν_cb + log Γ(n_cb + 1)] + Σ_χ −log c_χ(a_χ | χ).

The constraint terms c_χ, one per constrained parameter component:

normal (``histosys``, ``normsys``, ``lumi``, ``ratiofit_morph``, ``staterror``)
    c = N(a | χ, σ): −log c = (a − χ)²/(2σ²) + log σ + ½ log 2π, with σ = 1 for the
    interpolation parameters α (``histosys``/``normsys``/``ratiofit_morph``, a = 0 or the
    nuisance's measurement), σ = σ_lumi for ``lumi`` (a = 1) and σ_b = √(Σ_s δ²_sb)/Σ_s ν⁰_sb
    for a ``staterror`` γ_b (a = 1; the Barlow–Beeston-lite relative MC error of the bin);
poisson (``shapesys``)
    c = Pois(a_b | γ_b τ_b) with τ_b = (ν⁰_b/δ_b)² the bin's effective MC count and
    a_b = τ_b: −log c = γ_b τ_b − a_b log(γ_b τ_b) + log Γ(a_b + 1), Γ continuing the
    factorial to non-integer a_b as pyhf does.

All constants (log Γ(n + 1), ½ log 2π, log σ, log Γ(a + 1)) are kept, so the cost equals
−``model.logpdf(pars, data)`` to rounding, not only up to a constant: a profile likelihood
ratio, a twice_nll or a goodness of fit from either side can be compared directly.
The expected counts ν_cb come from pyhf's ``model.expected_actualdata`` (that is how an
exact model's custom ``ratiofit_morph`` modifier and the standard interpolations are
evaluated); the auxiliary data and each constraint's σ or τ are read from the model's
parameter sets, and the Poisson and constraint terms are computed here.

:func:`fit_binned_iminuit` minimises the cost with MIGRAD and HESSE and reports a
:class:`~ratiofit.inference.BinnedFitResult`, like :func:`~ratiofit.inference.fit`
(which minimises pyhf's own objective): the two agree, which checks both.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Mapping, Sequence
from types import SimpleNamespace
from typing import Any

import numpy as np
from iminuit.cost import Cost
from scipy.special import gammaln, xlogy

from .binned_fit import BinnedFitResult, _flat_names, _pulls, _unpack, _where_it_stopped
from .binned_templates import ReweighterNuisance
from .errors import InferenceError
from .pyhf_model import _indices, parameter_vector

__all__ = ["HistFactoryNLL", "fit_binned_iminuit"]

_LIKELIHOOD = 0.5  # errordef of a negative log-likelihood (Minuit.LIKELIHOOD)
_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


@contextlib.contextmanager
def _numpy_backend() -> Iterator[None]:
    """pyhf's numpy backend for the duration (the ``ratiofit_morph`` applier is numpy code),
    then the previous one; no switch (and no re-precomputation) when it is already numpy."""
    import pyhf

    before = pyhf.get_backend()
    switch = before[0].name != "numpy"
    if switch:
        pyhf.set_backend("numpy", before[1])
    try:
        yield
    finally:
        if switch:
            pyhf.set_backend(*before)


class HistFactoryNLL(Cost):
    """−log L of a binned HistFactory model, Poisson terms plus constraint terms, in numpy.

    Parameters
    ----------
    model
        A :class:`~ratiofit.inference.BinnedModel` (exact or portable) or a bare
        :class:`pyhf.pdf.Model`.
    data
        Observed counts (``model.config.channels`` order) followed by the auxiliary data;
        default: the BinnedModel's. Required with a bare model.
    verbose
        iminuit's verbosity (1 prints every call).

    Notes
    -----
    Parameters are pyhf's, in pyhf's order, vector ones expanded as ``name[i]``
    (``model.config.par_names``); :attr:`limits`, :attr:`start` and :attr:`fixed` are
    pyhf's suggested bounds, inits and fixed flags, so ``Minuit(cost, **cost.start)``
    minimises the same problem as ``pyhf.infer.mle.fit``. ``errordef`` is 0.5 (a negative
    log-likelihood). There is no analytic gradient: MIGRAD differences the value. Where a
    parameter point makes an expected count ≤ 0 in a bin with data the Poisson term, like
    pyhf's, is not finite.

    Attributes
    ----------
    observed, auxdata
        The main counts n_cb and the auxiliary data a_χ.
    start, limits, fixed
        pyhf's suggested init, bounds and fixed flags, by parameter name.
    normal_index, normal_aux, normal_sigma
        Flat parameter index, datum a and width σ of each normal constraint.
    poisson_index, poisson_aux, poisson_tau
        Flat parameter index, datum a_b and rate factor τ_b of each Poisson constraint.

    Examples
    --------
    pyhf's one-bin example with an uncorrelated (``shapesys``) background uncertainty:

    >>> import pyhf
    >>> model = pyhf.simplemodels.uncorrelated_background([5.0], [50.0], [7.0])
    >>> data = [55.0, *model.config.auxdata]
    >>> cost = HistFactoryNLL(model, data)
    >>> cost.parameter_names
    ['mu', 'uncorr_bkguncrt[0]']
    >>> abs(cost(1.0, 1.1) + float(model.logpdf([1.0, 1.1], data)[0])) < 1e-12
    True
    """

    def __init__(self, model: Any, data: Any = None, *, verbose: int = 0) -> None:
        pdf, d, nuisances = _unpack(model, data, None)
        cfg = pdf.config
        n_main, n_aux = int(cfg.nmaindata), int(cfg.nauxdata)
        if d.shape != (n_main + n_aux,):
            raise InferenceError(f"data have shape {d.shape}, the model needs "
                                 f"({n_main + n_aux},): {n_main} counts + {n_aux} auxiliary")
        self.model = pdf
        self.nuisances: dict[str, ReweighterNuisance] = nuisances
        self.observed = d[:n_main].copy()
        self.auxdata = d[n_main:].copy()
        names = _flat_names(pdf)
        self.start: dict[str, float] = {n: float(v) for n, v in
                                        zip(names, cfg.suggested_init(), strict=True)}
        self.limits: dict[str, tuple[float, float]] = {
            n: (float(lo), float(hi)) for n, (lo, hi) in
            zip(names, cfg.suggested_bounds(), strict=True)}
        self.fixed: dict[str, bool] = {n: bool(f) for n, f in
                                       zip(names, cfg.suggested_fixed(), strict=True)}
        # log Γ(n + 1) does not depend on the parameters: summed once
        self._log_factorials = float(np.sum(gammaln(self.observed + 1.0)))
        self._tables(cfg)
        super().__init__(dict(self.limits), verbose)

    def _tables(self, cfg: Any) -> None:
        """Flat parameter index, auxiliary datum and σ (normal) or τ (Poisson) of every
        constrained component, from the model's parameter sets in pyhf's auxdata order
        (the order of the auxiliary data)."""
        n_idx: list[int] = []
        n_aux: list[float] = []
        n_sigma: list[float] = []
        p_idx: list[int] = []
        p_aux: list[float] = []
        p_tau: list[float] = []
        offset = 0
        for pname in cfg.auxdata_order:
            ps = cfg.param_set(pname)
            first = cfg.par_slice(pname).start
            aux = self.auxdata[offset:offset + ps.n_parameters]
            offset += ps.n_parameters
            idx = range(first, first + ps.n_parameters)
            if ps.pdf_type == "normal":
                # width() is σ where the parset defines one (lumi, staterror), else 1
                n_idx += idx
                n_aux += aux.tolist()
                n_sigma += [float(s) for s in ps.width()]
            elif ps.pdf_type == "poisson":
                # shapesys: the rate factors τ_b = (ν⁰_b/δ_b)²
                p_idx += idx
                p_aux += aux.tolist()
                p_tau += [float(f) for f in ps.factors]
            else:
                raise InferenceError(f"parameter '{pname}': unknown constraint type "
                                     f"'{ps.pdf_type}'")
        if offset != len(self.auxdata):
            raise InferenceError(f"the constraints use {offset} auxiliary data, the data "
                                 f"carry {len(self.auxdata)}")
        self.normal_index = np.asarray(n_idx, dtype=np.intp)
        self.normal_aux = np.asarray(n_aux, dtype=np.float64)
        self.normal_sigma = np.asarray(n_sigma, dtype=np.float64)
        self.poisson_index = np.asarray(p_idx, dtype=np.intp)
        self.poisson_aux = np.asarray(p_aux, dtype=np.float64)
        self.poisson_tau = np.asarray(p_tau, dtype=np.float64)
        # the constraints' parameter-free parts, summed once
        self._normal_norm = float(np.sum(np.log(self.normal_sigma)) +
                                  _HALF_LOG_2PI * len(self.normal_sigma))
        self._poisson_norm = float(np.sum(gammaln(self.poisson_aux + 1.0)))

    # -- iminuit Cost interface -------------------------------------------------------------
    def _errordef(self) -> float:
        return _LIKELIHOOD

    def _ndata(self) -> int:
        return len(self.observed)

    def _has_grad(self) -> bool:
        return False

    def _grad(self, args: Sequence[float]) -> np.ndarray:
        raise InferenceError("HistFactoryNLL has no analytic gradient")

    def _value(self, args: Sequence[float]) -> float:
        pars = np.asarray(args, dtype=np.float64)
        return self.main_nll(pars) + self.constraint_nll(pars)

    # -- the likelihood ---------------------------------------------------------------------
    @property
    def parameter_names(self) -> list[str]:
        """pyhf's flat parameter names, in the order of the cost's arguments."""
        return list(self._parameters)

    def expected(self, pars: Any) -> np.ndarray:
        """ν_cb: the expected counts of all channels' bins (pyhf's channel order)."""
        with _numpy_backend():
            nu = self.model.expected_actualdata(np.asarray(pars, dtype=np.float64))
        return np.asarray(nu, dtype=np.float64)

    def main_nll(self, pars: Any) -> float:
        """Σ_cb [ν_cb − n_cb log ν_cb + log Γ(n_cb + 1)], the Poisson part of −log L
        (xlogy: an empty bin contributes ν_cb even where ν_cb = 0)."""
        nu = self.expected(pars)
        return float(np.sum(nu - xlogy(self.observed, nu))) + self._log_factorials

    def constraint_nll(self, pars: Any) -> float:
        """Σ_χ −log c_χ(a_χ | χ): the normal and Poisson constraint terms (module docstring)."""
        p = np.asarray(pars, dtype=np.float64)
        z = (self.normal_aux - p[self.normal_index]) / self.normal_sigma
        rate = p[self.poisson_index] * self.poisson_tau
        return (0.5 * float(np.sum(z * z)) + self._normal_norm
                + float(np.sum(rate - xlogy(self.poisson_aux, rate))) + self._poisson_norm)


def fit_binned_iminuit(model: Any, data: Any = None, *,
                       nuisances: Mapping[str, ReweighterNuisance] | None = None,
                       init: Mapping[str, Any] | None = None,
                       fixed: Mapping[str, Any] | None = None,
                       tolerance: float = 0.1, strategy: int = 1) -> BinnedFitResult:
    """Maximum-likelihood fit of :class:`HistFactoryNLL` with MIGRAD, errors from HESSE.

    The same problem as :func:`~ratiofit.inference.fit` (pyhf's objective through
    ``pyhf.infer.mle.fit``): the same parameters, bounds, starting point, fixed flags and
    initial steps (1/1000 of each range, as pyhf's minuit optimizer), on a cost that
    computes the likelihood itself.

    Parameters
    ----------
    model, data, nuisances, init, fixed
        As for :func:`~ratiofit.inference.fit`.
    tolerance
        MIGRAD's tolerance (EDM < 0.002·tolerance·errordef; pyhf's default 0.1).
    strategy
        MINUIT's strategy (1, as pyhf without a gradient).

    Returns
    -------
    BinnedFitResult
        ``twice_nll`` = 2·NLL at the minimum, comparable with :func:`fit`'s.

    Raises
    ------
    InferenceError
        When MIGRAD's minimum is not valid.
    """
    from iminuit import Minuit

    pdf, d, nus = _unpack(model, data, nuisances)
    cost = HistFactoryNLL(pdf, d)
    names = cost.parameter_names
    start = parameter_vector(pdf, {**(init or {}), **(fixed or {})})
    is_fixed = [cost.fixed[n] for n in names]
    for name in fixed or {}:
        for i in _indices(pdf, name):
            is_fixed[i] = True
    m = Minuit(cost, *start.tolist(), name=names)
    for i, name in enumerate(names):
        lo, hi = cost.limits[name]
        m.limits[name] = (lo, hi)
        m.errors[name] = (hi - lo) / 1000.0
        m.fixed[name] = is_fixed[i]
    m.tol = tolerance
    m.strategy = strategy
    m.migrad()
    if not m.valid:
        where = _where_it_stopped(pdf, SimpleNamespace(result=SimpleNamespace(
            x=np.asarray(m.values, dtype=np.float64))))
        raise InferenceError(f"the iminuit fit did not converge (EDM {m.fmin.edm:.3g}, "
                             f"{m.nfcn} calls){where}")
    m.hesse()
    values = np.asarray(m.values, dtype=np.float64)
    errors = np.where(is_fixed, 0.0, np.asarray(m.errors, dtype=np.float64))
    cov = np.asarray(m.covariance, dtype=np.float64)
    scale = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    with np.errstate(divide="ignore", invalid="ignore"):
        corr = np.where(np.outer(scale, scale) > 0, cov / np.outer(scale, scale), 0.0)
    return BinnedFitResult(names=tuple(names), values=values, errors=errors, correlation=corr,
                           twice_nll=2.0 * float(m.fval), poi=str(pdf.config.poi_name),
                           pulls=_pulls(pdf, values, errors, nus), valid=bool(m.valid),
                           nfev=int(m.nfcn))
