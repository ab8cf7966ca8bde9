"""The posttroll bus as every role uses it: publishers that never multicast, and a
subscriber that survives malformed messages.

posttroll's own ``Subscriber.recv`` dies on a malformed header and polls with a sleep per
message; :class:`Subscription` is a plain zmq SUB socket that decodes with
:func:`trollmoves_roles.protocol.codec.decode` and drops what does not decode, with a rate-limited log line.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

import zmq
from posttroll.message import Message
from posttroll.publisher import Publisher

from trollmoves_core.exceptions import ConfigError
from trollmoves_roles.protocol import codec

if TYPE_CHECKING:
    from trollmoves_roles.bus.security import CurveClient

LOG = logging.getLogger(__name__)

MESSAGE_VERSION = "v1.2"
"""The posttroll message version of everything the roles send. posttroll 1.16 writes ``v1.01``
for data without a datetime, while upstream trollmoves always writes ``v1.2``: peers see one format."""

HEARTBEAT_INTERVAL = 30
"""Seconds between heartbeats, as upstream (``{"min_interval": 30}``)."""

HEARTBEAT_TOPIC = "/heartbeat"
"""Every heartbeat's subject starts with this (``/heartbeat/<publisher name>``)."""

RECONNECT_GRACE = 1.0
"""Seconds after a disconnect without zmq retrying before :class:`Subscription` reconnects itself."""

MAX_MESSAGE_BYTES = 16 * 1024 * 1024
"""Messages larger than this are dropped unread (zmq enforces it per socket)."""

SEND_HWM = 100_000
"""Messages a publisher queues per subscriber before zmq drops (its default, 1000, silently
loses a burst to a subscriber that is busy for a moment; 100,000 small messages are ~30 MB)."""


def topic_prefix(topic: str) -> str:
    """The byte prefix posttroll puts on the wire for ``topic`` (``/a`` → ``pytroll://a``)."""
    if topic.startswith("pytroll:"):
        return topic
    if topic.startswith("/"):
        return "pytroll:/" + topic
    return "pytroll://" + topic


class BusPublisher:
    """A started posttroll publisher on ``tcp://<bind>:<port>``.

    It never multicasts. With ``nameservers`` (a list of hosts) it also registers, under
    ``name`` and ``aliases``, the address ``tcp://<advertise>:<port>`` with those
    nameservers only. ``port=0`` binds a free port; read it back from :attr:`port`.
    """

    def __init__(self, port: int, *, bind: str = "*", name: str = "trollmoves",
                 nameservers: Iterable[str] | None = None, advertise: str | None = None,
                 aliases: Iterable[str] = ()) -> None:
        self.name = name
        self._publisher = _with_send_hwm(Publisher(f"tcp://{bind}:{port}", name=name)).start()
        self.port: int = self._publisher.port_number
        self._registration = None
        hosts = [h for h in (nameservers or []) if h]
        if hosts:
            from posttroll.message_broadcaster import sendaddressservice
            address = f"tcp://{advertise or _advertised_host(bind)}:{self.port}"
            self._registration = sendaddressservice(name, address, [name, *aliases], 2, hosts).start()
        self._last_beat = 0.0

    def send(self, message: Message) -> None:
        """Publish ``message`` as a :data:`MESSAGE_VERSION` message (thread-safe)."""
        self._publisher.send(codec.encode(message))

    def heartbeat(self, min_interval: int = HEARTBEAT_INTERVAL) -> None:
        """Send a ``beat`` on ``/heartbeat/<name>`` unless one went out in the last ``min_interval`` s."""
        now = time.monotonic()
        if now - self._last_beat >= min_interval:
            self._last_beat = now
            self.send(codec.make_message(f"/heartbeat/{self.name}", "beat", {"min_interval": min_interval}))

    def stop(self) -> None:
        if self._registration is not None:
            self._registration.stop()
        self._publisher.stop()


def versioned(message: Message) -> Message:
    """``message``, set to be written as :data:`MESSAGE_VERSION`."""
    message.version = MESSAGE_VERSION
    return message


def address_problem(address: str) -> str | None:
    """Why ``address`` (``tcp://host:port`` or ``host:port``) cannot be subscribed to, or None."""
    text = address if "://" in address else f"tcp://{address}"
    scheme, _, rest = text.partition("://")
    if scheme in ("ipc", "inproc"):
        return None if rest else f"expected a path after {scheme}://, got {address!r}"
    if scheme != "tcp":
        return f"expected tcp://host:port, got {address!r}"
    host, _, port = rest.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        return f"expected host:port or tcp://host:port, got {address!r}"
    return None


def check_addresses(addresses: Iterable[str], option: str = "--subscribe-address") -> None:
    """Reject a malformed subscription address given on the command line as a usage error."""
    for address in addresses:
        problem = address_problem(address)
        if problem:
            raise ConfigError(f"{option}: {problem}", file="command line")


def subscribe_nameservers(values: Iterable[str] | None) -> list[str] | None:
    """``--subscribe-nameserver`` values without the ``false``/``none`` that mean "no nameserver"
    (None, "not given", stays None)."""
    if values is None:
        return None
    return [n for n in values if n.lower() not in ("false", "none", "")]


def _with_send_hwm(publisher: Publisher) -> Publisher:
    """``publisher`` (not started yet) set to bind its socket with SNDHWM = :data:`SEND_HWM`.

    zmq applies a high-water mark only to connections made after it is set, and posttroll
    binds inside ``start()`` without a way to pass options: wrap its socket set-up. Other
    posttroll versions keep their default HWM (logged at debug level).
    """
    inner = getattr(publisher, "_publisher", None)
    if inner is None or not callable(getattr(inner, "_create_socket", None)) or not hasattr(inner, "destination"):
        LOG.debug("Cannot raise the send high-water mark of this posttroll publisher")
        return publisher
    from posttroll.backends.zmq.socket import set_up_server_socket

    def create_socket() -> None:
        inner.publish_socket, inner.port_number, inner._authenticator = set_up_server_socket(
            zmq.PUB, inner.destination, options={zmq.SNDHWM: SEND_HWM},
            port_interval=(inner.min_port, inner.max_port))

    inner._create_socket = create_socket
    return publisher


def _advertised_host(bind: str) -> str:
    if bind not in ("*", "0.0.0.0", ""):
        return bind
    import socket
    return socket.gethostname()


class Subscription:
    """A zmq SUB socket on ``addresses`` filtered by posttroll ``topics``.

    Use from one thread. :meth:`recv` returns the next decoded message, or None on timeout.
    Anything that does not decode is logged (at most once per 10 s) and skipped.

    With ``curve`` the socket is a CURVE client, for a publisher using posttroll's
    ``secure_zmq`` backend (``curve.server`` is that publisher's public key). A publisher that
    does not admit our key, or does not speak CURVE, sends nothing: zmq retries the handshake
    quietly, so check the publisher's log when nothing arrives.
    """

    def __init__(self, addresses: Iterable[str], topics: Iterable[str], *,
                 context: zmq.Context | None = None, curve: CurveClient | None = None) -> None:
        self._context = context or zmq.Context.instance()
        self._socket = self._context.socket(zmq.SUB)
        self._socket.setsockopt(zmq.LINGER, 0)
        if curve is not None:
            curve.apply(self._socket)
        self._socket.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES)
        self._socket.setsockopt(zmq.RCVHWM, 0)  # never drop on our side; memory is cheaper than a lost file
        # zmq never reconnects a publisher it dropped for a protocol error (a message over
        # MAX_MESSAGE_BYTES): one oversized message would deafen us for good. Watch for drops.
        self._monitor = self._socket.get_monitor_socket(
            zmq.EVENT_DISCONNECTED | zmq.EVENT_CONNECT_DELAYED | zmq.EVENT_CONNECT_RETRIED | zmq.EVENT_CONNECTED)
        self._dropped_at: dict[str, float] = {}  # endpoint -> when zmq reported it disconnected
        self._poller = zmq.Poller()
        self._poller.register(self._socket, zmq.POLLIN)
        self._poller.register(self._monitor, zmq.POLLIN)
        self.reconnects = 0
        self.addresses: list[str] = []
        self.topics: list[str] = []
        self.set_topics(topics)
        for address in addresses:
            self.add(address)
        self._dropped = 0
        self._last_warning = 0.0
        self._lock = threading.Lock()

    @property
    def pollable(self) -> zmq.Socket:
        """The SUB socket, to register with an outside poller; read it with ``recv(0)``."""
        return self._socket

    def add(self, address: str) -> None:
        """Connect to one more publisher (``tcp://host:port`` or ``host:port``); known ones are ignored."""
        address = address if "://" in address else f"tcp://{address}"
        if address in self.addresses:
            return
        self._socket.connect(address)
        self.addresses.append(address)

    def try_add(self, address: str) -> bool:
        """:meth:`add`, logging instead of raising when zmq rejects the address (the others keep working)."""
        try:
            self.add(address)
        except Exception as err:  # zmq rejects the address
            LOG.error("Cannot subscribe to %s: %s", address, err)
            return False
        return True

    def set_topics(self, topics: Iterable[str]) -> None:
        """Filter on ``topics`` from now on (a config reload), without reconnecting."""
        wanted = list(dict.fromkeys(topic_prefix(t) for t in topics))
        for prefix in self.topics:
            if prefix not in wanted:
                self._socket.setsockopt_string(zmq.UNSUBSCRIBE, prefix)
        for prefix in wanted:
            if prefix not in self.topics:
                self._socket.setsockopt_string(zmq.SUBSCRIBE, prefix)
        self.topics = wanted

    def recv(self, timeout: float | None = None) -> Message | None:
        """The next message, or None when ``timeout`` seconds pass without one."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            wait = remaining
            if self._dropped_at:  # wake up to check whether zmq reconnects them itself
                wait = RECONNECT_GRACE if wait is None else min(wait, RECONNECT_GRACE)
            events = dict(self._poller.poll(None if wait is None else int(wait * 1000)))
            if self._monitor in events or self._dropped_at:
                self.reconnect_dropped()
            if self._socket not in events:
                if deadline is not None and time.monotonic() >= deadline:
                    return None
                continue
            raw = self._socket.recv()
            try:
                return codec.decode(raw)
            except Exception as err:  # any malformed message: drop it, keep serving
                self._note_dropped(raw, err)
                if deadline is not None and time.monotonic() >= deadline:
                    return None

    def reconnect_dropped(self) -> int:
        """Connect again to publishers zmq dropped without retrying; how many.

        zmq reconnects by itself after a publisher restart (it reports a retry within its
        reconnect interval); after a protocol error it never does. A disconnect not followed
        by a retry within :data:`RECONNECT_GRACE` seconds is reconnected here.
        :meth:`recv` calls this itself; a caller polling :attr:`socket` from an outside poller
        should call it every second or so (a dropped publisher never makes the socket readable).
        """
        from zmq.utils.monitor import recv_monitor_message

        now = time.monotonic()
        while self._monitor.poll(0):
            try:
                event = recv_monitor_message(self._monitor)
            except zmq.ZMQError:
                break
            endpoint = event["endpoint"].decode(errors="replace")
            if event["event"] == zmq.EVENT_DISCONNECTED:
                self._dropped_at[endpoint] = now
            else:  # zmq is reconnecting (or has) on its own
                self._dropped_at.pop(endpoint, None)
        count = 0
        for endpoint, since in list(self._dropped_at.items()):
            if now - since < RECONNECT_GRACE:
                continue
            del self._dropped_at[endpoint]
            if endpoint not in self.addresses:
                continue
            with contextlib.suppress(zmq.ZMQError):  # already gone after a protocol error
                self._socket.disconnect(endpoint)
            self._socket.connect(endpoint)
            self.reconnects += 1
            count += 1
            LOG.info("Reconnecting to %s: zmq dropped the connection and does not retry", endpoint)
        return count

    def _note_dropped(self, raw: bytes, err: Exception) -> None:
        self._dropped += 1
        now = time.monotonic()
        if now - self._last_warning >= 10:
            self._last_warning = now
            LOG.warning("Dropped %d malformed message(s); latest %r: %s", self._dropped, raw[:120], err)
            self._dropped = 0

    def close(self) -> None:
        with contextlib.suppress(zmq.ZMQError):
            self._socket.disable_monitor()
        self._monitor.close(linger=0)
        self._socket.close(linger=0)


class NameserverLookup:
    """Ask posttroll nameservers (REQ on their port, never multicast) for publisher addresses.

    A daemon thread asks each nameserver for each service every ``interval`` seconds;
    :meth:`new_addresses` returns, once each, the addresses found since the last call, for the
    thread that owns the :class:`Subscription` to add. An unreachable nameserver is logged once
    per outage and asked again later.

    :param nameservers: hosts (the configured nameserver port is used) or ``tcp://host:port``.
    :param services: service names; ``""`` means every registered publisher.
    """

    def __init__(self, nameservers: Iterable[str], services: Iterable[str] = ("",), *,
                 interval: float = 30.0, timeout: float = 2.0) -> None:
        self.nameservers = [n for n in nameservers if n]
        self.services = list(services) or [""]
        self.interval, self.timeout = interval, timeout
        self._found: list[str] = []
        self._known: set[str] = set()
        self._failing: set[str] = set()
        self._lock = threading.Lock()
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._run, name="nameserver-lookup", daemon=True)

    def start(self) -> NameserverLookup:
        if self.nameservers:
            self._thread.start()
        return self

    def new_addresses(self) -> list[str]:
        with self._lock:
            found, self._found = self._found, []
        return found

    def lookup_once(self) -> None:
        """Ask every nameserver once (the thread does this every ``interval`` s)."""
        from posttroll.ns import get_pub_address
        for nameserver in self.nameservers:
            for service in self.services:
                try:
                    entries = get_pub_address(service, timeout=self.timeout, nameserver=nameserver) or []
                except Exception as err:  # unreachable or confused nameserver: try again next round
                    if nameserver not in self._failing:
                        self._failing.add(nameserver)
                        LOG.warning("Nameserver %s did not answer for service %r: %s", nameserver, service, err)
                    continue
                if nameserver in self._failing:
                    self._failing.discard(nameserver)
                    LOG.info("Nameserver %s answers again", nameserver)
                for entry in entries:
                    address = entry.get("URI") if isinstance(entry, dict) else entry
                    if address and address not in self._known:
                        self._known.add(address)
                        LOG.info("Nameserver %s: subscribing to %s (service %r)", nameserver, address, service)
                        with self._lock:
                            self._found.append(address)

    def _run(self) -> None:
        while not self._halt.is_set():
            self.lookup_once()
            self._halt.wait(self.interval)

    def stop(self) -> None:
        self._halt.set()
        if self._thread.is_alive():
            self._thread.join(self.timeout + 1)
