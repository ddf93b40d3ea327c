"""The error type of :mod:`ratiofit.inference`."""

from __future__ import annotations

from ..errors import RatiofitError

__all__ = ["InferenceError"]


class InferenceError(RatiofitError):
    """An inference input is unusable: a binning that loses events, a constraint with
    σ ≤ 0, a θ name the reweighter does not know, a θ outside a morphing's grid.

    Like every :class:`~ratiofit.errors.RatiofitError`, its message is one line.
    """

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))
