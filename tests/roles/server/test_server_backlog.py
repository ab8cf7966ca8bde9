"""A big backlog at start (announced while the directory is read, each file once, paced by the
push requests) and many chains in one server."""

from __future__ import annotations

import os
import threading
from collections import Counter

from support.bus import free_port, wait_until
from support.files import put_file
from support.server import TOPIC, chain, server_section
from trollmoves_roles.server import announcer

BACKLOG = 2000


def _write(directory, count: int) -> list[str]:
    names = [f"NOAA-19_2024{minute // 1440 + 101:04d}{minute % 1440 // 60:02d}{minute % 60:02d}.dat"
             for minute in range(count)]
    for name in names:
        (directory / name).write_bytes(b"backlog\n")
    return names


def _file_uids(running) -> Counter:
    return Counter(m.data["uid"] for m in list(running.recorder.messages)
                   if m.subject.startswith("/test") and m.type == "file")


def test_a_backlog_is_announced_while_the_directory_is_read_each_file_once(serve, dirs, monkeypatch):
    origin, _ = dirs
    names = _write(origin, BACKLOG)
    real = announcer.present_files
    first_seen_during_scan: list[bool] = []
    holder: dict = {}

    def slow_listing(pattern):
        """The real listing, which after its first path waits until that one was announced."""
        listing = real(pattern)
        first = next(listing)
        yield first
        uid = os.path.basename(first)
        first_seen_during_scan.append(wait_until(lambda: "running" in holder and uid in _file_uids(holder["running"]),
                                                 timeout=10))
        yield from listing

    monkeypatch.setattr(announcer, "present_files", slow_listing)
    holder["running"] = running = serve(chain(origin, free_port()), backlog=True)
    assert wait_until(lambda: len(_file_uids(running)) >= BACKLOG, timeout=60)
    assert first_seen_during_scan == [True]  # announced before the listing went on
    put_file(origin / "NOAA-20_202401020310.dat")  # after the backlog: a marker for late repeats
    running.announced("NOAA-20_202401020310.dat")
    counts = _file_uids(running)
    assert set(counts) == {*names, "NOAA-20_202401020310.dat"}
    assert max(counts.values()) == 1


def test_a_rescan_leaves_files_older_than_the_watcher_to_the_backlog(serve, dirs, monkeypatch):
    origin, _ = dirs
    monkeypatch.setattr(announcer, "WATCH_START_MARGIN", 0.0)  # these files are older than the watcher, barely
    before = _write(origin, 3)
    running = serve(chain(origin, free_port()), backlog=False, loop=False)
    running.server.check_chains()  # rescans the files changed in the last minute: not these
    put_file(origin / "NOAA-20_202401020310.dat")
    running.announced("NOAA-20_202401020310.dat")
    running.server.check_chains()
    assert not set(before) & set(_file_uids(running))
    assert _file_uids(running) == Counter({"NOAA-20_202401020310.dat": 1})


def test_a_backlog_waits_for_push_requests_once_far_ahead(serve, dirs, monkeypatch):
    origin, _ = dirs
    monkeypatch.setattr(announcer, "BACKLOG_AHEAD", 5)
    monkeypatch.setattr(announcer, "BACKLOG_PATIENCE", 3600.0)  # no push request comes: it waits
    _write(origin, 20)
    running = serve(chain(origin, free_port()), backlog=True)
    assert wait_until(lambda: len(_file_uids(running)) >= 5, timeout=10)
    assert not wait_until(lambda: len(_file_uids(running)) > 5, timeout=0.5)
    running.server.chains["chain"].requests.pushes_requested += 15  # as if clients asked: the rest goes out
    assert wait_until(lambda: len(_file_uids(running)) == 20, timeout=10)


def test_a_stopped_server_stops_its_backlog(serve, dirs, monkeypatch):
    origin, _ = dirs
    monkeypatch.setattr(announcer, "BACKLOG_AHEAD", 5)
    monkeypatch.setattr(announcer, "BACKLOG_PATIENCE", 3600.0)
    _write(origin, 20)
    running = serve(chain(origin, free_port()), backlog=True)
    assert wait_until(lambda: len(_file_uids(running)) >= 5, timeout=10)
    stopper = threading.Thread(target=running.server.chains["chain"].source.stop)
    stopper.start()
    stopper.join(10)
    assert not stopper.is_alive()
    assert not [t for t in threading.enumerate() if t.name == "backlog-chain"]


def test_two_hundred_chains_start_and_each_announces(serve, tmp_path):
    sections = {}
    for k in range(200):
        directory = tmp_path / f"in{k}"
        directory.mkdir()
        sections[f"c{k}"] = server_section(directory, free_port(), topic=f"{TOPIC}/c{k}")
    running = serve(sections)
    assert all(c.source.watching for c in running.server.chains.values())
    for k in range(200):
        put_file(tmp_path / f"in{k}" / f"f{k}.dat")
    assert wait_until(lambda: len(_file_uids(running)) == 200, timeout=60)
    for k in (0, 199):
        assert running.announced(f"f{k}.dat").subject == f"{TOPIC}/c{k}"
