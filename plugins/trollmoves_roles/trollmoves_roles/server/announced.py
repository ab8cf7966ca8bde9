"""The bounded record of files this server announced: what requests may refer to.

Records are plain data (:meth:`AnnouncedFiles.records` / :meth:`AnnouncedFiles.restore`) so
they can be persisted across restarts.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass

DEFAULT_CAPACITY = 61000
"""Entries kept, oldest dropped first (upstream's cache size)."""


@dataclass(frozen=True)
class Announced:
    """One announced file: its local ``path``, ``uid`` and the chain's ``topic``."""

    path: str
    uid: str
    topic: str
    chain: str
    time: float

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

    def add(self, path: str, uid: str, topic: str, chain: str) -> Announced:
        entry = Announced(path, uid, topic, chain, time.time())
        with self._lock:
            self._entries.pop(path, None)
            self._entries[path] = entry
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)
        return entry

    def get(self, path: str) -> Announced | None:
        with self._lock:
            return self._entries.get(path)

    def discard(self, path: str) -> None:
        with self._lock:
            self._entries.pop(path, None)

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
