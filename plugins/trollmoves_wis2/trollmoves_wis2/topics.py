"""WIS2 topics: the levels of the WIS2 topic hierarchy (WTH) and what they say as message fields.

Public names (stable: the subscriber side depends on them)::

    Topic                         frozen dataclass: a topic split into its levels
    validate_topic(topic) -> list[str]    every problem with a topic to publish on; [] when valid
    validate_filter(filter) -> list[str]  the same for a subscription filter (``+`` and ``#`` allowed)
    parse_topic(topic) -> Topic   or WnmError naming the level at fault
    fields_of(topic) -> dict      the posttroll-ish fields a topic gives a message
    compose(template, fields) -> str      a trollsift template filled from message fields, validated

The hierarchy fixes the first levels: ``channel/version/system/centre-id/notification-type``
(``origin|cache``, ``a``, ``wis2``, a ``tld-centre`` id, ``data|metadata``). Metadata topics end
there; data topics go on with ``data-policy/earth-system-discipline/...`` (``core|recommended``,
one of :data:`DISCIPLINES`) and at least one level below the discipline. Every level is lowercase
ASCII letters and digits with dashes between words. The sub-discipline levels are not checked
against the WTH tables (they grow with every release); ``experimental`` is always allowed there.

Fields of a topic (:func:`fields_of`)::

    wis2_channel, centre_id, notification_type, data_policy, discipline, sub_discipline
    platform_name, sensor       under .../space-based-observations/<satellite>/<instrument>
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from trollmoves_wis2.errors import WnmError, fill

CHANNELS = ("origin", "cache")
VERSION = "a"
SYSTEM = "wis2"
NOTIFICATION_TYPES = ("data", "metadata")
DATA_POLICIES = ("core", "recommended")
DISCIPLINES = ("weather", "climate", "hydrology", "atmospheric-composition", "cryosphere", "ocean",
               "space-weather")
SPACE_BASED = "space-based-observations"
_LEVEL = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*")
_CENTRE_ID = re.compile(r"[a-z0-9]+(-[a-z0-9]+)+|test")
_NAMES = ("channel", "version", "system", "centre-id", "notification-type", "data-policy",
          "earth-system-discipline")


@dataclass(frozen=True)
class Topic:
    """A valid WIS2 topic; ``levels`` are those below the discipline (empty for metadata)."""

    channel: str
    centre_id: str
    notification_type: str
    data_policy: str | None = None
    discipline: str | None = None
    levels: tuple[str, ...] = ()

    def __str__(self) -> str:
        head = [self.channel, VERSION, SYSTEM, self.centre_id, self.notification_type]
        tail = [self.data_policy, self.discipline] if self.notification_type == "data" else []
        return "/".join([*head, *(t for t in tail if t), *self.levels])


def validate_topic(topic: str) -> list[str]:
    """Every way ``topic`` is not a WIS2 topic to publish on, one line each naming the level."""
    return _check(topic, wildcards=False)


def validate_filter(topic_filter: str) -> list[str]:
    """Every way ``topic_filter`` cannot match WIS2 topics: ``+`` may stand for any level and a
    final ``#`` for the rest; the levels given must be what the hierarchy allows there."""
    return _check(topic_filter, wildcards=True)


def parse_topic(topic: str) -> Topic:
    """``topic`` split into its levels; :class:`WnmError` naming the first level at fault."""
    problems = validate_topic(topic)
    if problems:
        raise WnmError(problems[0])
    levels = topic.split("/")
    if levels[4] == "metadata":
        return Topic(levels[0], levels[3], levels[4])
    return Topic(levels[0], levels[3], levels[4], levels[5], levels[6], tuple(levels[7:]))


def fields_of(topic: str | Topic) -> dict[str, Any]:
    """The message fields a WIS2 topic says (module doc); :class:`WnmError` for an invalid topic.

    Under ``space-based-observations`` the next two levels are the satellite and the instrument:
    ``platform_name`` and ``sensor`` (as lowercase as the topic has them).
    """
    t = topic if isinstance(topic, Topic) else parse_topic(topic)
    fields: dict[str, Any] = {"wis2_channel": t.channel, "centre_id": t.centre_id,
                              "notification_type": t.notification_type}
    if t.notification_type == "metadata":
        return fields
    fields.update(data_policy=t.data_policy, discipline=t.discipline, sub_discipline="/".join(t.levels))
    if t.levels[0] == SPACE_BASED and len(t.levels) >= 2:
        fields["platform_name"] = t.levels[1]
        if len(t.levels) >= 3:
            fields["sensor"] = t.levels[2]
    return fields


def compose(template: str, fields: Mapping[str, Any]) -> str:
    """The trollsift ``template`` filled from ``fields`` and checked as a WIS2 topic; WnmError
    naming the missing field or the level at fault."""
    topic = fill(template, fields, "topic")
    problems = validate_topic(topic)
    if problems:
        raise WnmError(problems[0])
    return topic


def _check(topic: str, *, wildcards: bool) -> list[str]:
    what = "topic filter" if wildcards else "topic"
    if not isinstance(topic, str) or not topic:
        return [f"{what}: must be a non-empty string, got {topic!r}"]
    if topic.startswith("/"):
        return [f"{what} {topic!r}: must not start with '/' (the first level is the channel)"]
    levels = topic.split("/")
    problems: list[str] = []

    def fail(i: int, text: str) -> None:
        name = _NAMES[i] if i < len(_NAMES) else f"level {i + 1}"
        problems.append(f"{what} {topic!r}: {name} {levels[i]!r} {text}")

    for i, level in enumerate(levels):
        if i == 5 and levels[4] == "metadata" and level != "#":
            fail(i, "follows metadata: metadata topics end at the notification type")
            break
        if wildcards and level == "#":
            if i != len(levels) - 1:
                fail(i, "# may only be the last level")
            return problems
        if wildcards and level == "+":
            continue
        if "+" in level or "#" in level:
            fail(i, "holds a wildcard" + ("" if wildcards else " (a topic to publish on may not)"))
        elif not _LEVEL.fullmatch(level):
            fail(i, "must be lowercase letters and digits with dashes between words")
        elif i == 0 and level not in CHANNELS:
            fail(i, f"must be {' or '.join(CHANNELS)}")
        elif i == 1 and level != VERSION:
            fail(i, f"must be {VERSION!r}")
        elif i == 2 and level != SYSTEM:
            fail(i, f"must be {SYSTEM!r}")
        elif i == 3 and not _CENTRE_ID.fullmatch(level):
            fail(i, "must be a centre id such as se-smhi (top-level domain, dash, centre)")
        elif i == 4 and level not in NOTIFICATION_TYPES:
            fail(i, f"must be {' or '.join(NOTIFICATION_TYPES)}")
        elif i == 5 and level not in DATA_POLICIES:
            fail(i, f"must be {' or '.join(DATA_POLICIES)}")
        elif i == 6 and level not in DISCIPLINES:
            fail(i, f"must be one of {', '.join(DISCIPLINES)}")
    minimum = 5 if levels[4:5] == ["metadata"] else 8
    if len(levels) < minimum and not problems:
        needed = "the notification type" if minimum == 5 else "a level below the earth-system discipline"
        problems.append(f"{what} {topic!r}: too short, it needs {needed} ({minimum} levels, got {len(levels)})")
    return problems
