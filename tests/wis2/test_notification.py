"""The WNM checks, field by field, against messages written here (valid and broken one way each)."""

from __future__ import annotations

import base64
import copy
import datetime as dt
import hashlib
import json
from typing import Any

import pytest
from trollmoves_wis2 import notification
from trollmoves_wis2.errors import WnmError
from trollmoves_wis2.notification import build, canonical_link, encode, parse, validate

SHA256 = base64.b64encode(hashlib.sha256(b"data").digest()).decode()
SHA512 = base64.b64encode(hashlib.sha512(b"data").digest()).decode()
HREF = "https://data.example.org/viirs/SVM05_j01_d20261202_t0540_e0541.h5"
MISSING = object()


def message() -> dict[str, Any]:
    """A valid WNM with every optional part the checks look at."""
    return {
        "id": "be3ee8cd-aeb4-4547-9ca5-7bad5a8f8c20",
        "conformsTo": [notification.CONFORMS_TO],
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [16.15, 58.58]},
        "properties": {
            "data_id": "wis2/se-smhi/data/core/weather/space-based-observations/noaa-20/viirs/SVM05.h5",
            "metadata_id": "urn:wmo:md:se-smhi:viirs-sdr",
            "pubtime": "2026-12-02T06:04:50Z",
            "datetime": "2026-12-02T05:40:00Z",
            "integrity": {"method": "sha256", "value": SHA256},
        },
        "links": [{"href": HREF, "rel": "canonical", "type": "application/x-hdf5", "length": 4}],
    }


def edited(path: str, value: Any) -> dict[str, Any]:
    """:func:`message` with the dotted ``path`` set to ``value`` (MISSING: removed)."""
    doc = message()
    *parents, last = path.split(".")
    target: Any = doc
    for key in parents:
        target = target[int(key)] if isinstance(target, list) else target[key]
    if isinstance(target, list):
        target[int(last)] = value
    elif value is MISSING:
        del target[last]
    else:
        target[last] = value
    return doc


RING = [[10, 50], [20, 50], [20, 60], [10, 50]]

VALID = {
    "as built": ("id", "be3ee8cd-aeb4-4547-9ca5-7bad5a8f8c20"),
    "uppercase uuid": ("id", "BE3EE8CD-AEB4-4547-9CA5-7BAD5A8F8C20"),
    "conformsTo with extra entries": ("conformsTo", ["urn:x", notification.CONFORMS_TO]),
    "geometry null": ("geometry", None),
    "point with height": ("geometry", {"type": "Point", "coordinates": [16.1, 58.5, 120.0]}),
    "polygon": ("geometry", {"type": "Polygon", "coordinates": [RING]}),
    "polygon with a hole": ("geometry", {"type": "Polygon", "coordinates": [RING, RING]}),
    "datetime null": ("properties.datetime", None),
    "datetime with offset": ("properties.datetime", "2026-12-02T07:40:00+02:00"),
    "datetime lowercase t z": ("properties.datetime", "2026-12-02t05:40:00z"),
    "datetime nanoseconds": ("properties.datetime", "2026-12-02T05:40:00.123456789Z"),
    "leap second": ("properties.datetime", "2016-12-31T23:59:60Z"),
    "pubtime fraction": ("properties.pubtime", "2026-12-02T06:04:50.5Z"),
    "no metadata_id": ("properties.metadata_id", MISSING),
    "no integrity": ("properties.integrity", MISSING),
    "sha512": ("properties.integrity", {"method": "sha512", "value": SHA512}),
    "sha3-256": ("properties.integrity", {"method": "sha3-256", "value": SHA256}),
    "sha384": ("properties.integrity", {"method": "sha384",
                                        "value": base64.b64encode(bytes(48)).decode()}),
    "content utf-8": ("properties.content", {"encoding": "utf-8", "value": "data", "size": 4}),
    "content base64": ("properties.content", {"encoding": "base64", "value": "ZGF0YQ==", "size": 4}),
    "content just under 4096": ("properties.content", {"encoding": "utf-8", "value": "x" * 4095,
                                                       "size": 4095}),
    "cache false": ("properties.cache", False),
    "producer": ("properties.producer", "no-met"),
    "global-cache": ("properties.global-cache", "de-dwd-gc"),
    "other property": ("properties.anything", {"free": ["form"]}),
    "other top-level key": ("note", "extra keys never invalidate"),
    "link without type and length": ("links", [{"href": HREF, "rel": "canonical"}]),
    "update link": ("links", [{"href": HREF, "rel": "update"}]),
    "deletion link": ("links", [{"href": HREF, "rel": "deletion"}]),
    "extra item link": ("links", [{"href": HREF, "rel": "canonical"},
                                  {"href": "https://x.org/items/1", "rel": "item", "type": "application/json"}]),
    "ftp link": ("links", [{"href": "ftp://x.org/a.h5", "rel": "canonical"}]),
    "sftp link": ("links", [{"href": "sftp://x.org/a.h5", "rel": "canonical"}]),
    "link with title, hreflang, security": ("links", [{
        "href": HREF, "rel": "canonical", "title": "t", "hreflang": "en",
        "security": {"default": {"type": "http", "scheme": "basic"}}}]),
    "zero length": ("links.0.length", 0),
}


@pytest.mark.parametrize(("path", "value"), VALID.values(), ids=VALID.keys())
def test_valid(path: str, value: Any) -> None:
    doc = edited(path, value)
    assert validate(doc) == []
    assert parse(encode(doc)).raw == doc


def test_legacy_version_instead_of_conforms_to() -> None:
    doc = edited("conformsTo", MISSING)
    doc["version"] = "v04"
    assert validate(doc) == []


def test_start_and_end_instead_of_datetime() -> None:
    doc = edited("properties.datetime", MISSING)
    doc["properties"].update(start_datetime="2026-12-02T05:40:00Z", end_datetime="2026-12-02T05:41:00Z")
    assert validate(doc) == []
    n = parse(encode(doc))
    assert (n.datetime, n.start_datetime, n.end_datetime) == (
        None, dt.datetime(2026, 12, 2, 5, 40, tzinfo=dt.UTC), dt.datetime(2026, 12, 2, 5, 41, tzinfo=dt.UTC))


INVALID = {
    "id missing": ("id", MISSING, "id: missing"),
    "id not a uuid": ("id", "not-a-uuid", "id: must be a UUID"),
    "id a number": ("id", 12, "id: must be a UUID"),
    "conformsTo missing": ("conformsTo", MISSING, "conformsTo: missing"),
    "conformsTo a string": ("conformsTo", notification.CONFORMS_TO, "conformsTo: must be a list"),
    "conformsTo other": ("conformsTo", ["http://wis.wmo.int/spec/wnm/2/conf/core"], "conformsTo: must be a list"),
    "type missing": ("type", MISSING, "type: must be \"Feature\""),
    "type wrong": ("type", "FeatureCollection", "type: must be \"Feature\""),
    "geometry missing": ("geometry", MISSING, "geometry: missing"),
    "geometry a string": ("geometry", "POINT(1 2)", "geometry: must be an object or null"),
    "geometry line": ("geometry", {"type": "LineString", "coordinates": [[1, 2], [3, 4]]}, "geometry.type:"),
    "point one number": ("geometry", {"type": "Point", "coordinates": [1]}, "geometry.coordinates: must be"),
    "point text": ("geometry", {"type": "Point", "coordinates": ["1", "2"]}, "geometry.coordinates: must be"),
    "point bools": ("geometry", {"type": "Point", "coordinates": [True, False]}, "geometry.coordinates: must be"),
    "point no coordinates": ("geometry", {"type": "Point"}, "geometry.coordinates: must be"),
    "point latitude 91": ("geometry", {"type": "Point", "coordinates": [10, 91]}, "out of range"),
    "point longitude 181": ("geometry", {"type": "Point", "coordinates": [181, 10]}, "out of range"),
    "polygon not rings": ("geometry", {"type": "Polygon", "coordinates": [1]},
                          "geometry.coordinates[0]: a linear ring needs"),
    "polygon no rings": ("geometry", {"type": "Polygon", "coordinates": []}, "geometry.coordinates: a Polygon"),
    "polygon short ring": ("geometry", {"type": "Polygon", "coordinates": [RING[:3]]}, "at least 4 positions"),
    "polygon open ring": ("geometry", {"type": "Polygon", "coordinates": [[*RING[:3], [11, 50]]]},
                          "must end where it starts"),
    "properties missing": ("properties", MISSING, "properties: missing"),
    "properties a list": ("properties", [], "properties: must be an object"),
    "data_id missing": ("properties.data_id", MISSING, "properties.data_id: missing"),
    "data_id empty": ("properties.data_id", "", "properties.data_id: must be a non-empty string"),
    "data_id a number": ("properties.data_id", 3, "properties.data_id: must be a non-empty string"),
    "metadata_id a number": ("properties.metadata_id", 3, "properties.metadata_id: must be a string"),
    "producer a list": ("properties.producer", ["x"], "properties.producer: must be a string"),
    "cache a string": ("properties.cache", "false", "properties.cache: must be true or false"),
    "pubtime missing": ("properties.pubtime", MISSING, "properties.pubtime: missing"),
    "pubtime words": ("properties.pubtime", "yesterday", "properties.pubtime: must be an RFC 3339"),
    "pubtime null": ("properties.pubtime", None, "properties.pubtime: must be an RFC 3339"),
    "pubtime no zone": ("properties.pubtime", "2026-12-02T06:04:50", "properties.pubtime: must be an RFC 3339"),
    "pubtime space": ("properties.pubtime", "2026-12-02 06:04:50Z", "properties.pubtime: must be an RFC 3339"),
    "pubtime date only": ("properties.pubtime", "2026-12-02", "properties.pubtime: must be an RFC 3339"),
    "pubtime basic format": ("properties.pubtime", "20261202T060450Z", "properties.pubtime: must be an RFC 3339"),
    "pubtime epoch": ("properties.pubtime", 1796191490, "properties.pubtime: must be an RFC 3339"),
    "pubtime month 13": ("properties.pubtime", "2026-13-02T06:04:50Z", "properties.pubtime: \"2026-13"),
    "pubtime feb 30": ("properties.pubtime", "2026-02-30T06:04:50Z", "is not a real time"),
    "pubtime hour 24": ("properties.pubtime", "2026-12-02T24:00:00Z", "is not a real time"),
    "datetime words": ("properties.datetime", "now", "properties.datetime: must be an RFC 3339"),
    "datetime missing": ("properties.datetime", MISSING, "properties.datetime: missing"),
    "integrity a string": ("properties.integrity", "sha256:abc", "properties.integrity: must be an object"),
    "integrity md5": ("properties.integrity", {"method": "md5", "value": SHA256},
                      "properties.integrity.method: must be one of"),
    "integrity no method": ("properties.integrity", {"value": SHA256}, "properties.integrity.method: missing"),
    "integrity no value": ("properties.integrity", {"method": "sha256"}, "properties.integrity.value: missing"),
    "integrity value a number": ("properties.integrity", {"method": "sha256", "value": 1},
                                 "properties.integrity.value: must be a string"),
    "integrity not base64": ("properties.integrity", {"method": "sha256", "value": "not base64!"},
                             "properties.integrity.value: must be base64"),
    "integrity wrong length": ("properties.integrity", {"method": "sha512", "value": SHA256},
                               "a sha512 digest has 64 bytes, this one 32"),
    "content a string": ("properties.content", "data", "properties.content: must be an object"),
    "content no encoding": ("properties.content", {"value": "x", "size": 1}, "properties.content.encoding: missing"),
    "content bad encoding": ("properties.content", {"encoding": "zip", "value": "x", "size": 1},
                             "properties.content.encoding: must be one of"),
    "content no size": ("properties.content", {"encoding": "utf-8", "value": "x"}, "properties.content.size: missing"),
    "content negative size": ("properties.content", {"encoding": "utf-8", "value": "x", "size": -1},
                              "properties.content.size: must be a whole number"),
    "content size 4096": ("properties.content", {"encoding": "gzip", "value": "eA==", "size": 4096},
                          "properties.content.size: 4096 bytes"),
    "content no value": ("properties.content", {"encoding": "utf-8", "size": 1}, "properties.content.value: missing"),
    "content value 4096": ("properties.content", {"encoding": "utf-8", "value": "x" * 4096, "size": 100},
                           "properties.content.value: 4096 bytes"),
    "content base64 not base64": ("properties.content", {"encoding": "base64", "value": "not base64!", "size": 3},
                                  "base64 content must be base64 text"),
    "links missing": ("links", MISSING, "links: missing"),
    "links empty": ("links", [], "links: must be a non-empty list"),
    "links an object": ("links", {"href": HREF, "rel": "canonical"}, "links: must be a non-empty list"),
    "link a string": ("links", [HREF, {"href": HREF, "rel": "canonical"}], "links[0]: must be an object"),
    "link no href": ("links", [{"rel": "canonical"}], "links[0].href: missing"),
    "link no rel": ("links", [{"href": HREF}, {"href": HREF, "rel": "canonical"}], "links[0].rel: missing"),
    "link file href": ("links", [{"href": "file:///data/a.h5", "rel": "canonical"}], "links[0].href: must be an"),
    "link relative href": ("links", [{"href": "/data/a.h5", "rel": "canonical"}], "links[0].href: must be an"),
    "link type a number": ("links.0.type", 5, "links[0].type: must be a string"),
    "link length text": ("links.0.length", "4", "links[0].length: must be a whole number"),
    "link length negative": ("links.0.length", -4, "links[0].length: must be a whole number"),
    "link length float": ("links.0.length", 4.0, "links[0].length: must be a whole number"),
    "link security a list": ("links.0.security", ["basic"], "links[0].security: must be an object"),
    "link security no type": ("links.0.security", {"default": {"scheme": "basic"}},
                              "links[0].security.default: must be a security scheme"),
    "no canonical link": ("links", [{"href": HREF, "rel": "item"}], "exactly one link must have rel"),
    "rel whatever": ("links", [{"href": HREF, "rel": "whatever"}], "found none"),
    "two canonical links": ("links", [{"href": HREF, "rel": "canonical"}, {"href": HREF, "rel": "canonical"}],
                            "found canonical, canonical"),
    "canonical and update": ("links", [{"href": HREF, "rel": "canonical"}, {"href": HREF, "rel": "update"}],
                             "found canonical, update"),
    "update and deletion": ("links", [{"href": HREF, "rel": "update"}, {"href": HREF, "rel": "deletion"}],
                            "found update, deletion"),
}


@pytest.mark.parametrize(("path", "value", "problem"), INVALID.values(), ids=INVALID.keys())
def test_invalid(path: str, value: Any, problem: str) -> None:
    doc = edited(path, value)
    problems = validate(doc)
    assert len(problems) == 1, problems
    assert problem in problems[0]
    assert "\n" not in problems[0]
    with pytest.raises(WnmError, match=r"^" + problems[0].split(":")[0].replace("[", r"\[")):
        parse(json.dumps(doc).encode())


TIME_FORMS = {
    "both datetime and range": ({"datetime": "2026-12-02T05:40:00Z", "start_datetime": "2026-12-02T05:40:00Z",
                                 "end_datetime": "2026-12-02T05:41:00Z"}, "not both"),
    "start without end": ({"start_datetime": "2026-12-02T05:40:00Z"}, "properties.end_datetime: missing"),
    "end without start": ({"end_datetime": "2026-12-02T05:41:00Z"}, "properties.start_datetime: missing"),
    "no time at all": ({}, "properties.datetime: missing"),
    "null datetime and a range": ({"datetime": None, "start_datetime": "2026-12-02T05:40:00Z",
                                   "end_datetime": "2026-12-02T05:41:00Z"}, "not both"),
}


@pytest.mark.parametrize(("times", "problem"), TIME_FORMS.values(), ids=TIME_FORMS.keys())
def test_temporal_forms(times: dict[str, Any], problem: str) -> None:
    doc = edited("properties.datetime", MISSING)
    doc["properties"].update(times)
    assert [p for p in validate(doc) if problem in p], validate(doc)


def test_conforms_to_and_version_together() -> None:
    doc = message()
    doc["version"] = "v04"
    assert validate(doc) == ["conformsTo: give conformsTo or the deprecated version, not both"]


def test_legacy_version_other_than_v04() -> None:
    doc = edited("conformsTo", MISSING)
    doc["version"] = "v03"
    assert validate(doc) == ["version: must be 'v04', got \"v03\""]


def test_every_problem_is_reported() -> None:
    doc = message()
    doc["id"], doc["type"], doc["links"] = "x", "y", []
    del doc["properties"]["pubtime"]
    assert [p.split(":")[0] for p in validate(doc)] == ["id", "type", "properties.pubtime", "links"]


def test_not_an_object() -> None:
    assert validate([]) == ["message: a JSON object expected, got []"]
    with pytest.raises(WnmError, match=r"^message: not JSON"):
        parse(b"{not json")
    with pytest.raises(WnmError, match=r"^message: not JSON"):
        parse(b"\xff\xfe")


def padded(total: int) -> dict[str, Any]:
    """:func:`message` padded with an extra property to exactly ``total`` bytes of ``json.dumps``."""
    doc = edited("properties.padding", "")
    doc["properties"]["padding"] = "x" * (total - len(json.dumps(doc)))
    assert len(json.dumps(doc)) == total
    return doc


def test_size_limit_is_8192_bytes() -> None:
    assert validate(padded(8192)) == []
    assert validate(padded(8193)) == ["message: 8193 bytes, more than the 8192 a WNM may have"]
    with pytest.raises(WnmError, match=r"^message: 8193 bytes"):
        parse(json.dumps(padded(8193)).encode())


def test_size_is_measured_as_json_dumps_writes_it() -> None:
    doc = padded(8192)
    doc["properties"]["padding"] = doc["properties"]["padding"][:-1] + "é"  # "\\u00e9": 6 bytes
    assert len(encode(doc)) < 8192
    assert validate(doc) == ["message: 8197 bytes, more than the 8192 a WNM may have"]


def test_parse_measures_the_payload() -> None:
    doc = padded(8192)
    doc["properties"]["padding"] = doc["properties"]["padding"][:-1] + "é"
    assert parse(encode(doc)).raw == doc
    with pytest.raises(WnmError, match=r"^message: 8193 bytes"):
        parse(json.dumps(padded(8192)).encode() + b" ")


def test_hex_integrity_is_tolerated_on_parse_only() -> None:
    hexdigest = hashlib.sha256(b"data").hexdigest()
    doc = edited("properties.integrity", {"method": "sha256", "value": hexdigest})
    assert validate(doc) == ["properties.integrity.value: is a hex sha256 digest; WNM values are base64"]
    n = parse(encode(doc))
    assert (n.integrity_method, n.integrity_value) == ("sha256", SHA256)
    assert n.raw["properties"]["integrity"]["value"] == hexdigest


def test_parse_gives_the_fields() -> None:
    doc = message()
    doc["properties"]["producer"] = "no-met"
    doc["links"].append({"href": "https://x.org/items/1", "rel": "item"})
    n = parse(encode(doc))
    assert n.id == doc["id"] and n.data_id == doc["properties"]["data_id"]
    assert n.pubtime == dt.datetime(2026, 12, 2, 6, 4, 50, tzinfo=dt.UTC)
    assert n.datetime == dt.datetime(2026, 12, 2, 5, 40, tzinfo=dt.UTC)
    assert n.geometry == {"type": "Point", "coordinates": [16.15, 58.58]}
    assert (n.integrity_method, n.integrity_value) == ("sha256", SHA256)
    assert n.metadata_id == "urn:wmo:md:se-smhi:viirs-sdr"
    assert n.extra == {"producer": "no-met"}
    assert n.rel == "canonical"
    link = canonical_link(n)
    assert (link.href, link.rel, link.type, link.length) == (HREF, "canonical", "application/x-hdf5", 4)
    assert len(n.links) == 2


@pytest.mark.parametrize(("text", "expected"), [
    ("2026-12-02T07:40:00+02:00", dt.datetime(2026, 12, 2, 5, 40, tzinfo=dt.UTC)),
    ("2026-12-02T05:40:00.123456789Z", dt.datetime(2026, 12, 2, 5, 40, 0, 123456, tzinfo=dt.UTC)),
    ("2016-12-31T23:59:60Z", dt.datetime(2016, 12, 31, 23, 59, 59, 999999, tzinfo=dt.UTC)),
])
def test_times_become_utc(text: str, expected: dt.datetime) -> None:
    assert parse(encode(edited("properties.datetime", text))).datetime == expected


@pytest.mark.parametrize("rel", notification.NOTIFICATION_RELS)
@pytest.mark.parametrize("method", list(notification.DIGEST_BYTES))
def test_build_is_valid(rel: str, method: str) -> None:
    value = base64.b64encode(hashlib.new(method.replace("-", "_"), b"data").digest()).decode()
    doc = build("wis2/se-smhi/x.h5", HREF, rel=rel, media_type="application/x-hdf5", length=4,
                integrity=(method, value), datetime=dt.datetime(2026, 12, 2, 5, 40))
    assert validate(doc) == []
    n = parse(encode(doc))
    assert n.rel == rel and n.integrity_method == method and n.integrity_value == value
    assert n.datetime == dt.datetime(2026, 12, 2, 5, 40, tzinfo=dt.UTC)
    assert dt.datetime.now(dt.UTC) - n.pubtime < dt.timedelta(minutes=5)


@pytest.mark.parametrize(("times", "keys"), [
    ({}, {"datetime": None}),
    ({"datetime": dt.datetime(2026, 1, 1)}, {"datetime": "2026-01-01T00:00:00Z"}),
    ({"start_datetime": dt.datetime(2026, 1, 1)}, {"datetime": "2026-01-01T00:00:00Z"}),
    ({"start_datetime": dt.datetime(2026, 1, 1), "end_datetime": dt.datetime(2026, 1, 1, 0, 1, 30, 500000)},
     {"start_datetime": "2026-01-01T00:00:00Z", "end_datetime": "2026-01-01T00:01:30.500000Z"}),
], ids=["none", "datetime", "start only", "start and end"])
def test_build_times(times: dict[str, dt.datetime], keys: dict[str, Any]) -> None:
    doc = build("x", HREF, **times)
    assert validate(doc) == []
    assert {k: doc["properties"].get(k, "absent") for k in keys} == keys
    assert not {"datetime", "start_datetime", "end_datetime"} - set(keys) & set(doc["properties"])


def test_build_extras() -> None:
    geometry = {"type": "Polygon", "coordinates": [RING]}
    doc = build("x", HREF, geometry=geometry, metadata_id="urn:wmo:md:se-smhi:x", properties={"cache": False},
                links=(notification.Link("https://x.org/items/1", "item"),),
                pubtime=dt.datetime(2026, 12, 2, 6, 0, tzinfo=dt.timezone(dt.timedelta(hours=1))),
                id="be3ee8cd-aeb4-4547-9ca5-7bad5a8f8c20")
    assert validate(doc) == []
    assert doc["properties"]["pubtime"] == "2026-12-02T05:00:00Z"
    assert doc["geometry"] == geometry and doc["properties"]["cache"] is False
    assert [link["rel"] for link in doc["links"]] == ["canonical", "item"]


def test_build_gives_fresh_ids() -> None:
    assert build("x", HREF)["id"] != build("x", HREF)["id"]


def test_validate_does_not_change_the_message() -> None:
    doc = message()
    before = copy.deepcopy(doc)
    validate(doc)
    assert doc == before
