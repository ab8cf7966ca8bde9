"""The WIS2 notification message (WNM, WMO-No. 1060 manual, version 1.x): build, check, read.

Public names (stable: the subscriber side depends on them)::

    Notification                 frozen dataclass: one message as read by parse()
    Link                         frozen dataclass: one entry of ``links``
    build(data_id, href, *, ...) -> dict      a new message (pubtime now in UTC, a fresh id)
    validate(doc) -> list[str]   every problem, one line each naming the field; [] when valid
    parse(raw: bytes) -> Notification         or WnmError naming the field at fault
    canonical_link(n) -> Link    the one canonical, update or deletion link
    encode(doc) -> bytes         the payload as published (compact UTF-8 JSON)
    timestamp(t) -> str          an RFC 3339 UTC time as WNMs carry it

The rules :func:`validate` checks are written from the requirements (not from the official JSON
schema, which has no licence). Besides what that schema checks (required keys, types, the
``integrity`` methods, one of ``datetime`` or ``start_datetime`` + ``end_datetime``, GeoJSON
``Point``/``Polygon``/null), it checks what the schema leaves out: the message is at most
:data:`MAX_BYTES` as ``json.dumps`` writes it (the longest form, with ``\\u`` escapes and spaces,
as other validators measure; :func:`parse` measures the payload); ``id`` is a UUID and every time
an RFC 3339 date-time; exactly one link has ``rel`` ``canonical``, ``update`` or ``deletion``;
link hrefs are ``http``, ``https``, ``ftp`` or ``sftp`` URLs; the ``integrity`` value is the
base64 of a digest of the method's length; inline ``content`` stays under 4096 bytes.

:func:`parse` is the consumer: it accepts what :func:`validate` accepts and, as the manual allows
consumers, a hex ``integrity`` value (stored in :class:`Notification` as base64; ``raw`` keeps it as
received).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import math
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from trollmoves_wis2.errors import WnmError

CONFORMS_TO = "http://wis.wmo.int/spec/wnm/1/conf/core"
"""The ``conformsTo`` entry of a WNM 1.1 or later; 1.0 messages say ``"version": "v04"`` instead."""
LEGACY_VERSION = "v04"
MAX_BYTES = 8192
"""A WNM must not exceed this many bytes."""
MAX_CONTENT_BYTES = 4096
"""Inline ``content`` must be smaller than this, encoded (its ``value``) and as ``size``."""
MEDIA_TYPE = "application/geo+json"
"""The MQTT v5 ContentType of a published WNM."""

DIGEST_BYTES = {"sha256": 32, "sha384": 48, "sha512": 64, "sha3-256": 32, "sha3-384": 48, "sha3-512": 64}
"""The ``integrity`` methods WNM allows, with the length of their digest."""
CONTENT_ENCODINGS = ("utf-8", "base64", "gzip")
LINK_SCHEMES = ("http", "https", "ftp", "sftp")
CANONICAL, UPDATE, DELETION = "canonical", "update", "deletion"
NOTIFICATION_RELS = (CANONICAL, UPDATE, DELETION)
"""The link relations that say what a message announces: exactly one link carries one of them."""

_RFC3339 = re.compile(r"(\d{4})-(\d\d)-(\d\d)[Tt](\d\d):(\d\d):(\d\d)(\.\d+)?([Zz]|[+-]\d\d:\d\d)")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_HEX = re.compile(r"[0-9a-fA-F]+")
_TIME_KEYS = ("pubtime", "datetime", "start_datetime", "end_datetime")
_KNOWN_PROPERTIES = frozenset({*_TIME_KEYS, "data_id", "metadata_id", "integrity", "content"})


@dataclass(frozen=True)
class Link:
    """One entry of ``links``: ``href``, ``rel`` and the optional media ``type`` and ``length``;
    any other keys (``title``, ``hreflang``, ``security``...) in ``extra``."""

    href: str
    rel: str
    type: str | None = None
    length: int | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def as_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {"href": self.href, "rel": self.rel}
        if self.type is not None:
            data["type"] = self.type
        if self.length is not None:
            data["length"] = self.length
        return {**data, **self.extra}


@dataclass(frozen=True)
class Notification:
    """A valid WNM, read by :func:`parse`. Times are aware UTC datetimes; ``datetime`` is None
    when the message gives ``start_datetime``/``end_datetime`` (or ``"datetime": null``)."""

    id: str
    data_id: str
    pubtime: dt.datetime
    datetime: dt.datetime | None
    start_datetime: dt.datetime | None
    end_datetime: dt.datetime | None
    geometry: Mapping[str, Any] | None
    integrity_method: str | None
    integrity_value: str | None
    links: tuple[Link, ...]
    metadata_id: str | None = None
    content: Mapping[str, Any] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    """The other ``properties`` (``producer``, ``cache``, ``global-cache``, anything else)."""
    raw: Mapping[str, Any] = field(default_factory=dict)
    """The whole message as received."""

    @property
    def rel(self) -> str:
        """What the message announces: ``canonical`` (new data), ``update`` or ``deletion``."""
        return canonical_link(self).rel


def canonical_link(n: Notification) -> Link:
    """The one link of ``n`` whose ``rel`` is ``canonical``, ``update`` or ``deletion``."""
    return next(link for link in n.links if link.rel in NOTIFICATION_RELS)


def timestamp(t: dt.datetime) -> str:
    """``t`` as RFC 3339 in UTC with a ``Z`` (a naive ``t`` is taken as UTC, as posttroll's times are)."""
    t = t.replace(tzinfo=dt.UTC) if t.tzinfo is None else t.astimezone(dt.UTC)
    return t.isoformat(timespec="microseconds" if t.microsecond else "seconds").replace("+00:00", "Z")


def build(data_id: str, href: str, *, rel: str = CANONICAL, media_type: str | None = None,
          length: int | None = None, integrity: tuple[str, str] | None = None,
          datetime: dt.datetime | None = None, start_datetime: dt.datetime | None = None,
          end_datetime: dt.datetime | None = None, geometry: Mapping[str, Any] | None = None,
          metadata_id: str | None = None, properties: Mapping[str, Any] | None = None,
          links: tuple[Link, ...] = (), pubtime: dt.datetime | None = None,
          id: str | None = None) -> dict[str, Any]:
    """A WNM announcing ``href`` (``rel`` canonical, update or deletion) as ``data_id``.

    ``integrity`` is ``(method, base64 value)``; the times are ``datetime`` or
    ``start_datetime`` + ``end_datetime`` (with neither, ``"datetime": null``); ``properties`` are
    extra properties; ``links`` extra links (``item``, ``related``...). ``pubtime`` defaults to now
    and ``id`` to a new UUID. The result is not checked here: :func:`validate` does that.
    """
    props: dict[str, Any] = {"data_id": data_id, "pubtime": timestamp(pubtime or dt.datetime.now(dt.UTC))}
    if metadata_id is not None:
        props["metadata_id"] = metadata_id
    if start_datetime is not None and end_datetime is not None:
        props["start_datetime"], props["end_datetime"] = timestamp(start_datetime), timestamp(end_datetime)
    else:
        props["datetime"] = timestamp(datetime or start_datetime) if (datetime or start_datetime) else None
    if integrity is not None:
        props["integrity"] = {"method": integrity[0], "value": integrity[1]}
    props.update(properties or {})
    link = Link(href, rel, media_type, length)
    return {
        "id": id or str(uuid.uuid4()),
        "conformsTo": [CONFORMS_TO],
        "type": "Feature",
        "geometry": dict(geometry) if geometry is not None else None,
        "properties": props,
        "links": [link.as_data(), *(extra.as_data() for extra in links)],
    }


def encode(doc: Mapping[str, Any]) -> bytes:
    """The payload of ``doc`` as published: compact JSON in UTF-8."""
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


def validate(doc: Any) -> list[str]:
    """Every way ``doc`` breaks the WNM requirements, one line each naming the field; [] if none."""
    return _Checker(tolerate_hex=False).check(doc, size=None)


def parse(raw: bytes) -> Notification:
    """The notification in the payload ``raw``; :class:`WnmError` (one line) when it is not a valid WNM."""
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise WnmError(f"message: not JSON ({err})") from None
    problems = _Checker(tolerate_hex=True).check(doc, size=len(raw))
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise WnmError(problems[0] + more)
    props = doc["properties"]
    integrity = props.get("integrity") or {}
    return Notification(
        id=doc["id"], data_id=props["data_id"], pubtime=_time(props["pubtime"]),
        datetime=_time(props.get("datetime")), start_datetime=_time(props.get("start_datetime")),
        end_datetime=_time(props.get("end_datetime")), geometry=doc["geometry"],
        integrity_method=integrity.get("method"), integrity_value=_base64(integrity.get("value")),
        links=tuple(_link(link) for link in doc["links"]), metadata_id=props.get("metadata_id"),
        content=props.get("content"), raw=doc,
        extra={k: v for k, v in props.items() if k not in _KNOWN_PROPERTIES})


def _link(data: Mapping[str, Any]) -> Link:
    return Link(data["href"], data["rel"], data.get("type"), data.get("length"),
                {k: v for k, v in data.items() if k not in ("href", "rel", "type", "length")})


def _time(text: str | None) -> dt.datetime | None:
    if text is None:
        return None
    m = _RFC3339.fullmatch(text)
    assert m is not None  # checked before
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    micro = int((m[7] or ".0")[1:7].ljust(6, "0"))
    zone = dt.UTC if m[8] in "Zz" else dt.timezone(
        (1 if m[8][0] == "+" else -1) * dt.timedelta(hours=int(m[8][1:3]), minutes=int(m[8][4:6])))
    # RFC 3339 allows a leap second (:60), datetime does not: it becomes the last microsecond.
    leap = second == 60
    t = dt.datetime(year, month, day, hour, minute, 59 if leap else second, 999999 if leap else micro, zone)
    return t.astimezone(dt.UTC)


def _base64(value: str | None) -> str | None:
    if value is not None and _HEX.fullmatch(value) and len(value) // 2 in DIGEST_BYTES.values():
        return base64.b64encode(bytes.fromhex(value)).decode()
    return value


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _describe(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


class _Checker:
    """One pass over a message, collecting problems as ``"field: what is wrong"`` lines."""

    def __init__(self, *, tolerate_hex: bool) -> None:
        self.tolerate_hex = tolerate_hex
        self.problems: list[str] = []

    def check(self, doc: Any, size: int | None) -> list[str]:
        """The problems of ``doc``, whose payload had ``size`` bytes (None: as json.dumps writes it)."""
        if not isinstance(doc, Mapping):
            return [f"message: a JSON object expected, got {_describe(doc)}"]
        if size is None:
            try:
                size = len(json.dumps(doc).encode())
            except (TypeError, ValueError) as err:
                return [f"message: not JSON-serialisable ({err})"]
        if size > MAX_BYTES:
            self.fail("message", f"{size} bytes, more than the {MAX_BYTES} a WNM may have")
        self.check_id(doc)
        self.check_conformance(doc)
        if doc.get("type") != "Feature":
            self.fail("type", f"must be \"Feature\", got {_describe(doc.get('type'))}")
        self.check_geometry(doc)
        self.check_properties(doc.get("properties"))
        self.check_links(doc.get("links"))
        return self.problems

    def fail(self, where: str, what: str) -> None:
        self.problems.append(f"{where}: {what}")

    def check_id(self, doc: Mapping[str, Any]) -> None:
        value = doc.get("id")
        if "id" not in doc:
            self.fail("id", "missing")
        elif not isinstance(value, str) or not _UUID.fullmatch(value):
            self.fail("id", f"must be a UUID, got {_describe(value)}")

    def check_conformance(self, doc: Mapping[str, Any]) -> None:
        if "conformsTo" in doc and "version" in doc:
            self.fail("conformsTo", "give conformsTo or the deprecated version, not both")
        elif "conformsTo" in doc:
            value = doc["conformsTo"]
            if not isinstance(value, list) or CONFORMS_TO not in value:
                self.fail("conformsTo", f"must be a list containing {CONFORMS_TO!r}, got {_describe(value)}")
        elif "version" in doc:
            if doc["version"] != LEGACY_VERSION:
                self.fail("version", f"must be {LEGACY_VERSION!r}, got {_describe(doc['version'])}")
        else:
            self.fail("conformsTo", "missing")

    def check_geometry(self, doc: Mapping[str, Any]) -> None:
        if "geometry" not in doc:
            self.fail("geometry", "missing (null when unknown)")
            return
        geometry = doc["geometry"]
        if geometry is None:
            return
        if not isinstance(geometry, Mapping):
            self.fail("geometry", f"must be an object or null, got {_describe(geometry)}")
            return
        kind, coords = geometry.get("type"), geometry.get("coordinates")
        if kind == "Point":
            self.check_position("geometry.coordinates", coords)
        elif kind == "Polygon":
            if not isinstance(coords, list) or not coords:
                self.fail("geometry.coordinates", f"a Polygon needs a list of rings, got {_describe(coords)}")
                return
            for i, ring in enumerate(coords):
                self.check_ring(f"geometry.coordinates[{i}]", ring)
        else:
            self.fail("geometry.type", f"must be \"Point\" or \"Polygon\", got {_describe(kind)}")

    def check_ring(self, where: str, ring: Any) -> None:
        if not isinstance(ring, list) or len(ring) < 4:
            self.fail(where, f"a linear ring needs at least 4 positions, got {_describe(ring)}")
            return
        before = len(self.problems)
        for j, position in enumerate(ring):
            self.check_position(f"{where}[{j}]", position)
        if len(self.problems) == before and ring[0][:2] != ring[-1][:2]:
            self.fail(where, "a linear ring must end where it starts")

    def check_position(self, where: str, position: Any) -> None:
        if not isinstance(position, list) or not 2 <= len(position) <= 3 \
                or not all(_is_number(c) for c in position):
            self.fail(where, f"must be [longitude, latitude] or [longitude, latitude, height], "
                             f"got {_describe(position)}")
        elif not (-180 <= position[0] <= 180 and -90 <= position[1] <= 90):
            self.fail(where, f"longitude/latitude out of range (WGS 84 degrees): {_describe(position)}")

    def check_properties(self, props: Any) -> None:
        if not isinstance(props, Mapping):
            self.fail("properties", "missing" if props is None else f"must be an object, got {_describe(props)}")
            return
        data_id = props.get("data_id")
        if not isinstance(data_id, str) or not data_id.strip():
            self.fail("properties.data_id", "missing" if data_id is None else
                      f"must be a non-empty string, got {_describe(data_id)}")
        for key in ("metadata_id", "producer", "global-cache"):
            if key in props and not isinstance(props[key], str):
                self.fail(f"properties.{key}", f"must be a string, got {_describe(props[key])}")
        if "cache" in props and not isinstance(props["cache"], bool):
            self.fail("properties.cache", f"must be true or false, got {_describe(props['cache'])}")
        self.check_times(props)
        if "integrity" in props:
            self.check_integrity(props["integrity"])
        if "content" in props:
            self.check_content(props["content"])

    def check_times(self, props: Mapping[str, Any]) -> None:
        if "pubtime" not in props:
            self.fail("properties.pubtime", "missing")
        for key in _TIME_KEYS:
            if key in props and not (key == "datetime" and props[key] is None):
                self.check_time(f"properties.{key}", props[key])
        has_range = "start_datetime" in props or "end_datetime" in props
        if "datetime" in props and has_range:
            self.fail("properties.datetime", "give datetime or start_datetime + end_datetime, not both")
        elif has_range:
            for key in ("start_datetime", "end_datetime"):
                if key not in props:
                    self.fail(f"properties.{key}", "missing (start_datetime and end_datetime go together)")
        elif "datetime" not in props:
            self.fail("properties.datetime", "missing (null when unknown, or start_datetime + end_datetime)")

    def check_time(self, where: str, value: Any) -> None:
        if not isinstance(value, str) or not _RFC3339.fullmatch(value):
            self.fail(where, f"must be an RFC 3339 date-time such as 2026-12-02T05:40:00Z, got {_describe(value)}")
            return
        try:
            _time(value)
        except ValueError as err:
            self.fail(where, f"{_describe(value)} is not a real time ({err})")

    def check_integrity(self, integrity: Any) -> None:
        where = "properties.integrity"
        if not isinstance(integrity, Mapping):
            self.fail(where, f"must be an object with method and value, got {_describe(integrity)}")
            return
        method, value = integrity.get("method"), integrity.get("value")
        if method not in DIGEST_BYTES:
            self.fail(f"{where}.method", "missing" if method is None else
                      f"must be one of {', '.join(DIGEST_BYTES)}, got {_describe(method)}")
        if not isinstance(value, str):
            self.fail(f"{where}.value", "missing" if value is None else f"must be a string, got {_describe(value)}")
            return
        if method not in DIGEST_BYTES:
            return
        if _HEX.fullmatch(value) and len(value) == 2 * DIGEST_BYTES[method]:
            if not self.tolerate_hex:
                self.fail(f"{where}.value", f"is a hex {method} digest; WNM values are base64")
            return
        try:
            digest = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            self.fail(f"{where}.value", f"must be base64, got {_describe(value)}")
            return
        if len(digest) != DIGEST_BYTES[method]:
            self.fail(f"{where}.value", f"a {method} digest has {DIGEST_BYTES[method]} bytes, this one {len(digest)}")

    def check_content(self, content: Any) -> None:
        where = "properties.content"
        if not isinstance(content, Mapping):
            self.fail(where, f"must be an object with encoding, size and value, got {_describe(content)}")
            return
        encoding, size, value = content.get("encoding"), content.get("size"), content.get("value")
        if encoding not in CONTENT_ENCODINGS:
            self.fail(f"{where}.encoding", "missing" if encoding is None else
                      f"must be one of {', '.join(CONTENT_ENCODINGS)}, got {_describe(encoding)}")
        if not _is_int(size) or size < 0:
            self.fail(f"{where}.size", "missing" if size is None else
                      f"must be a whole number of bytes, got {_describe(size)}")
        elif size >= MAX_CONTENT_BYTES:
            self.fail(f"{where}.size", f"{size} bytes: inline content must be under {MAX_CONTENT_BYTES}")
        if not isinstance(value, str):
            self.fail(f"{where}.value", "missing" if value is None else f"must be a string, got {_describe(value)}")
        elif len(value.encode()) >= MAX_CONTENT_BYTES:
            self.fail(f"{where}.value", f"{len(value.encode())} bytes: inline content must be under "
                                        f"{MAX_CONTENT_BYTES}")
        elif encoding in ("base64", "gzip"):
            try:
                base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                self.fail(f"{where}.value", f"{encoding} content must be base64 text")

    def check_links(self, links: Any) -> None:
        if not isinstance(links, list) or not links:
            self.fail("links", "missing" if links is None else f"must be a non-empty list, got {_describe(links)}")
            return
        for i, link in enumerate(links):
            self.check_link(f"links[{i}]", link)
        rels = [link.get("rel") for link in links if isinstance(link, Mapping)]
        announcing = [rel for rel in rels if rel in NOTIFICATION_RELS]
        if len(announcing) != 1:
            found = f"found {', '.join(announcing)}" if announcing else "found none"
            self.fail("links", f"exactly one link must have rel canonical, update or deletion; {found}")

    def check_link(self, where: str, link: Any) -> None:
        if not isinstance(link, Mapping):
            self.fail(where, f"must be an object with href and rel, got {_describe(link)}")
            return
        href, rel = link.get("href"), link.get("rel")
        if not isinstance(href, str):
            self.fail(f"{where}.href", "missing" if href is None else f"must be a string, got {_describe(href)}")
        else:
            parts = urlsplit(href)
            if parts.scheme not in LINK_SCHEMES or not parts.netloc:
                self.fail(f"{where}.href", f"must be an {'/'.join(LINK_SCHEMES)} URL, got {_describe(href)}")
        if not isinstance(rel, str) or not rel:
            self.fail(f"{where}.rel", "missing" if rel is None else f"must be a string, got {_describe(rel)}")
        for key in ("type", "title", "hreflang"):
            if key in link and not isinstance(link[key], str):
                self.fail(f"{where}.{key}", f"must be a string, got {_describe(link[key])}")
        if "length" in link and (not _is_int(link["length"]) or link["length"] < 0):
            self.fail(f"{where}.length", f"must be a whole number of bytes, got {_describe(link['length'])}")
        if "security" in link:
            self.check_security(f"{where}.security", link["security"])

    def check_security(self, where: str, security: Any) -> None:
        if not isinstance(security, Mapping):
            self.fail(where, f"must be an object of security schemes, got {_describe(security)}")
            return
        for name, scheme in security.items():
            if not re.fullmatch(r"[A-Za-z0-9.\-_]+", name):
                self.fail(where, f"scheme name {name!r} may hold only letters, digits and . - _")
            elif not isinstance(scheme, Mapping) or not isinstance(scheme.get("type", scheme.get("$ref")), str):
                self.fail(f"{where}.{name}", f"must be a security scheme object with a type, got {_describe(scheme)}")
