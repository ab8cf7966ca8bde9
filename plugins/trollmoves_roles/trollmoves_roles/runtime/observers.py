"""The delivery observers a chain opens from its config keys, and what it tells them.

A role passes every key of a chain (an INI section) to each registered
:class:`~trollmoves_core.observer.DeliveryObserver`; those whose keys the chain sets open. After a
result message is published, :meth:`ChainObservers.delivered` tells each of them about every
local file it names. An observer's bug costs one logged line, never the delivery.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from trollmoves_core.checksum import from_data
from trollmoves_core.exceptions import ConfigError, UnknownPluginError
from trollmoves_core.observer import Change, Delivery, DeliveryObserver
from trollmoves_core.plugins import KNOWN_PROVIDERS, PluginHost
from trollmoves_core.schema import Findings, Key, Schema
from trollmoves_roles.observe.ratelimit import RateLimitedLog
from trollmoves_roles.protocol.messages import dicts_with

LOG = logging.getLogger(__name__)
_LIMITED = RateLimitedLog(LOG, period=60.0, burst=3)
_FILE_LISTS = ("dataset", "collection")


def observer_keys(host: PluginHost) -> list[Key]:
    """The chain keys of every registered observer, to join a role's :class:`Schema`."""
    return [key for cls in host.observers.classes.values() for key in cls.KEYS]


def with_observer_keys(schema: Schema, host: PluginHost | None) -> Schema:
    """``schema`` plus the keys of the observers ``host`` has (``schema`` itself without a host)."""
    return schema | Schema(schema.place, observer_keys(host)) if host is not None else schema


def missing_observer(host: PluginHost, keys: Mapping[Any, Any]) -> tuple[str, str] | None:
    """A key set for one of our observers that is not registered (our observer ``NAME`` reads the
    keys ``NAME_*``), and the "no observer" message naming the package to install; None when
    there is none. Without it the chain would run announcing nothing, its keys only warned of."""
    for name in KNOWN_PROVIDERS["observer"]:
        if name in host.observers.classes:
            continue
        key = next((str(k) for k in keys if str(k).startswith(f"{name}_") and str(keys[k] or "").strip()), None)
        if key is None:
            continue
        try:
            host.observers.get(name)
        except UnknownPluginError as err:
            return key, str(err)
    return None


def observer_problems(host: PluginHost, keys: Mapping[str, str]) -> Iterator[tuple[str, str]]:
    """(key, problem) for what the observers find wrong with a chain's ``keys``, connecting
    nowhere: keys of an observer that is not installed first, then each observer's findings."""
    if missing := missing_observer(host, keys):
        yield missing
    for cls in host.observers.classes.values():
        yield from cls.problems(keys).items()


def check_observers(out: Findings, host: PluginHost, keys: Mapping[str, str], section: str) -> None:
    """Record every observer problem of a chain's ``keys``."""
    for key, problem in observer_problems(host, keys):
        out.add(problem, section, key)


def refuse_bad_observer_keys(host: PluginHost, keys: Mapping[str, str], *, file: str, section: str) -> None:
    """Raise a ConfigError for the first observer problem of a chain's ``keys``."""
    for key, problem in observer_problems(host, keys):
        raise ConfigError(problem, file=file, section=section, key=key)


class ChainObservers:
    """The observers one chain opened; empty when it sets no observer's key."""

    def __init__(self, observers: Iterable[DeliveryObserver] = (), *, role: str = "", chain: str = "") -> None:
        self.observers = list(observers)
        self.role, self.chain = role, chain

    @classmethod
    def open(cls, host: PluginHost, keys: Mapping[str, str], *, role: str, chain: str, file: str) -> ChainObservers:
        """Open every observer whose keys ``keys`` sets; ConfigError from the first that refuses
        (those opened before it are closed)."""
        opened: list[DeliveryObserver] = []
        try:
            for observer_class in host.observers.classes.values():
                observer = observer_class.open(keys, role=role, chain=chain, file=file)
                if observer is not None:
                    opened.append(observer)
        except BaseException:
            for observer in opened:
                observer.close()
            raise
        return cls(opened, role=role, chain=chain)

    def delivered(self, subject: str, atype: str, data: Mapping[str, Any], change: Change = "new") -> None:
        """Tell every observer about each local file of the published message ``data``."""
        if not self.observers:
            return
        for delivery in deliveries(self.role, self.chain, subject, atype, data, change=change):
            for observer in self.observers:
                try:
                    observer.delivered(delivery)
                except Exception as err:  # an observer's bug must not cost the delivery
                    _LIMITED.error(type(observer).__name__, "[%s] delivery observer %s failed on %s: %s: %s",
                                   self.chain, observer.NAME, delivery.path, type(err).__name__, err)

    def close(self) -> None:
        for observer in self.observers:
            try:
                observer.close()
            except Exception as err:  # closing one must not keep the others open
                LOG.error("[%s] closing delivery observer %s failed: %s", self.chain, observer.NAME, err)
        self.observers.clear()


def deliveries(role: str, chain: str, subject: str, atype: str, data: Mapping[str, Any], *,
               change: Change) -> list[Delivery]:
    """One :class:`Delivery` per local file of ``data`` (a path, not a URL): the file's dict over
    the message's other keys, with the size and checksum the file's dict announces."""
    common = {k: v for k, v in data.items() if k not in _FILE_LISTS}
    found = []
    for item in dicts_with(dict(data), "uri"):
        path = str(item["uri"])
        if "://" in path:  # pushed elsewhere: not a file of ours
            continue
        found.append(Delivery(role, chain, change, subject, atype, {**common, **item}, path, from_data(item)))
    return found
