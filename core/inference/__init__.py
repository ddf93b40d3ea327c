"""Statistical inference with trained reweighters as nuisance parameters.

Binned (pyhf), one module per concept: :mod:`ratiofit.inference.templates` fills reweighted
templates h_b(θ) = Σ w₀ᵢ·w(xᵢ, θ) and morphs them in θ;
:mod:`ratiofit.inference.binned_templates` holds the model's inputs (channels, samples,
reweighter nuisances) and fills their templates; :mod:`ratiofit.inference.pyhf_model`
builds the pyhf model from them, portable (the HistFactory workspace of
:mod:`ratiofit.inference.pyhf_workspace`) or exact (the custom modifier of
:mod:`ratiofit.inference.morph_modifier`); :mod:`ratiofit.inference.binned_fit` fits,
tests and ranks nuisances on it (guide-searches.md Sec. 3–4);
:mod:`ratiofit.inference.binned_cost` writes the same likelihood as an iminuit cost.
The learned ratio's own error enters as constrained ``histosys`` modifiers built from the
reweighter's bootstrap replicas (:mod:`ratiofit.inference.learned`).
:mod:`ratiofit.inference.plot_data` turns a binned fit into the numbers its plots draw.
Unbinned (iminuit): the extended likelihood of guide-searches.md Eq. 3.7–3.8 with
per-event log-ratios, one module per concept: :mod:`ratiofit.inference.nuisances` (what
is profiled), :mod:`ratiofit.inference.grid` (θ-grid interpolation of log w),
:mod:`ratiofit.inference.caches` (network caching), :mod:`ratiofit.inference.normalisation`
(Z(θ) over a reference sample), :mod:`ratiofit.inference.costs` (the unbinned and binned
costs), :mod:`ratiofit.inference.unbinned_fit` (the fit driver) and
:mod:`ratiofit.inference.toys` (toys and coverage). The unbinned model an ``inference``
section declares (channels, samples, yields, standard modifiers):
:mod:`ratiofit.inference.unbinned_model`, fitted and tested by
:mod:`ratiofit.inference.unbinned_analysis` (its pseudo-experiments and toy-based CLs:
:mod:`ratiofit.inference.unbinned_toys`); an analysis's own workspace with learned
nuisances added: :mod:`ratiofit.inference.workspace_merge`.
"""

from __future__ import annotations

from .binned_cost import HistFactoryNLL, fit_binned_iminuit
from .binned_fit import (
    BinnedFitResult,
    CLsResult,
    Impact,
    Pull,
    UpperLimitResult,
    fit,
    hypotest,
    impacts,
    upper_limit,
)
from .binned_templates import (
    BinnedTemplates,
    Channel,
    ChannelTemplates,
    ReweighterNuisance,
    Sample,
    SampleTemplates,
    StandardModifier,
    add_learned_ratio,
    build_templates,
)
from .costs import ExtendedUnbinnedNLL, ReweightedBinnedNLL, signal_log_ratio_from_classifier
from .errors import InferenceError
from .grid import LogRatioGrid
from .learned import (
    LearnedRatioTerm,
    NonClosureTerm,
    learned_ratio_term,
    nonclosure_term,
    unbinned_replica_budget,
)
from .morph_modifier import MORPH_MODIFIER, MorphEntry, morphing_modifier_set
from .normalisation import ReferenceNormalisation
from .nuisances import NormFactor, Nuisance
from .plot_data import plot_data
from .pyhf_model import (
    BinnedModel,
    asimov_data,
    exact_model,
    expected_by_sample,
    parameter_vector,
    portable_model,
)
from .pyhf_workspace import portable_workspace, write_workspace
from .templates import (
    FlowCounts,
    FlowPolicy,
    Template,
    TemplateMorphing,
    histogram_template,
    reweighted_template,
)
from .toys import CoverageResult, Toy, coverage, generate_toy
from .unbinned_analysis import (
    fit_model,
    hypotest_model,
    impacts_model,
    profile_scan_model,
    upper_limit_model,
)
from .unbinned_fit import ProfileScan, UnbinnedFitResult, fit_unbinned
from .unbinned_model import (
    UnbinnedChannel,
    UnbinnedComponent,
    UnbinnedModel,
    UnbinnedModelNLL,
    UnbinnedNuisance,
)
from .unbinned_toys import ToyCLsResult, hypotest_toys, sample_toy
from .workspace_merge import add_learned_nuisances

__all__ = [
    "MORPH_MODIFIER",
    "BinnedFitResult",
    "BinnedModel",
    "BinnedTemplates",
    "CLsResult",
    "Channel",
    "ChannelTemplates",
    "CoverageResult",
    "ExtendedUnbinnedNLL",
    "FlowCounts",
    "FlowPolicy",
    "HistFactoryNLL",
    "Impact",
    "InferenceError",
    "LearnedRatioTerm",
    "LogRatioGrid",
    "MorphEntry",
    "NonClosureTerm",
    "NormFactor",
    "Nuisance",
    "ProfileScan",
    "Pull",
    "ReferenceNormalisation",
    "ReweightedBinnedNLL",
    "ReweighterNuisance",
    "Sample",
    "SampleTemplates",
    "StandardModifier",
    "Template",
    "TemplateMorphing",
    "Toy",
    "ToyCLsResult",
    "UnbinnedChannel",
    "UnbinnedComponent",
    "UnbinnedFitResult",
    "UnbinnedModel",
    "UnbinnedModelNLL",
    "UnbinnedNuisance",
    "UpperLimitResult",
    "add_learned_nuisances",
    "add_learned_ratio",
    "asimov_data",
    "build_templates",
    "coverage",
    "exact_model",
    "expected_by_sample",
    "fit",
    "fit_binned_iminuit",
    "fit_model",
    "fit_unbinned",
    "generate_toy",
    "histogram_template",
    "hypotest",
    "hypotest_model",
    "hypotest_toys",
    "impacts",
    "impacts_model",
    "learned_ratio_term",
    "morphing_modifier_set",
    "nonclosure_term",
    "parameter_vector",
    "plot_data",
    "portable_model",
    "portable_workspace",
    "profile_scan_model",
    "reweighted_template",
    "sample_toy",
    "signal_log_ratio_from_classifier",
    "unbinned_replica_budget",
    "upper_limit",
    "upper_limit_model",
    "write_workspace",
]
