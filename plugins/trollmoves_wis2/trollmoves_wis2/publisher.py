"""Announce each file a chain delivers as a WIS2 notification message on an MQTT broker.

:class:`Wis2Publisher` is the ``wis2`` delivery observer (:mod:`trollmoves_core.observer`): a chain
with ``wis2_*`` keys (:mod:`trollmoves_wis2.options`) opens one, connected with trollmoves-mqtt's
:class:`~trollmoves_mqtt.connection.Connection` (a refused login or an untrusted certificate stops
the role at start, exit 2). The chain's thread only hands each delivery to the :class:`Outbox`; a
worker thread of the publisher measures the file when the message has no checksum, builds the
message (:meth:`Wis2Publisher.notification_of`), checks it with
:func:`~trollmoves_wis2.notification.validate` and publishes it QoS 1, retain false, ContentType
``application/geo+json``; the broker's PUBACK takes it out of the outbox. A message that fails its
checks, or a file that cannot be read, costs one logged line and nothing else.

What is announced (see :mod:`trollmoves_wis2.announced`):

* a file whose ``data_id`` was announced before: ``rel: update``; one delivered again with the
  same checksum at the same URL: nothing (a restarted role delivering again what it delivered);
* a local destination's ``wis2_root`` is watched (the core's watchdog watcher, recursive): an
  announced file deleted or moved away (or its directory) is announced ``rel: deletion`` (same
  ``data_id``, topic and URL), one changed or replaced by something else than this chain
  ``rel: update`` with its new checksum and length, both :data:`SETTLE` seconds after the event
  (or at close), as the file then is (this chain's own replacement of a file is announced by its
  delivery; the watcher finds it current, and waits while that delivery is in the outbox).
  Removals while the role is not running go unheard.

With a state directory (the chain's ``state_directory`` key) the outbox and the announced files
are kept in ``wis2-<role>-<chain>-<hash>-<config name>-<hash>.sqlite`` there: every delivery is committed
before :meth:`~Wis2Publisher.delivered` returns and a restarted publisher sends what was not
acknowledged (at least once: a notification sent but not acknowledged before a ``kill -9`` may
arrive twice, with the same ``id``), and knows what it announced (:data:`REMEMBERED` files).
Without one, both are in memory: at most :data:`QUEUED` notifications wait (more are dropped,
each logged and counted in :attr:`~Wis2Publisher.dropped`; the chain never waits), and a restart
forgets what was announced. Notifications are handed to the broker only while connected, at most
:data:`IN_FLIGHT` unacknowledged at a time.
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import logging
import mimetypes
import os
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Any, ClassVar
from urllib.parse import quote

from paho.mqtt.client import MQTTMessageInfo
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from trollmoves_mqtt.connection import Connection, unique_id
from trollmoves_roles.observe.ratelimit import RateLimitedLog
from trollmoves_roles.state.journal import Journal, journal_path

from trollmoves_core.checksum import DEFAULT_METHOD, Digest, file_digest
from trollmoves_core.exceptions import ConfigError
from trollmoves_core.observer import Delivery, DeliveryObserver
from trollmoves_core.watchers.base import Watcher, file_version
from trollmoves_core.watchers.watchdog_watcher import WatchdogWatcher
from trollmoves_wis2 import notification, options, topics
from trollmoves_wis2.announced import Announced, AnnouncedFiles
from trollmoves_wis2.errors import WnmError, fill
from trollmoves_wis2.options import PublishOptions
from trollmoves_wis2.outbox import Job, Outbox

LOG = logging.getLogger(__name__)
_LIMITED = RateLimitedLog(LOG, period=60.0, burst=5)

REMEMBERED = 100_000
"""Files (and data_ids) remembered per chain to tell an update from a new file and to announce
a removal; without a state directory at most :data:`~trollmoves_wis2.announced.IN_MEMORY` files."""
QUEUED = 10_000
"""Notifications waiting per chain without a state directory; more are dropped."""
OUTBOX = 100_000
"""Notifications waiting per chain in the state directory's outbox; more are dropped."""
IN_FLIGHT = 1000
"""Notifications handed to the broker and not acknowledged yet, at most."""
SETTLE = 2.0
"""Seconds between a watcher's event for a file and the look at it that decides what to announce."""
DRAIN = 5.0
"""Seconds :meth:`Wis2Publisher.close` waits for the broker to acknowledge what is left."""
_POLL = 0.05
MEDIA_TYPES = {".h5": "application/x-hdf5", ".hdf5": "application/x-hdf5", ".he5": "application/x-hdf5",
               ".nc": "application/x-netcdf", ".bufr": "application/bufr", ".bin": "application/octet-stream",
               ".grib": "application/grib", ".grib2": "application/grib", ".grb2": "application/grib"}
"""Media types of common satellite and NWP files that :mod:`mimetypes` does not know."""
_RELS = {"new": notification.CANONICAL, "update": notification.UPDATE, "deletion": notification.DELETION}
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


class Wis2Publisher(DeliveryObserver):
    """Publish a WNM for each file a chain delivers, changes or removes (see the module doc)."""

    NAME: ClassVar[str] = "wis2"
    KEYS = options.KEYS

    def __init__(self, opts: PublishOptions, *, chain: str, connection: Connection,
                 state: str | os.PathLike[str] | None = None) -> None:
        """``state``: the sqlite file of the outbox and the announced files (None: in memory)."""
        self.options, self.chain, self.connection = opts, chain, connection
        self.published = 0
        """Notifications handed to the broker (again after a reconnection: counted again)."""
        self.acknowledged = 0
        self.refused = 0
        """Deliveries and changes not announced: their notification could not be built or was invalid."""
        self.dropped = 0
        """Deliveries not announced because the outbox was full."""
        self._journals = [Journal(state, table=table) for table in ("outbox", "announced", "announced_paths")
                          ] if state else [None, None, None]
        self.announced = AnnouncedFiles(REMEMBERED, *self._journals[1:])
        self.outbox = Outbox(OUTBOX if state else QUEUED, self._journals[0], name=chain)
        self._in_flight: deque[tuple[Job, MQTTMessageInfo]] = deque()
        self._changes: dict[str, float] = {}
        self._changes_lock = threading.Lock()
        self._watcher: Watcher | None = None
        self._watch = opts.local
        self._closing = threading.Event()
        self._drain_until = 0.0
        if len(self.outbox):
            LOG.info("[%s] %d WIS2 notifications left by the last run: sending them", chain, len(self.outbox))
        self._start_watching()
        self._worker = threading.Thread(target=self._run, name=f"wis2-{chain}", daemon=True)
        self._worker.start()

    @classmethod
    def open(cls, keys: Mapping[str, str], *, role: str, chain: str, file: str) -> Wis2Publisher | None:
        opts = options.parse_options(keys, file=file, chain=chain)
        if opts is None:
            return None
        state = None
        if directory := str(keys.get("state_directory") or "").strip():
            state = journal_path(directory, file, f"wis2-{role}-{_chain_name(chain)}")
            try:
                Journal(state, table="outbox").close()
            except OSError as err:
                raise ConfigError(f"cannot keep the WIS2 outbox in {directory}: {err}", file=file, section=chain,
                                  key="state_directory") from None
        try:  # a client id of its own: it publishes only, and keeps no session
            connection = Connection(opts.bus, unique_id(f"trollmoves-wis2-{chain}", role), role=f"[{chain}] wis2")
        except ConfigError as err:
            raise ConfigError(err.message, file=file, section=chain, key="wis2_broker") from None
        try:
            publisher = cls(opts, chain=chain, connection=connection, state=state)
        except BaseException:
            connection.close(drain=0)
            raise
        LOG.info("[%s] Announcing deliveries as WIS2 notifications on %s%s", chain, opts.bus,
                 f" (outbox {state})" if state else "")
        return publisher

    @classmethod
    def problems(cls, keys: Mapping[str, str]) -> dict[str, str]:
        return options.problems(keys)

    def delivered(self, delivery: Delivery) -> None:
        if not self.outbox.add(delivery):
            self._full(delivery.path)

    def _full(self, path: str) -> None:
        self.dropped += 1
        _LIMITED.error("full", "[%s] %d WIS2 notifications wait already (the broker %s is away?): %s not "
                       "announced (%d dropped so far)", self.chain, self.outbox.capacity, self.options.bus, path,
                       self.dropped)

    def close(self) -> None:
        """Announce the changes heard so far, send what waits (up to :data:`DRAIN` seconds), stop."""
        with self._changes_lock:  # heard in the last SETTLE seconds: due now
            self._changes = dict.fromkeys(self._changes, 0.0)
        self._drain_until = time.monotonic() + DRAIN
        self._closing.set()
        self.outbox.wake.set()
        self._worker.join()
        if self._watcher is not None:
            self._watcher.stop()
        self.connection.close()
        if left := len(self.outbox):
            LOG.warning("[%s] %d WIS2 notifications not acknowledged by %s: %s", self.chain, left, self.options.bus,
                        "kept for the next start" if self.outbox.journal else "lost")
        for journal in self._journals:
            if journal is not None:
                journal.close()

    # -- the worker --------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            self.outbox.wake.clear()
            try:
                self._acknowledge()
                self._settle()
            except Exception:  # a bug here must not stop later announcements
                LOG.exception("[%s] WIS2 publisher", self.chain)
            connected = self.connection.connected.is_set()
            if self._closing.is_set() and not self._due() and (not len(self.outbox) or not connected
                                                               or time.monotonic() > self._drain_until):
                return
            job = None
            try:
                job = self.outbox.take() if connected and len(self._in_flight) < IN_FLIGHT else None
                if job is None:
                    self.outbox.wake.wait(self._timeout(connected))
                    continue
                self._handle(job)
            except Exception:  # a bug here must not stop later announcements
                if job is not None:
                    self.outbox.done(job)
                LOG.exception("[%s] Cannot announce %s on WIS2", self.chain,
                              "the next notification" if job is None else job.delivery.path if job.delivery
                              else job.topic)

    def _timeout(self, connected: bool) -> float | None:
        if self._in_flight or (len(self.outbox) and not connected):
            return _POLL if self._in_flight else 0.2
        with self._changes_lock:
            due = min(self._changes.values(), default=None)
        return None if due is None else max(0.0, min(1.0, due - time.monotonic()))

    def _handle(self, job: Job) -> None:
        if job.delivery is not None:
            built = self._build(job.delivery, job)
            if built is None:
                self.outbox.done(job)
                return
            job = built
        properties = Properties(PacketTypes.PUBLISH)
        properties.ContentType = notification.MEDIA_TYPE
        self._in_flight.append((job, self.connection.publish(job.topic, job.payload, properties)))
        self.published += 1

    def _acknowledge(self) -> None:
        """Drop the jobs the broker acknowledged, in order (paho sends again after a reconnection
        what was not acknowledged, also what it was handed while disconnected); one paho did not
        keep is sent again."""
        while self._in_flight:
            job, info = self._in_flight[0]
            try:
                if not info.is_published():
                    return
            except (RuntimeError, ValueError):
                self._in_flight.popleft()
                self.outbox.again(job)
                continue
            self._in_flight.popleft()
            self.outbox.done(job)
            self.acknowledged += 1

    def publish(self, delivery: Delivery) -> bool:
        """Build and check the notification of ``delivery`` now, and queue it to be sent; whether
        it was (refusals and a full outbox are logged and counted)."""
        built = self._build(delivery, None)
        if built is not None:
            self.outbox.again(built)
            self.outbox.wake.set()
        return built is not None

    def _build(self, delivery: Delivery, job: Job | None) -> Job | None:
        """The job sending the notification of ``delivery`` (built from ``job``, see
        :meth:`Outbox.built`), then remembered as announced; None when there is nothing to
        announce, it is refused or the outbox is full (one logged line).

        The outbox is written first: a process dying between the two writes sends the
        notification at its restart, where the other order would lose it for good."""
        try:
            topic, doc = self.notification_of(delivery)
        except (WnmError, OSError) as err:
            self.refused += 1
            _LIMITED.error("build", "[%s] No WIS2 notification for %s: %s", self.chain, delivery.path, err)
            return None
        if problems := notification.validate(doc):
            self.refused += 1
            _LIMITED.error("invalid", "[%s] WIS2 notification for %s not sent: %s", self.chain, delivery.path,
                           "; ".join(problems))
            return None
        path = os.path.normpath(delivery.path)
        before = self.announced.get(path)
        if delivery.change != "deletion" and before is not None and _same(before.doc, doc):
            LOG.debug("[%s] %s was announced already as it is", self.chain, delivery.path)
            return None
        LOG.debug("[%s] Announcing %s on %s as %s", self.chain, delivery.path, topic, doc["links"][0]["rel"])
        built = self.outbox.built(job, topic, notification.encode(doc))
        if built is None:
            self._full(delivery.path)
            return None
        if delivery.change == "deletion":
            if before is not None:
                self.announced.forget(before)
        else:
            self.announced.remember(Announced(path, topic, doc, _version(path)))
            self._start_watching()
        return built

    # -- watching the served files --------------------------------------------------------

    def _start_watching(self) -> None:
        """Watch ``wis2_root`` once it exists, if it is local (failing that: one logged line)."""
        if not self._watch or self._watcher is not None or not os.path.isdir(self.options.root):
            return
        self._watch = False
        watcher = None
        try:
            watcher = WatchdogWatcher([self.options.root], self._changed, recursive=True, on_removed=self._changed)
            watcher.start()
        except (OSError, RuntimeError) as err:
            if watcher is not None:  # its threads and inotify descriptor
                watcher.stop()
            LOG.error("[%s] Cannot watch %s: removed or changed files are not announced on WIS2: %s", self.chain,
                      self.options.root, err)
            return
        self._watcher = watcher

    def _changed(self, path: str) -> None:
        """A file under ``wis2_root`` was written, replaced or removed (in the watcher's thread)."""
        with self._changes_lock:
            self._changes[os.path.normpath(path)] = time.monotonic() + SETTLE
        self.outbox.wake.set()

    def _due(self) -> bool:
        """Whether a change is to be looked at now."""
        now = time.monotonic()
        with self._changes_lock:
            return any(when <= now for when in self._changes.values())

    def _settle(self) -> None:
        now = time.monotonic()
        with self._changes_lock:
            due = [path for path, when in self._changes.items() if when <= now]
            for path in due:
                del self._changes[path]
        for path in due:
            self._reconcile(path)

    def _reconcile(self, path: str) -> None:
        """Announce what became of the announced file at ``path``: deleted, changed or as announced;
        later when a delivery of it waits in the outbox (its notification tells)."""
        if self.outbox.pending(path):
            with self._changes_lock:
                self._changes.setdefault(path, time.monotonic() + SETTLE)
            return
        before = self.announced.get(path)
        if before is None:
            if not os.path.lexists(path):  # a directory removed or moved away: its files went with it
                for inside in self.announced.under(path):
                    self._reconcile(inside)
            return
        try:
            st = os.stat(path)
        except FileNotFoundError:
            if self.announced.current(before):
                self._announce_again(before, notification.DELETION)
            self.announced.forget(before)
            return
        except OSError:
            return
        version = file_version(st.st_ino, st.st_size, st.st_mtime_ns)
        if version == before.version:
            return
        integrity = before.integrity
        try:
            digest = file_digest(path, integrity["method"] if isinstance(integrity, Mapping) else DEFAULT_METHOD)
        except (OSError, ValueError) as err:
            _LIMITED.error("read", "[%s] Cannot read %s, changed since its WIS2 notification: %s", self.chain,
                           path, err)
            return
        if integrity == {"method": digest.method, "value": digest.value}:  # rewritten as it was
            self.announced.remember(Announced(before.path, before.topic, before.doc, version))
            return
        self._announce_again(before, notification.UPDATE, digest, version)

    def _announce_again(self, before: Announced, rel: str, digest: Digest | None = None, version: int = 0) -> None:
        """Announce the file of ``before`` again as ``rel``: its last notification with a new
        ``id``, ``pubtime``, link relation and (for an update) checksum and length."""
        doc = copy.deepcopy(before.doc)
        doc["id"] = str(uuid.uuid4())
        properties = doc["properties"]
        properties["pubtime"] = notification.timestamp(dt.datetime.now(dt.UTC))
        link = next(link for link in doc["links"] if link.get("rel") in notification.NOTIFICATION_RELS)
        link["rel"] = rel
        if digest is not None:
            properties["integrity"] = {"method": digest.method, "value": digest.value}
            link["length"] = digest.size
        else:
            properties.pop("integrity", None)
            link.pop("length", None)
        if problems := notification.validate(doc):
            self.refused += 1
            _LIMITED.error("invalid", "[%s] WIS2 %s notification for %s not sent: %s", self.chain, rel, before.path,
                           "; ".join(problems))
            return
        LOG.info("[%s] %s %s: announcing it on WIS2 (%s)", self.chain, before.path,
                 "removed" if rel == notification.DELETION else "changed", rel)
        built = self.outbox.built(None, before.topic, notification.encode(doc))  # first: see _build
        if built is None:
            self._full(before.path)
            return
        self.outbox.again(built)
        if rel == notification.DELETION:
            self.announced.forget(before)
        else:
            self.announced.remember(Announced(before.path, before.topic, doc, version))

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
        change = delivery.change
        if change == "new" and self.announced.knows(data_id):
            change = "update"
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
        return fill(self.options.data_id, fields, "data_id")

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


def _chain_name(chain: str) -> str:
    """``chain`` as a file name: safe, and told apart from another chain of the same safe name."""
    return f"{_UNSAFE.sub('_', chain)}-{hashlib.sha256(chain.encode()).hexdigest()[:6]}"


def _same(announced: Mapping[str, Any], doc: Mapping[str, Any]) -> bool:
    """Whether ``doc`` announces what ``announced`` did: same data_id, URL and checksum."""
    return (announced["properties"]["data_id"] == doc["properties"]["data_id"]
            and announced["links"][0]["href"] == doc["links"][0]["href"]
            and announced["properties"].get("integrity") == doc["properties"].get("integrity"))


def _version(path: str) -> int:
    try:
        st = os.stat(path)
    except OSError:
        return 0
    return file_version(st.st_ino, st.st_size, st.st_mtime_ns)
