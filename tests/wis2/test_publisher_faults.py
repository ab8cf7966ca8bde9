"""The wis2 observer when things go wrong: rows of its outbox it cannot read, a process dying
between two writes of its state, a broker away while files change (real Mosquitto brokers)."""

from __future__ import annotations

import datetime as dt
import errno
import logging
import threading
from pathlib import Path

import pytest
from support.bus import wait_until
from support.wis2_publisher import arrived, deliver, open_publisher, sha256
from trollmoves_mqtt.testing import Mosquitto
from trollmoves_roles.state.journal import Journal
from trollmoves_wis2 import notification, publisher
from trollmoves_wis2.announced import AnnouncedFiles
from trollmoves_wis2.testing import NotificationRecorder
from watchdog.observers import Observer

from trollmoves_core.watchers import watchdog_watcher

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(autouse=True)
def quick_settle(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(publisher, "SETTLE", 0.2)


def test_unreadable_outbox_rows_are_logged_and_deleted(broker: Mosquitto, recorder: NotificationRecorder,
                                                       tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    www, state = tmp_path / "www", tmp_path / "state"
    pub = open_publisher(broker.url(""), www, state_directory=str(state))
    pub.close()
    assert pub.outbox.journal is not None
    journal = Journal(pub.outbox.journal.path, table="outbox")  # rows another version could have left
    journal.put("no-message", "delivery", {"role": "client"})
    journal.put("no-topic", "built", {"topic": None, "payload": "e30="})
    journal.put("bad-payload", "built", {"topic": "origin/a/wis2/se-smhi/data/core/x", "payload": "not base64!"})
    journal.put("other-state", "sending", {})
    journal.close()
    with caplog.at_level(logging.ERROR, logger="trollmoves_wis2"):
        pub = open_publisher(broker.url(""), www, state_directory=str(state))
        try:
            deliver(pub, www / "after.h5", b"delivered after them")
            arrived(recorder, "after.h5")
        finally:
            pub.close()
    lines = [r for r in caplog.records if "cannot be read" in r.getMessage()]
    assert [r.getMessage().split(" row ")[1].split()[0] for r in lines] == [
        "no-message", "no-topic", "bad-payload", "other-state"]
    assert all(r.getMessage().startswith("[c] ") and r.exc_info is None for r in lines)
    assert len(pub.outbox) == 0
    journal = Journal(pub.outbox.journal.path, table="outbox")
    try:
        assert journal.keys() == []
    finally:
        journal.close()


class _Killed(BaseException):
    """The process dies here (the worker's ``except Exception`` lets it through)."""


def _dying_after(monkeypatch: pytest.MonkeyPatch, name: str) -> threading.Event:
    """Make the worker die right after its next ``AnnouncedFiles.<name>`` wrote the journal; set then."""
    original, died = getattr(AnnouncedFiles, name), threading.Event()

    def dying(self: AnnouncedFiles, *args: object) -> None:
        monkeypatch.setattr(AnnouncedFiles, name, original)  # the restarted publisher lives
        original(self, *args)
        died.set()
        raise _Killed

    monkeypatch.setattr(AnnouncedFiles, name, dying)
    monkeypatch.setattr(threading, "excepthook", lambda _args: None)  # the worker's death is the point
    return died


def test_a_death_after_remembering_a_delivery_does_not_lose_its_notification(
        broker: Mosquitto, recorder: NotificationRecorder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    www, state = tmp_path / "www", tmp_path / "state"
    died = _dying_after(monkeypatch, "remember")
    pub = open_publisher(broker.url(""), www, state_directory=str(state))
    deliver(pub, www / "a.h5", b"x")
    assert died.wait(10)
    pub.close()
    pub = open_publisher(broker.url(""), www, state_directory=str(state))
    try:
        found = arrived(recorder, "a.h5")
    finally:
        pub.close()
    assert [n.rel for n in found] == [notification.CANONICAL] and len(pub.outbox) == 0


def test_a_death_after_forgetting_a_removed_file_does_not_lose_its_deletion(
        broker: Mosquitto, recorder: NotificationRecorder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    www, state = tmp_path / "www", tmp_path / "state"
    pub = open_publisher(broker.url(""), www, state_directory=str(state))
    deliver(pub, www / "a.h5", b"x")
    arrived(recorder, "a.h5")
    died = _dying_after(monkeypatch, "forget")
    (www / "a.h5").unlink()
    assert died.wait(10)
    pub.close()
    pub = open_publisher(broker.url(""), www, state_directory=str(state))
    try:
        found = arrived(recorder, "a.h5", 2)
    finally:
        pub.close()
    assert [n.rel for n in found] == [notification.CANONICAL, notification.DELETION]


def test_a_file_replaced_by_the_chain_while_the_outbox_is_backed_up_is_announced_by_its_delivery(
        broker: Mosquitto, recorder: NotificationRecorder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The watcher sees the replacement before the delivery's turn comes: it must not announce the
    new file with the old notification's times (its delivery would then be dropped as the same)."""
    www, x = tmp_path / "www", tmp_path / "www" / "x.h5"
    pub = open_publisher(broker.url(""), www)
    try:
        deliver(pub, x, b"v1", start_time=dt.datetime(2026, 1, 1, 0, 0), end_time=dt.datetime(2026, 1, 1, 0, 5))
        arrived(recorder, "x.h5")
        monkeypatch.setattr(publisher, "IN_FLIGHT", 0)  # nothing taken from the outbox: as with a broker away
        x.write_bytes(b"v2, a new product under the same name")
        deliver(pub, x, start_time=dt.datetime(2026, 1, 1, 6, 0), end_time=dt.datetime(2026, 1, 1, 6, 5))
        assert wait_until(lambda: str(x) in pub._changes)
        seen = pub._changes[str(x)]
        assert wait_until(lambda: pub._changes.get(str(x)) != seen)  # looked at once its time came
        monkeypatch.setattr(publisher, "IN_FLIGHT", 1000)
        pub.outbox.wake.set()
        found = arrived(recorder, "x.h5", 2)
        deliver(pub, www / "marker.h5", b"later")  # anything more about x.h5 would have come before it
        arrived(recorder, "marker.h5")
    finally:
        pub.close()
    assert len(recorder.about("x.h5")) == 2
    assert [(n.rel, n.raw["properties"]["start_datetime"], n.integrity_value) for n in found] == [
        (notification.CANONICAL, "2026-01-01T00:00:00Z", sha256(b"v1")),
        (notification.UPDATE, "2026-01-01T06:00:00Z", sha256(b"v2, a new product under the same name"))]


def test_a_notification_handed_over_as_the_link_drops_is_sent_once(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """paho keeps a message it is handed while disconnected, and sends it after reconnecting."""
    www, mosquitto = tmp_path / "www", Mosquitto(tmp_path / "mosquitto").start()
    try:
        pub = open_publisher(mosquitto.url(""), www)
        try:
            handed: list[str] = []
            original = pub.connection.publish

            def publish(topic: str, payload: bytes, properties: object = None) -> object:
                info = original(topic, payload, properties)
                handed.append(notification.parse(payload).data_id.rsplit("/", 1)[1])
                if len(handed) == 1:
                    pub.connection.connected.clear()  # what paho's thread is about to say
                return info

            monkeypatch.setattr(pub.connection, "publish", publish)
            mosquitto.stop()
            assert wait_until(lambda: not pub.connection.connected.is_set())
            pub.connection.connected.set()  # the publisher has not heard yet that the link dropped
            deliver(pub, www / "x.h5", b"x")
            assert wait_until(lambda: handed)
            mosquitto.start()
            assert wait_until(lambda: pub.acknowledged == 1, timeout=40)
            deliver(pub, www / "marker.h5", b"later")  # x.h5 again would go before it
            assert wait_until(lambda: pub.acknowledged == 2)
        finally:
            pub.close()
    finally:
        mosquitto.stop()
    assert handed == ["x.h5", "marker.h5"] and len(pub.outbox) == 0


def test_chains_whose_names_differ_only_in_unsafe_characters_keep_their_own_state(broker: Mosquitto,
                                                                                  tmp_path: Path) -> None:
    www, state = tmp_path / "www", tmp_path / "state"
    paths = []
    for chain in ("a b", "a_b", "a/b"):
        pub = open_publisher(broker.url(""), www, chain=chain, state_directory=str(state))
        pub.close()
        assert pub.outbox.journal is not None
        paths.append(pub.outbox.journal.path)
    assert len(set(paths)) == 3 and all(path.parent == state for path in paths)


def test_a_file_removed_just_before_close_is_announced_deleted(broker: Mosquitto, recorder: NotificationRecorder,
                                                               tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(publisher, "SETTLE", 60.0)
    www = tmp_path / "www"
    pub = open_publisher(broker.url(""), www)
    try:
        deliver(pub, www / "a.h5", b"x")
        arrived(recorder, "a.h5")
        (www / "a.h5").unlink()
        assert wait_until(lambda: str(www / "a.h5") in pub._changes)  # heard, not looked at yet
    finally:
        pub.close()
    assert [n.rel for n in arrived(recorder, "a.h5", 2)] == [notification.CANONICAL, notification.DELETION]


def test_a_watcher_that_fails_to_start_leaves_nothing_behind(broker: Mosquitto, recorder: NotificationRecorder,
                                                            tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    class Failing(Observer):  # type: ignore[misc, valid-type]
        def start(self) -> None:  # after schedule() made the inotify instance and its reader thread
            raise OSError(errno.EMFILE, "Too many open files")

    monkeypatch.setattr(watchdog_watcher, "Observer", Failing)
    www = tmp_path / "www"
    www.mkdir()
    threads = set(threading.enumerate())
    with caplog.at_level(logging.ERROR, logger="trollmoves_wis2"):
        pub = open_publisher(broker.url(""), www)
    try:
        def left() -> list[threading.Thread]:  # besides the worker and the connection's
            return [t for t in threading.enumerate() if t not in threads and t is not pub._worker
                    and not t.name.startswith("paho-mqtt-client-")]

        assert wait_until(lambda: not left()), left()  # the inotify reader, which holds the descriptor, too
        deliver(pub, www / "a.h5", b"x")  # announced all the same
        arrived(recorder, "a.h5")
    finally:
        pub.close()
    assert [r.getMessage() for r in caplog.records if "Cannot watch" in r.getMessage()]


@pytest.mark.parametrize("kept", [False, True], ids=["in memory", "in the state directory"])
def test_the_files_of_a_directory_moved_away_are_announced_deleted(
        kept: bool, broker: Mosquitto, recorder: NotificationRecorder, tmp_path: Path) -> None:
    www = tmp_path / "www"
    extra = {"state_directory": str(tmp_path / "state")} if kept else {}
    pub = open_publisher(broker.url(""), www, **extra)
    try:
        for path in (www / "sub" / "a.h5", www / "sub" / "deeper" / "b.h5", www / "subway.h5"):
            deliver(pub, path, b"x")
            arrived(recorder, path.name)
        (www / "sub").rename(tmp_path / "sub")  # one event: the directory's
        found = {name: arrived(recorder, name, 2) for name in ("a.h5", "b.h5")}
        deliver(pub, www / "marker.h5", b"later")
        arrived(recorder, "marker.h5")
    finally:
        pub.close()
    for name, (first, second) in found.items():
        assert (first.rel, second.rel) == (notification.CANONICAL, notification.DELETION), name
        assert second.data_id == first.data_id
    assert len(recorder.about("subway.h5")) == 1  # beside it, not in it


def test_a_publisher_that_fails_to_open_closes_its_connection(broker: Mosquitto, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    def failing(*_args: object, **_kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(publisher, "Outbox", failing)
    threads = set(threading.enumerate())
    with pytest.raises(OSError, match="No space"):
        open_publisher(broker.url(""), tmp_path / "www")

    def left() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t not in threads and "wis2" in t.name]

    assert wait_until(lambda: not left()), left()
