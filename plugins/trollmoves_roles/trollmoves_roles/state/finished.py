"""The pushes a server finished lately, so that a client's repeat of one is answered as done
without a second transfer: for ``seconds`` after it, even across a restart when a
:class:`~trollmoves_roles.state.journal.Journal` is attached (the server's ``--state-directory``).

A push is known by a 128-bit key (:func:`trollmoves_core.recent.key_of` of what was pushed
where); with it is kept the backup host that got the files when the push failed over, so a
repeat is answered with the same destination as the first reply. Thread-safe.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import TYPE_CHECKING

from trollmoves_core.recent import RecentKeys

if TYPE_CHECKING:
    from trollmoves_roles.state.journal import Journal

STATE = "pushed"
"""The journal state of a finished push."""
_PRUNE_EVERY = 256
"""Finished pushes between two trims of the journal to ``capacity`` records."""


class FinishedPushes:
    """Keys of the pushes finished in the last ``seconds`` (at most ``capacity``, oldest forgotten
    first), each with the backup host that got its files, or None for the requested host."""

    def __init__(self, seconds: float, capacity: int) -> None:
        self.seconds = seconds
        self.capacity = capacity
        self._keys = RecentKeys(seconds, capacity)
        self._hosts: OrderedDict[int, tuple[float, str]] = OrderedDict()
        """Key → (monotonic time, backup host) of the pushes that failed over: rare, so a dict."""
        self._lock = threading.Lock()
        self._journal: Journal | None = None
        self._writing = threading.Lock()
        """Held while writing to the journal, so that once :meth:`detach` returns none is written."""
        self._since_prune = 0

    def attach(self, journal: Journal) -> int:
        """Write every finished push to ``journal`` from now on, first restoring those it holds that
        are younger than ``seconds`` (the older ones are deleted). Returns how many were restored."""
        now, clock = time.time(), time.monotonic()
        expired = []
        restored = 0
        with self._lock:
            for record in journal.records(STATE):
                age = now - record.updated
                try:
                    key = int(record.key, 16)
                except ValueError:
                    expired.append(record.key)
                    continue
                if not 0 <= age <= self.seconds:
                    expired.append(record.key)
                    continue
                self._keys.add(key, clock - age)
                host = record.data.get("host")
                if isinstance(host, str):
                    self._remember_host(key, host, clock - age)
                restored += 1
            self._journal = journal
        journal.attempt(journal.delete_many, expired)
        return restored

    def detach(self) -> None:
        """Write no more to the journal (one being written is finished first): it may be closed."""
        with self._writing, self._lock:
            self._journal = None

    def add(self, key: int, host: str | None = None) -> None:
        """Remember the push ``key``, finished now; ``host``: the backup host that got its files."""
        with self._lock:
            now = time.monotonic()
            self._keys.add(key, now)
            if host is not None:
                self._remember_host(key, host, now)
            self._since_prune += 1
            prune = self._since_prune >= _PRUNE_EVERY
            if prune:
                self._since_prune = 0
        with self._writing:  # a push ending after the shutdown detached the journal writes nothing
            journal = self._journal
            if journal is not None:
                journal.attempt(journal.put, f"{key:032x}", STATE, {"host": host} if host is not None else None)
                if prune:
                    journal.attempt(journal.prune, self.capacity, STATE)

    def get(self, key: int) -> tuple[bool, str | None]:
        """Whether ``key`` finished lately, and the backup host that got its files (None: the requested one)."""
        with self._lock:
            if not self._keys.holds(key):
                return False, None
            entry = self._hosts.get(key)
            return True, entry[1] if entry is not None else None

    def __contains__(self, key: object) -> bool:
        return isinstance(key, int) and self.get(key)[0]

    def _remember_host(self, key: int, host: str, when: float) -> None:
        self._hosts[key] = (when, host)
        self._hosts.move_to_end(key)
        while self._hosts:
            oldest, (added, _) = next(iter(self._hosts.items()))
            if len(self._hosts) <= self.capacity and time.monotonic() - added <= self.seconds:
                break
            del self._hosts[oldest]
