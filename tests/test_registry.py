"""Plugin registry: built-ins, lookups, duplicates, broken plugins, isolation of core."""

from __future__ import annotations

import ast
import importlib.metadata
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

import numpy as np
import pytest
from click.testing import CliRunner

import ratiofit
import ratiofit.errors
import ratiofit.plugins
import ratiofit.registry as registry_module
from ratiofit.cli import main
from ratiofit.errors import PluginError
from ratiofit.hookspecs import hookimpl
from ratiofit.options import Option
from ratiofit.plugin_api import InputSignature
from ratiofit.registry import Registry, get_registry, reset_registry
from ratiofit.testing import check_plugin

BUILTINS: dict[str, set[str]] = {
    "architecture": {"mlp", "pfn", "ncr_trunk", "deepsets_ensemble"},
    "loss": {"bce", "mse", "sqrt", "mlc", "mlc_exp", "lr_direct", "ncr"},
    "strategy": {"dctr", "likelihood", "scan", "srgn", "classifier_loss", "regression"},
    "source": {"gaussian", "gaussian_particles", "parquet", "root", "pythia", "bumphunt",
               "gaussian_detector", "pythia_detector", "ncr_gaussian"},
    # The paper-reproduction studies (ncr, search_*, ensemble_*, mutual_information) are
    # registered by the ratiofit-papers distribution: examples/ratiofit-papers/tests.
    "study": {"nuisance_closure"},
}


@pytest.fixture
def fresh_registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """Clean plugin env vars and a forgotten process registry, restored afterwards."""
    monkeypatch.delenv(registry_module.AUTOLOAD_ENV, raising=False)
    monkeypatch.delenv(registry_module.EXTRA_ENV, raising=False)
    reset_registry()
    yield monkeypatch
    reset_registry()


def _own_registry() -> Registry:
    reg = Registry()
    reg.load_entry_points()
    return reg


@pytest.fixture(scope="module")
def module_registry() -> Registry:
    return _own_registry()


# ---------------------------------------------------------------------------------------
# Small plugin objects
# ---------------------------------------------------------------------------------------
class _Loss:
    output_activation = "linear"

    def __init__(self, name: str) -> None:
        self.name = name

    def keras_loss(self) -> Any:
        import keras

        return keras.losses.BinaryCrossentropy(from_logits=True)

    def log_ratio(self, output: Any) -> Any:
        return output


class _DuplicatingPlugin:
    """A third-party plugin that (wrongly) reuses the built-in name 'bce'."""

    @hookimpl
    def ratiofit_losses(self) -> list[Any]:
        return [_Loss("bce"), _Loss("thirdparty_loss")]


class _RaisingPlugin:
    @hookimpl
    def ratiofit_losses(self) -> list[Any]:
        raise RuntimeError("hook exploded")


# ---------------------------------------------------------------------------------------
# Built-ins and lookups
# ---------------------------------------------------------------------------------------
def test_builtins_present_by_kind(fresh_registry: pytest.MonkeyPatch) -> None:
    reg = get_registry()
    for kind, names in BUILTINS.items():
        assert names <= set(reg.names(kind)), kind
        for name in names:
            rec = reg.record(kind, name)
            assert rec.kind == kind
            assert rec.obj.name == name
            assert rec.distribution == "ratiofit"
            assert reg.get(kind, name) is rec.obj
    assert reg.problems() == []


def test_builtin_names_are_not_mixed_across_kinds() -> None:
    reg = _own_registry()
    assert "bce" not in reg.names("strategy")
    assert "dctr" not in reg.names("loss")
    with pytest.raises(PluginError, match="unknown source 'mlp'"):
        reg.get("source", "mlp")


@pytest.mark.parametrize(
    ("kind", "typo", "suggestion"),
    [("architecture", "mpl", "mlp"), ("loss", "bec", "bce"), ("strategy", "dctrr", "dctr"),
     ("source", "gausian", "gaussian"), ("loss", "mlc_xp", "mlc_exp")],
)
def test_unknown_name_suggests(kind: str, typo: str, suggestion: str) -> None:
    reg = _own_registry()
    with pytest.raises(PluginError) as info:
        reg.get(kind, typo)
    msg = str(info.value)
    assert f"unknown {kind} '{typo}'" in msg
    assert f"did you mean '{suggestion}'?" in msg
    assert "known:" in msg


def test_unknown_name_without_close_match_lists_known() -> None:
    reg = _own_registry()
    with pytest.raises(PluginError) as info:
        reg.get("strategy", "zzzzzz")
    assert "did you mean" not in str(info.value)
    # Every known strategy is listed, in sorted order.
    assert f"(known: {', '.join(sorted(reg.names('strategy')))})" in str(info.value)


def test_unknown_kind_is_a_plugin_error() -> None:
    reg = _own_registry()
    with pytest.raises(PluginError, match="unknown plugin kind 'losses'"):
        reg.get("losses", "bce")
    with pytest.raises(PluginError):
        reg.names("optimizer")


# ---------------------------------------------------------------------------------------
# Duplicates and broken plugins
# ---------------------------------------------------------------------------------------
def test_duplicate_name_is_an_error_on_lookup_only() -> None:
    reg = _own_registry()
    reg.register(_DuplicatingPlugin(), name="thirdparty_losses", distribution="thirdparty-dist")

    with pytest.raises(PluginError) as info:
        reg.get("loss", "bce")
    msg = str(info.value)
    assert "loss 'bce' is provided by more than one plugin" in msg
    assert "thirdparty_losses" in msg and "thirdparty-dist" in msg and "ratiofit" in msg

    problems = reg.problems()
    assert len(problems) == 1
    assert "duplicate loss name 'bce'" in problems[0]
    assert "thirdparty_losses" in problems[0]

    # Other names, the built-ins and the third party's own, keep working.
    assert reg.get("loss", "mse").name == "mse"
    assert reg.get("architecture", "mlp").name == "mlp"
    rec = reg.record("loss", "thirdparty_loss")
    assert rec.distribution == "thirdparty-dist" and rec.plugin == "thirdparty_losses"


def test_a_duplicate_is_chosen_by_its_distribution() -> None:
    """A third party's 'bce' no longer disables the built-in for every spec: the error says
    how to choose, and 'ratiofit:bce' / 'thirdparty-dist:bce' pick one."""
    reg = _own_registry()
    reg.register(_DuplicatingPlugin(), name="thirdparty_losses", distribution="thirdparty-dist")
    with pytest.raises(PluginError, match="name the one you mean: 'ratiofit:bce' or "
                                          "'thirdparty-dist:bce'"):
        reg.get("loss", "bce")
    assert reg.record("loss", "ratiofit:bce").distribution == "ratiofit"
    assert reg.record("loss", "thirdparty-dist:bce").plugin == "thirdparty_losses"
    assert reg.record("loss", "ratiofit:mse").name == "mse"  # qualified, not duplicated
    with pytest.raises(PluginError, match="no loss 'bce' from distribution 'nope'"):
        reg.record("loss", "nope:bce")


class _NamelessPlugin:
    @hookimpl
    def ratiofit_losses(self) -> list[Any]:
        nameless = _Loss("x")
        del nameless.name
        return [nameless, _Loss("named_loss")]


class _MisspelledHook:
    @hookimpl
    def ratiofit_lossess(self) -> list[Any]:  # one 's' too many
        return [_Loss("never_seen")]


def test_a_nameless_object_and_a_misspelled_hook_are_named_problems() -> None:
    reg = _own_registry()
    reg.register(_NamelessPlugin(), name="nameless", distribution="nd")
    reg.register(_MisspelledHook(), name="misspelled", distribution="md")
    problems = "\n".join(reg.problems())
    assert "plugin 'nameless' from distribution 'nd': a loss from ratiofit_losses has no " \
           "name" in problems
    assert "plugin 'misspelled' from distribution 'md' implements unknown hook(s) " \
           "'ratiofit_lossess' (did you mean 'ratiofit_losses'?)" in problems
    assert reg.get("loss", "named_loss").name == "named_loss"
    assert "never_seen" not in reg.names("loss") and "?" not in reg.names("loss")


def test_a_plugin_that_exits_at_import_is_named_not_fatal(
        fresh_registry: pytest.MonkeyPatch) -> None:
    """sys.exit() or argparse in a plugin's import used to end the CLI unnamed."""
    fakes = [_FakeEntryPoint("tp_exit", "exitdist", error=SystemExit(2))]

    def entry_points(*, group: str) -> list[Any]:
        return [*importlib.metadata.entry_points(group=group), *fakes]

    fresh_registry.setattr(registry_module, "md", SimpleNamespace(entry_points=entry_points))
    reg = get_registry()
    assert any("plugin 'tp_exit' from distribution 'exitdist' failed to import: "
               "SystemExit: 2" in e for e in reg.load_errors)
    assert reg.get("loss", "bce").name == "bce"


def test_registering_the_same_object_twice_is_not_a_duplicate() -> None:
    reg = Registry()
    plugin = SimpleNamespace(ratiofit_losses=hookimpl(lambda: [_Loss("only_once")]))
    reg.register(plugin, name="p", distribution="d")
    reg.register(plugin, name="p", distribution="d")
    assert reg.problems() == []
    assert reg.get("loss", "only_once").name == "only_once"


def test_two_objects_with_the_same_plugin_name_are_both_registered() -> None:
    reg = Registry()
    a = SimpleNamespace(ratiofit_losses=hookimpl(lambda: [_Loss("from_a")]))
    b = SimpleNamespace(ratiofit_losses=hookimpl(lambda: [_Loss("from_b")]))
    reg.register(a, name="same", distribution="dist_a")
    reg.register(b, name="same", distribution="dist_b")
    assert reg.record("loss", "from_a").distribution == "dist_a"
    assert reg.record("loss", "from_b").distribution == "dist_b"
    assert reg.problems() == []


def test_hook_that_raises_is_recorded_and_others_work() -> None:
    reg = _own_registry()
    reg.register(_RaisingPlugin(), name="exploding", distribution="boom-dist")
    assert len(reg.load_errors) == 1
    err = reg.load_errors[0]
    assert "exploding" in err and "boom-dist" in err and "hook exploded" in err
    assert err in reg.problems()
    assert reg.get("loss", "bce").name == "bce"


def test_extra_module_that_does_not_exist(fresh_registry: pytest.MonkeyPatch) -> None:
    fresh_registry.setenv(registry_module.EXTRA_ENV, "nonexistent_module_xyz")
    reset_registry()
    reg = get_registry()
    assert len(reg.load_errors) == 1
    assert "nonexistent_module_xyz" in reg.load_errors[0]
    assert "failed to import" in reg.load_errors[0]
    assert reg.load_errors[0] in reg.problems()
    for kind, names in BUILTINS.items():
        for name in names:
            assert reg.get(kind, name).name == name


def test_extra_module_raising_importerror_and_a_good_one(
        fresh_registry: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "rf_broken_plugin_xyz.py").write_text(
        'raise ImportError("needs libfoo, which is not installed")\n')
    (tmp_path / "rf_good_plugin_xyz.py").write_text(
        "from ratiofit.hookspecs import hookimpl\n"
        "class L:\n"
        "    name = 'good_extra_loss'\n"
        "    output_activation = 'linear'\n"
        "    def keras_loss(self):\n"
        "        import keras\n"
        "        return keras.losses.BinaryCrossentropy(from_logits=True)\n"
        "    def log_ratio(self, output):\n"
        "        return output\n"
        "@hookimpl\n"
        "def ratiofit_losses():\n"
        "    return [L()]\n")
    fresh_registry.syspath_prepend(str(tmp_path))
    fresh_registry.setenv(registry_module.EXTRA_ENV, "rf_broken_plugin_xyz, rf_good_plugin_xyz")
    reset_registry()
    try:
        reg = get_registry()
        assert len(reg.load_errors) == 1, reg.load_errors
        assert "rf_broken_plugin_xyz" in reg.load_errors[0]
        assert "ImportError" in reg.load_errors[0]
        assert "needs libfoo" in reg.load_errors[0]
        rec = reg.record("loss", "good_extra_loss")
        assert rec.distribution == f"${registry_module.EXTRA_ENV}"
        assert reg.get("loss", "bce").name == "bce"

        result = CliRunner().invoke(main, ["plugins"])
        assert result.exit_code == 0
        assert "good_extra_loss" in result.stdout
        assert "problem:" in result.stderr and "rf_broken_plugin_xyz" in result.stderr
    finally:
        sys.modules.pop("rf_good_plugin_xyz", None)
        sys.modules.pop("rf_broken_plugin_xyz", None)


class _FakeEntryPoint:
    """Stands in for an entry point of another distribution."""

    def __init__(self, name: str, dist: str, module: Any = None,
                 error: Exception | None = None) -> None:
        self.name, self.dist = name, SimpleNamespace(name=dist)
        self._module, self._error = module, error

    def load(self) -> Any:
        if self._error is not None:
            raise self._error
        return self._module


def _with_third_party(monkeypatch: pytest.MonkeyPatch) -> None:
    good = SimpleNamespace(ratiofit_losses=hookimpl(lambda: [_Loss("tp_loss")]))
    fakes = [_FakeEntryPoint("tp_good", "thirdparty", module=good),
             _FakeEntryPoint("tp_broken", "brokendist",
                             error=ImportError("No module named 'tp_missing_dep'"))]

    def entry_points(*, group: str) -> list[Any]:
        return [*importlib.metadata.entry_points(group=group), *fakes]

    monkeypatch.setattr(registry_module, "md", SimpleNamespace(entry_points=entry_points))


def test_entry_point_that_fails_to_import(fresh_registry: pytest.MonkeyPatch) -> None:
    _with_third_party(fresh_registry)
    reg = get_registry()
    assert len(reg.load_errors) == 1
    err = reg.load_errors[0]
    assert "'tp_broken'" in err and "'brokendist'" in err and "tp_missing_dep" in err
    assert reg.record("loss", "tp_loss").distribution == "thirdparty"
    assert set().union(*BUILTINS.values()) <= {r.name for r in reg.all_records()}


def test_disable_autoload_keeps_builtins_only(fresh_registry: pytest.MonkeyPatch) -> None:
    _with_third_party(fresh_registry)
    fresh_registry.setenv(registry_module.AUTOLOAD_ENV, "1")
    reg = get_registry()
    assert reg.load_errors == []
    with pytest.raises(PluginError):
        reg.get("loss", "tp_loss")
    for kind, names in BUILTINS.items():
        assert names <= set(reg.names(kind))
    assert {r.distribution for r in reg.all_records()} == {"ratiofit"}


def test_disable_autoload_zero_means_enabled(fresh_registry: pytest.MonkeyPatch) -> None:
    _with_third_party(fresh_registry)
    fresh_registry.setenv(registry_module.AUTOLOAD_ENV, "0")
    assert get_registry().get("loss", "tp_loss").name == "tp_loss"


def test_get_registry_is_cached_until_reset(fresh_registry: pytest.MonkeyPatch) -> None:
    first = get_registry()
    assert get_registry() is first
    reset_registry()
    assert get_registry() is not first


# ---------------------------------------------------------------------------------------
# Core does not depend on the built-in plugins
# ---------------------------------------------------------------------------------------
def _core_dirs() -> list[Path]:
    """Directories of the installed ``ratiofit`` package (``core/`` in an editable install).

    ``ratiofit.__file__`` can be None when the editable finder exposes ``ratiofit`` as a
    namespace, so the directory of a core module is used as well.
    """
    dirs = {Path(ratiofit.errors.__file__).resolve().parent}
    if ratiofit.__file__:
        dirs.add(Path(ratiofit.__file__).resolve().parent)
    dirs |= {Path(p).resolve() for p in getattr(ratiofit, "__path__", []) if Path(p).is_dir()}
    return sorted(dirs)


def _core_files() -> list[Path]:
    plugins_dir = Path(ratiofit.plugins.__file__).resolve().parent
    files = []
    for pkg in _core_dirs():
        files += [p for p in pkg.rglob("*.py")
                  if p.parent != plugins_dir and plugins_dir not in p.parents]
    assert any(p.name == "spec.py" for p in files)
    assert any(p.name == "registry.py" for p in files)
    return files


def _plugin_imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    bad = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            bad += [a.name for a in node.names if a.name.startswith("ratiofit.plugins")]
        elif isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if node.level == 0 and (mod == "ratiofit.plugins"
                                    or mod.startswith("ratiofit.plugins.")):
                bad.append(mod)
            elif node.level == 0 and mod == "ratiofit" and any(
                    a.name == "plugins" for a in node.names):
                bad.append("ratiofit.plugins")
            elif node.level > 0 and (mod.split(".")[0] == "plugins"
                                     or (not mod and any(a.name == "plugins"
                                                         for a in node.names))):
                bad.append("." * node.level + mod)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and node.value.startswith("ratiofit.plugins"):
            bad.append(f"string {node.value!r}")  # e.g. importlib.import_module("ratiofit...")
    return bad


def test_core_never_imports_the_plugins_package() -> None:
    offenders = {str(p): imports for p in _core_files() if (imports := _plugin_imports(p))}
    assert offenders == {}


def test_import_scanner_detects_plugin_imports(tmp_path: Path) -> None:
    sample = tmp_path / "m.py"
    sample.write_text("from ..plugins.losses import bce\nimport ratiofit.plugins.sources\n"
                      "from ratiofit import plugins\n")
    assert len(_plugin_imports(sample)) == 3


def test_importing_every_core_module_leaves_plugins_unloaded() -> None:
    code = (
        "import importlib, pkgutil, sys, ratiofit\n"
        "for m in pkgutil.iter_modules(ratiofit.__path__):\n"
        "    if m.name != 'plugins':\n"
        "        importlib.import_module('ratiofit.' + m.name)\n"
        "assert 'ratiofit.spec' in sys.modules and 'ratiofit.cli' in sys.modules\n"
        "print(sorted(k for k in sys.modules if k.startswith('ratiofit.plugins')))\n")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


# ---------------------------------------------------------------------------------------
# ratiofit plugins
# ---------------------------------------------------------------------------------------
def test_cli_plugins_lists_every_builtin(fresh_registry: pytest.MonkeyPatch) -> None:
    result = CliRunner().invoke(main, ["plugins"])
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    listed = {}  # names are unique per kind only (loss 'ncr' and study 'ncr')
    for line in result.stdout.splitlines():
        kind, name, dist, *_ = line.split()
        listed[(kind, name)] = dist
    for kind, names in BUILTINS.items():
        for name in names:
            assert listed.get((kind, name)) == "ratiofit", (kind, name)


def test_cli_plugins_options_shows_declared_options(fresh_registry: pytest.MonkeyPatch) -> None:
    result = CliRunner().invoke(main, ["plugins", "--options"])
    assert result.exit_code == 0
    assert "hidden: int_list" in result.stdout  # mlp
    assert "mean: number_or_name_list" in result.stdout  # gaussian


# ---------------------------------------------------------------------------------------
# check_plugin
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kind", "name"), [(k, n) for k, names in BUILTINS.items() for n in sorted(names)])
def test_check_plugin_passes_for_builtins(module_registry: Registry, kind: str,
                                          name: str, tmp_path: Path) -> None:
    signature = None
    options: dict[str, Any] = {}
    if name == "pythia":
        options = {"cache": False}
    if name == "parquet":
        from ratiofit.events import EventSet

        EventSet(features=np.arange(60.0).reshape(60, 1), feature_names=("x",)).to_parquet(
            tmp_path / "events.parquet")
        options = {"path": str(tmp_path / "events.parquet")}
    if name == "root":
        import uproot

        with uproot.recreate(tmp_path / "events.root") as f:
            f.mktree("events", {"x": "f8"})
            f["events"].extend({"x": np.arange(60.0)})
        options = {"files": str(tmp_path / "events.root"), "tree": "events"}
    if name == "pfn":  # a particle architecture is exercised with particle inputs
        signature = InputSignature(
            feature_names=(), feature_mean=(), feature_std=(), theta_names=("mu",),
            theta_centre=(0.0,), theta_half_width=(1.0,), particle_names=("z", "deta"),
            particle_mean=(0.0, 0.0), particle_std=(1.0, 1.0))
    if name == "ncr_trunk":  # conditional inputs: (x, x', y') triples by name prefix
        signature = InputSignature(
            feature_names=("sim_r", "gen_t", "paired_gen_t"), feature_mean=(0.0,) * 3,
            feature_std=(1.0,) * 3, theta_names=(), theta_centre=(), theta_half_width=())
    plugin = module_registry.get(kind, name)
    if kind == "study":  # required options (sample names etc.) get placeholder values
        options = {key: _PLACEHOLDER[opt.kind] for key, opt in plugin.options.items()
                   if opt.default is None and opt.kind in _PLACEHOLDER}
    check_plugin(plugin, kind=kind, signature=signature, options=options)


_PLACEHOLDER: dict[str, Any] = {"str": "a", "str_list": ["a"], "float": 1.0, "int": 1,
                                "float_list": [0.0, 1.0], "int_list": [1], "mapping": {},
                                "number_or_name": 1.0, "number_or_name_list": [1.0]}


class _FlippedSign(_Loss):
    def log_ratio(self, output: Any) -> Any:
        return -output


class _WrongMinimum(_Loss):
    """BCE whose log_ratio is off by a constant: minimum not at log 2 for a 2:1 mixture."""

    def log_ratio(self, output: Any) -> Any:
        return output + 2.0


class _NonReproducibleSource:
    name = "noisy"
    options: ClassVar[dict[str, Option]] = {}
    _counter: ClassVar[list[int]] = [0]

    def feature_names(self, options: Any) -> list[str]:
        return ["x0"]

    def generate(self, *, n_events: int, theta: Any, options: Any,
                 rng: np.random.Generator) -> np.ndarray:
        self._counter[0] += 1  # ignores rng: a different stream every call
        return np.random.default_rng(1000 + self._counter[0]).normal(size=(n_events, 1))


class _WrongShapeSource(_NonReproducibleSource):
    name = "flat"

    def generate(self, *, n_events: int, theta: Any, options: Any,
                 rng: np.random.Generator) -> np.ndarray:
        return rng.normal(size=n_events)


def test_check_plugin_flags_flipped_log_ratio() -> None:
    with pytest.raises(AssertionError, match=r"loss plugin 'flipped'.*increase"):
        check_plugin(_FlippedSign("flipped"), kind="loss")


def test_check_plugin_flags_unknown_activation() -> None:
    loss = _Loss("badact")
    loss.output_activation = "no_such_activation_xyz"
    with pytest.raises(AssertionError, match=r"loss plugin 'badact'.*no_such_activation_xyz"):
        check_plugin(loss, kind="loss")


def test_check_plugin_flags_wrong_loss_minimum() -> None:
    with pytest.raises(AssertionError, match=r"loss plugin 'offset'.*minimum"):
        check_plugin(_WrongMinimum("offset"), kind="loss")


def test_check_plugin_flags_non_reproducible_source() -> None:
    with pytest.raises(AssertionError, match=r"source plugin 'noisy'.*reproducible"):
        check_plugin(_NonReproducibleSource(), kind="source")


def test_check_plugin_flags_wrong_source_shape() -> None:
    with pytest.raises(AssertionError, match=r"source plugin 'flat'.*shape"):
        check_plugin(_WrongShapeSource(), kind="source")


def test_check_plugin_flags_bad_name_and_kind() -> None:
    with pytest.raises(AssertionError, match="must be an identifier"):
        check_plugin(_Loss("not a name"), kind="loss")
    with pytest.raises(ValueError, match="unknown kind"):
        check_plugin(_Loss("bce"), kind="losses")
