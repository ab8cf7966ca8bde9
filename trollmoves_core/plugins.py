"""Plugin discovery and the registries of movers, watchers and roles.

Plugins are modules named in the ``trollmoves`` entry-point group. They are loaded one at a
time with stevedore: a plugin that fails to import is logged as a warning naming its
distribution and the error, and everything else keeps working. It becomes a hard error only
when a user asks for something that plugin would have provided.

Set ``TROLLMOVES_DISABLE_PLUGINS=name,name`` (entry-point names) to skip plugins.
"""

from __future__ import annotations

import functools
import importlib.metadata
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pluggy
from stevedore import NamedExtensionManager

from trollmoves_core import PROJECT_NAME, hookspecs
from trollmoves_core.exceptions import PluginConflictError, UnknownPluginError
from trollmoves_core.mover import Mover
from trollmoves_core.role import Role
from trollmoves_core.uri import scheme_of
from trollmoves_core.watchers.base import Watcher

LOG = logging.getLogger(__name__)

KNOWN_PROVIDERS: dict[str, dict[str, str]] = {
    "mover": {"ftp": "trollmoves-ftp", "ftps": "trollmoves-ftp", "scp": "trollmoves-ssh",
              "sftp": "trollmoves-ssh", "ssh": "trollmoves-ssh", "s3": "trollmoves-s3"},
    "role": {name: "trollmoves-roles" for name in ("server", "client", "mirror", "dispatcher", "downloader")},
    "watcher": {},
}
"""Which of our distributions provides each scheme or name, for the install hint."""

K = TypeVar("K", bound=type)


@dataclass
class PluginInfo:
    """One entry point in the ``trollmoves`` group, loaded or not."""

    name: str
    distribution: str
    version: str
    module: str
    error: str | None = None
    hooks: list[str] = field(default_factory=list)
    movers: list[str] = field(default_factory=list)
    watchers: list[str] = field(default_factory=list)
    roles: list[str] = field(default_factory=list)


class Registry:
    """Name → class for one plugin kind, with the provenance needed for good errors."""

    def __init__(self, kind: str, host: PluginHost) -> None:
        self.kind, self._host = kind, host
        self.classes: dict[str, type] = {}
        self.providers: dict[str, str] = {}
        self.conflicts: dict[str, list[str]] = {}

    def add(self, name: str, cls: type, provider: str) -> None:
        if name in self.classes and self.classes[name] is not cls:
            self.conflicts.setdefault(name, [self.providers[name]]).append(provider)
            LOG.warning("%s %r is claimed by both %s and %s", self.kind, name, self.providers[name], provider)
            return
        self.classes[name], self.providers[name] = cls, provider

    def get(self, name: str) -> type:
        """The class for ``name``; UnknownPluginError (with install hint) when missing."""
        if name in self.conflicts:
            raise PluginConflictError(
                f"{self.kind} {name!r} is provided by more than one plugin: {', '.join(self.conflicts[name])}; "
                "uninstall one or disable it with TROLLMOVES_DISABLE_PLUGINS")
        try:
            return self.classes[name]
        except KeyError:
            raise UnknownPluginError(self._missing_message(name)) from None

    def _missing_message(self, name: str) -> str:
        label = f"for '{name}://'" if self.kind == "mover" else repr(name)
        package = KNOWN_PROVIDERS[self.kind].get(name)
        broken = [p for p in self._host.plugins if p.error]
        for plugin in broken:
            if package and plugin.distribution == package:
                return f"no {self.kind} {label}: {package} is installed but failed to load: {plugin.error}"
        message = f"no {self.kind} {label}"
        if package:
            message += f": pip install {package}"
        elif self.classes:
            message += f" (known: {', '.join(sorted(self.classes))})"
        if broken:
            message += "; plugins that failed to load: " + ", ".join(
                f"{p.distribution} ({p.error})" for p in broken)
        return message


class PluginHost:
    """The loaded plugins and what they provide; build it with :func:`load_plugins`."""

    def __init__(self, pm: pluggy.PluginManager, plugins: list[PluginInfo]) -> None:
        self.pm = pm
        self.plugins = plugins
        self.movers = Registry("mover", self)
        self.watchers = Registry("watcher", self)
        self.roles = Registry("role", self)
        infos = {p.name: p for p in plugins}
        for name, plugin in pm.list_name_plugin():
            if plugin is None:
                continue
            info = infos.get(name)
            provider = f"{info.distribution} ({name})" if info else _plugin_label(plugin)
            if info is not None:
                info.hooks = sorted(h.name for h in pm.get_hookcallers(plugin) or [])
            self._collect(plugin, "trollmoves_register_movers", Mover, info, provider)
            self._collect(plugin, "trollmoves_register_watchers", Watcher, info, provider)
            self._collect(plugin, "trollmoves_register_roles", Role, info, provider)

    def _collect(self, plugin: Any, hook_name: str, base: type, info: PluginInfo | None, provider: str) -> None:
        impl = getattr(plugin, hook_name, None)
        if impl is None:
            return
        try:
            classes = _as_list(impl())
        except Exception as err:  # a plugin bug must not take the launcher down
            LOG.warning("Plugin %s: %s() raised %s: %s", provider, hook_name, type(err).__name__, err)
            if info:
                info.error = f"{hook_name}() raised {type(err).__name__}: {err}"
            return
        for cls in classes:
            if not (isinstance(cls, type) and issubclass(cls, base)):
                LOG.warning("Plugin %s: %s() returned %r, not a %s subclass", provider, hook_name, cls,
                            base.__name__)
                continue
            if base is Mover:
                for scheme in cls.SCHEMES:
                    self.movers.add(scheme, cls, provider)
                if info:
                    info.movers.extend(cls.SCHEMES)
            elif base is Watcher:
                self.watchers.add(cls.NAME, cls, provider)
                if info:
                    info.watchers.append(cls.NAME)
            else:
                self.roles.add(cls.NAME, cls, provider)
                if info:
                    info.roles.append(cls.NAME)

    def mover_class(self, uri_or_scheme: str) -> type[Mover]:
        """The mover class for a URI (or bare scheme); plain paths get the file mover."""
        scheme = uri_or_scheme if "/" not in uri_or_scheme and ":" not in uri_or_scheme \
            else scheme_of(uri_or_scheme)
        return self.movers.get(scheme)

    def mover(self, uri: str, connection_params: dict[str, Any] | None = None) -> Mover:
        """A new mover for ``uri``'s scheme."""
        return self.mover_class(uri)(connection_params)


def _plugin_label(plugin: Any) -> str:
    return getattr(plugin, "__name__", None) or type(plugin).__name__


def _as_list(result: Any) -> list[Any]:
    if result is None:
        return []
    return list(result) if isinstance(result, list | tuple) else [result]


def get_plugin_manager() -> pluggy.PluginManager:
    """A fresh plugin manager that knows the trollmoves hook specs, with no plugin loaded."""
    pm = pluggy.PluginManager(PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    return pm


def load_plugins(*, entry_points: bool = True, extra: Iterable[Any] = ()) -> PluginHost:
    """Discover and register plugins; return the host with its registries.

    :param entry_points: load plugins from the ``trollmoves`` entry-point group; without it
        only ``extra`` is registered (for tests).
    :param extra: more plugin objects (modules or instances with hook implementations).
    """
    pm = get_plugin_manager()
    infos: list[PluginInfo] = []
    if entry_points:
        infos = _load_entry_points(pm)
    for plugin in extra:
        pm.register(plugin)
    pm.check_pending()
    return PluginHost(pm, infos)


@functools.cache
def default_host() -> PluginHost:
    """The process-wide host, loaded from entry points on first use."""
    return load_plugins()


def _load_entry_points(pm: pluggy.PluginManager) -> list[PluginInfo]:
    disabled = {n.strip() for n in os.environ.get("TROLLMOVES_DISABLE_PLUGINS", "").split(",") if n.strip()}
    dists = _distributions_by_entry_point()
    infos: dict[str, PluginInfo] = {}

    def describe(ep: importlib.metadata.EntryPoint) -> PluginInfo:
        dist_name, version = dists.get((ep.name, ep.value), ("?", "?"))
        return PluginInfo(name=ep.name, distribution=dist_name, version=version, module=ep.value)

    def on_failure(_manager: Any, ep: importlib.metadata.EntryPoint, err: BaseException) -> None:
        info = describe(ep)
        info.error = f"{type(err).__name__}: {err}"
        infos[ep.name] = info
        LOG.warning("Skipping plugin %r from %s %s: %s", ep.name, info.distribution, info.version, info.error)

    allowed = [name for name, _ in dists if name not in disabled]
    # stevedore keeps entry points per process; a load must see what is installed now.
    NamedExtensionManager.ENTRY_POINT_CACHE.pop(PROJECT_NAME, None)
    manager = NamedExtensionManager(namespace=PROJECT_NAME, names=allowed, invoke_on_load=False,
                                    on_load_failure_callback=on_failure)
    for ext in manager.extensions:
        if pm.is_registered(ext.plugin) or pm.has_plugin(ext.name):
            continue
        info = describe(ext.entry_point)
        try:
            pm.register(ext.plugin, name=ext.name)
        except Exception as err:  # invalid hook implementation: same treatment as an import error
            on_failure(manager, ext.entry_point, err)
            continue
        infos[ext.name] = info
    return sorted(infos.values(), key=lambda p: (p.distribution != "trollmoves-core", p.distribution))


def _distributions_by_entry_point() -> dict[tuple[str, str], tuple[str, str]]:
    found = {}
    for dist in importlib.metadata.distributions():
        for ep in dist.entry_points:
            if ep.group == PROJECT_NAME:
                found[(ep.name, ep.value)] = (dist.metadata["Name"], dist.version)
    return found
