"""The bounded record of files this server announced: what requests may refer to.

Records are plain data (:meth:`AnnouncedFiles.records` / :meth:`AnnouncedFiles.restore`).
With a :class:`~trollmoves_roles.journal.Journal` attached (:meth:`AnnouncedFiles.attach`,
the server's ``--state-directory``), every change is also written there, so a restarted
server (even after ``kill -9``) keeps serving the files it announced that are still on disk.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from trollmoves_roles.ratelimit import RateLimitedLog

if TYPE_CHECKING:
    from trollmoves_roles.journal import Journal

LOG = logging.getLogger(__name__)
_LOG_LIMITED = RateLimitedLog(LOG, period=60.0, burst=3)
STATE = "announced"
"""The journal state of the records."""

DEFAULT_CAPACITY = 61000
"""Entries kept, oldest dropped first (upstream's cache size)."""


@dataclass(frozen=True)
class Announced:
    """One announced file: its local ``path``, ``uid`` and the chain's ``topic``.

    ``dev``/``ino`` identify the file that was announced (0 when it could not be read), so a
    file swapped in under the same path afterwards is not served in its place.
    """

    path: str
    uid: str
    topic: str
    chain: str
    time: float
    dev: int = 0
    ino: int = 0

    def same_file(self, stat: os.stat_result) -> bool:
        """Whether ``stat`` (of the path now, links followed) is the file that was announced."""
        return not self.ino or (stat.st_dev, stat.st_ino) == (self.dev, self.ino)

    @property
    def cache_entry(self) -> str:
        """What ``info`` replies list: ``<topic>/<uid>``."""
        return f"{self.topic.rstrip('/')}/{self.uid}"


class AnnouncedFiles:
    """Thread-safe, insertion-ordered, bounded map of announced paths."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[str, Announced] = OrderedDict()
        self._lock = threading.Lock()
        self._journal: Journal | None = None

    def attach(self, journal: Journal) -> int:
        """Persist to ``journal`` from now on, first restoring what it holds.

        Records of files no longer on disk are dropped (from the journal too). Returns how
        many were restored.
        """
        kept: list[dict[str, object]] = []
        gone: list[str] = []
        for record in journal.records(STATE):
            try:
                entry = {"path": record.key, "uid": str(record.data["uid"]), "topic": str(record.data["topic"]),
                         "chain": str(record.data["chain"]), "time": float(record.data["time"]),
                         "dev": int(record.data.get("dev", 0)), "ino": int(record.data.get("ino", 0))}
            except (KeyError, TypeError, ValueError):
                gone.append(record.key)
                continue
            if os.path.isfile(record.key):
                kept.append(entry)
            else:
                gone.append(record.key)
        journal.delete_many(gone)
        restored = {str(e["path"]) for e in kept}
        self.restore(kept)
        with self._lock:
            self._journal = journal
            newer = [asdict(e) for e in self._entries.values() if e.path not in restored]
        journal.put_many((str(e["path"]), STATE, _data(e)) for e in newer)
        journal.prune(self.capacity, STATE)
        return len(kept)

    def detach(self) -> None:
        with self._lock:
            self._journal = None

    def add(self, path: str, uid: str, topic: str, chain: str) -> Announced:
        try:
            stat = os.stat(path)
            dev, ino = stat.st_dev, stat.st_ino
        except (OSError, ValueError):
            dev = ino = 0
        entry = Announced(path, uid, topic, chain, time.time(), dev, ino)
        evicted = []
        with self._lock:
            self._entries.pop(path, None)
            self._entries[path] = entry
            while len(self._entries) > self.capacity:
                evicted.append(self._entries.popitem(last=False)[0])
            # written under the lock, so the journal sees changes to one path in their real order
            if self._journal is not None:
                self._write(self._journal.put, path, STATE, _data(asdict(entry)))
                if evicted:
                    self._write(self._journal.delete_many, evicted)
        return entry

    def get(self, path: str) -> Announced | None:
        with self._lock:
            return self._entries.get(path)

    def discard(self, path: str) -> None:
        with self._lock:
            self._entries.pop(path, None)
            if self._journal is not None:
                self._write(self._journal.delete, path)

    @staticmethod
    def _write(operation: object, *args: object) -> None:
        try:
            operation(*args)  # type: ignore[operator]
        except sqlite3.Error as err:  # a full disk must not stop announcing; the record stays in memory
            _LOG_LIMITED.error("journal", "Could not write the announced-files journal: %s", err)

    def newest(self, prefix: str = "", limit: int | None = None) -> list[str]:
        """``info`` entries starting with ``prefix``, newest first, at most ``limit``."""
        found: list[str] = []
        with self._lock:
            for entry in reversed(self._entries.values()):
                if limit is not None and len(found) >= limit:
                    break
                if entry.cache_entry.startswith(prefix):
                    found.append(entry.cache_entry)
        return found

    def records(self) -> list[dict[str, object]]:
        """Everything, oldest first, as plain dicts."""
        with self._lock:
            return [asdict(entry) for entry in self._entries.values()]

    def restore(self, records: Iterable[dict[str, object]]) -> None:
        """Load entries saved with :meth:`records` (newer ones already here win)."""
        with self._lock:
            current = self._entries
            self._entries = OrderedDict((str(r["path"]), Announced(**r)) for r in records)  # type: ignore[arg-type]
            self._entries.update(current)
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[str]:
        with self._lock:
            return iter(list(self._entries))


def _data(entry: dict[str, object]) -> dict[str, object]:
    return {"uid": entry["uid"], "topic": entry["topic"], "chain": entry["chain"], "time": entry["time"],
            "dev": entry.get("dev", 0), "ino": entry.get("ino", 0)}
