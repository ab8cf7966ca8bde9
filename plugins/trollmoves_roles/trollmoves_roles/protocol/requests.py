"""The request/reply protocol of servers and mirrors: reading a request's data and building the
``pong``/``info``/``ack``/``push`` replies (upstream's message types and fields)."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from typing import Any

from posttroll.message import Message

from trollmoves_core.uri import redact
from trollmoves_roles.protocol.codec import make_message
from trollmoves_roles.protocol.delivery import join_rel_path, on_host, split_host
from trollmoves_roles.protocol.messages import dicts_with, message_type

INFO_MAX_COUNT = 2256
"""Most file names an ``info`` reply lists (as upstream)."""
ERROR_SUBJECT = "/error"
"""The subject of an ``err`` reply to a request without one (undecodable)."""


class BadRequest(Exception):
    """A request that decodes but cannot be served; answered with ``err``."""


def answer(request: Message, station: str | None, *, info: Callable[[Message], Message],
           ack: Callable[[Message], Message]) -> Message:
    """The reply to any request but ``push``: ``pong`` with ``station``, ``info``, ``ack``, else ``unknown``.

    Raises BadRequest for a request that cannot be served.
    """
    if request.type == "ping":
        return reply(request, "pong", {"station": station})
    if request.type == "ack":
        return ack(request)
    if request.type == "info":
        return info(request)
    return reply(request, "unknown")


def request_dict(request: Message) -> dict[str, Any]:
    """The request's data, which must be a JSON object."""
    if not isinstance(request.data, dict):
        raise BadRequest(f"{request.type}: expected a JSON object as data, got {type(request.data).__name__}")
    return request.data


def one_line(err: BaseException) -> str:
    """An error as one line of text, for an ``err`` reply or a log line."""
    return " ".join(str(err).split()) or type(err).__name__


def reply(request: Message, atype: str, data: Any = None) -> Message:
    """A reply to ``request``: same subject, type ``atype``, with ``data`` when given."""
    return make_message(request.subject, atype, "" if data is None else data)


def info_data(request: Message, newest: Callable[[str, int], list[str]], started: float) -> dict[str, Any]:
    """The data of upstream's ``info`` reply: ``files`` (``newest(subject, count)``), ``max_count`` and
    ``uptime`` since ``started`` (monotonic)."""
    data = request.data if isinstance(request.data, dict) else {}
    max_count = data.get("max_count", INFO_MAX_COUNT)
    if not isinstance(max_count, int) or isinstance(max_count, bool) or max_count < 0:
        raise BadRequest(f"info: max_count must be a non-negative integer, got {max_count!r}")
    files = newest(request.subject, min(max_count, INFO_MAX_COUNT))
    uptime = str(dt.timedelta(seconds=time.monotonic() - started))
    return {"files": files, "max_count": max_count, "uptime": uptime}


def ack_reply(request: Message) -> Message:
    """The ``ack`` reply: the request's data, its destination without credentials."""
    data = dict(request_dict(request))
    if isinstance(data.get("destination"), str):
        data["destination"] = redact(data["destination"], drop_user=True)
    return reply(request, "ack", data)


def push_request(request: Message) -> tuple[str, list[dict[str, Any]]]:
    """A ``push`` request's destination and the dicts naming its files, checked for what both
    the server and the mirror need: a destination, at least one file, string ``path`` keys."""
    data = request_dict(request)
    destination = data.get("destination")
    if not isinstance(destination, str) or not destination.strip():
        raise BadRequest("push without a destination")
    items = list(dicts_with(data, "uri"))
    if not items:
        raise BadRequest("push without any uri")
    for item in items:
        rel_path = item.get("path")
        if rel_path is not None and not isinstance(rel_path, str):
            raise BadRequest(f"push: path must be a string, got {rel_path!r}"[:300])
    return destination, items


def push_reply(request: Message, host: str | None = None) -> Message:
    """The reply to a ``push`` done: ``file``/``dataset``/``collection`` with the request's data, the
    destination (with the request's ``path`` appended, on the backup ``host`` that got the files if
    one did) without credentials."""
    data = dict(request_dict(request))
    rel_path = data.get("path") if isinstance(data.get("path"), str) else None
    destination = data["destination"] if host is None else on_host(data["destination"], host)
    data["destination"] = redact(join_rel_path(destination, rel_path), drop_user=True)
    return reply(request, message_type(data, request.type), data)


def backup_targets(request: Message) -> tuple[str, ...]:
    """A ``push`` request's ``backup_targets`` (upstream's list of host names; a space-separated
    string is accepted too), each checked to be a host or ``host:port``."""
    value = request_dict(request).get("backup_targets")
    if value is None:
        return ()
    if isinstance(value, str):
        value = value.split()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise BadRequest(f"push: backup_targets must be a list of host names, got {value!r}"[:300])
    for target in value:
        try:
            split_host(target)
        except ValueError as err:
            raise BadRequest(f"push: backup_targets: {err}"[:300]) from None
    return tuple(value)
