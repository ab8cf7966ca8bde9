"""The wis2 observer's memory: announced files watched for removals and changes, the outbox kept
in the state directory across restarts, the in-memory queue bounded (real Mosquitto brokers)."""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import sqlite3
from pathlib import Path

import pytest
from support.wis2_publisher import arrived, deliver, open_publisher, sha256
from trollmoves_mqtt.testing import Mosquitto
from trollmoves_wis2 import notification, publisher
from trollmoves_wis2.testing import NotificationRecorder

from trollmoves_core.observer import Delivery

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(autouse=True)
def quick_settle(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(publisher, "SETTLE", 0.2)


def test_removed_file_is_announced_deleted(broker: Mosquitto, recorder: NotificationRecorder,
                                           tmp_path: Path) -> None:
    www = tmp_path / "www"
    pub = open_publisher(broker.url(""), www)
    try:
        deleted, moved = www / "sub" / "deleted.h5", www / "moved.h5"
        deliver(pub, deleted, b"to delete")
        deliver(pub, moved, b"to move away")
        arrived(recorder, "deleted.h5"), arrived(recorder, "moved.h5")
        deleted.unlink()
        moved.rename(tmp_path / "moved.h5")  # out of the served tree: gone from the public URL
        (new, gone), (new_moved, gone_moved) = arrived(recorder, "deleted.h5", 2), arrived(recorder, "moved.h5", 2)
    finally:
        pub.close()
    for first, second in ((new, gone), (new_moved, gone_moved)):
        assert (first.rel, second.rel) == ("canonical", "deletion")
        assert second.data_id == first.data_id and second.id != first.id
        assert notification.canonical_link(second).href == notification.canonical_link(first).href
        assert second.integrity_value is None and notification.canonical_link(second).length is None
    topics = {topic for topic, _, _ in recorder.received}
    assert topics == {"origin/a/wis2/se-smhi/data/core/weather/space-based-observations/noaa-20/viirs"}


def test_file_changed_by_someone_else_is_an_update_and_our_own_replacement_no_second_one(
        broker: Mosquitto, recorder: NotificationRecorder, tmp_path: Path) -> None:
    www = tmp_path / "www"
    pub = open_publisher(broker.url(""), www)
    try:
        changed, replaced, ours = www / "changed.h5", www / "replaced.h5", www / "ours.h5"
        for path in (changed, replaced, ours):
            deliver(pub, path, b"first")
            arrived(recorder, path.name)
        changed.write_bytes(b"rewritten in place")
        (tmp_path / "www" / ".tmp").write_bytes(b"replaced by a rename")
        os.replace(tmp_path / "www" / ".tmp", replaced)
        (tmp_path / "www" / ".ours").write_bytes(b"delivered again")  # as the chain replaces a file
        os.replace(tmp_path / "www" / ".ours", ours)
        deliver(pub, ours)
        updates = {path.name: arrived(recorder, path.name, 2)[1] for path in (changed, replaced, ours)}
        deliver(pub, www / "marker.h5", b"later")  # anything about ours.h5 would have come before it
        arrived(recorder, "marker.h5")
    finally:
        pub.close()
    for name, content in (("changed.h5", b"rewritten in place"), ("replaced.h5", b"replaced by a rename"),
                          ("ours.h5", b"delivered again")):
        update = updates[name]
        assert update.rel == "update" and update.integrity_value == sha256(content), name
        assert notification.canonical_link(update).length == len(content)
    assert len(recorder.about("ours.h5")) == 2


def test_restarted_publisher_knows_what_it_announced(broker: Mosquitto, recorder: NotificationRecorder,
                                                     tmp_path: Path) -> None:
    www, state = tmp_path / "www", tmp_path / "state"
    pub = open_publisher(broker.url(""), www, state_directory=str(state))
    deliver(pub, www / "kept.h5", b"v1")
    deliver(pub, www / "removed.h5", b"v1")
    arrived(recorder, "kept.h5"), arrived(recorder, "removed.h5")
    pub.close()
    files = [p.name for p in state.glob("*.sqlite")]
    assert len(files) == 1 and re.fullmatch(r"wis2-client-c-[0-9a-f]{6}-c-[0-9a-f]{8}\.sqlite", files[0]), files
    pub = open_publisher(broker.url(""), www, state_directory=str(state))
    try:
        deliver(pub, www / "kept.h5", b"v2")
        (www / "removed.h5").unlink()
        kept, removed = arrived(recorder, "kept.h5", 2), arrived(recorder, "removed.h5", 2)
    finally:
        pub.close()
    assert [n.rel for n in kept] == ["canonical", "update"] and kept[1].integrity_value == sha256(b"v2")
    assert [n.rel for n in removed] == ["canonical", "deletion"] and removed[0].data_id == removed[1].data_id
    assert pub.outbox.journal is not None
    with sqlite3.connect(pub.outbox.journal.path) as db:
        assert db.execute("SELECT count(*) FROM outbox").fetchone() == (0,)  # every one acknowledged


def test_outbox_is_sent_by_the_next_run(tmp_path: Path) -> None:
    """A publisher whose broker is away keeps its notifications; the next run sends them all."""
    www, state = tmp_path / "www", tmp_path / "state"
    mosquitto = Mosquitto(tmp_path / "mosquitto")  # not started yet
    pub = open_publisher(mosquitto.url(""), www, state_directory=str(state))
    for n in range(5):
        deliver(pub, www / f"f{n}.h5", b"x" * n)
    (www / "built.h5").write_bytes(b"built")  # built before the restart: sent as it was
    assert pub.publish(Delivery("client", "c", "new", "/viirs", "file", {"platform_name": "NOAA-20"},
                                str(www / "built.h5")))
    pub.close()
    assert len(pub.outbox) == 6
    assert pub.outbox.journal is not None
    with sqlite3.connect(pub.outbox.journal.path) as db:
        (data,), = db.execute("SELECT data FROM outbox WHERE state = 'built'").fetchall()
    built = notification.parse(base64.b64decode(json.loads(data)["payload"]))
    with mosquitto:
        recorder = NotificationRecorder(mosquitto.url(""), "origin/a/wis2/se-smhi/#")
        pub = open_publisher(mosquitto.url(""), www, state_directory=str(state))
        try:
            found = [arrived(recorder, f"f{n}.h5")[0] for n in range(5)]
            again = arrived(recorder, "built.h5")[0]
        finally:
            pub.close()
            recorder.close()
    assert [n.rel for n in found] == ["canonical"] * 5 and len(pub.outbox) == 0
    assert [notification.canonical_link(n).length for n in found] == list(range(5))
    assert (again.id, again.pubtime) == (built.id, built.pubtime)


def test_full_queue_drops_and_counts_without_blocking(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(publisher, "QUEUED", 2)
    away = Mosquitto(tmp_path / "mosquitto")  # never started: nothing is sent
    pub = open_publisher(away.url(""), tmp_path / "www")
    try:
        with caplog.at_level(logging.ERROR, logger="trollmoves_wis2"):
            for n in range(5):
                deliver(pub, tmp_path / "www" / f"f{n}.h5", b"x")
    finally:
        pub.close()
    assert (pub.dropped, len(pub.outbox)) == (3, 2)
    lines = [r.getMessage() for r in caplog.records if "wait already" in r.getMessage()]
    assert lines and "f2.h5 not announced (1 dropped so far)" in lines[0]
