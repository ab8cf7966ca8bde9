"""Announce each file a chain delivers as a WIS2 notification message on an MQTT broker.

:class:`Wis2Publisher` is the ``wis2`` delivery observer (:mod:`trollmoves_core.observer`): a chain
with ``wis2_*`` keys (:mod:`trollmoves_wis2.options`) opens one, connected with trollmoves-mqtt's
:class:`~trollmoves_mqtt.connection.Connection` (a refused login or an untrusted certificate stops
the role at start, exit 2). The chain's thread only queues each delivery; a worker thread of the
publisher measures the file when the message has no checksum, builds the message
(:func:`notification_of`), checks it with :func:`~trollmoves_wis2.notification.validate` and
publishes it QoS 1, retain false, ContentType ``application/geo+json``. A message that fails its
checks, or a file that cannot be read, costs one logged line and nothing else.

A file whose ``data_id`` this publisher announced before is announced with ``rel: update``; a
removed file with ``rel: deletion``. What was announced is remembered in memory only (a restarted
role announces a replaced file as new).
"""

from __future__ import annotations

import datetime as dt
import logging
import mimetypes
import os
import queue
import threading
from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Any, ClassVar
from urllib.parse import quote

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from trollmoves_mqtt.connection import Connection, unique_id
from trollmoves_roles.observe.ratelimit import RateLimitedLog

from trollmoves_core.checksum import DEFAULT_METHOD, file_digest
from trollmoves_core.exceptions import ConfigError
from trollmoves_core.observer import Delivery, DeliveryObserver
from trollmoves_core.recent import RecentKeys, key_of
from trollmoves_wis2 import notification, options, topics
from trollmoves_wis2.errors import WnmError
from trollmoves_wis2.options import PublishOptions

LOG = logging.getLogger(__name__)
_LIMITED = RateLimitedLog(LOG, period=60.0, burst=5)

REMEMBERED = 100_000
"""data_ids remembered per chain to tell an update from a new file."""
MEDIA_TYPES = {".h5": "application/x-hdf5", ".hdf5": "application/x-hdf5", ".he5": "application/x-hdf5",
               ".nc": "application/x-netcdf", ".bufr": "application/bufr", ".bin": "application/octet-stream",
               ".grib": "application/grib", ".grib2": "application/grib", ".grb2": "application/grib"}
"""Media types of common satellite and NWP files that :mod:`mimetypes` does not know."""
_RELS = {"new": notification.CANONICAL, "update": notification.UPDATE, "deletion": notification.DELETION}


class Wis2Publisher(DeliveryObserver):
    """Publish a WNM for each file a chain delivers (see the module doc)."""

    NAME: ClassVar[str] = "wis2"
    KEYS = options.KEYS

    def __init__(self, opts: PublishOptions, *, chain: str, connection: Connection) -> None:
        self.options, self.chain, self.connection = opts, chain, connection
        self.published = 0
        self.refused = 0
        self._announced = RecentKeys(None, REMEMBERED)
        self._queue: queue.Queue[Delivery | None] = queue.Queue()
        self._worker = threading.Thread(target=self._run, name=f"wis2-{chain}", daemon=True)
        self._worker.start()

    @classmethod
    def open(cls, keys: Mapping[str, str], *, role: str, chain: str, file: str) -> Wis2Publisher | None:
        opts = options.parse_options(keys, file=file, chain=chain)
        if opts is None:
            return None
        try:  # a client id of its own: it publishes only, and keeps no session
            connection = Connection(opts.bus, unique_id(f"trollmoves-wis2-{chain}", role), role=f"[{chain}] wis2")
        except ConfigError as err:
            raise ConfigError(err.message, file=file, section=chain, key="wis2_broker") from None
        LOG.info("[%s] Announcing deliveries as WIS2 notifications on %s", chain, opts.bus)
        return cls(opts, chain=chain, connection=connection)

    @classmethod
    def problems(cls, keys: Mapping[str, str]) -> dict[str, str]:
        return options.problems(keys)

    def delivered(self, delivery: Delivery) -> None:
        self._queue.put(delivery)

    def close(self) -> None:
        self._queue.put(None)
        self._worker.join()
        self.connection.close()

    def _run(self) -> None:
        while (delivery := self._queue.get()) is not None:
            try:
                self.publish(delivery)
            except Exception:  # a bug here must not stop later announcements
                LOG.exception("[%s] Cannot announce %s on WIS2", self.chain, delivery.path)

    def publish(self, delivery: Delivery) -> None:
        """Build, check and publish the notification of one delivery (in the worker thread)."""
        try:
            topic, doc = self.notification_of(delivery)
        except (WnmError, OSError) as err:
            self.refused += 1
            _LIMITED.error("build", "[%s] No WIS2 notification for %s: %s", self.chain, delivery.path, err)
            return
        problems = notification.validate(doc)
        if problems:
            if doc["links"][0]["rel"] == notification.CANONICAL:  # not announced: the next one is not an update
                self._announced.discard(key_of(doc["properties"]["data_id"]))
            self.refused += 1
            _LIMITED.error("invalid", "[%s] WIS2 notification for %s not sent: %s", self.chain, delivery.path,
                           "; ".join(problems))
            return
        properties = Properties(PacketTypes.PUBLISH)
        properties.ContentType = notification.MEDIA_TYPE
        self.connection.publish(topic, notification.encode(doc), properties)
        self.published += 1
        LOG.debug("[%s] Announced %s on %s as %s", self.chain, delivery.path, topic, doc["links"][0]["rel"])

    def notification_of(self, delivery: Delivery) -> tuple[str, dict[str, Any]]:
        """The topic and the WNM of ``delivery``; WnmError for a field the templates lack, OSError
        for a file that cannot be read."""
        opts, data = self.options, delivery.data
        fields = {**data, "path": delivery.path, "filename": os.path.basename(delivery.path)}
        topic = topics.compose(opts.topic, fields)
        data_id = self._data_id(topic, fields)
        href = self._href(delivery.path)
        integrity = length = None
        if delivery.change != "deletion":
            digest = delivery.digest
            if digest is None or digest.method is None or digest.value is None:
                digest = file_digest(delivery.path, DEFAULT_METHOD)
            integrity, length = (digest.method, digest.value), digest.size
        change = delivery.change  # decided last: a file that cannot be announced is not remembered as announced
        if change == "new" and not self._announced.add(key_of(data_id)):
            change = "update"
        elif change != "new":
            self._announced.add(key_of(data_id))
        start, end = _time(data.get("start_time")), _time(data.get("end_time"))
        doc = notification.build(
            data_id, href, rel=_RELS[change], media_type=media_type(delivery.path), length=length,
            integrity=integrity, start_datetime=start, end_datetime=end,
            geometry=data.get("geometry") if isinstance(data.get("geometry"), Mapping) else None,
            metadata_id=opts.metadata_id, pubtime=dt.datetime.now(dt.UTC))
        return topic, doc

    def _data_id(self, topic: str, fields: Mapping[str, Any]) -> str:
        if self.options.data_id is None:
            return f"{topic.split('/', 2)[2]}/{fields['filename']}"
        import trollsift

        try:
            return trollsift.compose(self.options.data_id, dict(fields))
        except KeyError as err:
            raise WnmError(f"data_id {self.options.data_id!r}: the message has no field {err}") from None
        except (ValueError, TypeError) as err:
            raise WnmError(f"data_id {self.options.data_id!r}: {err}") from None

    def _href(self, path: str) -> str:
        root = self.options.root
        if not path.startswith(root):
            raise WnmError(f"{path} is not under wis2_root {root}: no public URL for it")
        return self.options.base_url + quote(str(PurePosixPath(path[len(root):])))


def media_type(path: str) -> str:
    """The media type of the file at ``path``, by its name (``application/octet-stream`` when unknown)."""
    suffix = PurePosixPath(path).suffix.lower()
    return MEDIA_TYPES.get(suffix) or mimetypes.guess_type(path)[0] or "application/octet-stream"


def _time(value: Any) -> dt.datetime | None:
    return value if isinstance(value, dt.datetime) else None
