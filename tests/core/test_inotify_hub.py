"""Non-recursive watches share the process's one inotify instance (the kernel allows 128 per user)."""

from __future__ import annotations

import os
import queue
import sys
from pathlib import Path

import pytest

from trollmoves_core.plugins import load_plugins

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify is Linux's")


def inotify_instances() -> int:
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{fd}") == "anon_inode:inotify"
        except OSError:
            continue
    return count


def test_two_hundred_watchers_share_one_instance_and_each_reports_its_own_files(tmp_path: Path) -> None:
    watcher_class = load_plugins().watchers.classes["watchdog"]
    before = inotify_instances()
    found: queue.Queue[str] = queue.Queue()
    watchers = []
    try:
        for k in range(200):
            directory = tmp_path / f"d{k}"
            directory.mkdir()
            watcher = watcher_class([directory], found.put, on_removed=lambda path: None)
            watcher.start()
            watchers.append(watcher)
        assert inotify_instances() - before <= 1
        for k in (0, 199):
            temp = tmp_path / f"d{k}" / ".f.part"
            temp.write_bytes(b"x")
            temp.rename(tmp_path / f"d{k}" / "f.dat")
        assert {found.get(timeout=10), found.get(timeout=10)} == {str(tmp_path / d / "f.dat") for d in ("d0", "d199")}
    finally:
        for watcher in watchers:
            watcher.stop()


def test_two_watchers_of_one_directory_both_hear_of_a_file_and_one_stopping_leaves_the_other(tmp_path: Path) -> None:
    watcher_class = load_plugins().watchers.classes["watchdog"]
    first, second = queue.Queue(), queue.Queue()
    one, other = watcher_class([tmp_path], first.put), watcher_class([tmp_path], second.put)
    one.start()
    other.start()
    try:
        (tmp_path / "a.dat").write_bytes(b"a")
        assert first.get(timeout=10) == second.get(timeout=10) == str(tmp_path / "a.dat")
        one.stop()
        (tmp_path / "b.dat").write_bytes(b"b")
        assert second.get(timeout=10) == str(tmp_path / "b.dat")
        assert first.empty()
    finally:
        other.stop()
