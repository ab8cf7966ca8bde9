"""The history of each file on this host: what the roles did with it, for ``trollmoves trace``.

A role with a journal (``state_directory``) keeps an ``events`` table in its journal file: one
row per thing that happened to a file (announced, requested, pushed, delivered, retried,
failed, published, deleted...). The roles call :func:`record`; without an open history it
does nothing. Rows are queued in memory and written by a background thread in one
transaction every :data:`FLUSH_SECONDS` (or sooner when :data:`FLUSH_ROWS` are waiting), so the
file and request paths never wait on sqlite; a ``kill -9`` loses at most the last
:data:`FLUSH_SECONDS` of history, never the journal's own records.

Retention: rows older than ``days`` (default :data:`DEFAULT_DAYS`) and beyond the newest
``max_events`` (default :data:`DEFAULT_MAX_EVENTS`) are deleted every :data:`PRUNE_SECONDS`.

Each open history also writes an index file in :func:`index_directory` naming its journal,
role and config, so that ``trollmoves trace`` finds the journals of this host without being
told where the state directories are.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import logging
import os
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from trollmoves_core.uri import redact
from trollmoves_roles.observe.metrics import runtime_directory
from trollmoves_roles.observe.ratelimit import RateLimitedLog

LOG = logging.getLogger(__name__)
_LIMITED = RateLimitedLog(LOG, period=60.0, burst=3)

DEFAULT_DAYS = 7.0
DEFAULT_MAX_EVENTS = 1_000_000
"""About 250 MB of journal at most (~250 bytes an event, indexes included; ``docs/tools.md``)."""
FLUSH_SECONDS = 0.5
FLUSH_ROWS = 2000
PRUNE_SECONDS = 60.0
TABLE = "events"

_COLUMNS = ("time", "role", "chain", "event", "uid", "name", "path", "peer", "destination", "seconds", "size",
            "detail")
_SCHEMA = (
    f"CREATE TABLE IF NOT EXISTS {TABLE} (id INTEGER PRIMARY KEY AUTOINCREMENT, time REAL NOT NULL, "
    "role TEXT NOT NULL, chain TEXT NOT NULL, event TEXT NOT NULL, uid TEXT NOT NULL, name TEXT NOT NULL, "
    "path TEXT NOT NULL, peer TEXT NOT NULL, destination TEXT NOT NULL, seconds REAL, size INTEGER, "
    "detail TEXT NOT NULL)",
    f"CREATE INDEX IF NOT EXISTS {TABLE}_uid ON {TABLE} (uid)",
    f"CREATE INDEX IF NOT EXISTS {TABLE}_name ON {TABLE} (name)",
)
# No index on time (it would cost a third of each insert): rows are written in time order, so the
# old ones are the lowest ids, found by a scan that stops at the first row young enough.


@dataclass(frozen=True, slots=True)
class Event:
    """One row of a file's history: ``uid`` (the file name unless the announcement said otherwise),
    ``name`` (the local file name when it is not the uid, else empty)..."""

    time: float
    role: str
    chain: str
    event: str
    uid: str
    name: str
    path: str
    peer: str
    destination: str
    seconds: float | None
    size: int | None
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class History:
    """The ``events`` table of one journal file, written in batches by a daemon thread.

    :param days: rows older than this are pruned (<= 0: only ``max_events`` bounds the table).
    :param config: the config file of the role, for the index :func:`trollmoves trace` reads.
    """

    def __init__(self, path: str | os.PathLike[str], role: str, *, config: str | os.PathLike[str] | None = None,
                 days: float = DEFAULT_DAYS, max_events: int = DEFAULT_MAX_EVENTS,
                 flush_seconds: float = FLUSH_SECONDS) -> None:
        self.path = Path(path)
        self.role = role
        self.days = days
        self.max_events = max_events
        self.flush_seconds = flush_seconds
        self._queue: deque[tuple[Any, ...]] = deque()
        self._wake = threading.Event()
        self._stopping = False
        self._db = connect(self.path, create=True)
        self._db_lock = threading.Lock()
        self._last_prune = 0.0
        self._index = write_index(self.path, role, config) if config is not None else None
        self._thread = threading.Thread(target=self._run, name=f"history-{role}", daemon=True)
        self._thread.start()

    def record(self, event: str, *, chain: str = "", uid: str = "", path: str = "", peer: str = "",
               destination: str = "", seconds: float | None = None, size: int | None = None,
               detail: str = "") -> None:
        """Queue one event (any thread, never blocks on the disk); passwords in ``destination`` and
        ``detail`` (an error quoting a URL) are masked."""
        if "@" in destination:
            destination = redact(destination)
        if "@" in detail:
            detail = redact(detail)
        name = os.path.basename(path)
        uid = uid or name
        self._queue.append((time.time(), self.role, chain, event, uid, "" if name == uid else name, path, peer,
                            destination, seconds, size, detail[:1000]))
        if len(self._queue) >= FLUSH_ROWS:
            self._wake.set()

    def flush(self) -> int:
        """Write the queued events now; how many (a failed write is logged, rate-limited, and dropped)."""
        rows = []
        with contextlib.suppress(IndexError):
            while True:
                rows.append(self._queue.popleft())
        if not rows:
            return 0
        try:
            with self._db_lock, self._db:
                self._db.executemany(f"INSERT INTO {TABLE} ({', '.join(_COLUMNS)}) VALUES "
                                     f"({', '.join('?' * len(_COLUMNS))})", rows)
        except sqlite3.Error as err:
            _LIMITED.error(f"history {self.path}", "Could not write %d history event(s) to %s: %s", len(rows),
                           self.path, err)
            return 0
        return len(rows)

    def prune(self, now: float | None = None) -> int:
        """Delete rows beyond the retention; how many went."""
        now = time.time() if now is None else now
        self._last_prune = now
        try:
            with self._db_lock, self._db:
                gone = 0
                if self.days > 0:
                    young = self._db.execute(f"SELECT id FROM {TABLE} WHERE time >= ? ORDER BY id LIMIT 1",
                                             (now - self.days * 86400.0,)).fetchone()
                    gone += self._db.execute(f"DELETE FROM {TABLE} WHERE id < ?",
                                             (young[0] if young else 1 << 62,)).rowcount
                newest = self._db.execute(f"SELECT max(id) FROM {TABLE}").fetchone()[0]
                if newest is not None:
                    gone += self._db.execute(f"DELETE FROM {TABLE} WHERE id <= ?",
                                             (newest - max(0, self.max_events),)).rowcount
        except sqlite3.Error as err:
            _LIMITED.error(f"history {self.path}", "Could not prune the history in %s: %s", self.path, err)
            return 0
        if gone:
            LOG.debug("History %s: %d old event(s) pruned", self.path, gone)
        return gone

    def _run(self) -> None:
        while not self._stopping:
            self._wake.wait(self.flush_seconds)
            self._wake.clear()
            self.flush()
            if time.time() - self._last_prune >= PRUNE_SECONDS:
                self.prune()

    def close(self) -> None:
        """Write what is queued and stop (the index file stays: the history outlives the process)."""
        self._stopping = True
        self._wake.set()
        self._thread.join(10)
        self.flush()
        with self._db_lock:
            self._db.close()


def connect(path: Path, *, create: bool = False) -> sqlite3.Connection:
    """A connection to the events table of ``path`` (created with ``create``, else read-only)."""
    if create:
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        db = sqlite3.connect(path, check_same_thread=False, timeout=10.0)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        for statement in _SCHEMA:
            db.execute(statement)
        return db
    return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=10.0)


def query(path: str | os.PathLike[str], wanted: str, since: float | None = None) -> list[Event]:
    """Events of ``path``'s journal about ``wanted`` (a uid, file name or path), oldest first.

    A path matches its file name: a file is found under the name it had on every host it
    went through. Raises sqlite3.Error when the journal cannot be read; a journal without
    history gives no events.
    """
    db = connect(Path(path))
    try:
        if db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (TABLE,)).fetchone() is None:
            return []
        name = os.path.basename(wanted.rstrip("/")) or wanted
        sql = f"SELECT {', '.join(_COLUMNS)} FROM {TABLE} WHERE (uid IN (?, ?) OR name = ?)"
        params: list[Any] = [wanted, name, name]
        if since is not None:
            sql += " AND time >= ?"
            params.append(since)
        rows = db.execute(sql + " ORDER BY time, id", params).fetchall()
    finally:
        db.close()
    return [Event(*row) for row in rows]


# -- the process's history: what record() writes to ---------------------------------------

_current: History | None = None
_settings: dict[str, float] = {"days": DEFAULT_DAYS, "max_events": DEFAULT_MAX_EVENTS}


def configure(*, days: float = DEFAULT_DAYS, max_events: int = DEFAULT_MAX_EVENTS) -> None:
    """Retention of the history this process opens next (the roles' ``--history-*`` options)."""
    _settings.update(days=days, max_events=max_events)


def open_history(path: str | os.PathLike[str], role: str, config: str | os.PathLike[str]) -> History | None:
    """Open the process's history in the journal file ``path``; later :func:`record` calls go there.

    One per process: while one is open, asking again gives None (the caller keeps no history of its
    own). None too (with a warning) when the file cannot be written, and when the history is off
    (``--history-max-events 0``). Whoever got the history closes it with :func:`close_history`.
    """
    global _current
    if _current is not None:
        LOG.debug("File history already kept in %s; not in %s", _current.path, path)
        return None
    if _settings["max_events"] <= 0:
        return None
    try:
        _current = History(path, role, config=config, days=_settings["days"], max_events=int(_settings["max_events"]))
    except (OSError, sqlite3.Error) as err:
        LOG.warning("No file history in %s: %s", path, err)
        return None
    LOG.info("File history in %s (kept %g day(s), at most %d events)", path, _current.days, _current.max_events)
    return _current


def close_history(history: History | None) -> None:
    """Close ``history`` (from :func:`open_history`; None: nothing to do); :func:`record` stops writing to it."""
    global _current
    if history is None:
        return
    if _current is history:
        _current = None
    history.close()


def current() -> History | None:
    """The history :func:`record` writes to, if any."""
    return _current


def record(event: str, **fields: Any) -> None:
    """Add ``event`` to the history of the file named by ``uid``/``path`` (see :meth:`History.record`);
    nothing without an open history."""
    history = _current
    if history is not None:
        history.record(event, **fields)


# -- the index of journals with history on this host ----------------------------------------

def index_directory() -> Path:
    """Where histories are listed: ``<runtime directory>/history``."""
    return runtime_directory() / "history"


def write_index(journal: Path, role: str, config: str | os.PathLike[str]) -> Path | None:
    """List ``journal`` (of ``role`` running ``config``) for ``trollmoves trace``; None if impossible."""
    absolute = os.path.abspath(journal)
    entry = index_directory() / f"{hashlib.sha256(absolute.encode()).hexdigest()[:16]}.json"
    try:
        entry.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        temp = entry.with_name(f".{entry.name}.{os.getpid()}")
        temp.write_text(json.dumps({"journal": absolute, "role": role, "config": os.path.abspath(config)}))
        os.replace(temp, entry)
    except OSError as err:
        LOG.warning("trollmoves trace will need --state-directory to find %s: %s", journal, err)
        return None
    return entry


def indexed() -> Iterator[dict[str, str]]:
    """The journals listed in :func:`index_directory` that still exist."""
    with contextlib.suppress(OSError):
        for entry in sorted(index_directory().glob("*.json")):
            try:
                data = json.loads(entry.read_text())
            except (OSError, ValueError):
                continue
            if isinstance(data, dict) and isinstance(data.get("journal"), str) and os.path.exists(data["journal"]):
                yield {k: str(v) for k, v in data.items()}


def add_history_arguments(parser: argparse.ArgumentParser) -> None:
    """``--history-days`` and ``--history-max-events``, as the roles with a journal spell them."""
    parser.add_argument("--history-days", type=float, default=DEFAULT_DAYS, metavar="DAYS",
                        help=f"with a state directory, keep each file's history (trollmoves trace) this long "
                             f"(default: {DEFAULT_DAYS:g}; 0: no age limit)")
    parser.add_argument("--history-max-events", type=int, default=DEFAULT_MAX_EVENTS, metavar="N",
                        help=f"and at most N events, oldest dropped first (default: {DEFAULT_MAX_EVENTS}; "
                             "0: no history)")


def configure_from(args: argparse.Namespace) -> None:
    """:func:`configure` from :func:`add_history_arguments`' options; ConfigError on a negative value."""
    from trollmoves_core.exceptions import ConfigError

    if args.history_days < 0:
        raise ConfigError(f"--history-days must not be negative, got {args.history_days:g}", file="command line")
    if args.history_max_events < 0:
        raise ConfigError(f"--history-max-events must not be negative, got {args.history_max_events}",
                          file="command line")
    configure(days=args.history_days, max_events=args.history_max_events)


def journals_in(directories: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """The journal files (``*.sqlite``) of state directories."""
    found: list[Path] = []
    for directory in directories:
        found += sorted(Path(directory).glob("*.sqlite"))
    return found
