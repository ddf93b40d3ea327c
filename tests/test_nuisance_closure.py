"""Study ``nuisance_closure`` with the exact Gaussian reweighter: the reweighted template
must agree with direct simulation, and the fits must recover θ."""

from __future__ import annotations

from pathlib import Path

import pytest

from ratiofit.errors import SpecError
from ratiofit.registry import get_registry
from ratiofit.spec import load_spec_text
from ratiofit.study import StudyContext
from ratiofit.testing import analytic_gaussian_reweighter
from ratiofit.workflow import Samples

SPEC = """
seed: 4
parameters: {mu: {nominal: 0.0, range: [-2.0, 2.0]}}
samples:
  template: {source: gaussian, n_events: 100000, options: {mean: mu}}
  direct: {source: gaussian, n_events: 100000, theta: {mu: 0.25}, options: {mean: mu}}
outputs: {plots: false}
studies:
  check:
    study: nuisance_closure
    options:
      parameter: mu
      sigma: 0.1
      nominal: template
      direct: [DIRECT]
      observable: x0
      edges: [-4, -3, -2, -1.5, -1, -0.5, 0, 0.5, 1, 1.5, 2, 3, 4]
"""


def _run(tmp_path: Path) -> dict:
    reg = get_registry()
    spec = load_spec_text(SPEC.replace("DIRECT", "direct"), path="s.yaml", registry=reg)
    st = spec.studies[0]
    context = StudyContext(label=st.label, spec=spec, samples=Samples(spec, reg), registry=reg,
                           outdir=tmp_path, seed=1, reweighter=analytic_gaussian_reweighter())
    return dict(reg.get("study", st.study).run(context=context, options=st.options))


def test_exact_reweighter_closes_and_fits_recover_theta(tmp_path: Path) -> None:
    shift = _run(tmp_path)["shifts"][0]
    # Exact ratio: χ² of reweighted vs direct follows χ²(ndf); 12 bins, p = 10⁻³ at 2.7·ndf.
    assert shift["chi2_ndf_reweighted_vs_direct"] < 2.7
    # Without reweighting the 0.25 shift is seen at many σ in 10⁵ events.
    assert shift["chi2_ndf_nominal_vs_direct"] > 20
    # The exact morphing reproduces h_b(θ) up to spline error: far below MC scatter.
    assert shift["max_rel_dev_exact_vs_reweighted"] < 2e-3
    # 3-point histosys at 2.5σ is visibly worse than the morphing (docs/inference.md).
    assert shift["max_rel_dev_histosys_vs_reweighted"] > 5 * shift[
        "max_rel_dev_exact_vs_reweighted"]
    # θ̂: data (σ ≈ 0.0045 for 10⁵ events, doubled by the template's own MC statistics) and
    # the N(0, 0.1) constraint combine to ≈ 0.25·(1 − 0.002); 4σ of the fitted error.
    exact = shift["fit"]["exact"]
    assert abs(exact["theta"] - 0.25) < 4 * exact["theta_error"]
    assert abs(exact["mu"] - 1.0) < 4 * exact["mu_error"]
    assert (tmp_path / "templates.json").is_file()


def test_direct_sample_must_fix_theta() -> None:
    text = SPEC.replace("DIRECT", "template").replace(
        "template: {source: gaussian, n_events: 100000, options: {mean: mu}}",
        "template: {source: gaussian, n_events: 100, theta: {mu: uniform}, options: {mean: mu}}")
    with pytest.raises(SpecError, match=r"studies\.check\.options\.direct: .*fixed value"):
        load_spec_text(text, path="s.yaml", registry=get_registry())


@pytest.mark.parametrize(("old", "new", "field"), [
    ("sigma: 0.1", "sigma: 0.0", "sigma"),
    ("parameter: mu", "parameter: nu", "parameter"),
    ("nominal: template", "nominal: nothing", "nominal"),
    ("edges: [-4, -3,", "edges: [-2, -3,", "edges"),
])
def test_bad_options_are_located(old: str, new: str, field: str) -> None:
    text = SPEC.replace("DIRECT", "direct").replace(old, new)
    with pytest.raises(SpecError, match=rf"studies\.check\.options\.{field}: "):
        load_spec_text(text, path="s.yaml", registry=get_registry())
