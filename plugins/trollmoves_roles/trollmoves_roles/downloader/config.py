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
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trollmoves_core.config import read_yaml
from trollmoves_core.exceptions import ConfigError
from trollmoves_roles.bus.posttroll import address_problem
from trollmoves_roles.runtime.yamlkeys import string_list

LOG = logging.getLogger(__name__)

KNOWN_KEYS = {"subscribe-topic", "publish-topic", "bucket", "download_destination", "s3_kwargs", "services",
              "subscriber_addresses", "publish_port", "nameservers", "subscribe_nameserver", "parallel_downloads",
              "connection_parameters"}
IGNORED_KEYS = {"logging": "not used here; configure logging with -l FILE or -c LOGCONFIG.yaml"}


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
        elif key not in KNOWN_KEYS:
            LOG.warning("%s: %s: unknown key, ignored", file, key)
    topics = _strings(raw.get("subscribe-topic"), error, "subscribe-topic")
    if not topics:
        raise error("subscribe-topic", "required: the topic(s) announcing new files")
    publish_topic = raw.get("publish-topic")
    if not isinstance(publish_topic, str) or not publish_topic.startswith("/"):
        raise error("publish-topic", "required: a topic starting with '/'")
    destination = raw.get("download_destination", ".")
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
    nameserver = raw.get("subscribe_nameserver", "localhost")
    subscribe_nameservers = () if nameserver in (False, None, "", "false") else \
        tuple(_strings(nameserver, error, "subscribe_nameserver"))
    return DownloaderConfig(
        file=file, subscribe_topics=tuple(topics), publish_topic=publish_topic,
        download_destination=Path(destination).expanduser(), bucket=bucket.strip("/") if bucket else None,
        s3_kwargs=_mapping(raw.get("s3_kwargs"), error, "s3_kwargs"),
        connection_parameters=_mapping(raw.get("connection_parameters"), error, "connection_parameters"),
        services=tuple(_strings(raw.get("services"), error, "services") or [""]),
        subscriber_addresses=tuple(addresses),
        subscribe_nameservers=subscribe_nameservers,
        publish_port=_integer(raw.get("publish_port", 0), error, "publish_port", minimum=0),
        nameservers=tuple(_strings(raw.get("nameservers"), error, "nameservers")) if raw.get("nameservers") else (),
        parallel_downloads=_integer(raw.get("parallel_downloads", 4), error, "parallel_downloads", minimum=1),
    )


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


def _integer(value: Any, error: Any, key: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise error(key, f"expected an integer, got {value!r}")
    try:
        number = int(value)
    except ValueError:
        raise error(key, f"expected an integer, got {value!r}") from None
    if number < minimum:
        raise error(key, f"must be at least {minimum}, got {number}")
    return number
