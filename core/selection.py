"""Event selections: a small, safe expression language over per-event columns.

A file source's ``selection`` option keeps the events for which an expression is true,
e.g. ``(pt > 20) & (abs(eta) < 2.5)``. The text is parsed with :mod:`ast` and only
these are allowed: column names, numeric literals, comparisons (chained ones too,
``0 < x <= 1``), ``+ - * /``, unary ``-``, ``&`` (and), ``|`` (or), ``~`` (not),
parentheses and ``abs(...)``. Anything else (attribute access, other calls,
subscripts, ``and``/``or``/``not``, strings) is refused when the spec is validated.
Nothing is ever passed to ``eval``: the tree is walked on numpy arrays.

``&`` and ``|`` bind tighter than comparisons in Python, so ``x > 1 & y < 2`` means
``x > (1 & y) < 2``; such an expression is refused with a hint to add parentheses.

Examples
--------
>>> import numpy as np
>>> sel = parse_selection("(pt > 20) & (abs(eta) < 2.5)", columns=["pt", "eta", "phi"])
>>> sel.names
('pt', 'eta')
>>> sel.mask({"pt": np.array([10.0, 30.0, 40.0]), "eta": np.array([0.0, 1.0, -3.0])})
array([False,  True, False])
>>> try:
...     parse_selection("pt.sum() > 1", columns=["pt"])
... except SelectionError as exc:
...     print(exc)
not allowed in a selection: attribute access '.sum' (allowed: column names, numbers, ...)
"""

from __future__ import annotations

import ast
import difflib
import operator
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Selection", "SelectionError", "parse_selection"]

_ALLOWED = ("column names, numbers, comparisons, + - * /, unary -, & | ~, parentheses, "
            "abs(...)")
_ARITH: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.Div: operator.truediv}
_LOGIC: dict[type, Callable[[Any, Any], Any]] = {ast.BitAnd: operator.and_,
                                                  ast.BitOr: operator.or_}
_COMPARE: dict[type, Callable[[Any, Any], Any]] = {
    ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge,
    ast.Eq: operator.eq, ast.NotEq: operator.ne}
_SYMBOL = {ast.BitAnd: "&", ast.BitOr: "|"}


class SelectionError(ValueError):
    """A selection that cannot be parsed or is not allowed (the message is one line)."""


@dataclass(frozen=True)
class Selection:
    """A parsed selection: ``names`` are the columns it reads, :meth:`mask` evaluates it."""

    text: str
    names: tuple[str, ...]
    _tree: ast.expr

    def mask(self, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        """Boolean ``[n]`` mask over events from the columns in ``names`` (numpy arrays)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            out = np.asarray(_evaluate(self._tree, columns))
        n = len(next(iter(columns.values()))) if columns else 0
        return np.broadcast_to(out, (n,)).copy() if out.ndim == 0 else out


def parse_selection(text: str, *, columns: Collection[str] | None = None) -> Selection:
    """Parse ``text``; every name must be in ``columns`` (when given). Raises
    :class:`SelectionError` naming what is not allowed."""
    if not isinstance(text, str) or not text.strip():
        raise SelectionError(f"expected an expression, got {text!r}")
    try:
        tree = ast.parse(text.strip(), mode="eval").body
    except SyntaxError as exc:
        raise SelectionError(f"cannot parse {text.strip()!r}: {exc.msg}") from None
    names: list[str] = []
    kind = _check(tree, names)
    if kind != "bool":
        raise SelectionError(f"{text.strip()!r} is a number per event, not true/false: use a "
                             "comparison, e.g. 'pt > 20'")
    if columns is not None:
        known = list(columns)
        for name in names:
            if name not in known:
                close = difflib.get_close_matches(name, known, n=1)
                hint = f"; did you mean '{close[0]}'?" if close else ""
                raise SelectionError(f"no column '{name}'{hint} (a selection reads flat "
                                     f"numeric columns: {', '.join(known) or 'none'})")
    return Selection(text=text.strip(), names=tuple(dict.fromkeys(names)), _tree=tree)


def _refuse(what: str) -> SelectionError:
    return SelectionError(f"not allowed in a selection: {what} (allowed: {_ALLOWED})")


def _check(node: ast.expr, names: list[str]) -> str:
    """``"bool"`` or ``"number"``: what ``node`` gives per event; raises on anything else."""
    if isinstance(node, ast.Name):
        names.append(node.id)
        return "number"
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, int | float):
            raise _refuse(f"the literal {node.value!r}")
        return "number"
    if isinstance(node, ast.UnaryOp):
        inner = _check(node.operand, names)
        if isinstance(node.op, ast.USub | ast.UAdd):
            if inner != "number":
                raise SelectionError("unary minus needs a number, not a comparison")
            return "number"
        if isinstance(node.op, ast.Invert):
            if inner != "bool":
                raise SelectionError("'~' (not) needs a comparison in parentheses, e.g. "
                                     "~(pt > 20)")
            return "bool"
        raise _refuse("'not' (use ~(...))")
    if isinstance(node, ast.BinOp):
        left, right = _check(node.left, names), _check(node.right, names)
        if type(node.op) in _ARITH:
            if left != "number" or right != "number":
                raise SelectionError("arithmetic needs numbers on both sides, not comparisons")
            return "number"
        if type(node.op) in _LOGIC:
            if left != "bool" or right != "bool":
                sym = _SYMBOL[type(node.op)]
                raise SelectionError(f"'{sym}' joins comparisons: put each in parentheses, "
                                     f"e.g. (pt > 20) {sym} (eta < 2)")
            return "bool"
        raise _refuse(f"the operator {type(node.op).__name__}")
    if isinstance(node, ast.Compare):
        for op in node.ops:
            if type(op) not in _COMPARE:
                raise _refuse(f"the comparison {type(op).__name__}")
        for operand in (node.left, *node.comparators):
            if _check(operand, names) != "number":
                raise SelectionError("comparisons compare numbers; join comparisons with & "
                                     "or | and parentheses, e.g. (pt > 20) & (eta < 2)")
        return "bool"
    if isinstance(node, ast.Call):
        if isinstance(node.func, ast.Attribute):
            raise _refuse(f"attribute access '.{node.func.attr}'")
        if not (isinstance(node.func, ast.Name) and node.func.id == "abs"):
            what = node.func.id if isinstance(node.func, ast.Name) else ast.unparse(node.func)
            raise _refuse(f"the call {what}(...)")
        if len(node.args) != 1 or node.keywords:
            raise SelectionError("abs takes one argument")
        if _check(node.args[0], names) != "number":
            raise SelectionError("abs needs a number, not a comparison")
        return "number"
    if isinstance(node, ast.Attribute):
        raise _refuse(f"attribute access '.{node.attr}'")
    if isinstance(node, ast.BoolOp):
        raise _refuse("'and'/'or' (use & and | with parentheses)")
    raise _refuse(f"{type(node).__name__.lower()} '{ast.unparse(node)}'")


def _evaluate(node: ast.expr, columns: Mapping[str, np.ndarray]) -> Any:
    if isinstance(node, ast.Name):
        return columns[node.id]
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.UnaryOp):
        value = _evaluate(node.operand, columns)
        if isinstance(node.op, ast.Invert):
            return ~np.asarray(value, dtype=bool)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp):
        fn = {**_ARITH, **_LOGIC}[type(node.op)]
        return fn(_evaluate(node.left, columns), _evaluate(node.right, columns))
    if isinstance(node, ast.Compare):
        left = _evaluate(node.left, columns)
        out: Any = True
        for op, comparator in zip(node.ops, node.comparators, strict=True):
            right = _evaluate(comparator, columns)
            out = out & _COMPARE[type(op)](left, right)
            left = right
        return out
    if isinstance(node, ast.Call):
        return np.abs(_evaluate(node.args[0], columns))
    raise AssertionError(f"unchecked node {node!r}")  # _check admits nothing else
