"""Client INI (upstream ``move_it_client.py`` format) → one typed :class:`ClientChainConfig` per section.

Every section is a chain; ``[DEFAULT]`` is inherited. Values are checked here, so a bad file
fails at start-up with a :class:`~trollmoves_core.exceptions.ConfigError` naming the file,
section and key. Keys the client does not know are kept (upstream uses them to overwrite
message metadata, see :func:`trollmoves_roles.protocol.delivery.replace_mda`) and logged once.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from trollmoves_core.config import Section, read_ini
from trollmoves_core.exceptions import ConfigError
from trollmoves_core.schema import Findings, Key, Schema, ini_defaults, ini_keys, mover_problem, pattern_problem
from trollmoves_core.uri import parse_uri
from trollmoves_roles.bus.security import (
    PUBLISHER_KEY_FILE,
    SECRET_KEY_FILE,
    CurveClient,
    SecurityError,
    load_curve_clients,
)

if TYPE_CHECKING:
    from trollmoves_core.plugins import PluginHost

LOG = logging.getLogger(__name__)

SCHEMA = Schema("client", [
    Key("providers", doc="space-separated host:port (or host:port/topic) of the servers (required)"),
    Key("destination", doc="trollsift pattern of the URL or path files are delivered to (required)"),
    Key("topic", doc="subscription topic; without it, heartbeat must be on"),
    Key("publish_port", int, 0, doc="port the client publishes its file messages on (0: random)"),
    Key("nameservers", doc="register the publisher there; false: none"),
    Key("login", doc="user or user:password inserted into the destination of requests"),
    Key("heartbeat", bool, True, doc="subscribe to the servers' heartbeats"),
    Key("heartbeat_alarm_scale", float, 0.0, doc="restart a subscription after this many missed heartbeats"),
    Key("req_timeout", float, 1.0, doc="seconds to wait for the reply to an ack"),
    Key("transfer_req_timeout", float, 10.0, doc="seconds to wait for the reply to a push"),
    Key("processing_delay", doc="hot-spare delay in seconds (false: off)"),
    Key("backup_targets", doc="space-separated hosts the scp mover fails over to"),
    Key("compression", doc="unpack after the transfer: tar, bzip, gzip, zip, xrit"),
    Key("xritdecompressor", doc="the xRITDecompress executable"),
    Key("delete", bool, False, doc="delete the archive after unpacking"),
    Key("working_directory", used=False, doc="set but unused by upstream's client"),
    Key("create_target_directory", bool, True, doc="create a local destination directory"),
    Key("ftp_root", default="/", doc="local root under which an ftp destination directory is created"),
    Key("block_size", int, 1024, doc="bunzip block size"),
    Key("bind_address", default="*", origin="ours", doc="address the publisher binds to"),
    Key("max_requests_in_flight", int, 64, origin="ours",
        doc="most requests outstanding per server and kind; below it the window follows what the "
            "server answers per round trip (docs/roles/client.md)"),
    Key("request_attempts", int, 3, origin="ours", doc="tries of each request"),
    Key("state_directory", origin="ours", doc="where the durable journal lives (default: none)"),
    Key("give_up_after", float, 3600.0, origin="ours", doc="seconds a file is retried before its failure "
                                                           "is published"),
    Key("retry_delay", float, 1.0, origin="ours", doc="seconds before the first retry round"),
    Key("max_retry_delay", float, 60.0, origin="ours", doc="longest delay between retry rounds"),
    Key("reconcile_interval", float, 60.0, origin="ours", doc="seconds between info requests (0: off)"),
    Key("bus", origin="ours", doc="this process's message broker (mqtt[s]://...; default: ZeroMQ); --bus wins"),
    Key("catch_up_window", float, 3600.0, origin="ours", doc="seconds of announcements a restarted client "
                                                             "fetches from the servers it used"),
    Key("client_secret_key_file", origin="ours", doc="this client's CURVE key pair"),
    Key("server_public_key_file", origin="ours", doc="CURVE public key of the servers' request sockets"),
    Key("publisher_public_key_file", origin="ours", doc="CURVE public key of the servers' publishers"),
], unknown_message="not a client option; it only overwrites message metadata of the same name")
"""Every key of a client section. Other keys are kept: they overwrite message metadata."""

NO_CHAIN = "no client chain defined (one section per chain)"
PUSHED_SCHEMES = frozenset({"ftp", "ftps", "scp", "sftp", "s3"})
"""Destination schemes the server writes to (the client host needs no mover for them)."""

COMPRESSIONS = {"tar": "tar", "bzip": "bzip", "bzip2": "bzip", "bz2": "bzip", "gzip": "gzip", "gz": "gzip",
                "zip": "zip", "xrit": "xrit"}
"""Accepted ``compression`` values → the unpacker used."""


@dataclass(frozen=True)
class Provider:
    """A publisher to subscribe to, with its own topic when given as ``host:port/topic``."""

    address: str
    topic: str | None = None


@dataclass(frozen=True)
class ClientChainConfig:
    """One client chain (one INI section)."""

    name: str
    providers: tuple[Provider, ...]
    destination: str
    topic: str | None = None
    publish_port: int = 0
    nameservers: tuple[str, ...] | bool | None = None
    """A tuple of hosts, False (no nameserver), or None (unset: upstream would multicast)."""
    bind_address: str = "*"
    login: str | None = None
    heartbeat: bool = True
    heartbeat_alarm_scale: float = 0.0
    req_timeout: float = 1.0
    transfer_req_timeout: float = 10.0
    request_attempts: int = 3
    max_requests_in_flight: int = 64
    processing_delay: float = 0.0
    backup_targets: tuple[str, ...] = ()
    compression: str | None = None
    xritdecompressor: str | None = None
    delete: bool = False
    create_target_directory: bool = True
    ftp_root: str = "/"
    block_size: int = 1024
    state_directory: str | None = None
    """Where the durable journal lives (None: no journal, state is lost on restart)."""
    give_up_after: float = 3600.0
    """Seconds a file is retried (every source, with backoff) before its failure is published; 0: one round."""
    retry_delay: float = 1.0
    """Seconds before the first retry round; doubled each round up to ``max_retry_delay``."""
    max_retry_delay: float = 60.0
    reconcile_interval: float = 60.0
    """Seconds between ``info`` requests asking the servers for files missed on the bus (0: off)."""
    bus: str | None = None
    """The broker's bus address (every section of a process names the same one, or none)."""
    catch_up_window: float = 3600.0
    """Announcements made up to this many seconds before a start are fetched at start (with
    ``state_directory``); older ones missed while the client was down are logged as lost."""
    request_curve: CurveClient | None = None
    """CURVE keys for the servers' request sockets (``client_secret_key_file`` + ``server_public_key_file``)."""
    subscribe_curve: CurveClient | None = None
    """CURVE keys for the providers' publishers (``client_secret_key_file`` + ``publisher_public_key_file``)."""
    metadata: dict[str, str] = field(default_factory=dict, compare=True)
    """Every key of the section, for ``replace_mda``."""
    file: str = field(default="", compare=False)
    """The config file, for error messages."""

    def topics_for(self, provider: Provider) -> list[str]:
        """The subscription topics for ``provider``, heartbeats included unless turned off."""
        topics = [provider.topic or self.topic] if (provider.topic or self.topic) else []
        if self.heartbeat:
            topics += ["/heartbeat/move_it_server", f"/heartbeat/move_it_{self.name}"]
        return topics


def load_client_config(path: str | os.PathLike[str], host: PluginHost | None = None) -> dict[str, ClientChainConfig]:
    """Read and check a client INI file; return the chains by section name. With ``host``, the
    keys of its delivery observers are client keys too."""
    from trollmoves_roles.runtime.observers import refuse_bad_observer_keys, with_observer_keys

    schema = with_observer_keys(SCHEMA, host)
    sections = read_ini(path)
    chains: dict[str, ClientChainConfig] = {}
    unknown: dict[str, list[str]] = {}
    for name, section in sections.items():
        for key in section:
            if key not in schema:
                unknown.setdefault(key, []).append(name)
        chain = chain_from_section(section)
        if chain is not None and host is not None:
            refuse_bad_observer_keys(host, dict(section), file=section.file, section=name)
        if chain is not None:
            chains[name] = chain
    for key, names in unknown.items():
        LOG.warning("%s: key %r (in %s) is not a client option; it only overwrites the same key in "
                    "published messages (replace_mda)", os.fspath(path), key, ", ".join(f"[{n}]" for n in names))
    if not chains:
        raise ConfigError(NO_CHAIN, file=os.fspath(path))
    return chains


def chain_from_section(section: Section) -> ClientChainConfig | None:
    """The chain of one section; None (with a warning) for a section upstream would drop."""
    topic = _text(section, "topic")
    heartbeat = section.get_bool("heartbeat", SCHEMA.default("heartbeat"))
    if topic is None and not heartbeat:
        LOG.warning("%s: [%s] has no topic and heartbeat is off; section ignored", section.file, section.name)
        return None
    providers = tuple(_provider(section, item) for item in section.require("providers").split())
    destination = section.require("destination").strip()
    _check_destination(section, destination)
    compression = _compression(section)
    return ClientChainConfig(
        name=section.name,
        providers=providers,
        destination=destination,
        topic=topic,
        publish_port=_int(section, "publish_port", minimum=0, maximum=65535),
        nameservers=_nameservers(section),
        bind_address=_text(section, "bind_address") or SCHEMA.default("bind_address"),
        login=_text(section, "login"),
        heartbeat=heartbeat,
        heartbeat_alarm_scale=_float(section, "heartbeat_alarm_scale"),
        req_timeout=_float(section, "req_timeout", positive=True),
        transfer_req_timeout=_float(section, "transfer_req_timeout", positive=True),
        request_attempts=_int(section, "request_attempts", minimum=1),
        max_requests_in_flight=_int(section, "max_requests_in_flight", minimum=1),
        processing_delay=_delay(section),
        backup_targets=tuple((_text(section, "backup_targets") or "").split()),
        compression=compression,
        xritdecompressor=_text(section, "xritdecompressor"),
        delete=section.get_bool("delete", SCHEMA.default("delete")),
        create_target_directory=section.get_bool("create_target_directory",
                                                 SCHEMA.default("create_target_directory")),
        ftp_root=_text(section, "ftp_root") or SCHEMA.default("ftp_root"),
        block_size=_int(section, "block_size", minimum=1),
        state_directory=_text(section, "state_directory"),
        give_up_after=_float(section, "give_up_after"),
        retry_delay=_float(section, "retry_delay", positive=True),
        max_retry_delay=_float(section, "max_retry_delay", positive=True),
        reconcile_interval=_float(section, "reconcile_interval"),
        bus=_text(section, "bus"),
        catch_up_window=_float(section, "catch_up_window"),
        **_curve(section),
        metadata=dict(section),
        file=section.file,
    )


def _curve(section: Section) -> dict[str, CurveClient | None]:
    """The chain's CURVE keys: ``client_secret_key_file`` with the request sockets' and/or the
    publishers' public key. Each file is read now, so a bad one fails at start naming its key."""
    fields = {"server_public_key_file": "request_curve", PUBLISHER_KEY_FILE: "subscribe_curve"}
    try:
        clients = load_curve_clients(_text(section, SECRET_KEY_FILE), {key: _text(section, key) for key in fields})
    except SecurityError as err:
        raise section.error(err.key or SECRET_KEY_FILE, str(err)) from None
    return {fields[key]: client for key, client in clients.items()}


def _text(section: Section, key: str) -> str | None:
    value = section.get_str(key)
    if value is None or not value.strip():
        return None
    return value.strip()


def _provider(section: Section, item: str) -> Provider:
    text = item.removeprefix("tcp://")
    hostport, _, topic = text.partition("/")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise section.error("providers", f"expected host:port or host:port/topic, got {item!r}")
    return Provider(address=f"tcp://{host}:{port}", topic=topic or None)


def _check_destination(section: Section, destination: str) -> None:
    from trollsift import Parser
    try:
        Parser(destination).keys()
        location = parse_uri(destination)
    except ValueError as err:
        raise section.error("destination", f"invalid destination {destination!r}: {err}") from None
    if location.scheme not in ("file", "ftp", "ftps", "scp", "sftp", "s3"):
        raise section.error("destination", f"unsupported scheme {location.scheme!r} (file, ftp, scp, sftp, s3)")
    if location.password:
        LOG.warning("%s: [%s] destination: put credentials in 'login', not in the URL", section.file,
                    section.name)


def _compression(section: Section) -> str | None:
    value = _text(section, "compression")
    if value is None or value.lower() in ("false", "no", "0", "off", "none"):
        return None
    try:
        return COMPRESSIONS[value.lower()]
    except KeyError:
        raise section.error("compression", f"unknown compression {value!r} "
                                           f"(one of {', '.join(sorted(COMPRESSIONS))})") from None


def _nameservers(section: Section) -> tuple[str, ...] | bool | None:
    value = _text(section, "nameservers")
    if value is None:
        return None
    lowered = value.lower()
    if lowered in ("false", "no", "off", "0"):
        return False
    if lowered in ("true", "yes", "on", "1"):
        return True
    return tuple(value.replace(",", " ").split())


def _delay(section: Section) -> float:
    value = _text(section, "processing_delay")
    if value is None or value.lower() in ("false", "no", "off", "none"):
        return 0.0
    return _float(section, "processing_delay", 0.0)


def _float(section: Section, key: str, default: float | None = None, *, positive: bool = False) -> float:
    value: Any = section.get_float(key, SCHEMA.default(key) if default is None else default)
    if value < 0 or (positive and value == 0):
        raise section.error(key, f"expected a {'positive' if positive else 'non-negative'} number, got {value}")
    return float(value)


def _int(section: Section, key: str, *, minimum: int = 0, maximum: int | None = None) -> int:
    value: Any = section.get_int(key, SCHEMA.default(key))
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
        raise section.error(key, f"expected an integer {bound}, got {value}")
    return int(value)


# -- trollmoves check ------------------------------------------------------------------------

def recognises(content: Any) -> int:
    """1 for an INI file with a section that has providers (see Role.recognises)."""
    keys = ini_keys(content)
    return int(keys is not None and "providers" in keys)



def check_config(out: Findings, path: str, host: PluginHost) -> None:
    """Record in ``out`` every problem of the client INI at ``path``, one per location."""
    from trollmoves_roles.runtime.observers import check_observers, with_observer_keys
    from trollmoves_roles.runtime.process import check_bus

    try:
        sections = read_ini(path)
    except ConfigError as err:
        out.add_error(err)
        return
    defaults = ini_defaults(path)
    schema = with_observer_keys(SCHEMA, host)
    schema.check_keys(out, sorted(defaults), "DEFAULT")
    chains = 0
    parsed = []
    for name, section in sections.items():
        schema.check_keys(out, (k for k in section if k not in defaults), name)
        check_section(out, section, host)
        check_observers(out, host, dict(section), name)
        try:
            config = chain_from_section(section)
            chains += config is not None
            parsed.append(config)
        except ConfigError as err:
            chains += 1
            out.add_error(err)
    check_bus(out, (c for c in parsed if c is not None), host)
    if not chains:
        out.add(NO_CHAIN)
    out.sections = len(sections)


def check_section(out: Findings, section: Section, host: PluginHost, *, mirror: bool = False) -> None:
    """The client keys of one section; a mirror stages into a temporary directory by default and
    publishes through its own server side, so ``destination`` is optional and ``nameservers`` moot."""
    name = section.name
    providers = section.get("providers", "").split()
    if not providers:
        out.add("required key is missing", name, "providers")
    for item in providers:
        address = item.split("/", 1)[0].split("://", 1)[-1]
        hostname, sep, port = address.rpartition(":")
        if not sep or not hostname or not port.isdigit() or not 0 < int(port) < 65536:
            out.add(f"expected host:port, got {item!r}", name, "providers")
    destination = section.get("destination", "").strip()
    if not destination:
        if not mirror:
            out.add("required key is missing", name, "destination")
    elif problem := pattern_problem(destination):
        out.add(problem, name, "destination")
    elif problem := mover_problem(host, destination):
        scheme = destination.split("://", 1)[0].lower() if "://" in destination else ""
        if mirror or scheme not in PUSHED_SCHEMES:
            out.add(problem, name, "destination")
        else:
            out.add(f"{problem}; not needed by this client: the server does the push", name, "destination",
                    warning=True)
    SCHEMA.check_ini_types(out, section)
    nameservers = section.get("nameservers", "").strip().lower()
    fixed_port = section.get("publish_port", "0").strip() not in ("", "0")
    would_multicast = not nameservers or (nameservers in ("false", "no", "0", "off") and not fixed_port)
    if would_multicast and not mirror:
        out.add("upstream's client would announce by multicast here (trollmoves never does): set "
                "nameservers = false with a fixed publish_port, or list the nameservers", name, "nameservers",
                warning=True)
    if not section.get("topic", "").strip():
        try:
            heartbeat = section.get_bool("heartbeat", True)
        except ConfigError:
            heartbeat = True
        if not heartbeat:
            out.add("no topic and heartbeat off: this section is skipped", name, warning=True)
