"""The selection language of file sources (ratiofit.selection): what it allows, what it
evaluates to (checked against numpy on the same columns), and what it refuses."""

from __future__ import annotations

import numpy as np
import pytest

from ratiofit.selection import SelectionError, parse_selection

RNG = np.random.default_rng(7)
COLS = {"pt": RNG.exponential(30.0, 200), "eta": RNG.normal(0.0, 2.0, 200),
        "n": RNG.integers(0, 5, 200).astype(np.int32)}
with np.errstate(divide="ignore"):
    PT_PER_N = COLS["pt"] / COLS["n"]  # some n are 0: inf


@pytest.mark.parametrize(("text", "expected"), [
    ("pt > 20", COLS["pt"] > 20),
    ("(pt > 20) & (abs(eta) < 2.5)", (COLS["pt"] > 20) & (np.abs(COLS["eta"]) < 2.5)),
    ("-1 < eta <= 1", (-1 < COLS["eta"]) & (COLS["eta"] <= 1)),
    ("~(n == 0) | (pt * 2 - 3 / 4 >= 50)", (COLS["n"] != 0) | (COLS["pt"] * 2 - 0.75 >= 50)),
    ("-eta > +1.5e0", -COLS["eta"] > 1.5),
    ("pt / n > 10", PT_PER_N > 10),  # /0: inf > 10, without a warning
    ("1 < 2", np.ones(200, dtype=bool)),  # a constant is broadcast to every event
])
def test_selection_evaluates_like_numpy(text: str, expected: np.ndarray) -> None:
    mask = parse_selection(text, columns=list(COLS)).mask(COLS)
    assert mask.dtype == bool and mask.shape == (200,)
    np.testing.assert_array_equal(mask, expected)


def test_selection_names_its_columns_once() -> None:
    sel = parse_selection("(pt > 1) & (pt < 9) | (eta > 0)", columns=list(COLS))
    assert sel.names == ("pt", "eta")


@pytest.mark.parametrize(("text", "fragment"), [
    ("pt.mean() > 1", "attribute access '.mean'"),
    ("pt.real > 1", "attribute access '.real'"),
    ("len(pt) > 1", "the call len(...)"),
    ("__import__('os').system('true') > 0", "attribute access '.system'"),
    ("pt[0] > 1", "subscript"),
    ("(pt > 1) and (eta > 1)", "'and'/'or'"),
    ("not pt > 1", "'not'"),
    ("pt > 'a'", "the literal 'a'"),
    ("pt > True", "the literal True"),
    ("pt ** 2 > 1", "the operator Pow"),
    ("pt in (1, 2)", "the comparison In"),
    ("pt > 20 & eta < 2", "put each in parentheses"),
    ("pt + 1", "not true/false"),
    ("abs(pt, 1) > 0", "abs takes one argument"),
    ("ptt > 1", "no column 'ptt'; did you mean 'pt'?"),
    ("pt >", "cannot parse"),
    ("", "expected an expression"),
    ("lambda: 1", "lambda"),
])
def test_bad_selections_are_one_line_errors(text: str, fragment: str) -> None:
    with pytest.raises(SelectionError) as err:
        parse_selection(text, columns=list(COLS))
    message = str(err.value)
    assert fragment in message, message
    assert "\n" not in message
