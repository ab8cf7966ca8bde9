"""The dispatcher's YAML configuration, as upstream trollmoves 0.19 writes it.

Top-level keys are targets, except the reserved ``posttroll_subscriber`` (where messages come
from) and our ``target_defaults`` (keys every target inherits). A target::

    ftp_target:
      host: ftp://user:secret@ftp.example.com      # "" or absent: a local copy
      directory: /in/{sensor}                      # trollsift pattern
      filepattern: '{platform_name}_{start_time:%Y%m%d%H%M}.{format}'   # default: source name
      connection_parameters: {connection_uptime: 20}
      aliases: {platform_name: {NOAA-19: noaa19}}
      publish_topic: /dispatched/{sensor}
      dispatch_configs:
        - topics: [/level2/avhrr]
          conditions: [{sensor: avhrr, coverage: '>50', except: {platform_name: NOAA-15}}]
          directory: /in/avhrr                     # overrides host, directory, filepattern

Unknown keys are reported with a warning naming file, target and key; invalid values raise
:class:`~trollmoves_core.exceptions.ConfigError` naming the same.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from trollsift import Parser

from trollmoves_core.bwlimit import Schedule
from trollmoves_core.config import read_yaml
from trollmoves_core.exceptions import ConfigError, UnknownPluginError
from trollmoves_core.plugins import PluginHost
from trollmoves_core.schema import (
    Findings,
    Key,
    Schema,
    mover_problem,
    pattern_problem,
    read_yaml_mapping,
    yaml_mapping,
)
from trollmoves_core.uri import parse_uri, redact
from trollmoves_roles.bus.posttroll import address_problem
from trollmoves_roles.bus.security import (
    PUBLISHER_KEY_FILE,
    SECRET_KEY_FILE,
    CurveClient,
    SecurityError,
    load_curve_clients,
)
from trollmoves_roles.dispatcher.conditions import Condition, parse_conditions
from trollmoves_roles.runtime.observers import (
    check_observers,
    missing_observer,
    observer_keys,
    refuse_bad_observer_keys,
    with_observer_keys,
)
from trollmoves_roles.runtime.yamlkeys import bandwidth_limit, string_list

LOG = logging.getLogger(__name__)

SUBSCRIBER_KEY = "posttroll_subscriber"
DEFAULTS_KEY = "target_defaults"
ITEM = Schema("dispatch item", [
    Key("topics", list, doc="subjects (prefixes) this item applies to (required)"),
    Key("conditions", list, restricts=True, doc="condition sets on the message metadata; any set must match"),
    Key("host", doc="overrides the target's host"),
    Key("directory", doc="overrides the target's directory"),
    Key("filepattern", doc="overrides the target's filepattern"),
])
"""The keys of one ``dispatch_configs`` entry."""

TARGET = Schema("dispatcher target", [
    Key("host", doc='URL prefix of the destination, credentials allowed; "" or absent: a local copy'),
    Key("directory", doc="trollsift pattern of the destination directory"),
    Key("filepattern", doc="trollsift pattern of the file name (default: the source's name)"),
    Key("connection_parameters", dict, doc="the mover's options"),
    Key("aliases", doc="{key: {value: alias}} mappings, or a list of them"),
    Key("publish_topic", doc="trollsift pattern of the topic dispatched files are announced on"),
    Key("dispatch_configs", list, doc="the items saying which messages go here (required)"),
    Key("publish_uri", default="path", origin="ours", doc="announce the path (as upstream) or the full url"),
    Key("bwlimit", origin="ours", doc="bandwidth of this target's transfers: 20M, 512k, off, or a timetable"),
    Key("bwlimit_per_host", origin="ours", doc="bandwidth to each destination host, shared by the targets "
                                               "giving the same limit (put it in target_defaults)"),
    # upstream's example documents these per target; upstream reads them under posttroll_subscriber only
    Key("nameserver", used=False, doc="ignored here: set it in posttroll_subscriber"),
    Key("subscribe_addresses", used=False, doc="ignored here: set it in posttroll_subscriber"),
    Key("subscribe_services", used=False, doc="ignored here: set it in posttroll_subscriber"),
])
"""The keys of a target."""

DEFAULTS = TARGET.renamed("target_defaults", drop=["dispatch_configs"])
"""The keys of ``target_defaults`` (ours): what every target inherits."""

SUBSCRIBER = Schema("posttroll_subscriber", [
    Key("subscribe_addresses", list, doc="publishers to subscribe to (tcp://host:port)"),
    Key("nameserver", default="localhost", doc="nameserver(s) to ask for publishers; false: none"),
    Key("subscribe_services", list, doc='nameserver services to subscribe to ("" = all)'),
    Key(SECRET_KEY_FILE, origin="ours", doc="this dispatcher's CURVE key pair"),
    Key(PUBLISHER_KEY_FILE, origin="ours", doc="CURVE public key of the (secure_zmq) publishers"),
])
"""The keys of ``posttroll_subscriber``."""

PLACES = {"a dispatch_configs item": ITEM}
"""Where a key of a target that is not a target key may belong."""
ITEM_PLACES = {"the target": TARGET}
"""Where a key of an item that is not an item key may belong."""
PUBLISH_URI_STYLES = ("path", "url")


@dataclass(frozen=True)
class Alias:
    """Map the value of ``key`` through ``mapping`` into ``name`` (``key`` itself by default)."""

    key: str
    mapping: Mapping[Any, Any]
    name: str

    def apply(self, fields: dict[str, Any]) -> None:
        if self.key not in fields:
            return
        value = fields[self.key]
        try:
            fields[self.name] = self.mapping[value]
        except (KeyError, TypeError):
            fields[self.name] = self.mapping.get(str(value), value) if self.mapping else value


@dataclass(frozen=True)
class DispatchItem:
    """One ``dispatch_configs`` entry: when it applies and where it sends."""

    topics: tuple[str, ...]
    conditions: Condition | None
    host: str
    directory: str
    filepattern: str | None

    def matches(self, subject: str, metadata: Mapping[str, Any]) -> bool:
        if not any(subject.startswith(topic) for topic in self.topics):
            return False
        return self.conditions is None or self.conditions.matches(metadata)


@dataclass(frozen=True)
class Target:
    """One destination host with its dispatch rules."""

    name: str
    host: str
    connection_parameters: Mapping[str, Any]
    aliases: tuple[Alias, ...]
    publish_topic: str | None
    publish_uri: str
    items: tuple[DispatchItem, ...]
    observer_keys: tuple[tuple[str, str], ...] = ()
    """The keys of delivery observers (``wis2_*``...) the target sets, with ``destination`` (a local
    target's directory) for the observers to read."""
    bwlimit: Schedule | None = None
    """The bandwidth of this target's transfers together; None: unlimited."""
    bwlimit_per_host: Schedule | None = None
    """The bandwidth to each destination host, shared by the targets with the same limit."""


@dataclass(frozen=True)
class SubscriberSettings:
    """Where messages come from: explicit publisher addresses and/or nameservers (never multicast)."""

    addresses: tuple[str, ...] = ()
    nameservers: tuple[str, ...] = ("localhost",)
    services: tuple[str, ...] = ("",)
    curve: CurveClient | None = None
    """CURVE keys for the publishers (``client_secret_key_file`` + ``publisher_public_key_file``)."""


@dataclass(frozen=True)
class DispatcherConfig:
    file: str
    targets: tuple[Target, ...]
    subscriber: SubscriberSettings = field(default_factory=SubscriberSettings)

    @property
    def topics(self) -> list[str]:
        """Every topic any dispatch item listens to."""
        return list(dict.fromkeys(t for target in self.targets for item in target.items for t in item.topics))


def load_config(path: str | os.PathLike[str], host: PluginHost) -> DispatcherConfig:
    """Read and check a dispatcher YAML file against ``host``'s movers; raise ConfigError naming what is wrong."""
    file = os.fspath(path)
    raw = read_yaml(file)
    if not isinstance(raw, dict):
        raise ConfigError("expected a mapping of targets at the top level", file=file)
    defaults = raw.get(DEFAULTS_KEY) or {}
    if not isinstance(defaults, dict):
        raise ConfigError("expected a mapping", file=file, key=DEFAULTS_KEY)
    _refuse_or_warn(with_observer_keys(DEFAULTS, host), file, DEFAULTS_KEY, defaults, elsewhere=PLACES)
    subscriber = _subscriber(file, raw.get(SUBSCRIBER_KEY))
    targets = []
    for name, body in raw.items():
        if name in (SUBSCRIBER_KEY, DEFAULTS_KEY):
            continue
        if not isinstance(body, dict):
            raise ConfigError("expected a mapping of target settings", file=file, section=str(name))
        targets.append(_TargetReader(file, str(name), host).read(_inherit(defaults, body)))
    if not targets:
        raise ConfigError("no target defined", file=file)
    return DispatcherConfig(file=file, targets=tuple(targets), subscriber=subscriber)


def observer_settings(body: Mapping[str, Any], host: PluginHost) -> tuple[tuple[str, str], ...]:
    """The delivery-observer keys a target sets, as strings, with its local directory as ``destination``."""
    names = {key.name for key in observer_keys(host)}
    found = {str(k): str(v) for k, v in body.items() if k in names and v is not None}
    if found and not body.get("host") and isinstance(body.get("directory"), str):
        found["destination"] = body["directory"]
    return tuple(sorted(found.items()))


def _inherit(defaults: Mapping[str, Any], body: Mapping[str, Any]) -> dict[str, Any]:
    """A target's keys with ``target_defaults`` under them (connection parameters merged)."""
    merged = {**defaults, **body}
    default_params, params = defaults.get("connection_parameters"), body.get("connection_parameters")
    if isinstance(default_params, dict) and isinstance(params, dict):
        merged["connection_parameters"] = {**default_params, **params}
    return merged


class _TargetReader:
    """Reads one target, raising ConfigErrors located at its keys."""

    def __init__(self, file: str, name: str, host: PluginHost) -> None:
        self.file, self.name, self.host = file, name, host

    def error(self, key: str | None, message: str) -> ConfigError:
        return ConfigError(message, file=self.file, section=self.name, key=key)

    def read(self, body: dict[str, Any]) -> Target:
        if missing := missing_observer(self.host, body):  # before its keys are warned of as unknown
            raise self.error(missing[0], missing[1])
        _refuse_or_warn(with_observer_keys(TARGET, self.host), self.file, self.name, body, elsewhere=PLACES)
        params = body.get("connection_parameters") or {}
        if not isinstance(params, dict):
            raise self.error("connection_parameters", "expected a mapping")
        publish_topic = body.get("publish_topic")
        if publish_topic is not None:
            self.check_pattern("publish_topic", publish_topic)
        publish_uri = str(body.get("publish_uri", "path"))
        if publish_uri not in PUBLISH_URI_STYLES:
            raise self.error("publish_uri", f"expected one of {', '.join(PUBLISH_URI_STYLES)}, got {publish_uri!r}")
        raw_items = body.get("dispatch_configs")
        if not isinstance(raw_items, list) or not raw_items:
            raise self.error("dispatch_configs", "required: a list of items with 'topics'")
        items = []
        for index, raw_item in enumerate(raw_items):
            where = f"dispatch_configs[{index}]"
            if not isinstance(raw_item, dict):
                raise self.error(where, "expected a mapping with 'topics'")
            _refuse_or_warn(ITEM, self.file, self.name, raw_item, prefix=where + ".", elsewhere=ITEM_PLACES)
            items.append(self.item(where, raw_item, body, params))
        observers = observer_settings(body, self.host)
        if observers:
            refuse_bad_observer_keys(self.host, dict(observers), file=self.file, section=self.name)
        return Target(name=self.name, host=str(body.get("host") or ""), connection_parameters=dict(params),
                      aliases=self.aliases(body.get("aliases")), publish_topic=publish_topic,
                      publish_uri=publish_uri, items=tuple(items), observer_keys=observers,
                      bwlimit=self.limit(body, "bwlimit"), bwlimit_per_host=self.limit(body, "bwlimit_per_host"))

    def limit(self, body: dict[str, Any], key: str) -> Schedule | None:
        """The bandwidth limit ``key`` gives, None for none."""
        try:
            return bandwidth_limit(body.get(key))
        except ValueError as err:
            raise self.error(key, str(err)) from None

    def item(self, where: str, raw: dict[str, Any], body: dict[str, Any], params: dict[str, Any]) -> DispatchItem:
        topics = raw.get("topics")
        if isinstance(topics, str):
            topics = [topics]
        if not isinstance(topics, list) or not topics or not all(isinstance(t, str) and t for t in topics):
            raise self.error(f"{where}.topics", "required: a list of topics")
        host_uri = str(raw.get("host", body.get("host")) or "")
        directory = raw.get("directory", body.get("directory"))
        if directory is None:
            if not host_uri:
                raise self.error(f"{where}.directory", "required for a local target (no host)")
            directory = ""
        directory = str(directory)
        self.check_pattern(f"{where}.directory", directory)
        filepattern = raw.get("filepattern", body.get("filepattern"))
        if filepattern is not None:
            filepattern = str(filepattern)
            self.check_pattern(f"{where}.filepattern", filepattern)
        self.check_host(f"{where}.host" if "host" in raw else "host", host_uri, params)
        try:
            conditions = parse_conditions(raw.get("conditions"))
        except ValueError as err:
            raise self.error(f"{where}.conditions", str(err)) from None
        return DispatchItem(topics=tuple(topics), conditions=conditions, host=host_uri, directory=directory,
                            filepattern=filepattern)

    def check_host(self, key: str, host_uri: str, params: dict[str, Any]) -> None:
        if not host_uri:
            return
        if "://" not in host_uri:
            raise self.error(key, f"expected a URL such as ftp://host or s3://bucket, got {redact(host_uri)!r}")
        try:
            location = parse_uri(host_uri)
        except ValueError as err:
            raise self.error(key, str(err)) from None
        try:
            mover_class = self.host.mover_class(host_uri)
            mover_class(params).close()
        except UnknownPluginError as err:
            raise self.error(key, str(err)) from None
        except (TypeError, ValueError) as err:
            raise self.error("connection_parameters", f"rejected by the {location.scheme} mover: {err}") from None
        if location.path.strip("/"):
            LOG.warning("%s: [%s] %s: the path %r of %s is ignored, as upstream does; put it in 'directory'",
                        self.file, self.name, key, location.path, redact(host_uri))

    def check_pattern(self, key: str, pattern: Any) -> None:
        if not isinstance(pattern, str):
            raise self.error(key, f"expected a trollsift pattern string, got {pattern!r}")
        try:
            list(Parser(pattern).keys())
        except ValueError as err:
            raise self.error(key, f"invalid pattern {pattern!r}: {err}") from None

    def aliases(self, raw: Any) -> tuple[Alias, ...]:
        """Accept ``{key: {value: alias}}``, ``{key: [{...}, ...]}`` and lists of such mappings;
        a mapping's ``_alias_name`` stores the alias under that new key."""
        if raw is None:
            return ()
        groups = raw if isinstance(raw, list) else [raw]
        aliases = []
        for group in groups:
            if not isinstance(group, dict):
                raise self.error("aliases", "expected {key: {value: alias}} mappings")
            for key, mappings in group.items():
                for mapping in mappings if isinstance(mappings, list) else [mappings]:
                    if not isinstance(mapping, dict):
                        raise self.error("aliases", f"{key}: expected a mapping of value to alias")
                    values = {k: v for k, v in mapping.items() if k != "_alias_name"}
                    name = str(mapping.get("_alias_name", key))
                    aliases.append(Alias(key=str(key), mapping=values, name=name))
        return tuple(aliases)


def _subscriber(file: str, raw: Any) -> SubscriberSettings:
    if raw is None:
        return SubscriberSettings()
    if not isinstance(raw, dict):
        raise ConfigError("expected a mapping", file=file, section=SUBSCRIBER_KEY)
    _refuse_or_warn(SUBSCRIBER, file, SUBSCRIBER_KEY, raw)
    addresses = _string_list(raw.get("subscribe_addresses"), file, "subscribe_addresses")
    for address in addresses:
        problem = address_problem(address)
        if problem:
            raise ConfigError(problem, file=file, section=SUBSCRIBER_KEY, key="subscribe_addresses")
    nameserver = raw.get("nameserver", "localhost")
    if nameserver is False or nameserver is None or nameserver == "":
        nameservers: list[str] = []
    else:
        nameservers = _string_list(nameserver, file, "nameserver")
    services = _string_list(raw.get("subscribe_services"), file, "subscribe_services") or [""]
    if not addresses and not nameservers:
        raise ConfigError("nameserver is false and no subscribe_addresses are given: nothing to listen to "
                          "(multicast discovery is not supported)", file=file, section=SUBSCRIBER_KEY)
    try:
        curve = load_curve_clients(raw.get(SECRET_KEY_FILE), {PUBLISHER_KEY_FILE: raw.get(PUBLISHER_KEY_FILE)})
    except SecurityError as err:
        raise ConfigError(str(err), file=file, section=SUBSCRIBER_KEY, key=err.key) from None
    return SubscriberSettings(addresses=tuple(addresses), nameservers=tuple(nameservers),
                              services=tuple(services), curve=curve.get(PUBLISHER_KEY_FILE))


def _string_list(value: Any, file: str, key: str) -> list[str]:
    try:
        return string_list(value)
    except TypeError:
        raise ConfigError("expected a string or a list of strings", file=file, section=SUBSCRIBER_KEY,
                          key=key) from None


def _refuse_or_warn(schema: Schema, file: str, section: str, body: Mapping[str, Any], *, prefix: str = "",
                    elsewhere: Mapping[str, Schema] = {}) -> None:
    """Raise for a misplaced key that would widen what is done; log the other keys not of ``schema``."""
    schema.refuse_misplaced(file, section, body, prefix=prefix, elsewhere=elsewhere)
    for key, message in schema.warnings(body, elsewhere=elsewhere):
        LOG.warning("%s: [%s] %s%s: %s", file, section, prefix, key, message)


# -- trollmoves check ------------------------------------------------------------------------

def recognises(content: Any) -> int:
    """1 for a YAML mapping with posttroll_subscriber, target_defaults or a target-like entry."""
    data = yaml_mapping(content)
    if data is None:
        return 0
    return int(bool(data.keys() & {SUBSCRIBER_KEY, DEFAULTS_KEY}) or any(
        isinstance(v, Mapping) and v.keys() & {"dispatch_configs", "host", "directory"} for v in data.values()))



def check_config(out: Findings, path: str, host: PluginHost) -> None:
    """Record in ``out`` every problem of the dispatcher YAML at ``path``, one per location:
    the keys, the patterns and movers of every target, then the dispatcher's own reading of each."""
    data = read_yaml_mapping(out, path)
    if data is None:
        return
    subscriber = data.get(SUBSCRIBER_KEY)
    if subscriber is not None:
        if not isinstance(subscriber, Mapping):
            out.add("expected a mapping", SUBSCRIBER_KEY)
        else:
            SUBSCRIBER.check_keys(out, sorted(map(str, subscriber)), SUBSCRIBER_KEY)
            addresses = subscriber.get("subscribe_addresses")
            if addresses is not None and not _str_list(addresses):
                out.add("expected a list of tcp://host:port addresses", SUBSCRIBER_KEY, "subscribe_addresses")
            try:
                _subscriber(path, dict(subscriber))
            except ConfigError as err:
                out.add_error(err)
    defaults = data.get(DEFAULTS_KEY) or {}
    if not isinstance(defaults, Mapping):
        out.add("expected a mapping", DEFAULTS_KEY)
        defaults = {}
    with_observer_keys(DEFAULTS, host).check_keys(out, sorted(map(str, defaults)), DEFAULTS_KEY, elsewhere=PLACES)
    targets = {str(name): body for name, body in data.items() if name not in (SUBSCRIBER_KEY, DEFAULTS_KEY)}
    if not targets:
        out.add("no targets: nothing to dispatch")
    for name, body in targets.items():
        if not isinstance(body, Mapping):
            out.add("expected a mapping of target keys", name)
            continue
        with_observer_keys(TARGET, host).check_keys(out, sorted(map(str, body)), name, elsewhere=PLACES)
        target = _inherit(defaults, body)
        _check_target(out, name, target, host)
        if missing := missing_observer(host, target):
            out.add(missing[1], name, missing[0])
        elif observers := observer_settings(target, host):
            check_observers(out, host, dict(observers), name)
        try:
            _TargetReader(path, name, host).read(target)
        except ConfigError as err:
            out.add_error(err)
    out.sections = len(targets)


def _check_target(out: Findings, name: str, target: Mapping[str, Any], host: PluginHost) -> None:
    target_host = target.get("host") or ""
    if not isinstance(target_host, str):
        out.add("expected a URL string", name, "host")
        target_host = ""
    elif target_host and (problem := mover_problem(host, target_host)):
        out.add(problem, name, "host")
    for key in ("directory", "filepattern", "publish_topic"):
        value = target.get(key)
        if value is not None and (problem := pattern_problem(str(value))):
            out.add(problem, name, key)
    if "connection_parameters" in target and not isinstance(target["connection_parameters"], Mapping | None):
        out.add("expected a mapping", name, "connection_parameters")
    items = target.get("dispatch_configs")
    if not isinstance(items, list):
        return  # the dispatcher's own reading says what is wrong
    for index, item in enumerate(items):
        where = f"dispatch_configs[{index}]"
        if not isinstance(item, Mapping):
            out.add("expected a mapping with topics", name, where)
            continue
        ITEM.check_keys(out, sorted(map(str, item)), name, prefix=where + ".", elsewhere=ITEM_PLACES)
        topics = item.get("topics")
        if not topics or not _str_list(topics):
            out.add("required: a list of topics", name, f"{where}.topics")
        if isinstance(item.get("host"), str) and item["host"] and (problem := mover_problem(host, item["host"])):
            out.add(problem, name, f"{where}.host")
        for key in ("directory", "filepattern"):
            if item.get(key) is not None and (problem := pattern_problem(str(item[key]))):
                out.add(problem, name, f"{where}.{key}")


def _str_list(value: Any) -> bool:
    return isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value))
