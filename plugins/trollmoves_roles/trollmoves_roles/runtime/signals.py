"""The signals every long-running role answers: SIGTERM and SIGINT stop it, SIGHUP reloads its
configuration; and :class:`Wakeup`, which a signal handler may use to wake a main loop."""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import threading
from collections.abc import Callable

LOG = logging.getLogger(__name__)


def install_signal_handlers(stop: Callable[[], None], reload: Callable[[], None]) -> Callable[[], None]:
    """Call ``stop`` on SIGTERM/SIGINT and ``reload`` on SIGHUP; returns a function restoring the previous handlers.

    Both callables run inside a signal handler: they must only set a flag or write to a pipe.
    Outside the main thread (a role run in-process by a test) nothing is installed.
    """
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def on_stop(signum: int, _frame: object) -> None:
        LOG.info("Received %s; stopping", signal.Signals(signum).name)
        stop()

    def on_hup(_signum: int, _frame: object) -> None:
        reload()

    previous = {sig: signal.signal(sig, handler)
                for sig, handler in ((signal.SIGTERM, on_stop), (signal.SIGINT, on_stop), (signal.SIGHUP, on_hup))}

    def restore() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return restore


class Wakeup:
    """A self-pipe that ends a wait from any thread or from a signal handler.

    A pipe rather than an Event: a signal handler may run while the main thread is inside the
    wait, where taking an Event's lock could deadlock. :meth:`fileno` can also be registered
    with a poller (a zmq ``Poller`` or ``select``); call :meth:`clear` when it is readable.
    """

    def __init__(self) -> None:
        self._read, self._write = os.pipe()
        os.set_blocking(self._read, False)
        os.set_blocking(self._write, False)

    def fileno(self) -> int:
        return self._read

    def wake(self) -> None:
        """Make the next (or current) :meth:`wait` return; does nothing once closed."""
        with contextlib.suppress(OSError):  # the pipe is full (a wake-up is pending anyway) or closed
            os.write(self._write, b"\0")

    def clear(self) -> None:
        """Forget the wake-ups made so far."""
        with contextlib.suppress(OSError):  # nothing to read
            while os.read(self._read, 65536):
                pass

    def wait(self, timeout: float | None) -> bool:
        """Sleep until :meth:`wake` or ``timeout`` seconds; True when woken."""
        readable, _, _ = select.select([self._read], [], [], timeout)
        if readable:
            self.clear()
        return bool(readable)

    def close(self) -> None:
        if self._read < 0:
            return
        # -1 afterwards: a late wake() must not write to a file descriptor number reused since
        os.close(self._read)
        os.close(self._write)
        self._read = self._write = -1


class StopReload:
    """A main loop's stop and reload requests, which any thread or signal handler may make.

    Each request sets its flag and wakes :attr:`wakeup`, which the loop waits on; the loop
    clears ``reload_requested`` when it reloads and closes :attr:`wakeup` when it is done.
    """

    def __init__(self) -> None:
        self.wakeup = Wakeup()
        self.stop_requested = False
        self.reload_requested = False

    def request_stop(self) -> None:
        """Make the main loop return."""
        self.stop_requested = True
        self.wakeup.wake()

    def request_reload(self) -> None:
        """Make the main loop reload the configuration soon."""
        self.reload_requested = True
        self.wakeup.wake()
