"""Pin the public API: a change here is a deliberate API change (update CHANGELOG)."""

from __future__ import annotations

import importlib

import pytest

PUBLIC = {
    "ratiofit": ["__version__"],
    "ratiofit.errors": [
        "DataError",
        "PluginError",
        "RatiofitError",
        "ReweighterLoadError",
        "SpecError",
    ],
    "ratiofit.parameters": ["Parameter", "ParameterSet"],
    "ratiofit.options": ["Option", "OptionError", "resolve_options"],
    "ratiofit.hookspecs": ["PROJECT", "hookimpl", "hookspec"],
    "ratiofit.plugin_api": [
        "Architecture",
        "InputSignature",
        "KINDS",
        "Loss",
        "Source",
        "Strategy",
    ],
    "ratiofit.registry": ["PluginRecord", "Registry", "get_registry", "reset_registry"],
    "ratiofit.batching": ["BUCKET_WINDOW", "PAD_MULTIPLE", "pad_batch", "particle_dataset",
                          "ragged_particles"],
    "ratiofit.events": ["EventSet", "assign_theta_from"],
    "ratiofit.spec": [
        "CalibrationSpec",
        "FitSpec",
        "OutputsSpec",
        "ReweighterSpec",
        "SampleSpec",
        "Spec",
        "ThetaSpec",
        "TrainingSpec",
        "load_spec",
        "load_spec_text",
        "resolved_dict",
        "scale_spec",
    ],
    "ratiofit.sampling": ["draw_theta", "make_sample", "resolve_parameter_value"],
    "ratiofit.seeding": ["derive_rng", "derive_seed"],
    "ratiofit.training": ["TrainingData", "prepare_training_data", "train_reweighter"],
    "ratiofit.reweighter": ["Calibration", "Reweighter"],
    "ratiofit.fitting": ["FitProblem", "FitResult", "Objective", "landscape", "minimise"],
    "ratiofit.execution": ["Executor", "Job", "LocalExecutor"],
    "ratiofit.workflow": [
        "analytic_fit",
        "closure",
        "fit_reweighter",
        "run_spec",
        "train_from_spec",
        "write_json",
    ],
    "ratiofit.report": ["draw_chi2_vs_theta", "make_plots", "report_directory",
                        "summary_markdown"],
    "ratiofit.cli": ["main"],
    "ratiofit.testing": ["analytic_gaussian_reweighter", "check_plugin"],
}


@pytest.mark.parametrize("module", sorted(PUBLIC))
def test_public_api_is_pinned(module):
    mod = importlib.import_module(module)
    assert sorted(mod.__all__) == PUBLIC[module]
    for name in mod.__all__:
        assert hasattr(mod, name), f"{module}.{name} is listed in __all__ but missing"
