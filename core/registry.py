"""Plugin discovery and lookup on pluggy.

Plugins are found through the ``ratiofit`` entry-point group (the built-ins too), each
loaded in isolation: one that fails to import is recorded with its name and
distribution and reported, while the others keep working. Setting
``RATIOFIT_DISABLE_PLUGIN_AUTOLOAD=1`` loads only the entry points of the ``ratiofit``
distribution itself; ``RATIOFIT_PLUGINS=mod_a,mod_b`` registers extra modules by name.

Examples
--------
>>> reg = get_registry()
>>> reg.get("loss", "bce").name
'bce'
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata as md
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pluggy

from . import hookspecs
from .errors import PluginError
from .plugin_api import KINDS

__all__ = ["PluginRecord", "Registry", "get_registry", "reset_registry"]

AUTOLOAD_ENV = "RATIOFIT_DISABLE_PLUGIN_AUTOLOAD"
EXTRA_ENV = "RATIOFIT_PLUGINS"


@dataclass
class PluginRecord:
    """One named implementation and where it came from."""

    kind: str
    name: str
    obj: Any
    plugin: str  # the registered module / entry-point name
    distribution: str


@dataclass
class Registry:
    """Name → implementation, per kind, with the load problems met on the way."""

    pm: pluggy.PluginManager = field(default_factory=lambda: _new_pm())
    records: dict[str, dict[str, PluginRecord]] = field(
        default_factory=lambda: {k: {} for k in KINDS})
    duplicates: dict[tuple[str, str], list[PluginRecord]] = field(default_factory=dict)
    load_errors: list[str] = field(default_factory=list)

    # -- registration -------------------------------------------------------------------
    def load_entry_points(self, *, only_own: bool = False) -> None:
        """Load every entry point of group ``ratiofit`` (or only ratiofit's own)."""
        for ep in md.entry_points(group=hookspecs.PROJECT):
            dist = ep.dist.name if ep.dist is not None else "unknown"
            if only_own and dist != "ratiofit":
                continue
            try:
                module = ep.load()
            except (Exception, SystemExit) as exc:  # a broken plugin must not hide the
                # others, nor end the CLI (sys.exit or argparse at import time)
                self.load_errors.append(
                    f"plugin '{ep.name}' from distribution '{dist}' failed to import: "
                    f"{type(exc).__name__}: {exc}")
                continue
            self.register(module, name=ep.name, distribution=dist)

    def register(self, plugin: Any, *, name: str | None = None,
                 distribution: str = "<local>") -> None:
        """Register a module or object implementing hooks of :mod:`ratiofit.hookspecs`."""
        pname = name or getattr(plugin, "__name__", None) or repr(plugin)
        if self.pm.has_plugin(pname):
            # The same module listed twice (e.g. entry point plus RATIOFIT_PLUGINS).
            if self.pm.get_plugin(pname) is plugin:
                return
            pname = f"{pname}@{distribution}"
        unknown = _unknown_hooks(plugin)
        if unknown:
            self.load_errors.append(
                f"plugin '{pname}' from distribution '{distribution}' implements unknown "
                f"hook(s) {', '.join(unknown)} (ratiofit's hooks: "
                f"{', '.join(sorted(KINDS.values()))}); not registered")
            return
        try:
            self.pm.register(plugin, name=pname)
        except Exception as exc:
            self.load_errors.append(
                f"plugin '{pname}' from distribution '{distribution}' could not be "
                f"registered: {exc}")
            return
        for kind, hook in KINDS.items():
            impls = [i for i in getattr(self.pm.hook, hook).get_hookimpls() if i.plugin is plugin]
            for impl in impls:
                try:
                    provided = impl.function() or []
                except (Exception, SystemExit) as exc:
                    self.load_errors.append(
                        f"plugin '{pname}' from distribution '{distribution}' raised in "
                        f"{hook}: {type(exc).__name__}: {exc}")
                    continue
                for obj in provided:
                    name = getattr(obj, "name", None)
                    if not (isinstance(name, str) and name):
                        self.load_errors.append(
                            f"plugin '{pname}' from distribution '{distribution}': a {kind} "
                            f"from {hook} has no name (a {type(obj).__name__}); ignored")
                        continue
                    self._add(PluginRecord(kind=kind, name=name, obj=obj, plugin=pname,
                                           distribution=distribution))

    def _add(self, rec: PluginRecord) -> None:
        existing = self.records[rec.kind].get(rec.name)
        if existing is not None:
            self.duplicates.setdefault((rec.kind, rec.name), [existing]).append(rec)
            return
        self.records[rec.kind][rec.name] = rec

    # -- lookup -------------------------------------------------------------------------
    def names(self, kind: str) -> list[str]:
        self._check_kind(kind)
        return sorted(self.records[kind])

    def record(self, kind: str, name: str) -> PluginRecord:
        """The record of ``name``, or of ``distribution:name`` (a name two distributions
        provide: ``ratiofit:bce`` is the built-in)."""
        self._check_kind(kind)
        if ":" in name:
            dist, bare = name.split(":", 1)
            candidates = self.duplicates.get((kind, bare)) or (
                [self.records[kind][bare]] if bare in self.records[kind] else [])
            for rec in candidates:
                if rec.distribution == dist:
                    return rec
            have = ", ".join(f"'{r.distribution}:{bare}'" for r in candidates) or "none"
            raise PluginError(f"no {kind} '{bare}' from distribution '{dist}' (there is: "
                              f"{have})")
        if (kind, name) in self.duplicates:
            recs = self.duplicates[kind, name]
            who = ", ".join(f"'{r.plugin}' ({r.distribution})" for r in recs)
            choose = " or ".join(f"'{r.distribution}:{name}'" for r in recs)
            raise PluginError(f"{kind} '{name}' is provided by more than one plugin: {who}; "
                              f"name the one you mean: {choose}")
        if name not in self.records[kind]:
            close = difflib.get_close_matches(name, self.names(kind), n=1, cutoff=0.5)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            known = ", ".join(self.names(kind)) or "none"
            raise PluginError(f"unknown {kind} '{name}'{hint} (known: {known})")
        return self.records[kind][name]

    def get(self, kind: str, name: str) -> Any:
        """The implementation of ``kind`` called ``name``; unknown names get a suggestion."""
        return self.record(kind, name).obj

    def problems(self) -> list[str]:
        out = list(self.load_errors)
        for (kind, name), recs in self.duplicates.items():
            who = ", ".join(f"'{r.plugin}' ({r.distribution})" for r in recs)
            out.append(f"duplicate {kind} name '{name}' provided by {who}")
        return out

    def all_records(self) -> Iterable[PluginRecord]:
        for kind in KINDS:
            yield from (self.records[kind][n] for n in sorted(self.records[kind]))

    @staticmethod
    def _check_kind(kind: str) -> None:
        if kind not in KINDS:
            raise PluginError(f"unknown plugin kind '{kind}' (kinds: {', '.join(KINDS)})")


def _new_pm() -> pluggy.PluginManager:
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    return pm


_REGISTRY: Registry | None = None


def get_registry() -> Registry:
    """The process-wide registry, loaded on first use."""
    global _REGISTRY
    if _REGISTRY is None:
        reg = Registry()
        reg.load_entry_points(only_own=os.environ.get(AUTOLOAD_ENV, "") not in ("", "0"))
        for modname in filter(None, os.environ.get(EXTRA_ENV, "").split(",")):
            try:
                reg.register(importlib.import_module(modname.strip()), name=modname.strip(),
                             distribution=f"${EXTRA_ENV}")
            except Exception as exc:
                reg.load_errors.append(f"plugin module '{modname}' (from ${EXTRA_ENV}) failed "
                                       f"to import: {type(exc).__name__}: {exc}")
        _REGISTRY = reg
    return _REGISTRY


def reset_registry() -> None:
    """Forget the process-wide registry (tests; after installing a plugin)."""
    global _REGISTRY
    _REGISTRY = None


def _unknown_hooks(plugin: Any) -> list[str]:
    """Names of ``plugin``'s hook implementations that match no hookspec (a misspelled
    hook would otherwise be ignored in silence)."""
    marker = f"{hookspecs.PROJECT}_impl"
    known = set(KINDS.values())
    out = []
    for attr in dir(plugin):
        try:
            value = getattr(plugin, attr)
        except Exception:
            continue
        if hasattr(value, marker) and attr not in known:
            close = difflib.get_close_matches(attr, sorted(known), n=1)
            out.append(f"'{attr}'" + (f" (did you mean '{close[0]}'?)" if close else ""))
    return out
