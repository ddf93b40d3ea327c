"""What a plugin package's own tests look like: ratiofit's conformance checks on each plugin."""

from __future__ import annotations

import pytest
from ratiofit_example.focal_bce import FocalBCE
from ratiofit_example.grid_parabola import GridParabola
from ratiofit_example.resmlp import ResidualMLP

from ratiofit.testing import check_plugin


@pytest.mark.parametrize(("plugin", "kind"), [(ResidualMLP(), "architecture"),
                                              (FocalBCE(), "loss"),
                                              (GridParabola(), "strategy")])
def test_check_plugin(plugin: object, kind: str) -> None:
    check_plugin(plugin, kind=kind)
