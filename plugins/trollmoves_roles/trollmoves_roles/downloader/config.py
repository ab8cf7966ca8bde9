"""The downloader's YAML configuration: upstream ``s3downloader``'s keys, plus a few of ours.

Upstream keys::

    subscribe-topic: /s3/new            # or a list
    publish-topic: /downloaded
    bucket: my-bucket                   # optional here: only objects of this bucket are fetched
    download_destination: /data/in      # default "."
    s3_kwargs: {anon: false, client_kwargs: {endpoint_url: https://s3.example.com}}
    services: ""                        # nameserver services to subscribe to ("" = all)
    subscriber_addresses: tcp://host:9001,tcp://host2:9001
    logging: {...}                      # not used: use -l or -c (a warning says so)

Ours: ``publish_port`` (0 = random), ``nameservers`` (register the publisher there; never
multicast), ``subscribe_nameserver`` (default ``localhost``; ``false`` for none),
``parallel_downloads`` (default 4) and ``connection_parameters`` (for movers other than S3).
The top-level ``endpoint_url``, ``access_key`` and ``secret_key`` of older upstream versions
are read into the S3 options unless ``s3_kwargs`` sets them. :data:`SCHEMA` lists every key.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trollmoves_core.bwlimit import Schedule
from trollmoves_core.config import read_yaml, to_bool
from trollmoves_core.exceptions import ConfigError
from trollmoves_core.schema import (
    Findings,
    Key,
    Schema,
    directory_problem,
    mover_problem,
    nearest_existing,
    read_yaml_mapping,
    yaml_mapping,
)
from trollmoves_roles.bus.posttroll import address_problem
from trollmoves_roles.bus.security import (
    PUBLISHER_KEY_FILE,
    SECRET_KEY_FILE,
    CurveClient,
    SecurityError,
    load_curve_clients,
)
from trollmoves_roles.runtime.yamlkeys import bandwidth_limit, integer, string_list

if TYPE_CHECKING:
    from trollmoves_core.plugins import PluginHost

LOG = logging.getLogger(__name__)

SCHEMA = Schema("downloader", [
    Key("subscribe-topic", list, doc="topic(s) announcing new files (required)"),
    Key("publish-topic", doc="topic the downloaded copies are announced on (required)"),
    Key("bucket", doc="only objects of this bucket are fetched"),
    Key("download_destination", default=".", doc="directory the files are downloaded to"),
    Key("s3_kwargs", dict, doc="options of the S3 file system"),
    Key("services", list, doc='nameserver services to subscribe to ("" = all)'),
    Key("subscriber_addresses", doc="publishers to subscribe to (comma-separated)"),
    Key("logging", dict, used=False, doc="upstream's log settings; use -l FILE or -c LOGCONFIG.yaml"),
    Key("endpoint_url", doc="older upstream versions: the S3 endpoint (s3_kwargs client_kwargs.endpoint_url)"),
    Key("access_key", doc="older upstream versions: the S3 access key (s3_kwargs key)"),
    Key("secret_key", doc="older upstream versions: the S3 secret key (s3_kwargs secret)"),
    Key("publish_port", int, 0, origin="ours", doc="port to publish on (0: random)"),
    Key("nameservers", list, origin="ours", doc="register the publisher with these nameservers"),
    Key("subscribe_nameserver", default="localhost", origin="ours", doc="nameserver to ask for publishers"),
    Key("parallel_downloads", int, 4, origin="ours", doc="downloads running at once"),
    Key("connection_parameters", dict, origin="ours", doc="options of the movers other than S3"),
    Key("bwlimit", origin="ours", doc="bandwidth of all downloads together: 20M, 512k, off, or a timetable"),
    Key("bwlimit_per_host", origin="ours", doc="bandwidth of the downloads from each source host"),
    Key(SECRET_KEY_FILE, origin="ours", doc="this downloader's CURVE key pair"),
    Key(PUBLISHER_KEY_FILE, origin="ours", doc="CURVE public key of the (secure_zmq) publishers"),
    Key("unpack_members", bool, True, origin="ours",
        doc="announced zip:// or tar:// archive members: unpack them (true) or deliver the archive (false)"),
])
"""Every key of a downloader config: upstream's and ours."""
IGNORED_KEYS = {"logging": "not used here; configure logging with -l FILE or -c LOGCONFIG.yaml"}
LEGACY_S3_KEYS = {"access_key": ("key",), "secret_key": ("secret",), "endpoint_url": ("client_kwargs", "endpoint_url")}
"""Top-level keys of older upstream versions → where they go in the S3 options."""


@dataclass(frozen=True)
class DownloaderConfig:
    file: str
    subscribe_topics: tuple[str, ...]
    publish_topic: str
    download_destination: Path
    bucket: str | None = None
    s3_kwargs: dict[str, Any] = field(default_factory=dict)
    connection_parameters: dict[str, Any] = field(default_factory=dict)
    services: tuple[str, ...] = ("",)
    subscriber_addresses: tuple[str, ...] = ()
    subscribe_nameservers: tuple[str, ...] = ("localhost",)
    publish_port: int = 0
    nameservers: tuple[str, ...] = ()
    parallel_downloads: int = 4
    unpack_members: bool = True
    subscribe_curve: CurveClient | None = None
    """CURVE keys for the publishers (``client_secret_key_file`` + ``publisher_public_key_file``)."""
    bwlimit: Schedule | None = None
    """The bandwidth of all downloads together; None: unlimited."""
    bwlimit_per_host: Schedule | None = None
    """The bandwidth of the downloads from each source host; None: unlimited."""

    def params_for(self, scheme: str) -> dict[str, Any]:
        """Connection parameters for the mover of ``scheme`` (``s3_kwargs`` win for S3)."""
        if scheme == "s3":
            return {**self.connection_parameters, **self.s3_kwargs}
        return dict(self.connection_parameters)


def load_config(path: str | os.PathLike[str]) -> DownloaderConfig:
    """Read and check a downloader YAML file; raise ConfigError naming the file and key at fault."""
    file = os.fspath(path)
    raw = read_yaml(file)
    if not isinstance(raw, dict):
        raise ConfigError("expected a mapping of settings", file=file)

    def error(key: str, message: str) -> ConfigError:
        return ConfigError(message, file=file, key=key)

    for key in raw:
        if key in IGNORED_KEYS:
            LOG.warning("%s: %s: %s", file, key, IGNORED_KEYS[key])
    for key, message in SCHEMA.warnings(raw):
        LOG.warning("%s: %s: %s", file, key, message)
    topics = _strings(raw.get("subscribe-topic"), error, "subscribe-topic")
    if not topics:
        raise error("subscribe-topic", "required: the topic(s) announcing new files")
    publish_topic = raw.get("publish-topic")
    if not isinstance(publish_topic, str) or not publish_topic.startswith("/"):
        raise error("publish-topic", "required: a topic starting with '/'")
    destination = raw.get("download_destination", SCHEMA.default("download_destination"))
    if not isinstance(destination, str) or not destination:
        raise error("download_destination", "expected a directory path")
    bucket = raw.get("bucket")
    if bucket is not None and (not isinstance(bucket, str) or "/" in bucket.strip("/")):
        raise error("bucket", f"expected a bucket name, got {bucket!r}")
    addresses = _strings(raw.get("subscriber_addresses"), error, "subscriber_addresses")
    for address in addresses:
        problem = address_problem(address)
        if problem:
            raise error("subscriber_addresses", problem)
    nameserver = raw.get("subscribe_nameserver", SCHEMA.default("subscribe_nameserver"))
    subscribe_nameservers = () if nameserver in (False, None, "", "false") else \
        tuple(_strings(nameserver, error, "subscribe_nameserver"))
    return DownloaderConfig(
        file=file, subscribe_topics=tuple(topics), publish_topic=publish_topic,
        download_destination=Path(destination).expanduser(), bucket=bucket.strip("/") if bucket else None,
        s3_kwargs=_s3_options(raw, error),
        connection_parameters=_mapping(raw.get("connection_parameters"), error, "connection_parameters"),
        services=tuple(_strings(raw.get("services"), error, "services") or [""]),
        subscriber_addresses=tuple(addresses),
        subscribe_nameservers=subscribe_nameservers,
        publish_port=_integer(raw.get("publish_port", SCHEMA.default("publish_port")), error, "publish_port",
                              minimum=0),
        nameservers=tuple(_strings(raw.get("nameservers"), error, "nameservers")) if raw.get("nameservers") else (),
        parallel_downloads=_integer(raw.get("parallel_downloads", SCHEMA.default("parallel_downloads")), error,
                                    "parallel_downloads", minimum=1),
        subscribe_curve=_curve(raw, error),
        unpack_members=_boolean(raw.get("unpack_members", SCHEMA.default("unpack_members")), error,
                                "unpack_members"),
        bwlimit=_limit(raw, error, "bwlimit"), bwlimit_per_host=_limit(raw, error, "bwlimit_per_host"),
    )


def _limit(raw: dict[str, Any], error: Any, key: str) -> Schedule | None:
    try:
        return bandwidth_limit(raw.get(key))
    except ValueError as err:
        raise error(key, str(err)) from None


def _s3_options(raw: dict[str, Any], error: Any) -> dict[str, Any]:
    """``s3_kwargs``, with the legacy top-level keys filled in where it does not set them."""
    options = _mapping(raw.get("s3_kwargs"), error, "s3_kwargs")
    for key, (*parents, name) in LEGACY_S3_KEYS.items():
        if raw.get(key) is None:
            continue
        if not isinstance(raw[key], str):
            raise error(key, f"expected a string, got {type(raw[key]).__name__}")
        place = options
        for parent in parents:
            child = place.get(parent)
            place[parent] = child = dict(child) if isinstance(child, dict) else {}
            place = child
        place.setdefault(name, raw[key])
    return options


def _strings(value: Any, error: Any, key: str) -> list[str]:
    try:
        return string_list(value)
    except TypeError as err:
        raise error(key, str(err)) from None


def _mapping(value: Any, error: Any, key: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise error(key, "expected a mapping")
    return dict(value)


def _curve(raw: dict[str, Any], error: Any) -> CurveClient | None:
    try:
        clients = load_curve_clients(raw.get(SECRET_KEY_FILE), {PUBLISHER_KEY_FILE: raw.get(PUBLISHER_KEY_FILE)})
    except SecurityError as err:
        raise error(err.key, str(err)) from None
    return clients.get(PUBLISHER_KEY_FILE)


def _boolean(value: Any, error: Any, key: str) -> bool:
    try:
        return to_bool(value, key=key)
    except ConfigError as err:
        raise error(key, err.message) from None


def _integer(value: Any, error: Any, key: str, minimum: int) -> int:
    try:
        return integer(value, minimum=minimum)
    except ValueError as err:
        raise error(key, str(err)) from None


# -- trollmoves check ------------------------------------------------------------------------

def recognises(content: Any) -> int:
    """2 for a YAML mapping with bucket, subscribe-topic or download_destination (a dispatcher
    target may be named like one of them: the downloader's keys win)."""
    data = yaml_mapping(content)
    return 2 if data is not None and data.keys() & {"bucket", "subscribe-topic", "download_destination"} else 0



def check_config(out: Findings, path: str, host: PluginHost) -> None:
    """Record in ``out`` every problem of the downloader YAML at ``path``, one per location."""
    out.sections = 1
    data = read_yaml_mapping(out, path)
    if data is None:
        out.sections = 0
        return
    SCHEMA.check_keys(out, sorted(map(str, data)), None)
    for key in ("subscribe-topic", "publish-topic"):
        if not data.get(key):
            out.add("required key is missing", None, key)
    if data.get("bucket"):
        problem = mover_problem(host, "s3://bucket/")
        if problem:
            out.add(problem, None, "bucket")
    else:
        out.add("not set: upstream's s3downloader requires it (trollmoves fetches each message's uri)", None,
                "bucket", warning=True)
    if "logging" in data:
        out.add("not used by trollmoves: configure logging with -l FILE or -c LOGCONFIG.yaml", None, "logging",
                warning=True)
    destination = Path(str(data.get("download_destination") or "."))
    # The downloader creates a missing destination at start: check the directory it creates it in.
    existing = destination if destination.exists() else nearest_existing(destination)
    problem = directory_problem(existing or destination, write=True)
    if problem:
        out.add(problem, None, "download_destination")
    elif existing != destination:
        out.add(f"directory {destination} does not exist yet; the downloader creates it", None,
                "download_destination", warning=True)
    if "s3_kwargs" in data and not isinstance(data["s3_kwargs"], Mapping):
        out.add("expected a mapping", None, "s3_kwargs")
    try:
        load_config(path)
    except ConfigError as err:
        out.add_error(err)
