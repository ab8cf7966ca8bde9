"""The wis2 observer on its own: options, the message built for each kind of delivery, refusals."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import logging
from pathlib import Path

import pytest
from trollmoves_mqtt.testing import Mosquitto
from trollmoves_wis2 import notification, options
from trollmoves_wis2.publisher import Wis2Publisher, media_type
from trollmoves_wis2.testing import NotificationRecorder

from trollmoves_core.checksum import Digest
from trollmoves_core.observer import Delivery

TOPIC = "origin/a/wis2/se-smhi/data/core/weather/space-based-observations/{platform_name!l}/{sensor}"
BASE_URL = "https://data.example.org/wis2"


def keys(broker: str = "mqtt://127.0.0.1:1883", **extra: str) -> dict[str, str]:
    return {"destination": "/srv/www/{platform_name}/", "wis2_broker": broker, "wis2_topic": TOPIC,
            "wis2_base_url": BASE_URL, **extra}


@pytest.mark.parametrize(("changes", "key", "problem"), [
    ({"wis2_broker": ""}, "wis2_broker", "required when any wis2_* key is set"),
    ({"wis2_base_url": ""}, "wis2_base_url", "required"),
    ({"wis2_broker": "mqtt://127.0.0.1:1883?password_file=/nonexistent"}, "wis2_broker", "/nonexistent"),
    ({"wis2_broker": "mqtt://u:pw@127.0.0.1:1883"}, "wis2_broker", "put the password in a file"),
    ({"wis2_topic": "origin/a/wis2/se-smhi/metadata/{x}"}, "wis2_topic", "metadata topics end"),
    ({"wis2_topic": "origin/a/wis2/{centre}/data/core/weather/x/{y}"}, None, None),
    ({"wis2_topic": "{channel}/a/wis2/se-smhi/data/core/weather/x"}, None, None),
    ({"wis2_topic": "origin/a/wis2/se-smhi/data/core/weather/x/{}"}, "wis2_topic", "needs a field name"),
    ({"wis2_data_id": "x/{a"}, "wis2_data_id", "invalid trollsift template"),
    ({"wis2_base_url": "https://user:pw@data.example.org/"}, "wis2_base_url", "may not carry a password"),
    ({"wis2_base_url": "data.example.org/wis2"}, "wis2_base_url", "expected an"),
    ({"destination": "ftp://elsewhere/{platform_name}/"}, "wis2_root", "required"),
    ({"destination": "ftp://elsewhere/", "wis2_root": "/srv/www/"}, None, None),
])
def test_option_problems(changes: dict[str, str], key: str | None, problem: str | None) -> None:
    found = options.problems(keys(**changes))
    if key is None:
        assert found == {}
    else:
        assert list(found) == [key] and problem in found[key], found


def test_a_chain_without_wis2_keys_has_no_options() -> None:
    assert options.problems({"destination": "/x/"}) == {}
    assert options.parse_options({"destination": "/x/"}, file="c.ini", chain="c") is None


@pytest.mark.parametrize(("destination", "root"), [
    ("/srv/www/", "/srv/www/"),
    ("/srv/www", "/srv/www/"),
    ("file:///srv/www/{platform_name}/", "/srv/www/"),
    ("/srv/www/viirs_{platform_name}/", "/srv/www/"),
    ("sftp://host/srv/www/", None),
])
def test_root_of_the_destination(destination: str, root: str | None) -> None:
    assert options.root_of(destination) == root


@pytest.mark.parametrize(("name", "expected"), [
    ("a.h5", "application/x-hdf5"), ("A.NC", "application/x-netcdf"), ("x.bufr", "application/bufr"),
    ("x.grib2", "application/grib"), ("x.json", "application/json"), ("x.unknown", "application/octet-stream"),
])
def test_media_type(name: str, expected: str) -> None:
    assert media_type(f"/srv/www/{name}") == expected


@pytest.fixture
def publisher(broker: Mosquitto, tmp_path: Path):
    found = Wis2Publisher.open(keys(broker.url(""), destination=f"{tmp_path}/www/"), role="client", chain="c",
                               file="c.ini")
    assert found is not None
    yield found
    found.close()


def delivery(path: Path, change: str = "new", digest: Digest | None = None, drop: tuple[str, ...] = (),
             **data: object) -> Delivery:
    fields = {"platform_name": "NOAA-20", "sensor": "viirs", "uid": path.name, "uri": str(path), **data}
    fields = {k: v for k, v in fields.items() if k not in drop}
    return Delivery("client", "c", change, "/viirs", "file", fields, str(path), digest)


def written(tmp_path: Path, name: str, content: bytes) -> Path:
    path = tmp_path / "www" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def test_new_file_without_a_checksum_is_hashed(publisher: Wis2Publisher, tmp_path: Path) -> None:
    path = written(tmp_path, "sub dir/a.h5", b"content")
    topic, doc = publisher.notification_of(delivery(path, start_time=dt.datetime(2026, 12, 2, 5, 40),
                                                    end_time=dt.datetime(2026, 12, 2, 5, 41)))
    assert notification.validate(doc) == []
    assert topic == "origin/a/wis2/se-smhi/data/core/weather/space-based-observations/noaa-20/viirs"
    assert doc["links"] == [{"href": f"{BASE_URL}/sub%20dir/a.h5", "rel": "canonical", "type": "application/x-hdf5",
                             "length": 7}]
    assert doc["properties"]["integrity"] == {"method": "sha256",
                                              "value": base64.b64encode(hashlib.sha256(b"content").digest()).decode()}
    assert (doc["properties"]["start_datetime"], doc["properties"]["end_datetime"]) == (
        "2026-12-02T05:40:00Z", "2026-12-02T05:41:00Z")
    assert "datetime" not in doc["properties"]


def test_announced_checksum_is_passed_on(publisher: Wis2Publisher, tmp_path: Path) -> None:
    path = written(tmp_path, "b.h5", b"content")
    value = base64.b64encode(hashlib.sha512(b"content").digest()).decode()
    _, doc = publisher.notification_of(delivery(path, digest=Digest(7, "sha512", value)))
    assert doc["properties"]["integrity"] == {"method": "sha512", "value": value}


def test_second_announcement_of_a_data_id_is_an_update_and_a_removal_a_deletion(publisher: Wis2Publisher,
                                                                               tmp_path: Path) -> None:
    path = written(tmp_path, "c.h5", b"content")
    docs = []
    for change, content in (("new", b"content"), ("new", b"content"), ("new", b"other content"),
                            ("deletion", None), ("new", b"again")):
        if content is not None:
            path.write_bytes(content)
        docs.append(publisher.notification_of(delivery(path, change))[1])
        queued = publisher.publish(delivery(path, change))
        assert queued == (len(docs) != 2), docs[-1]  # the same file again: nothing to announce
    assert [doc["links"][0]["rel"] for doc in docs] == ["canonical", "update", "update", "deletion", "canonical"]
    deletion = docs[3]
    assert notification.validate(deletion) == []
    assert "integrity" not in deletion["properties"] and "length" not in deletion["links"][0]
    assert len({doc["properties"]["data_id"] for doc in docs}) == 1


def test_a_refused_first_announcement_leaves_the_next_one_canonical(publisher: Wis2Publisher,
                                                                      tmp_path: Path) -> None:
    path = written(tmp_path, "r.h5", b"content")
    publisher.publish(delivery(path, geometry={"type": "Point", "coordinates": [200.0, 0.0]}))
    assert publisher.refused == 1
    _, doc = publisher.notification_of(delivery(path))
    assert doc["links"][0]["rel"] == "canonical"  # nothing was announced before: not an update


def test_geometry_is_passed_on(publisher: Wis2Publisher, tmp_path: Path) -> None:
    path = written(tmp_path, "d.h5", b"x")
    point = {"type": "Point", "coordinates": [16.1, 58.5]}
    assert publisher.notification_of(delivery(path, geometry=point))[1]["geometry"] == point
    assert publisher.notification_of(delivery(path, geometry="POINT(1 2)"))[1]["geometry"] is None


def test_published_message_arrives_valid(publisher: Wis2Publisher, broker: Mosquitto, tmp_path: Path) -> None:
    recorder = NotificationRecorder(broker.url(""))
    try:
        publisher.delivered(delivery(written(tmp_path, "e.h5", b"data")))
        found = recorder.wait(1)
    finally:
        recorder.close()
    assert [(topic.rsplit("/", 2)[1:], n.rel) for topic, n, _ in found] == [(["noaa-20", "viirs"], "canonical")]
    assert recorder.invalid == []


@pytest.mark.parametrize(("make", "logged"), [
    (lambda tmp: delivery(tmp / "elsewhere.h5"), "is not under wis2_root"),
    (lambda tmp: delivery(tmp / "www" / "missing.h5"), "No such file"),
    (lambda tmp: delivery(written(tmp, "f.h5", b"x"), drop=("sensor",)), "the message has no field 'sensor'"),
    (lambda tmp: delivery(written(tmp, "g.h5", b"x"), geometry={"type": "Point", "coordinates": [200, 0]}),
     "geometry.coordinates: longitude/latitude out of range"),
    (lambda tmp: delivery(written(tmp, "h.h5", b"x"), platform_name="NOAA 20"), "level 9 'noaa 20'"),
])
def test_refused_delivery_is_one_logged_line(publisher: Wis2Publisher, tmp_path: Path, caplog, make,
                                             logged: str) -> None:
    event = make(tmp_path)
    with caplog.at_level(logging.ERROR, logger="trollmoves_wis2"):
        publisher.publish(event)
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("trollmoves_wis2")]
    assert len(lines) == 1 and logged in lines[0] and "\n" not in lines[0], lines
    assert (publisher.published, publisher.refused) == (0, 1)
