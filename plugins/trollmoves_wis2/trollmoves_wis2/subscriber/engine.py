"""The WIS2 subscriber: WIS2 notifications from an MQTT broker in, verified files and posttroll ``file`` messages out.

For each notification received on the subscribed topic filters (one MQTT v5 connection with a
persistent session, :class:`trollmoves_mqtt.connection.Connection`; with the broker address's
``group``, a shared subscription ``$share/<group>/<filter>``: the members of the group, each with
its own ``client_id``, share the notifications), on a worker of a bounded pool:

1. its topic must match a configured filter (the broker's session may still hold filters an
   earlier configuration subscribed to), its payload must be a valid WNM
   (:func:`trollmoves_wis2.notification.parse`: else one rate-limited line naming the message
   ``id`` and topic), and it must announce data (a ``deletion`` is logged, not acted on);
2. with ``bbox``, its geometry must touch the box (:mod:`.area`);
3. a repeat is skipped: an ``id`` delivered already, or a ``data_id`` delivered with the same or a
   newer ``pubtime`` (:mod:`.seen`);
4. the data is written below ``download_destination``, where ``layout`` puts it (:mod:`.layout`:
   a notification whose ``data_id`` or file name would lead outside is refused, parent directories
   are created): inline ``content`` is decoded and written, otherwise the canonical (or update)
   link is downloaded by the mover of its scheme; either way atomically (a hidden name, then a
   rename), and checked against the notification's ``integrity`` and the link's ``length``: a
   copy that does not match is discarded and fetched again (the movers' ``retries``), and when
   none matches nothing is delivered and an error is logged;
5. a ``file`` message (:mod:`.mapping`) is published on ``publish_topic``, the notification is
   remembered as delivered, and only then is the MQTT message acknowledged.

An unacknowledged message stays in the broker's session: one that was being handled when the
subscriber stopped (even killed) is delivered again when it comes back, and step 3 skips it if it
was delivered meanwhile. A failed notification is acknowledged too (after the log line): a
repeat (the same data through another broker, a republication) is tried again.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import hashlib
import json
import logging
import os
import posixpath
import secrets
import shutil
import tempfile
import threading
import time
from collections import Counter
from functools import partial

import paho.mqtt.client as mqtt
from posttroll.message import Message
from trollmoves_mqtt.connection import Connection, Handoff
from trollmoves_roles.bus.transport import Publisher
from trollmoves_roles.observe.metrics import RoleMetrics
from trollmoves_roles.observe.ratelimit import RateLimitedLog
from trollmoves_roles.state import history
from trollmoves_roles.transfers.movers import MoverCache
from trollmoves_roles.transfers.pool import BoundedPool

from trollmoves_core.checksum import ChecksumMismatch, Digest, Hasher, check, verify_file
from trollmoves_core.exceptions import ConfigError, TransferError, UnknownPluginError
from trollmoves_core.logs import file_size, log_transfer
from trollmoves_core.plugins import PluginHost
from trollmoves_core.retry import with_retries
from trollmoves_core.uri import redact, temporary_sibling
from trollmoves_wis2.errors import WnmError
from trollmoves_wis2.notification import DELETION, Link, Notification, canonical_link, parse
from trollmoves_wis2.subscriber.config import SubscriberConfig
from trollmoves_wis2.subscriber.layout import local_path
from trollmoves_wis2.subscriber.mapping import fields, file_data
from trollmoves_wis2.subscriber.seen import SeenNotifications

LOG = logging.getLogger(__name__)
_LIMITED = RateLimitedLog(LOG, period=60.0, burst=5)

DELIVERED, REPEAT, OUTSIDE, DELETED, BAD, FAILED, OTHER_TOPIC = (
    "delivered", "repeat", "outside", "deletion", "bad", "failed", "other topic")
"""What became of a notification (:attr:`Wis2Subscriber.outcomes` counts them)."""


class Wis2Subscriber:
    """Serve one WIS2 subscriber configuration until stopped (see the module docstring).

    :param publisher: where the files are announced; None announces nothing.
    :param seen: the notifications delivered already (a fresh in-memory one when not given).
    :param workers: downloads running at once (the config's ``parallel_downloads`` when None).
    """

    def __init__(self, config: SubscriberConfig, *, host: PluginHost, publisher: Publisher | None = None,
                 seen: SeenNotifications | None = None, workers: int | None = None,
                 metrics: RoleMetrics | None = None) -> None:
        self.config = config
        self.publisher = publisher
        self.seen = seen if seen is not None else SeenNotifications(config.remember)
        self.movers = MoverCache(host)
        self.pool = BoundedPool(workers or config.parallel_downloads, name="wis2")
        self.metrics = metrics if metrics is not None else RoleMetrics("wis2-subscriber", chains=False)
        self.metrics.set_queue_length(lambda: self.pool.pending)
        self.outcomes: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._handoff = Handoff()
        self._reload = threading.Event()
        self.client_id = session_id(config)

    @property
    def handled(self) -> int:
        """Notifications handled to the end (and acknowledged)."""
        with self._lock:
            return sum(self.outcomes.values())

    def serve(self, halt: threading.Event) -> None:
        """Receive and deliver until ``halt`` is set; then finish the running downloads.

        Raises ConfigError when the broker refuses the login or its certificate is not trusted.
        """
        self.config.download_destination.mkdir(parents=True, exist_ok=True)
        group = self.config.broker.group
        filters = [f"$share/{group}/{f}" if group else f for f in self.config.subscribe]
        connection = Connection(self.config.broker, self.client_id, persistent=True, on_message=self._handoff.put,
                                manual_ack=True, subscriptions=filters, role="wis2 subscriber")
        bus = self.config.broker
        LOG.info("WIS2 subscriber on %s://%s:%d (session %s): %s, delivering to %s/%s", bus.scheme, bus.host,
                 bus.port, self.client_id, ", ".join(filters), self.config.download_destination, self.config.layout)
        try:
            while not halt.is_set():
                if self._reload.is_set():
                    self._reload.clear()
                    LOG.warning("%s: the WIS2 subscriber reads its configuration at start only; restart it "
                                "to apply a change", self.config.file)
                raw = self._handoff.take(0.2)
                if raw is not None and not self.pool.submit(partial(self._handle, raw, connection), halt):
                    break  # halted while waiting for room: the broker delivers it again next time
        finally:
            self.pool.shutdown()  # queued ones are dropped unacknowledged: the session keeps them
            connection.close()
            self.movers.close_all()
            self._handoff.close()
            with self._lock:
                counts = ", ".join(f"{n} {what}" for what, n in sorted(self.outcomes.items())) or "none"
            LOG.info("WIS2 subscriber stopped; notifications handled: %s", counts)

    def request_reload(self) -> None:
        """SIGHUP: say that a changed configuration needs a restart; callable from a signal handler."""
        self._reload.set()

    def _handle(self, raw: mqtt.MQTTMessage, connection: Connection) -> None:
        try:
            outcome = self.process(raw.topic, raw.payload)
        except Exception:  # a surprise in one notification must not stop the subscriber
            LOG.exception("WIS2 notification on %s not delivered", raw.topic)
            outcome = FAILED
        connection.client.ack(raw.mid, raw.qos)
        with self._lock:
            self.outcomes[outcome] += 1

    def process(self, topic: str, payload: bytes) -> str:
        """Deliver the notification ``payload`` received on ``topic``; what became of it. Never raises
        for a bad notification or a failed download."""
        if not any(mqtt.topic_matches_sub(f, topic) for f in self.config.subscribe):
            LOG.debug("Ignoring a message on %s: no configured filter matches it", topic)
            return OTHER_TOPIC
        try:
            notification = parse(payload)
        except WnmError as err:
            self.metrics.bad_input.inc()
            _LIMITED.warning("bad", "Dropped the WIS2 notification %s on %s: %s", _message_id(payload), topic,
                             redact(str(err)))
            return BAD
        link = canonical_link(notification)
        if link.rel == DELETION:
            LOG.info("WIS2 notification %s on %s: %s was deleted (not acted on)", notification.id, topic,
                     notification.data_id)
            return DELETED
        if not self._in_area(notification):
            LOG.debug("WIS2 notification %s: %s is outside the bounding box", notification.id, notification.data_id)
            return OUTSIDE
        repeat = self.seen.claim(notification.id, notification.data_id, notification.pubtime)
        if repeat is not None:
            LOG.info("Skipping the WIS2 notification %s of %s: a repeat (%s)", notification.id,
                     notification.data_id, "same id" if repeat == "id" else
                     "delivered with this pubtime or a newer one" if repeat == "data_id" else "being delivered")
            return REPEAT
        delivered = False
        try:
            self._deliver(notification, link, topic)
            delivered = True
        except (TransferError, WnmError, UnknownPluginError, ConfigError, OSError) as err:  # ConfigError: mover options
            self.metrics.failed.inc()
            LOG.error("WIS2 notification %s on %s not delivered: %s", notification.id, topic, redact(str(err)))
            history.record("download failed", uid=posixpath.basename(notification.data_id), peer=redact(link.href),
                           detail=redact(str(err)))
            return FAILED
        finally:
            if not delivered:
                self.seen.release(notification.id, notification.data_id)
        self.seen.delivered(notification.id, notification.data_id, notification.pubtime)
        return DELIVERED

    def _in_area(self, notification: Notification) -> bool:
        bbox = self.config.bbox
        if bbox is None:
            return True
        touches = bbox.touches(notification.geometry)
        return self.config.keep_unlocated if touches is None else touches

    def _deliver(self, notification: Notification, link: Link, topic: str) -> None:
        """Write the data of ``notification`` in place, verified, and announce it."""
        known = fields(notification, topic)
        target = local_path(self.config.download_destination, self.config.layout, notification, link, known)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        name = os.path.basename(target)
        started = time.monotonic()
        if notification.content is not None:
            source = "inline content"
            size = write_inline(notification, target)
        else:
            source = redact(link.href)
            self._download(notification, link, target)
            size = file_size(target) or 0
        seconds = time.monotonic() - started
        self.metrics.delivered.inc()
        self.metrics.bytes.inc(size)
        self.metrics.duration.observe(seconds)
        log_transfer(LOG, uid=name, source=source, destination=target, nbytes=size, seconds=seconds)
        history.record("downloaded", uid=name, path=target, peer=source, seconds=seconds, size=size)
        if self.publisher is not None:
            self.publisher.send(Message(self.config.publish_topic, "file",
                                        file_data(notification, known, target, size)))
            self.metrics.announced.inc()

    def _download(self, notification: Notification, link: Link, target: str) -> None:
        """Fetch ``link`` to ``target`` with its scheme's mover, checked against the notification."""
        mover = self.movers.get(link.href, self.config.connection_parameters)
        method, value = notification.integrity_method, notification.integrity_value
        if link.length is not None or method is None or value is None:
            expected = Digest(link.length, method, value) if link.length is not None else None
            mover.get(link.href, target, expected=expected)
            return
        # No length: a Digest needs the size, so the mover cannot check; check before putting it in place.
        staging = tempfile.mkdtemp(prefix=".trollmoves_", dir=os.path.dirname(target))  # same filesystem
        try:
            def attempt() -> str:
                staged = mover.get(link.href, os.path.join(staging, os.path.basename(target)))
                verify_file(staged, Digest(os.path.getsize(staged), method, value), f"downloaded {redact(link.href)}")
                return staged

            # the mover retried network trouble already: only a copy that does not match is fetched again
            staged = with_retries(attempt, what=f"get {redact(link.href)}", attempts=mover.attempts,
                                  base_delay=mover.retry_delay, transient=_mismatch)
            os.replace(staged, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)


def write_inline(notification: Notification, target: str) -> int:
    """Decode the notification's inline ``content``, check it and write it to ``target`` atomically; its size."""
    content = notification.content or {}
    encoding, value = content.get("encoding"), str(content.get("value", ""))
    try:
        if encoding == "utf-8":
            data = value.encode("utf-8")
        elif encoding == "base64":
            data = base64.b64decode(value, validate=True)
        else:
            data = gzip.decompress(base64.b64decode(value, validate=True))
    except (binascii.Error, ValueError, OSError, EOFError) as err:
        raise WnmError(f"properties.content: cannot decode the {encoding} value: {err}") from None
    hasher = Hasher(notification.integrity_method)
    hasher.update(data)
    check(hasher.digest(), Digest(int(content.get("size", len(data))), notification.integrity_method,
                                  notification.integrity_value), "inline content", transient=False)
    partial_path = temporary_sibling(target, secrets.token_hex(4))
    try:
        with open(partial_path, "wb") as out:
            out.write(data)
        os.replace(partial_path, target)
    finally:
        if os.path.exists(partial_path):
            os.remove(partial_path)
    return len(data)


def session_id(config: SubscriberConfig) -> str:
    """The MQTT client id of the subscriber's persistent session: the broker address's ``client_id``
    and a digest of the filters (and group), so that a restart with the same ones resumes the session."""
    digest = hashlib.sha1("\n".join([config.broker.group or "", *sorted(config.subscribe)]).encode()).hexdigest()[:10]
    return f"{config.broker.client_id}-wis2-{digest}"


def _mismatch(err: BaseException) -> bool:
    return isinstance(err, ChecksumMismatch)


def _message_id(payload: bytes) -> str:
    """The ``id`` a payload that is not a valid WNM gives, for the log line (``?`` without one)."""
    try:
        doc = json.loads(payload)
    except ValueError:
        return "?"
    value = doc.get("id") if isinstance(doc, dict) else None
    return repr(value)[:80] if value is not None else "?"

