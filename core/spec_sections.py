"""Declared spec sections: each field's :class:`~ratiofit.options.Option` is its type,
default, bounds, choices and documentation at once.

Validation (:func:`_declared_section`), the resolved spec written into a run directory
(:func:`ratiofit.spec.resolved_dict`) and the generated spec reference (``make docs``,
docs/plugins.md) are all derived from these declarations.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any

from ._spec_yaml import Path_, _Ctx
from .options import Option, OptionError

__all__ = ["CalibrationSpec", "EnsembleSpec", "OutputsSpec", "RatioTrainingSpec",
           "TrainingSpec", "UncertaintySpec", "declared", "section_options"]


def declared(option: Option) -> Any:
    """A field of a declared spec section: ``option`` (:class:`~ratiofit.options.Option`)
    is its type, default, bounds and documentation at once; :func:`section_options` reads
    it back for validation (:func:`_declared_section`), the resolved spec
    (:func:`resolved_dict`) and the generated reference (``make docs``)."""
    return field(default=option.default, metadata={"option": option})


def section_options(cls: type) -> dict[str, Option]:
    """The declared options of a spec section's dataclass, in declaration order.

    >>> section_options(TrainingSpec)["epochs"].default
    30
    """
    return {f.name: f.metadata["option"] for f in fields(cls) if "option" in f.metadata}


@dataclass(frozen=True)
class TrainingSpec:
    """``reweighter.training``: how the classifier is trained (:mod:`ratiofit.training`)."""

    epochs: int = declared(Option("int", 30, "Passes over the training sample.", minimum=1))
    batch_size: int = declared(Option("int", 1024, "Events per gradient step.", minimum=1))
    learning_rate: float = declared(Option("float", 2e-3, "Adam's initial learning rate.",
                                           minimum=1e-12))
    schedule: str = declared(Option("str", "cosine", "Learning-rate schedule over the "
                                    "training: cosine decay to 0, or constant.",
                                    choices=("cosine", "constant")))
    validation_fraction: float = declared(Option(
        "float", 0.2, "Fraction of the events held out for validation (early stopping).",
        minimum=1e-9, maximum=1 - 1e-9))
    patience: int = declared(Option("int", 5, "Epochs without a better validation loss "
                                    "before training stops.", minimum=1))
    class_balance: bool = declared(Option("bool", True, "Weight the two classes to equal "
                                          "totals (the ratio is corrected for it)."))
    checkpoint: bool = declared(Option("bool", True, "Checkpoint every epoch, so an "
                                       "interrupted training resumes."))
    resample_reference_theta: bool = declared(Option(
        "bool", False, "Pair the reference events with fresh θ drawn from the target's θ "
        "every epoch."))
    mixed_precision: bool = declared(Option("bool", False, "float16 compute with float32 "
                                            "variables (GPUs)."))
    restore_best: bool = declared(Option("bool", True, "End with the weights of the best "
                                         "validation epoch."))


@dataclass(frozen=True)
class RatioTrainingSpec(TrainingSpec):
    """``inference.ratio_training``: how the unbinned backend trains each θ-free density
    ratio (a sample against its channel's background, :mod:`ratiofit.unbinned_stage`).
    The reweighter's options with a smaller batch: a signal's ratio to its background
    spans many e-folds within the signal's peak, and at the reweighter's 1024 events per
    step a 10^4-event training made too few steps to learn it (measured on
    specs/inference_analysis.yaml at ``--scale 0.1``: background × r̂ against the signal
    χ²/ndf = 43/19 and 69/19 for two seeds at batch 1024, 23/19 and 17/19 at 256)."""

    batch_size: int = declared(Option("int", 256, "Events per gradient step.", minimum=1))
    checkpoint: bool = declared(Option("bool", False, "Checkpoint every epoch, so an "
                                       "interrupted training resumes."))


@dataclass(frozen=True)
class CalibrationSpec:
    """``reweighter.calibration``: normalisation (log w ← log w − log E_reference[w(x, θ)])
    or moment calibration (also a tilt a(θ)·T(x) matching the target's moments), see
    :mod:`ratiofit.calibration`. Also ``none``, ``normalisation`` or ``moments`` alone."""

    method: str = declared(Option("str", "normalisation", "What is calibrated.",
                                  choices=("normalisation", "moments")))
    points: int = declared(Option("int", 21, "θ points at which E_reference[w] is "
                                  "measured.", minimum=1))
    degree: int = declared(Option("int", 6, "Polynomial degree in θ of the fitted log "
                                  "normalisation (below points).", minimum=0))
    events: int = declared(Option("int", 1_000_000, "Reference events used (at most).",
                                  minimum=1))
    moments: int = declared(Option("int", 1, "Highest feature power matched (method "
                                   "moments only).", minimum=1))
    moment_degree: int = declared(Option("int", 4, "Polynomial degree in θ of the target-"
                                         "moment regression (method moments only).",
                                         minimum=0))


@dataclass(frozen=True)
class OutputsSpec:
    """``outputs``: plots and the closure check against the exact ratio."""

    plots: bool = declared(Option("bool", True, "Draw the plots into RUN/plots."))
    closure: dict[str, list[float]] = field(default_factory=dict, metadata={"option": Option(
        "mapping", {}, "Parameter → θ values at which the reweighting is checked against the "
        "target (and the exact ratio, where the source knows its density); the lists have "
        "one length.")})
    closure_events: int = declared(Option("int", 200_000, "Events per closure point.",
                                          minimum=1))


@dataclass(frozen=True)
class EnsembleSpec:
    """``ensemble``: independently trained reweighters (or a bare integer: ``members``)."""

    members: int = declared(Option("int", 1, "Reweighters trained (each its own seed); "
                                   "member 0 is the run's reweighter.", minimum=1))
    training_samples: str = declared(Option(
        "str", "shared", "shared: every member trains on the same samples; independent: "
        "each on its own draw.", choices=("shared", "independent")))
    average_fit: bool = declared(Option("bool", False, "Also fit with the members' averaged "
                                        "log w (needs 2 members and a fit)."))


@dataclass(frozen=True)
class UncertaintySpec:
    """``uncertainty``: the learned ratio's error (bootstrap replicas), the simulation at
    θ̂ and the closure gate (docs/concepts.md, "Honest errors")."""

    replicas: int = declared(Option("int", 3, "Bootstrap replicas of the reweighter, each "
                                    "retrained and refitted (0: none; else at least 2).",
                                    minimum=0))
    correction: str = declared(Option(
        "str", "simulation", "simulation: the simulation correction at the fitted θ (in "
        "an inference the refit of simulated data, ratiofit.binned_correction and "
        "ratiofit.unbinned_correction; on an analysis's workspace the non-closure "
        "modifier); none: off.",
        choices=("simulation", "none")))
    correction_events: int = declared(Option(
        "int", 10, "Simulated events per expected event in an inference's simulation "
        "correction (ratiofit.binned_correction, ratiofit.unbinned_correction): the "
        "correction's noise, reported in every error, is 1/K of the data's variance; an "
        "unbinned correction's time grows with K.", minimum=1))
    gate: bool = declared(Option("bool", True, "Test the reweighting at the fitted θ after "
                                 "every fit."))
    gate_events: int | None = declared(Option(
        "int", None, "Events simulated at the fitted θ for the correction and per side of "
        "the gate (default: 4x the data sample, at most 10^6).", minimum=100))
    gate_level: float = declared(Option("float", 0.01, "Family-wise significance of the "
                                        "gate's tests.", minimum=1e-12, maximum=1 - 1e-12))


def _declared_section(ctx: _Ctx, body: dict[str, Any], path: Path_, cls: type) -> Any:
    """A declared section (:func:`declared` fields) from ``body``: unknown keys, types,
    choices and bounds checked by each field's :class:`~ratiofit.options.Option`, defaults
    filled in; errors name file, line and field."""
    declared_options = section_options(cls)
    ctx.no_unknown(body, path, list(declared_options))
    values = {}
    for name, option in declared_options.items():
        if name in body and not (option.default is None and body[name] is None):
            try:
                values[name] = option.check(name, body[name])
            except OptionError as exc:
                raise ctx.error((*path, name), exc.message) from None
            if isinstance(values[name], float) and not math.isfinite(values[name]):
                raise ctx.error((*path, name), f"must be a finite number, got {values[name]}")
    return cls(**values)
