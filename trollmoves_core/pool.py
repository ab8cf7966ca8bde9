"""A pool of reusable connections keyed by endpoint, closed after an idle timeout."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

LOG = logging.getLogger(__name__)

C = TypeVar("C")


class ConnectionPool(Generic[C]):
    """Hand out connections per key; keep idle ones for ``idle_timeout`` seconds.

    Several threads may use the same key at once: each gets its own connection. A connection
    whose block raised is closed, not returned, because its state is unknown.

    :param connect: opens a new connection for a key.
    :param close: closes a connection; errors it raises are logged and ignored.
    :param is_alive: cheap liveness probe run before an idle connection is reused.
    :param idle_timeout: seconds an unused connection stays open (upstream's
        ``connection_uptime``).
    :param tidy: run once on a connection idle for ``tidy_after`` seconds (when that is shorter
        than ``idle_timeout``), out of the pool meanwhile: to release what it holds for a next use.
    """

    def __init__(self, connect: Callable[[Hashable], C], close: Callable[[C], None],
                 is_alive: Callable[[C], bool] | None = None, idle_timeout: float = 30.0, *,
                 tidy: Callable[[C], None] | None = None, tidy_after: float = 0.0) -> None:
        self._connect, self._close, self._is_alive = connect, close, is_alive
        self.idle_timeout = idle_timeout
        self._tidy = tidy if tidy is not None and 0 < tidy_after < idle_timeout else None
        self._tidy_after = tidy_after
        self._untidy: set[int] = set()
        """``id`` of the idle connections not tidied yet."""
        self._idle: dict[Hashable, list[tuple[float, C]]] = {}
        self._lock = threading.Lock()
        self._wakeup = threading.Condition(self._lock)
        self._reaper: threading.Thread | None = None
        self._closed = False
        self.opened = 0
        """How many connections were opened over the pool's life (for tests and metrics)."""

    @contextmanager
    def connection(self, key: Hashable) -> Iterator[C]:
        """Yield a live connection for ``key`` and take it back afterwards."""
        conn = self._take(key)
        try:
            yield conn
        except BaseException:
            self._discard(conn)
            raise
        self._give_back(key, conn)

    def discard_idle(self, key: Hashable) -> None:
        """Close every idle connection for ``key`` (after a server restart, say)."""
        with self._lock:
            stale = self._idle.pop(key, [])
        for _, conn in stale:
            self._discard(conn)

    def close_all(self) -> None:
        """Close every idle connection and stop the reaper."""
        with self._lock:
            self._closed = True
            stale = [conn for conns in self._idle.values() for _, conn in conns]
            self._idle.clear()
            self._wakeup.notify_all()
        for conn in stale:
            self._discard(conn)

    def _take(self, key: Hashable) -> C:
        while True:
            with self._lock:
                conns = self._idle.get(key)
                if not conns:
                    break
                _, conn = conns.pop()
            if self._is_alive is None or self._probe(conn):
                return conn
            self._discard(conn)
        conn = self._connect(key)
        with self._lock:
            self.opened += 1
        return conn

    def _probe(self, conn: C) -> bool:
        try:
            return bool(self._is_alive(conn))  # type: ignore[misc]
        except Exception:  # a failing probe simply means "dead"
            return False

    def _give_back(self, key: Hashable, conn: C) -> None:
        with self._lock:
            if self._closed or self.idle_timeout <= 0:
                closing = True
            else:
                closing = False
                self._idle.setdefault(key, []).append((time.monotonic(), conn))
                if self._tidy is not None:
                    self._untidy.add(id(conn))
                self._ensure_reaper()
        if closing:
            self._discard(conn)

    def _discard(self, conn: C) -> None:
        try:
            self._close(conn)
        except Exception as err:  # closing a broken connection often fails; nothing to do about it
            LOG.debug("Ignoring error while closing a connection: %s", err)

    def _ensure_reaper(self) -> None:
        if self._reaper is None or not self._reaper.is_alive():
            self._reaper = threading.Thread(target=self._reap, name="connection-reaper", daemon=True)
            self._reaper.start()
        self._wakeup.notify_all()

    def _reap(self) -> None:
        with self._lock:
            while not self._closed and self._idle:
                now = time.monotonic()
                expired = []
                for key, conns in list(self._idle.items()):
                    keep = [(t, c) for t, c in conns if now - t < self.idle_timeout]
                    expired += [c for t, c in conns if now - t >= self.idle_timeout]
                    if keep:
                        self._idle[key] = keep
                    else:
                        del self._idle[key]
                self._untidy.difference_update(id(c) for c in expired)
                if expired:
                    self._lock.release()
                    try:
                        for conn in expired:
                            self._discard(conn)
                    finally:
                        self._lock.acquire()
                    continue
                if self._tidy_due(now):
                    continue
                if not self._idle:  # only emptied lists were left (``_take`` popped their last connection)
                    break
                due = [t + self.idle_timeout for conns in self._idle.values() for t, _ in conns]
                due += [t + self._tidy_after for conns in self._idle.values() for t, c in conns
                        if id(c) in self._untidy]
                self._wakeup.wait(max(0.01, min(due) - now))
            self._reaper = None

    def _tidy_due(self, now: float) -> bool:
        """Tidy the idle connections due (called and returning with the lock held); whether any were."""
        due = [(key, t, c) for key, conns in self._idle.items() for t, c in conns
               if id(c) in self._untidy and now - t >= self._tidy_after]
        if not due or self._tidy is None:
            return False
        for key, t, conn in due:
            self._untidy.discard(id(conn))
            self._idle[key].remove((t, conn))
        self._idle = {key: conns for key, conns in self._idle.items() if conns}
        tidied = []
        self._lock.release()
        try:
            for key, t, conn in due:
                try:
                    self._tidy(conn)
                    tidied.append((key, t, conn))
                except Exception as err:  # a connection that cannot be tidied is closed
                    LOG.debug("Closing a connection that could not be tidied: %s", err)
                    self._discard(conn)
        finally:
            self._lock.acquire()
        if self._closed:  # close_all ran meanwhile: these were out of its reach
            self._lock.release()
            try:
                for _, _, conn in tidied:
                    self._discard(conn)
            finally:
                self._lock.acquire()
        else:
            for key, t, conn in tidied:
                self._idle.setdefault(key, []).append((t, conn))
        return True
