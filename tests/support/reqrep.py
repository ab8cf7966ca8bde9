"""One request to a role's request port (REQ/REP), as the upstream client sends it."""

from __future__ import annotations

import zmq
from posttroll.message import Message

TOPIC = "/test/data"
"""The topic the test chains announce on."""


def request_raw(address: str, payload: Message | str | bytes | list[bytes], timeout: float = 10.0,
                curve: tuple[bytes, bytes, bytes] | None = None, source: str | None = None) -> bytes | None:
    """Send ``payload`` on a fresh REQ socket to ``address`` (``host:port`` or ``tcp://host:port``);
    the reply as received, or None when none came in ``timeout`` s.

    :param curve: (our public, our secret, server public) z85 keys.
    :param source: connect from this local address (e.g. 127.0.0.2).
    """
    sock = zmq.Context.instance().socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    # a refused handshake (allow-list, CURVE) drops the socket's only pipe for good: a send that comes
    # after it would block forever, so it gives up like a reply that never comes
    sock.setsockopt(zmq.SNDTIMEO, int(timeout * 1000))
    if curve is not None:
        sock.curve_publickey, sock.curve_secretkey, sock.curve_serverkey = curve
    host_port = address.removeprefix("tcp://")
    sock.connect(f"tcp://{source}:0;{host_port}" if source else f"tcp://{host_port}")
    try:
        if isinstance(payload, Message):
            sock.send_string(payload.encode())
        elif isinstance(payload, list):
            sock.send_multipart(payload)
        else:
            sock.send(payload.encode() if isinstance(payload, str) else payload)
        if not sock.poll(int(timeout * 1000)):
            return None
        return sock.recv()
    except zmq.Again:  # the send timed out
        return None
    finally:
        sock.close(0)


def request(address: str, payload: Message | str | bytes | list[bytes], timeout: float = 10.0,
            curve: tuple[bytes, bytes, bytes] | None = None, source: str | None = None) -> Message | None:
    """:func:`request_raw`, the reply decoded (None when none came)."""
    raw = request_raw(address, payload, timeout, curve, source)
    return None if raw is None else Message.decode(raw)


def reply(address: str, payload: Message | str | bytes | list[bytes], timeout: float = 10.0, **kwargs: object
          ) -> Message:
    """:func:`request` that raises TimeoutError when no reply comes."""
    answer = request(address, payload, timeout, **kwargs)  # type: ignore[arg-type]
    if answer is None:
        raise TimeoutError(f"no reply from {address} in {timeout} s")
    return answer


def ping(address: str, timeout: float = 10.0, *, topic: str = TOPIC, **kwargs: object) -> Message | None:
    """The reply to a ``ping`` on ``topic``, or None when none came in ``timeout`` s."""
    return request(address, Message(topic, "ping"), timeout, **kwargs)  # type: ignore[arg-type]


def answers_ping(address: str, topic: str = TOPIC, timeout: float = 0.5) -> bool:
    """True when ``address`` answers a ``ping`` with a ``pong`` within ``timeout`` s."""
    answer = ping(address, timeout, topic=topic)
    return answer is not None and answer.type == "pong"
