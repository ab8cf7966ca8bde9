"""The mirror INI file (upstream ``move_it_mirror.py`` format) read into one config per section.

Each section combines client keys (``providers``, ``client_topic``, ``destination``, ``login``
and the request timeouts) with server keys (``topic``, ``request_port``, ``request_address``,
``station``, ``info``, ``origin``, ``remove_delay``, connection parameters). ``[DEFAULT]`` is
inherited. The client part is parsed by the client role's own parser and the server part with
the server role's helpers, so the values mean what they mean there. Bad values raise
:class:`~trollmoves_core.exceptions.ConfigError` naming the file, section and key; keys the
mirror does not use are logged once.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import posixpath
import tempfile
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from trollmoves_core.bwlimit import Schedule
from trollmoves_core.config import Section, read_ini
from trollmoves_core.exceptions import ConfigError
from trollmoves_core.patterns import FilePattern
from trollmoves_core.schema import Findings, Key, Schema, ini_defaults, ini_keys
from trollmoves_core.uri import parse_uri
from trollmoves_roles.client import config as client_config
from trollmoves_roles.client.config import SCHEMA as CLIENT_SCHEMA
from trollmoves_roles.client.config import ClientChainConfig, Provider, chain_from_section
from trollmoves_roles.protocol.messages import is_local_host
from trollmoves_roles.server import config as server_config
from trollmoves_roles.server.config import SCHEMA as SERVER_SCHEMA
from trollmoves_roles.server.config import (
    allowed_destinations,
    bandwidth_limit,
    compression_of,
    connection_parameters,
    parse_info,
    port_taken,
    request_security,
)

if TYPE_CHECKING:
    from trollmoves_core.plugins import PluginHost

LOG = logging.getLogger(__name__)

IGNORED_KEYS = frozenset({
    "publish_port", "publisher_port", "nameservers",  # the mirror publishes on -p only
    "xritdecompressor", "block_size",  # the client part's unpacking: compression is the server part's
    "delete",  # staged copies are always removed
    "listen", "topics", "services", "addr_listener", "addresses", "timeout", "translate", "nameserver", "unpack",
    "watchdog_timeout", "processing_delay", "backup_targets", "create_target_directory", "bind_address",
    "connection_uptime", "ssh_key_filename", "ssh_connection_timeout", "ssh_private_key_file",
})
"""Keys upstream's server or client reads that have no effect on a mirror (accepted, logged)."""

REQUEST_SOCKET_KEYS = frozenset({"request_bind", "allowed_clients", "server_secret_key_file",
                                 "clients_public_keys_directory", "allowed_destinations"})
"""The server part's keys of ours that the mirror's request sockets use, as a server's do."""
PUSH_KEYS = frozenset({"bwlimit", "bwlimit_per_host"})
"""The server part's keys of ours that the mirror's pushes use, as a server's do."""

SCHEMA = Schema("mirror", [
    Key("client_topic", doc="topic subscribed to on the providers (default: topic)"),
    Key("delay", float, 0.0, doc="seconds to hold each re-announcement"),
    Key("destination", doc="where internal servers put fetched files, on this host (default: a temporary "
                           "directory under working_directory)"),
    Key("working_directory", doc="parent of the default staging directory"),
]) | SERVER_SCHEMA.renamed("mirror", drop=SERVER_SCHEMA.names(origin="ours") - REQUEST_SOCKET_KEYS - PUSH_KEYS,
                           unused=IGNORED_KEYS) | CLIENT_SCHEMA.renamed("mirror", unused=IGNORED_KEYS)
"""Every key of a mirror section: the client part's, the server part's and the mirror's own."""

NO_SECTION = "no mirror section defined (one section per mirrored topic)"

HEARTBEAT_TOPICS = ("/heartbeat/move_it_server", "/heartbeat/move_it_mirror")
"""Heartbeats the mirror listens to on its providers (internal servers, or other mirrors)."""


@dataclass(frozen=True)
class MirrorConfig:
    """One mirror section."""

    name: str
    client: ClientChainConfig
    """The client part: providers, subscription topic, login, timeouts, heartbeat watchdog."""
    topic: str
    """Subject of the re-announcements."""
    request_port: int
    request_address: str | None = None
    request_bind: str | None = None
    station: str = "unknown"
    info: dict[str, Any] = field(default_factory=dict)
    origin: str | None = None
    delay: float = 0.0
    remove_delay: float = 30.0
    destination: str | None = None
    """Where internal servers put fetched files (a URL or path on this host); None: a temporary
    directory under ``working_directory``."""
    working_directory: str = field(default_factory=tempfile.gettempdir)
    connection_params: dict[str, Any] = field(default_factory=dict)
    """Connection parameters of the movers delivering to external clients."""
    allowed_clients: tuple[str, ...] | None = None
    """Networks whose external clients may use the request socket; None: anyone."""
    server_secret_key_file: str | None = None
    """With ``clients_public_keys_directory``: the request socket is a CURVE server, as a server's."""
    clients_public_keys_directory: str | None = None
    allowed_destinations: tuple[str, ...] | None = None
    """Patterns of the destinations external clients may push to, as a server's; None: any."""
    compression: str | None = None
    """Unpack each new file (as a server does) before re-announcing the unpacked file(s)."""
    bwlimit: Schedule | None = None
    """The bandwidth of this chain's pushes together, as a server chain's; None: unlimited."""
    bwlimit_per_host: Schedule | None = None
    """The bandwidth to each destination host, as a server chain's; None: unlimited."""
    prog: str | None = None
    """The xRITDecompress executable, for ``compression = xrit``."""

    @property
    def providers(self) -> tuple[Provider, ...]:
        return self.client.providers

    def topics_for(self, provider: Provider) -> list[str]:
        """What to subscribe to on ``provider``: its own topic or ``client_topic``, plus heartbeats."""
        topic = provider.topic or self.client.topic
        topics = [topic] if topic else []
        if self.client.heartbeat:
            topics += HEARTBEAT_TOPICS
        return topics

    @property
    def staging_destination(self) -> str:
        """The destination pattern fetched files are requested to (always a directory)."""
        destination = self.destination or self.working_directory
        return destination if destination.endswith("/") else destination + "/"

    def serves(self, path: str) -> bool:
        """True when ``origin`` is unset or the file name matches the name part of its glob."""
        if not self.origin:
            return True
        return fnmatch.fnmatch(posixpath.basename(path), posixpath.basename(FilePattern(self.origin).glob()))


def load_mirror_config(path: str | os.PathLike[str]) -> dict[str, MirrorConfig]:
    """Read and check a mirror INI file; return the sections by name. Raises ConfigError."""
    file = os.fspath(path)
    configs: dict[str, MirrorConfig] = {}
    ports: dict[int, str] = {}
    unknown: dict[str, list[str]] = {}
    ignored: dict[str, list[str]] = {}
    for name, section in read_ini(file).items():
        for key in section:
            if key not in SCHEMA:
                unknown.setdefault(key, []).append(name)
            elif key in IGNORED_KEYS:
                ignored.setdefault(key, []).append(name)
        config = parse_section(section)
        problem = port_taken(ports, config.request_port, name)
        if problem:
            raise section.error("request_port", problem)
        configs[name] = config
    for key, names in unknown.items():
        LOG.warning("%s: %s: unknown key, ignored (in %s)", file, key, ", ".join(f"[{n}]" for n in names))
    for key, names in ignored.items():
        LOG.debug("%s: %s: not used by the mirror (in %s)", file, key, ", ".join(f"[{n}]" for n in names))
    if not configs:
        raise ConfigError(NO_SECTION, file=file)
    return configs


def parse_section(section: Section) -> MirrorConfig:
    """One section's config. Raises ConfigError naming the key at fault."""
    topic = (section.get_str("topic") or "").strip()
    if not topic:
        raise section.error("topic", "required key is missing (the subject of the mirror's announcements)")
    if not topic.startswith("/"):
        raise section.error("topic", f"must start with '/', got {topic!r}")
    client_topic = (section.get_str("client_topic") or "").strip() or topic
    if not client_topic.startswith("/"):
        raise section.error("client_topic", f"must start with '/', got {client_topic!r}")
    request_port = section.get_int("request_port")
    if request_port is None:
        raise section.error("request_port", "required key is missing (the port external clients request files on)")
    if not 0 < request_port < 65536:
        raise section.error("request_port", f"expected a port number 1-65535, got {request_port}")
    working_directory = (section.get_str("working_directory") or "").strip() or tempfile.gettempdir()
    destination = (section.get_str("destination") or "").strip() or None
    client = _client_part(section, client_topic, destination or working_directory)
    if destination is not None:
        _check_staging(section, destination)
    origin = (section.get_str("origin") or "").strip() or None
    if origin is not None:
        try:
            FilePattern(origin).glob()
        except Exception as err:  # trollsift reports bad patterns with assorted exception types
            raise section.error("origin", f"invalid trollsift pattern: {err}") from None
    compression, prog = compression_of(section)
    return MirrorConfig(
        name=section.name, client=client, topic=topic, request_port=request_port,
        request_address=(section.get_str("request_address") or "").strip() or None,
        request_bind=(section.get_str("request_bind") or "").strip() or None,
        station=(section.get_str("station") or "").strip() or "unknown",
        info=parse_info(section), origin=origin,
        delay=_non_negative(section, "delay"), remove_delay=_non_negative(section, "remove_delay"),
        destination=destination, working_directory=working_directory,
        connection_params=connection_parameters(section),
        compression=compression, prog=prog, allowed_destinations=allowed_destinations(section),
        bwlimit=bandwidth_limit(section, "bwlimit"), bwlimit_per_host=bandwidth_limit(section, "bwlimit_per_host"),
        **request_security(section),
    )


def _client_part(section: Section, client_topic: str, destination: str) -> ClientChainConfig:
    """The client role's parse of the section, with ``client_topic`` as its subscription topic."""
    values = dict(section)
    values["topic"] = client_topic
    values["destination"] = destination
    values.pop("compression", None)  # a server-part key here (upstream's example sets xrit)
    client = chain_from_section(Section(section.file, section.name, values))
    if client is None:  # only when there is no topic and no heartbeat, which cannot happen here
        raise section.error("client_topic", "nothing to subscribe to")
    return client


def _check_staging(section: Section, destination: str) -> None:
    location = parse_uri(destination)
    if location.scheme == "s3":
        raise section.error("destination", "the mirror reads fetched files from this host's disk: "
                                           "use a path, file://, ftp://, scp:// or sftp:// to this host")
    if location.scheme != "file" and not is_local_host(location.host):
        LOG.warning("%s: [%s] destination: %s is not this host; the mirror reads fetched files from its own "
                    "disk", section.file, section.name, location.host)


def _non_negative(section: Section, key: str) -> float:
    value = section.get_float(key, SCHEMA.default(key))
    assert value is not None
    if value < 0:
        raise section.error(key, f"must not be negative, got {value}")
    return float(value)


# -- trollmoves check ------------------------------------------------------------------------

def recognises(content: Any) -> int:
    """2 for an INI file with providers and a server side, more than a client's or a server's."""
    keys = ini_keys(content)
    return 2 if keys is not None and "providers" in keys and keys & {"origin", "listen", "request_port",
                                                                         "client_topic"} else 0



def check_config(out: Findings, path: str, host: PluginHost) -> None:
    """Record in ``out`` every problem of the mirror INI at ``path``, one per location: the
    server part's and the client part's checks, then the mirror's own reading."""
    try:
        sections = read_ini(path)
    except ConfigError as err:
        out.add_error(err)
        return
    defaults = ini_defaults(path)
    SCHEMA.check_keys(out, sorted(defaults), "DEFAULT")
    ports: dict[int, str] = {}
    for name, section in sections.items():
        SCHEMA.check_keys(out, (k for k in section if k not in defaults), name)
        server_config.check_section(out, section, ports, mirror=True)
        client_config.check_section(out, section, host, mirror=True)
        try:
            parse_section(section)
        except ConfigError as err:
            out.add_error(err)
    if not sections:
        out.add(NO_SECTION)
    out.sections = len(sections)
