"""The posttroll bus over ZeroMQ (``tcp://``): upstream trollmoves' wire, and the default transport.

Publishers are posttroll PUB sockets (never multicast), subscribers plain SUB sockets, requests
go over REQ sockets (:class:`~trollmoves_roles.bus.requester.ZmqRequester`) to a server's ROUTER
socket (:class:`RouterInbox`). ``security`` is a :class:`~trollmoves_roles.bus.security.CurveClient`
for the client side and a :class:`~trollmoves_roles.bus.security.Policy` for a request inbox.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, ClassVar

import zmq
from posttroll.message import Message

from trollmoves_core.exceptions import ConfigError
from trollmoves_roles.bus import reqrep
from trollmoves_roles.bus import security as zmq_security
from trollmoves_roles.bus.posttroll import BusPublisher, Subscription
from trollmoves_roles.bus.requester import ZmqRequester
from trollmoves_roles.bus.transport import IncomingRequest, MessageTransport
from trollmoves_roles.protocol import codec

if TYPE_CHECKING:
    from trollmoves_roles.bus.loop import EventLoop

LOG = logging.getLogger(__name__)

REQUEST_MAX_BYTES = 4 * 1024 * 1024
"""Larger requests are dropped by zmq, which disconnects the sender (a push is a few kB)."""


class ZeroMQTransport(MessageTransport):
    """posttroll messages over ZeroMQ sockets, as upstream trollmoves speaks them."""

    NAME: ClassVar[str] = "zeromq"
    SCHEMES: ClassVar[tuple[str, ...]] = ("tcp", "ipc", "inproc")

    def publisher(self, address: str, *, name: str, nameservers: Iterable[str] | None = None,
                  aliases: Iterable[str] = ()) -> BusPublisher:
        bind, port = _bind_and_port(address)
        try:
            return BusPublisher(port, bind=bind, name=name, nameservers=list(nameservers or []) or None,
                                aliases=aliases)
        except zmq.ZMQError as err:
            raise ConfigError(f"cannot publish on tcp://{bind}:{port}: {zmq.strerror(err.errno)}") from None

    def subscriber(self, addresses: Iterable[str], topics: Iterable[str], *, security: Any = None) -> Subscription:
        return Subscription(addresses, topics, curve=security)

    def requester(self, loop: EventLoop, *, max_in_flight: int = 64, security: Any = None) -> ZmqRequester:
        return ZmqRequester(loop, max_in_flight=max_in_flight, curve=security)

    def request_inbox(self, address: str, *, security: Any = None, bind_retry: float = 0.0,
                      section: str = "") -> RouterInbox:
        return RouterInbox(address, policy=security, bind_retry=bind_retry, section=section)


class RouterInbox:
    """Requests on a ROUTER socket bound to ``address``; with a ``policy``, CURVE and address
    checks by ZAP (a refused peer never gets through). Use from one thread."""

    def __init__(self, address: str, *, policy: zmq_security.Policy | None = None, bind_retry: float = 0.0,
                 section: str = "") -> None:
        self.address = address if "://" in address else f"tcp://{address}"
        self._socket = zmq_security.request_context().socket(zmq.ROUTER)
        self._socket.setsockopt(zmq.LINGER, 1000)
        self._socket.setsockopt(zmq.MAXMSGSIZE, REQUEST_MAX_BYTES)
        self._domain = None
        if policy is not None:
            try:
                self._domain = zmq_security.secure(self._socket, policy)
            except zmq_security.SecurityError as err:
                self._socket.close(0)
                raise ConfigError(str(err), section=section, key="server_secret_key_file") from None
        try:
            reqrep.bind(self._socket, self.address, retry=bind_retry, section=section)
        except ConfigError:
            zmq_security.release(self._domain)
            raise

    @property
    def pollable(self) -> zmq.Socket:
        return self._socket

    def receive(self) -> IncomingRequest | None:
        try:
            parts = self._socket.recv_multipart(zmq.NOBLOCK, copy=False)
        except zmq.Again:
            return None
        peer = reqrep.peer_address(parts[-1])
        envelope, request = reqrep.read_request([part.bytes for part in parts])
        return IncomingRequest(request, peer, envelope)

    def reply(self, token: object, message: Message) -> None:
        try:
            self._socket.send_multipart([*token, codec.encode(message).encode()], zmq.NOBLOCK)  # type: ignore[misc]
        except zmq.ZMQError as err:  # the peer is gone, or its queue is full
            LOG.warning("%s: could not send a reply: %s", self.address, err)

    def close(self) -> None:
        self._socket.close(linger=1000)
        zmq_security.release(self._domain)


def _bind_and_port(address: str) -> tuple[str, int]:
    """``tcp://bind:port`` (or ``bind:port``) as its two parts; a ConfigError for anything else."""
    rest = address.split("://", 1)[-1]
    bind, _, port = rest.rpartition(":")
    if not bind or not port.isdigit():
        raise ConfigError(f"expected tcp://ADDRESS:PORT to publish on, got {address!r}")
    return bind.strip("[]") if bind.startswith("[") else bind, int(port)
