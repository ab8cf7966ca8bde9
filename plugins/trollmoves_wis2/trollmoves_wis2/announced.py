"""The files a WIS2 publisher announced and has not announced as deleted: what it needs to tell
an ``update`` from a new file and to announce a ``deletion`` with the same ``data_id`` and topic.

One :class:`Announced` per ``data_id``: the path of the file it was last announced for, the topic
and the last notification published, and the version
(:func:`~trollmoves_core.watchers.base.file_version`) of the file that notification described. A
file is found by its path too; the deletion of a file whose ``data_id`` moved on to another file
is not announced.

Without journals everything is in memory: the last :data:`IN_MEMORY` files and the last
``capacity`` data_ids (a restart forgets them). With them (two :class:`Journal` tables: by
``data_id``, and path → ``data_id``) nothing is held in memory and nothing read at start; each
keeps its last ``capacity`` rows.
"""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from trollmoves_roles.state.journal import Journal

from trollmoves_core.recent import RecentKeys, key_of

LOG = logging.getLogger(__name__)

IN_MEMORY = 10_000
"""Files remembered without a journal (their last notification is kept, up to 8 KiB each)."""
_PRUNE_EVERY = 1000
"""Writes between two prunings of the journal table to its capacity."""
_MASK64 = (1 << 64) - 1


@dataclass(frozen=True)
class Announced:
    """One announced file: its ``path``, the ``topic`` and notification ``doc`` last published for
    it, and the ``version`` of the file that notification describes (0: unknown)."""

    path: str
    topic: str
    doc: dict[str, Any]
    version: int

    @property
    def data_id(self) -> str:
        return str(self.doc["properties"]["data_id"])

    @property
    def integrity(self) -> Any:
        return self.doc["properties"].get("integrity")


class AnnouncedFiles:
    """The announced files (see the module doc); not thread-safe (the publisher's worker owns it)."""

    def __init__(self, capacity: int, by_id: Journal | None = None, by_path: Journal | None = None) -> None:
        self.capacity, self.by_id, self.by_path = capacity, by_id, by_path
        self._data_ids = RecentKeys(None, capacity, values=True)
        self._memory: OrderedDict[str, Announced] = OrderedDict()
        self._writes = 0

    def get(self, path: str) -> Announced | None:
        """What was announced for the file at ``path``, or None (also when its ``data_id`` was
        announced for another file since)."""
        if self.by_id is None or self.by_path is None:
            announced = self._memory.get(path)
            return announced if announced is not None and self.current(announced) else None
        record = self.by_path.get(path)
        if record is None or not isinstance(data_id := record.data.get("data_id"), str):
            return None
        announced = self._of(data_id)
        return announced if announced is not None and announced.path == path else None

    def under(self, directory: str) -> list[str]:
        """The paths of the files announced under ``directory`` (at any depth)."""
        prefix = directory.rstrip("/") + "/"
        if self.by_path is None:
            return [path for path in self._memory if path.startswith(prefix)]
        return self.by_path.keys(prefix=prefix)

    def knows(self, data_id: str) -> bool:
        """Whether ``data_id`` was announced (and not announced deleted since)."""
        if self.by_id is None:
            return key_of(data_id) in self._data_ids
        return self.by_id.get(data_id) is not None

    def current(self, announced: Announced) -> bool:
        """Whether the ``data_id`` of ``announced`` is still announced at its path."""
        if self.by_id is None:
            return self._data_ids.get(key_of(announced.data_id)) == _path_key(announced.path)
        found = self._of(announced.data_id)
        return found is not None and found.path == announced.path

    def remember(self, announced: Announced) -> None:
        if self.by_id is None or self.by_path is None:
            key = key_of(announced.data_id)
            self._data_ids.discard(key)
            self._data_ids.add(key, value=_path_key(announced.path))
            self._memory.pop(announced.path, None)
            self._memory[announced.path] = announced
            while len(self._memory) > min(self.capacity, IN_MEMORY):
                self._memory.popitem(last=False)
            return
        data = {"path": announced.path, "topic": announced.topic, "version": announced.version,
                "doc": json.dumps(announced.doc, separators=(",", ":"))}
        self.by_id.attempt(self.by_id.put, announced.data_id, "announced", data)
        self.by_path.attempt(self.by_path.put, announced.path, "announced", {"data_id": announced.data_id})
        self._writes += 1
        if self._writes % _PRUNE_EVERY == 0:
            for journal in (self.by_id, self.by_path):
                journal.attempt(journal.prune, self.capacity)

    def forget(self, announced: Announced) -> None:
        """Forget the file (announced deleted); its ``data_id`` too unless it moved on to another file."""
        current = self.current(announced)
        if self.by_id is None or self.by_path is None:
            if current:
                self._data_ids.discard(key_of(announced.data_id))
            self._memory.pop(announced.path, None)
            return
        if current:
            self.by_id.attempt(self.by_id.delete, announced.data_id)
        self.by_path.attempt(self.by_path.delete, announced.path)

    def _of(self, data_id: str) -> Announced | None:
        assert self.by_id is not None
        record = self.by_id.get(data_id)
        if record is None:
            return None
        try:
            return Announced(str(record.data["path"]), str(record.data["topic"]), json.loads(record.data["doc"]),
                             int(record.data.get("version") or 0))
        except (KeyError, TypeError, ValueError):
            return None

    def __len__(self) -> int:
        return len(self._memory) if self.by_id is None else self.by_id.count()


def _path_key(path: str) -> int:
    return key_of(path) & _MASK64
