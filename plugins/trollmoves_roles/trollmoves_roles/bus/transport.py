"""The seam between the roles and a message bus.

Roles publish announcements and results, subscribe to providers' topics, send requests and
serve them only through a :class:`Transport`, picked by the scheme of a bus address
(``tcp://`` for posttroll over ZeroMQ, the default). A transport is registered like a mover:
a plugin's ``trollmoves_register_transports`` hook returns its class (see
:mod:`trollmoves_roles.runtime.transports`).

Everything a transport hands out is read from a role's :class:`~trollmoves_roles.bus.loop.EventLoop`
or its own thread: :attr:`Subscriber.pollable` and :attr:`RequestInbox.pollable` are what the
loop polls (a zmq socket or a file descriptor), and reads on them never block.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from posttroll.message import Message

from trollmoves_core.transport import Transport

if TYPE_CHECKING:
    from trollmoves_roles.bus.loop import EventLoop

ReplyCallback = Callable[[Message | None, str | None], None]
"""Called with ``(reply, None)`` or ``(None, error text)``."""


class Publisher(Protocol):
    """Sends messages to every subscriber of their topic; thread-safe."""

    name: str
    port: int

    def send(self, message: Message) -> None: ...

    def heartbeat(self, min_interval: int = 30) -> None:
        """A ``beat`` on ``/heartbeat/<name>`` unless one went out in the last ``min_interval`` s."""

    def stop(self) -> None: ...


class Subscriber(Protocol):
    """Messages on some topics from some providers, read without blocking."""

    addresses: list[str]

    @property
    def pollable(self) -> Any:
        """What an event loop polls to learn that :meth:`recv` has a message."""

    def recv(self, timeout: float | None = None) -> Message | None:
        """The next message, or None when ``timeout`` seconds pass without one (0: do not wait)."""

    def add(self, address: str) -> None: ...

    def try_add(self, address: str) -> bool:
        """:meth:`add`, logging instead of raising for an address the transport rejects."""

    def set_topics(self, topics: Iterable[str]) -> None: ...

    def reconnect_dropped(self) -> int:
        """Reconnect providers the transport dropped for good; how many (call every second or so)."""

    def close(self) -> None: ...


class Requester(Protocol):
    """Requests to servers, answered through callbacks in the owning event loop."""

    def request(self, address: str, message: Message | Callable[[], Message], *, timeout: float, attempts: int,
                callback: ReplyCallback, kind: str = "push") -> object: ...

    def is_down(self, address: str) -> bool:
        """True when ``address`` recently left a request unanswered after every attempt."""

    def pending(self) -> int: ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class IncomingRequest:
    """One request read by a :class:`RequestInbox`: the decoded message, or why it could not
    be read; ``peer`` is the sender's address, ``token`` what :meth:`RequestInbox.reply` needs."""

    request: Message | str
    peer: str
    token: object


class RequestInbox(Protocol):
    """Where a server or mirror receives requests and sends the replies."""

    address: str

    @property
    def pollable(self) -> Any: ...

    def receive(self) -> IncomingRequest | None:
        """The next request, or None when none is waiting."""

    def reply(self, token: object, message: Message) -> None:
        """Answer the request ``token`` came with (from the thread that reads the inbox); a reply
        that cannot be sent (the peer went away) is logged, not raised."""

    def close(self) -> None: ...


class MessageTransport(Transport, ABC):
    """One way for roles to reach each other; ``SCHEMES`` name the bus addresses it serves."""

    BROKERED: ClassVar[bool] = False
    """True when everything goes through a broker: addresses only name endpoints there, so a
    request inbox takes the address announced to clients (``host:port``), not one to bind."""

    @classmethod
    def for_bus(cls, address: str | None) -> MessageTransport:
        """The transport for the bus at ``address`` (a broker's transport keeps it; ZeroMQ needs none)."""
        return cls()

    @abstractmethod
    def publisher(self, address: str, *, name: str, nameservers: Iterable[str] | None = None,
                  aliases: Iterable[str] = ()) -> Publisher:
        """A started publisher on ``address`` (``port`` 0 binds a free one); ConfigError when it cannot."""

    @abstractmethod
    def subscriber(self, addresses: Iterable[str], topics: Iterable[str], *, security: Any = None) -> Subscriber:
        """Subscribe to ``topics`` (posttroll subject prefixes) from the providers at ``addresses``."""

    @abstractmethod
    def requester(self, loop: EventLoop, *, max_in_flight: int = 64, security: Any = None) -> Requester:
        """Send requests from ``loop``'s thread."""

    @abstractmethod
    def request_inbox(self, address: str, *, security: Any = None, bind_retry: float = 0.0,
                      section: str = "") -> RequestInbox:
        """Receive requests on ``address``; a ConfigError names ``section`` when it cannot."""
