"""The WIS2 notifications a subscriber has delivered, so that a repeat is skipped, even after a restart.

A notification is a repeat when its ``id`` was delivered (the same message through a second
broker, or redelivered by the broker after a restart), or when a notification of the same
``data_id`` with the same or a newer ``pubtime`` was (an older one arriving late). A newer
``pubtime`` for a known ``data_id`` is an update: it is delivered again.

Both are kept in memory (:class:`~trollmoves_core.recent.RecentKeys`, the ``remember`` newest
of each) and, with a :class:`~trollmoves_roles.state.journal.Journal` (the role's
``--state-directory``), written through to sqlite and read back at start. A notification being
handled is *claimed*: a second copy arriving meanwhile is a repeat too. Thread-safe.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from datetime import datetime
from pathlib import Path

from trollmoves_roles.state.journal import Journal, journal_path

from trollmoves_core.exceptions import ConfigError
from trollmoves_core.recent import RecentKeys, key_of

LOG = logging.getLogger(__name__)

TABLE = "wis2_delivered"
STATE = "delivered"
"""The journal state of a delivered notification's records."""
_PRUNE_EVERY = 1024
"""Deliveries between two trims of the journal to the newest ``remember`` pairs of records."""


class SeenNotifications:
    """The ``remember`` newest delivered notifications, by ``id`` and by ``data_id`` + ``pubtime``."""

    def __init__(self, remember: int, journal: Journal | None = None) -> None:
        self.remember = remember
        self._ids = RecentKeys(None, remember)
        self._data = RecentKeys(None, remember, values=True)
        """key of the data_id → its delivered pubtime (microseconds since the epoch)."""
        self._claimed: set[tuple[str, str]] = set()
        """("id", id) and ("data", data_id) of the notifications being handled."""
        self._lock = threading.Lock()
        self._journal = journal
        self._since_prune = 0
        if journal is not None:
            for record in journal.records(STATE):
                kind, _, value = record.key.partition(":")
                if kind == "id":
                    self._ids.add(key_of(value))
                elif kind == "data" and isinstance(record.data.get("pubtime"), int):
                    self._data.add(key_of(value), value=record.data["pubtime"])

    def claim(self, notification_id: str, data_id: str, pubtime: datetime) -> str | None:
        """Why the notification is a repeat (``"id"``, ``"data_id"``, ``"in progress"``), or None
        when it is new: it is then claimed until :meth:`delivered` or :meth:`release`."""
        with self._lock:
            if key_of(notification_id) in self._ids:
                return "id"
            known = self._data.get(key_of(data_id))
            if known is not None and known >= _micros(pubtime):
                return "data_id"
            claims = {("id", notification_id), ("data", data_id)}
            if claims & self._claimed:
                return "in progress"
            self._claimed |= claims
            return None

    def release(self, notification_id: str, data_id: str) -> None:
        """Give up a claim without delivering (a failed download: a repeat is tried again)."""
        with self._lock:
            self._claimed -= {("id", notification_id), ("data", data_id)}

    def delivered(self, notification_id: str, data_id: str, pubtime: datetime) -> None:
        """Remember a claimed notification as delivered (and write it to the journal)."""
        micros = _micros(pubtime)
        with self._lock:
            self._claimed -= {("id", notification_id), ("data", data_id)}
            self._ids.add(key_of(notification_id))
            self._data.discard(key_of(data_id))
            self._data.add(key_of(data_id), value=micros)
            self._since_prune += 1
            prune = self._since_prune >= _PRUNE_EVERY
            if prune:
                self._since_prune = 0
        journal = self._journal
        if journal is not None:
            journal.attempt(journal.put_many, [(f"id:{notification_id}", STATE, None),
                                               (f"data:{data_id}", STATE, {"pubtime": micros})])
            if prune:
                journal.attempt(journal.prune, 2 * self.remember, STATE)

    def close(self) -> None:
        if self._journal is not None:
            self._journal.close()
            self._journal = None


def _micros(moment: datetime) -> int:
    """``moment`` (timezone-aware) in microseconds since the epoch: a 64-bit value that orders as time."""
    return round(moment.timestamp() * 1_000_000)


def open_seen(state_directory: str | os.PathLike[str] | None, config_file: str | os.PathLike[str], role: str,
              remember: int) -> tuple[SeenNotifications, Path | None]:
    """The delivered notifications of ``role`` running ``config_file``, kept in its journal in
    ``state_directory`` (and that journal's path), or in memory only without a directory.

    Raises ConfigError naming ``--state-directory`` when the journal cannot be kept there.
    """
    if not state_directory:
        LOG.warning("No --state-directory: repeats of the notifications delivered before a restart are not "
                    "recognised")
        return SeenNotifications(remember), None
    path = journal_path(state_directory, config_file, role)
    try:
        journal = Journal(path, table=TABLE)
    except (OSError, ValueError, sqlite3.Error) as err:
        raise ConfigError(f"--state-directory: cannot keep a journal in {state_directory}: {err}",
                          file="command line") from None
    seen = SeenNotifications(remember, journal)
    LOG.info("Delivered notifications remembered in %s (%d records)", path, journal.count(STATE))
    return seen, path
