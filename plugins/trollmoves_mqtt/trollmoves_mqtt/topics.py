"""posttroll subjects and topic prefixes as MQTT topics and topic filters.

A message with subject ``/a/b/c`` is published on ``PREFIX/a/b/c`` (the leading ``/`` dropped).
posttroll subscriptions match by string prefix (``/a/b`` matches ``/a/b``, ``/a/b/c`` *and*
``/a/bc``), MQTT filters match whole levels, so the subscription ``/a/b`` becomes the filter on its
last complete level, ``PREFIX/a/#``, and what arrives is checked against the posttroll prefix here;
``/a/b/`` (ending on a level) becomes ``PREFIX/a/b/#``, ``/`` or ``""`` becomes ``PREFIX/#``.
Requests go to ``PREFIX/request/<server address>``, replies to ``PREFIX/reply/<requester id>``.
"""

from __future__ import annotations

from collections.abc import Iterable

from trollmoves_roles.bus.posttroll import topic_prefix

REQUEST_LEVEL = "request"
REPLY_LEVEL = "reply"
_WIRE = "pytroll:/"


def subject_of(topic: str) -> str:
    """The subject prefix posttroll matches for the subscription ``topic`` (``a`` and ``/a`` → ``/a``)."""
    return topic_prefix(topic)[len(_WIRE):]


def publish_topic(prefix: str, subject: str) -> str:
    """The MQTT topic of a message with ``subject``; ValueError when MQTT cannot carry it."""
    if "+" in subject or "#" in subject or "\0" in subject:
        raise ValueError(f"subject {subject!r} has a character MQTT topics may not contain (+ # NUL)")
    return f"{prefix}/{subject.lstrip('/')}"


def topic_filter(prefix: str, topic: str) -> str:
    """The MQTT filter covering the posttroll subscription ``topic`` (see the module doc)."""
    subject = subject_of(topic).lstrip("/")
    complete = subject.rstrip("/") if subject.endswith("/") else subject.rpartition("/")[0]
    if not complete or "+" in complete or "#" in complete:
        return f"{prefix}/#"
    return f"{prefix}/{complete}/#"


def filters(prefix: str, topics: Iterable[str], group: str | None = None) -> list[str]:
    """The distinct MQTT filters for ``topics``, shared by ``group`` when given."""
    found = list(dict.fromkeys(topic_filter(prefix, t) for t in topics))
    return [f"$share/{group}/{f}" for f in found] if group else found


def matches(subject: str, topics: Iterable[str]) -> bool:
    """Whether posttroll would deliver ``subject`` to a subscription on ``topics`` (string prefixes)."""
    wire = _WIRE + subject
    return any(wire.startswith(topic_prefix(t)) for t in topics)


def is_reply_topic(replies: str, topic: str) -> bool:
    """Whether ``topic`` is one level under ``replies`` (``PREFIX/reply/``), with no wildcard or NUL:
    the only topics an inbox answers on."""
    requester = topic[len(replies):] if topic.startswith(replies) else ""
    return bool(requester) and not any(c in requester for c in "/+#\0")


def request_topic(prefix: str, address: str) -> str:
    """Where requests for the server at ``address`` (``host:port``, ``tcp://host:port``) go."""
    key = address.split("://", 1)[-1].strip("/")
    return f"{prefix}/{REQUEST_LEVEL}/{key}"
