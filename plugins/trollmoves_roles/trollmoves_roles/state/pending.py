"""Messages received and not fully handled yet, journalled so that a restarted dispatcher or
downloader (even after ``kill -9``) handles them again, skipping the parts already done.

A message is split by its handler into *parts* (the dispatcher: one per source and destination;
the downloader: one per file). Each record holds the raw message, its parts and the parts done
with a value (where the file went); it is deleted when every part is done. Without a journal
(no ``--state-directory``) everything here does nothing and costs nothing.

Uses the shared :class:`~trollmoves_roles.state.journal.Journal`; write errors (a full disk) are
logged rate-limited and never stop the service.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from posttroll.message import Message

from trollmoves_core.exceptions import ConfigError
from trollmoves_roles.state import history
from trollmoves_roles.state.journal import Journal, journal_path

LOG = logging.getLogger(__name__)

STATE = "pending"


@dataclass
class PendingMessage:
    """One message to handle (again): its key, the message and the parts already done."""

    key: str
    message: Message
    done: dict[str, Any] = field(default_factory=dict)


class PendingMessages:
    """The journal of unfinished messages (thread-safe)."""

    def __init__(self, journal: Journal | None = None) -> None:
        self.journal = journal
        self._parts: dict[str, tuple[str, list[str], dict[str, Any]]] = {}
        self._lock = threading.Lock()
        self._history: history.History | None = None

    @classmethod
    def open(cls, state_directory: str | os.PathLike[str] | None, config_file: str | os.PathLike[str],
             role: str) -> PendingMessages:
        """The journal ``<state_directory>/<role>-<config name>.sqlite``; a no-op one without a directory.

        Raises ConfigError naming ``--state-directory`` when the journal cannot be kept there.
        """
        if not state_directory:
            return cls()

        path = journal_path(state_directory, config_file, role)
        try:
            journal = Journal(path, table="messages")
        except (OSError, ValueError, sqlite3.Error) as err:
            raise ConfigError(f"--state-directory: cannot keep a journal in {state_directory}: {err}",
                              file="command line") from None
        LOG.info("Journal of unfinished messages: %s (%d to resume)", path, journal.count(STATE))
        pending = cls(journal)
        pending._history = history.open_history(path, role, config_file)
        return pending

    @property
    def enabled(self) -> bool:
        return self.journal is not None

    @staticmethod
    def key_of(raw: str) -> str:
        return hashlib.sha256(raw.encode(errors="replace")).hexdigest()[:32]

    def add(self, message: Message, parts: Iterable[str], done: dict[str, Any] | None = None) -> str:
        """Record ``message`` as pending until each of ``parts`` is :meth:`done`; returns its key."""
        raw = message.encode()
        key = self.key_of(raw)
        if self.journal is None:
            return key
        entry = (raw, list(dict.fromkeys(parts)), dict(done or {}))
        with self._lock:
            self._parts[key] = entry
            self.journal.attempt(self.journal.put, key, STATE, {"message": raw, "parts": entry[1], "done": entry[2]})
        return key

    def done(self, key: str, part: str, value: Any = None) -> bool:
        """Mark ``part`` of ``key`` done (``value`` is kept for a restart); True when the message is finished."""
        if self.journal is None:
            return True
        with self._lock:
            entry = self._parts.get(key)
            if entry is None:
                return True
            raw, parts, done = entry
            done[part] = value
            if all(p in done for p in parts):
                del self._parts[key]
                self.journal.attempt(self.journal.delete, key)
                return True
            self.journal.attempt(self.journal.put, key, STATE, {"message": raw, "parts": parts, "done": done})
            return False

    def finish(self, key: str) -> None:
        """Forget ``key`` whatever its parts (handled, or nothing left to do)."""
        if self.journal is None:
            return
        with self._lock:
            self._parts.pop(key, None)
            self.journal.attempt(self.journal.delete, key)

    def pending(self) -> list[PendingMessage]:
        """Unfinished messages of an earlier run, oldest first (unreadable ones are dropped)."""
        if self.journal is None:
            return []
        found, broken = [], []
        for record in self.journal.records(STATE):
            try:
                message = Message.decode(record.data["message"])
                done = dict(record.data.get("done") or {})
            except Exception as err:  # written by a broken run: nothing to resume
                LOG.warning("Dropping unreadable journal record %s: %s", record.key, err)
                broken.append(record.key)
                continue
            found.append(PendingMessage(record.key, message, done))
        if broken:
            self.journal.attempt(self.journal.delete_many, broken)
        return found

    def resume(self, handle: Callable[[PendingMessage], int]) -> int:
        """Call ``handle`` on each unfinished message of an earlier run; how many there were."""
        items = self.pending()
        for item in items:
            try:
                handle(item)
            except Exception:  # one bad record must not stop the start-up
                LOG.exception("Could not resume message %s", item.key)
        if items:
            LOG.info("Resumed %d message(s) unfinished before the restart", len(items))
        return len(items)

    def close(self) -> None:
        if self.journal is not None:
            self.journal.close()
            self.journal = None
        history.close_history(self._history)
        self._history = None
