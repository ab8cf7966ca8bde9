"""What the posttroll ``file`` message of a delivered WIS2 notification carries (the table is in
``docs/wis2.md``, *The file message*).

``uri`` and ``uid`` name the local copy; the topic's levels give the fields of
:func:`trollmoves_wis2.topics.fields_of` (``centre_id``, ``platform_name``, ``sensor``...); the
notification's ``id``, topic and link are ``wis2_*`` keys (the link without its tokens,
:func:`trollmoves_core.uri.redact`); ``data_id``, ``metadata_id``, ``pubtime``
and the other properties keep their names; its times become ``start_time``/``end_time``. Times are
naive UTC datetimes, as pytroll messages carry them; the file's size and checksum are the ``size``
and ``integrity`` keys every trollmoves role verifies (:mod:`trollmoves_core.checksum`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
from typing import Any

from trollmoves_core.checksum import Digest
from trollmoves_core.uri import redact
from trollmoves_wis2.errors import WnmError
from trollmoves_wis2.notification import Notification, canonical_link
from trollmoves_wis2.topics import fields_of


def fields(notification: Notification, topic: str) -> dict[str, Any]:
    """The fields of the ``file`` message of ``notification`` received on ``topic`` that do not
    depend on the local copy (what a ``layout`` is filled from)."""
    data: dict[str, Any] = {}
    with contextlib.suppress(WnmError):  # a topic outside the hierarchy (a test broker): wis2_topic still says it
        data.update(fields_of(topic))
    data.update(wis2_topic=topic, wis2_id=notification.id, data_id=notification.data_id,
                pubtime=_naive(notification.pubtime))
    if notification.metadata_id:
        data["metadata_id"] = notification.metadata_id
    if notification.datetime is not None:
        data["start_time"] = _naive(notification.datetime)
    elif notification.start_datetime is not None and notification.end_datetime is not None:
        data["start_time"] = _naive(notification.start_datetime)
        data["end_time"] = _naive(notification.end_datetime)
    if notification.geometry is not None:
        data["geometry"] = dict(notification.geometry)
    link = canonical_link(notification)
    data.update(wis2_href=redact(link.href), wis2_rel=link.rel)
    if link.type:
        data["wis2_media_type"] = link.type
    for key, value in notification.extra.items():
        data.setdefault(key, value)
    return data


def file_data(notification: Notification, known: dict[str, Any], path: str, size: int) -> dict[str, Any]:
    """The data of the ``file`` message announcing ``path`` (``size`` bytes): the ``known``
    :func:`fields` of ``notification``, the local copy and its checksum."""
    return {**known, "uri": path, "uid": os.path.basename(path),
            **Digest(size, notification.integrity_method, notification.integrity_value).as_data()}


def _naive(moment: dt.datetime) -> dt.datetime:
    return moment.astimezone(dt.UTC).replace(tzinfo=None)
