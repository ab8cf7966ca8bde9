"""Reading file announcements: one metadata dict per announced file, and where the file is
(the dispatcher and downloader read their input with it)."""

from __future__ import annotations

import functools
import ipaddress
import socket
from collections.abc import Mapping
from typing import Any

from trollmoves_core.uri import parse_uri

FILE_TYPES = ("file", "dataset", "collection")
REMOVED_ON_PUBLISH = ("request_address", "destination")
"""Keys of a received message that must not travel on in a message we publish about the same
file: a client would take a ``request_address`` for a server's announcement."""


class BadMessage(ValueError):
    """A message that announces files but cannot be used; the text says why."""


def file_entries(atype: str, data: Any) -> list[dict[str, Any]]:
    """Split a ``file``/``dataset``/``collection`` message's data into one dict per file.

    Each dict holds the message's top-level metadata overlaid with the file's own keys
    (``uri``, ``uid``...), as upstream does when it splits a dataset.

    :raises BadMessage: when the data is not a mapping or a file has no ``uri``.
    """
    if not isinstance(data, Mapping):
        raise BadMessage(f"{atype} message data is not a mapping")
    entries: list[dict[str, Any]] = []
    _collect(atype, dict(data), {}, entries)
    for entry in entries:
        if not entry.get("uri"):
            raise BadMessage(f"{atype} message announces a file without 'uri'")
    return entries


def _collect(atype: str, data: dict[str, Any], inherited: dict[str, Any], out: list[dict[str, Any]]) -> None:
    if atype == "file":
        out.append({**inherited, **data})
        return
    key = atype
    items = data.get(key)
    if not isinstance(items, list) or not items:
        raise BadMessage(f"{atype} message has no list under {key!r}")
    base = {**inherited, **{k: v for k, v in data.items() if k != key}}
    for item in items:
        if not isinstance(item, Mapping):
            raise BadMessage(f"{atype} message has an item that is not a mapping")
        if atype == "collection" and "dataset" in item:
            _collect("dataset", dict(item), base, out)
        else:
            _collect("file", dict(item), base, out)


def local_path(uri: str) -> str:
    """The local path of ``uri``: a plain path, ``file://``, or any URL whose host is this machine.

    :raises BadMessage: for a file on another host.
    """
    try:
        location = parse_uri(uri)
    except ValueError as err:
        raise BadMessage(str(err)) from None
    if location.scheme == "file" and not location.host:
        return location.path
    if not is_local_host(location.host):
        raise BadMessage(f"{location.geturi()} is not on this host; only local files can be dispatched")
    return location.path


def is_local_host(host: str) -> bool:
    """True for an empty host, ``localhost``, this machine's name, and loopback or own addresses.

    Other names are not resolved: a DNS lookup per message could stall the message loop.
    """
    if host in ("", "localhost") or host.lower() in _own_names():
        return True
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return address.is_loopback or str(address) in _own_addresses()


@functools.cache
def _own_names() -> frozenset[str]:
    name = socket.gethostname().lower()
    return frozenset({name, name.split(".")[0]})


@functools.cache
def _own_addresses() -> frozenset[str]:
    try:
        return frozenset(info[4][0] for info in socket.getaddrinfo(socket.gethostname(), None))
    except OSError:
        return frozenset()
