"""Plugin discovery and the registries of movers, transports, watchers, roles, commands and delivery observers.

Plugins are modules named in the ``trollmoves`` entry-point group, registered with pluggy
one at a time: a plugin that fails to import (or to register) is logged as a warning naming
its distribution and the error, and everything else keeps working. It becomes a hard error
only when a user asks for something that plugin would have provided. The registries are
filled by calling each hook's implementations through ``pm.hook``.

Set ``TROLLMOVES_DISABLE_PLUGINS=name,name`` (entry-point names) to skip plugins: they are
listed as disabled, and asking for what they provide says so (not "pip install"); a name no
installed plugin has is a warning.

A mover class with ``FALLBACK = True`` (trollmoves-fsspec's) serves the schemes nobody else
claims: the mover registry asks it, through :meth:`~trollmoves_core.mover.Mover.refusal`, only
when no plugin's ``SCHEMES`` has the scheme and none of our own distributions is meant to.
"""

from __future__ import annotations

import functools
import importlib.metadata
import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import pluggy

from trollmoves_core import PROJECT_NAME, hookspecs
from trollmoves_core.command import Command
from trollmoves_core.exceptions import PluginConflictError, UnknownPluginError
from trollmoves_core.mover import Mover
from trollmoves_core.observer import DeliveryObserver
from trollmoves_core.role import Role
from trollmoves_core.transport import Transport
from trollmoves_core.uri import scheme_of
from trollmoves_core.watchers.base import Watcher

LOG = logging.getLogger(__name__)

DISABLE_VARIABLE = "TROLLMOVES_DISABLE_PLUGINS"

KNOWN_PROVIDERS: dict[str, dict[str, str]] = {
    "mover": {"ftp": "trollmoves-ftp", "ftps": "trollmoves-ftp", "scp": "trollmoves-ssh",
              "sftp": "trollmoves-ssh", "ssh": "trollmoves-ssh", "s3": "trollmoves-s3",
              "http": "trollmoves-http", "https": "trollmoves-http"},
    "transport": {"tcp": "trollmoves-roles", "ipc": "trollmoves-roles", "mqtt": "trollmoves-mqtt",
                  "mqtts": "trollmoves-mqtt"},
    "role": {**{name: "trollmoves-roles" for name in ("server", "client", "mirror", "dispatcher", "downloader")},
             "wis2-subscriber": "trollmoves-wis2"},
    "command": {name: "trollmoves-roles" for name in ("keys", "req", "status")},
    "watcher": {},
    "observer": {"wis2": "trollmoves-wis2"},
}
"""Which of our distributions provides each scheme or name, for the install hint."""

FALLBACK_PROVIDERS: dict[str, str] = {"mover": "trollmoves-fsspec"}
"""The distribution whose fallback serves what no plugin claims, named on a miss when it is not installed."""


@dataclass
class PluginInfo:
    """One entry point in the ``trollmoves`` group, loaded or not."""

    name: str
    distribution: str
    version: str
    module: str
    error: str | None = None
    disabled: bool = False
    """Skipped because :data:`DISABLE_VARIABLE` names it."""
    hooks: list[str] = field(default_factory=list)
    movers: list[str] = field(default_factory=list)
    transports: list[str] = field(default_factory=list)
    watchers: list[str] = field(default_factory=list)
    roles: list[str] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    observers: list[str] = field(default_factory=list)


class PluginRegistry:
    """Name → class for one plugin kind, with the provenance needed for good errors."""

    def __init__(self, kind: str, host: PluginHost) -> None:
        self.kind, self._host = kind, host
        self.classes: dict[str, type] = {}
        self.providers: dict[str, str] = {}
        self.conflicts: dict[str, list[str]] = {}
        self.fallbacks: list[tuple[type[Mover], str]] = []
        """Fallback classes (``FALLBACK = True``) and their providers, asked in registration order."""
        self._served_by_fallback: dict[str, type] = {}

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
        if name in self.classes:
            return self.classes[name]
        if name in self._served_by_fallback:
            return self._served_by_fallback[name]
        refusals = []
        if name not in KNOWN_PROVIDERS[self.kind]:  # our own schemes go to our own plugins only
            for cls, provider in self.fallbacks:
                try:
                    refusal = cls.refusal(name)
                except Exception as err:  # a plugin bug must not hide the "no mover" message
                    refusal = f"{provider} failed to tell: {type(err).__name__}: {err}"
                if refusal is None:
                    self._served_by_fallback[name] = cls
                    return cls
                refusals.append(refusal)
        raise UnknownPluginError(self._missing_message(name, refusals))

    def _missing_message(self, name: str, refusals: list[str]) -> str:
        label = f"for '{name}://'" if self.kind in ("mover", "transport") else repr(name)
        package = KNOWN_PROVIDERS[self.kind].get(name)
        fallback = FALLBACK_PROVIDERS.get(self.kind) if package is None and not refusals else None
        broken = [p for p in self._host.plugins if p.error]
        for wanted in (package, fallback):
            for plugin in broken:
                if wanted and plugin.distribution == wanted:
                    return f"no {self.kind} {label}: {wanted} is installed but failed to load: {plugin.error}"
            for plugin in self._host.plugins:
                if wanted and plugin.disabled and plugin.distribution == wanted:
                    return (f"no {self.kind} {label}: {wanted} is installed but disabled "
                            f"({DISABLE_VARIABLE} names {plugin.name!r})")
        message = f"no {self.kind} {label}"
        if package:
            message += f": pip install {package}"
        elif self.classes:
            message += f" (known: {', '.join(sorted(self.classes))})"
        message += "".join(f"; {refusal}" for refusal in refusals)
        if fallback:
            message += f"; for any filesystem fsspec knows: pip install {fallback}"
        if broken:
            message += "; plugins that failed to load: " + ", ".join(
                f"{p.distribution} ({p.error})" for p in broken)
        return message


class PluginHost:
    """The loaded plugins and what they provide; build it with :func:`load_plugins`.

    Pass it to whatever needs movers, watchers, roles or commands: the launcher hands it to
    each role's and command's ``run``.
    """

    def __init__(self, pm: pluggy.PluginManager, plugins: list[PluginInfo]) -> None:
        self.pm = pm
        self.plugins = plugins
        self.movers = PluginRegistry("mover", self)
        self.transports = PluginRegistry("transport", self)
        self.watchers = PluginRegistry("watcher", self)
        self.roles = PluginRegistry("role", self)
        self.commands = PluginRegistry("command", self)
        self.observers = PluginRegistry("observer", self)
        infos = {p.name: p for p in plugins}
        for name, plugin in pm.list_name_plugin():
            if plugin is not None and name in infos:
                infos[name].hooks = sorted(h.name for h in pm.get_hookcallers(plugin) or [])
        hook = pm.hook
        self._collect(hook.trollmoves_register_movers, Mover, infos, self._add_mover)
        self._collect(hook.trollmoves_register_transports, Transport, infos,
                      self._add_by_scheme(self.transports, "transports"))
        self._collect(hook.trollmoves_register_watchers, Watcher, infos, self._add_named(self.watchers, "watchers"))
        self._collect(hook.trollmoves_register_roles, Role, infos, self._add_named(self.roles, "roles"))
        self._collect(hook.trollmoves_register_commands, Command, infos,
                      self._add_named(self.commands, "commands"))
        self._collect(hook.trollmoves_register_delivery_observers, DeliveryObserver, infos,
                      self._add_named(self.observers, "observers"))
        for name in sorted(set(self.roles.classes) & set(self.commands.classes)):
            # one subcommand name, two meanings: neither is offered
            providers = [self.roles.providers[name], self.commands.providers[name]]
            LOG.warning("subcommand %r is claimed by both %s and %s", name, *providers)
            self.roles.conflicts.setdefault(name, providers)
            self.commands.conflicts.setdefault(name, providers)

    def _collect(self, caller: pluggy.HookCaller, base: type, infos: dict[str, PluginInfo],
                 add: Callable[[type, str, PluginInfo | None], None]) -> None:
        """Call each implementation of ``caller`` on its own, so one plugin's bug stays its own."""
        for impl in caller.get_hookimpls():
            if impl.wrapper or impl.hookwrapper:  # wraps the others' calls; registers nothing itself
                continue
            info = infos.get(impl.plugin_name)
            provider = f"{info.distribution} ({impl.plugin_name})" if info else _plugin_label(impl.plugin)
            try:
                classes = _as_list(impl.function())
            except Exception as err:  # a plugin bug must not take the launcher down
                LOG.warning("Plugin %s: %s() raised %s: %s", provider, caller.name, type(err).__name__, err)
                if info:
                    info.error = f"{caller.name}() raised {type(err).__name__}: {err}"
                continue
            for cls in classes:
                if isinstance(cls, type) and issubclass(cls, base):
                    add(cls, provider, info)
                else:
                    LOG.warning("Plugin %s: %s() returned %r, not a %s subclass", provider, caller.name, cls,
                                base.__name__)

    def _add_mover(self, cls: type, provider: str, info: PluginInfo | None) -> None:
        self._add_by_scheme(self.movers, "movers")(cls, provider, info)
        if cls.FALLBACK:
            self.movers.fallbacks.append((cls, provider))
            if info:
                info.movers.append(f"* ({cls.NAME})")

    @staticmethod
    def _add_by_scheme(registry: PluginRegistry, listed: str) -> Callable[[type, str, PluginInfo | None], None]:
        def add(cls: type, provider: str, info: PluginInfo | None) -> None:
            for scheme in cls.SCHEMES:
                registry.add(scheme, cls, provider)
            if info:
                getattr(info, listed).extend(cls.SCHEMES)
        return add

    @staticmethod
    def _add_named(registry: PluginRegistry, listed: str) -> Callable[[type, str, PluginInfo | None], None]:
        def add(cls: type, provider: str, info: PluginInfo | None) -> None:
            registry.add(cls.NAME, cls, provider)
            if info:
                getattr(info, listed).append(cls.NAME)
        return add

    def mover_class(self, uri: str) -> type[Mover]:
        """The mover class for ``uri``'s scheme; a plain path (``renamed.bin`` too) gets the file mover.

        For a bare scheme, ask ``movers.get(scheme)``.
        """
        return self.movers.get(scheme_of(uri))

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
    """One host per process, loaded from entry points on first use, for scripts and tests.

    Library code never calls it: roles, commands and their services take the host they are
    given (the launcher's).
    """
    return load_plugins()


def _load_entry_points(pm: pluggy.PluginManager) -> list[PluginInfo]:
    disabled = {name.strip() for name in os.environ.get(DISABLE_VARIABLE, "").split(",") if name.strip()}
    for name in disabled:
        pm.set_blocked(name)
    infos = []
    found = [(ep, *_distribution_of(ep)) for ep in importlib.metadata.entry_points(group=PROJECT_NAME)]
    unknown = disabled - {ep.name for ep, _, _ in found}
    if unknown:
        LOG.warning("%s names %s, which no installed plugin is (entry-point names: %s)", DISABLE_VARIABLE,
                    ", ".join(map(repr, sorted(unknown))), ", ".join(sorted({ep.name for ep, _, _ in found})))
    # the core first, then by distribution: registration order is the order of listings and --help
    for ep, dist_name, version in sorted(found, key=lambda f: (f[1] != "trollmoves-core", f[1], f[0].name)):
        if pm.is_blocked(ep.name):
            if not any(info.name == ep.name for info in infos):
                infos.append(PluginInfo(name=ep.name, distribution=dist_name, version=version, module=ep.value,
                                        disabled=True))
            continue
        if pm.has_plugin(ep.name):
            LOG.warning("Skipping plugin %r from %s %s: another distribution uses that entry-point name",
                        ep.name, dist_name, version)
            continue
        info = PluginInfo(name=ep.name, distribution=dist_name, version=version, module=ep.value)
        try:
            plugin = ep.load()
            if pm.is_registered(plugin):
                continue
            pm.register(plugin, name=ep.name)
            pm.check_pending()  # a hook no spec knows
        except Exception as err:  # a broken plugin must not take the launcher down
            if pm.has_plugin(ep.name):
                pm.unregister(name=ep.name)
            info.error = f"{type(err).__name__}: {err}"
            LOG.warning("Skipping plugin %r from %s %s: %s", ep.name, info.distribution, info.version, info.error)
        infos.append(info)
    return infos


def _distribution_of(ep: importlib.metadata.EntryPoint) -> tuple[str, str]:
    """(name, version) of the distribution declaring ``ep``."""
    dist = ep.dist
    return (dist.metadata["Name"], dist.version) if dist is not None else ("?", "?")
