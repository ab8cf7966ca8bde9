"""Whether this process reaches its broker, over all of its connections to it.

A role holds several connections to one broker (subscriber, group watch, requester, publisher,
request inboxes); when the broker goes away they all drop. :class:`BrokerStatus` turns their
reports into one warning when the first is lost and one line when the last is back, and keeps
the roles' metrics (:data:`~trollmoves_roles.observe.metrics.BUS_CONNECTIONS`:
``trollmoves_bus_connected``, ``trollmoves_bus_reconnects_total``) current.
"""

from __future__ import annotations

import logging
import threading

from trollmoves_roles.observe.metrics import BUS_CONNECTIONS

LOG = logging.getLogger(__name__)


class BrokerStatus:
    """The connections of this process to the broker ``bus`` (its address as logged: no password)."""

    def __init__(self, bus: str) -> None:
        self.bus = bus
        self._lock = threading.Lock()
        self._up: dict[str, bool] = {}
        self._lost = False
        self._was_up = False

    def up(self, connection: str) -> None:
        """``connection`` (a client id) connected."""
        with self._lock:
            self._up[connection] = True
            back = self._lost and all(self._up.values())
            if back:
                self._lost = False
            reconnect = back and self._was_up
            self._was_up = True
        BUS_CONNECTIONS.set(self.bus, connection, True)
        if reconnect:
            BUS_CONNECTIONS.reconnected(self.bus)
        if back:
            LOG.info("MQTT bus: connected to the broker %s again", self.bus)

    def down(self, connection: str, reason: object, *, logged: bool = False) -> None:
        """``connection`` lost the broker (or could not reach it); ``logged``: the caller said so already."""
        with self._lock:
            self._up[connection] = False
            first = not self._lost
            self._lost = True
        BUS_CONNECTIONS.set(self.bus, connection, False)
        if first and not logged:
            LOG.warning("MQTT bus: lost the broker %s (%s); reconnecting", self.bus, reason)

    def closed(self, connection: str) -> None:
        """``connection`` was closed on purpose."""
        with self._lock:
            self._up.pop(connection, None)
        BUS_CONNECTIONS.drop(self.bus, connection)


_STATUSES: dict[str, BrokerStatus] = {}
_STATUSES_LOCK = threading.Lock()


def broker_status(bus: str) -> BrokerStatus:
    """The one :class:`BrokerStatus` of ``bus`` in this process."""
    with _STATUSES_LOCK:
        status = _STATUSES.get(bus)
        if status is None:
            status = _STATUSES[bus] = BrokerStatus(bus)
        return status
