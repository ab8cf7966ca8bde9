"""The bus address of an MQTT broker, read and checked once.

``mqtt[s]://[USER@]HOST[:PORT][/PREFIX][?KEY=VALUE&...]`` names the broker, the topic prefix
everything is published under and, in the query, the connection parameters:

* ``password_file``: a file whose first line is USER's password (a password in the URL is refused:
  it would end up in logs and ``ps``).
* ``ca_file`` (``mqtts://``): PEM file of the CA that signed the broker's certificate; the system
  CAs without it. ``verify=false`` turns certificate and host-name checks off (trusted networks only).
* ``cert_file``, ``key_file``: a client certificate, for brokers that ask for one.
* ``client_id``: the base of this process's MQTT client ids (default ``trollmoves-<hostname>``);
  processes on one host that subscribe to the same topics need different ones.
* ``group``: clients with the same group share one subscription (``$share/<group>/...``).
* ``takeover_after`` (default 30): in a group, seconds after which a member fetches an
  announcement no member of the group has delivered (a dead member's share); longer than the
  longest transfer.
* ``session_expiry`` (default 3600): seconds the broker keeps a stopped subscriber's session and
  queues what is published meanwhile.
* ``keepalive`` (default 30), ``connect_timeout`` (default 5): seconds.

A bad address is a :class:`~trollmoves_core.exceptions.ConfigError` naming what is wrong.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

from trollmoves_core.exceptions import ConfigError
from trollmoves_core.uri import redact

DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}
DEFAULT_PREFIX = "trollmoves"
DEFAULT_SESSION_EXPIRY = 3600
_KEYS = {"password_file", "ca_file", "cert_file", "key_file", "verify", "client_id", "group", "session_expiry",
         "keepalive", "connect_timeout", "takeover_after"}
_TOPIC_FORBIDDEN = set("+#\0")


@dataclass(frozen=True)
class BusAddress:
    """Where the broker is, the topic prefix, and how to connect (see the module doc)."""

    scheme: str
    host: str
    port: int
    prefix: str = DEFAULT_PREFIX
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    verify: bool = True
    client_id: str = ""
    group: str | None = None
    session_expiry: int = DEFAULT_SESSION_EXPIRY
    keepalive: int = 30
    connect_timeout: float = 5.0
    takeover_after: float = 30.0

    @property
    def tls(self) -> bool:
        return self.scheme == "mqtts"

    def __str__(self) -> str:
        """The address for log lines: never a password."""
        user = f"{self.username}@" if self.username else ""
        return f"{self.scheme}://{user}{self.host}:{self.port}/{self.prefix}"

    def topic(self, *levels: str) -> str:
        """``PREFIX/level/...``."""
        return "/".join((self.prefix, *levels))


def parse_bus_address(text: str) -> BusAddress:
    """The :class:`BusAddress` ``text`` names; ConfigError for anything wrong with it."""
    shown = redact(text)
    try:
        parts = urlsplit(text.strip())
        port = parts.port
    except ValueError as err:
        raise ConfigError(f"bad MQTT bus address {shown!r}: {err}") from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise ConfigError(f"bad MQTT bus address {shown!r}: expected mqtt:// or mqtts://")
    if not parts.hostname:
        raise ConfigError(f"bad MQTT bus address {shown!r}: no broker host")
    if parts.password is not None:
        raise ConfigError(f"MQTT bus address {shown!r}: put the password in a file and name it with "
                          "?password_file=PATH, not in the address")
    prefix = unquote(parts.path).strip("/") or DEFAULT_PREFIX
    if _TOPIC_FORBIDDEN & set(prefix) or prefix.startswith("$") or parts.fragment or text.rstrip().endswith("#"):
        raise ConfigError(f"MQTT bus address {shown!r}: the topic prefix {prefix!r} may not contain + # or "
                          "start with $")
    query: dict[str, str] = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key not in _KEYS:
            raise ConfigError(f"MQTT bus address {shown!r}: unknown parameter {key!r} (known: "
                              f"{', '.join(sorted(_KEYS))})")
        query[key] = value
    password = _read_secret(query["password_file"], shown) if query.get("password_file") else None
    for key in ("ca_file", "cert_file", "key_file"):
        if query.get(key) and not Path(query[key]).is_file():
            raise ConfigError(f"MQTT bus address {shown!r}: {key} {query[key]!r} is not a readable file")
    if query.get("cert_file") and not query.get("key_file"):
        raise ConfigError(f"MQTT bus address {shown!r}: cert_file needs key_file")
    group = query.get("group") or None
    if group is not None and (set(group) & (_TOPIC_FORBIDDEN | {"/"})):
        raise ConfigError(f"MQTT bus address {shown!r}: group {group!r} may not contain / + #")
    client_id = query.get("client_id") or f"trollmoves-{socket.gethostname()}"
    if set(client_id) & (_TOPIC_FORBIDDEN | {"/"}):  # it names the requester's reply topic level
        raise ConfigError(f"MQTT bus address {shown!r}: client_id {client_id!r} may not contain / + #")
    return BusAddress(
        scheme=scheme, host=parts.hostname, port=port or DEFAULT_PORTS[scheme], prefix=prefix,
        username=unquote(parts.username) if parts.username else None, password=password,
        ca_file=query.get("ca_file") or None, cert_file=query.get("cert_file") or None,
        key_file=query.get("key_file") or None, verify=_boolean(query.get("verify", "true"), "verify", shown),
        client_id=client_id, group=group,
        session_expiry=int(_number(query.get("session_expiry", DEFAULT_SESSION_EXPIRY), "session_expiry", shown)),
        keepalive=int(_number(query.get("keepalive", 30), "keepalive", shown)),
        connect_timeout=_number(query.get("connect_timeout", 5), "connect_timeout", shown),
        takeover_after=_number(query.get("takeover_after", 30), "takeover_after", shown))


def _read_secret(path: str, shown: str) -> str:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.readline().rstrip("\r\n")
    except OSError as err:
        raise ConfigError(f"MQTT bus address {shown!r}: cannot read password_file {path!r}: "
                          f"{err.strerror or err}") from None


def _boolean(value: str, key: str, shown: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"MQTT bus address {shown!r}: {key} must be true or false, got {value!r}")


def _number(value: object, key: str, shown: str) -> float:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        number = -1.0
    if number < 0:
        raise ConfigError(f"MQTT bus address {shown!r}: {key} must be a number ≥ 0, got {value!r}")
    return number
