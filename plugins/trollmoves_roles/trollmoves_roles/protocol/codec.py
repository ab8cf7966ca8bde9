"""posttroll messages built, written and read in one pass each.

The wire format is posttroll's own (``Message.encode`` and ``Message.decode`` give and take the
same text), but posttroll's ``Message`` looks up the user and host name at each construction and
encodes the data to JSON three times per message sent (once to validate it when built, once to
validate it when encoded, once to write it) and once more per message read (to validate what it
just decoded). Per file that was about a third of the roles' CPU time; here the sender is looked
up once per process and the data goes through ``json`` once each way.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

from posttroll.message import (
    CURRENT_MESSAGE_VERSION,
    Message,
    MessageError,
    _getsender,
    create_datetime_json_encoder_for_version,
)

from trollmoves_roles.protocol.messages import MESSAGE_VERSION

MAGIC = "pytroll:/"
SENDER = _getsender()
"""``user@host`` of this process, as posttroll writes it (the host name is read once)."""

_JSON_DEFAULT = create_datetime_json_encoder_for_version(MESSAGE_VERSION)
_FIELDS = re.compile(r"\s+")


def make_message(subject: str, atype: str, data: str | dict[str, Any] = "", *, binary: bool = False) -> Message:
    """``Message(subject, atype, data, version=MESSAGE_VERSION)`` without posttroll's per-message
    sender lookup and trial encoding: data that JSON cannot write fails in :func:`encode`.

    :raises MessageError: for an empty subject or type, as posttroll does.
    """
    if not subject or not isinstance(subject, str):
        raise MessageError(f"Invalid subject: '{subject}'")
    if not atype or not isinstance(atype, str):
        raise MessageError(f"Invalid type: '{atype}'")
    message = Message.__new__(Message)
    message.subject, message.type, message.sender = subject, atype, SENDER
    message.time = dt.datetime.now(dt.UTC)
    message.data, message.binary, message.version = data, binary, MESSAGE_VERSION
    return message


def encode(message: Message) -> str:
    """The text of ``message`` as :data:`MESSAGE_VERSION`, as ``versioned(message).encode()`` writes it.

    :raises MessageError: for data JSON cannot write (posttroll's error for it).
    """
    head = f"{MAGIC}{message.subject} {message.type} {message.sender} {message.time.isoformat()} {MESSAGE_VERSION}"
    data = message.data
    if not data:
        return head
    if message.binary:
        if not isinstance(data, str | bytes):
            raise MessageError("Invalid data: binary data must be str or bytes")
        return f"{head} binary/octet-stream {data}"
    if isinstance(data, str | bytes):
        return f"{head} text/ascii {data}"
    try:
        text = json.dumps(data, default=_JSON_DEFAULT)
    except (TypeError, ValueError) as err:
        raise MessageError(f"Invalid data: data is not JSON serializable: {err}") from None
    return f"{head} application/json {text}"


def decode(raw: str | bytes) -> Message:
    """The message ``raw`` holds, as ``Message.decode(raw)`` reads it (ISO-format strings in the
    data come back as datetimes, as there).

    :raises MessageError: for anything that is not a posttroll message.
    """
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError:
            raw = raw.decode("iso-8859-1")
    if not raw.startswith(MAGIC):
        raise MessageError(f"This is not a '{MAGIC}' message (wrong magick word)")
    parts = _FIELDS.split(raw[len(MAGIC):], maxsplit=6)
    if len(parts) < 5:
        raise MessageError(f"Could not decode raw string: '{raw[:36]} ...'")
    subject, atype, sender, stamp, version = (part.strip() for part in parts[:5])
    if version > CURRENT_MESSAGE_VERSION:
        raise MessageError(f"Invalid Message version: '{version}'")
    if not subject or not atype or not sender:
        raise MessageError(f"Invalid message head: '{raw[:80]}'")
    message = Message.__new__(Message)
    message.subject, message.type, message.sender, message.version = subject, atype, sender, version
    message.time = dt.datetime.fromisoformat(stamp)
    message.data, message.binary = "", False
    if len(parts) < 6:
        return message
    mimetype, body = parts[5].lower(), parts[6] if len(parts) > 6 else ""
    if mimetype == "application/json":
        try:
            message.data = json.loads(body, object_hook=_datetimes_in_object)
        except ValueError:
            raise MessageError(f"JSON decode failed on '{body[:36]} ...'") from None
    elif mimetype == "text/ascii":
        message.data = body
    elif mimetype == "binary/octet-stream":
        message.data, message.binary = body, True
    else:
        raise MessageError(f"Unknown mime-type '{mimetype}'")
    return message


def _datetime_or_str(text: str) -> dt.datetime | str:
    # fromisoformat needs a four-digit year first: skip the exception for everything else
    if not text[:4].isdigit():
        return text
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        return text


def _datetimes_in_list(items: list[Any]) -> list[Any]:
    return [_datetime_or_str(item) if isinstance(item, str) else
            _datetimes_in_list(item) if isinstance(item, list) else item for item in items]


def _datetimes_in_object(obj: dict[str, Any]) -> dict[str, Any]:
    """json's object hook (called innermost object first): the object's strings, and those in its
    lists, turned into datetimes where they parse as one; nested objects were already done."""
    for key, value in obj.items():
        if isinstance(value, str):
            obj[key] = _datetime_or_str(value)
        elif isinstance(value, list):
            obj[key] = _datetimes_in_list(value)
    return obj
