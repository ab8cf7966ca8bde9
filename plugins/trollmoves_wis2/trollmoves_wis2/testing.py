"""A WIS2 subscriber for tests: every notification a broker relays under a topic filter, parsed.

:class:`NotificationRecorder` connects with trollmoves-mqtt's connection code and records each
message as ``(topic, Notification, payload)``. Its constructor returns once the subscription is
live (a warm-up message has come back), so nothing published afterwards is missed. A payload that
is not a valid WNM is recorded in :attr:`NotificationRecorder.invalid` with its one-line error.
"""

from __future__ import annotations

import threading
import time
import uuid

from trollmoves_mqtt.connection import Connection, unique_id
from trollmoves_mqtt.options import parse_bus_address

from trollmoves_wis2 import notification
from trollmoves_wis2.errors import WnmError

WARM_UP_TOPIC = "origin/a/wis2/test-warm-up"


class NotificationRecorder:
    """Records the WNMs under ``topic_filter`` on the broker at ``url`` (a bus address without prefix)."""

    def __init__(self, url: str, topic_filter: str = "origin/a/wis2/#", *, timeout: float = 10.0) -> None:
        self.received: list[tuple[str, notification.Notification, bytes]] = []
        self.invalid: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._token = uuid.uuid4().hex.encode()
        self._warm = threading.Event()
        self.connection = Connection(parse_bus_address(url), unique_id("test", "wis2-recorder"),
                                     on_message=self._on_message, subscriptions=[topic_filter, WARM_UP_TOPIC])
        deadline = time.monotonic() + timeout
        while not self._warm.is_set():
            if time.monotonic() > deadline:
                self.close()
                raise TimeoutError(f"the subscription to {topic_filter} never became live")
            self.connection.publish(WARM_UP_TOPIC, self._token)
            self._warm.wait(0.2)

    def _on_message(self, message) -> None:
        if message.topic == WARM_UP_TOPIC:
            if message.payload == self._token:
                self._warm.set()
            return
        try:
            parsed = notification.parse(message.payload)
        except WnmError as err:
            with self._lock:
                self.invalid.append((message.topic, str(err)))
            return
        with self._lock:
            self.received.append((message.topic, parsed, message.payload))

    def about(self, name: str) -> list[tuple[str, notification.Notification, bytes]]:
        """The notifications whose canonical (update, deletion) link ends with ``/name``."""
        with self._lock:
            return [r for r in self.received if notification.canonical_link(r[1]).href.endswith("/" + name)]

    def wait(self, count: int = 1, timeout: float = 20.0) -> list[tuple[str, notification.Notification, bytes]]:
        """The notifications received once there are ``count`` of them (fewer after ``timeout`` s)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.received) >= count:
                    return list(self.received)
            time.sleep(0.02)
        with self._lock:
            return list(self.received)

    def close(self) -> None:
        self.connection.close()
