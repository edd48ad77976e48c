"""Plugin discovery and the modality registry (pluggy + entry points).

Plugins load lazily, once, on the first call that needs them. A broken plugin is reported by
name and skipped; it never takes the host down.

Environment:
    POLYMODAL_PLUGINS: unset -> every installed plugin loads. Set to a comma-separated list of
        plugin names -> the built-in plugins plus only those named. Set to the empty string ->
        only the built-in plugins.
"""

from __future__ import annotations

import importlib.metadata as md
import logging
import os
import threading
import warnings
from dataclasses import dataclass, field
from typing import Any

import pluggy

from polymodal import PLUGIN_API_VERSION, hookspecs
from polymodal.modality import Modality

__all__ = [
    "ENTRY_POINT_GROUP",
    "PluginInfo",
    "get_modality",
    "load_plugins",
    "modalities",
    "plugin_report",
    "reset_plugins",
]

log = logging.getLogger(__name__)
ENTRY_POINT_GROUP = "polymodal"
BUILTIN_DIST = "polymodal"


class PluginWarning(UserWarning):
    """A plugin failed to load or registered a name already taken."""


@dataclass
class PluginInfo:
    """What ``polymodal plugins`` shows for one plugin."""

    name: str
    distribution: str
    version: str
    status: str = "loaded"  # "loaded" | "failed" | "disabled"
    error: str = ""
    modalities: list[str] = field(default_factory=list)

    @property
    def builtin(self) -> bool:
        return self.distribution == BUILTIN_DIST


@dataclass
class _State:
    pm: pluggy.PluginManager | None = None
    plugins: dict[str, PluginInfo] = field(default_factory=dict)
    registry: dict[str, tuple[Modality, str]] = field(default_factory=dict)


_state = _State()
_lock = threading.Lock()


def _warn(message: str) -> None:
    warnings.warn(message, PluginWarning, stacklevel=3)
    log.warning(message)


def _install_hint(info: PluginInfo) -> str:
    if info.builtin:
        return f"pip install 'polymodal[{info.name}]'"
    return f"pip install --upgrade {info.distribution}"


def _selected(names: str | None, info: PluginInfo) -> bool:
    if names is None:
        return True
    if info.builtin:
        return True
    wanted = {n.strip() for n in names.split(",") if n.strip()}
    return info.name in wanted


def _entry_points() -> list[tuple[md.EntryPoint, str, str]]:
    found = []
    seen: set[tuple[str, str]] = set()
    for ep in md.entry_points(group=ENTRY_POINT_GROUP):
        dist = getattr(ep, "dist", None)
        dist_name = dist.metadata["Name"] if dist is not None else "?"
        version = dist.version if dist is not None else "?"
        if (ep.name, ep.value) in seen:  # the same dist visible twice on sys.path
            continue
        seen.add((ep.name, ep.value))
        found.append((ep, dist_name, version))
    # Built-ins first so they win name collisions; then alphabetical for determinism.
    found.sort(key=lambda t: (t[1] != BUILTIN_DIST, t[0].name))
    return found


def load_plugins(*, force: bool = False) -> dict[str, PluginInfo]:
    """Discover and load plugins once; returns the plugin table.

    Args:
        force: forget what was loaded and discover again (tests, or after installing a plugin).
    """
    with _lock:
        if _state.pm is not None and not force:
            return _state.plugins
        if force:
            from polymodal import registry as named

            named._forget_plugin_entries()
        pm = pluggy.PluginManager(ENTRY_POINT_GROUP)
        pm.add_hookspecs(hookspecs)
        plugins: dict[str, PluginInfo] = {}
        registry: dict[str, tuple[Modality, str]] = {}
        restrict = os.environ.get("POLYMODAL_PLUGINS")
        for ep, dist_name, version in _entry_points():
            info = PluginInfo(ep.name, dist_name, version)
            if ep.name in plugins:
                other = plugins[ep.name]
                _warn(
                    f"polymodal: plugin name {ep.name!r} from {dist_name} {version} collides with "
                    f"{other.distribution} {other.version}; keeping the latter"
                )
                continue
            plugins[ep.name] = info
            if not _selected(restrict, info):
                info.status, info.error = "disabled", "not listed in POLYMODAL_PLUGINS"
                continue
            _load_one(pm, ep, info, registry)
        _state.pm, _state.plugins, _state.registry = pm, plugins, registry
        return plugins


def _fail(info: PluginInfo, error: str) -> None:
    info.status, info.error = "failed", error
    _warn(f"polymodal: plugin {info.name!r} ({info.distribution}) not loaded: {error}")


def _load_one(
    pm: pluggy.PluginManager, ep: md.EntryPoint, info: PluginInfo, registry: dict[str, tuple[Modality, str]]
) -> None:
    try:
        module = ep.load()
    except ImportError as exc:
        _fail(info, f"{type(exc).__name__}: {exc}; fix: {_install_hint(info)}")
        return
    except Exception as exc:  # a third-party plugin may raise anything at import
        _fail(info, f"error at import: {type(exc).__name__}: {exc}")
        return
    api = getattr(module, "polymodal_api_version", PLUGIN_API_VERSION)
    if int(api) != PLUGIN_API_VERSION:
        _fail(
            info,
            f"built for plugin API {api}, this polymodal speaks {PLUGIN_API_VERSION}; fix: {_install_hint(info)}",
        )
        return
    try:
        pm.register(module, name=info.name)
        pm.check_pending()
    except (pluggy.PluginValidationError, ValueError) as exc:
        if pm.is_registered(module):
            pm.unregister(module)
        _fail(info, f"invalid hook implementation: {exc}")
        return
    for impl in pm.hook.register_modalities.get_hookimpls():
        if impl.plugin is not module:
            continue
        pending: list[Modality] = []

        def register(modality: Modality, _pending: list[Modality] = pending) -> None:
            if not isinstance(modality, Modality):
                raise TypeError(f"register() takes a polymodal.Modality, got {type(modality).__name__}")
            _pending.append(modality)

        try:
            impl.function(register=register)
        except Exception as exc:
            pm.unregister(module)
            _fail(info, f"error in register_modalities: {type(exc).__name__}: {exc}")
            return
        for modality in pending:
            if modality.name in registry:
                _, owner = registry[modality.name]
                _warn(
                    f"polymodal: modality {modality.name!r} registered by plugin {info.name!r} "
                    f"({info.distribution}) is already registered by plugin {owner!r}; keeping {owner!r}'s"
                )
                continue
            registry[modality.name] = (modality, info.name)
            info.modalities.append(modality.name)
            from polymodal import registry as named

            named._register_modality(modality, info.name)


def reset_plugins() -> None:
    """Forget loaded plugins (for tests)."""
    from polymodal import registry as named

    with _lock:
        _state.pm, _state.plugins, _state.registry = None, {}, {}
        named._forget_plugin_entries()


def modalities() -> dict[str, Modality]:
    """All registered modalities by name (loads plugins on first use)."""
    load_plugins()
    return {name: m for name, (m, _) in _state.registry.items()}


def get_modality(name: str) -> Modality:
    """The modality called ``name``; the error lists the registered names and failed plugins."""
    table = modalities()
    if name in table:
        return table[name]
    failed = [f"{p.name} ({p.error})" for p in _state.plugins.values() if p.status == "failed"]
    hint = f"; plugins that failed to load: {', '.join(failed)}" if failed else ""
    raise KeyError(f"unknown modality {name!r}; registered: {', '.join(sorted(table)) or 'none'}{hint}")


def pretrained_names() -> dict[str, tuple[str, Any]]:
    """Short pretrained model names -> (modality name, factory)."""
    out: dict[str, tuple[str, Any]] = {}
    for name, modality in modalities().items():
        for short, factory in modality.pretrained.items():
            out.setdefault(short, (name, factory))
    return out


def plugin_report() -> list[PluginInfo]:
    """The plugin table, loading plugins if needed."""
    return list(load_plugins().values())
