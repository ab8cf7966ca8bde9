"""Noticing that a configuration file changed on disk."""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from trollmoves_core.plugins import PluginHost

LOG = logging.getLogger(__name__)

Signature = tuple[int, int, int] | None


def signature(path: Path) -> Signature:
    """(inode, size, mtime) of ``path`` following symlinks, None when it cannot be read."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


class ConfigFileMonitor:
    """Tell whether ``path`` changed since :meth:`mark_loaded` was last called.

    A directory watcher from the plugin registry (watchdog) reports a finished write or a
    rename onto the file at once. As a safety net for set-ups the watcher cannot see (a
    symlink swapped elsewhere, network file systems), :meth:`changed` also compares the
    file's signature, but only once it has stayed the same over two calls, so a file caught
    half-written is not read.
    """

    def __init__(self, path: str | os.PathLike[str], host: PluginHost,
                 watcher_name: str = "watchdog") -> None:
        self.path = Path(path).absolute()
        self._loaded: Signature = None
        self._candidate: Signature = None
        self._reported = threading.Event()
        self._watcher = None
        try:
            cls = host.watchers.get(watcher_name)
            self._watcher = cls([self.path.parent], self._on_file)
            self._watcher.start()
        except Exception as err:  # still covered by the signature checks
            LOG.warning("Cannot watch %s (%s); checking it for changes every few seconds instead",
                        self.path.parent, err)
            self._watcher = None

    def _on_file(self, path: Path) -> None:
        if Path(path).absolute() == self.path:
            self._reported.set()

    def mark_loaded(self) -> None:
        """Remember the file as it is now (just read)."""
        self._loaded = signature(self.path)
        self._candidate = self._loaded

    def changed(self) -> bool:
        """True when the file should be read again."""
        current = signature(self.path)
        if self._reported.is_set():
            self._reported.clear()
            if current != self._loaded:
                return True
        if current is None or current == self._loaded:
            self._candidate = current
            return False
        stable = current == self._candidate
        self._candidate = current
        return stable

    def stop(self) -> None:
        if self._watcher is not None:
            self._watcher.stop()
