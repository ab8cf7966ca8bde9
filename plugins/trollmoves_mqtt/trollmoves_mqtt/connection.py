"""One paho MQTT v5 client connected to the broker of a :class:`~trollmoves_mqtt.options.BusAddress`.

paho's network loop runs in its own thread; it reconnects by itself with a growing delay
(1 s up to :data:`MAX_RECONNECT_DELAY`) and reports each loss and return to the process's
:class:`~trollmoves_mqtt.status.BrokerStatus` (one log line for all of its connections, and the
metrics). TCP_NODELAY is set on every socket it opens (without
it a QoS 1 round trip costs 40 to 90 ms of Nagle + delayed ACK). The first connection is made
before the constructor returns: a refused login or an untrusted certificate is a ConfigError
(one line; the role exits 2), a broker that is not up yet is logged and retried in the background.

:class:`Handoff` carries what paho's thread receives to the reading thread, through a deque and a
socket pair an event loop polls.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import select
import socket
import ssl
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.client import PUBACK, PUBLISH, CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties, VariableByteIntegers, writeBytes, writeUTF
from trollmoves_roles.observe.ratelimit import RateLimitedLog

from trollmoves_core.exceptions import ConfigError
from trollmoves_mqtt.errors import connect_problem, refusal
from trollmoves_mqtt.options import BusAddress
from trollmoves_mqtt.status import broker_status

LOG = logging.getLogger(__name__)
_LIMITED = RateLimitedLog(LOG, period=60.0, burst=3)

MAX_RECONNECT_DELAY = 30
"""Longest wait (seconds) between two attempts to reach a broker that went away."""


class Connection:
    """A connected paho client; ``subscriptions`` (filter → qos) are made again on every connect.

    :param persistent: keep the session ``session_expiry`` seconds across disconnects
        (``clean_start`` false, so a restarted process resumes it).
    :param on_message: called in paho's thread with each received message.
    """

    def __init__(self, bus: BusAddress, client_id: str, *, persistent: bool = False,
                 on_message: Callable[[mqtt.MQTTMessage], None] | None = None, manual_ack: bool = False,
                 subscriptions: Iterable[str] = (), role: str = "") -> None:
        self.bus, self.client_id, self.role = bus, client_id, role or client_id
        self.persistent = persistent
        self.subscriptions: list[str] = list(subscriptions)
        self.connected = threading.Event()
        self.connects = 0
        self._refused: str | None = None
        self._status = broker_status(str(bus))
        self._lock = threading.Lock()
        client = _client_class()(callback_api_version=CallbackAPIVersion.VERSION2, client_id=client_id,
                         protocol=mqtt.MQTTv5, manual_ack=manual_ack)
        client.max_queued_messages_set(0)
        client.reconnect_delay_set(1, MAX_RECONNECT_DELAY)
        if bus.username:
            client.username_pw_set(bus.username, bus.password)
        if bus.tls:
            try:
                client.tls_set(ca_certs=bus.ca_file, certfile=bus.cert_file, keyfile=bus.key_file,
                               cert_reqs=ssl.CERT_REQUIRED if bus.verify else ssl.CERT_NONE)
            except (ssl.SSLError, OSError) as err:
                raise ConfigError(f"{bus}: cannot load the TLS certificates: {err}") from None
            client.tls_insecure_set(not bus.verify)
        client.on_socket_open = _no_delay
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        if on_message is not None:
            client.on_message = lambda _client, _userdata, message: on_message(message)
        self.client = client
        self._connect()

    def _connect(self) -> None:
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = self.bus.session_expiry if self.persistent else 0
        try:
            self.client.connect(self.bus.host, self.bus.port, keepalive=self.bus.keepalive,
                                clean_start=not self.persistent, properties=properties)
        except (OSError, ValueError) as err:
            problem = connect_problem(err, self.bus)
            if problem.fatal:
                raise ConfigError(problem.text) from None
            LOG.warning("%s: %s; retrying in the background", self.role, problem.text)
            self._status.down(self.client_id, problem.text, logged=True)
            self.client.connect_async(self.bus.host, self.bus.port, keepalive=self.bus.keepalive,
                                      clean_start=not self.persistent, properties=properties)
            self.client.loop_start()
            return
        self.client.loop_start()
        self.connected.wait(self.bus.connect_timeout)
        if self._refused is not None:
            self.close()
            raise ConfigError(self._refused)
        if not self.connected.is_set():
            LOG.warning("%s: no answer from the broker %s in %.0f s; still trying", self.role, self.bus,
                        self.bus.connect_timeout)
            self._status.down(self.client_id, "no answer", logged=True)

    def _on_connect(self, client: mqtt.Client, _userdata: Any, flags: Any, reason_code: Any,
                    _properties: Any) -> None:
        if reason_code.is_failure:
            text = refusal(reason_code, self.bus)
            if self.connects == 0 and not self.connected.is_set():
                self._refused = text
                client.disconnect()
                self.connected.set()  # wake the constructor, which raises
                return
            LOG.error("%s: %s", self.role, text)
            return
        self.connects += 1
        if self.connects > 1 and self.persistent and not flags.session_present:
            LOG.warning("%s: the broker %s lost this session; what it queued for us comes from the catch-up",
                        self.role, self.bus)
        self._status.up(self.client_id)
        with self._lock:
            wanted = list(self.subscriptions)
        if wanted:
            client.subscribe([(f, 1) for f in wanted])
        self.connected.set()

    def _on_disconnect(self, _client: mqtt.Client, _userdata: Any, _flags: Any, reason_code: Any,
                       _properties: Any) -> None:
        self.connected.clear()
        if self._refused is None and not self._closing:
            self._status.down(self.client_id, reason_code)

    _closing = False

    def _on_publish(self, _client: mqtt.Client, _userdata: Any, _mid: int, reason_code: Any,
                    _properties: Any) -> None:
        if getattr(reason_code, "is_failure", False):  # an ACL refusal: the broker drops the message
            _LIMITED.error("refused", "%s: the broker %s refused a message: %s (check its ACL for user %s)",
                           self.role, self.bus, reason_code, self.bus.username or "anonymous")

    def subscribe(self, topic_filter: str) -> None:
        with self._lock:
            if topic_filter in self.subscriptions:
                return
            self.subscriptions.append(topic_filter)
        self.client.subscribe(topic_filter, qos=1)

    def unsubscribe(self, topic_filter: str) -> None:
        with self._lock:
            if topic_filter not in self.subscriptions:
                return
            self.subscriptions.remove(topic_filter)
        self.client.unsubscribe(topic_filter)

    def publish(self, topic: str, payload: bytes, properties: Properties | None = None) -> mqtt.MQTTMessageInfo:
        """Publish QoS 1; while disconnected paho keeps it and sends it after reconnecting. The
        returned info's ``is_published()`` turns true on the broker's PUBACK, also for a message
        handed over while disconnected (it raises only when paho did not keep the message)."""
        info = self.client.publish(topic, payload, qos=1, properties=properties)
        if info.rc == mqtt.MQTT_ERR_NO_CONN:  # kept: paho's is_published() would raise even after the PUBACK
            info.rc = mqtt.MQTT_ERR_SUCCESS
        return info

    def close(self, drain: float = 2.0) -> None:
        """Send what is still queued (up to ``drain`` s), disconnect, stop paho's thread."""
        self._closing = True
        deadline = time.monotonic() + drain
        while self.connected.is_set() and self._unsent() and time.monotonic() < deadline:
            time.sleep(0.01)
        with contextlib.suppress(Exception):  # already disconnected
            self.client.disconnect()
        self.client.loop_stop()
        self._status.closed(self.client_id)

    def _unsent(self) -> int:
        return len(getattr(self.client, "_out_messages", ()))


class _Client(mqtt.Client):
    """paho's client, writing a PUBLISH or PUBACK in the thread that queues it, reading in chunks.

    paho hands every packet to its network thread (a byte on a socket pair wakes it): a thread
    switch per message, after which the publishing thread waits for the GIL again. Here the
    queuing thread writes the packet itself, under a lock that paho's own writes take too, and
    wakes paho's thread only when the socket did not take it all (or failed: paho's thread then
    finds the loss and reconnects as before). Other packets (CONNECT, SUBSCRIBE, DISCONNECT...)
    go paho's way.

    paho reads a packet in three ``recv`` calls (its type, its length, the rest): here one ``recv``
    of up to :data:`READ_CHUNK` bytes feeds as many packets as it holds, all handled before paho
    waits on the socket again.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._write_lock = threading.RLock()
        self._read_buffer = b""
        self._read_at = 0

    def _sock_recv(self, bufsize: int) -> bytes:
        if self._read_at >= len(self._read_buffer):
            data = super()._sock_recv(READ_CHUNK)  # BlockingIOError when nothing is there
            if not data:
                return data  # closed by the broker
            self._read_buffer, self._read_at = data, 0
        start = self._read_at
        self._read_at = min(start + bufsize, len(self._read_buffer))
        return self._read_buffer[start:self._read_at]

    def loop_read(self, max_packets: int = 1) -> mqtt.MQTTErrorCode:
        rc = super().loop_read(max_packets)
        while rc == mqtt.MQTT_ERR_SUCCESS and self._sock is not None and self._read_at < len(self._read_buffer):
            rc = super().loop_read(max_packets)  # the socket will not say these bytes are there
        return rc

    def _sock_close(self) -> None:
        super()._sock_close()
        self._read_buffer, self._read_at = b"", 0  # what the next connection reads starts afresh

    def loop_write(self) -> mqtt.MQTTErrorCode:
        with self._write_lock:
            return super().loop_write()

    def _packet_queue(self, command: int, packet: bytes | bytearray, mid: int, qos: int,
                      info: mqtt.MQTTMessageInfo | None = None) -> mqtt.MQTTErrorCode:
        wake = self._sockpairW
        if command & 0xF0 not in _WRITTEN_HERE or self._sock is None or wake is None:
            return super()._packet_queue(command, packet, mid, qos, info)
        with self._write_lock:
            self._out_packet.append({"command": command, "mid": mid, "qos": qos, "pos": 0,
                                     "to_process": len(packet), "packet": packet, "info": info})
            rc = self._packet_write()
            left = rc != mqtt.MQTT_ERR_SUCCESS or bool(self._out_packet)
        if left:
            with contextlib.suppress(OSError):  # full: paho's thread is being woken already
                wake.send(b"0")
        return mqtt.MQTT_ERR_SUCCESS


_WRITTEN_HERE = frozenset((PUBLISH, PUBACK))
READ_CHUNK = 65536
_PAHO_INTERNALS = ("_packet_queue", "_packet_write", "_sock_recv", "_sock_close", "_out_packet", "_sockpairW")


@functools.cache
def _client_class() -> type[mqtt.Client]:
    """:class:`_Client` on the paho 2.x it was written against; paho's own client on one that lacks
    the internals it overrides (slower, as correct)."""
    probe = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    return _Client if all(hasattr(probe, name) for name in _PAHO_INTERNALS) else mqtt.Client


def _share_property_tables() -> None:
    """Make paho's ``Properties(packet_type)`` share one copy of its constant tables.

    paho builds its tables of property names and types (some 40 entries) again for every
    ``Properties``, which it makes for each PUBLISH and PUBACK sent or received: ~20 us each, a
    tenth of a client's CPU per file. The tables are only read, so one copy serves all.
    """
    if getattr(Properties, "_tables_shared", False):
        return
    template = Properties(PacketTypes.PUBLISH)
    types, names, table = template.types, template.names, template.properties

    def __init__(self: Properties, packetType: int) -> None:
        self.packetType = packetType
        self.types, self.names, self.properties = types, names, table

    Properties.__init__ = __init__  # type: ignore[method-assign]
    Properties._tables_shared = True  # type: ignore[attr-defined]


_share_property_tables()


class PackedProperties(Properties):
    """PUBLISH properties written once: paho packs a message's properties again at every send.

    Only what paho sends is fixed (its :meth:`pack`); the attributes stay empty, so one is
    for sending, never for reading.
    """

    def __init__(self, body: bytes) -> None:
        super().__init__(PacketTypes.PUBLISH)
        object.__setattr__(self, "_packed", VariableByteIntegers.encode(len(body)) + body)  # paho guards its names

    @classmethod
    def of(cls, *, response_topic: str | None = None, correlation: bytes | None = None,
           user: tuple[str, str] | None = None) -> PackedProperties:
        """Response Topic (8), Correlation Data (9) and one User Property (38), as paho writes them."""
        body = b""
        if response_topic is not None:
            body += b"\x08" + writeUTF(response_topic)
        if correlation is not None:
            body += b"\x09" + writeBytes(correlation)
        if user is not None:
            body += b"\x26" + writeUTF(user[0]) + writeUTF(user[1])
        return cls(body)

    def pack(self) -> bytes:
        return self._packed


def _no_delay(_client: mqtt.Client, _userdata: Any, sock: Any) -> None:
    with contextlib.suppress(OSError, AttributeError):  # not a TCP socket
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def unique_id(base: str, kind: str) -> str:
    """A client id for a connection that keeps no session (publishers, requesters, inboxes)."""
    return f"{base}-{kind}-{uuid.uuid4().hex[:12]}"


class Handoff:
    """Items put by one thread, taken by another; :attr:`pollable` is readable while some wait."""

    def __init__(self) -> None:
        self._items: deque[Any] = deque()
        self._read, self._write = socket.socketpair()
        self._read.setblocking(False)
        self._write.setblocking(False)
        self._fd = self._read.fileno()

    @property
    def pollable(self) -> int:
        """The file descriptor to poll (zmq.Poller reports plain sockets by their descriptor)."""
        return self._fd

    def put(self, item: Any) -> None:
        self._items.append(item)
        with contextlib.suppress(OSError):  # full: a wake-up is pending anyway; closed: we are stopping
            self._write.send(b"\0")

    def take(self, timeout: float | None = 0) -> Any | None:
        """The next item, or None when ``timeout`` seconds pass without one (None: wait for ever)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                return self._items.popleft()
            except IndexError:
                pass
            self._drain()
            try:  # an item put between the first look and the drain has had its wake-up drained
                return self._items.popleft()
            except IndexError:
                pass
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return None
            with contextlib.suppress(OSError, ValueError):  # closed meanwhile
                select.select([self._read], [], [], remaining)
            if self._read.fileno() < 0:
                return None

    def _drain(self) -> None:
        with contextlib.suppress(OSError):
            while self._read.recv(4096):
                pass

    def close(self) -> None:
        self._write.close()
        self._read.close()
