"""The server INI file (upstream ``move_it_server.py`` format) read into typed chain configs.

One section per chain, ``[DEFAULT]`` inherited, no interpolation. Every key upstream reads is
accepted; unknown keys are logged as warnings naming file, section and key. Bad values raise
:class:`~trollmoves_core.exceptions.ConfigError` naming the same.
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trollmoves_core.config import Section, read_ini
from trollmoves_core.patterns import FilePattern

LOG = logging.getLogger(__name__)

COMPRESSIONS = {"bzip": "bz2", "bz2": "bz2", "bzip2": "bz2", "gzip": "gzip", "gz": "gzip",
                "tar": "tar", "zip": "zip", "xrit": "xrit"}
"""Accepted ``compression`` values and the unpacker each one selects."""

UNPACKS = ("tar", "zip")
"""Accepted ``unpack`` values (standalone mode)."""

LEGACY_CONNECTION_KEYS = ("connection_uptime", "ssh_key_filename", "ssh_connection_timeout", "ssh_private_key_file")
"""Bare keys upstream moves into the connection parameters (with a deprecation warning)."""

CONNECTION_PREFIX = "connection_parameters__"

SECURITY_KEYS = ("allowed_clients", "server_secret_key_file", "clients_public_keys_directory")
"""Our keys for the request socket's allow-list and CURVE (not upstream's)."""

KNOWN_KEYS = frozenset({
    "origin", "listen", "topic", "request_port", "request_address", "request_bind", "station", "info",
    "compression", "prog", "delete", "remove_delay", "unpack", "working_directory", "watchdog_timeout",
    # listen chains
    "topics", "services", "addr_listener", "addresses", "timeout", "translate", "nameserver",
    # ours: who may use the request socket (see docs/security.md)
    *SECURITY_KEYS,
    # read by upstream but without effect on a server
    "publish_port", "publisher_port", "req_timeout", "transfer_req_timeout",
    *LEGACY_CONNECTION_KEYS,
})
UNUSED_KEYS = ("publish_port", "publisher_port", "req_timeout", "transfer_req_timeout")


@dataclass(frozen=True)
class ChainConfig:
    """One server chain. Two configs compare equal when a reload can keep the running chain."""

    name: str
    topic: str
    origin: str | None = None
    listen: str | None = None
    request_port: int | None = None
    request_address: str | None = None
    request_bind: str | None = None
    station: str = "unknown"
    info: dict[str, Any] = field(default_factory=dict)
    compression: str | None = None
    prog: str | None = None
    delete: bool = False
    remove_delay: float = 30.0
    unpack: str | None = None
    working_directory: str = field(default_factory=tempfile.gettempdir)
    watchdog_timeout: float = 1.0
    connection_params: dict[str, Any] = field(default_factory=dict)
    listen_addresses: tuple[str, ...] = ()
    listen_nameserver: str | None = None
    allowed_clients: tuple[str, ...] | None = None
    """Networks (``a.b.c.d/n``) whose peers may use the request socket; None: anyone."""
    server_secret_key_file: str | None = None
    clients_public_keys_directory: str | None = None

    @property
    def standalone(self) -> bool:
        """No request port: announce remote-readable URIs and answer no requests."""
        return self.request_port is None

    @property
    def pattern(self) -> FilePattern | None:
        return FilePattern(self.origin) if self.origin else None


def load_config(path: str | os.PathLike[str]) -> dict[str, ChainConfig]:
    """Read the server INI at ``path``: chain name → config. Raises ConfigError."""
    chains: dict[str, ChainConfig] = {}
    ports: dict[int, str] = {}
    for name, section in read_ini(path).items():
        chain = parse_chain(section)
        if chain is None:
            continue
        if chain.request_port is not None:
            other = ports.setdefault(chain.request_port, name)
            if other != name:
                raise section.error("request_port", f"port {chain.request_port} is already used by [{other}]")
        chains[name] = chain
    return chains


def parse_chain(section: Section) -> ChainConfig | None:
    """Build one chain; None (with a warning) for a section with neither origin nor listen."""
    for key in section:
        if key not in KNOWN_KEYS and not key.startswith(CONNECTION_PREFIX):
            LOG.warning("%s: [%s] %s: unknown key, ignored", section.file, section.name, key)
    for key in UNUSED_KEYS:
        if key in section:
            LOG.debug("%s: [%s] %s: not used by the server", section.file, section.name, key)
    origin, listen = section.get_str("origin"), section.get_str("listen")
    if not origin and not listen:
        LOG.warning("%s: [%s]: neither origin nor listen given, section skipped", section.file, section.name)
        return None
    if origin and listen:
        raise section.error("listen", "give either origin or listen, not both")
    topic = section.require("topic")
    if not topic.startswith("/"):
        raise section.error("topic", f"must start with '/', got {topic!r}")
    if origin:
        _check_origin(section, origin)
    elif not (section.get_str("addresses") or "").split():
        raise section.error("addresses", "listen chains need the publisher addresses to subscribe to "
                                         "(nameserver discovery is not supported)")
    request_port = section.get_int("request_port")
    if request_port is not None and not 0 < request_port < 65536:
        raise section.error("request_port", f"expected a port number 1-65535, got {request_port}")
    compression = _choice(section, "compression", COMPRESSIONS)
    unpack = section.get_str("unpack") or None
    if unpack is not None:
        unpack = unpack.strip().lower()
        if unpack not in UNPACKS:
            raise section.error("unpack", f"expected one of {', '.join(UNPACKS)}, got {unpack!r}")
        if request_port is not None:
            LOG.warning("%s: [%s] unpack: only used without request_port (standalone mode)", section.file,
                        section.name)
    prog = section.get_str("prog") or None
    if compression == "xrit" and not prog:
        raise section.error("prog", "compression = xrit needs prog, the path of the xRITDecompress executable")
    working_directory = section.get_str("working_directory") or tempfile.gettempdir()
    if compression and not os.path.isdir(working_directory):
        raise section.error("working_directory", f"no such directory: {working_directory}")
    remove_delay = section.get_float("remove_delay", 30.0)
    if remove_delay is not None and remove_delay < 0:
        raise section.error("remove_delay", "must not be negative")
    watchdog_timeout = section.get_float("watchdog_timeout", 1.0)
    if watchdog_timeout is not None and watchdog_timeout <= 0:
        raise section.error("watchdog_timeout", "must be positive")
    return ChainConfig(
        name=section.name, topic=topic, origin=origin or None, listen=listen or None,
        request_port=request_port,
        request_address=(section.get_str("request_address") or "").strip() or None,
        request_bind=(section.get_str("request_bind") or "").strip() or None,
        station=(section.get_str("station") or "").strip() or "unknown",
        info=parse_info(section), compression=compression, prog=prog,
        delete=section.get_bool("delete", False), remove_delay=remove_delay,
        unpack=unpack, working_directory=working_directory, watchdog_timeout=watchdog_timeout,
        connection_params=connection_parameters(section),
        listen_addresses=tuple((section.get_str("addresses") or "").split()),
        listen_nameserver=_nameserver(section),
        **_security(section),
    )


def _security(section: Section) -> dict[str, Any]:
    """The request socket's allow-list and CURVE keys, checked now so a bad one fails at start."""
    from trollmoves_roles.bus.security import KeyDirectory, SecurityError, load_secret_key, parse_allowed_clients

    found: dict[str, Any] = {}
    allowed = (section.get_str("allowed_clients") or "").strip()
    if allowed:
        try:
            found["allowed_clients"] = tuple(str(n) for n in parse_allowed_clients(allowed))
        except SecurityError as err:
            raise section.error("allowed_clients", str(err)) from None
    secret = (section.get_str("server_secret_key_file") or "").strip()
    directory = (section.get_str("clients_public_keys_directory") or "").strip()
    if directory and not secret:
        raise section.error("clients_public_keys_directory", "needs server_secret_key_file (CURVE)")
    if secret:
        if not directory:
            raise section.error("server_secret_key_file", "needs clients_public_keys_directory: the public keys "
                                                          "of the clients to admit")
        try:
            load_secret_key(secret)
        except SecurityError as err:
            raise section.error("server_secret_key_file", str(err)) from None
        try:
            KeyDirectory(directory)
        except SecurityError as err:
            raise section.error("clients_public_keys_directory", str(err)) from None
        found["server_secret_key_file"] = secret
        found["clients_public_keys_directory"] = directory
    return found


def parse_info(section: Section) -> dict[str, Any]:
    """``info = k=v;k2=a,b``: values containing a comma become lists."""
    text = section.get_str("info") or ""
    info: dict[str, Any] = {}
    for item in text.split(";"):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise section.error("info", f"expected key=value items separated by ';', got {item.strip()!r}")
        value = value.strip()
        info[key.strip()] = value.split(",") if "," in value else value
    return info


def connection_parameters(section: Section) -> dict[str, Any]:
    """The nested ``connection_parameters__a__b = v`` keys as a dict, plus the legacy bare keys.

    ``true``/``1``/``false``/``0`` become booleans, as upstream does.
    """
    params: dict[str, Any] = {}
    for key in LEGACY_CONNECTION_KEYS:
        if key in section:
            LOG.warning("%s: [%s] %s: deprecated, write %s%s instead", section.file, section.name, key,
                        CONNECTION_PREFIX, key)
            params[key] = section[key]
    for key, value in section.items():
        if not key.startswith(CONNECTION_PREFIX):
            continue
        parts = key[len(CONNECTION_PREFIX):].split("__")
        if not all(parts):
            raise section.error(key, "empty part in connection parameter name")
        target = params
        for part in parts[:-1]:
            child = target.setdefault(part, {})
            if not isinstance(child, dict):
                raise section.error(key, f"{part!r} is both a value and a group")
            target = child
        target[parts[-1]] = _bool_or_str(value)
    return params


def _bool_or_str(value: str) -> Any:
    lowered = value.strip().lower()
    if lowered in ("true", "1"):
        return True
    if lowered in ("false", "0"):
        return False
    return value


def _choice(section: Section, key: str, choices: dict[str, str]) -> str | None:
    value = (section.get_str(key) or "").strip().lower()
    if value in ("", "false", "no", "0", "none"):
        return None
    try:
        return choices[value]
    except KeyError:
        raise section.error(key, f"expected one of {', '.join(sorted(choices))}, got {value!r}") from None


def _check_origin(section: Section, origin: str) -> None:
    if not os.path.isabs(origin):
        raise section.error("origin", f"must be an absolute path pattern, got {origin!r}")
    try:
        pattern = FilePattern(origin)
        pattern.glob()
    except Exception as err:  # trollsift reports bad patterns with assorted exception types
        raise section.error("origin", f"invalid trollsift pattern: {err}") from None
    if "{" not in Path(origin).name:
        LOG.debug("%s: [%s] origin has no fields in the file name", section.file, section.name)


def _nameserver(section: Section) -> str | None:
    value = (section.get_str("nameserver") or "").strip()
    return None if value.lower() in ("", "false", "0", "no", "true", "1", "yes") else value
