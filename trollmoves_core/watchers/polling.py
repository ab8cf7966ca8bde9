"""A polling watcher, for file systems without change events (NFS, CIFS)."""

from __future__ import annotations

import logging
import os
import threading

from trollmoves_core.watchers.base import Watcher

LOG = logging.getLogger(__name__)


class PollingWatcher(Watcher):
    """Scan every ``interval`` seconds; report a file once its size and mtime held still
    for one full interval. Files present at start are taken as known (the backlog is the
    role's business). A file gone from one scan to the next goes to ``on_removed``."""

    NAME = "polling"
    REPORTS_REMOVALS = True

    def start(self) -> None:
        self._halt = threading.Event()
        self._previous = self._scan()
        self._thread = threading.Thread(target=self._loop, name="polling-watcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if hasattr(self, "_halt"):
            self._halt.set()
            self._thread.join(5)

    def _loop(self) -> None:
        known = set(self._previous.items())
        while not self._halt.wait(self.interval):
            current = self._scan()
            for path, signature in current.items():
                if self._previous.get(path) == signature and (path, signature) not in known:
                    known.add((path, signature))
                    self.report(path)
            known = {item for item in known if current.get(item[0]) == item[1]}
            for path in self._previous.keys() - current.keys():
                self.removed(path)
            self._previous = current

    def _scan(self) -> dict[str, tuple[int, int, int]]:
        found: dict[str, tuple[int, int, int]] = {}
        for directory in self.directories:
            for root, dirs, files in os.walk(directory, onerror=_log_walk_error):
                for name in files:
                    path = os.path.join(root, name)  # a str: see FileCallback
                    try:
                        st = os.stat(path)
                    except OSError:
                        continue
                    found[path] = (st.st_ino, st.st_size, st.st_mtime_ns)
                if not self.recursive:
                    dirs.clear()
        return found


def _log_walk_error(err: OSError) -> None:
    LOG.warning("Cannot scan %s: %s", err.filename, err.strerror)
