"""A small single-threaded event loop over zmq sockets and timers.

Each client chain runs one loop: its SUB and REQ sockets, its timers and its state all live in
that thread, so the chain needs no locks. Other threads hand work in with
:meth:`EventLoop.call_soon_threadsafe`. The loop sleeps in ``zmq.Poller.poll`` until a socket is
readable, the next timer is due or another thread wakes it; it never polls with sleeps.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import zmq

LOG = logging.getLogger(__name__)


_NOTHING: tuple[Any, ...] = ()
COMPACT_MIN = 16
"""Timers in the queue before cancelled ones are swept out early (see :meth:`EventLoop._cancelled_one`)."""


def _never(*args: Any) -> None:
    """The callback of a cancelled timer."""


class Timer:
    """A scheduled call; :meth:`cancel` prevents it from running.

    Cancelling drops the references to the callback and its arguments at once: a request's
    timeout timer is cancelled when the reply comes, and must not keep the request, its
    message and its transfer alive until the time it would have fired.
    """

    __slots__ = ("_loop", "args", "callback", "cancelled", "when")

    def __init__(self, when: float, callback: Callable[..., Any], args: tuple[Any, ...],
                 loop: EventLoop | None = None) -> None:
        self.when, self.callback, self.args = when, callback, args
        self.cancelled = False
        self._loop = loop

    def cancel(self) -> None:
        if self.cancelled:
            return
        self.cancelled = True
        self.callback, self.args = _never, _NOTHING
        if self._loop is not None:
            self._loop._cancelled_one()


class EventLoop:
    """Run callbacks when sockets become readable or timers fall due, in the thread calling :meth:`run`."""

    def __init__(self, name: str = "loop") -> None:
        self.name = name
        self._poller = zmq.Poller()
        self._handlers: dict[Any, Callable[[], None]] = {}
        self._timers: list[tuple[float, int, Timer]] = []
        self._sequence = itertools.count()
        self._cancelled = 0
        self._calls: deque[tuple[Callable[..., Any], tuple[Any, ...]]] = deque()
        self._wake_read, self._wake_write = socket.socketpair()
        self._wake_read.setblocking(False)
        self._wake_write.setblocking(False)
        self._poller.register(self._wake_read.fileno(), zmq.POLLIN)
        self._stopping = threading.Event()

    def register(self, sock: zmq.Socket, on_readable: Callable[[], None]) -> None:
        """Call ``on_readable()`` whenever ``sock`` has a message (replaces an earlier handler)."""
        self._handlers[sock] = on_readable
        self._poller.register(sock, zmq.POLLIN)

    def unregister(self, sock: zmq.Socket) -> None:
        if self._handlers.pop(sock, None) is not None:
            self._poller.unregister(sock)

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> Timer:
        """Run ``callback(*args)`` in the loop after ``delay`` seconds (loop thread only)."""
        timer = Timer(time.monotonic() + max(0.0, delay), callback, args, self)
        heapq.heappush(self._timers, (timer.when, next(self._sequence), timer))
        return timer

    def _cancelled_one(self) -> None:
        """Count a cancelled timer still queued; sweep them out once they are half the queue.

        Without the sweep a burst of requests, each with a timeout timer cancelled by its reply,
        would leave thousands of dead entries queued until their due times.
        """
        self._cancelled += 1
        if self._cancelled > COMPACT_MIN and 2 * self._cancelled > len(self._timers):
            self._timers = [entry for entry in self._timers if not entry[2].cancelled]
            heapq.heapify(self._timers)
            self._cancelled = 0

    def call_soon_threadsafe(self, callback: Callable[..., Any], *args: Any) -> None:
        """Run ``callback(*args)`` in the loop as soon as possible; callable from any thread."""
        self._calls.append((callback, args))
        self._wake()

    def stop(self) -> None:
        """Make :meth:`run` return after the current callback; callable from any thread."""
        self._stopping.set()
        self._wake()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def run(self) -> None:
        """Serve until :meth:`stop`; exceptions raised by callbacks are logged, not fatal."""
        try:
            while not self._stopping.is_set():
                events = self._poller.poll(self._poll_timeout())
                for sock, _ in events:
                    if sock == self._wake_read.fileno():
                        self._drain_wake()
                        continue
                    handler = self._handlers.get(sock)
                    if handler is not None:
                        self._safely(handler, ())
                self._run_due_timers()
                while self._calls:
                    callback, args = self._calls.popleft()
                    self._safely(callback, args)
        finally:
            self._wake_read.close()
            self._wake_write.close()

    def _poll_timeout(self) -> int | None:
        if self._calls:
            return 0
        while self._timers and self._timers[0][2].cancelled:
            heapq.heappop(self._timers)
            self._cancelled = max(0, self._cancelled - 1)
        if not self._timers:
            return None
        return max(0, int((self._timers[0][0] - time.monotonic()) * 1000) + 1)

    def _run_due_timers(self) -> None:
        now = time.monotonic()
        while self._timers and self._timers[0][0] <= now:
            _, _, timer = heapq.heappop(self._timers)
            if timer.cancelled:
                self._cancelled = max(0, self._cancelled - 1)
            else:
                callback, args = timer.callback, timer.args
                timer.cancelled, timer.callback, timer.args = True, _never, _NOTHING
                self._safely(callback, args)

    def _safely(self, callback: Callable[..., Any], args: tuple[Any, ...]) -> None:
        try:
            callback(*args)
        except Exception:  # one failing callback must not stop the chain
            LOG.exception("%s: unexpected error in %s", self.name, getattr(callback, "__qualname__", callback))

    def _wake(self) -> None:
        with contextlib.suppress(OSError):  # the pipe is full (a wake-up is already pending) or closed
            self._wake_write.send(b"\0")

    def _drain_wake(self) -> None:
        try:
            while self._wake_read.recv(4096):
                pass
        except (BlockingIOError, OSError):  # drained
            pass
