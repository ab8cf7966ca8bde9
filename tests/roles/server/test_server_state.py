"""The announced-files journal behind ``--state-directory`` and held announcements at start."""

from __future__ import annotations

import logging
import os
import sys
import threading
import time

from support.bus import free_port
from support.files import put_file
from support.server import TOPIC, chain
from trollmoves_roles.observe.ratelimit import RateLimitedLog
from trollmoves_roles.server.announced import AnnouncedFiles
from trollmoves_roles.state.finished import FinishedPushes
from trollmoves_roles.state.journal import Journal


def test_attach_restores_present_files_and_forgets_missing(tmp_path):
    present, gone = tmp_path / "a.dat", tmp_path / "b.dat"
    present.write_bytes(b"a")
    journal = Journal(tmp_path / "j.sqlite")
    first = AnnouncedFiles()
    first.attach(journal)
    first.add(str(present), "a.dat", TOPIC, "chain")
    first.add(str(gone), "b.dat", TOPIC, "chain")
    assert [r.key for r in journal.records()] == [str(present), str(gone)]

    second = AnnouncedFiles()
    assert second.attach(journal) == 1  # b.dat never existed on disk
    entry = second.get(str(present))
    assert entry is not None and entry.uid == "a.dat" and entry.ino == present.stat().st_ino
    assert second.get(str(gone)) is None
    assert [r.key for r in journal.records()] == [str(present)]
    second.discard(str(present))
    assert journal.records() == []
    journal.close()


def test_capacity_evictions_leave_the_journal_too(tmp_path):
    journal = Journal(tmp_path / "j.sqlite")
    announced = AnnouncedFiles(capacity=3)
    announced.attach(journal)
    for i in range(5):
        (tmp_path / f"f{i}").write_bytes(b"x")
        announced.add(str(tmp_path / f"f{i}"), f"f{i}", TOPIC, "chain")
    assert [r.key.rsplit("/", 1)[1] for r in journal.records()] == ["f2", "f3", "f4"]
    journal.close()


def test_a_file_replaced_after_its_announcement_is_not_the_same_file(tmp_path):
    path = tmp_path / "a.dat"
    path.write_bytes(b"first")
    entry = AnnouncedFiles().add(str(path), "a.dat", TOPIC, "chain")
    assert entry.same_file(path.stat())
    replacement = tmp_path / ".a.tmp"
    replacement.write_bytes(b"second")
    replacement.rename(path)
    assert not entry.same_file(path.stat())


def test_announcements_are_held_until_the_delay_passes(serve, dirs):
    origin, _ = dirs
    running = serve(chain(origin, free_port()), backlog=True, announce_delay=1.5)
    started = time.monotonic()
    put_file(origin / "NOAA-19_202401020304.dat")
    time.sleep(0.5)
    assert running.recorder.of_type("file") == []  # held
    found = running.announcements(1, "file", timeout=10)
    assert found and time.monotonic() - started >= 1.4
    assert found[0].data["uid"] == "NOAA-19_202401020304.dat"
    put_file(origin / "NOAA-20_202401020305.dat")  # after the delay: sent at once
    assert len(running.announcements(2, "file", timeout=10)) == 2


def test_rate_limited_log_counts_what_it_suppresses(caplog):
    limited = RateLimitedLog(logging.getLogger("test.ratelimit"), period=0.3, burst=2)
    with caplog.at_level(logging.WARNING, logger="test.ratelimit"):
        logged = [limited.warning("bad", "bad input %d", i) for i in range(50)]
        assert logged.count(True) == 2 and limited.suppressed_total == 48
        assert limited.warning("other", "another kind")  # each kind has its own budget
        time.sleep(0.35)
        assert limited.warning("bad", "bad input again")
    assert len(caplog.records) == 4
    assert "48 similar line(s) suppressed" in caplog.records[-1].getMessage()


def test_chain_check_rescan_announces_files_the_watcher_missed(serve, dirs):
    origin, _ = dirs
    running = serve(chain(origin, free_port()), loop=False)
    announcer = running.server.chains["chain"].source
    put_file(origin / "NOAA-19_202401020304.dat")
    assert running.announcements(1, "file")
    announcer._watcher.stop()  # the watcher keeps its memory but hears nothing: as after an event overflow
    put_file(origin / "NOAA-20_202401020305.dat")
    running.server.check_chains()
    found = running.announcements(2, "file")
    assert [m.data["uid"] for m in found] == ["NOAA-19_202401020304.dat", "NOAA-20_202401020305.dat"]
    running.server.check_chains()  # nothing new: nothing announced twice
    assert len(running.recorder.wait_for(lambda m: m.type == "file", count=3, timeout=1.0)) == 2


def test_announcing_keeps_no_interned_file_name(serve, dirs):
    # Python 3.12 never frees interned strings and pathlib interns every name it parses: one Path
    # per announced file would keep each file name for the life of the server.
    origin, _ = dirs
    running = serve(chain(origin, free_port()))
    name = "".join(["NOAA-", str(os.getpid() % 90 + 10), "_", time.strftime("%Y%m%d%H%M"), ".dat"])
    hidden = os.path.join(str(origin), ".incoming")
    with open(hidden, "wb") as handle:
        handle.write(b"payload")
    os.rename(hidden, os.path.join(str(origin), name))  # no Path: the test must not intern it itself
    message = running.announcements(1, "file")[0]
    assert message.data["uid"] == name
    assert running.server.announced.listed("chain", 1)[0]["data"]["uid"] == name
    fresh = "".join([name[:5], name[5:]])
    assert sys.intern(fresh) is fresh, "announcing interned the file name"


def test_a_push_finishing_while_the_journal_closes_writes_before_it_or_not_at_all(tmp_path, caplog):
    journal = Journal(tmp_path / "j.sqlite", table="pushed")
    finished = FinishedPushes(60.0, 16)
    finished.attach(journal)
    writing, go_on = threading.Event(), threading.Event()
    put = journal.put

    def slow_put(*args):
        writing.set()
        assert go_on.wait(10)
        put(*args)

    journal.put = slow_put
    late = threading.Thread(target=finished.add, args=(0xABC,))
    late.start()
    assert writing.wait(10)

    def shut_down():
        finished.detach()
        journal.close()

    closing = threading.Thread(target=shut_down)
    closing.start()
    closing.join(0.5)  # unfixed, the journal closes now, under the write
    go_on.set()
    late.join(10)
    closing.join(10)
    assert not [r for r in caplog.records if "Could not write the journal" in r.getMessage()]
    again = Journal(tmp_path / "j.sqlite", table="pushed")
    assert [r.key for r in again.records()] == [f"{0xABC:032x}"]
    again.close()
    finished.add(0xDEF)  # after the close: nothing written, nothing logged
    assert not [r for r in caplog.records if "Could not write the journal" in r.getMessage()]
