"""The durable part of a client chain's state: what it was told about and has not delivered yet,
and what it delivered, in the shared sqlite :class:`~trollmoves_roles.state.journal.Journal`.

One journal file per config (:func:`~trollmoves_roles.state.journal.journal_path`), one table per
chain. Records:

* ``p:<transfer key>``, state ``pending``: an announced file not delivered yet, with every
  announcement of it (so every server that offered it can be asked again) and when it was
  first seen (the give-up clock survives restarts).
* ``d:<transfer key>``, state ``delivered`` then ``published``: a delivered file's uids (the
  uid cache is rebuilt from them) and, until its result message is published, that message.
* ``s:<request address>``, state ``server``: a server this chain was offered files by, the
  subject to ask it on, ``after``, the server's time of the newest announcement of its
  listing already seen (None until one was): a restarted chain asks it for what came after;
  and ``seen``, when it last answered or announced (servers silent for a week are forgotten
  at start).

The order of writes makes a ``kill -9`` at any point safe: a file is journalled ``delivered``
(with its result) before the pending record goes, and marked ``published`` only after its
result message was handed to the publisher. On restart, pending files are requested again
unless they are delivered; delivered-but-unpublished results are published.

Writing fails soft: a full disk is logged (rate-limited) and the chain keeps running on its
in-memory state.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from posttroll.message import Message

from trollmoves_roles.state.journal import Journal

LOG = logging.getLogger(__name__)

PENDING, DELIVERED, PUBLISHED, META, SERVER = "pending", "delivered", "published", "meta", "server"
REMEMBERED = 80_000
"""Delivered uids a chain remembers (in memory and in the journal): twice the announcements a
server lists per chain (``trollmoves_roles.server.announced.LISTED_MAX``), so that reconciling
with a server's whole listing never fetches again a file this chain delivered."""
PRUNE_EVERY = 500
"""Deliveries between two prunes of the delivered records."""


def table_name(chain: str) -> str:
    """A table name for any section name (letters, digits and ``_``; a hash keeps it unique)."""
    clean = re.sub(r"[^A-Za-z0-9_]", "_", chain)[:40]
    digest = hashlib.sha1(chain.encode(), usedforsecurity=False).hexdigest()[:8]
    return f"chain_{clean}_{digest}"


@dataclass
class PendingFile:
    """A pending record read back at start-up."""

    key: str
    sources: list[Message]
    since: float
    """Wall-clock time the file was first announced."""


@dataclass
class Unpublished:
    """A delivered file whose result message may never have left the process."""

    key: str
    subject: str
    atype: str
    data: dict[str, Any] = field(default_factory=dict)


class ChainState:
    """Durable records of one chain; without a journal every method does nothing."""

    def __init__(self, journal: Journal | None = None, *, keep_delivered: int = REMEMBERED) -> None:
        self.journal = journal
        self.keep_delivered = keep_delivered
        self._since_prune = 0
        self._created = time.time()

    @classmethod
    def open(cls, path: str | os.PathLike[str], chain: str, *, keep_delivered: int = REMEMBERED) -> ChainState:
        return cls(Journal(path, table=table_name(chain)), keep_delivered=keep_delivered)

    @property
    def enabled(self) -> bool:
        return self.journal is not None

    def summary(self) -> str:
        """``N pending, N delivered`` for the start-up log."""
        if self.journal is None:
            return "no journal"
        return (f"{self.journal.count(PENDING)} pending, "
                f"{self.journal.count(DELIVERED) + self.journal.count(PUBLISHED)} delivered")

    def horizon(self) -> float:
        """Wall-clock time this chain's state begins: files announced earlier are none of its business
        (reconciliation never fetches them). The first start with this journal, else this run's start."""
        if self.journal is None:
            return self._created
        record = self.journal.get("meta:first-start")
        if record is not None:
            try:
                return float(record.data["time"])
            except (KeyError, TypeError, ValueError):
                pass
        self.journal.attempt(self.journal.put, "meta:first-start", META, {"time": self._created})
        return self._created

    # -- reading at start-up --------------------------------------------------------------

    def delivered_uids(self) -> list[str]:
        """uids of delivered files, oldest first."""
        if self.journal is None:
            return []
        uids: list[str] = []
        for state in (PUBLISHED, DELIVERED):
            for record in self.journal.records(state):
                uids += [str(u) for u in record.data.get("uids", []) if isinstance(u, str)]
        return uids

    def pending(self) -> list[PendingFile]:
        """Files announced and not delivered, oldest first (unreadable records are dropped)."""
        if self.journal is None:
            return []
        found, broken = [], []
        for record in self.journal.records(PENDING):
            try:
                sources = [Message.decode(raw) for raw in record.data["sources"]]
                since = float(record.data.get("since", record.updated))
            except Exception as err:  # written by an older or broken version: nothing to resume
                LOG.warning("Dropping unreadable pending record %s: %s", record.key, err)
                broken.append(record.key)
                continue
            if sources:
                found.append(PendingFile(record.key.removeprefix("p:"), sources, since))
            else:
                broken.append(record.key)
        self.journal.attempt(self.journal.delete_many, broken)
        return found

    def servers(self, forget_before: float | None = None) -> dict[str, tuple[str, float | None]]:
        """Request address -> (subject, ``after``) of every server journalled; unreadable ones, and those
        last seen before ``forget_before`` (wall clock), are dropped from the journal (and logged)."""
        if self.journal is None:
            return {}
        found: dict[str, tuple[str, float | None]] = {}
        stale = []
        for record in self.journal.records(SERVER):
            subject, after = record.data.get("subject"), record.data.get("after")
            seen = record.data.get("seen", record.updated)
            if (not isinstance(subject, str) or not (after is None or isinstance(after, int | float))
                    or (forget_before is not None and isinstance(seen, int | float) and seen < forget_before)):
                stale.append(record.key)
                continue
            found[record.key.removeprefix("s:")] = (subject, None if after is None else float(after))
        if stale:
            LOG.info("Forgetting %d journalled server(s) silent too long, or unreadable: %s", len(stale),
                     ", ".join(k.removeprefix("s:") for k in stale[:10]))
        self.journal.attempt(self.journal.delete_many, stale)
        return found

    def unpublished(self) -> list[Unpublished]:
        if self.journal is None:
            return []
        found = []
        for record in self.journal.records(DELIVERED):
            result = record.data.get("result")
            if isinstance(result, dict):
                found.append(Unpublished(record.key.removeprefix("d:"), str(record.data.get("subject", "/")),
                                         str(record.data.get("type", "file")), result))
        return found

    # -- writing ----------------------------------------------------------------------------

    def announced(self, key: str, sources: Iterable[Message], since: float) -> None:
        """Record (or update) a pending file with its announcements."""
        if self.journal is not None:
            data = {"sources": [m.encode() for m in sources], "since": since}
            self.journal.attempt(self.journal.put, f"p:{key}", PENDING, data)

    def server(self, address: str, subject: str, after: float | None) -> None:
        """Record (or update) a server and how far its listing was read."""
        if self.journal is not None:
            self.journal.attempt(self.journal.put, f"s:{address}", SERVER,
                                 {"subject": subject, "after": after, "seen": time.time()})

    def forget(self, key: str) -> None:
        """The file is settled without a delivery here (given up, or another client has it)."""
        if self.journal is not None:
            self.journal.attempt(self.journal.delete, f"p:{key}")

    def delivered(self, key: str, uids: list[str], result: Message | None = None) -> None:
        """Record a delivery (with its result message, to publish again if we die first)."""
        if self.journal is None:
            return
        data: dict[str, Any] = {"uids": uids}
        state = PUBLISHED
        if result is not None:
            data.update(subject=result.subject, type=result.type, result=result.data)
            state = DELIVERED
        self.journal.attempt(self.journal.put, f"d:{key}", state, data)
        self.journal.attempt(self.journal.delete, f"p:{key}")
        self._since_prune += 1
        if self._since_prune >= PRUNE_EVERY:
            self._since_prune = 0
            self.journal.attempt(self.journal.prune, self.keep_delivered, PUBLISHED)

    def published(self, key: str) -> None:
        """The result message of ``key`` went to the publisher."""
        if self.journal is not None:
            self.journal.attempt(self.journal.set_state, f"d:{key}", PUBLISHED)

    def close(self) -> None:
        if self.journal is not None:
            self.journal.close()
            self.journal = None
