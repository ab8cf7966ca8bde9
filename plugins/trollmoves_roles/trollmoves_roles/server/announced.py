"""The bounded record of files this server announced: what requests may refer to, and the
recent announcements themselves, which ``info`` lists on request (reconciliation), newest
first or, for a client catching up, page by page after a time (each chain's announcement times
strictly increase).

Records are plain data (:meth:`AnnouncedFiles.records` / :meth:`AnnouncedFiles.restore`).
With a :class:`~trollmoves_roles.state.journal.Journal` attached (:meth:`AnnouncedFiles.attach`,
the server's ``--state-directory``), every change is also written there, so a restarted
server (even after ``kill -9``) keeps serving the files it announced that are still on disk,
and keeps listing its recent announcements.

Records of files gone from the disk are dropped as announcing goes on (each announcement
checks :data:`CHECKS_PER_FILE` older records), so the map holds about the files on disk,
not every file ever announced, up to :data:`DEFAULT_CAPACITY`.

Memory: records use ``__slots__``, share the topic and chain strings and store no uid when
it is the file name; a listed announcement keeps its data as one JSON string, and only the
newest :data:`LISTED_MAX` per chain are kept (sizes: ``docs/roles/server.md``).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from posttroll.message import create_datetime_json_encoder_for_version, datetime_decoder

from trollmoves_core.checksum import Digest
from trollmoves_roles.protocol.messages import MESSAGE_VERSION

if TYPE_CHECKING:
    from trollmoves_roles.state.journal import Journal

STATE = "announced"
"""The journal state of the file records."""
LISTED_STATE = "listed:"
"""Prefix of the journal state of listed announcements (``listed:<chain>``)."""

DEFAULT_CAPACITY = 61000
"""Entries kept, oldest dropped first (upstream's cache size)."""
LISTED_MAX = 40000
"""Announcements kept per chain for ``info`` listings: an hour at 10 files/s (36,000) with room to spare,
so that a client down for its ``catch_up_window`` finds what it missed (sizes: ``docs/roles/server.md``)."""
_PRUNE_EVERY = 256
"""Listed announcements between two trims of the journal's listing records."""
CHECKS_PER_FILE = 2
"""Older records checked for a vanished file per file announced: records of deleted files
are dropped within about half as many announcements as there are records."""

_encode_datetime = create_datetime_json_encoder_for_version(MESSAGE_VERSION)


class Announced:
    """One announced file: its local ``path``, ``uid`` and the chain's ``topic``.

    ``dev``/``ino`` identify the file that was announced (0 when it could not be read), so a
    file swapped in under the same path afterwards is not served in its place. ``size``,
    ``method`` and ``checksum`` are what the announcement said (:attr:`digest`), computed once.
    """

    __slots__ = ("_uid", "chain", "checksum", "dev", "ino", "method", "path", "size", "time", "topic")

    def __init__(self, path: str, uid: str, topic: str, chain: str, *, time: float, dev: int = 0,
                 ino: int = 0, size: int | None = None, method: str | None = None,
                 checksum: str | None = None) -> None:
        self.path = path
        self._uid = None if uid == os.path.basename(path) else uid
        self.topic = topic
        self.chain = chain
        self.time = time
        self.dev = dev
        self.ino = ino
        self.size = size
        self.method = method
        self.checksum = checksum

    @property
    def digest(self) -> Digest | None:
        """The size and checksum announced for the file (None when none was)."""
        return None if self.size is None else Digest(self.size, self.method, self.checksum)

    @property
    def uid(self) -> str:
        return os.path.basename(self.path) if self._uid is None else self._uid

    def same_file(self, stat: os.stat_result) -> bool:
        """Whether ``stat`` (of the path now, links followed) is the file that was announced."""
        return not self.ino or (stat.st_dev, stat.st_ino) == (self.dev, self.ino)

    @property
    def cache_entry(self) -> str:
        """What ``info`` replies list: ``<topic>/<uid>``."""
        return f"{self.topic.rstrip('/')}/{self.uid}"

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"path": self.path, "uid": self.uid, "topic": self.topic, "chain": self.chain,
                                "time": self.time, "dev": self.dev, "ino": self.ino}
        if self.size is not None:
            data.update(size=self.size, method=self.method, checksum=self.checksum)
        return data

    def __repr__(self) -> str:
        return f"Announced({self.as_dict()!r})"


class _Listed:
    """One announcement as published: ``data`` is its JSON (posttroll's datetime encoding)."""

    __slots__ = ("atype", "data", "paths", "subject", "time")

    def __init__(self, subject: str, atype: str, data: str, time: float, paths: tuple[str, ...]) -> None:
        self.subject = subject
        self.atype = atype
        self.data = data
        self.time = time
        self.paths = paths

    def journal_data(self) -> dict[str, Any]:
        return {"subject": self.subject, "type": self.atype, "data": self.data, "time": self.time,
                "paths": list(self.paths)}


class AnnouncedFiles:
    """Thread-safe, insertion-ordered, bounded map of announced paths, with the newest
    announcements of each chain.

    :param capacity: file records kept (oldest dropped first).
    :param listed: announcements kept per chain for listings.
    """

    def __init__(self, capacity: int = DEFAULT_CAPACITY, listed: int = LISTED_MAX) -> None:
        self.capacity = capacity
        self.listed_max = listed
        self._entries: dict[str, Announced] = {}  # oldest first: a re-announced path moves to the end
        self._to_check: list[Announced] = []  # records whose files are yet to be looked for
        self._listed: dict[str, deque[_Listed]] = {}
        self._listed_since_prune: dict[str, int] = {}
        self._started = time.time()
        self._complete_after: dict[str, float] = {}
        """Per chain: the listing holds every announcement after this time (default: ``_started``)."""
        self._sequence = time.time_ns()
        self._lock = threading.Lock()
        self._journal: Journal | None = None

    # -- the journal -----------------------------------------------------------------------

    def attach(self, journal: Journal) -> int:
        """Persist to ``journal`` from now on, first restoring what it holds.

        Records of files no longer on disk are dropped (from the journal too). Returns how
        many were restored.
        """
        kept: list[dict[str, object]] = []
        gone: list[str] = []
        listed: dict[str, list[_Listed]] = {}
        for record in journal.records():
            if record.state.startswith(LISTED_STATE):
                entry = _listed_from(record.data)
                if entry is None:
                    gone.append(record.key)
                else:
                    listed.setdefault(record.state[len(LISTED_STATE):], []).append(entry)
                continue
            if record.state != STATE:
                continue
            try:
                item = {"path": record.key, "uid": str(record.data["uid"]), "topic": str(record.data["topic"]),
                        "chain": str(record.data["chain"]), "time": float(record.data["time"]),
                        "dev": int(record.data.get("dev", 0)), "ino": int(record.data.get("ino", 0)),
                        **_digest_fields(record.data)}
            except (KeyError, TypeError, ValueError):
                gone.append(record.key)
                continue
            if os.path.isfile(record.key):
                kept.append(item)
            else:
                gone.append(record.key)
        journal.delete_many(gone)
        restored = {str(e["path"]) for e in kept}
        self.restore(kept)
        with self._lock:
            unsaved = [(chain, e) for chain, entries in self._listed.items() for e in entries]
            for chain, entries in listed.items():
                current = self._listed.get(chain, ())
                merged = [*entries, *current]
                # what the journal kept: nothing older may be listed, whether never journalled or pruned
                self._complete_after[chain] = merged[-self.listed_max:][0].time
                self._listed[chain] = deque(merged, maxlen=self.listed_max)
            self._journal = journal
            newer = [e.as_dict() for e in self._live() if e.path not in restored]
        journal.put_many((str(e["path"]), STATE, _data(e)) for e in newer)
        journal.put_many((self._next_key(chain), LISTED_STATE + chain, e.journal_data()) for chain, e in unsaved)
        journal.prune(self.capacity, STATE)
        for chain in self._listed:
            journal.prune(self.listed_max, LISTED_STATE + chain)
        return len(kept)

    def detach(self) -> None:
        with self._lock:
            self._journal = None

    def _next_key(self, chain: str) -> str:
        self._sequence += 1
        return f"{LISTED_STATE}{chain}:{self._sequence}"

    # -- changes ---------------------------------------------------------------------------

    def add(self, path: str, uid: str, topic: str, chain: str) -> Announced:
        """Record one file (not listed as an announcement)."""
        return self.announce([(path, uid)], topic, chain)[0]

    def announce(self, files: Sequence[tuple[str, str]], topic: str, chain: str, *,
                 message: tuple[str, str, dict[str, Any]] | None = None,
                 digests: Sequence[Digest | None] | None = None) -> list[Announced]:
        """Record ``files`` (``(path, uid)`` pairs) announced together by ``chain``; with
        ``message`` (subject, type, data as published) also list the announcement; with
        ``digests`` (one per file) keep what was announced of each file's size and checksum."""
        now = time.time()
        entries = []
        for index, (path, uid) in enumerate(files):
            try:
                stat = os.stat(path)
                dev, ino = stat.st_dev, stat.st_ino
            except (OSError, ValueError):
                dev = ino = 0
            digest = digests[index] if digests is not None else None
            entries.append(Announced(path, uid, topic, chain, time=now, dev=dev, ino=ino,
                                     **({} if digest is None else {"size": digest.size, "method": digest.method,
                                                                   "checksum": digest.value})))
        listed = None
        if message is not None:
            subject, atype, data = message
            listed = _Listed(subject, atype, json.dumps(data, default=_encode_datetime), now,
                             tuple(e.path for e in entries))
        vanished = self._vanished(CHECKS_PER_FILE * len(entries))
        with self._lock:
            evicted = [old.path for old in vanished if self._drop(old)]
            for entry in entries:
                self._entries.pop(entry.path, None)
                self._entries[entry.path] = entry
            while len(self._entries) > self.capacity:
                evicted.append(self._entries.pop(next(iter(self._entries))).path)
            if listed is not None:
                queue = self._listed.get(chain)
                if queue is None:
                    queue = self._listed[chain] = deque(maxlen=self.listed_max)
                elif queue and listed.time <= queue[-1].time:  # strictly increasing: listing clients page by time
                    listed.time = queue[-1].time + 1e-6
                    for entry in entries:
                        entry.time = listed.time
                if len(queue) == self.listed_max:
                    self._complete_after[chain] = queue[0].time
                queue.append(listed)
            # written under the lock, so the journal sees changes to one path in their real order
            if self._journal is not None:
                rows = [(e.path, STATE, _data(e.as_dict())) for e in entries]
                if listed is not None:
                    rows.append((self._next_key(chain), LISTED_STATE + chain, listed.journal_data()))
                self._journal.attempt(self._journal.put_many, rows)
                if evicted:
                    self._journal.attempt(self._journal.delete_many, evicted)
                if listed is not None:
                    count = self._listed_since_prune.get(chain, 0) + 1
                    self._listed_since_prune[chain] = count % _PRUNE_EVERY
                    if count >= _PRUNE_EVERY:
                        self._journal.attempt(self._journal.prune, self.listed_max, LISTED_STATE + chain)
        return entries

    def _vanished(self, count: int) -> list[Announced]:
        """Up to ``count`` of the records not checked lately whose files are gone from the disk."""
        with self._lock:
            if not self._to_check:
                self._to_check = list(reversed(self._entries.values()))  # popped from the end: oldest first
            batch = [self._to_check.pop() for _ in range(min(count, len(self._to_check)))]
        gone = []
        for entry in batch:
            try:
                os.stat(entry.path)
            except (FileNotFoundError, NotADirectoryError):
                gone.append(entry)
            except (OSError, ValueError):  # unreadable now (a network file system hiccup): keep it
                pass
        return gone

    def discard(self, path: str) -> None:
        """Forget ``path`` (deleted or moved away) and the oldest listed announcements no longer served."""
        with self._lock:
            entry = self._entries.get(path)
            if entry is not None and self._drop(entry) and self._journal is not None:
                self._journal.attempt(self._journal.delete, path)

    def _drop(self, entry: Announced) -> bool:
        """Forget ``entry`` unless a newer record replaced it, then the oldest listed announcements
        of its chain no longer served; whether it was forgotten (lock held)."""
        if self._entries.get(entry.path) is not entry:
            return False
        del self._entries[entry.path]
        if len(self._to_check) > 2 * len(self._entries):
            # mostly records already forgotten, which the list would keep in memory until checked
            self._to_check = [e for e in self._to_check if self._entries.get(e.path) is e]
        queue = self._listed.get(entry.chain)
        while queue and not self._served(queue[0]):
            queue.popleft()
        return True

    def _served(self, item: _Listed) -> bool:
        """Whether every file of a listed announcement is still recorded as announced by it (lock held)."""
        return all((entry := self._entries.get(path)) is not None and entry.time == item.time for path in item.paths)

    # -- reading ---------------------------------------------------------------------------

    def get(self, path: str) -> Announced | None:
        with self._lock:
            return self._entries.get(path)

    def _live(self, newest_first: bool = False) -> Iterator[Announced]:
        """Current records, oldest first (caller holds the lock)."""
        return reversed(self._entries.values()) if newest_first else iter(self._entries.values())

    def newest(self, prefix: str = "", limit: int | None = None) -> list[str]:
        """``info`` entries starting with ``prefix``, newest first, at most ``limit``."""
        found: list[str] = []
        with self._lock:
            for entry in self._live(newest_first=True):
                if limit is not None and len(found) >= limit:
                    break
                cache_entry = entry.cache_entry
                if cache_entry.startswith(prefix):
                    found.append(cache_entry)
        return found

    def listed(self, chain: str, limit: int) -> list[dict[str, Any]]:
        """The newest announcements of ``chain`` (at most ``limit``), newest first, as
        ``{"subject", "type", "data", "time"}`` dicts (``time``: Unix seconds).

        Only announcements whose files are all still served are listed: a file deleted,
        replaced by a newer announcement or gone from the disk removes its announcement.
        """
        candidates: list[_Listed] = []
        with self._lock:
            for item in reversed(self._listed.get(chain, ())):
                if len(candidates) >= limit:
                    break
                if self._served(item):
                    candidates.append(item)
        return self._as_dicts(candidates)

    @staticmethod
    def _as_dicts(candidates: list[_Listed]) -> list[dict[str, Any]]:
        found = []
        for item in candidates:
            if not all(os.path.isfile(path) for path in item.paths):
                continue
            try:
                data = json.loads(item.data, object_hook=datetime_decoder)
            except ValueError:  # cannot happen for what we encoded; skip rather than fail the reply
                continue
            found.append({"subject": item.subject, "type": item.atype, "data": data, "time": item.time})
        return found

    def listed_after(self, chain: str, after: float, limit: int) -> tuple[list[dict[str, Any]], bool]:
        """The announcements of ``chain`` made after ``after`` (Unix seconds), oldest first, at most
        ``limit``, as :meth:`listed` gives them; and whether newer ones are left (ask again after
        the last one's ``time``)."""
        candidates: list[_Listed] = []
        more = False
        with self._lock:
            queue = self._listed.get(chain, ())
            start = len(queue)
            for item in reversed(queue):  # the newest are the ones asked for most often
                if item.time <= after:
                    break
                start -= 1
            for index in range(start, len(queue)):
                item = queue[index]
                if len(candidates) >= limit:
                    more = True
                    break
                if self._served(item):
                    candidates.append(item)
        return self._as_dicts(candidates), more

    def complete_after(self, chain: str) -> float:
        """The listing of ``chain`` holds every announcement made after this time (Unix seconds) whose
        files are still served: when this server started, the oldest one restored from its journal, or
        the newest one the bound dropped."""
        with self._lock:
            return self._complete_after.get(chain, self._started)

    def records(self) -> list[dict[str, object]]:
        """Every file record, oldest first, as plain dicts."""
        with self._lock:
            return [entry.as_dict() for entry in self._live()]

    def restore(self, records: Iterable[dict[str, object]]) -> None:
        """Load file records saved with :meth:`records` (newer ones already here win)."""
        loaded = [Announced(**r) for r in records]  # type: ignore[arg-type]
        with self._lock:
            entries: dict[str, Announced] = {}
            for entry in [*loaded, *self._entries.values()]:
                entries.pop(entry.path, None)
                entries[entry.path] = entry
            while len(entries) > self.capacity:
                del entries[next(iter(entries))]
            self._entries = entries
            self._to_check = []

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[str]:
        with self._lock:
            return iter([entry.path for entry in self._live()])


def _data(entry: dict[str, object]) -> dict[str, object]:
    data = {"uid": entry["uid"], "topic": entry["topic"], "chain": entry["chain"], "time": entry["time"],
            "dev": entry.get("dev", 0), "ino": entry.get("ino", 0)}
    if entry.get("size") is not None:
        data.update(size=entry["size"], method=entry.get("method"), checksum=entry.get("checksum"))
    return data


def _digest_fields(data: dict[str, Any]) -> dict[str, Any]:
    """The size and checksum of a journalled record, or nothing when it has none (or a bad one)."""
    size, method, checksum = data.get("size"), data.get("method"), data.get("checksum")
    if not isinstance(size, int) or isinstance(size, bool):
        return {}
    if not (isinstance(method, str) and isinstance(checksum, str)):
        method = checksum = None
    return {"size": size, "method": method, "checksum": checksum}


def _listed_from(data: dict[str, Any]) -> _Listed | None:
    subject, atype, raw, when, paths = (data.get(k) for k in ("subject", "type", "data", "time", "paths"))
    if (not isinstance(subject, str) or not isinstance(atype, str) or not isinstance(raw, str)
            or not isinstance(when, int | float) or not isinstance(paths, list)
            or not all(isinstance(p, str) for p in paths)):
        return None
    return _Listed(subject, atype, raw, float(when), tuple(paths))
