"""Watchers report each file once, when complete, never while it is being written."""

from __future__ import annotations

import os
import queue
import sys
import time
from pathlib import Path

import pytest

from trollmoves_core.plugins import load_plugins
from trollmoves_core.watchers.base import Watcher, file_version

WATCHERS = load_plugins().watchers.classes


def start(name: str, directory: Path, interval: float = 0.05, **options) -> tuple[Watcher, queue.Queue[str]]:
    found: queue.Queue[str] = queue.Queue()
    watcher = WATCHERS[name]([directory], found.put, interval=interval, **options)
    watcher.start()
    return watcher, found


def drain(found: queue.Queue[str], wait: float) -> list[str]:
    items = []
    deadline = time.monotonic() + wait
    while True:
        try:
            items.append(found.get(timeout=max(0.0, deadline - time.monotonic())))
        except queue.Empty:
            assert all(isinstance(item, str) for item in items), "callbacks get str paths"
            return items


@pytest.mark.parametrize("name", ["watchdog", "polling"])
def test_slowly_written_file_is_reported_once_after_close(name: str, tmp_path: Path) -> None:
    # Polling can only tell "complete" by a size held still for a whole interval, so its
    # interval must exceed the writer's pauses (0.1 s here), as on a real NFS mount.
    watcher, found = start(name, tmp_path, interval=0.3)
    try:
        path = tmp_path / "slow.dat"
        with open(path, "wb") as handle:
            for _ in range(5):
                handle.write(b"x" * 1000)
                handle.flush()
                time.sleep(0.1)
                assert found.empty(), "reported while still being written"
        reported = drain(found, 1.0)
    finally:
        watcher.stop()
    assert reported == [str(path)]
    assert path.stat().st_size == 5000


@pytest.mark.parametrize("name", ["watchdog", "polling"])
def test_file_moved_in_is_reported_and_hidden_temp_is_not(name: str, tmp_path: Path) -> None:
    watched = tmp_path / "watched"
    watched.mkdir()
    watcher, found = start(name, watched)
    try:
        temp = watched / ".incoming.part"
        temp.write_bytes(b"data")
        os.replace(temp, watched / "incoming.dat")
        outside = tmp_path / "outside.dat"
        outside.write_bytes(b"data")
        os.replace(outside, watched / "moved.dat")
        reported = drain(found, 1.0)
    finally:
        watcher.stop()
    assert sorted(os.path.basename(p) for p in reported) == ["incoming.dat", "moved.dat"]


def test_hard_link_into_directory_is_reported(tmp_path: Path) -> None:
    watched = tmp_path / "watched"
    watched.mkdir()
    source = tmp_path / "src.dat"
    source.write_bytes(b"data")
    watcher, found = start("watchdog", watched)
    try:
        os.link(source, watched / "linked.dat")
        reported = drain(found, 0.5)
    finally:
        watcher.stop()
    assert [os.path.basename(p) for p in reported] == ["linked.dat"]


def test_recursive_watch_sees_subdirectories(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    watcher, found = start("watchdog", tmp_path, recursive=True)
    try:
        (tmp_path / "a" / "b" / "deep.dat").write_bytes(b"x")
        reported = drain(found, 0.5)
    finally:
        watcher.stop()
    assert reported == [str(tmp_path / "a" / "b" / "deep.dat")]


def test_polling_ignores_files_present_at_start(tmp_path: Path) -> None:
    (tmp_path / "old.dat").write_bytes(b"x")
    watcher, found = start("polling", tmp_path)
    try:
        (tmp_path / "new.dat").write_bytes(b"y")
        reported = drain(found, 0.5)
    finally:
        watcher.stop()
    assert [os.path.basename(p) for p in reported] == ["new.dat"]


def test_missing_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"cannot watch missing directory: .*nowhere"):
        WATCHERS["watchdog"]([tmp_path / "nowhere"], print)


@pytest.mark.skipif(sys.version_info < (3, 12), reason="pyinotify may import before 3.12")
def test_inotify_watcher_explains_why_it_cannot_run_on_312(tmp_path: Path) -> None:
    watcher = WATCHERS["inotify"]([tmp_path], print)
    with pytest.raises(RuntimeError, match=r"watcher 'inotify' unavailable: pyinotify cannot be imported on "
                                           r"Python 3\.\d+ .*asyncore.*use watcher 'watchdog'"):
        watcher.start()


def test_callback_error_does_not_stop_the_watcher(tmp_path: Path) -> None:
    seen: list[str] = []

    def callback(path: str) -> None:
        seen.append(path)
        if os.path.basename(path) == "bad.dat":
            raise RuntimeError("boom")

    watcher = WATCHERS["watchdog"]([tmp_path], callback)
    watcher.start()
    try:
        (tmp_path / "bad.dat").write_bytes(b"x")
        time.sleep(0.2)
        (tmp_path / "good.dat").write_bytes(b"x")
        deadline = time.monotonic() + 2
        while len(seen) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        watcher.stop()
    assert [os.path.basename(p) for p in seen] == ["bad.dat", "good.dat"]


def test_report_dedups_the_same_file_and_reports_it_again_once_changed(tmp_path: Path) -> None:
    seen: list[str] = []
    watcher = WATCHERS["polling"]([tmp_path], seen.append)  # never started: report() alone
    path = tmp_path / "a.dat"
    path.write_bytes(b"one")
    watcher.report(path)
    watcher.report(path)  # a repeated event, or a rescan
    os.utime(path, ns=(0, path.stat().st_mtime_ns + 1_000_000))  # the same file modified in place
    watcher.report(path)
    assert seen == [str(path), str(path)]


def test_file_versions_differ_by_every_part_of_the_identity() -> None:
    base = file_version(10, 100, 5)
    others = [file_version(11, 100, 5), file_version(10, 101, 5), file_version(10, 100, 6)]
    assert base not in others and len(set(others)) == 3
    assert 0 <= base < 2**64 and file_version(10, 100, 5) == base


def test_a_removed_file_is_forgotten_so_the_watcher_holds_about_the_files_on_disk(tmp_path: Path) -> None:
    seen: list[str] = []
    watcher = WATCHERS["polling"]([tmp_path], seen.append)
    paths = [os.path.join(str(tmp_path), f"f{n:04d}.dat") for n in range(3000)]
    for path in paths:
        with open(path, "wb") as handle:
            handle.write(b"x")
        watcher.report(path)
    grown = len(watcher._seen._hi)
    for path in paths[:-1]:
        os.unlink(path)
        watcher.removed(path)
    assert len(watcher._seen) == 1 and len(watcher._seen._hi) < grown // 2
    watcher.report(paths[-1])  # still remembered
    with open(paths[0], "wb") as handle:  # a new file under a forgotten path is new
        handle.write(b"y")
    watcher.report(paths[0])
    assert len(seen) == 3001 and seen[-1] == paths[0]


def test_reported_names_are_not_interned(tmp_path: Path) -> None:
    # Python 3.12 never frees interned strings, and pathlib interns every name it parses: a watcher
    # that made a Path per file would keep every file name for the life of the process.
    seen: list[str] = []
    watcher = WATCHERS["polling"]([tmp_path], seen.append)
    name = "".join(["unique-", str(os.getpid()), "-", str(time.monotonic_ns()), ".dat"])
    path = os.path.join(str(tmp_path), name)  # no Path here either
    with open(path, "wb") as handle:
        handle.write(b"x")
    watcher._scan()
    watcher.report(path)
    assert len(seen) == 1
    fresh = "".join([name[:7], name[7:]])
    assert sys.intern(fresh) is fresh, "the file name was interned"


@pytest.mark.parametrize("name", ["watchdog", "polling"])
def test_deleted_and_moved_away_files_go_to_on_removed(name: str, tmp_path: Path) -> None:
    watched, elsewhere = tmp_path / "watched", tmp_path / "elsewhere"
    watched.mkdir()
    elsewhere.mkdir()
    removed: queue.Queue[str] = queue.Queue()
    watcher, found = start(name, watched, interval=0.1, on_removed=removed.put)
    assert watcher.REPORTS_REMOVALS
    try:
        doomed, leaving, staying = watched / "doomed.dat", watched / "leaving.dat", watched / "staying.dat"
        for path in (doomed, leaving, staying):
            path.write_bytes(b"data")
        assert sorted(drain(found, 1.0)) == sorted(str(p) for p in (doomed, leaving, staying))
        doomed.unlink()
        leaving.rename(elsewhere / "left.dat")
        gone = drain(removed, 1.0)
    finally:
        watcher.stop()
    assert sorted(gone) == sorted([str(doomed), str(leaving)])


def test_a_directory_moved_away_goes_to_on_removed(tmp_path: Path) -> None:
    """watchdog reports one event for it, none for the files it holds."""
    watched = tmp_path / "watched"
    (watched / "sub").mkdir(parents=True)
    removed: queue.Queue[str] = queue.Queue()
    watcher, found = start("watchdog", watched, recursive=True, on_removed=removed.put)
    try:
        (watched / "sub" / "a.dat").write_bytes(b"data")
        assert drain(found, 0.5) == [str(watched / "sub" / "a.dat")]
        (watched / "sub").rename(tmp_path / "sub")
        gone = drain(removed, 2.0)  # watchdog waits 0.5 s for the other half of a rename
    finally:
        watcher.stop()
    assert gone == [str(watched / "sub")]


def test_without_on_removed_a_deletion_is_not_an_error(tmp_path: Path) -> None:
    watcher, found = start("watchdog", tmp_path)
    try:
        path = tmp_path / "a.dat"
        path.write_bytes(b"x")
        assert drain(found, 0.5) == [str(path)]
        path.unlink()
        watcher.removed(str(path))  # nobody asked: nothing happens
    finally:
        watcher.stop()
