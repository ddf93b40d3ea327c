"""The plugin API of ratiofit: pluggy hook specifications.

A plugin is a module (or any object) that implements one or more of the hooks below,
marked with :data:`hookimpl`, and is announced through the ``ratiofit`` entry-point
group of its distribution::

    # pyproject.toml of a third-party package
    [project.entry-points.ratiofit]
    my_arch = "my_package.my_arch"

    # my_package/my_arch.py
    from ratiofit.hookspecs import hookimpl

    @hookimpl
    def ratiofit_architectures():
        return [MyArchitecture()]

Each hook returns a list of plugin objects of one kind; every object has a unique
``name`` within its kind and satisfies the matching Protocol of :mod:`ratiofit.plugin_api`
(:class:`~ratiofit.plugin_api.Architecture`, :class:`~ratiofit.plugin_api.Loss`,
:class:`~ratiofit.plugin_api.Strategy`, :class:`~ratiofit.plugin_api.Source`,
:class:`~ratiofit.plugin_api.Study`).
The built-ins in ``ratiofit.plugins`` use exactly this path. Test a plugin with
:func:`ratiofit.testing.check_plugin`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from .plugin_api import Architecture, Loss, Source, Strategy, Study

__all__ = ["PROJECT", "hookimpl", "hookspec"]

PROJECT = "ratiofit"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def ratiofit_architectures() -> list[Architecture]:  # type: ignore[empty-body]
    """Return architecture plugins: Keras model builders.

    Each object has ``name``, ``options`` (a mapping of :class:`~ratiofit.options.Option`)
    and ``build(*, signature, output_activation, options)`` returning a Keras model with
    inputs ``features`` ``[n, d]`` and ``theta`` ``[n, p]`` and one output ``[n, 1]``.
    """


@hookspec
def ratiofit_losses() -> list[Loss]:  # type: ignore[empty-body]
    """Return loss plugins.

    Each object has ``name``, ``output_activation`` (a Keras activation name applied to
    the network's last layer), ``keras_loss()`` (a per-example loss with the convention
    label 0 = reference, label 1 = target), and ``log_ratio(output)`` mapping the network
    output to log w = log p_target / p_reference (ensembles.md Table I).
    """


@hookspec
def ratiofit_strategies() -> list[Strategy]:  # type: ignore[empty-body]
    """Return fit strategy plugins.

    Each object has ``name``, ``options`` and ``fit(*, problem, options)`` taking a
    :class:`~ratiofit.fitting.FitProblem` and returning a :class:`~ratiofit.fitting.FitResult`.
    """


@hookspec
def ratiofit_sources() -> list[Source]:  # type: ignore[empty-body]
    """Return event source plugins (generators or readers).

    Each object has ``name``, ``options``, ``feature_names(options)`` and
    ``generate(*, n_events, theta, options, rng)`` returning the feature matrix ``[n, d]``
    for events whose per-event parameter values are ``theta`` (name → array ``[n]``).
    A source that knows its density also defines ``log_density(*, features, theta,
    options)``; closure checks then compare with the exact ratio. A source that reads
    files sets ``reads_files = True`` (then ``n_events`` may be ``None``, every row, and
    θ columns are asked for under a reserved option: :class:`ratiofit.plugin_api.Source`).
    """


@hookspec
def ratiofit_studies() -> list[Study]:  # type: ignore[empty-body]
    """Return study plugins: analysis steps named in the spec's ``studies`` section.

    Each object has ``name``, ``options`` and ``run(*, context, options)`` taking a
    :class:`~ratiofit.study.StudyContext` and returning a JSON-able mapping. An optional
    ``check(*, options, samples, parameters)`` validates references when the spec loads.
    """
