"""The server INI file (upstream ``move_it_server.py`` format) read into typed chain configs.

One section per chain, ``[DEFAULT]`` inherited, no interpolation. :data:`SCHEMA` lists every key
(upstream's and ours); unknown keys are logged as warnings naming file, section and key. Bad values raise
:class:`~trollmoves_core.exceptions.ConfigError` naming the same.
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trollmoves_core.bwlimit import Schedule, parse_limit
from trollmoves_core.checksum import DEFAULT_METHOD, METHODS
from trollmoves_core.config import Section, read_ini
from trollmoves_core.exceptions import ConfigError
from trollmoves_core.patterns import FilePattern
from trollmoves_core.plugins import PluginHost
from trollmoves_core.schema import Findings, Key, Schema, directory_problem, ini_defaults, ini_keys, pattern_problem

LOG = logging.getLogger(__name__)

COMPRESSIONS = {"bzip": "bz2", "bz2": "bz2", "bzip2": "bz2", "gzip": "gzip", "gz": "gzip",
                "tar": "tar", "zip": "zip", "xrit": "xrit"}
"""Accepted ``compression`` values and the unpacker each one selects."""

UNPACKS = ("tar", "zip")
"""Accepted ``unpack`` values (standalone mode)."""

CONNECTION_PREFIX = "connection_parameters__"

LEGACY_CONNECTION_KEYS = ("connection_uptime", "ssh_key_filename", "ssh_connection_timeout", "ssh_private_key_file")
"""Bare keys upstream moves into the connection parameters (with a deprecation warning)."""

SCHEMA = Schema("server", [
    Key("origin", doc="trollsift pattern of the full path of the files to announce"),
    Key("listen", doc="instead of origin: the topic to subscribe to and re-announce"),
    Key("topic", doc="subject of the announcements (required)"),
    Key("request_port", int, doc="port of this chain's request socket; absent: standalone mode"),
    Key("request_address", doc="host written into the announcements' request_address"),
    Key("bus", origin="ours", doc="this process's message broker (mqtt[s]://...; default: ZeroMQ); --bus wins"),
    Key("request_bind", origin="ours", doc="address the request socket binds to (default: --bind)"),
    Key("station", default="unknown", doc="returned in pong replies"),
    Key("info", doc="k=v;k2=a,b items added to every announcement"),
    Key("compression", doc="unpack before announcing: xrit, bzip, gzip, tar, zip"),
    Key("prog", doc="the xRITDecompress executable, for compression = xrit"),
    Key("delete", bool, False, doc="delete served files remove_delay seconds after the push or ack"),
    Key("remove_delay", float, 30.0, doc="seconds before deleting (see delete)"),
    Key("unpack", doc="standalone mode only: tar or zip"),
    Key("working_directory", doc="where compressed files are unpacked (default: the system temp dir)"),
    Key("watchdog_timeout", float, 1.0, doc="watcher timeout and polling interval"),
    Key("checksum", default=DEFAULT_METHOD, origin="ours",
        doc="size and checksum in each announcement: sha256, sha512 or none (docs/checksums.md)"),
    # listen chains
    Key("topics", used=False, doc="read by upstream's listen chains, which subscribe to listen only"),
    Key("services", used=False, doc="upstream's listen chains: nameserver services (discovery unsupported)"),
    Key("addr_listener", used=False, doc="upstream's listen chains: follow new publishers (always off here)"),
    Key("addresses", doc="listen chains: the publishers to subscribe to (space-separated)"),
    Key("timeout", float, 10.0, used=False, doc="upstream's listen chains: receive timeout"),
    Key("translate", used=False, doc="upstream's listen chains: uri translation"),
    Key("nameserver", doc="listen chains: the nameserver to ask (false or absent: none)"),
    # ours: who may use the request socket (see docs/security.md)
    Key("allowed_clients", origin="ours", doc="networks (a.b.c.d/n) whose peers may send requests"),
    Key("server_secret_key_file", origin="ours", doc="CURVE secret key of the request socket"),
    Key("clients_public_keys_directory", origin="ours", doc="CURVE public keys of the admitted clients"),
    Key("allowed_destinations", origin="ours", doc="glob or re: patterns of the destinations clients may push to"),
    # ours: bandwidth limits of the pushes (see docs/roles/server.md)
    Key("bwlimit", origin="ours", doc="bandwidth of this chain's pushes: 20M, 512k, off, or a timetable "
                                      "(08:00,10M 18:00,off)"),
    Key("bwlimit_per_host", origin="ours", doc="bandwidth to each destination host, shared with every chain "
                                               "giving the same limit (put it in [DEFAULT])"),
    # read by upstream but without effect on a server
    Key("publish_port", int, used=False, doc="parsed and unused by upstream's server"),
    Key("publisher_port", int, used=False, doc="parsed and unused by upstream's server"),
    Key("req_timeout", float, used=False, doc="parsed and unused by upstream's server"),
    Key("transfer_req_timeout", float, used=False, doc="parsed and unused by upstream's server"),
    # never read by upstream 0.19, but in its example config
    Key("origin_inotify_base_dir_skip_levels", used=False, doc="in upstream's example; no version reads it"),
    *(Key(name, doc=f"deprecated: write {CONNECTION_PREFIX}{name}") for name in LEGACY_CONNECTION_KEYS),
], prefixes=(CONNECTION_PREFIX,))
"""Every key of a server section: upstream's and ours."""

UNUSED_KEYS = SCHEMA.names(used=False)

NO_CHAIN = "no chain defined: no section has origin or listen (one section per chain)"


@dataclass(frozen=True)
class ServerChainConfig:
    """One server chain. Two configs compare equal when a reload can keep the running chain."""

    name: str
    topic: str
    origin: str | None = None
    listen: str | None = None
    request_port: int | None = None
    request_address: str | None = None
    bus: str | None = None
    """The broker's bus address (every section of a process names the same one, or none)."""
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
    checksum: str | None = DEFAULT_METHOD
    """Checksum method of the announcements (``size`` and ``integrity``); None: neither."""
    connection_params: dict[str, Any] = field(default_factory=dict)
    listen_addresses: tuple[str, ...] = ()
    listen_nameserver: str | None = None
    allowed_clients: tuple[str, ...] | None = None
    """Networks (``a.b.c.d/n``) whose peers may use the request socket; None: anyone."""
    server_secret_key_file: str | None = None
    clients_public_keys_directory: str | None = None
    allowed_destinations: tuple[str, ...] | None = None
    """Patterns of the destinations clients may push to (:mod:`~trollmoves_roles.protocol.destinations`);
    None: any."""
    bwlimit: Schedule | None = None
    """The bandwidth of this chain's pushes together; None: unlimited."""
    bwlimit_per_host: Schedule | None = None
    """The bandwidth to each destination host, shared by the chains with the same limit; None: unlimited."""

    @property
    def standalone(self) -> bool:
        """No request port: announce remote-readable URIs and answer no requests."""
        return self.request_port is None

    @property
    def pattern(self) -> FilePattern | None:
        return FilePattern(self.origin) if self.origin else None


def load_config(path: str | os.PathLike[str]) -> dict[str, ServerChainConfig]:
    """Read the server INI at ``path``: chain name → config. Raises ConfigError."""
    chains: dict[str, ServerChainConfig] = {}
    ports: dict[int, str] = {}
    for name, section in read_ini(path).items():
        chain = parse_chain(section)
        if chain is None:
            continue
        problem = port_taken(ports, chain.request_port, name)
        if problem:
            raise section.error("request_port", problem)
        chains[name] = chain
    return chains


def port_taken(ports: dict[int, str], port: int | None, section: str) -> str | None:
    """Why ``section`` cannot have ``port`` as its request port (another section has it), or None;
    records the port in ``ports`` (port → section)."""
    if port is None:
        return None
    other = ports.setdefault(port, section)
    return f"port {port} is already used by [{other}]" if other != section else None


def parse_chain(section: Section) -> ServerChainConfig | None:
    """Build one chain; None (with a warning) for a section with neither origin nor listen."""
    for key, message in SCHEMA.warnings(section):
        LOG.warning("%s: [%s] %s: %s", section.file, section.name, key, message)
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
    compression, prog = compression_of(section)
    unpack = section.get_str("unpack") or None
    if unpack is not None:
        unpack = unpack.strip().lower()
        if unpack not in UNPACKS:
            raise section.error("unpack", f"expected one of {', '.join(UNPACKS)}, got {unpack!r}")
        if request_port is not None:
            LOG.warning("%s: [%s] unpack: only used without request_port (standalone mode)", section.file,
                        section.name)
    working_directory = section.get_str("working_directory") or tempfile.gettempdir()
    if compression and not os.path.isdir(working_directory):
        raise section.error("working_directory", f"no such directory: {working_directory}")
    remove_delay = section.get_float("remove_delay", SCHEMA.default("remove_delay"))
    if remove_delay is not None and remove_delay < 0:
        raise section.error("remove_delay", "must not be negative")
    watchdog_timeout = section.get_float("watchdog_timeout", SCHEMA.default("watchdog_timeout"))
    if watchdog_timeout is not None and watchdog_timeout <= 0:
        raise section.error("watchdog_timeout", "must be positive")
    return ServerChainConfig(
        name=section.name, topic=topic, origin=origin or None, listen=listen or None,
        request_port=request_port,
        request_address=(section.get_str("request_address") or "").strip() or None,
        bus=(section.get_str("bus") or "").strip() or None,
        request_bind=(section.get_str("request_bind") or "").strip() or None,
        station=(section.get_str("station") or "").strip() or "unknown",
        info=parse_info(section), compression=compression, prog=prog,
        delete=section.get_bool("delete", False), remove_delay=remove_delay,
        unpack=unpack, working_directory=working_directory, watchdog_timeout=watchdog_timeout,
        checksum=_checksum(section),
        connection_params=connection_parameters(section),
        listen_addresses=tuple((section.get_str("addresses") or "").split()),
        listen_nameserver=_nameserver(section),
        allowed_destinations=allowed_destinations(section),
        bwlimit=bandwidth_limit(section, "bwlimit"),
        bwlimit_per_host=bandwidth_limit(section, "bwlimit_per_host"),
        **request_security(section),
    )


def allowed_destinations(section: Section) -> tuple[str, ...] | None:
    """The chain's destination patterns, compiled now so that a bad one fails at start."""
    from trollmoves_roles.protocol.destinations import DestinationRules

    if "allowed_destinations" not in section:
        return None
    patterns = tuple((section.get_str("allowed_destinations") or "").split())
    try:
        DestinationRules.parse(patterns)
    except ValueError as err:
        raise section.error("allowed_destinations", str(err)) from None
    return patterns


def bandwidth_limit(section: Section, key: str) -> Schedule | None:
    """The limit ``key`` gives (a rate or a timetable), None when absent or ``off``."""
    try:
        return parse_limit(section.get_str(key))
    except ValueError as err:
        raise section.error(key, str(err)) from None


def request_security(section: Section) -> dict[str, Any]:
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


def compression_of(section: Section) -> tuple[str | None, str | None]:
    """``compression`` (the unpacker's kind, None for none) and ``prog`` (needed by ``xrit``)."""
    compression = _choice(section, "compression", COMPRESSIONS)
    prog = section.get_str("prog") or None
    if compression == "xrit" and not prog:
        raise section.error("prog", "compression = xrit needs prog, the path of the xRITDecompress executable")
    return compression, prog


def _checksum(section: Section) -> str | None:
    value = (section.get_str("checksum") or DEFAULT_METHOD).strip().lower()
    if value in ("none", "false", "no", "off"):
        return None
    if value not in METHODS:
        raise section.error("checksum", f"expected one of {', '.join(METHODS)} or none, got {value!r}")
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


# -- trollmoves check ------------------------------------------------------------------------

def recognises(content: Any) -> int:
    """1 for an INI file with a section that has origin or listen (see Role.recognises)."""
    keys = ini_keys(content)
    return int(keys is not None and bool(keys & {"origin", "listen"}))



def check_config(out: Findings, path: str, host: PluginHost) -> None:
    """Record in ``out`` every problem of the server INI at ``path``, one per location."""
    from trollmoves_roles.runtime.process import check_bus

    try:
        sections = read_ini(path)
    except ConfigError as err:
        out.add_error(err)
        return
    defaults = ini_defaults(path)
    SCHEMA.check_keys(out, sorted(defaults), "DEFAULT")
    ports: dict[int, str] = {}
    chains = 0
    parsed = []
    for name, section in sections.items():
        SCHEMA.check_keys(out, (k for k in section if k not in defaults), name)
        check_section(out, section, ports)
        try:
            config = parse_chain(section)
            chains += config is not None
            parsed.append(config)
        except ConfigError as err:
            chains += 1  # a chain, with a fault
            out.add_error(err)
    check_bus(out, (c for c in parsed if c is not None), host)
    if not chains:
        out.add(NO_CHAIN)
    out.sections = len(sections)


def check_section(out: Findings, section: Section, ports: dict[int, str], *, mirror: bool = False) -> None:
    """The server keys of one section; in a mirror ``origin`` only filters what is mirrored, so
    it may be absent."""
    name = section.name
    origin, listen = section.get("origin", "").strip(), section.get("listen", "").strip()
    if not origin and not listen and not mirror:
        out.add("neither origin nor listen: this section is skipped", name, warning=True)
        return
    if origin and listen:
        out.add("give either origin or listen, not both", name, "listen")
    topic = section.get("topic", "").strip()
    if not topic:
        out.add("required key is missing", name, "topic")
    elif not topic.startswith("/"):
        out.add(f"must start with '/', got {topic!r}", name, "topic")
    if origin and mirror:  # only a filter on the names of mirrored files
        if problem := pattern_problem(origin):
            out.add(problem, name, "origin")
    elif origin:
        _check_origin_directory(out, name, origin)
    SCHEMA.check_ini_types(out, section)
    try:
        _checksum(section)
    except ConfigError as err:
        out.add(err.message, name, "checksum")
    for key in ("bwlimit", "bwlimit_per_host"):
        try:
            bandwidth_limit(section, key)
        except ConfigError as err:
            out.add(err.message, name, key)
    try:
        port = section.get_int("request_port")
    except ConfigError:
        return
    if port is not None and not 0 < port < 65536:
        out.add(f"expected a port number 1-65535, got {port}", name, "request_port")
    elif problem := port_taken(ports, port, name):
        out.add(problem, name, "request_port")


def _check_origin_directory(out: Findings, section: str, origin: str) -> None:
    if not os.path.isabs(origin):
        out.add(f"must be an absolute path pattern, got {origin!r}", section, "origin")
        return
    problem = pattern_problem(origin)
    if problem:
        out.add(problem, section, "origin")
        return
    head = origin.split("{", 1)[0]
    directory = Path(head if head.endswith("/") else os.path.dirname(head) or "/")
    if not os.path.lexists(directory):
        out.add(f"directory {directory} does not exist yet; the chain starts watching when it appears", section,
                "origin", warning=True)
    elif problem := directory_problem(directory):
        out.add(problem, section, "origin")
