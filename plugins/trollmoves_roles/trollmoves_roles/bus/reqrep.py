"""The ZeroMQ side of request/reply: ROUTER envelopes, reading a request, binding with retries."""

from __future__ import annotations

import time

import zmq
from posttroll.message import Message

from trollmoves_core.exceptions import ConfigError
from trollmoves_roles.protocol import codec
from trollmoves_roles.protocol.requests import one_line


def peer_address(frame: zmq.Frame) -> str:
    """The TCP peer's address of a received frame, ``"?"`` when there is none."""
    try:
        return frame.get("Peer-Address") or "?"
    except (zmq.ZMQError, AttributeError, UnicodeError):  # not a TCP peer
        return "?"


def split_envelope(frames: list[bytes]) -> tuple[list[bytes], list[bytes]]:
    """Routing frames up to and including the empty delimiter, and the body after it."""
    for index, frame in enumerate(frames):
        if frame == b"" and index > 0:
            return frames[: index + 1], frames[index + 1:]
    return frames[:1], frames[1:]


def read_request(frames: list[bytes]) -> tuple[list[bytes], Message | str]:
    """The routing envelope of a received request and the request, or why it cannot be read."""
    envelope, body = split_envelope(frames)
    if len(body) != 1:
        return envelope, f"expected one message frame, got {len(body)}"
    try:
        return envelope, codec.decode(body[0])
    except Exception as err:  # anything undecodable gets an answer, never silence
        return envelope, f"invalid request: {one_line(err)}"


def bind(socket: zmq.Socket, address: str, *, retry: float, section: str) -> None:
    """Bind ``socket`` to ``address``, retrying a port in use for ``retry`` seconds.

    On failure the socket is closed and a ConfigError names the address (key ``request_port``).
    """
    deadline = time.monotonic() + retry
    while True:
        try:
            socket.bind(address)
            return
        except zmq.ZMQError as err:
            # after a reload, the previous socket on this port is released asynchronously
            if err.errno == zmq.EADDRINUSE and time.monotonic() < deadline:
                time.sleep(0.05)
                continue
            socket.close(0)
            raise ConfigError(f"cannot listen on {address}: {zmq.strerror(err.errno)}", section=section,
                              key="request_port") from None
