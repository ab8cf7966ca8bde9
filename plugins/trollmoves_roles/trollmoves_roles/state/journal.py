"""A small durable journal of keyed records in sqlite (WAL mode), for state that must survive
a crash: files a server announced, files a client was told about but has not delivered yet.

Each record is a ``key`` (a path, a uid...), a ``state`` (free text such as ``announced``,
``requested``, ``delivered``), a JSON ``data`` dict and the time it was last written.
Records are kept in write order: :meth:`Journal.put` moves a key to the end,
:meth:`Journal.replace` and :meth:`Journal.set_state` do not.

Durability (``sync``):

* ``"normal"`` (default): sqlite ``synchronous=NORMAL`` in WAL mode. A committed write
  survives the process being killed (``kill -9``, a crash, OOM): the WAL is in the kernel's
  page cache before the call returns. The last commits may roll back on power loss or a kernel
  crash, never leaving the file corrupt.
* ``"full"``: ``synchronous=FULL``: each commit is fsynced to the WAL before the call
  returns; survives power loss too, at the cost of one fsync per write (milliseconds on
  spinning disks, use :meth:`Journal.put_many` to batch).

A journal file that sqlite cannot read is renamed to ``<name>.corrupt-<unix time>`` and a new
one started, with an error logged: losing the history must not stop the process. Likewise a
write made through :meth:`Journal.attempt` that fails (a full disk) is logged, rate-limited,
and the caller carries on with its in-memory state.

Thread-safe: one connection shared under a lock.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trollmoves_roles.observe.ratelimit import RateLimitedLog

LOG = logging.getLogger(__name__)
_LIMITED = RateLimitedLog(LOG, period=60.0, burst=3)

SYNC_MODES = {"normal": "NORMAL", "full": "FULL"}
_SIDECARS = ("", "-wal", "-shm")
_TABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def journal_path(state_directory: str | os.PathLike[str], config_file: str | os.PathLike[str],
                 role: str) -> Path:
    """The journal of ``role`` running ``config_file``: ``<role>-<config name>-<hash of its path>.sqlite``
    in ``state_directory`` (two configs of the same name in different folders never share one).

    A journal under the earlier client-side name (``<role>-<config name>.sqlite``) is renamed to it.
    """
    absolute = os.path.abspath(os.fspath(config_file))
    stem = re.sub(r"[^A-Za-z0-9_.-]", "_", Path(absolute).stem) or "config"
    digest = hashlib.sha256(absolute.encode()).hexdigest()[:8]
    path = Path(state_directory) / f"{role}-{stem}-{digest}.sqlite"
    legacy = Path(state_directory) / f"{role}-{stem}.sqlite"
    if legacy.exists() and not path.exists():
        for suffix in _SIDECARS:
            with contextlib.suppress(FileNotFoundError):
                os.replace(f"{legacy}{suffix}", f"{path}{suffix}")
        LOG.info("Journal %s renamed to %s", legacy, path)
    return path


@dataclass(frozen=True)
class Record:
    """One journal entry."""

    key: str
    state: str
    data: dict[str, Any] = field(default_factory=dict)
    updated: float = 0.0


class Journal:
    """Keyed records in the sqlite file ``path`` (created with its directory, mode 0600).

    :param table: table name, so several kinds of records can share one file.
    :param sync: ``"normal"`` or ``"full"`` (see the module docstring).
    """

    def __init__(self, path: str | os.PathLike[str], *, table: str = "records", sync: str = "normal") -> None:
        if not _TABLE_NAME.match(table):
            raise ValueError(f"invalid journal table name {table!r}")
        if sync not in SYNC_MODES:
            raise ValueError(f"sync must be one of {', '.join(SYNC_MODES)}, got {sync!r}")
        self.path = Path(path)
        self.table = table
        self.sync = sync
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = self._open()
        except sqlite3.DatabaseError as err:
            aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
            LOG.error("Journal %s is unreadable (%s): moved to %s, starting a new one", self.path, err, aside)
            os.replace(self.path, aside)
            for suffix in ("-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    os.remove(f"{self.path}{suffix}")
            self._db = self._open()

    def _open(self) -> sqlite3.Connection:
        if not self.path.exists():
            # created by us, readable by us only: it may name files and peers
            os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=10.0)
        try:
            mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                LOG.warning("Journal %s: WAL mode unavailable (%s), using sqlite's default journal", self.path, mode)
            db.execute(f"PRAGMA synchronous={SYNC_MODES[self.sync]}")
            db.execute(f"CREATE TABLE IF NOT EXISTS {self.table} (seq INTEGER PRIMARY KEY AUTOINCREMENT, "
                       "key TEXT NOT NULL UNIQUE, state TEXT NOT NULL, data TEXT NOT NULL, updated REAL NOT NULL)")
            db.execute(f"CREATE INDEX IF NOT EXISTS {self.table}_state ON {self.table} (state)")
            db.execute(f"SELECT count(*) FROM {self.table}").fetchone()  # reads the file: fails early if corrupt
        except sqlite3.DatabaseError:
            db.close()
            raise
        return db

    # -- writing ----------------------------------------------------------------------

    def put(self, key: str, state: str, data: dict[str, Any] | None = None) -> None:
        """Write ``key`` (replacing any earlier record of it, which moves it to the end)."""
        self.put_many([(key, state, data)])

    def put_many(self, items: Iterable[tuple[str, str, dict[str, Any] | None]]) -> None:
        """Write several records in one transaction (one sync)."""
        now = time.time()
        rows = [(key, state, json.dumps(data or {}, default=str), now) for key, state, data in items]
        if not rows:
            return
        with self._lock, self._transaction():
            self._db.executemany(f"DELETE FROM {self.table} WHERE key = ?", [(r[0],) for r in rows])
            self._db.executemany(f"INSERT INTO {self.table} (key, state, data, updated) VALUES (?, ?, ?, ?)",
                                 rows)

    def replace(self, key: str, state: str, data: dict[str, Any] | None = None) -> None:
        """Write ``key`` in its place in the write order (a new key goes to the end)."""
        row = (state, json.dumps(data or {}, default=str), time.time(), key)
        with self._lock, self._transaction():
            cursor = self._db.execute(f"UPDATE {self.table} SET state = ?, data = ?, updated = ? WHERE key = ?", row)
            if cursor.rowcount == 0:
                self._db.execute(f"INSERT INTO {self.table} (state, data, updated, key) VALUES (?, ?, ?, ?)", row)

    def set_state(self, key: str, state: str) -> bool:
        """Change the state of ``key`` in place; False when there is no such record."""
        with self._lock:
            cursor = self._db.execute(f"UPDATE {self.table} SET state = ?, updated = ? WHERE key = ?",
                                      (state, time.time(), key))
            return cursor.rowcount > 0

    def delete(self, key: str) -> bool:
        """Forget ``key``; False when there was no such record."""
        return self.delete_many([key]) > 0

    def delete_many(self, keys: Iterable[str]) -> int:
        """Forget ``keys`` in one transaction; the number of records removed."""
        keys = [(k,) for k in keys]
        if not keys:
            return 0
        with self._lock, self._transaction():
            before = self._db.total_changes
            self._db.executemany(f"DELETE FROM {self.table} WHERE key = ?", keys)
            return self._db.total_changes - before

    def prune(self, keep: int, state: str | None = None) -> int:
        """Delete the oldest records (of ``state``, or all) beyond the newest ``keep``; how many went."""
        where, params = ("WHERE state = ?", [state]) if state is not None else ("", [])
        with self._lock:
            cursor = self._db.execute(
                f"DELETE FROM {self.table} WHERE seq IN (SELECT seq FROM {self.table} {where} "
                f"ORDER BY seq DESC LIMIT -1 OFFSET ?)", [*params, max(0, keep)])
            return cursor.rowcount

    def attempt(self, operation: Callable[..., object], *args: Any) -> bool:
        """Call ``operation(*args)``, one of this journal's writing methods, failing soft.

        A :class:`sqlite3.Error` (a full disk, an I/O error) is logged (rate-limited per journal file) and False
        returned instead of raising: a role must not stop because its journal cannot be written;
        it keeps running on its in-memory state. True when the write went through.
        """
        try:
            operation(*args)
        except sqlite3.Error as err:
            _LIMITED.error(f"write {self.path}", "Could not write the journal %s: %s", self.path, err)
            return False
        return True

    # -- reading ----------------------------------------------------------------------

    def get(self, key: str) -> Record | None:
        with self._lock:
            row = self._db.execute(f"SELECT key, state, data, updated FROM {self.table} WHERE key = ?",
                                   (key,)).fetchone()
        return None if row is None else _record(row)

    def records(self, state: str | None = None) -> list[Record]:
        """Every record (of ``state``), oldest write first."""
        where, params = ("WHERE state = ?", (state,)) if state is not None else ("", ())
        with self._lock:
            rows = self._db.execute(f"SELECT key, state, data, updated FROM {self.table} {where} ORDER BY seq",
                                    params).fetchall()
        return [_record(row) for row in rows]

    def keys(self, state: str | None = None, *, prefix: str = "") -> list[str]:
        """The keys of every record (of ``state``, starting with ``prefix``), oldest write first,
        without reading their data."""
        conditions, params = [], []
        if state is not None:
            conditions.append("state = ?")
            params.append(state)
        if prefix:  # a range of the key's index (LIKE would need escaping and could not use it)
            conditions.append("key >= ? AND key < ?")
            params += [prefix, prefix[:-1] + chr(ord(prefix[-1]) + 1)]
        where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
        with self._lock:
            return [row[0] for row in self._db.execute(f"SELECT key FROM {self.table} {where} ORDER BY seq", params)]

    def count(self, state: str | None = None) -> int:
        where, params = ("WHERE state = ?", (state,)) if state is not None else ("", ())
        with self._lock:
            return int(self._db.execute(f"SELECT count(*) FROM {self.table} {where}", params).fetchone()[0])

    def __iter__(self) -> Iterator[Record]:
        return iter(self.records())

    def __len__(self) -> int:
        return self.count()

    def close(self) -> None:
        with self._lock:
            try:
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error as err:  # closing anyway; the WAL is replayed at the next open
                LOG.debug("Journal %s: checkpoint at close failed: %s", self.path, err)
            self._db.close()

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: object, *_: object) -> None:
        self._db.execute("ROLLBACK" if kind is not None else "COMMIT")


def _record(row: tuple[str, str, str, float]) -> Record:
    key, state, data, updated = row
    try:
        loaded = json.loads(data)
    except ValueError:
        loaded = {}
    return Record(key, state, loaded if isinstance(loaded, dict) else {}, updated)
