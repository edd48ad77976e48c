"""Plugin discovery and the modality registry (pluggy + entry points).

Plugins load lazily, once, on the first call that needs them. A broken plugin is reported by
name and skipped; it never takes the host down.

Every built-in plugin declares the modules its extra brings (``polymodal_requires`` and
``polymodal_extra`` in its ``__init__``, checked with :func:`require_extra` before anything else is
imported): with one missing the plugin shows as ``unavailable`` with the ``pip install`` that fixes
it, and importing it raises :class:`MissingExtra` with the same hint.

Environment:
    POLYMODAL_SLOW_PLUGIN_SECONDS: a plugin import slower than this (default 2) is named in a warning.
    POLYMODAL_PLUGINS: unset -> every installed plugin loads. Set to a comma-separated list of
        plugin names -> the built-in plugins plus only those named. Set to the empty string ->
        only the built-in plugins.
"""

from __future__ import annotations

import importlib.metadata as md
import importlib.util
import logging
import os
import threading
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pluggy

from polymodal import PLUGIN_API_VERSION, hookspecs
from polymodal.modality import Modality

__all__ = [
    "ENTRY_POINT_GROUP",
    "MissingExtra",
    "PluginInfo",
    "get_modality",
    "load_plugins",
    "modalities",
    "plugin_report",
    "require_extra",
    "reset_plugins",
]

log = logging.getLogger(__name__)
ENTRY_POINT_GROUP = "polymodal"
BUILTIN_DIST = "polymodal"


class PluginWarning(UserWarning):
    """A plugin failed to load or registered a name already taken."""


class MissingExtra(ImportError):
    """A plugin's extra is not installed; the message is the ``pip install`` that fixes it."""

    def __init__(self, plugin: str, missing: Sequence[str], extra: str) -> None:
        self.plugin, self.missing, self.extra = plugin, list(missing), extra
        self.hint = f"pip install 'polymodal[{extra}]'"
        super().__init__(f"the {plugin} plugin needs {', '.join(self.missing)}: {self.hint}")


def _missing_modules(modules: Sequence[str]) -> list[str]:
    out = []
    for name in modules:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):  # a parent package missing, or sys.modules[name] is None
            found = False
        if not found:
            out.append(name)
    return out


def require_extra(plugin: str, modules: Sequence[str], extra: str) -> None:
    """Raise :class:`MissingExtra` unless every module in ``modules`` is importable (nothing is imported).

    Built-in plugins call this first thing in their ``__init__`` so that a missing extra is one
    clear line (``the text plugin needs transformers: pip install 'polymodal[text]'``) at first
    use, instead of a bare ``No module named ...`` deep inside a model constructor.
    """
    if missing := _missing_modules(modules):
        raise MissingExtra(plugin, missing, extra)


@dataclass
class PluginInfo:
    """What ``polymodal plugins`` shows for one plugin."""

    name: str
    distribution: str
    version: str
    status: str = "loaded"  # "loaded" | "unavailable" (extra missing) | "failed" | "disabled"
    error: str = ""
    modalities: list[str] = field(default_factory=list)
    import_seconds: float = 0.0

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
_warned: set[str] = set()


def _warn(message: str) -> None:
    """Warn once per message (until plugins are reloaded). Not also logged: that printed it twice."""
    if message in _warned:
        return
    _warned.add(message)
    warnings.warn(message, PluginWarning, stacklevel=3)
    log.debug(message)


def _slow_import_seconds() -> float:
    try:
        return float(os.environ.get("POLYMODAL_SLOW_PLUGIN_SECONDS", 2.0))
    except ValueError:
        return 2.0


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
            _warned.clear()
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
    start = time.perf_counter()
    try:
        module = ep.load()
    except MissingExtra as exc:
        info.status, info.error = "unavailable", f"needs {', '.join(exc.missing)}; fix: {exc.hint}"
        return
    except ImportError as exc:
        _fail(info, f"{type(exc).__name__}: {exc}; fix: {_install_hint(info)}")
        return
    except KeyboardInterrupt:
        raise
    except SystemExit as exc:  # a plugin calling sys.exit() at import must not end the host silently
        _fail(info, f"error at import: called sys.exit({exc.code!r})")
        return
    except BaseException as exc:  # a third-party plugin may raise anything at import
        _fail(info, f"error at import: {type(exc).__name__}: {exc}")
        return
    finally:
        info.import_seconds = time.perf_counter() - start
    if info.import_seconds > _slow_import_seconds():
        _warn(
            f"polymodal: plugin {info.name!r} ({info.distribution}) took {info.import_seconds:.1f} s to import "
            "(set POLYMODAL_PLUGINS to load only the plugins you need)"
        )
    if missing := _missing_modules(getattr(module, "polymodal_requires", ())):  # an already-imported module
        extra = getattr(module, "polymodal_extra", info.name)
        info.status, info.error = "unavailable", f"needs {', '.join(missing)}; fix: pip install 'polymodal[{extra}]'"
        return
    api = getattr(module, "polymodal_api_version", PLUGIN_API_VERSION)
    if int(api) != PLUGIN_API_VERSION:
        if int(api) > PLUGIN_API_VERSION:  # the plugin is newer than this polymodal
            fix = "pip install --upgrade polymodal"
        else:  # the plugin is older: it needs a release built for this API
            fix = _install_hint(info) if not info.builtin else "reinstall polymodal"
        _fail(info, f"built for plugin API {api}, this polymodal speaks {PLUGIN_API_VERSION}; fix: {fix}")
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
        _warned.clear()


def modalities() -> dict[str, Modality]:
    """All registered modalities by name (loads plugins on first use)."""
    load_plugins()
    return {name: m for name, (m, _) in _state.registry.items()}


def get_modality(name: str) -> Modality:
    """The modality called ``name``; the error lists the registered names and failed plugins."""
    table = modalities()
    if name in table:
        return table[name]
    plugin = _state.plugins.get(name)
    if plugin is not None and plugin.status == "unavailable":  # built-ins name their modality after themselves
        raise ImportError(f"modality {name!r}: the {name} plugin is unavailable: {plugin.error}")
    failed = [f"{p.name} ({p.error})" for p in _state.plugins.values() if p.status == "failed"]
    hint = f"; plugins that failed to load: {', '.join(failed)}" if failed else ""
    missing = [f"{p.name} ({p.error})" for p in _state.plugins.values() if p.status == "unavailable"]
    hint += f"; plugins unavailable: {', '.join(missing)}" if missing else ""
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
