"""The roles' bus on an MQTT v5 broker: ``mqtt://`` and ``mqtts://`` bus addresses.

Everything goes through the broker named by the bus address (:mod:`trollmoves_mqtt.options`),
so the provider and server addresses the roles pass in only name things, they are never
connected to:

* a publisher publishes each posttroll message unchanged (posttroll's wire text) as the payload,
  QoS 1, on the topic mapped from its subject (:mod:`trollmoves_mqtt.topics`), with its id in the
  user property :data:`PUBLISHER_PROPERTY`;
* a subscriber subscribes to the filters of its posttroll topics with a persistent session (a
  client id fixed by the bus's ``client_id``, the prefix, group, filters and provider addresses; ``clean_start``
  false), so what is published while it is stopped is delivered when it comes back; the broker
  brings every provider's messages, its provider addresses only decide whether it hears this
  process's own publishers (:func:`_own_echo`: not unless it names their address, as over ZeroMQ);
* requests go, QoS 1, to ``PREFIX/request/<server address>`` with MQTT v5 request/response: a
  response topic of the requester's own and correlation data, which the inbox's reply carries back.
  Timeouts, attempts, back-off, the adaptive window and callbacks are those of the ZeroMQ requester.
  An inbox replies only under ``PREFIX/reply/``: a request naming any other response topic is
  dropped, so no requester can make a server publish where the broker's ACL forbids it to;
* ZeroMQ's security (``allowed_clients``, CURVE keys) does not apply: passing it is a ConfigError,
  the broker's ACL and TLS are the controls.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from posttroll.message import Message
from trollmoves_roles.bus.posttroll import HEARTBEAT_INTERVAL
from trollmoves_roles.bus.requester import ServerQueue
from trollmoves_roles.bus.security import PUBLISHER_KEY_FILE, SECRET_KEY_FILE, CurveClient, Policy
from trollmoves_roles.bus.transport import IncomingRequest, MessageTransport, ReplyCallback
from trollmoves_roles.observe.ratelimit import RateLimitedLog
from trollmoves_roles.protocol import codec
from trollmoves_roles.protocol.messages import uids_of
from trollmoves_roles.protocol.requests import one_line

from trollmoves_core.exceptions import ConfigError
from trollmoves_mqtt.connection import Connection, Handoff, PackedProperties, unique_id
from trollmoves_mqtt.groups import WATCHED_TYPES, GroupWatch, type_of
from trollmoves_mqtt.options import BusAddress, parse_bus_address
from trollmoves_mqtt.topics import REPLY_LEVEL, filters, is_reply_topic, matches, publish_topic, request_topic

if TYPE_CHECKING:
    import paho.mqtt.client as mqtt
    from trollmoves_roles.bus.loop import EventLoop, Timer

LOG = logging.getLogger(__name__)
_LIMITED = RateLimitedLog(LOG, period=10.0, burst=5)

class MqttTransport(MessageTransport):
    """posttroll messages through an MQTT v5 broker."""

    NAME: ClassVar[str] = "mqtt"
    SCHEMES: ClassVar[tuple[str, ...]] = ("mqtt", "mqtts")
    BROKERED: ClassVar[bool] = True

    def __init__(self, bus: BusAddress | None = None) -> None:
        self._bus = bus

    @classmethod
    def for_bus(cls, address: str | None) -> MqttTransport:
        return cls(parse_bus_address(address) if address else None)

    @property
    def bus(self) -> BusAddress:
        if self._bus is None:
            raise ConfigError("the MQTT transport needs a bus address (bus = mqtt://BROKER[:PORT]/PREFIX)")
        return self._bus

    def publisher(self, address: str, *, name: str, nameservers: Iterable[str] | None = None,
                  aliases: Iterable[str] = ()) -> MqttPublisher:
        return MqttPublisher(self.bus, name=name, address=address)

    def subscriber(self, addresses: Iterable[str], topics: Iterable[str], *, security: Any = None) -> MqttSubscriber:
        _refuse_security(security, PUBLISHER_KEY_FILE)
        return MqttSubscriber(self.bus, addresses, topics)

    def requester(self, loop: EventLoop, *, max_in_flight: int = 64, security: Any = None) -> MqttRequester:
        _refuse_security(security, "server_public_key_file")
        return MqttRequester(loop, self.bus, max_in_flight=max_in_flight)

    def request_inbox(self, address: str, *, security: Any = None, bind_retry: float = 0.0,
                      section: str = "") -> MqttInbox:
        _refuse_security(security, "server_public_key_file", section)
        return MqttInbox(self.bus, address)


def _refuse_security(security: Any, peer_key: str, section: str = "") -> None:
    """ConfigError naming the ZeroMQ security keys in ``security`` (a :class:`Policy` or a
    :class:`CurveClient`; ``peer_key`` is the config key of the peer's public key of the latter).

    Silently ignoring them would leave a server that restricted its clients open to anyone who can
    reach the broker; an inactive policy (no key set) is fine.
    """
    if security is None:
        return
    if isinstance(security, Policy):
        keys = [key for key, given in (("allowed_clients", security.networks is not None),
                                       ("server_secret_key_file", bool(security.server_secret_key_file)),
                                       ("clients_public_keys_directory", security.clients_keys is not None))
                if given]
        section = section or security.label
    elif isinstance(security, CurveClient):
        keys = [SECRET_KEY_FILE, peer_key]
    else:
        keys = [type(security).__name__]
    if keys:
        raise ConfigError(f"{', '.join(keys)}: ZeroMQ security does not apply on an MQTT bus; the broker's ACL "
                          "and TLS are the controls there (remove the key(s))", section=section or None)


PUBLISHER_PROPERTY = "trollmoves-publisher"
"""The MQTT v5 user property naming the publisher (its connection's client id) of a message."""
_LOCAL_PUBLISHERS: dict[str, str] = {}
"""This process's publishers: client id → the address the role gave it."""


class MqttPublisher:
    """Publishes posttroll messages QoS 1 under the bus's prefix, tagged with its id; thread-safe."""

    def __init__(self, bus: BusAddress, *, name: str, address: str = "") -> None:
        self.name = name
        self.port = bus.port
        self._bus = bus
        client_id = unique_id(bus.client_id, "pub")
        self._properties = PackedProperties.of(user=(PUBLISHER_PROPERTY, client_id))
        self._connection = Connection(bus, client_id, role=f"publisher {name}")
        if address:  # one without an address stands for another process's
            _LOCAL_PUBLISHERS[client_id] = address
        self._last_beat = 0.0

    def send(self, message: Message) -> None:
        try:
            topic = publish_topic(self._bus.prefix, message.subject)
        except ValueError as err:
            _LIMITED.error("subject", "Not published: %s", err)
            return
        self._connection.publish(topic, codec.encode(message).encode(), self._properties)

    def heartbeat(self, min_interval: int = HEARTBEAT_INTERVAL) -> None:
        now = time.monotonic()
        if now - self._last_beat >= min_interval:
            self._last_beat = now
            self.send(codec.make_message(f"/heartbeat/{self.name}", "beat", {"min_interval": min_interval}))

    def stop(self) -> None:
        self._connection.close()
        _LOCAL_PUBLISHERS.pop(self._connection.client_id, None)


def _own_echo(raw: mqtt.MQTTMessage, addresses: list[str]) -> bool:
    """Whether ``raw`` comes from a publisher of this process whose address is not among ``addresses``.

    Over ZeroMQ a process hears its own publisher only by subscribing to its address; through a broker
    it would hear everything it publishes on its topics (a client its own push, ack and result of every
    file). Without addresses (subscribers of nameserver-discovered publishers) nothing is dropped.
    """
    if not addresses:
        return False
    for key, value in getattr(raw.properties, "UserProperty", None) or ():
        if key == PUBLISHER_PROPERTY:
            address = _LOCAL_PUBLISHERS.get(value)
            return address is not None and not any(_same_endpoint(address, other) for other in addresses)
    return False


def _same_endpoint(one: str, other: str) -> bool:
    """``tcp://*:9010`` and ``127.0.0.1:9010`` alike: the same text after the scheme, or the same port."""
    one, other = one.split("://", 1)[-1], other.split("://", 1)[-1]
    port = one.rpartition(":")[2]
    return one == other or (port.isdigit() and port == other.rpartition(":")[2])


class MqttSubscriber:
    """posttroll messages on ``topics`` from the broker, read without blocking.

    Its session is persistent (``session_expiry`` of the bus address): the broker queues what
    arrives while it is stopped. A message :meth:`recv` hands out is acknowledged to the broker
    at the next :meth:`recv` or :meth:`close`, once the caller has handled it (a client has
    journaled it by then): a process killed before that gets it again when its session resumes.
    """

    def __init__(self, bus: BusAddress, addresses: Iterable[str], topics: Iterable[str]) -> None:
        self._bus = bus
        self.addresses = list(addresses)
        self.topics = list(topics)
        self._filters = filters(bus.prefix, self.topics, bus.group)
        self._handoff = Handoff()
        self._handed: mqtt.MQTTMessage | None = None
        client_id = self._client_id()
        self._group: GroupWatch | None = None
        self._watching: Connection | None = None
        if bus.group:
            self._group = GroupWatch(client_id, bus.takeover_after, self._handoff.put)
            self._watching = Connection(bus, f"{client_id}-watch", persistent=bus.session_expiry > 0,
                                        on_message=self._on_watched,
                                        subscriptions=filters(bus.prefix, self.topics), role="group watch")
        self._connection = Connection(bus, client_id, persistent=bus.session_expiry > 0,
                                      on_message=self._on_share, manual_ack=True,
                                      subscriptions=self._filters, role="subscriber")

    def _on_share(self, raw: mqtt.MQTTMessage) -> None:
        connection = getattr(self, "_connection", None)  # None: a queued message before the constructor returned
        if connection is not None and _own_echo(raw, self.addresses):
            connection.client.ack(raw.mid, raw.qos)
            return
        if self._group is not None and self._group.in_grace():
            message = self._decode(raw, quiet=True)
            uids = uids_of(message.data) if message is not None and isinstance(message.data, dict) else []
            if uids and self._group.hold_own(raw, uids):
                return
        self._handoff.put(raw)

    def _on_watched(self, raw: mqtt.MQTTMessage) -> None:
        if self._group is None or type_of(raw.payload) not in WATCHED_TYPES:
            return  # acks, heartbeats: nothing the group needs, not worth decoding
        message = self._decode(raw, quiet=True)
        if message is not None and self._group.seen(message) and not _own_echo(raw, self.addresses):
            # every member's chain learns of the others' results (its catch-up then skips what the group delivered)
            self._handoff.put(("watched", message))

    def _client_id(self) -> str:
        digest = hashlib.sha1("\n".join([self._bus.prefix, self._bus.group or "", *sorted(self._filters),
                                         *sorted(self.addresses)]).encode())
        return f"{self._bus.client_id}-sub-{digest.hexdigest()[:10]}"

    @property
    def pollable(self) -> Any:
        return self._handoff.pollable

    def recv(self, timeout: float | None = None) -> Message | None:
        self._acknowledge_handed()
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            item = self._handoff.take(remaining)
            if item is None:
                return None
            if isinstance(item, tuple):  # ("takeover" or "watched", message) from the group watch
                message = item[1]
            else:
                message = self._decode(item)
                if message is not None and self._delivered_by_the_group(message):
                    LOG.debug("Skipping %s: the group delivered it already", message.subject)
                    message = None
                if message is not None and matches(message.subject, self.topics):
                    self._handed = item
                    return message
                self._connection.client.ack(item.mid, item.qos)
                message = None
            if message is not None and matches(message.subject, self.topics):
                return message
            if deadline is not None and time.monotonic() >= deadline:
                return None

    def _acknowledge_handed(self) -> None:
        if self._handed is not None:
            self._connection.client.ack(self._handed.mid, self._handed.qos)
            self._handed = None

    def _delivered_by_the_group(self, message: Message) -> bool:
        return (self._group is not None and isinstance(message.data, dict) and "request_address" in message.data
                and self._group.done(uids_of(message.data)))

    def _decode(self, raw: mqtt.MQTTMessage, *, quiet: bool = False) -> Message | None:
        try:
            return codec.decode(raw.payload)
        except Exception as err:  # a malformed message: drop it, keep serving
            if not quiet:
                _LIMITED.warning("malformed", "Dropped a malformed message on %s: %r (%s)", raw.topic,
                                 raw.payload[:120], one_line(err))
            return None

    def add(self, address: str) -> None:
        if address not in self.addresses:
            self.addresses.append(address)

    def try_add(self, address: str) -> bool:
        self.add(address)
        return True

    def set_topics(self, topics: Iterable[str]) -> None:
        self.topics = list(topics)
        wanted = filters(self._bus.prefix, self.topics, self._bus.group)
        for old in self._filters:
            if old not in wanted:
                self._connection.unsubscribe(old)
        for new in wanted:
            self._connection.subscribe(new)
        self._filters = wanted
        if self._watching is not None:
            watched = filters(self._bus.prefix, self.topics)
            for old in list(self._watching.subscriptions):
                if old not in watched:
                    self._watching.unsubscribe(old)
            for new in watched:
                self._watching.subscribe(new)

    def reconnect_dropped(self) -> int:
        return 0  # paho reconnects by itself

    def close(self) -> None:
        """Disconnect, keeping the session (and its subscriptions) on the broker."""
        self._acknowledge_handed()
        if self._group is not None:
            self._group.close()
        if self._watching is not None:
            self._watching.close(drain=0)
        self._connection.close(drain=0.5)
        self._handoff.close()


@dataclass(eq=False, slots=True)
class _Request:
    address: str
    payload: bytes | Callable[[], Message]
    timeout: float
    attempts: int
    callback: ReplyCallback
    kind: str
    correlation: bytes = field(default_factory=lambda: uuid.uuid4().bytes)
    sent: int = 0
    sent_at: float = 0.0
    timer: Timer | None = None


class MqttRequester:
    """Requests published to servers' request topics; replies come to this requester's own topic.

    Requests of each kind per server wait and go out as ZeroMQ's do (a
    :class:`~trollmoves_roles.bus.requester.ServerQueue`: from ``INITIAL_WINDOW`` in flight, growing up to
    ``max_in_flight`` while the server keeps up); one unanswered
    within its timeout is sent again (same correlation data, so a late reply still counts) after
    ``backoff * 2**(n-1)`` s, up to ``attempts`` sends; then its callback gets no reply.
    Runs in ``loop``'s thread.
    """

    def __init__(self, loop: EventLoop, bus: BusAddress, *, max_in_flight: int = 64, backoff: float = 0.2) -> None:
        self._loop, self._bus = loop, bus
        self.max_in_flight, self.backoff = max_in_flight, backoff
        self._id = unique_id(bus.client_id, "req")
        self._reply_topic = bus.topic(REPLY_LEVEL, self._id)
        self._servers: dict[str, ServerQueue] = {}
        self._waiting: dict[bytes, _Request] = {}
        self._closed = False
        self._handoff = Handoff()
        self._connection = Connection(bus, self._id, on_message=self._handoff.put,
                                      subscriptions=[self._reply_topic], role="requester")
        loop.register(self._handoff.pollable, self._on_readable)

    def request(self, address: str, message: Message | Callable[[], Message], *, timeout: float, attempts: int,
                callback: ReplyCallback, kind: str = "push") -> _Request:
        server = self._servers.get(address)
        if server is None:
            server = self._servers[address] = ServerQueue(max_in_flight=self.max_in_flight)
        payload = message if callable(message) else codec.encode(message).encode()
        request = _Request(address, payload, timeout, attempts, callback, kind)
        server.add(kind, request)
        self._pump(server, kind)
        return request

    def is_down(self, address: str) -> bool:
        server = self._servers.get(address)
        return server is not None and server.is_down()

    def pending(self) -> int:
        return sum(server.pending() for server in self._servers.values())

    def close(self) -> None:
        """Drop every outstanding request without callback; disconnect."""
        self._closed = True
        for request in self._waiting.values():
            if request.timer:
                request.timer.cancel()
        self._waiting.clear()
        self._servers.clear()
        self._loop.unregister(self._handoff.pollable)
        self._connection.close(drain=0)
        self._handoff.close()

    def _pump(self, server: ServerQueue, kind: str) -> None:
        while not self._closed and (request := server.next_to_send(kind)) is not None:
            self._waiting[request.correlation] = request
            self._send(request)

    def _send(self, request: _Request) -> None:
        if self._closed:
            return
        if not isinstance(request.payload, bytes):
            request.payload = codec.encode(request.payload()).encode()
        properties = PackedProperties.of(response_topic=self._reply_topic, correlation=request.correlation)
        request.sent += 1
        request.sent_at = time.monotonic()
        self._connection.publish(request_topic(self._bus.prefix, request.address), request.payload, properties)
        request.timer = self._loop.call_later(request.timeout, self._on_timeout, request)

    def _on_readable(self) -> None:
        while (raw := self._handoff.take(0)) is not None:
            correlation = getattr(raw.properties, "CorrelationData", None)
            request = self._waiting.pop(correlation, None) if correlation is not None else None
            if request is None:
                LOG.debug("Reply on %s for no outstanding request (late or repeated)", raw.topic)
                continue
            if request.timer:
                request.timer.cancel()
            server = self._servers[request.address]
            # a reply to a re-sent request may answer any of its sends: no round trip
            server.answered(request.kind, time.monotonic() - request.sent_at if request.sent == 1 else None)
            try:
                reply, error = codec.decode(raw.payload), None
            except Exception as err:  # the peer answered something that is not a posttroll message
                reply, error = None, f"invalid reply {raw.payload[:200]!r} ({one_line(err)})"
            self._release(server, request.kind)
            self._callback(request, reply, error)

    def _on_timeout(self, request: _Request) -> None:
        self._servers[request.address].window(request.kind).timed_out()
        if request.sent < request.attempts:
            delay = self.backoff * 2 ** (request.sent - 1)
            _LIMITED.warning("resend", "No reply from %s to %s in %.1f s (attempt %d of %d); re-sending in %.1f s",
                             request.address, request.kind, request.timeout, request.sent, request.attempts, delay)
            request.timer = self._loop.call_later(delay, self._send, request)
            return
        _LIMITED.error("abandon", "No reply from %s to %s after %d attempts through the broker %s; abandoning it",
                       request.address, request.kind, request.attempts, self._bus)
        self._waiting.pop(request.correlation, None)
        server = self._servers[request.address]
        server.abandoned()
        self._release(server, request.kind)
        self._callback(request, None, f"no reply from {request.address} after {request.attempts} attempts")

    def _release(self, server: ServerQueue, kind: str) -> None:
        server.done(kind)
        self._pump(server, kind)

    def _callback(self, request: _Request, reply: Message | None, error: str | None) -> None:
        try:
            request.callback(reply, error)
        except Exception:  # a failing callback must not corrupt the request bookkeeping
            LOG.exception("Error handling the reply from %s", request.address)


class MqttInbox:
    """Requests for ``address`` (its request topic); replies go to each request's response topic."""

    def __init__(self, bus: BusAddress, address: str) -> None:
        self.address = address
        self._replies = bus.topic(REPLY_LEVEL, "")
        self._topic = request_topic(bus.prefix, address)
        self._handoff = Handoff()
        self._connection = Connection(bus, unique_id(bus.client_id, "inbox"), on_message=self._handoff.put,
                                      subscriptions=[self._topic], role=f"request inbox {address}")

    @property
    def pollable(self) -> Any:
        return self._handoff.pollable

    def receive(self) -> IncomingRequest | None:
        while (raw := self._handoff.take(0)) is not None:
            response_topic = getattr(raw.properties, "ResponseTopic", None)
            if not response_topic:
                _LIMITED.warning("noresponse", "%s: dropped a request without a response topic: %r", self._topic,
                                 raw.payload[:120])
                continue
            correlation = getattr(raw.properties, "CorrelationData", None)
            try:
                request: Message | str = codec.decode(raw.payload)
            except Exception as err:  # anything undecodable gets an answer, never silence
                request = f"invalid request: {one_line(err)}"
            if not is_reply_topic(self._replies, response_topic):
                # replying there would publish with our credentials where the requester may not (announcements)
                sender = request.sender if isinstance(request, Message) else "an undecodable request"
                _LIMITED.warning("badresponse", "%s: dropped a request from %s: its response topic %r is not "
                                 "%s<requester id>", self._topic, sender, response_topic[:200], self._replies)
                continue
            peer = response_topic.rsplit("/", 1)[-1]
            return IncomingRequest(request, peer, (response_topic, correlation))
        return None

    def reply(self, token: object, message: Message) -> None:
        response_topic, correlation = token  # type: ignore[misc]
        self._connection.publish(response_topic, codec.encode(message).encode(),
                                 PackedProperties.of(correlation=correlation))

    def close(self) -> None:
        self._connection.close()
        self._handoff.close()
