"""Protocols that plugin objects satisfy (structural typing, no base class required).

The hook specifications in :mod:`ratiofit.hookspecs` return lists of these objects.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from .options import Option

if TYPE_CHECKING:
    from .fitting import FitProblem, FitResult

__all__ = ["KINDS", "THETA_COLUMNS", "Architecture", "InputSignature", "Loss", "Source",
           "Strategy", "Study"]

#: The plugin kinds and the hook that provides each.
KINDS: dict[str, str] = {
    "architecture": "ratiofit_architectures",
    "loss": "ratiofit_losses",
    "strategy": "ratiofit_strategies",
    "source": "ratiofit_sources",
    "study": "ratiofit_studies",
}

#: The reserved key under which a sample's ``options`` carry the θ columns it reads from
#: its files (see :class:`Source`): parameter → ``{"column": name, "range": [low, high]}``.
THETA_COLUMNS = "_theta_columns"


@dataclass(frozen=True)
class InputSignature:
    """What a network sees and how each input is standardised.

    Model inputs (Keras input names), each present only when its names are non-empty:

    - ``features``: ``[n, d]`` flat per-event features (``feature_names``);
    - ``particles``: ``[n, m, k]`` per-particle fields (``particle_names``), zero-padded to
      the batch's longest event, with ``mask``: ``[n, m]`` (1 = real particle, 0 = padding);
      ``m`` varies from batch to batch, so architectures must accept ``None`` there;
    - ``theta``: ``[n, p]`` generation parameters (``theta_names``), one row per event
      (never per particle), entering standardised to [-1, 1] over its range.

    Means and widths are measured on the training split (particles: over real particles
    only) and are meant for fixed ``Normalization`` layers inside the model.
    """

    feature_names: tuple[str, ...]
    feature_mean: tuple[float, ...]
    feature_std: tuple[float, ...]
    theta_names: tuple[str, ...]
    theta_centre: tuple[float, ...]
    theta_half_width: tuple[float, ...]
    particle_names: tuple[str, ...] = ()
    particle_mean: tuple[float, ...] = ()
    particle_std: tuple[float, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) for k, v in self.__dict__.items()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> InputSignature:
        return cls(**{k: tuple(v) for k, v in d.items()})


@runtime_checkable
class Architecture(Protocol):
    name: str
    options: Mapping[str, Option]

    def build(self, *, signature: InputSignature, output_activation: str,
              options: Mapping[str, Any]) -> Any:
        """Return an uncompiled Keras model from the inputs named in ``signature`` to ``[n, 1]``.

        Optional hooks, looked up with ``getattr``:

        ``custom_objects() -> dict[str, type]``
            for custom layers; saved models are loaded (``safe_mode``) with those objects;
        ``split(model) -> (embed, head)``
            where θ enters late: ``embed`` maps the θ-free inputs to an embedding,
            ``head`` maps (embedding, θ) to the output; the reweighter then evaluates
            ``embed`` once per event set and only ``head`` per θ (a fit's many θ points).
        """
        ...


@runtime_checkable
class Loss(Protocol):
    name: str
    output_activation: str

    def keras_loss(self) -> Any:
        """A Keras loss (callable ``(y_true, y_pred)``; label 1 = target). With
        ``reweighter.labels: exact`` it also gets soft labels y = w/(1 + w) with sample
        weight 1 + w (:mod:`ratiofit.exact_labels`): its optimum is then right where it
        has the form y A(f) + (1 − y) B(f), up to a term free of f (every built-in does)."""
        ...

    def log_ratio(self, output: Any) -> Any:
        """Map network output ``[n, 1]`` to log w ``[n, 1]`` with keras.ops (numpy works too)."""
        ...


@runtime_checkable
class Strategy(Protocol):
    """A fit of θ. A strategy that minimises a smooth objective may also define
    ``objective(problem, options) -> ratiofit.fitting.Objective`` (value and gradient in
    the fitted θ): the bootstrap replicas of :mod:`ratiofit.uncertainty` are then refitted
    by Newton steps on it instead of a full fit.

    A strategy may also define ``check(*, options, samples, parameters)``, which ``ratiofit
    validate`` (and every run, before training) calls with the validated options, the
    spec's samples and parameters; it raises ``ValueError`` (with a ``field`` attribute
    naming the option) for settings that could only fail later, e.g. SRGN's
    ``architecture_options`` for its classifier g."""

    name: str
    options: Mapping[str, Option]

    def fit(self, *, problem: FitProblem, options: Mapping[str, Any]) -> FitResult: ...


@runtime_checkable
class Source(Protocol):
    """Makes events from options and per-event θ.

    ``generate`` returns either an ``[n_events, d]`` feature array (columns named by
    ``feature_names``) or an :class:`~ratiofit.events.EventSet` carrying features and/or
    jagged particles. An EventSet that has θ columns for the sample's varied parameters
    replaces the drawn ``theta`` with them (a generator that re-initialises per block of
    events reports the θ each event was actually made with). A generator that knows each
    event's probability ratio to other θ values returns them as the EventSet's
    ``alt_weights`` (:class:`~ratiofit.events.AltWeights`); the sample keeps them.

    Optional members, looked up with ``getattr``:

    ``check(*, options, theta)``
        ``theta`` maps each parameter the sample uses to its ``(low, high)`` values; it
        raises ``ValueError`` for settings the generator would reject, so a spec fails
        before any generation starts (an exception with a ``field`` attribute points the
        error at that option);
    ``particle_fields(options) -> Sequence[str]``
        the per-particle fields of the jagged ``particles`` it generates (a spec's
        ``reweighter.inputs.particles`` is checked against them);
    ``alt_weight_theta(options) -> Sequence[Mapping[str, float]] | None``
        the θ of each alternative-weight column its EventSets carry (each: parameter →
        the value the column moves it to; empty: none; ``None``: it cannot tell before
        generating). A spec's ``reweighter.labels: exact`` (training on the reference's
        exact weights, :mod:`ratiofit.exact_labels`) is checked against it, and refused
        for a source without it;
    ``log_density(*, features, theta, options)``
        the exact log p(x|θ), where the source knows it: closure checks and coverage then
        compare with the exact ratio and likelihood;
    ``reads_files = True``
        it reads data rather than generating them (it cannot simulate at a fitted θ: no
        simulation correction or non-closure term). For such a source:

        - ``n_events`` may be ``None``: every row (after the source's own selection), and
          ``theta`` is then empty (the sample's fixed θ values are filled in afterwards);
          an ``n_events`` larger than the rows available is an error, never a shorter
          sample;
        - a sample cannot draw θ at random; it fixes θ, or reads it per event from a
          column (``theta: {mu: {column: mu_gen}}``). Those columns reach the source in
          ``options[THETA_COLUMNS]`` (the reserved key ``"_theta_columns"``, in
          ``check``, ``feature_names`` and ``generate`` alike) as parameter →
          ``{"column": name, "range": [low, high]}``; the EventSet returned carries θ
          columns named by the *parameter*, and refuses values outside the range naming
          the file, column and row. ``check`` raises with ``field = "theta.<parameter>"``
          for a θ column it cannot read. ``ratiofit.file_events`` has the shared checks.
    """

    name: str
    options: Mapping[str, Option]

    def feature_names(self, options: Mapping[str, Any]) -> Sequence[str]: ...

    def generate(self, *, n_events: int, theta: Mapping[str, np.ndarray],
                 options: Mapping[str, Any], rng: np.random.Generator) -> Any: ...


@runtime_checkable
class Study(Protocol):
    """A self-contained analysis step run after training, fit and inference.

    Studies carry the method-specific workflows that are not a single fit of θ (an NCR
    comparison, an SRGN landscape, ensemble ROC curves...). The spec's ``studies`` section
    names them; ``run`` receives a :class:`~ratiofit.study.StudyContext` (the validated
    spec, its samples, the registry, the trained reweighter if any, an output directory
    and a seed) and returns a JSON-able mapping stored under ``result.json["studies"]``.

    A study may also define ``check(*, options, samples, parameters)``, called when the
    spec is validated, raising ``ValueError`` (with a ``field`` attribute naming the
    option) for references to undefined samples or parameters.
    """

    name: str
    options: Mapping[str, Option]

    def run(self, *, context: Any, options: Mapping[str, Any]) -> Mapping[str, Any]: ...
