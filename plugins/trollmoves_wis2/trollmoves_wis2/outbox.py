"""The notifications a WIS2 publisher owes the broker: taken in, built, sent, dropped on PUBACK.

A :class:`Job` is a delivery still to announce, or a notification built (topic and payload) and
not yet acknowledged. :meth:`Outbox.add` takes a delivery in the chain's thread; the publisher's
worker :meth:`~Outbox.take`\\ s jobs in order, stores what it built (:meth:`~Outbox.built`) and
drops a job when the broker acknowledged it or the notification was refused (:meth:`~Outbox.done`).

Without a journal the jobs are in memory and lost with the process. With one (a :class:`Journal`
table: one row per job, ``delivery`` or ``built``), :meth:`Outbox.add` commits the row before it
returns and a restarted publisher takes every row left: a notification built before the crash is
sent again as it was (same ``id``: a duplicate subscribers can tell), a delivery is built then.
:meth:`Outbox.pending` tells whether a delivery of a file waits to be built (one taken in
by this run). Either way at most ``capacity`` jobs wait: :meth:`Outbox.add` refuses more (False), never blocks.
A journal that cannot be written (a full disk) costs a logged line: the job is then kept in memory.
A row that cannot be read back (written by another version, or damaged) costs a logged line
naming it, and is deleted.
"""

from __future__ import annotations

import base64
import dataclasses
import logging
import os
import threading
import uuid
from collections import deque
from collections.abc import Mapping
from typing import Any, get_args

from posttroll.message import MessageError
from trollmoves_roles.observe.ratelimit import RateLimitedLog
from trollmoves_roles.protocol.codec import decode, encode, make_message
from trollmoves_roles.state.journal import Journal

from trollmoves_core.checksum import Digest
from trollmoves_core.observer import Change, Delivery

LOG = logging.getLogger(__name__)
_LIMITED = RateLimitedLog(LOG, period=60.0, burst=3)

DELIVERY, BUILT = "delivery", "built"


@dataclasses.dataclass(frozen=True)
class Job:
    """A ``delivery`` to announce, or a built notification (``topic``, ``payload``); ``key`` is
    its journal row (None: in memory only); ``pending``: the path the delivery counts for in
    :meth:`Outbox.pending` (None: not counted)."""

    key: str | None
    delivery: Delivery | None = None
    topic: str = ""
    payload: bytes = b""
    pending: str | None = None


class Outbox:
    """The jobs of one publisher (see the module doc); :meth:`add` from any thread, the rest from
    the worker. :attr:`wake` is set whenever a job comes in."""

    def __init__(self, capacity: int, journal: Journal | None = None, *, name: str = "") -> None:
        """``name``: the chain, in log lines."""
        self.capacity, self.journal, self.name = capacity, journal, name
        self.wake = threading.Event()
        # a job, or the key of its journal row (with the path of its delivery when counted)
        self._jobs: deque[Job | str | tuple[str, str]] = deque()
        self._waiting = 0
        self._pending: dict[str, int] = {}
        self._lock = threading.Lock()
        if journal is not None:
            keys = journal.keys()
            self._jobs.extend(keys)
            self._waiting = len(keys)

    def add(self, delivery: Delivery) -> bool:
        """Take ``delivery`` in (committed to the journal, if any, before this returns); False
        when ``capacity`` jobs wait already."""
        with self._lock:
            if self._waiting >= self.capacity:
                return False
            self._waiting += 1
            path = os.path.normpath(delivery.path)
            self._pending[path] = self._pending.get(path, 0) + 1
        item: Job | str | tuple[str, str] = Job(None, delivery, pending=path)
        if self.journal is not None:
            key = uuid.uuid4().hex
            try:
                data = _delivery_data(delivery)
            except MessageError as err:  # data JSON cannot write: kept in memory only
                _LIMITED.error("encode", "Cannot keep the delivery of %s in %s: %s", delivery.path,
                               self.journal.path, err)
            else:
                if self.journal.attempt(self.journal.put, key, DELIVERY, data):
                    item = (key, path)
        self._jobs.append(item)
        self.wake.set()
        return True

    def take(self) -> Job | None:
        """The oldest job not taken yet, or None."""
        while True:
            try:
                item = self._jobs.popleft()
            except IndexError:
                return None
            if isinstance(item, Job):
                return item
            assert self.journal is not None
            key, pending = item if isinstance(item, tuple) else (item, None)
            record = self.journal.get(key)
            if record is None:  # gone: acknowledged or refused already
                self.done(Job(None, pending=pending))
                continue
            try:
                return dataclasses.replace(_job_of(key, record.state, record.data), pending=pending)
            except (KeyError, TypeError, ValueError, MessageError) as err:
                LOG.error("[%s] WIS2 outbox %s: row %s (%s) cannot be read, deleted: %s", self.name,
                          self.journal.path, key, record.state, f"no {err}" if isinstance(err, KeyError) else err)
                self.done(Job(key, pending=pending))

    def built(self, job: Job | None, topic: str, payload: bytes) -> Job | None:
        """The job sending ``payload`` on ``topic`` (built from ``job``; a new one for None),
        stored in the place of ``job`` so that a restart sends it as it is, in order; None for
        a new one when ``capacity`` jobs wait already."""
        if job is None:
            with self._lock:
                if self._waiting >= self.capacity:
                    return None
                self._waiting += 1
        else:
            self._release(job)
        key = job.key if job is not None else None
        if self.journal is not None:
            key = key or uuid.uuid4().hex
            data = {"topic": topic, "payload": base64.b64encode(payload).decode()}
            if not self.journal.attempt(self.journal.replace, key, BUILT, data):  # its place: sent in order
                key = None
        return Job(key, topic=topic, payload=payload)

    def again(self, job: Job) -> None:
        """Put a taken ``job`` back in front: it was not acknowledged and is to be sent again."""
        self._jobs.appendleft(job)

    def done(self, job: Job) -> None:
        """Drop ``job``: acknowledged, or refused for good."""
        if job.key is not None and self.journal is not None:
            self.journal.attempt(self.journal.delete, job.key)
        self._release(job)
        with self._lock:
            self._waiting -= 1

    def pending(self, path: str) -> bool:
        """Whether a delivery of the file at ``path`` (normalised) waits to be announced."""
        with self._lock:
            return path in self._pending

    def _release(self, job: Job) -> None:
        if job.pending is None:
            return
        with self._lock:
            left = self._pending.pop(job.pending) - 1
            if left:
                self._pending[job.pending] = left

    def __len__(self) -> int:
        """Jobs not done yet (waiting, being built, or sent and not acknowledged)."""
        return self._waiting


def _delivery_data(delivery: Delivery) -> dict[str, Any]:
    # the data as a posttroll message writes it: its datetimes come back as datetimes
    digest = delivery.digest
    return {"role": delivery.role, "chain": delivery.chain, "change": delivery.change, "path": delivery.path,
            "subject": delivery.subject, "type": delivery.type,
            "digest": None if digest is None else [digest.size, digest.method, digest.value],
            "message": encode(make_message("/wis2", "file", dict(delivery.data)))}


def _job_of(key: str, state: str, data: Mapping[str, Any]) -> Job:
    """The job of the journal row ``key``; KeyError, TypeError, ValueError or MessageError for
    a row this version did not write."""
    if state == BUILT:
        topic, payload = data["topic"], data["payload"]
        if not isinstance(topic, str) or not topic or not isinstance(payload, str):
            raise ValueError("no topic or no payload")
        return Job(key, topic=topic, payload=base64.b64decode(payload, validate=True))  # binascii.Error: a ValueError
    if state != DELIVERY:
        raise ValueError(f"unknown state {state!r}")
    return Job(key, _delivery_of(data))


def _delivery_of(data: Mapping[str, Any]) -> Delivery:
    message = decode(str(data["message"]))
    digest, change = data.get("digest"), data["change"]
    if change not in get_args(Change):
        raise ValueError(f"unknown change {change!r}")
    return Delivery(str(data["role"]), str(data["chain"]), change, str(data["subject"]), str(data["type"]),
                    message.data if isinstance(message.data, dict) else {}, str(data["path"]),
                    None if digest is None else Digest(*digest))
