"""Subscription to one provider, with upstream's heartbeat watchdog.

Each provider gets its own subscriber (a SUB socket on ZeroMQ) (so it can have its own topic and its own watchdog),
read in the chain's event loop. With ``heartbeat_alarm_scale`` > 0, silence longer than
``scale * min_interval`` (``min_interval`` from the provider's last ``beat``, 30 s until one
arrives) closes the socket and subscribes again, and says so in the log.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable

from posttroll.message import Message

from trollmoves_roles.bus.loop import EventLoop, Timer
from trollmoves_roles.bus.posttroll import HEARTBEAT_INTERVAL
from trollmoves_roles.bus.security import CurveClient
from trollmoves_roles.bus.transport import MessageTransport, Subscriber
from trollmoves_roles.observe.metrics import RoleMetrics

LOG = logging.getLogger(__name__)

MAX_BATCH = 256
"""Messages read from one socket before the loop serves the others."""
RECONNECT_CHECK = 1.0
"""Seconds between checks for a publisher connection zmq dropped for good (an oversized message):
such a drop never makes the socket readable, so it is looked for on a timer."""


class ProviderListener:
    """Feed ``on_message(message)`` with what ``address`` publishes on ``topics``.

    Each ``beat`` from the provider is reported to ``metrics`` (peer: the provider's address);
    ``curve`` makes the subscription a CURVE client (a ``secure_zmq`` publisher).
    """

    def __init__(self, loop: EventLoop, address: str, topics: list[str], on_message: Callable[[Message], None],
                 *, transport: MessageTransport, alarm_scale: float = 0.0, chain: str = "",
                 on_recovered: Callable[[], None] | None = None,
                 metrics: RoleMetrics | None = None, curve: CurveClient | None = None) -> None:
        self.address, self.topics = address, topics
        self._transport = transport
        self._metrics, self._curve = metrics, curve
        self._on_recovered = on_recovered
        self._loop, self._on_message = loop, on_message
        self._alarm_scale, self._chain = alarm_scale, chain
        self._interval = alarm_scale * HEARTBEAT_INTERVAL
        self._last_seen = time.monotonic()
        self._silent = False
        self._watchdog: Timer | None = None
        self._subscription: Subscriber | None = None
        self.resubscriptions = 0
        self._subscribe()
        if self._interval > 0:
            self._watchdog = loop.call_later(self._interval, self._check)
        self._reconnector: Timer | None = loop.call_later(RECONNECT_CHECK, self._reconnect_dropped)

    def _reconnect_dropped(self) -> None:
        if self._subscription is not None and self._subscription.reconnect_dropped():
            LOG.warning("[%s] Connection to %s was dropped (a message over the size limit?); reconnected",
                        self._chain, self.address)
        self._reconnector = self._loop.call_later(RECONNECT_CHECK, self._reconnect_dropped)

    def _subscribe(self) -> None:
        self._subscription = self._transport.subscriber([self.address], self.topics, security=self._curve)
        self._loop.register(self._subscription.pollable, self._on_readable)
        LOG.info("[%s] Subscribing to %s with topics %s", self._chain, self.address, self.topics)

    def _on_readable(self) -> None:
        subscription = self._subscription
        for _ in range(MAX_BATCH):
            if subscription is None or subscription is not self._subscription:
                return
            message = subscription.recv(0)
            if message is None:
                return
            self._seen(message)
            self._on_message(message)

    def _seen(self, message: Message) -> None:
        self._last_seen = time.monotonic()
        if self._silent:
            self._silent = False
            LOG.info("[%s] %s is publishing again", self._chain, self.address)
            if self._on_recovered is not None:  # what was published meanwhile never reached us
                self._loop.call_soon_threadsafe(self._on_recovered)
        if message.type == "beat" and self._metrics is not None:
            self._metrics.peer_seen(self.address.removeprefix("tcp://"))
        if message.type == "beat" and self._alarm_scale > 0 and isinstance(message.data, dict):
            with contextlib.suppress(TypeError, ValueError):  # a malformed beat keeps the previous interval
                self._interval = self._alarm_scale * float(message.data.get("min_interval", HEARTBEAT_INTERVAL))

    def _check(self) -> None:
        silence = time.monotonic() - self._last_seen
        if silence >= self._interval:
            log = LOG.info if self._silent else LOG.warning
            log("[%s] Nothing received from %s for %.1f s (alarm at %.1f s); resubscribing", self._chain,
                self.address, silence, self._interval)
            self._silent = True
            self.resubscriptions += 1
            self._close_subscription()
            self._subscribe()
            self._last_seen = time.monotonic()
            delay = self._interval
        else:
            delay = self._interval - silence
        self._watchdog = self._loop.call_later(max(delay, 0.01), self._check)

    def _close_subscription(self) -> None:
        if self._subscription is not None:
            self._loop.unregister(self._subscription.pollable)
            self._subscription.close()
            self._subscription = None

    def close(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
        if self._reconnector is not None:
            self._reconnector.cancel()
        self._close_subscription()
