"""What the posttroll ``file`` message of a delivered WIS2 notification carries.

Times become naive UTC datetimes, as pytroll messages carry them (posttroll encodes them in
ISO 8601); the file's size and checksum are the ``size`` and ``integrity`` keys every trollmoves
role verifies (:mod:`trollmoves_core.checksum`). ``docs/wis2.md`` has the table:

==========================================  ===================================================
WIS2 notification (and its topic)           ``file`` message data
==========================================  ===================================================
the local copy                              ``uri`` (its path), ``uid`` (its name)
``id``                                      ``wis2_id``
the MQTT topic                              ``wis2_topic``, and :func:`~trollmoves_wis2.topics.fields_of`:
                                            ``wis2_channel``, ``centre_id``, ``notification_type``,
                                            ``data_policy``, ``discipline``, ``sub_discipline``,
                                            ``platform_name``, ``sensor``
``properties.data_id``, ``metadata_id``     ``data_id``, ``metadata_id``
``properties.pubtime``                      ``pubtime``
``datetime`` / ``start_datetime``,          ``start_time`` / ``start_time``, ``end_time``
``end_datetime``
``properties.integrity`` + the file size    ``integrity`` {``method``, ``value``}, ``size``
``geometry``                                ``geometry`` (GeoJSON, when not null)
the canonical (or update) link              ``wis2_href``, ``wis2_rel``, ``wis2_media_type``
other properties (``producer``, ``cache``)  under their own names, unless one above has it
==========================================  ===================================================
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
from typing import Any

from trollmoves_core.checksum import Digest
from trollmoves_wis2.errors import WnmError
from trollmoves_wis2.notification import Notification, canonical_link
from trollmoves_wis2.topics import fields_of


def file_data(notification: Notification, topic: str, path: str, size: int) -> dict[str, Any]:
    """The data of the ``file`` message announcing ``path`` (``size`` bytes), delivered for
    ``notification`` received on ``topic``."""
    data: dict[str, Any] = {"uri": path, "uid": os.path.basename(path)}
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
    data.update(Digest(size, notification.integrity_method, notification.integrity_value).as_data())
    if notification.geometry is not None:
        data["geometry"] = dict(notification.geometry)
    link = canonical_link(notification)
    data.update(wis2_href=link.href, wis2_rel=link.rel)
    if link.type:
        data["wis2_media_type"] = link.type
    for key, value in notification.extra.items():
        data.setdefault(key, value)
    return data


def _naive(moment: dt.datetime) -> dt.datetime:
    return moment.astimezone(dt.UTC).replace(tzinfo=None)
