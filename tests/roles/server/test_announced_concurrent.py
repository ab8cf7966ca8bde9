"""Announcements made at once by several threads (compressed chains announce from pool workers)
are listed with strictly increasing times, so a client paging by time misses none."""

from __future__ import annotations

import itertools
import sys
import threading

from trollmoves_roles.server.announced import AnnouncedFiles

THREADS = 8
EACH = 150


def test_concurrent_announcements_get_strictly_increasing_times(tmp_path):
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible: the race shows at once
    announced = AnnouncedFiles(listed=THREADS * EACH)
    start = threading.Barrier(THREADS)

    def announce(worker: int) -> None:
        start.wait()
        for index in range(EACH):
            path = tmp_path / f"{worker}-{index}.dat"
            path.write_bytes(b"x")
            announced.announce([(str(path), path.name)], "/t", "chain",
                               message=("/t", "file", {"uid": path.name}))

    workers = [threading.Thread(target=announce, args=(n,)) for n in range(THREADS)]
    try:
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    finally:
        sys.setswitchinterval(interval)

    listed, more = announced.listed_after("chain", 0.0, THREADS * EACH + 1)
    times = [item["time"] for item in listed]
    assert not more and len(times) == THREADS * EACH
    assert all(a < b for a, b in itertools.pairwise(times))
    # a client's catch-up cursor, a few at a time, sees each announcement exactly once
    seen, cursor, more = [], 0.0, True
    while more:
        page, more = announced.listed_after("chain", cursor, 7)
        seen.extend(item["data"]["uid"] for item in page)
        cursor = page[-1]["time"] if page else cursor
    assert sorted(seen) == sorted(f"{w}-{i}.dat" for w in range(THREADS) for i in range(EACH))
    assert len(seen) == len(set(seen))
    # each file's record carries the time of its listed announcement
    for item in listed:
        assert announced.get(str(tmp_path / item["data"]["uid"])).time == item["time"]


def test_announcing_after_every_listed_one_was_discarded(tmp_path):
    announced = AnnouncedFiles()
    first, second = tmp_path / "a.dat", tmp_path / "b.dat"
    first.write_bytes(b"a")
    announced.announce([(str(first), "a.dat")], "/t", "chain", message=("/t", "file", {"uid": "a.dat"}))
    first.unlink()
    announced.discard(str(first))  # the chain's listing is empty now
    second.write_bytes(b"b")
    announced.announce([(str(second), "b.dat")], "/t", "chain", message=("/t", "file", {"uid": "b.dat"}))
    assert [item["data"]["uid"] for item in announced.listed_after("chain", 0.0, 10)[0]] == ["b.dat"]
