"""Helpers for roles on an MQTT bus: a publisher and a recorder in the test process, both going
through the broker, and a wait for a role's subscription to be in place."""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Callable, Iterable

from posttroll.message import Message

from support.bus import wait_until


def with_query(bus: str, **query: object) -> str:
    """``bus`` with ``query`` added to its parameters."""
    extra = "&".join(f"{key}={value}" for key, value in query.items())
    return bus + ("&" if "?" in bus else "?") + extra


class BrokerRecorder:
    """Record every message published under ``topics`` on the bus ``bus`` (no session kept)."""

    def __init__(self, bus: str, topics: Iterable[str] = ("/",)) -> None:
        from trollmoves_mqtt.transport import MqttTransport

        transport = MqttTransport.for_bus(with_query(bus, client_id=f"rec{uuid.uuid4().hex[:8]}", session_expiry=0))
        self.messages: list[Message] = []
        self._subscriber = transport.subscriber([], list(topics))
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._halt.is_set():
            message = self._subscriber.recv(0.05)
            if message is not None:
                self.messages.append(message)

    def of_type(self, atype: str) -> list[Message]:
        return [m for m in list(self.messages) if m.type == atype]

    def wait_for(self, predicate: Callable[[Message], bool], count: int = 1, timeout: float = 30.0) -> list[Message]:
        """Wait until ``count`` recorded messages satisfy ``predicate``; return them."""
        wait_until(lambda: sum(1 for m in list(self.messages) if predicate(m)) >= count, timeout)
        return [m for m in list(self.messages) if predicate(m)]

    def close(self) -> None:
        self._halt.set()
        self._thread.join(2)
        self._subscriber.close()


def broker_publisher(bus: str, name: str = "test-source"):
    """A publisher on the bus ``bus``, as a role would have one."""
    from trollmoves_mqtt.transport import MqttTransport

    return MqttTransport.for_bus(with_query(bus, client_id=f"src{uuid.uuid4().hex[:8]}")).publisher("", name=name)


def wait_subscribed(broker, client_id: str, timeout: float = 30.0) -> None:
    """Wait until the broker logged a SUBSCRIBE from a subscriber of ``client_id`` (its base id):
    from then on the broker keeps what is published for it."""
    pattern = re.compile(rf"Received SUBSCRIBE from {re.escape(client_id)}-sub-")
    assert wait_until(lambda: pattern.search(broker.log()), timeout), broker.log()[-3000:]
