"""Declared plugin options: one declaration is the validation and the documentation.

A plugin lists its options as :class:`Option` objects; the spec validator checks the
user's values against them (type, choices, bounds) and fills defaults, and
``ratiofit plugins --options`` prints them. Options of kind ``path`` and ``path_list``
name files: the spec loader makes relative ones absolute against the spec file's
directory (:func:`resolve_paths`), so a resolved spec reruns from anywhere.

Examples
--------
>>> opts = {"hidden": Option(kind="int_list", default=[64, 64], doc="hidden layer sizes")}
>>> resolve_options(opts, {"hidden": [32]}, where="architecture.options")
{'hidden': [32]}
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Option", "OptionError", "check_positive", "resolve_options", "resolve_paths"]

_KINDS = ("int", "float", "bool", "str", "int_list", "float_list", "str_list", "any",
          "number_or_name", "number_or_name_list", "mapping", "path", "path_list")


class OptionError(ValueError):
    """An option value is invalid; ``field`` is the offending option's name."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Option:
    """One option of a plugin.

    Parameters
    ----------
    kind
        One of ``int``, ``float``, ``bool``, ``str``, ``int_list``, ``float_list``,
        ``str_list``, ``number_or_name`` (a number or a parameter name),
        ``number_or_name_list``, ``mapping``, ``any``, ``path`` (a file path) or
        ``path_list`` (a path or glob, or a list of them; normalised to a list).
    default
        Value used when the spec omits the option; ``required=True`` forbids omission.
    doc
        One sentence for the generated reference.
    choices
        Allowed values for ``str`` options.
    minimum, maximum
        Inclusive numeric bounds.
    """

    kind: str
    default: Any = None
    doc: str = ""
    choices: Sequence[Any] | None = None
    required: bool = False
    minimum: float | None = None
    maximum: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ValueError(f"unknown option kind {self.kind!r}; use one of {_KINDS}")

    def check(self, name: str, value: Any) -> Any:
        """Return the validated (possibly normalised) value or raise :class:`OptionError`."""
        k = self.kind

        def is_num(v: Any) -> bool:
            return isinstance(v, int | float) and not isinstance(v, bool)

        checks: dict[str, Callable[[Any], bool]] = {
            "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
            "float": is_num,
            "bool": lambda v: isinstance(v, bool),
            "str": lambda v: isinstance(v, str),
            "int_list": lambda v: isinstance(v, list)
            and all(isinstance(i, int) and not isinstance(i, bool) for i in v),
            "float_list": lambda v: isinstance(v, list) and all(is_num(i) for i in v),
            "str_list": lambda v: isinstance(v, list) and all(isinstance(i, str) for i in v),
            "number_or_name": lambda v: is_num(v) or isinstance(v, str),
            "number_or_name_list": lambda v: is_num(v) or isinstance(v, str) or (
                isinstance(v, list) and all(is_num(i) or isinstance(i, str) for i in v)),
            "mapping": lambda v: isinstance(v, dict),
            "any": lambda v: True,
            "path": lambda v: isinstance(v, str) and bool(v),
            "path_list": lambda v: (isinstance(v, str) and bool(v)) or (
                isinstance(v, list) and bool(v) and all(isinstance(i, str) and i for i in v)),
        }
        if not checks[k](value):
            what = {"path": "a file path", "path_list": "a path or glob, or a list of them"}
            raise OptionError(name, f"expected {what.get(k, k.replace('_', ' '))}, got "
                              f"{value!r}")
        if k == "path_list" and isinstance(value, str):
            value = [value]
        if k == "float":
            value = float(value)
        for v in (value if isinstance(value, list) else [value]):
            if isinstance(v, float) and not math.isfinite(v):
                raise OptionError(name, f"must be a finite number, got {v}")
        if self.choices is not None and value not in self.choices:
            raise OptionError(name, f"must be one of {list(self.choices)}, got {value!r}")
        for v in (value if isinstance(value, list) else [value]):
            if not (isinstance(v, int | float) and not isinstance(v, bool)):
                continue
            if self.minimum is not None and v < self.minimum:
                raise OptionError(name, f"must be >= {self.minimum}, got {v!r}")
            if self.maximum is not None and v > self.maximum:
                raise OptionError(name, f"must be <= {self.maximum}, got {v!r}")
        return value


def resolve_options(
    declared: Mapping[str, Option], given: Mapping[str, Any] | None, *, where: str
) -> dict[str, Any]:
    """Validate ``given`` against ``declared`` and fill defaults.

    Raises :class:`OptionError` naming the first bad or unknown option.
    """
    given = dict(given or {})
    out: dict[str, Any] = {}
    for key in given:
        if key not in declared:
            import difflib

            close = difflib.get_close_matches(key, list(declared), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else (
                f"; known options: {', '.join(sorted(declared)) or 'none'}")
            raise OptionError(key, f"unknown option '{key}'{hint}")
    for key, opt in declared.items():
        if key in given:
            out[key] = opt.check(key, given[key])
        elif opt.required:
            raise OptionError(key, f"required option '{key}' is missing")
        else:
            out[key] = opt.default
    return out


def resolve_paths(declared: Mapping[str, Option], values: Mapping[str, Any],
                  base: str | os.PathLike[str]) -> dict[str, Any]:
    """``values`` with every ``path`` / ``path_list`` option made absolute: ``~`` expanded,
    relative paths (and globs) taken relative to the directory ``base``.

    >>> opts = {"files": Option(kind="path_list"), "n": Option(kind="int")}
    >>> resolve_paths(opts, {"files": ["a/*.root", "/data/b.root"], "n": 3}, "/work/spec")
    {'files': ['/work/spec/a/*.root', '/data/b.root'], 'n': 3}
    """

    def one(p: str) -> str:
        return os.path.normpath(os.path.join(base, os.path.expanduser(p)))

    out = dict(values)
    for key, opt in declared.items():
        v = out.get(key)
        if v is None or opt.kind not in ("path", "path_list"):
            continue
        out[key] = one(v) if opt.kind == "path" else [one(p) for p in v]
    return out


def check_positive(options: Mapping[str, Any], theta: Mapping[str, tuple[float, float]],
                   key: str, *, length: int | None = None) -> None:
    """For a source's ``check``: option ``key`` (a number or parameter name, or a list of
    them of ``length`` entries) is > 0 for every value it can take: a number itself, a
    parameter name over its whole range in ``theta`` (name → (low, high)). Raises
    :class:`OptionError` naming the option.

    >>> try:
    ...     check_positive({"width": "sigma"}, {"sigma": (-0.5, 2.0)}, "width")
    ... except OptionError as exc:
    ...     print(exc.field, "|", exc)
    width | follows parameter 'sigma', whose range reaches -0.5: it must be > 0
    """
    value = options[key]
    values = value if isinstance(value, list) else [value]
    if isinstance(value, list) and length is not None and len(value) != length:
        raise OptionError(key, f"has {len(value)} entries; expected {length}")
    for v in values:
        if isinstance(v, str):
            low = theta.get(v, (None, None))[0]
            if low is not None and not low > 0:
                raise OptionError(key, f"follows parameter '{v}', whose range reaches {low}: "
                                  "it must be > 0")
        elif not v > 0:
            raise OptionError(key, f"must be > 0, got {v}")
