"""The server's request socket against a raw REQ client, as the upstream client talks to it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from posttroll.message import Message
from support.bus import free_port
from support.files import put_file
from support.reqrep import reply as request
from support.server import TOPIC, chain


@pytest.fixture
def running(serve, dirs):
    origin, _ = dirs
    return serve(chain(origin, free_port()))


def announce(running, origin: Path, name: str = "NOAA-19_202401020304.dat", data: bytes = b"payload\n") -> Message:
    put_file(origin / name, data)
    return running.announced(name)


def push(running, data: dict, destination: str, subject: str = TOPIC) -> Message:
    return request(running.address(), Message(subject, "push", {**data, "destination": destination}))


def assert_still_serving(running) -> None:
    reply = request(running.address(), Message(TOPIC, "ping"))
    assert reply.type == "pong"


def test_ping_answers_pong_with_station(running):
    reply = request(running.address(), Message(TOPIC, "ping"))
    assert (reply.subject, reply.type, reply.data) == (TOPIC, "pong", {"station": "st1"})


def test_info_lists_announced_files_newest_first(running, dirs):
    origin, _ = dirs
    announce(running, origin, "NOAA-19_202401020304.dat")
    announce(running, origin, "NOAA-20_202401020305.dat")
    reply = request(running.address(), Message(TOPIC, "info", {"max_count": 10}))
    assert reply.type == "info"
    assert reply.data["files"] == [f"{TOPIC}/NOAA-20_202401020305.dat", f"{TOPIC}/NOAA-19_202401020304.dat"]
    assert reply.data["max_count"] == 10
    assert reply.data["uptime"].count(":") == 2
    capped = request(running.address(), Message(TOPIC, "info", {"max_count": 1}))
    assert capped.data["files"] == [f"{TOPIC}/NOAA-20_202401020305.dat"]


def test_push_copies_byte_identical_and_strips_credentials(running, dirs):
    origin, out = dirs
    content = os.urandom(200_000)
    message = announce(running, origin, data=content)
    reply = push(running, message.data, f"file://user:secret@localhost{out}/")
    assert reply.type == "file", reply.data
    assert (out / "NOAA-19_202401020304.dat").read_bytes() == content
    assert reply.data["destination"] == f"file://localhost{out}/"
    assert reply.data["uid"] == "NOAA-19_202401020304.dat"
    assert "secret" not in reply.encode()


def test_push_to_a_new_name_and_with_rel_path(running, dirs):
    origin, out = dirs
    message = announce(running, origin)
    reply = push(running, message.data, f"file://{out}/renamed.dat")
    assert reply.type == "file"
    assert (out / "renamed.dat").read_bytes() == b"payload\n"
    reply = push(running, {**message.data, "path": "sub/dir"}, f"file://{out}/p/")
    assert reply.type == "file"
    assert reply.data["destination"] == f"file://{out}/p/sub/dir"
    assert (out / "p" / "sub" / "dir").read_bytes() == b"payload\n"


def test_push_dataset_and_collection(running, dirs):
    origin, out = dirs
    one = announce(running, origin, "NOAA-19_202401020304.dat", b"one")
    two = announce(running, origin, "NOAA-20_202401020305.dat", b"two")
    files = [{"uri": m.data["uri"], "uid": m.data["uid"]} for m in (one, two)]
    reply = push(running, {"dataset": files}, f"file://{out}/ds/")
    assert reply.type == "dataset"
    assert [(out / "ds" / f["uid"]).read_bytes() for f in files] == [b"one", b"two"]
    reply = push(running, {"collection": [{"dataset": files[:1]}, {"dataset": files[1:]}]}, f"file://{out}/c/")
    assert reply.type == "collection"
    assert sorted(p.name for p in (out / "c").iterdir()) == sorted(f["uid"] for f in files)


def test_ack_answers_ack_without_credentials(running, dirs):
    origin, out = dirs
    message = announce(running, origin)
    reply = request(running.address(), Message(TOPIC, "ack", {**message.data, "destination": f"ftp://u:pw@h{out}/"}))
    assert reply.type == "ack"
    assert reply.data["destination"] == f"ftp://h{out}/"
    assert reply.data["uid"] == message.data["uid"]
    assert (origin / message.data["uid"]).exists()  # delete is off


def test_unknown_type_answers_unknown(running):
    reply = request(running.address(), Message(TOPIC, "whatever", {"a": 1}))
    assert (reply.type, reply.data) == ("unknown", "")


@pytest.mark.parametrize("payload", [
    pytest.param([b"two", b"frames"], id="garbage-frames"),
    pytest.param(b"this is not a posttroll message", id="not-posttroll"),
    pytest.param(b"\xff\xfe\x00garbage", id="binary-garbage"),
    pytest.param("pytroll://test/data push root@vm 2026-11-25T20:11:32.189407+00:00 v1.2 application/json {bad json",
                 id="invalid-json"),
    pytest.param(Message(TOPIC, "push", {"foo": 1, "destination": "file:///tmp/x/"}), id="missing-uri"),
    pytest.param(Message(TOPIC, "push", {"uri": "/tmp/x", "uid": "x"}), id="missing-destination"),
    pytest.param(Message(TOPIC, "push", "just text"), id="data-not-an-object"),
])
def test_malformed_requests_get_err_and_the_server_keeps_serving(running, payload):
    reply = request(running.address(), payload)
    assert reply.type == "err"
    assert isinstance(reply.data, str) and reply.data
    assert_still_serving(running)


def test_path_traversal_is_refused(running, dirs, tmp_path):
    origin, out = dirs
    message = announce(running, origin)
    secret = tmp_path / "secret.dat"
    secret.write_text("secret")
    sneaky = f"{origin}/../secret.dat"
    reply = push(running, {**message.data, "uri": sneaky, "uid": "secret.dat"}, f"file://{out}/")
    assert reply.type == "err"
    assert "traversal" in reply.data
    assert not (out / "secret.dat").exists()
    assert_still_serving(running)


def test_absolute_path_outside_origin_is_refused(running, dirs, tmp_path):
    _origin, out = dirs
    outside = tmp_path / "NOAA-19_202401020304.dat"
    outside.write_text("not served")
    reply = push(running, {"uri": str(outside), "uid": outside.name}, f"file://{out}/")
    assert reply.type == "err"
    assert "outside" in reply.data
    assert list(out.iterdir()) == []
    assert_still_serving(running)


def test_symlink_escaping_origin_is_refused(running, dirs, tmp_path):
    origin, out = dirs
    message = announce(running, origin)
    secret = tmp_path / "secret"
    secret.write_text("secret")
    announced = Path(message.data["uri"])
    link = announced.with_name(".link")
    link.symlink_to(secret)
    link.rename(announced)  # the announced name now points outside the origin
    reply = push(running, message.data, f"file://{out}/")
    assert reply.type == "err"
    assert "resolves outside" in reply.data
    assert list(out.iterdir()) == []
    assert_still_serving(running)


def test_unannounced_file_is_refused(running, dirs):
    origin, out = dirs
    stray = origin / "notes.txt"  # inside the origin directory, never announced
    stray.write_text("x")
    reply = push(running, {"uri": str(stray), "uid": stray.name}, f"file://{out}/")
    assert reply.type == "err"
    assert "not announced" in reply.data
    assert list(out.iterdir()) == []
    good = announce(running, origin)
    assert push(running, good.data, f"file://{out}/").type == "file"


def test_unknown_destination_scheme_gives_err(running, dirs):
    origin, _out = dirs
    message = announce(running, origin)
    reply = push(running, message.data, "bogus://host/data/")
    assert reply.type == "err"
    assert "bogus" in reply.data
    assert_still_serving(running)


def test_vanished_file_gives_err(running, dirs):
    origin, out = dirs
    message = announce(running, origin)
    Path(message.data["uri"]).unlink()
    reply = push(running, message.data, f"file://{out}/")
    assert reply.type == "err"
    assert_still_serving(running)
