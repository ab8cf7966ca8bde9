"""The default watcher: inotify on Linux (one instance for the process, see
:mod:`~trollmoves_core.watchers.inotify_hub`), watchdog for recursive watches and elsewhere."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections import deque

from watchdog.events import (
    DirDeletedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileMovedEvent,
    FileOpenedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer

from trollmoves_core.watchers import inotify_hub
from trollmoves_core.watchers.base import Watcher

_EVENTS = [FileClosedEvent, FileCreatedEvent, FileMovedEvent, FileOpenedEvent]

MOVED_IN_GRACE = 0.05
"""Seconds to wait, after a file appears, for the open event that says it is being written."""


class WatchdogWatcher(Watcher):
    """Event-driven watcher: reports a file on close-after-write, on a rename inside the
    watched tree, and when it appears complete (a hard link, a symlink, or a file moved in
    from an unwatched directory, which inotify reports as a bare creation). Deletions and
    renames away go to ``on_removed``, also of a directory (its files are not reported one by
    one when it is moved away).

    A non-recursive watch on Linux goes through the process's :mod:`inotify hub
    <trollmoves_core.watchers.inotify_hub>` (one kernel instance for all, which a server of
    hundreds of chains needs), any other through watchdog."""

    NAME = "watchdog"
    REPORTS_REMOVALS = True

    def start(self) -> None:
        self._hub_watch: inotify_hub.HubWatch | None = None
        if not self.recursive and sys.platform.startswith("linux"):
            try:
                self._hub_watch = inotify_hub.HubWatch([str(d) for d in self.directories], self.report,
                                                       self.removed)
                return
            except (OSError, AttributeError):  # no inotify instance to be had (or no libc symbol): watchdog
                self._hub_watch = None
        self._handler = _Handler(self)
        self._observer = Observer()
        for directory in self.directories:
            # Only the events we act on reach the kernel queue: without write/modify/access
            # events a burst of files is far from overflowing inotify's queue.
            events = _EVENTS if self.on_removed is None else [*_EVENTS, FileDeletedEvent, DirDeletedEvent]
            self._observer.schedule(self._handler, str(directory), recursive=self.recursive, event_filter=events)
        self._observer.daemon = True
        self._observer.start()

    def stop(self) -> None:
        """Also after a failed :meth:`start`: what it started is stopped."""
        if getattr(self, "_hub_watch", None) is not None:
            self._hub_watch.close()
            self._hub_watch = None
            return
        observer = getattr(self, "_observer", None)
        if observer is not None:
            observer.stop()
            if observer.is_alive():
                observer.join(5)
        handler = getattr(self, "_handler", None)
        if handler is not None:
            handler.close()


class _Handler(FileSystemEventHandler):
    """Turns watchdog events into reports.

    A creation is ambiguous: ``open(O_CREAT)`` also creates, but it is followed at once by
    an open event (the kernel queues both in the same syscall), while a file moved in from
    outside gets no open. Creations therefore wait ``MOVED_IN_GRACE`` for an open before
    they are reported.
    """

    def __init__(self, watcher: Watcher) -> None:
        self.watcher = watcher
        self._pending: dict[str, float] = {}
        self._order: deque[str] = deque()
        self._wakeup = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._report_settled, name="watchdog-created", daemon=True)
        self._thread.start()

    def on_any_event(self, event: FileSystemEvent) -> None:
        path = os.fsdecode(event.src_path)
        if event.is_directory:
            if isinstance(event, DirDeletedEvent):  # deleted, or moved away (watchdog's name for both)
                self.watcher.removed(path)
            return
        if isinstance(event, FileClosedEvent):
            self._forget(path)
            self.watcher.report(path)
        elif isinstance(event, FileMovedEvent):
            self.watcher.removed(path)
            self.watcher.report(os.fsdecode(event.dest_path))
        elif isinstance(event, FileDeletedEvent):
            self._forget(path)
            self.watcher.removed(path)
        elif isinstance(event, FileOpenedEvent):
            self._forget(path)
        elif isinstance(event, FileCreatedEvent):
            try:
                st = os.lstat(path)
            except OSError:
                return
            if st.st_nlink > 1 or os.path.islink(path):
                self.watcher.report(path)
            else:
                with self._wakeup:
                    self._pending[path] = time.monotonic() + MOVED_IN_GRACE
                    self._order.append(path)
                    if len(self._order) == 1:  # else the thread waits for an earlier deadline anyway
                        self._wakeup.notify()

    def _forget(self, path: str) -> None:
        if self._pending:
            with self._wakeup:
                self._pending.pop(path, None)

    def _report_settled(self) -> None:
        with self._wakeup:
            while not self._closed:
                if not self._order:
                    self._wakeup.wait()
                    continue
                path = self._order[0]
                deadline = self._pending.get(path)
                if deadline is None:
                    self._order.popleft()
                    continue
                delay = deadline - time.monotonic()
                if delay > 0:
                    self._wakeup.wait(delay)
                    continue
                self._order.popleft()
                del self._pending[path]
                self._wakeup.release()
                try:
                    self.watcher.report(path)
                finally:
                    self._wakeup.acquire()

    def close(self) -> None:
        with self._wakeup:
            self._closed = True
            self._wakeup.notify()
        self._thread.join(2)
