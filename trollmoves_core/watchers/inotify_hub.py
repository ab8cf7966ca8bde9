"""One inotify instance and one reader thread for every non-recursive watch of the process (Linux).

The kernel allows few inotify instances per user (``fs.inotify.max_user_instances``, 128 by
default, shared by all of that user's processes), and watchdog opens one per watched directory:
a server of 200 chains could not watch the later ones. The hub holds one instance with one
watch per directory; its thread blocks in ``poll`` (no wake-ups while idle) and queues each
event for the watchers of its directory. Each watcher handles its events on its own thread, in
order, so one chain's slow callback (a checksum of a big file) never delays another's events.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import select
import stat
import struct
import threading
from collections import deque
from collections.abc import Callable

LOG = logging.getLogger(__name__)

IN_CLOSE_WRITE = 0x00000008
IN_MOVED_FROM = 0x00000040
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_DELETE = 0x00000200
IN_Q_OVERFLOW = 0x00004000
IN_IGNORED = 0x00008000
IN_ONLYDIR = 0x01000000
IN_ISDIR = 0x40000000
MASK = IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_ONLYDIR
"""What every watch asks for: only the events watchers act on reach the kernel's queue."""

_EVENT = struct.Struct("iIII")  # wd, mask, cookie, len; then len bytes of NUL-padded name
_READ_SIZE = 64 * 1024

Handler = Callable[[int, str], None]
"""Receives the event mask and the full path (a str) of one event."""


class _Libc:
    def __init__(self) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        self.init1 = libc.inotify_init1
        self.add_watch = libc.inotify_add_watch
        self.add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
        self.rm_watch = libc.inotify_rm_watch


class InotifyHub:
    """The process's inotify instance: :meth:`watch` a directory for a handler, :meth:`unwatch` it."""

    def __init__(self) -> None:
        self._libc = _Libc()
        self._fd = self._libc.init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self._fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"inotify_init1: {os.strerror(err)}")
        self._lock = threading.Lock()
        self._handlers: dict[int, dict[int, Handler]] = {}  # wd -> token -> handler
        self._paths: dict[int, str] = {}
        self._next_token = 0
        self._thread = threading.Thread(target=self._run, name="inotify-hub", daemon=True)
        self._thread.start()

    def watch(self, directory: str, handler: Handler) -> tuple[int, int]:
        """Start passing the events of ``directory`` to ``handler``; returns the token to unwatch."""
        with self._lock:
            wd = self._libc.add_watch(self._fd, os.fsencode(directory), MASK)
            if wd < 0:
                err = ctypes.get_errno()
                raise OSError(err, f"cannot watch {directory}: {os.strerror(err)}")
            self._next_token += 1
            self._handlers.setdefault(wd, {})[self._next_token] = handler
            self._paths[wd] = directory
            return wd, self._next_token

    def unwatch(self, token: tuple[int, int]) -> None:
        """Stop passing events to the handler of ``token``; the watch goes with its last handler."""
        wd, key = token
        with self._lock:
            handlers = self._handlers.get(wd)
            if handlers is None or handlers.pop(key, None) is None:
                return
            if not handlers:
                del self._handlers[wd], self._paths[wd]
                self._libc.rm_watch(self._fd, wd)  # fails harmlessly when the kernel dropped it already

    def _run(self) -> None:
        poller = select.poll()
        poller.register(self._fd, select.POLLIN)
        while True:
            poller.poll()
            try:
                while data := os.read(self._fd, _READ_SIZE):
                    self._dispatch(data)
            except BlockingIOError:
                continue
            except OSError as err:  # cannot happen on a healthy instance; say so rather than spin
                if err.errno != errno.EINTR:
                    LOG.error("inotify hub stopped: %s", err)
                    return

    def _dispatch(self, data: bytes) -> None:
        offset = 0
        while offset < len(data):
            wd, mask, _cookie, length = _EVENT.unpack_from(data, offset)
            name = data[offset + _EVENT.size:offset + _EVENT.size + length].rstrip(b"\0")
            offset += _EVENT.size + length
            if mask & IN_Q_OVERFLOW:
                LOG.warning("inotify event queue overflowed: the chain checks' rescans find the files missed")
                continue
            with self._lock:
                handlers = list(self._handlers.get(wd, {}).values())
                directory = self._paths.get(wd)
                if mask & IN_IGNORED and wd in self._handlers:  # the directory is gone: its watch too
                    del self._handlers[wd], self._paths[wd]
            if directory is None or not name:
                continue
            path = os.path.join(directory, os.fsdecode(name))
            for handler in handlers:
                handler(mask, path)


_hub: InotifyHub | None = None
_hub_lock = threading.Lock()


def hub() -> InotifyHub:
    """The process's hub, created at the first call; OSError where inotify is unavailable."""
    global _hub
    with _hub_lock:
        if _hub is None:
            _hub = InotifyHub()
        return _hub


class HubWatch:
    """One watcher's directories on the hub, and the thread that handles their events in order.

    ``report`` gets each complete file (closed after writing, moved in, linked in), ``removed``
    each file deleted or moved away.
    """

    def __init__(self, directories: list[str], report: Callable[[str], None],
                 removed: Callable[[str], None] | None) -> None:
        self._report, self._removed = report, removed
        self._queue: deque[tuple[int, str]] = deque()
        self._wakeup = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="inotify-watch", daemon=True)
        self._tokens: list[tuple[int, int]] = []
        shared = hub()
        try:
            for directory in directories:
                self._tokens.append(shared.watch(directory, self._queued))
        except OSError:
            self.close()
            raise
        self._thread.start()

    def _queued(self, mask: int, path: str) -> None:
        with self._wakeup:
            self._queue.append((mask, path))
            self._wakeup.notify()

    def _run(self) -> None:
        while True:
            with self._wakeup:
                while not self._queue and not self._closed:
                    self._wakeup.wait()
                if self._closed:
                    return
                mask, path = self._queue.popleft()
            self._handle(mask, path)

    def _handle(self, mask: int, path: str) -> None:
        if mask & IN_ISDIR:
            return
        if mask & (IN_CLOSE_WRITE | IN_MOVED_TO):
            self._report(path)
        elif mask & (IN_DELETE | IN_MOVED_FROM):
            if self._removed is not None:
                self._removed(path)
        elif mask & IN_CREATE:
            # open(O_CREAT) is followed by a close-write; a hard link or a symlink is complete at once
            try:
                st = os.lstat(path)
            except OSError:
                return
            if st.st_nlink > 1 or stat.S_ISLNK(st.st_mode):
                self._report(path)

    def close(self) -> None:
        """Stop watching; events still queued are dropped (the file is found by a rescan)."""
        shared = hub()
        for token in self._tokens:
            shared.unwatch(token)
        self._tokens = []
        with self._wakeup:
            self._closed = True
            self._wakeup.notify()
        if self._thread.is_alive():
            self._thread.join(5)
