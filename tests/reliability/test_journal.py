"""The sqlite journal: keyed records in write order, durable across kill -9, never blocking on a bad file."""

from __future__ import annotations

import os
import signal
import sqlite3
import stat
import subprocess
import sys
import threading

import pytest
from posttroll.message import Message
from trollmoves_roles.client.state import ChainState
from trollmoves_roles.state import journal as journal_module
from trollmoves_roles.state.journal import Journal
from trollmoves_roles.state.pending import PendingMessages


def test_put_get_order_state_and_delete(tmp_path):
    journal = Journal(tmp_path / "state" / "j.sqlite")
    journal.put("a", "announced", {"uid": "a.dat", "n": 1})
    journal.put("b", "announced", {"uid": "b.dat"})
    journal.put("c", "delivered")
    assert [r.key for r in journal.records()] == ["a", "b", "c"]
    journal.put("a", "announced", {"uid": "a.dat", "n": 2})  # a rewrite moves the key to the end
    assert [r.key for r in journal.records()] == ["b", "c", "a"]
    assert journal.get("a").data == {"uid": "a.dat", "n": 2}
    assert journal.set_state("b", "delivered") and not journal.set_state("zzz", "delivered")
    assert [r.key for r in journal.records()] == ["b", "c", "a"]  # a state change keeps the order
    assert [r.key for r in journal.records("delivered")] == ["b", "c"]
    assert journal.count("announced") == 1 and len(journal) == 3
    assert journal.delete("c") and not journal.delete("c")
    assert journal.get("c") is None
    assert journal.delete_many(["a", "b", "nope"]) == 2
    assert len(journal) == 0
    journal.close()


def test_prune_keeps_the_newest(tmp_path):
    journal = Journal(tmp_path / "j.sqlite")
    journal.put_many((f"k{i}", "announced", None) for i in range(10))
    journal.put("other", "delivered")
    assert journal.prune(3, "announced") == 7
    assert [r.key for r in journal.records()] == ["k7", "k8", "k9", "other"]
    journal.close()


def test_wal_mode_file_mode_and_reopen(tmp_path):
    path = tmp_path / "j.sqlite"
    journal = Journal(path, table="announced", sync="full")
    journal.put("/data/x", "announced", {"uid": "x"})
    journal.close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    again = Journal(path, table="announced")
    assert again.get("/data/x").data == {"uid": "x"}
    again.close()


def test_bad_arguments_are_refused(tmp_path):
    with pytest.raises(ValueError, match="table name"):
        Journal(tmp_path / "j.sqlite", table="x; DROP TABLE y")
    with pytest.raises(ValueError, match="sync"):
        Journal(tmp_path / "j.sqlite", sync="sometimes")


def test_unreadable_journal_is_moved_aside(tmp_path, caplog):
    path = tmp_path / "j.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    journal = Journal(path)
    journal.put("k", "announced")
    assert journal.get("k") is not None
    journal.close()
    aside = [p.name for p in tmp_path.iterdir() if ".corrupt-" in p.name]
    assert len(aside) == 1, list(tmp_path.iterdir())
    assert "unreadable" in caplog.text


def test_concurrent_writers(tmp_path):
    journal = Journal(tmp_path / "j.sqlite")

    def write(prefix: str) -> None:
        for i in range(200):
            journal.put(f"{prefix}{i}", "announced", {"i": i})

    threads = [threading.Thread(target=write, args=(p,)) for p in "abcd"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(journal) == 800
    journal.close()


def break_table(journal: Journal) -> None:
    """Make every later write of ``journal`` fail with a real sqlite error (its table is gone)."""
    with sqlite3.connect(journal.path) as other:
        other.execute(f"DROP TABLE {journal.table}")


def test_attempt_writes_or_logs_rate_limited_and_carries_on(tmp_path, caplog):
    journal = Journal(tmp_path / "j.sqlite", table="files")
    assert journal.attempt(journal.put, "k", "announced", {"uid": "k"}) is True
    assert journal.get("k").data == {"uid": "k"}
    break_table(journal)
    with pytest.raises(sqlite3.Error):
        journal.put("x", "announced")  # the plain methods raise: attempt() is what fails soft
    caplog.clear()
    assert [journal.attempt(journal.put, f"k{i}", "announced") for i in range(5)] == [False] * 5
    assert journal.attempt(journal.delete_many, ["k"]) is False
    errors = [r for r in caplog.records if r.levelname == "ERROR" and r.name == journal_module.LOG.name]
    assert len(errors) == 3, caplog.text  # burst of 3 a minute: a full disk does not flood the log
    assert all(str(journal.path) in r.getMessage() and "no such table" in r.getMessage() for r in errors)
    journal.close()


def test_client_and_pending_journals_keep_going_when_writes_fail(tmp_path, caplog):
    chain = ChainState.open(tmp_path / "client.sqlite", "chain one")
    pending = PendingMessages(Journal(tmp_path / "dispatch.sqlite", table="messages"))
    message = Message("/test/in", "file", {"uid": "a.nc"})
    chain.announced("a.nc", [message], 1.0)
    assert [p.key for p in chain.pending()] == ["a.nc"]
    break_table(chain.journal)
    break_table(pending.journal)
    caplog.clear()
    chain.announced("b.nc", [message], 2.0)
    chain.delivered("a.nc", ["a.nc"], message)
    chain.published("a.nc")
    chain.forget("b.nc")
    key = pending.add(message, ["one", "two"])
    assert pending.done(key, "one") is False  # the in-memory parts still count
    assert pending.done(key, "two") is True
    assert "Could not write the journal" in caplog.text
    assert str(chain.journal.path) in caplog.text and str(pending.journal.path) in caplog.text
    chain.close()
    pending.close()


WRITER = """
import os, signal, sys
from trollmoves_roles.state.journal import Journal
journal = Journal(sys.argv[1])
for i in range(int(sys.argv[2])):
    journal.put(f"/data/f{i:04d}", "announced", {"i": i})
print("written", flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_every_committed_write_survives_kill_9(tmp_path):
    path = tmp_path / "j.sqlite"
    proc = subprocess.run([sys.executable, "-c", WRITER, str(path), "500"],
                          check=False, capture_output=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert proc.stdout.strip() == b"written"
    assert os.path.exists(f"{path}-wal")  # nothing was checkpointed at a clean close: the WAL carries it
    journal = Journal(path)
    assert [r.key for r in journal.records()] == [f"/data/f{i:04d}" for i in range(500)]
    assert journal.get("/data/f0499").data == {"i": 499}
    journal.close()
