"""The WIS2 publisher's outbox on its own, kept in a journal: the order and the number of its jobs."""

from __future__ import annotations

from pathlib import Path

from trollmoves_roles.state.journal import Journal
from trollmoves_wis2.outbox import Outbox

from trollmoves_core.observer import Delivery

TOPIC = "origin/a/wis2/se-smhi/data/core/weather/space-based-observations/noaa-20/viirs"


def _delivery(path: Path) -> Delivery:
    return Delivery("client", "c", "new", "/viirs", "file", {"platform_name": "NOAA-20"}, str(path))


def test_a_notification_built_keeps_its_place_for_the_next_run(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "state.sqlite", table="outbox")
    outbox = Outbox(10, journal)
    for name in ("v1.h5", "v2.h5"):
        assert outbox.add(_delivery(tmp_path / name))
    first = outbox.take()
    assert first is not None and first.delivery is not None and first.delivery.path.endswith("v1.h5")
    outbox.built(first, TOPIC, b'{"v": 1}')  # sent, not acknowledged: the process dies
    journal.close()
    journal = Journal(tmp_path / "state.sqlite", table="outbox")
    try:
        outbox = Outbox(10, journal)
        again, second = outbox.take(), outbox.take()
    finally:
        journal.close()
    assert again is not None and (again.topic, again.payload, again.delivery) == (TOPIC, b'{"v": 1}', None)
    assert second is not None and second.delivery is not None and second.delivery.path.endswith("v2.h5")
    assert len(outbox) == 2 and outbox.take() is None


def test_journal_replace_keeps_the_place_of_a_key(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "state.sqlite")
    try:
        for key in ("a", "b"):
            journal.put(key, "one", {"n": 1})
        journal.replace("a", "two", {"n": 2})
        journal.replace("c", "two")
        assert [(r.key, r.state, r.data) for r in journal.records()] == [
            ("a", "two", {"n": 2}), ("b", "one", {"n": 1}), ("c", "two", {})]
    finally:
        journal.close()


def test_pending_counts_the_deliveries_of_a_file_until_built_or_done(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "state.sqlite", table="outbox")
    try:
        outbox, x = Outbox(10, journal), tmp_path / "x.h5"
        for _ in range(2):
            outbox.add(_delivery(tmp_path / "sub" / ".." / "x.h5"))
        outbox.add(_delivery(tmp_path / "y.h5"))
        first, second = outbox.take(), outbox.take()
        assert first is not None and second is not None
        outbox.built(first, TOPIC, b"{}")
        assert outbox.pending(str(x))
        outbox.done(second)
        assert not outbox.pending(str(x)) and outbox.pending(str(tmp_path / "y.h5"))
    finally:
        journal.close()


def test_journal_keys_under_a_prefix(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "state.sqlite")
    try:
        for key in ("/www/sub/a", "/www/subway", "/www/sub0", "/www/sub/deeper/b", "/www/su", "/www/sub"):
            journal.put(key, "announced")
        assert journal.keys(prefix="/www/sub/") == ["/www/sub/a", "/www/sub/deeper/b"]
        assert journal.keys("other", prefix="/www/sub/") == []
    finally:
        journal.close()


def test_a_new_notification_is_refused_when_the_outbox_is_full(tmp_path: Path) -> None:
    outbox = Outbox(1)
    assert outbox.add(_delivery(tmp_path / "a.h5"))
    assert outbox.built(None, TOPIC, b"{}") is None and len(outbox) == 1
    taken = outbox.take()
    assert taken is not None and outbox.built(taken, TOPIC, b"{}") is not None  # its own place
