"""A spec's YAML with the line of every node, and the validation context that turns a
problem into ``FILE:LINE: field: message`` (:class:`~ratiofit.errors.SpecError`).

Private to the spec's validators (:mod:`ratiofit.spec`, :mod:`ratiofit.spec_sections`,
:mod:`ratiofit.spec_inference`).
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import yaml

from .errors import SpecError

if TYPE_CHECKING:
    from .parameters import ParameterSet

Path_ = tuple[str | int, ...]

#: The most values (mapping entries, list items, scalars) a spec may expand to: generous
#: for any spec (the largest shipped one has ~300), small against an alias bomb.
MAX_VALUES = 100_000
#: The deepest nesting a spec may have.
MAX_DEPTH = 50
_PLAIN = ("tag:yaml.org,2002:map", "tag:yaml.org,2002:seq")


class _Located:
    """Plain Python values from a YAML document plus the line of every node."""

    def __init__(self, text: str, file: str) -> None:
        self.file = file
        self.lines: dict[Path_, int] = {}
        try:
            node = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
            line = mark.line + 1 if mark is not None else None
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise SpecError(f"malformed YAML: {problem}", file=file, line=line) from None
        self._constructor = yaml.constructor.SafeConstructor()
        self._count = 0
        self._open: set[int] = set()  # the nodes being built: a node met again is recursive
        self.value = {} if node is None else self._build(node, ())

    def _error(self, node: yaml.Node, path: Path_, message: str) -> SpecError:
        return SpecError(message, file=self.file, line=node.start_mark.line + 1,
                         field=_dotted(path) or None)

    def _build(self, node: yaml.Node, path: Path_) -> Any:
        # Aliases share nodes: each use is built again (the values must be independent),
        # so nested aliases grow exponentially ("billion laughs"). Bounded here, before
        # memory is.
        self._count += 1
        if self._count > MAX_VALUES:
            raise self._error(node, path, f"the spec expands to more than {MAX_VALUES} values "
                              "(YAML aliases that nest into each other?)")
        if len(path) > MAX_DEPTH:
            raise self._error(node, path, f"nested deeper than {MAX_DEPTH} levels")
        if id(node) in self._open:
            raise self._error(node, path, "recursive YAML alias (a value contains itself)")
        if isinstance(node, yaml.MappingNode | yaml.SequenceNode) and node.tag not in _PLAIN:
            raise self._error(node, path, f"unknown YAML tag '{node.tag}' (a spec takes plain "
                              "mappings, lists and scalars)")
        self._open.add(id(node))
        try:
            return self._build_node(node, path)
        finally:
            self._open.discard(id(node))

    def _build_node(self, node: yaml.Node, path: Path_) -> Any:
        self.lines[path] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            out: dict[str, Any] = {}
            for knode, vnode in node.value:
                key = self._constructor.construct_object(knode, deep=True)
                if not isinstance(key, str):
                    raise SpecError(f"mapping keys must be strings, got {key!r}", file=self.file,
                                    line=knode.start_mark.line + 1, field=_dotted(path))
                if key in out:
                    raise SpecError(f"duplicate key '{key}'", file=self.file,
                                    line=knode.start_mark.line + 1, field=_dotted((*path, key)))
                out[key] = self._build(vnode, (*path, key))
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self._build(v, (*path, i)) for i, v in enumerate(node.value)]
        try:
            return self._constructor.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError, TypeError) as exc:
            problem = getattr(exc, "problem", None) or str(exc)
            raise SpecError(f"bad value: {problem}", file=self.file,
                            line=node.start_mark.line + 1, field=_dotted(path)) from None

    def line(self, path: Path_) -> int:
        while path not in self.lines and path:
            path = path[:-1]
        return self.lines.get(path, 1)


def _dotted(path: Path_) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


class _Ctx:
    def __init__(self, doc: _Located, base_dir: str = ".") -> None:
        self.doc = doc
        #: The directory relative paths in the spec are taken from (the spec file's).
        self.base_dir = base_dir

    def error(self, path: Path_, message: str) -> SpecError:
        return SpecError(message, file=self.doc.file, line=self.doc.line(path),
                         field=_dotted(path) or None)

    def get(self, mapping: Mapping[str, Any], path: Path_, key: str, kind: type | tuple[type, ...],
            default: Any = ..., what: str = "") -> Any:
        if key not in mapping:
            if default is ...:
                raise self.error(path, f"missing required field '{key}'")
            return default
        value = mapping[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        ok = isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)
        if float in kinds and isinstance(value, int) and not isinstance(value, bool):
            value, ok = float(value), True
        if not ok:
            names = " or ".join(k.__name__ for k in kinds)
            raise self.error((*path, key), f"expected {what or names}, got {value!r}")
        if isinstance(value, float) and not math.isfinite(value):
            raise self.error((*path, key), f"must be a finite number, got {value}")
        return value

    def mapping(self, value: Any, path: Path_) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.error(path, f"expected a mapping, got {value!r}")
        return value

    def no_unknown(self, mapping: Mapping[str, Any], path: Path_, allowed: list[str]) -> None:
        for key in mapping:
            if key not in allowed:
                close = difflib.get_close_matches(key, allowed, n=1)
                hint = f"; did you mean '{close[0]}'?" if close else \
                    f"; allowed: {', '.join(allowed)}"
                raise self.error((*path, key), f"unknown field '{key}'{hint}")


# ---------------------------------------------------------------------------------------
# Typed spec
# ---------------------------------------------------------------------------------------


def _number(ctx: _Ctx, body: Mapping[str, Any], path: Path_, key: str,
            default: float | None = None) -> float:
    value = body.get(key, default)
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        raise ctx.error((*path, key) if key in body else path,
                        f"'{key}': expected a finite number, got {value!r}")
    return float(value)


def _unknown_param(name: str, params: ParameterSet) -> str:
    close = difflib.get_close_matches(name, params.names, n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return f"undefined parameter '{name}'{hint} (defined: {', '.join(params.names) or 'none'})"


def _unknown_sample(name: str, samples: Mapping[str, Any]) -> str:
    close = difflib.get_close_matches(name, list(samples), n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return f"undefined sample '{name}'{hint} (defined: {', '.join(samples)})"
