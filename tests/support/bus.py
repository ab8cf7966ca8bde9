"""Loopback bus helpers: free ports, a message recorder, polling waits."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable

from posttroll.message import Message
from trollmoves_roles.bus.posttroll import Subscription

from trollmoves_core.ports import free_port

__all__ = ["BusRecorder", "free_port", "wait_until"]


def wait_until(predicate: Callable[[], object], timeout: float = 10.0, interval: float = 0.02) -> bool:
    """Poll ``predicate`` until it is truthy or ``timeout`` passes; return its last truth."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


class BusRecorder:
    """Record every message published on ``addresses`` under ``topics`` in a thread."""

    def __init__(self, addresses: Iterable[str], topics: Iterable[str] = ("/",)) -> None:
        self.messages: list[Message] = []
        self._subscription = Subscription(addresses, topics)
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._halt.is_set():
            message = self._subscription.recv(0.05)
            if message is not None:
                self.messages.append(message)
        self._subscription.close()

    def of_type(self, atype: str) -> list[Message]:
        return [m for m in self.messages if m.type == atype]

    def wait_for(self, predicate: Callable[[Message], bool], count: int = 1, timeout: float = 10.0) -> list[Message]:
        """Wait until ``count`` recorded messages satisfy ``predicate``; return them."""
        wait_until(lambda: sum(1 for m in list(self.messages) if predicate(m)) >= count, timeout)
        return [m for m in list(self.messages) if predicate(m)]

    def close(self) -> None:
        self._halt.set()
        self._thread.join(2)
