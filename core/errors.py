"""Exceptions that the CLI turns into one-line messages (exit status 2).

Every user-facing failure raises a subclass of :class:`RatiofitError`; its ``str`` is the
whole message, already naming the file, line and field (or the plugin) it is about.
"""

from __future__ import annotations

__all__ = [
    "DataError",
    "PluginError",
    "RatiofitError",
    "ReweighterLoadError",
    "SpecError",
]


class RatiofitError(Exception):
    """Base class of errors caused by user input rather than by a bug."""


class SpecError(RatiofitError):
    """A YAML spec is malformed or inconsistent.

    Parameters
    ----------
    message
        What is wrong.
    file, line, field
        Where: the spec file, the 1-based line, the dotted path of the field.
    """

    def __init__(
        self, message: str, *, file: str | None = None, line: int | None = None,
        field: str | None = None,
    ) -> None:
        message = " ".join(message.split())  # always one line
        self.file, self.line, self.field, self.message = file, line, field, message
        where = f"{file or '<spec>'}:{line if line is not None else '?'}"
        super().__init__(f"{where}: {field}: {message}" if field else f"{where}: {message}")


class PluginError(RatiofitError):
    """A plugin failed to load, is duplicated, unknown, or was given bad options."""


class DataError(RatiofitError):
    """Event data are unusable (NaN/inf, wrong shape, theta outside its range)."""


class ReweighterLoadError(RatiofitError):
    """A saved reweighter directory is missing, incomplete or corrupt."""
