"""The watcher contract."""

from __future__ import annotations

import logging
import os
import stat
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import ClassVar

from trollmoves_core.recent import RecentKeys, key_of

LOG = logging.getLogger(__name__)

FileCallback = Callable[[str], None]
"""Receives the path of each complete new file, as a ``str``, never a ``Path`` (see the
str-path rule in :mod:`trollmoves_core.mover`)."""

REMEMBER_SECONDS = 600.0
"""How long a reported file is remembered, so that a repeated event for it is not reported again."""
REMEMBER_MAX = 262144
"""Most files remembered at once (the oldest are forgotten first): more than a big backlog at start
(100,000 files), whose files a rescan sees again once a push hard-links them (a new ctime).
About 40 bytes per file, held only while remembered."""


def file_version(ino: int, size: int, mtime_ns: int) -> int:
    """What tells a file from another one later under the same path: a 64-bit hash of its
    inode, size and mtime (ns)."""
    return key_of(f"{ino}:{size}:{mtime_ns}") >> 64


class Watcher(ABC):
    """Watch directories and call ``callback`` once for each complete new file.

    "Complete" means closed after writing, moved or linked into the directory. A file still
    being written is never reported, and the same file (path, inode, size, mtime) is reported
    only once within ``remember`` seconds (up to :data:`REMEMBER_MAX` files), even if it is
    closed again unchanged or :meth:`report` is called for it again (a rescan). A file deleted
    or moved away is forgotten at once when the watcher hears of it (:meth:`removed`), so what
    it remembers is about the files on disk. Hidden files (name starting with ``.``, as
    temporary uploads are named) are never reported. The callback runs on the watcher's
    thread: keep it short or hand the path to a queue.

    :param directories: directories to watch; they must exist.
    :param callback: called with each complete file's path (a str, see :data:`FileCallback`).
    :param recursive: also watch subdirectories.
    :param interval: seconds between scans, for watchers that poll.
    :param remember: seconds a reported file is remembered (repeated events for one file come
        within seconds; rescans within the rescan window).
    :param on_removed: called with the path of each file deleted or moved away, for watchers
        that can tell (see :attr:`REPORTS_REMOVALS`); a role uses it to forget the file at once.
    """

    REPORTS_REMOVALS: ClassVar[bool] = False
    """Whether this watcher calls ``on_removed``."""

    NAME: ClassVar[str]
    """The value configs use to choose this watcher."""

    def __init__(self, directories: Iterable[str | os.PathLike[str]], callback: FileCallback, *,
                 recursive: bool = False, interval: float = 1.0, remember: float = REMEMBER_SECONDS,
                 on_removed: FileCallback | None = None) -> None:
        self.directories = [Path(d) for d in directories]
        missing = [str(d) for d in self.directories if not d.is_dir()]
        if missing:
            raise FileNotFoundError(f"cannot watch missing directory: {', '.join(missing)}")
        self.callback = callback
        self.on_removed = on_removed
        self.recursive = recursive
        self.interval = interval
        self._seen = RecentKeys(remember, REMEMBER_MAX, values=True)
        """Reported files: the key of the path, with the file's version."""
        self._seen_lock = threading.Lock()

    @abstractmethod
    def start(self) -> None:
        """Start watching in the background."""

    @abstractmethod
    def stop(self) -> None:
        """Stop watching and wait for the background thread."""

    def __enter__(self) -> Watcher:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def report(self, path: str | os.PathLike[str]) -> None:
        """Pass ``path`` (as a str) to the callback unless it is hidden, gone, not a regular
        file, or already reported."""
        path = os.fspath(path)
        if os.path.basename(path).startswith("."):
            return
        try:
            st = os.stat(path)
        except OSError:
            return  # vanished before we looked: nothing to announce
        if not stat.S_ISREG(st.st_mode):
            return
        key, version = key_of(path), file_version(st.st_ino, st.st_size, st.st_mtime_ns)
        with self._seen_lock:
            if self._seen.get(key) == version:
                return
            self._seen.discard(key)  # another file under this path: remembered from now on
            self._seen.add(key, value=version)
        try:
            self.callback(path)
        except Exception:  # one bad file must not stop the watcher
            LOG.exception("Handling new file %s failed", path)

    def removed(self, path: str | os.PathLike[str]) -> None:
        """Forget ``path`` (as a str), a file deleted or moved away, and pass it to
        ``on_removed`` if set."""
        path = os.fspath(path)
        with self._seen_lock:
            self._seen.discard(key_of(path))
        if self.on_removed is None:
            return
        try:
            self.on_removed(os.fspath(path))
        except Exception:  # one bad file must not stop the watcher
            LOG.exception("Handling removed file %s failed", path)
