"""Pieces of the request/reply protocol shared by the server's and the mirror's request sockets."""

from __future__ import annotations

from typing import Any

import zmq
from posttroll.message import Message


class BadRequest(Exception):
    """A request that decodes but cannot be served; answered with ``err``."""


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


def request_dict(request: Message) -> dict[str, Any]:
    """The request's data, which must be a JSON object."""
    if not isinstance(request.data, dict):
        raise BadRequest(f"{request.type}: expected a JSON object as data, got {type(request.data).__name__}")
    return request.data


def one_line(err: BaseException) -> str:
    """An error as one line of text, for an ``err`` reply or a log line."""
    return " ".join(str(err).split()) or type(err).__name__
