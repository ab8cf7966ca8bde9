"""A watcher on pyinotify, for sites that standardised on it (Python < 3.12 only)."""

from __future__ import annotations

import sys

from trollmoves_core.watchers.base import Watcher


class InotifyWatcher(Watcher):
    """Reports files on IN_CLOSE_WRITE and IN_MOVED_TO through pyinotify, removals on
    IN_DELETE and IN_MOVED_FROM.

    pyinotify uses the ``asyncore`` module that Python 3.12 removed; there, starting this
    watcher fails with a message saying so. The default ``watchdog`` watcher uses inotify too.
    """

    NAME = "inotify"
    REPORTS_REMOVALS = True

    def start(self) -> None:
        try:
            import pyinotify
        except ImportError as err:
            if sys.version_info >= (3, 12):
                reason = (f"pyinotify cannot be imported on Python {sys.version_info.major}."
                          f"{sys.version_info.minor} (it needs asyncore, removed in 3.12)")
            else:
                reason = f"pyinotify is not installed ({err}); pip install 'trollmoves-core[inotify]'"
            raise RuntimeError(f"watcher 'inotify' unavailable: {reason}; "
                               "use watcher 'watchdog' (also inotify-based) or 'polling'") from err
        watcher = self

        class Handler(pyinotify.ProcessEvent):
            def process_IN_CLOSE_WRITE(self, event: pyinotify.Event) -> None:
                watcher.report(event.pathname)

            def process_IN_MOVED_TO(self, event: pyinotify.Event) -> None:
                watcher.report(event.pathname)

            def process_IN_DELETE(self, event: pyinotify.Event) -> None:
                watcher.removed(event.pathname)

            def process_IN_MOVED_FROM(self, event: pyinotify.Event) -> None:
                watcher.removed(event.pathname)

        self._manager = pyinotify.WatchManager()
        mask = pyinotify.IN_CLOSE_WRITE | pyinotify.IN_MOVED_TO
        if self.on_removed is not None:
            mask |= pyinotify.IN_DELETE | pyinotify.IN_MOVED_FROM
        for directory in self.directories:
            self._manager.add_watch(str(directory), mask, rec=self.recursive, auto_add=self.recursive)
        self._notifier = pyinotify.ThreadedNotifier(self._manager, Handler())
        self._notifier.daemon = True
        self._notifier.start()

    def stop(self) -> None:
        if hasattr(self, "_notifier"):
            self._notifier.stop()
