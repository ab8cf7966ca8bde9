"""The watcher contract."""

from __future__ import annotations

import logging
import os
import threading
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import ClassVar

LOG = logging.getLogger(__name__)

FileCallback = Callable[[Path], None]
"""Receives the path of each complete new file."""

_REMEMBERED = 65536


class Watcher(ABC):
    """Watch directories and call ``callback`` once for each complete new file.

    "Complete" means closed after writing, moved or linked into the directory. A file still
    being written is never reported, and the same file (path, inode, size, mtime) is reported
    only once even if it is closed again unchanged. Hidden files (name starting with ``.``,
    as temporary uploads are named) are never reported. The callback runs on the watcher's
    thread: keep it short or hand the path to a queue.

    :param directories: directories to watch; they must exist.
    :param callback: called with each complete file's path.
    :param recursive: also watch subdirectories.
    :param interval: seconds between scans, for watchers that poll.
    """

    NAME: ClassVar[str]
    """The value configs use to choose this watcher."""

    def __init__(self, directories: Iterable[str | os.PathLike[str]], callback: FileCallback, *,
                 recursive: bool = False, interval: float = 1.0) -> None:
        self.directories = [Path(d) for d in directories]
        missing = [str(d) for d in self.directories if not d.is_dir()]
        if missing:
            raise FileNotFoundError(f"cannot watch missing directory: {', '.join(missing)}")
        self.callback = callback
        self.recursive = recursive
        self.interval = interval
        self._seen: OrderedDict[tuple[str, int, int, int], None] = OrderedDict()
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
        """Pass ``path`` to the callback unless it is hidden, gone, or already reported."""
        path = Path(path)
        if path.name.startswith("."):
            return
        try:
            st = path.stat()
        except OSError:
            return  # vanished before we looked: nothing to announce
        if not path.is_file():
            return
        key = (str(path), st.st_ino, st.st_size, st.st_mtime_ns)
        with self._seen_lock:
            if key in self._seen:
                return
            self._seen[key] = None
            if len(self._seen) > _REMEMBERED:
                self._seen.popitem(last=False)
        try:
            self.callback(path)
        except Exception:  # one bad file must not stop the watcher
            LOG.exception("Handling new file %s failed", path)
