"""Requests to trollmoves servers over REQ sockets, pipelined and lazy-pirate retried.

Upstream opens a new REQ socket per request and sends one request at a time per listener.
Here each server gets a window of REQ sockets of each kind (``push``/``ack``) with a request
outstanding on each, so a burst of announcements is served in parallel; sockets are reused
after a reply. The window follows the rate per round trip (see :class:`RequestWindow`), between
``INITIAL_WINDOW`` and ``max_in_flight``; while requests wait, spare sockets connect ahead of it.
A request that gets no reply within its timeout is re-sent on a fresh
socket (the old one is closed with LINGER 0, as a REQ socket that timed out cannot be reused),
after a short backoff, up to ``attempts`` sends in all; then its callback gets no reply.

With ``curve`` keys every socket is a CURVE client of the servers' request sockets. A server
that does not admit our key (or does not speak CURVE) never answers, so such a request ends as
"no reply", with a hint at the keys in the error text.

Everything runs in the owning :class:`~trollmoves_roles.bus.loop.EventLoop`'s thread.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import zmq
from posttroll.message import Message

from trollmoves_roles.bus.loop import EventLoop, Timer
from trollmoves_roles.bus.security import CurveClient
from trollmoves_roles.bus.transport import ReplyCallback
from trollmoves_roles.observe.ratelimit import RateLimitedLog
from trollmoves_roles.protocol import codec

LOG = logging.getLogger(__name__)
_LIMITED = RateLimitedLog(LOG, period=10.0, burst=5)


DOWN_PERIOD = 30.0
"""Seconds a server that left a request unanswered is avoided when another source exists."""
IDLE_SOCKET_LIFETIME = 120.0
"""Seconds an unused server's sockets stay open."""
INITIAL_WINDOW = 4
"""Requests in flight per server and kind before round trips are known (and the least after)."""
GAIN = 2
"""Requests in flight per request the link and the server hold at once (their bandwidth-delay
product, as BBR's congestion window): the surplus keeps them busy through the round trips' spread."""


@dataclass(eq=False, slots=True)
class Request:
    """One request to one server; ``payload`` is the message as sent, or what builds it when
    it is first sent (encoded once)."""

    address: str
    payload: str | Callable[[], Message]
    timeout: float
    attempts: int
    callback: ReplyCallback
    kind: str
    sent: int = 0
    sent_at: float = 0.0
    fresh: bool = False
    """Sent on a new socket: its round trip includes connecting, so it does not size the window."""
    socket: zmq.Socket | None = None
    timer: Timer | None = None


@dataclass(slots=True)
class RequestWindow:
    """How many requests of one kind may be in flight to one server.

    Over a long link a fixed window caps the rate at window / round trip. As BBR does, the window
    follows what the link and the server deliver per round trip: at each reply (while requests
    wait to be sent), the replies that came back within its own round trip ``r`` give the rate
    (``replies / r``), the shortest round trip seen stands for the path without queues, and the
    target is ``GAIN * replies * shortest / r``. The window jumps up to the target (it doubles per
    round trip while the rate keeps up) and steps down by one per reply above it: it settles where
    round trips reach ``GAIN`` times the shortest, that is when requests wait at the server (a busy
    push pool) or on a full link, whatever the spread of push durations below that. A timeout
    sends it back to its floor; the shortest round trip is forgotten whenever the server goes idle
    (the next burst's first reply, unqueued, measures it again).
    """

    floor: int
    ceiling: int
    size: int = 0
    shortest: float = float("inf")
    replies: deque[float] = field(default_factory=deque)
    """When the latest replies came (the last ``2 * ceiling``; enough to count one round trip's)."""

    def __post_init__(self) -> None:
        self.size = self.floor

    @classmethod
    def for_cap(cls, max_in_flight: int) -> RequestWindow:
        """A window from ``INITIAL_WINDOW`` (or ``max_in_flight``, when smaller) up to ``max_in_flight``."""
        return cls(min(INITIAL_WINDOW, max_in_flight), max_in_flight)

    def answered(self, now: float, round_trip: float | None, backlog: bool) -> None:
        """A reply came at ``now`` after ``round_trip`` seconds (None: unknown or misleading, as on a
        socket still connecting); ``backlog``: requests of this kind wait to be sent."""
        self.replies.append(now)
        if len(self.replies) > 2 * self.ceiling:
            self.replies.popleft()
        if round_trip is None or round_trip <= 0:
            return
        self.shortest = min(self.shortest, round_trip)
        if not backlog:
            return
        since = now - round_trip
        delivered = 0
        for at in reversed(self.replies):
            if at < since:
                break
            delivered += 1
        target = math.ceil(GAIN * delivered * self.shortest / round_trip)
        if target > self.size:
            self.size = min(self.ceiling, target)
        elif target < self.size:
            self.size = max(self.floor, self.size - 1)

    def timed_out(self) -> None:
        self.size = self.floor
        self.replies.clear()

    def idle(self) -> None:
        self.shortest = float("inf")


@dataclass(eq=False, kw_only=True)
class ServerQueue:
    """One server's requests of each kind (``push``, ``ack``): those waiting to be sent, and those in
    flight within the kind's :class:`RequestWindow`. The bookkeeping every transport's requester
    shares; sending and replies are the requester's."""

    max_in_flight: int
    clock: Callable[[], float] = time.monotonic
    queue: dict[str, deque[Any]] = field(default_factory=dict)
    in_flight: dict[str, int] = field(default_factory=dict)
    windows: dict[str, RequestWindow] = field(default_factory=dict)
    down_until: float = 0.0

    def window(self, kind: str) -> RequestWindow:
        window = self.windows.get(kind)
        if window is None:
            window = self.windows[kind] = RequestWindow.for_cap(self.max_in_flight)
        return window

    def add(self, kind: str, request: Any) -> None:
        self.queue.setdefault(kind, deque()).append(request)

    def next_to_send(self, kind: str) -> Any | None:
        """The next waiting request, counted in flight, when the window has room; else None."""
        queue = self.queue.get(kind)
        window = self.window(kind)
        if not queue and not self.in_flight.get(kind, 0):
            window.idle()
        if not queue or self.in_flight.get(kind, 0) >= window.size:
            return None
        self.in_flight[kind] = self.in_flight.get(kind, 0) + 1
        return queue.popleft()

    def done(self, kind: str) -> None:
        """A request of ``kind`` is no longer in flight (answered or abandoned)."""
        self.in_flight[kind] -= 1

    def answered(self, kind: str, round_trip: float | None) -> None:
        """A reply came; ``round_trip`` sizes the window unless None (it would mislead)."""
        self.down_until = 0.0
        self.window(kind).answered(self.clock(), round_trip, bool(self.queue.get(kind)))

    def abandoned(self) -> None:
        """A request went unanswered after every attempt: avoid this server for ``DOWN_PERIOD``."""
        self.down_until = time.monotonic() + DOWN_PERIOD

    def is_down(self) -> bool:
        return self.down_until > time.monotonic()

    def pending(self) -> int:
        return sum(self.in_flight.values()) + sum(len(q) for q in self.queue.values())


@dataclass(eq=False, kw_only=True)
class _Server(ServerQueue):
    address: str
    idle: list[zmq.Socket] = field(default_factory=list)
    """Sockets without a request: answered ones at the end, spares (still connecting) at the front."""
    unanswered: set[zmq.Socket] = field(default_factory=set)
    """Sockets that have not had a reply yet: their first round trip includes connecting."""
    last_used: float = field(default_factory=time.monotonic)


class ZmqRequester:
    """Send requests to servers (``host:port``) and call back with the replies."""

    def __init__(self, loop: EventLoop, *, max_in_flight: int = 64, backoff: float = 0.2,
                 context: zmq.Context | None = None, curve: CurveClient | None = None) -> None:
        self._loop = loop
        self._context = context or zmq.Context.instance()
        self._curve = curve
        self.max_in_flight = max_in_flight
        self.backoff = backoff
        self._servers: dict[str, _Server] = {}
        self._outstanding: set[Request] = set()
        self._closed = False
        self._sweeper = loop.call_later(IDLE_SOCKET_LIFETIME, self._sweep)

    def request(self, address: str, message: Message | Callable[[], Message], *, timeout: float, attempts: int,
                callback: ReplyCallback, kind: str = "push") -> Request:
        """Queue ``message`` (or a function making it, called when it is first sent) for
        ``address``; ``callback`` runs in the loop with the outcome."""
        server = self._servers.get(address)
        if server is None:
            server = self._servers[address] = _Server(address=address, max_in_flight=self.max_in_flight)
        request = Request(address, message if callable(message) else codec.encode(message), timeout, attempts,
                          callback, kind)
        server.add(kind, request)
        self._pump(server, kind)
        return request

    def is_down(self, address: str) -> bool:
        """True when ``address`` recently left a request unanswered after every attempt."""
        server = self._servers.get(address)
        return server is not None and server.is_down()

    def pending(self) -> int:
        """Requests queued or in flight (for tests and shutdown logs)."""
        return sum(server.pending() for server in self._servers.values())

    def close(self) -> None:
        """Close every socket; outstanding requests are dropped without callback."""
        self._closed = True
        self._sweeper.cancel()
        for server in self._servers.values():
            for queue in server.queue.values():
                for request in queue:
                    if request.timer:
                        request.timer.cancel()
                queue.clear()
            for sock in server.idle:
                sock.close(linger=0)
            server.idle.clear()
        for request in list(self._outstanding):
            self._drop_socket(request)
        self._outstanding.clear()

    # -- internals -------------------------------------------------------------------

    def _pump(self, server: _Server, kind: str) -> None:
        while not self._closed and (request := server.next_to_send(kind)) is not None:
            self._send(server, request)
        if not self._closed and server.queue.get(kind):
            self._open_spares(server, kind)

    def _open_spares(self, server: _Server, kind: str) -> None:
        """While requests wait, keep sockets connected for twice the window: connecting costs
        round trips (TCP, then ZMTP's handshake), which a window doubling per round trip would
        otherwise wait for."""
        have = len(server.idle) + sum(server.in_flight.values())
        for _ in range(min(self.max_in_flight, 2 * server.window(kind).size) - have):
            try:
                server.idle.insert(0, self._connect(server))
            except zmq.ZMQError:
                return  # the request that needs one reports it

    def _connect(self, server: _Server) -> zmq.Socket:
        """A new REQ socket connecting to ``server``; raises ZMQError (closed) if refused."""
        sock = self._context.socket(zmq.REQ)
        sock.setsockopt(zmq.LINGER, 0)
        if self._curve is not None:
            self._curve.apply(sock)
        try:
            sock.connect(f"tcp://{server.address}")
        except zmq.ZMQError:
            sock.close(linger=0)
            raise
        server.unanswered.add(sock)
        return sock

    def _send(self, server: _Server, request: Request) -> None:
        if server.idle:
            sock = server.idle.pop()
        else:
            try:
                sock = self._connect(server)
            except zmq.ZMQError as err:
                self._release(server, request.kind)
                self._callback(request, None, f"cannot connect to {server.address}: {err}")
                return
        request.fresh = sock in server.unanswered
        server.last_used = time.monotonic()
        request.socket = sock
        request.sent += 1
        self._outstanding.add(request)
        self._loop.register(sock, lambda: self._on_reply(server, request))
        if not isinstance(request.payload, str):
            request.payload = codec.encode(request.payload())
        sock.send_string(request.payload)
        request.sent_at = time.monotonic()
        request.timer = self._loop.call_later(request.timeout, self._on_timeout, server, request)

    def _on_reply(self, server: _Server, request: Request) -> None:
        sock = request.socket
        if sock is None:
            return
        try:
            raw = sock.recv(zmq.NOBLOCK)
        except zmq.Again:
            return
        if request.timer:
            request.timer.cancel()
        self._loop.unregister(sock)
        self._outstanding.discard(request)
        request.socket = None
        server.idle.append(sock)
        server.unanswered.discard(sock)
        server.last_used = time.monotonic()
        server.answered(request.kind, None if request.fresh else server.last_used - request.sent_at)
        self._release(server, request.kind)
        try:
            reply, error = codec.decode(raw), None
        except Exception as err:  # upstream answers a push without uri with the bare text "None"
            reply, error = None, f"invalid reply {raw[:200]!r} ({err})"
        self._callback(request, reply, error)

    def _on_timeout(self, server: _Server, request: Request) -> None:
        self._drop_socket(request)
        server.window(request.kind).timed_out()
        if request.sent < request.attempts:
            delay = self.backoff * 2 ** (request.sent - 1)
            _LIMITED.warning("resend", "No reply from %s to %s in %.1f s (attempt %d of %d); "
                             "re-sending in %.1f s", request.address, request.kind, request.timeout, request.sent,
                             request.attempts, delay)
            request.timer = self._loop.call_later(delay, self._resend, server, request)
            return
        hint = (" (CURVE: is our key in the server's clients_public_keys_directory, and server_public_key_file "
                "its key?)" if self._curve is not None else "")
        _LIMITED.error("abandon", "No reply from %s to %s after %d attempts; abandoning it%s",
                       request.address, request.kind, request.attempts, hint)
        server.abandoned()
        self._release(server, request.kind)
        self._callback(request, None, f"no reply from {request.address} after {request.attempts} attempts{hint}")

    def _resend(self, server: _Server, request: Request) -> None:
        if not self._closed:
            self._send(server, request)

    def _drop_socket(self, request: Request) -> None:
        if request.timer:
            request.timer.cancel()
        sock = request.socket
        self._outstanding.discard(request)
        request.socket = None
        if sock is not None:
            self._loop.unregister(sock)
            sock.close(linger=0)
            if (server := self._servers.get(request.address)) is not None:
                server.unanswered.discard(sock)

    def _release(self, server: _Server, kind: str) -> None:
        server.done(kind)
        self._pump(server, kind)

    def _callback(self, request: Request, reply: Message | None, error: str | None) -> None:
        try:
            request.callback(reply, error)
        except Exception:  # a failing callback must not corrupt the request bookkeeping
            LOG.exception("Error handling the reply from %s", request.address)

    def _sweep(self) -> None:
        now = time.monotonic()
        for address, server in list(self._servers.items()):
            if not server.pending() and now - server.last_used > IDLE_SOCKET_LIFETIME:
                for sock in server.idle:
                    sock.close(linger=0)
                del self._servers[address]
        if not self._closed:
            self._sweeper = self._loop.call_later(IDLE_SOCKET_LIFETIME, self._sweep)
