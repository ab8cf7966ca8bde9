"""Scripted trollmoves peers for chain-level tests: a server ROUTER whose replies the test
chooses (errors, silence, garbage, held replies) and an announcing publisher."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import zmq
from posttroll.message import Message
from trollmoves_roles.bus.posttroll import BusPublisher

from support.bus import free_port

NO_REPLY = object()
"""Handler result: do not answer this request (the client must time out)."""
HOLD = object()
"""Handler result: keep the request until :meth:`ScriptedServer.release` is called."""


def serve_everything(message: Message) -> Any:
    """Upstream's replies: push → file/dataset/collection with the same data, ack → ack, else unknown."""
    if message.type == "push":
        atype = "file" if "uri" in message.data else "dataset" if "dataset" in message.data else "collection"
        return Message(message.subject, atype, message.data)
    if message.type == "ack":
        return Message(message.subject, "ack", message.data)
    return Message(message.subject, "unknown")


class ScriptedServer:
    """A ROUTER on 127.0.0.1 answering each request with ``handler(message)``.

    The handler returns a Message, a raw str/bytes payload, :data:`NO_REPLY` or :data:`HOLD`.
    Every request received is appended to :attr:`requests`.
    """

    def __init__(self, handler: Callable[[Message], Any] = serve_everything) -> None:
        self.handler = handler
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.requests: list[Message] = []
        self.held: list[tuple[bytes, Message]] = []
        self._release = threading.Event()
        self._halt = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        assert self._ready.wait(5)

    def pushes(self, uid: str | None = None) -> list[Message]:
        return [m for m in list(self.requests) if m.type == "push" and (uid is None or m.data.get("uid") == uid)]

    def acks(self, uid: str | None = None) -> list[Message]:
        return [m for m in list(self.requests) if m.type == "ack" and (uid is None or m.data.get("uid") == uid)]

    def release(self) -> None:
        """Answer every held request (with :func:`serve_everything`)."""
        self._release.set()

    def _run(self) -> None:
        sock = zmq.Context.instance().socket(zmq.ROUTER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.bind(f"tcp://127.0.0.1:{self.port}")
        self._ready.set()
        try:
            while not self._halt.is_set():
                if self._release.is_set():
                    self._release.clear()
                    held, self.held = self.held, []
                    for identity, message in held:
                        sock.send_multipart([identity, b"", serve_everything(message).encode().encode()])
                if not sock.poll(20):
                    continue
                identity, _, payload = sock.recv_multipart()
                message = Message.decode(payload)
                self.requests.append(message)
                reply = self.handler(message)
                if reply is HOLD:
                    self.held.append((identity, message))
                elif reply is not NO_REPLY:
                    raw = reply.encode() if isinstance(reply, Message) else reply
                    sock.send_multipart([identity, b"", raw.encode() if isinstance(raw, str) else raw])
        finally:
            sock.close(linger=0)

    def stop(self) -> None:
        self._halt.set()
        self._thread.join(5)


class Announcer:
    """A publisher on 127.0.0.1 announcing files as an upstream server (or a primary client) does."""

    def __init__(self) -> None:
        self.publisher = BusPublisher(free_port(), bind="127.0.0.1", name="announcer")
        self.provider = f"127.0.0.1:{self.publisher.port}"

    def announce(self, uid: str, server: ScriptedServer | str, *, topic: str = "/test/data",
                 atype: str = "file", **extra: Any) -> dict[str, Any]:
        address = server if isinstance(server, str) else server.address
        data = {"name": uid.split(".", maxsplit=1)[0], "uri": f"/in/{uid}", "uid": uid, "request_address": address,
                **extra}
        self.publisher.send(Message(topic, atype, data))
        return data

    def send(self, message: Message) -> None:
        self.publisher.send(message)

    def send_raw(self, raw: str) -> None:
        self.publisher._publisher.send(raw)

    def stop(self) -> None:
        self.publisher.stop()
