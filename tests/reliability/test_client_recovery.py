"""Client reliability against scripted servers: retries with backoff, give-up published as ``err``,
the journal (resume after a restart, no second fetch), reconciliation through ``info``."""

from __future__ import annotations

import logging
import time

import pytest
from posttroll.message import Message
from support.bus import BusRecorder, free_port, wait_until
from support.client import InProcessClient, client_section, prime, results
from support.ini import write_ini
from support.scripted import HOLD, Announcer, ScriptedServer, serve_everything
from trollmoves_roles.client.state import ChainState
from trollmoves_roles.state.journal import journal_path

pytestmark = pytest.mark.timeout(60)


class Client:
    """Our client (chain ``test``) on an announcer, with recorders for its results and failures."""

    def __init__(self, tmp_path, server: ScriptedServer, announcer: Announcer, **options: object) -> None:
        self.port = free_port()
        self.config = write_ini(tmp_path / "client.ini", {"test": client_section(
            announcer.provider, f"{tmp_path}/out/", self.port, **options)})
        self.recorder = BusRecorder([f"tcp://127.0.0.1:{self.port}"], ["/test/data", "/trollmoves/client/failed"])
        self.process = InProcessClient(self.config)
        prime(lambda name: announcer.announce(f"{name}.dat", server), self.recorder)

    def failures(self) -> list[Message]:
        return [m for m in list(self.recorder.messages) if m.type == "err"]

    def stop(self) -> None:
        self.process.stop()
        self.recorder.close()


@pytest.fixture
def peers():
    server, announcer = ScriptedServer(), Announcer()
    yield server, announcer
    announcer.stop()
    server.stop()


def test_destination_down_is_retried_with_backoff_until_it_works(tmp_path, peers, caplog):
    server, announcer = peers
    client = Client(tmp_path, server, announcer, retry_delay=0.2, max_retry_delay=0.5, give_up_after=30)
    refusals = 5

    def flaky(message: Message):
        if message.type == "push" and message.data["uid"] == "f1.dat" and len(server.pushes("f1.dat")) <= refusals:
            return Message(message.subject, "err", "sftp://127.0.0.1:2222/out/: connection refused")
        return serve_everything(message)

    server.handler = flaky
    try:
        with caplog.at_level(logging.WARNING):
            announcer.announce("f1.dat", server)
            assert wait_until(lambda: results(client.recorder), timeout=20)
        assert len(server.pushes("f1.dat")) == refusals + 1
        assert "retrying in" in caplog.text
        assert client.failures() == []
        assert len(results(client.recorder)) == 1
    finally:
        client.stop()


def test_give_up_after_publishes_an_err_message_and_acks_nobody(tmp_path, peers, caplog):
    server, announcer = peers
    client = Client(tmp_path, server, announcer, retry_delay=0.2, give_up_after=1.5,
                    login="user:secret-pw")

    def refuse(message: Message):
        if message.type == "push" and message.data["uid"] == "f1.dat":
            return Message(message.subject, "err", "cannot write sftp://user:secret-pw@host/x: refused")
        return serve_everything(message)

    server.handler = refuse
    try:
        with caplog.at_level(logging.WARNING):
            started = time.time()
            announcer.announce("f1.dat", server)
            assert wait_until(client.failures, timeout=20)
            announcer.announce("f2.dat", server)  # delivered, after any ack of f1 would have been sent
            assert wait_until(lambda: results(client.recorder, "f2"), timeout=20)
        assert server.acks("f1.dat") == []  # unlike upstream: a server with delete = true would lose it
        (failure,) = client.failures()
        assert failure.subject == "/trollmoves/client/failed/test"
        data = failure.data
        assert data["uid"] == "f1.dat" and data["uids"] == ["f1.dat"] and data["chain"] == "test"
        assert data["sources"] == [server.address] and data["rounds"] >= 3
        assert data["announcement"]["uri"] == "/in/f1.dat"
        assert "refused" in data["error"] and "secret-pw" not in str(data)
        assert len(server.pushes("f1.dat")) == data["rounds"]
        assert time.time() - started >= 1.5
        assert "giving up, without acking the servers" in caplog.text and "secret-pw" not in caplog.text
        assert [m.data["uid"] for m in results(client.recorder)] == ["f2.dat"]
    finally:
        client.stop()


def test_journal_resumes_pending_files_after_a_restart_and_never_refetches(tmp_path, peers):
    server, announcer = peers
    state = tmp_path / "state"
    client = Client(tmp_path, server, announcer, state_directory=state)
    server.handler = lambda m: HOLD if m.type == "push" and m.data["uid"].startswith("f") else serve_everything(m)
    try:
        for name in ("f1.dat", "f2.dat"):
            announcer.announce(name, server)
        assert wait_until(lambda: len(server.pushes()) >= 3)  # the probe and both files were requested
    finally:
        client.stop()  # the held pushes never got their reply
    journal = ChainState.open(journal_path(state, client.config, "client"), "test")
    try:
        assert sorted(p.sources[0].data["uid"] for p in journal.pending()) == ["f1.dat", "f2.dat"]
    finally:
        journal.close()

    server.held.clear()
    server.handler = serve_everything
    client = Client(tmp_path, server, announcer, state_directory=state)
    try:
        assert wait_until(lambda: {m.data["uid"] for m in results(client.recorder)} >= {"f1.dat", "f2.dat"})
        assert len(server.pushes("f1.dat")) == 2 and len(server.pushes("f2.dat")) == 2  # asked again once
        announcer.announce("f1.dat", server)  # delivered before: only acked
        assert wait_until(lambda: len(server.acks("f1.dat")) >= 1)
        time.sleep(0.3)
        assert len(server.pushes("f1.dat")) == 2
    finally:
        client.stop()
    client = Client(tmp_path, server, announcer, state_directory=state)  # a third run: nothing to do
    try:
        time.sleep(0.5)
        assert len(server.pushes("f1.dat")) == 2 and len(server.pushes("f2.dat")) == 2
        assert "f1.dat" in client.process.chain("test").cache
    finally:
        client.stop()


def listing(server: ScriptedServer, entries: list[dict]):
    """A handler listing ``entries`` in info replies (our server's opt-in extension)."""
    def handler(message: Message):
        if message.type == "info":
            data = {"files": [], "max_count": 1000, "uptime": "0:00:01"}
            if message.data.get("announcements"):
                data["announcements"] = entries
            return Message(message.subject, "info", data)
        return serve_everything(message)
    return handler


def test_reconciliation_requests_files_the_bus_lost(tmp_path, peers, caplog):
    server, announcer = peers
    now = time.time()
    lost = [{"subject": "/test/data", "type": "file", "time": now + 1,
             "data": {"uri": f"/in/lost{i}.dat", "uid": f"lost{i}.dat", "request_address": server.address}}
            for i in range(3)]
    old = {"subject": "/test/data", "type": "file", "time": now - 3600,
           "data": {"uri": "/in/old.dat", "uid": "old.dat", "request_address": server.address}}
    other_topic = {"subject": "/other/topic", "type": "file", "time": now + 1,
                   "data": {"uri": "/in/x.dat", "uid": "x.dat", "request_address": server.address}}
    server.handler = listing(server, [*lost, old, other_topic, {"junk": 1}, "junk"])
    with caplog.at_level(logging.WARNING):
        client = Client(tmp_path, server, announcer, reconcile_interval=0.5)
        try:
            assert wait_until(lambda: {m.data["uid"] for m in results(client.recorder, "lost")} ==
                              {"lost0.dat", "lost1.dat", "lost2.dat"}, timeout=20)
            time.sleep(1.2)  # more rounds: nothing fetched twice
            assert client.process.chain("test").reconciled == 3
        finally:
            client.stop()
    assert [len(server.pushes(f"lost{i}.dat")) for i in range(3)] == [1, 1, 1]
    assert server.pushes("old.dat") == [] and server.pushes("x.dat") == []
    assert "never reached us on the bus" in caplog.text


def test_servers_without_the_listing_are_asked_once(tmp_path, peers, caplog):
    server, announcer = peers

    def upstream_like(message: Message):
        if message.type == "info":
            return Message(message.subject, "info", {"files": [], "max_count": 1000, "uptime": "0:00:01"})
        return serve_everything(message)

    server.handler = upstream_like
    with caplog.at_level(logging.INFO):
        client = Client(tmp_path, server, announcer, reconcile_interval=0.3)
        try:
            assert wait_until(lambda: [m for m in server.requests if m.type == "info"], timeout=10)
            time.sleep(1.0)
        finally:
            client.stop()
    assert len([m for m in server.requests if m.type == "info"]) == 1
    assert "does not list its announcements" in caplog.text


def test_reconciliation_pages_through_a_long_listing_and_journals_how_far(tmp_path, peers):
    """A listing longer than one reply is read page by page (``after`` the last entry's time, while the
    server says ``more``), every file requested once, and the journal keeps where the reading stopped."""
    server, announcer = peers
    start = time.time()
    entries = [{"subject": "/test/data", "type": "file", "time": start + i / 1000,
                "data": {"uri": f"/in/g{i:04d}.dat", "uid": f"g{i:04d}.dat", "request_address": server.address}}
               for i in range(1200)]

    def paged(message: Message):
        if message.type == "info" and message.data.get("announcements"):
            after, count = message.data["after"], message.data["max_count"]
            newer = [e for e in entries if e["time"] > after]
            return Message(message.subject, "info", {"files": [], "max_count": count, "uptime": "0:00:01",
                                                     "announcements": newer[:count], "more": len(newer) > count,
                                                     "complete_after": start - 1})
        return serve_everything(message)

    server.handler = paged
    state = tmp_path / "state"
    client = Client(tmp_path, server, announcer, reconcile_interval=0.5, state_directory=state,
                    max_requests_in_flight=16)
    try:
        assert wait_until(lambda: len(results(client.recorder, "g")) >= 1200, timeout=50), \
            len(results(client.recorder, "g"))
        time.sleep(1.2)  # more rounds: nothing listed again, nothing fetched twice
    finally:
        client.stop()
    asked = [m.data["after"] for m in server.requests if m.type == "info"]
    assert entries[999]["time"] in asked  # the second page began after the first one's last entry
    assert all(len(server.pushes(e["data"]["uid"])) == 1 for e in entries)
    journal = ChainState.open(journal_path(state, client.config, "client"), "test")
    try:
        assert journal.servers() == {server.address: ("/test/data", entries[-1]["time"])}
    finally:
        journal.close()


def test_journalled_servers_silent_longer_than_the_window_are_forgotten(tmp_path):
    state = ChainState.open(tmp_path / "client.sqlite", "test")
    try:
        state.server("127.0.0.1:1", "/test/data", None)
        state.server("127.0.0.1:2", "/test/data", 12.5)
        state.journal.put("s:127.0.0.1:3", "server", {"subject": "/test/data", "after": None,
                                                      "seen": time.time() - 7200})  # silent for two hours
        state.journal.put("s:127.0.0.1:4", "server", {"subject": 5, "after": "x"})  # unreadable
        assert state.servers(time.time() - 3600) == {"127.0.0.1:1": ("/test/data", None),
                                                     "127.0.0.1:2": ("/test/data", 12.5)}
        assert sorted(r.key for r in state.journal.records("server")) == ["s:127.0.0.1:1", "s:127.0.0.1:2"]
    finally:
        state.close()
