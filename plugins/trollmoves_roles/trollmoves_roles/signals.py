"""The signals every long-running role answers: SIGTERM and SIGINT stop it, SIGHUP reloads its
configuration."""

from __future__ import annotations

import logging
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
