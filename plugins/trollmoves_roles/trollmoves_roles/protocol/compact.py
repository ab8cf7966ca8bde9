"""Share the strings that repeat from one received bus message to the next.

A decoded message holds its own copy of every field name and of values like the request
address or the platform name: about half of its 1.5 KB. A client in a burst holds thousands
of announcements at once, and those copies, spread over the allocator's pages, keep the pages
resident after the burst. :func:`compact_data` rebuilds a message's data with one shared str
per field name and per repeating value, and :func:`compact_message` also shares its subject,
type, sender and version. The table of shared strings is bounded, so a sender
inventing new names cannot make it grow without end.
"""

from __future__ import annotations

from typing import Any

from posttroll.message import Message

SHARED_MAX = 4096
"""Distinct strings shared at most (later new ones are kept as they are)."""
REPEATING_FIELDS = frozenset({
    "request_address", "origin", "path", "sensor", "platform_name", "format", "data_processing_level",
    "product", "variant", "type", "sensor_id", "orbit_type", "station",
})
"""Fields whose values are the same in most messages of a stream."""
_DEPTH = 4

_shared: dict[str, str] = {}


def share(text: str) -> str:
    """The shared str equal to ``text`` (``text`` itself once the table is full)."""
    found = _shared.get(text)
    if found is not None:
        return found
    if len(_shared) < SHARED_MAX:
        _shared[text] = text
    return text


def compact_message(message: Message) -> Message:
    """``message`` with its header strings shared and its data compacted (:func:`compact_data`)."""
    for name in ("subject", "type", "sender", "version"):
        value = getattr(message, name, None)
        if isinstance(value, str):
            setattr(message, name, share(value))
    message.data = compact_data(message.data)
    return message


def compact_data(data: Any, depth: int = 0) -> Any:
    """``data`` with shared field names and repeating values (dicts and lists rebuilt, anything else as is)."""
    if depth > _DEPTH:
        return data
    if isinstance(data, dict):
        return {share(key) if isinstance(key, str) else key:
                share(value) if key in REPEATING_FIELDS and isinstance(value, str) else compact_data(value, depth + 1)
                for key, value in data.items()}
    if isinstance(data, list):
        return [compact_data(item, depth + 1) for item in data]
    return data
