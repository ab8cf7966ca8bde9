"""What the client sends and publishes around one transfer, as pure functions.

Upstream's rules (see the module tests for examples): the destination is a trollsift pattern
over the announcement data; the request carries ``scheme://[login@]host[:port]/path`` (a plain
path becomes ``file://<this host>/path``); what is published never carries credentials; the
published result has its ``uri`` rewritten to the delivered location, ``origin`` set to the
server, ``request_address``/``destination`` removed and ``replace_mda`` applied.
"""

from __future__ import annotations

import functools
import logging
import os
import posixpath
import socket
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from trollsift import compose

from trollmoves_core.uri import Location, parse_uri, redact, target_path
from trollmoves_roles.protocol.messages import dicts_with, is_local_host

LOG = logging.getLogger(__name__)


def compose_destination(pattern: str, data: Mapping[str, Any]) -> str:
    """The destination for one announcement; KeyError/ValueError when a field is missing or bad."""
    return compose(pattern, dict(data)) if "{" in pattern else pattern


def split_login(login: str | None) -> tuple[str | None, str | None]:
    """``user`` or ``user:pass`` → (user, password)."""
    if not login:
        return None, None
    user, sep, password = login.partition(":")
    return user, (password if sep else None)


@functools.lru_cache(maxsize=1024)  # per file, and most chains have one destination
def request_destination(destination: str, login: str | None, *, with_credentials: bool = True) -> str:
    """The destination as sent to the server (credentials included) or published (without).

    A plain path is ``file://<hostname>/path``. ``login`` wins over a user in the URL.
    """
    location = parse_uri(destination)
    user, password = split_login(login)
    if user is None:
        user, password = location.user, location.password
    host = location.host or socket.gethostname()
    auth = ""
    if with_credentials and user:
        auth = user + (f":{password}" if password else "") + "@"
    port = f":{location.port}" if location.port else ""
    query = "&".join(f"{k}={v}" for k, v in location.query.items())
    return f"{location.scheme}://{auth}{host}{port}{location.path}" + (f"?{query}" if query else "")


@functools.lru_cache(maxsize=1024)  # per file, and most chains have one destination
def local_directory(destination: str, ftp_root: str = "/") -> str | None:
    """The local directory upstream creates before requesting (None for s3).

    ``ftp`` destinations are taken relative to ``ftp_root`` (the FTP server's root on this host).
    """
    location = parse_uri(destination)
    if location.scheme == "s3":
        return None
    path = location.path
    directory = path if path.endswith("/") else posixpath.dirname(path)
    if location.scheme in ("ftp", "ftps"):
        directory = posixpath.join(ftp_root, directory.lstrip("/"))
    return directory or None


def make_directory(directory: str) -> None:
    """Create ``directory`` and missing parents, world-writable as upstream does (the server
    writing into it often runs as another user). Existing directories are left as they are."""
    missing = []
    current = os.path.abspath(directory)
    while current and not os.path.isdir(current):
        missing.append(current)
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    if not missing:
        return
    os.makedirs(directory, exist_ok=True)
    for path in missing:
        try:
            os.chmod(path, 0o777)  # as upstream: the pushing server may run as another user
        except OSError as err:  # created by a concurrent process as another user: keep its mode
            LOG.debug("Cannot chmod %s: %s", path, err)


def delivered_uri(destination: Location, source_uri: str, uid: str | None, rel_path: str | None,
                  user: str | None) -> str:
    """Where the server put one file: ``<scheme>://[user@]host[:port]<path>``, or just the path
    when the destination host is this machine (``s3`` always keeps its scheme)."""
    name = posixpath.basename(urlsplit(str(source_uri)).path) or str(uid or "")
    path = destination.path
    if rel_path:
        path = posixpath.join(path, str(rel_path))
    path = target_path(path, name)
    if destination.scheme == "s3":
        return f"s3://{destination.host}{path}"
    if is_local_host(destination.host):
        return path
    auth = f"{user}@" if user else ""
    port = f":{destination.port}" if destination.port else ""
    return f"{destination.scheme}://{auth}{destination.host}{port}{path}"


def join_rel_path(destination: str, rel_path: str | None) -> str:
    """Append ``rel_path`` to the destination's path, as upstream does with a push's ``path``."""
    if not rel_path:
        return destination
    parts = urlsplit(destination, allow_fragments=False)
    if "://" not in destination:
        return posixpath.join(destination, rel_path)
    return urlunsplit(parts._replace(path=posixpath.join(parts.path or "/", rel_path)))


def split_host(text: str) -> tuple[str, int | None]:
    """A backup target (``name``, ``name:port``, ``[v6]:port`` or a bare IPv6 address) as (host, port);
    ValueError when it is not one."""
    host, port = text, ""
    if text.startswith("["):
        host, bracket, port = text[1:].partition("]")
        if not bracket or (port and not port.startswith(":")):
            raise ValueError(f"invalid host {text!r}")
        port = port[1:]
    elif text.count(":") == 1:
        host, port = text.split(":")
    if not host or any(c.isspace() or c in "/@?#[]" for c in host) or (port and not (
            port.isdigit() and 0 < int(port) < 65536)):
        raise ValueError(f"invalid host {text!r}")
    return host, int(port) if port else None


def on_host(destination: str, host: str) -> str:
    """``destination`` with its host replaced by ``host`` (see :func:`split_host`): a host without a
    port keeps the destination's port; user and password are kept."""
    name, port = split_host(host)
    parts = urlsplit(destination, allow_fragments=False)
    userinfo, at, _ = parts.netloc.rpartition("@")
    if port is None:
        port = parse_uri(destination).port
    netloc = f"{userinfo}{at}" + (f"[{name}]" if ":" in name else name) + (f":{port}" if port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def served_destination(requested: str, reply_data: Any, backups: tuple[str, ...] | list[str]) -> str:
    """Where a push's files went, by its reply: ``requested``, or ``requested`` on the one of
    ``backups`` the reply's ``destination`` names (the server failed over to it). A reply naming
    any other host changes nothing: only hosts the client listed are believed."""
    replied = reply_data.get("destination") if isinstance(reply_data, dict) else None
    if not backups or not isinstance(replied, str) or "://" not in requested:
        return requested
    try:
        got = parse_uri(replied)
        if (got.host, got.port) == (parse_uri(requested).host, parse_uri(requested).port):
            return requested
        for backup in backups:
            candidate = on_host(requested, backup)
            if (parse_uri(candidate).host, parse_uri(candidate).port) == (got.host, got.port):
                return candidate
    except ValueError:  # a reply or backup that does not parse names no host of ours
        pass
    return requested


def add_source(sources: list[Any], announcement: Any) -> bool:
    """Append ``announcement`` (a posttroll message) to ``sources`` unless a message from the same
    server (``request_address``) is there; whether it was added."""
    address = announcement.data.get("request_address")
    if any(s.data.get("request_address") == address for s in sources):
        return False
    sources.append(announcement)
    return True


def source_of(address: str, uri: object) -> str:
    """Where a file came from, for the per-file log line: its URL (without password), or the
    announcing server's request address, a space and the file's path there
    (``127.0.0.1:9092 /data/in/a.nc``)."""
    text = str(uri)
    if "://" in text:
        return redact(text)
    return f"{address} {text if text.startswith('/') else '/' + text}"


def local_message_data(announcement: Mapping[str, Any], destination: str, login: str | None,
                       metadata: Mapping[str, str]) -> dict[str, Any]:
    """The data of the published result: uris rewritten, ``origin`` added, ``request_address``
    and ``destination`` removed, ``replace_mda`` applied."""
    data = _copy(dict(announcement))
    location = parse_uri(destination)
    user = split_login(login)[0] or location.user
    for item in dicts_with(data, "uri"):
        item["uri"] = delivered_uri(location, item["uri"], item.get("uid"), item.get("path"), user)
    origin = data.pop("request_address", None)
    data.pop("destination", None)
    if origin is not None:
        data["origin"] = origin
    return replace_mda(data, metadata)


def replace_mda(data: dict[str, Any], metadata: Mapping[str, str]) -> dict[str, Any]:
    """Overwrite top-level ``data`` keys that are also config keys.

    A config value ``old:new|old2:new2`` maps values (others are kept); any other value
    replaces the message value.
    """
    for key, value in metadata.items():
        if key not in data:
            continue
        mapping = _value_mapping(value)
        if mapping is None:
            data[key] = value
        elif str(data[key]) in mapping:
            data[key] = mapping[str(data[key])]
    return data


def _value_mapping(value: str) -> dict[str, str] | None:
    parts = value.split("|")
    if not all(part.count(":") == 1 and "://" not in part for part in parts):
        return None
    return dict(part.split(":", 1) for part in parts)


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value
