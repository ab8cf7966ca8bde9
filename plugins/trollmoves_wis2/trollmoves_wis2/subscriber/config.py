"""The WIS2 subscriber's YAML configuration::

    broker: mqtts://everyone@globalbroker.example.int:8883?password_file=/etc/trollmoves/wis2.pw&client_id=smhi-in
    subscribe:                        # WIS2 topic filters (+ and # wildcards)
      - cache/a/wis2/+/data/core/weather/space-based-observations/noaa-20/viirs
    bbox: [5, 54, 32, 72]             # optional: west, south, east, north (degrees)
    keep_unlocated: true              # with bbox: notifications with no geometry pass (default)
    download_destination: /data/wis2  # the root: nothing is written outside it
    layout: "{data_id_dir}/{name}"    # each file's path below it (default: the data_id's dataset)
    publish_topic: /wis2/viirs        # posttroll topic of the ``file`` messages
    publish_port: 0                   # 0: random
    nameservers: []                   # register the publisher there (never multicast)
    parallel_downloads: 4
    remember: 100000                  # delivered notifications remembered to skip repeats
    connection_parameters: {ca_file: /etc/ssl/wis2-ca.pem}   # options of the movers

``broker`` is an MQTT address as the MQTT bus reads it (:mod:`trollmoves_mqtt.options`: the
password in a ``password_file``, TLS with ``mqtts://`` and ``ca_file``, ``client_id``,
``session_expiry``); it has no path (no topic prefix): WIS2 topics are absolute. ``layout`` is a
trollsift template of the file message's fields, ``name`` and ``data_id_dir``
(:mod:`trollmoves_wis2.subscriber.layout`): ``{centre_id}/{start_time:%Y/%m/%d}/{name}``, or
``{name}`` for every file straight into ``download_destination``. :data:`SCHEMA` lists every key.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trollmoves_mqtt.options import BusAddress
from trollmoves_roles.runtime.yamlkeys import integer, string_list

from trollmoves_core.config import read_yaml, to_bool
from trollmoves_core.exceptions import ConfigError
from trollmoves_core.schema import (
    Findings,
    Key,
    Schema,
    directory_problem,
    nearest_existing,
    read_yaml_mapping,
    yaml_mapping,
)
from trollmoves_wis2.options import parse_broker
from trollmoves_wis2.subscriber.area import BoundingBox
from trollmoves_wis2.subscriber.layout import DEFAULT_LAYOUT, layout_problem
from trollmoves_wis2.topics import validate_filter

if TYPE_CHECKING:
    from trollmoves_core.plugins import PluginHost

LOG = logging.getLogger(__name__)

SCHEMA = Schema("wis2 subscriber", [
    Key("broker", origin="ours", doc="the WIS2 broker: mqtt[s]://[USER@]HOST[:PORT][?password_file=...&ca_file=...]"
                                     " (required)"),
    Key("subscribe", list, origin="ours", doc="WIS2 topic filters to subscribe to, + and # allowed (required)"),
    Key("bbox", list, origin="ours", doc="only notifications whose geometry touches [west, south, east, north]"),
    Key("keep_unlocated", bool, True, origin="ours", doc="with bbox: keep notifications without a geometry"),
    Key("download_destination", origin="ours", doc="directory the files are written below (required)"),
    Key("layout", str, DEFAULT_LAYOUT, origin="ours",
        doc="trollsift template of each file's path below download_destination"),
    Key("publish_topic", origin="ours", doc="posttroll topic the files are announced on (required)"),
    Key("publish_port", int, 0, origin="ours", doc="port to publish on (0: random)"),
    Key("nameservers", list, origin="ours", doc="register the publisher with these nameservers"),
    Key("parallel_downloads", int, 4, origin="ours", doc="downloads running at once"),
    Key("remember", int, 100000, origin="ours", doc="delivered notifications remembered to skip repeats"),
    Key("connection_parameters", dict, origin="ours", doc="options of the movers that download"),
])
"""Every key of a WIS2 subscriber config."""


@dataclass(frozen=True)
class SubscriberConfig:
    file: str
    broker: BusAddress
    subscribe: tuple[str, ...]
    download_destination: Path
    publish_topic: str
    layout: str = DEFAULT_LAYOUT
    bbox: BoundingBox | None = None
    keep_unlocated: bool = True
    publish_port: int = 0
    nameservers: tuple[str, ...] = ()
    parallel_downloads: int = 4
    remember: int = 100000
    connection_parameters: dict[str, Any] = field(default_factory=dict)


def load_config(path: str | os.PathLike[str]) -> SubscriberConfig:
    """Read and check a WIS2 subscriber YAML file; ConfigError naming the file and key at fault."""
    file = os.fspath(path)
    raw = read_yaml(file)
    if not isinstance(raw, dict):
        raise ConfigError("expected a mapping of settings", file=file)

    def error(key: str, message: str) -> ConfigError:
        return ConfigError(message, file=file, key=key)

    for key, message in SCHEMA.warnings(raw):
        LOG.warning("%s: %s: %s", file, key, message)
    broker = raw.get("broker")
    if not isinstance(broker, str) or not broker:
        raise error("broker", "required: the address of the WIS2 broker (mqtts://HOST:8883?...)")
    try:
        address = parse_broker(broker, topics_key="subscribe")
    except ConfigError as err:
        raise error("broker", err.message) from None
    filters = _strings(raw.get("subscribe"), error, "subscribe")
    if not filters:
        raise error("subscribe", "required: the WIS2 topic filter(s) to subscribe to")
    for topic_filter in filters:
        problems = validate_filter(topic_filter)
        if problems:
            raise error("subscribe", problems[0])
    destination = raw.get("download_destination")
    if not isinstance(destination, str) or not destination:
        raise error("download_destination", "required: the directory the files are written to")
    if "{" in destination:
        raise error("download_destination", "the directory the files are written below, not a template: "
                                             "put the fields in layout")
    layout = raw.get("layout", DEFAULT_LAYOUT)
    problem = "expected a template string" if not isinstance(layout, str) or not layout else layout_problem(layout)
    if problem:
        raise error("layout", problem)
    publish_topic = raw.get("publish_topic")
    if not isinstance(publish_topic, str) or not publish_topic.startswith("/"):
        raise error("publish_topic", "required: a posttroll topic starting with '/'")
    bbox = None
    if raw.get("bbox") is not None:
        try:
            bbox = BoundingBox.parse(raw["bbox"])
        except ValueError as err:
            raise error("bbox", str(err)) from None
    parameters = raw.get("connection_parameters") or {}
    if not isinstance(parameters, dict):
        raise error("connection_parameters", "expected a mapping")
    try:
        keep_unlocated = to_bool(raw.get("keep_unlocated", SCHEMA.default("keep_unlocated")), key="keep_unlocated")
    except ConfigError as err:
        raise error("keep_unlocated", err.message) from None
    return SubscriberConfig(
        file=file, broker=address, subscribe=tuple(filters), download_destination=Path(destination).expanduser(),
        publish_topic=publish_topic, layout=layout, bbox=bbox, keep_unlocated=keep_unlocated,
        publish_port=_integer(raw, "publish_port", 0, error),
        nameservers=tuple(_strings(raw.get("nameservers"), error, "nameservers")),
        parallel_downloads=_integer(raw, "parallel_downloads", 1, error),
        remember=_integer(raw, "remember", 1, error),
        connection_parameters=dict(parameters))


def _strings(value: Any, error: Callable[[str, str], ConfigError], key: str) -> list[str]:
    try:
        return string_list(value)
    except TypeError as err:
        raise error(key, str(err)) from None


def _integer(raw: Mapping[str, Any], key: str, minimum: int, error: Callable[[str, str], ConfigError]) -> int:
    try:
        return integer(raw.get(key, SCHEMA.default(key)), minimum=minimum)
    except ValueError as err:
        raise error(key, str(err)) from None


# -- trollmoves check ------------------------------------------------------------------------

def recognises(content: Any) -> int:
    """3 for a YAML mapping with ``broker`` and ``subscribe``."""
    data = yaml_mapping(content)
    return 3 if data is not None and {"broker", "subscribe"} <= data.keys() else 0


def check_config(out: Findings, path: str, host: PluginHost) -> None:
    """Record in ``out`` every problem of the WIS2 subscriber YAML at ``path``."""
    out.sections = 1
    data = read_yaml_mapping(out, path)
    if data is None:
        out.sections = 0
        return
    SCHEMA.check_keys(out, sorted(map(str, data)), None)
    destination = Path(str(data.get("download_destination") or "."))
    existing = destination if destination.exists() else nearest_existing(destination)
    problem = directory_problem(existing or destination, write=True)
    if problem:
        out.add(problem, None, "download_destination")
    elif existing != destination:
        out.add(f"directory {destination} does not exist yet; the subscriber creates it", None,
                "download_destination", warning=True)
    try:
        load_config(path)
    except ConfigError as err:
        out.add_error(err)
