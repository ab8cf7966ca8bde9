"""The default watcher, on watchdog (inotify on Linux)."""

from __future__ import annotations

import os

from watchdog.events import (
    FileClosedEvent,
    FileCreatedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer

from trollmoves_core.watchers.base import Watcher


class WatchdogWatcher(Watcher):
    """Event-driven watcher: reports a file on close-after-write, move-in or hard link."""

    NAME = "watchdog"

    def start(self) -> None:
        handler = _Handler(self)
        self._observer = Observer()
        for directory in self.directories:
            self._observer.schedule(handler, str(directory), recursive=self.recursive)
        self._observer.daemon = True
        self._observer.start()

    def stop(self) -> None:
        observer = getattr(self, "_observer", None)
        if observer is not None:
            observer.stop()
            observer.join(5)


class _Handler(FileSystemEventHandler):
    def __init__(self, watcher: Watcher) -> None:
        self.watcher = watcher

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.is_directory:
            return
        if isinstance(event, FileClosedEvent):
            self.watcher.report(os.fsdecode(event.src_path))
        elif isinstance(event, FileMovedEvent):
            self.watcher.report(os.fsdecode(event.dest_path))
        elif isinstance(event, FileCreatedEvent):
            # A hard link or symlink appears complete, with no close event to follow.
            path = os.fsdecode(event.src_path)
            try:
                st = os.lstat(path)
            except OSError:
                return
            if st.st_nlink > 1 or os.path.islink(path):
                self.watcher.report(path)
