"""The exact mode's custom pyhf modifier ``ratiofit_morph``: a reweighter's own θ dependence.

:func:`morphing_modifier_set` returns pyhf's HistFactory modifiers plus a modifier type
``ratiofit_morph``, registered through ``modifier_set``: its applier evaluates a
:class:`TemplateMorphing` of h_b(θ) fitted on a θ grid (one :class:`MorphEntry` per
nuisance, channel and sample), so the fit follows the reweighter's own θ dependence rather
than an interpolation between ±1σ templates. Its parameter is declared
``constrained_by_normal`` (auxiliary datum 0, width 1) in the builder's required parameter
set, so pyhf's own constraint term covers it: no workaround is needed. A model built with
it (:func:`~ratiofit.inference.exact_model`) lives in memory only (its modifier is Python
code).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from .errors import InferenceError
from .templates import TemplateMorphing

__all__ = ["MORPH_MODIFIER", "MorphEntry", "morphing_modifier_set"]

MORPH_MODIFIER = "ratiofit_morph"
Op = Literal["additive", "multiplicative"]


@dataclass(frozen=True)
class MorphEntry:
    """One (nuisance, channel, sample) morphing, with the θ mapping of its nuisance."""

    morphing: TemplateMorphing
    nominal: float
    sigma: float
    reference: np.ndarray  # the morphing at θ₀: the variation is taken relative to it
    op: Op

    def modification(self, alpha: np.ndarray) -> np.ndarray:
        """``[batch, n_bins]`` delta (additive) or factor (multiplicative) at α.

        α is held inside :attr:`bounds`, the parameter's declared bounds: only the finite
        differences of a fit pinned at a bound step past it (coverage repeats reached
        θ = 0.79996 on a grid from 0.8), and the fit reports such a pin
        (``inference_stage``: a nuisance at the edge of the reweighter's range)."""
        lo, hi = self.bounds
        values = self.morphing.value(self.nominal + self.sigma * np.clip(alpha, lo, hi))
        if self.op == "additive":
            return values - self.reference  # type: ignore[no-any-return]
        safe = np.where(self.reference > 0, self.reference, 1.0)
        return np.where(self.reference > 0, values / safe, 1.0)  # type: ignore[no-any-return]

    @property
    def bounds(self) -> tuple[float, float]:
        g = self.morphing.grid
        return ((g[0] - self.nominal) / self.sigma, (g[-1] - self.nominal) / self.sigma)


def morphing_modifier_set(entries: Mapping[str, MorphEntry], *, op: Op
                          ) -> dict[str, tuple[type, type]]:
    """pyhf's HistFactory modifiers plus ``ratiofit_morph`` evaluating ``entries``.

    pyhf 0.7 builds a model from a ``modifier_set``: modifier type → (builder, applier).
    For each spec modifier of our type, ``data = {"entry": KEY}`` names a morphing in
    ``entries``. The builder records, per sample and channel, which entry applies and
    declares the parameter ``constrained_by_normal`` (auxiliary datum 0, width 1, bounds =
    the morphing grid in α), which gives it pyhf's Gaussian constraint. The applier returns,
    like ``histosys``, a tensor ``[n_modifiers, n_samples, batch, n_bins]`` of per-bin
    deltas (op ``addition``) or factors (op ``multiplication``) evaluated at θ = θ₀ + σα.
    Numpy backend only: the morphing is numpy code.
    """
    import pyhf

    op_code = {"additive": "addition", "multiplicative": "multiplication"}[op]
    neutral = 0.0 if op == "additive" else 1.0

    class MorphBuilder:
        """Collects which morphing entry applies to each (sample, channel)."""

        is_shared = True

        def __init__(self, config: Any) -> None:
            self.config = config
            self.builder_data: dict[str, Any] = {}
            self.required_parsets: dict[str, list[dict[str, Any]]] = {}

        def append(self, key: str, channel: str, sample: str, thismod: Any,
                   defined_samp: Any) -> None:
            nbins = self.config.channel_nbins[channel]
            entry_key = None
            if thismod:
                entry_key = thismod["data"]["entry"]
                if entry_key not in entries:
                    raise InferenceError(f"{MORPH_MODIFIER} modifier '{thismod['name']}': "
                                         f"unknown morphing entry '{entry_key}'")
                entry = entries[entry_key]
                if entry.morphing.n_bins != nbins:
                    raise InferenceError(f"{MORPH_MODIFIER} '{thismod['name']}' on sample "
                                         f"'{sample}': morphing has {entry.morphing.n_bins} "
                                         f"bins, channel '{channel}' has {nbins}")
                lo, hi = entry.bounds
                # the same name on several samples/channels must ask for the same parset
                self.required_parsets.setdefault(thismod["name"], [{
                    "paramset_type": "constrained_by_normal", "n_parameters": 1,
                    "is_scalar": True, "inits": (0.0,), "bounds": ((lo, hi),),
                    "fixed": False, "auxdata": (0.0,)}])
            self.builder_data.setdefault(key, {}).setdefault(sample, []).append(
                (channel, nbins, entry_key))

        def finalize(self) -> dict[str, Any]:
            return self.builder_data

    class MorphApplier:
        """Evaluates the morphing entries at the current parameter values."""

        name = MORPH_MODIFIER

        def __init__(self, modifiers: Sequence[tuple[str, str]], pdfconfig: Any,
                     builder_data: Any, batch_size: int | None = None, **settings: Any) -> None:
            if settings:
                raise InferenceError(f"{MORPH_MODIFIER} takes no modifier settings, got "
                                     f"{sorted(settings)}")
            self.batch_size = batch_size
            self.n_samples = len(pdfconfig.samples)
            self.n_bins = int(sum(pdfconfig.channel_nbins.values()))
            self.plan: list[tuple[int, int, list[tuple[int, slice, MorphEntry]]]] = []
            for m, (name, mtype) in enumerate(modifiers):
                segments = []
                for s_index, sample in enumerate(pdfconfig.samples):
                    offset = 0
                    # appended channel by channel in pdfconfig.channels order: the global
                    # bin order of pyhf's mega-channel
                    for _channel, nbins, entry_key in builder_data[f"{mtype}/{name}"][sample]:
                        if entry_key is not None:
                            segments.append((s_index, slice(offset, offset + nbins),
                                             entries[entry_key]))
                        offset += nbins
                self.plan.append((m, pdfconfig.par_slice(name).start, segments))

        def apply(self, pars: Any) -> Any:
            if not self.plan:
                return None
            tensorlib, _ = pyhf.get_backend()
            if tensorlib.name != "numpy":
                raise InferenceError(f"{MORPH_MODIFIER} needs pyhf's numpy backend, not "
                                     f"'{tensorlib.name}'")
            p = np.asarray(pars, dtype=np.float64)
            p = p[None, :] if self.batch_size is None else p.reshape(self.batch_size, -1)
            out = np.full((len(self.plan), self.n_samples, p.shape[0], self.n_bins), neutral)
            for m, index, segments in self.plan:
                alpha = p[:, index]
                for s_index, bins, entry in segments:
                    out[m, s_index, :, bins] = entry.modification(alpha)
            return out

    MorphApplier.op_code = op_code  # type: ignore[attr-defined]
    return {**pyhf.modifiers.histfactory_set, MORPH_MODIFIER: (MorphBuilder, MorphApplier)}
