"""Repeats of WIS2 notifications: by id, by data_id and pubtime, while in progress, after a restart."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

from trollmoves_wis2.subscriber.seen import SeenNotifications, open_seen

T0 = dt.datetime(2026, 12, 2, 6, 4, 50, tzinfo=dt.UTC)
LATER = T0 + dt.timedelta(minutes=5)


def test_a_delivered_id_is_a_repeat() -> None:
    seen = SeenNotifications(100)
    assert seen.claim("id-1", "a.h5", T0) is None
    seen.delivered("id-1", "a.h5", T0)
    assert seen.claim("id-1", "a.h5", T0) == "id"
    assert seen.claim("id-1", "b.h5", LATER) == "id"


def test_same_data_id_same_or_older_pubtime_is_a_repeat_newer_is_an_update() -> None:
    seen = SeenNotifications(100)
    seen.claim("id-1", "a.h5", LATER)
    seen.delivered("id-1", "a.h5", LATER)
    assert seen.claim("id-2", "a.h5", LATER) == "data_id"  # the same data through another broker
    assert seen.claim("id-3", "a.h5", T0) == "data_id"     # an older version arriving late
    newest = LATER + dt.timedelta(seconds=1)
    assert seen.claim("id-4", "a.h5", newest) is None      # an update
    seen.delivered("id-4", "a.h5", newest)
    assert seen.claim("id-5", "a.h5", LATER) == "data_id"


def test_a_claimed_notification_is_in_progress_until_released() -> None:
    seen = SeenNotifications(100)
    assert seen.claim("id-1", "a.h5", T0) is None
    assert seen.claim("id-2", "a.h5", T0) == "in progress"
    assert seen.claim("id-1", "b.h5", T0) == "in progress"
    seen.release("id-1", "a.h5")  # a failed download: a repeat is tried again
    assert seen.claim("id-2", "a.h5", T0) is None


def test_concurrent_copies_are_claimed_once() -> None:
    seen = SeenNotifications(100)
    results: list[str | None] = []
    threads = [threading.Thread(target=lambda i=i: results.append(seen.claim(f"id-{i}", "a.h5", T0)))
               for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results.count(None) == 1


def test_the_journal_keeps_them_across_a_restart(tmp_path: Path) -> None:
    config = tmp_path / "wis2.yaml"
    seen, path = open_seen(tmp_path / "state", config, "wis2-subscriber", 100)
    assert path is not None and path.parent == tmp_path / "state"
    seen.claim("id-1", "a.h5", LATER)
    seen.delivered("id-1", "a.h5", LATER)
    seen.close()
    again, _ = open_seen(tmp_path / "state", config, "wis2-subscriber", 100)
    assert again.claim("id-1", "other.h5", LATER) == "id"
    assert again.claim("id-2", "a.h5", T0) == "data_id"
    assert again.claim("id-3", "a.h5", LATER + dt.timedelta(seconds=1)) is None
    again.close()


def test_only_the_newest_are_remembered() -> None:
    seen = SeenNotifications(2)
    for i in range(3):
        seen.claim(f"id-{i}", f"{i}.h5", T0)
        seen.delivered(f"id-{i}", f"{i}.h5", T0)
    assert seen.claim("id-0", "0.h5", T0) is None
    assert seen.claim("id-2", "2.h5", T0) == "id"
