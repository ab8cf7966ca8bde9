"""The ``wis2_*`` keys of a client chain or dispatcher target: where WIS2 notifications go, what they say.

::

    wis2_broker      = mqtts://user@broker:8883?password_file=/etc/trollmoves/wis2.pw
    wis2_topic       = origin/a/wis2/se-smhi/data/core/weather/space-based-observations/{platform_name!l}/{sensor}
    wis2_base_url    = https://data.example.org/viirs/
    wis2_data_id     = wis2/se-smhi/viirs/{uid}            (optional)
    wis2_root        = /data/public/viirs/                 (optional)
    wis2_metadata_id = urn:wmo:md:se-smhi:viirs-sdr        (optional)

``wis2_broker`` is parsed as trollmoves-mqtt parses bus addresses (TLS, ``password_file``,
``ca_file``...; no topic prefix: the topic is ``wis2_topic``). ``wis2_topic`` and
``wis2_data_id`` are trollsift templates of the delivered file's message fields; the topic's
fixed levels are checked against the WIS2 topic hierarchy here, so a wrong one stops the role
at start. The default ``data_id`` is the topic without its channel and version, then the file
name. A delivered file at ``wis2_root``/``rel/path`` is announced as ``wis2_base_url``/``rel/path``;
``wis2_root`` defaults to the fixed start of the chain's ``destination``.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from trollmoves_mqtt.options import BusAddress, parse_bus_address

from trollmoves_core.exceptions import ConfigError
from trollmoves_core.schema import Key
from trollmoves_core.uri import parse_uri, redact
from trollmoves_wis2.notification import LINK_SCHEMES
from trollmoves_wis2.topics import validate_filter

KEYS = (
    Key("wis2_broker", origin="ours", doc="mqtt(s):// address of the broker WIS2 notifications are published on"),
    Key("wis2_topic", origin="ours", doc="trollsift template of the WIS2 topic (origin/a/wis2/<centre-id>/data/...)"),
    Key("wis2_base_url", origin="ours", doc="public URL (https, http, ftp, sftp) of the directory files land in"),
    Key("wis2_data_id", origin="ours", doc="trollsift template of the data_id (default: topic + file name)"),
    Key("wis2_root", origin="ours", doc="local directory wis2_base_url serves (default: destination's fixed start)"),
    Key("wis2_metadata_id", origin="ours", doc="WCMP2 record id of the dataset (metadata_id of each message)"),
)
REQUIRED = ("wis2_broker", "wis2_topic", "wis2_base_url")
_FIELD = re.compile(r"\{[^{}]*\}")


@dataclass(frozen=True)
class PublishOptions:
    """The ``wis2_*`` keys of one chain, checked."""

    bus: BusAddress
    topic: str
    base_url: str
    root: str
    data_id: str | None = None
    metadata_id: str | None = None
    local: bool = False
    """Whether the chain delivers to a local directory (its ``destination`` is one), so the files
    under ``root`` are on this host and can be watched for removals and changes."""


def is_used(keys: Mapping[str, str]) -> bool:
    """Whether the chain sets any ``wis2_*`` key."""
    return any(str(keys.get(key.name) or "").strip() for key in KEYS)


def problems(keys: Mapping[str, str]) -> dict[str, str]:
    """Key → what is wrong with its value (empty when the chain is fine or does not use WIS2)."""
    found: dict[str, str] = {}
    if not is_used(keys):
        return found
    text = {key.name: str(keys.get(key.name) or "").strip() for key in KEYS}
    for name in REQUIRED:
        if not text[name]:
            found[name] = "required when any wis2_* key is set"
    if text["wis2_broker"]:
        try:
            parse_broker(text["wis2_broker"], topics_key="wis2_topic")
        except ConfigError as err:
            found["wis2_broker"] = err.message
    if text["wis2_topic"] and (problem := template_problem(text["wis2_topic"])):
        found["wis2_topic"] = problem
    if text["wis2_data_id"] and (problem := syntax_problem(text["wis2_data_id"])):
        found["wis2_data_id"] = problem
    if text["wis2_base_url"]:
        parts = urlsplit(text["wis2_base_url"])
        if parts.scheme not in LINK_SCHEMES or not parts.netloc:
            found["wis2_base_url"] = (f"expected an {'/'.join(LINK_SCHEMES)} URL, "
                                      f"got {redact(text['wis2_base_url'])!r}")
        elif parts.password:
            found["wis2_base_url"] = "the public URL may not carry a password (core data needs no login)"
    if not text["wis2_root"] and root_of(str(keys.get("destination") or "")) is None:
        found["wis2_root"] = "required: the destination is not a local directory this role can tell"
    return found


def parse_broker(address: str, *, topics_key: str) -> BusAddress:
    """The broker of WIS2 notifications at ``address``, an MQTT bus address without a topic prefix
    (WIS2 topics are absolute: they are all in ``topics_key``); ConfigError (message only) otherwise."""
    bus = parse_bus_address(address)
    if urlsplit(address).path.strip("/"):
        raise ConfigError(f"{redact(address)!r} has a topic prefix; WIS2 topics are absolute: give the whole "
                          f"topic in {topics_key}")
    return bus


def template_problem(template: str) -> str | None:
    """Why the trollsift topic template cannot give a WIS2 topic (its fixed levels are checked), or None."""
    if problem := syntax_problem(template):
        return problem
    levels = "/".join("+" if _FIELD.search(level) else level for level in template.split("/"))
    found = validate_filter(levels)
    return found[0].replace(f"topic filter {levels!r}", f"topic {template!r}", 1) if found else None


def syntax_problem(template: str) -> str | None:
    """Why ``template`` is not a trollsift template to compose (``{name}``, ``{name:%Y}``,
    ``{name!l}``...), or None. Composing only: trollsift's parsing rules do not apply."""
    try:
        fields = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as err:
        return f"invalid trollsift template {template!r}: {err}"
    if "" in fields or any(not name.isidentifier() for name in fields):
        return f"invalid trollsift template {template!r}: every {{}} needs a field name"
    return None


def root_of(destination: str) -> str | None:
    """The local directory at the fixed start of a ``file://`` (or plain path) destination pattern."""
    if not destination:
        return None
    try:
        location = parse_uri(destination)
    except ValueError:
        return None
    if location.scheme != "file":
        return None
    if "{" not in location.path:  # the directory files are delivered into
        return location.path.rstrip("/") + "/"
    fixed = location.path.split("{", 1)[0]
    return fixed.rsplit("/", 1)[0] + "/" if "/" in fixed else None


def parse_options(keys: Mapping[str, str], *, file: str, chain: str) -> PublishOptions | None:
    """The checked options of a chain, None when it sets no ``wis2_*`` key; ConfigError naming
    the file, chain and key of the first problem."""
    if not is_used(keys):
        return None
    found = problems(keys)
    if found:
        key, message = next(iter(found.items()))
        raise ConfigError(message, file=file, section=chain, key=key)
    text = {key.name: str(keys.get(key.name) or "").strip() for key in KEYS}
    root = text["wis2_root"] or root_of(str(keys.get("destination") or ""))
    assert root is not None  # problems() said so
    return PublishOptions(bus=parse_broker(text["wis2_broker"], topics_key="wis2_topic"), topic=text["wis2_topic"],
                          base_url=text["wis2_base_url"].rstrip("/") + "/", root=root.rstrip("/") + "/",
                          data_id=text["wis2_data_id"] or None, metadata_id=text["wis2_metadata_id"] or None,
                          local=root_of(str(keys.get("destination") or "")) is not None)
