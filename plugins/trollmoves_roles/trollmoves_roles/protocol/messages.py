"""The shapes of file messages: kinds, file dicts at any depth, uids and transfer keys, and
whether a file is on this host."""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import socket
from collections.abc import Iterator, Mapping
from typing import Any

from posttroll.message import Message

from trollmoves_core.uri import parse_uri

MESSAGE_VERSION = "v1.2"
"""The posttroll message version of everything the roles send. posttroll 1.16 writes ``v1.01``
for data without a datetime, while upstream trollmoves always writes ``v1.2``: peers see one format."""

FILE_TYPES = ("file", "dataset", "collection")
"""The message types that announce (or report the delivery of) files."""
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
    """True for an empty host, ``localhost``, this machine's names, 127.0.0.1, ::1 and this machine's
    addresses. As upstream, another loopback address (127.0.0.2) is a different host. Other names
    are not resolved: a DNS lookup per message could stall the message loop."""
    host = host.strip("[]").lower()
    if host in ("", "localhost") or host in _own_names():
        return True
    try:
        return str(ipaddress.ip_address(host)) in _own_addresses()
    except ValueError:
        return False


@functools.cache
def _own_names() -> frozenset[str]:
    names = {socket.gethostname().lower(), socket.getfqdn().lower()}
    return frozenset(names | {name.split(".")[0] for name in names})


@functools.cache
def _own_addresses() -> frozenset[str]:
    try:
        own = socket.gethostbyname_ex(socket.gethostname())[2]
    except OSError:
        own = []
    return frozenset(["127.0.0.1", "::1", *own])


def versioned(message: Message) -> Message:
    """``message``, set to be written as :data:`MESSAGE_VERSION`."""
    message.version = MESSAGE_VERSION
    return message


def dicts_with(data: Any, key: str) -> Iterator[dict[str, Any]]:
    """Every dict at any depth of ``data`` that has ``key`` (depth first, in order); with ``"uri"``,
    the files a message or request names."""
    if isinstance(data, dict):
        if key in data:
            yield data
        for value in data.values():
            if isinstance(value, dict | list):
                yield from dicts_with(value, key)
    elif isinstance(data, list):
        for item in data:
            yield from dicts_with(item, key)


def uids_of(data: Mapping[str, Any]) -> list[str]:
    """The uids of a file, dataset or collection message."""
    return [str(d["uid"]) for d in dicts_with(dict(data), "uid")]


def transfer_key(uids: list[str]) -> str:
    """The dedup key of an announcement: md5 of its sorted uids (the same file from two servers
    gives the same key)."""
    return hashlib.md5(repr(sorted(uids)).encode(), usedforsecurity=False).hexdigest()


def message_type(data: Mapping[str, Any], default: str = "file") -> str:
    """``file``, ``dataset`` or ``collection`` from the data's top-level key."""
    if "uri" in data:
        return "file"
    if "dataset" in data:
        return "dataset"
    if "collection" in data:
        return "collection"
    return default
