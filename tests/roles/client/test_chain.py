"""Chain behaviour against scripted servers: fallbacks, retries, hot spare, dedup, bad input, watchdog."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from posttroll.message import Message
from support.bus import BusRecorder, free_port, wait_until
from support.client import InProcessClient, client_section, prime, results
from support.ini import write_ini
from support.scripted import HOLD, NO_REPLY, Announcer, ScriptedServer, serve_everything

pytestmark = pytest.mark.timeout(60)


class Setup:
    """An announcer, scripted servers and our client (one chain ``test``) with a bus recorder."""

    def __init__(self, tmp_path: Path, servers: int = 1, handlers=(), extra_providers: str = "",
                 second_chain: bool = False, **options: object) -> None:
        self.servers = [ScriptedServer() for _ in range(servers)]
        self.announcer = Announcer()
        self.out = tmp_path / "out"
        self.port = free_port()
        providers = f"{self.announcer.provider} {extra_providers}".strip()
        sections = {"test": client_section(providers, f"{self.out}/", self.port, **options)}
        if second_chain:
            sections["other"] = client_section(providers, f"{tmp_path}/other/", self.port, **options)
        self.config = write_ini(tmp_path / "client.ini", sections)
        self.client = InProcessClient(self.config)
        self.recorder = BusRecorder([f"tcp://127.0.0.1:{self.port}"], ["/test/data"])
        prime(lambda name: self.announcer.announce(f"{name}.dat", self.servers[0]), self.recorder)
        for server, handler in zip(self.servers, handlers, strict=False):
            server.handler = handler

    def results(self, prefix: str = "f") -> list[Message]:
        return results(self.recorder, prefix)

    def wait_results(self, count: int, prefix: str = "f") -> list[Message]:
        wait_until(lambda: len(self.results(prefix)) >= count, timeout=20)
        return self.results(prefix)

    def published(self, uid: str) -> list[tuple[str, str | None]]:
        return [(m.type, m.data.get("request_address") or m.data.get("origin")) for m in list(self.recorder.messages)
                if m.data.get("uid") == uid]

    def close(self) -> None:
        self.client.stop()
        self.recorder.close()
        self.announcer.stop()
        for server in self.servers:
            server.stop()


@pytest.fixture
def setup(tmp_path):
    made: list[Setup] = []

    def make(**kwargs: object) -> Setup:
        made.append(Setup(tmp_path, **kwargs))
        return made[-1]

    yield make
    for item in made:
        item.close()


def err(message: Message) -> Message:
    if message.type == "push":
        return Message(message.subject, "err", "/in/x not reachable")
    return serve_everything(message)


def test_failed_source_falls_back_to_the_next_announcer_which_then_is_the_origin(setup):
    s = setup(servers=2, handlers=[err], processing_delay=0.3)
    a, b = s.servers
    s.announcer.announce("f1.dat", a)
    s.announcer.announce("f1.dat", b)
    (result,) = s.wait_results(1)
    assert result.data["origin"] == b.address
    assert s.published("f1.dat") == [("push", a.address), ("push", b.address), ("ack", b.address),
                                     ("file", b.address)]
    assert wait_until(lambda: a.acks("f1.dat"))  # the failed server still gets its ack
    assert len(a.pushes("f1.dat")) == 1 and len(b.pushes("f1.dat")) == 1 and not b.acks("f1.dat")


def test_no_working_source_acks_no_announcer(setup, caplog):
    """Upstream acks every server when it gives up, so a server with delete = true removes a file
    nobody received; we do not."""
    s = setup(servers=2, handlers=[err, err], processing_delay=0.3, give_up_after=0)  # upstream: one round
    a, b = s.servers
    with caplog.at_level(logging.WARNING):
        s.announcer.announce("f1.dat", a)
        s.announcer.announce("f1.dat", b)
        assert wait_until(lambda: "Could not get a working source for f1.dat" in caplog.text)
        s.announcer.announce("f2.dat", a)  # a later file, acked once delivered: the acks before it are in
        a.handler = serve_everything
        s.wait_results(1)
        assert wait_until(lambda: s.published("f2.dat")[-1][0] == "file")
    assert len(a.pushes("f1.dat")) == 1 and len(b.pushes("f1.dat")) == 1
    assert a.acks("f1.dat") == [] and b.acks("f1.dat") == []
    assert [m.data["uid"] for m in s.results()] == ["f2.dat"]
    # each failed attempt is a WARNING (another follows), only the give-up an ERROR
    levels = {r.getMessage().split(" f1.dat")[0].split("] ", 1)[1]: r.levelname for r in caplog.records
              if "f1.dat" in r.getMessage() and r.name.startswith("trollmoves_roles.client")}
    assert levels == {"Failed to get": "WARNING", "Could not get a working source for": "ERROR"}, levels


def test_silent_server_is_retried_lazy_pirate_then_next_source_is_used(setup):
    s = setup(servers=2, handlers=[serve_everything], processing_delay=0.3, transfer_req_timeout=0.3,
              request_attempts=2)
    a, b = s.servers
    a.handler = lambda m: NO_REPLY
    s.announcer.announce("f1.dat", a)
    s.announcer.announce("f1.dat", b)
    (result,) = s.wait_results(1)
    assert result.data["origin"] == b.address
    assert len(a.pushes("f1.dat")) == 2  # sent, timed out, re-sent on a new socket, timed out


def test_undecodable_reply_is_a_failure_not_a_hang(setup):
    s = setup(servers=2, handlers=[serve_everything], processing_delay=0.3)
    a, b = s.servers
    a.handler = lambda m: "None"  # what upstream answers to a push without uri
    s.announcer.announce("f1.dat", a)
    s.announcer.announce("f1.dat", b)
    (result,) = s.wait_results(1)
    assert result.data["origin"] == b.address


def test_already_delivered_file_is_only_acked(setup):
    s = setup()
    (a,) = s.servers
    s.announcer.announce("f1.dat", a)
    s.wait_results(1)
    s.announcer.announce("f1.dat", a)
    assert wait_until(lambda: a.acks("f1.dat"))
    assert len(a.pushes("f1.dat")) == 1


def test_requests_are_pipelined(setup):
    s = setup(max_requests_in_flight=4)
    (a,) = s.servers
    a.handler = lambda m: HOLD if m.type == "push" else serve_everything(m)
    for i in range(6):
        s.announcer.announce(f"f{i}.dat", a)
    # four pushes reach the server while none is answered; the others wait for a free slot
    assert wait_until(lambda: len(a.held) == 4)
    assert len([m for m in a.pushes() if m.data["uid"].startswith("f")]) == 4
    a.handler = serve_everything
    a.release()
    assert len(s.wait_results(6)) == 6


def test_two_announcements_inside_the_delay_one_transfer_other_server_acked(setup):
    """Upstream bug: the second announcement replaced the first timer and one server got no ack."""
    s = setup(servers=2, processing_delay=0.5)
    a, b = s.servers
    s.announcer.announce("f1.dat", a)
    s.announcer.announce("f1.dat", b)
    (result,) = s.wait_results(1)
    assert result.data["origin"] == a.address
    assert wait_until(lambda: b.acks("f1.dat"))
    assert len(a.pushes("f1.dat")) + len(b.pushes("f1.dat")) == 1


def test_hot_spare_leaves_files_the_primary_handles(setup):
    primary = Announcer()
    try:
        s = setup(processing_delay=0.5, extra_providers=primary.provider)
        (a,) = s.servers
        data = s.announcer.announce("f1.dat", a)
        primary.send(Message("/test/data", "push", dict(data, destination="file://elsewhere/out/")))
        primary.send(Message("/test/data", "ack", data))
        result = {k: v for k, v in data.items() if k != "request_address"}
        primary.send(Message("/test/data", "file", dict(result, uri="/out/f1.dat", origin=a.address)))
        s.announcer.announce("f2.dat", a)  # announced later, so its delay ends after f1's
        (result,) = s.wait_results(1)
    finally:
        primary.stop()
    assert result.data["uid"] == "f2.dat"
    assert a.pushes("f1.dat") == [] and s.published("f1.dat") == []


def test_secondary_takes_over_when_the_primary_pushes_but_never_acks(setup, caplog):
    primary = Announcer()
    try:
        with caplog.at_level(logging.WARNING):
            s = setup(processing_delay=0.3, transfer_req_timeout=0.2, request_attempts=1,
                      extra_providers=primary.provider)
            (a,) = s.servers
            data = s.announcer.announce("f1.dat", a)
            primary.send(Message("/test/data", "push", dict(data, destination="file://elsewhere/out/")))
            (result,) = s.wait_results(1)
    finally:
        primary.stop()
    assert result.data["uid"] == "f1.dat" and len(a.pushes("f1.dat")) == 1
    assert "did not ack it" in caplog.text


def test_secondary_takes_over_when_the_primary_acks_but_never_publishes_its_result(setup, caplog):
    """A primary killed between its ack and its result message: the file was delivered but never announced."""
    primary = Announcer()
    try:
        with caplog.at_level(logging.WARNING):
            s = setup(processing_delay=0.3, transfer_req_timeout=0.2, request_attempts=1,
                      extra_providers=primary.provider)
            (a,) = s.servers
            data = s.announcer.announce("f1.dat", a)
            primary.send(Message("/test/data", "push", dict(data, destination="file://elsewhere/out/")))
            primary.send(Message("/test/data", "ack", data))
            (result,) = s.wait_results(1)
    finally:
        primary.stop()
    assert result.data["uid"] == "f1.dat" and len(a.pushes("f1.dat")) == 1
    assert "did not publish its result" in caplog.text


def test_primary_result_message_settles_the_file(setup):
    primary = Announcer()
    try:
        s = setup(processing_delay=0.5, extra_providers=primary.provider)
        (a,) = s.servers
        data = s.announcer.announce("f1.dat", a)
        result = {k: v for k, v in data.items() if k != "request_address"}
        primary.send(Message("/test/data", "file", dict(result, uri="/out/f1.dat", origin=a.address)))
        s.announcer.announce("f2.dat", a)
        s.wait_results(1)
    finally:
        primary.stop()
    assert a.pushes("f1.dat") == []


def test_bad_messages_are_skipped_and_serving_continues(setup, caplog):
    s = setup()
    (a,) = s.servers
    with caplog.at_level(logging.WARNING):
        s.announcer.send_raw("pytroll://test/data file root@h 2024-01-01T00:00:00 v1.01 application/json {broken")
        s.announcer.send(Message("/test/data", "file", {"uri": "/in/x", "request_address": a.address}))
        s.announcer.send(Message("/test/data", "file", {"uid": "x", "uri": "/x", "request_address": 12}))
        s.announcer.send(Message("/test/data", "file", "just text"))
        s.announcer.announce("f1.dat", a)
        assert s.wait_results(1)
    assert "without uid/uri" in caplog.text  # the others are rate-limited
    assert "malformed" in caplog.text
    assert [m.data.get("uid") for m in a.pushes() if not m.data["uid"].startswith("probe")] == ["f1.dat"]


def test_uid_cache_is_per_chain(setup, tmp_path):
    """Upstream's cache is shared by all chains, so a second chain wanting the same file only acked."""
    s = setup(second_chain=True)
    (a,) = s.servers
    s.announcer.announce("f1.dat", a)
    results = s.wait_results(2)
    assert sorted(m.data["uri"] for m in results) == sorted([str(s.out / "f1.dat"), str(tmp_path / "other/f1.dat")])
    assert len(a.pushes("f1.dat")) == 2


def test_heartbeat_watchdog_resubscribes_and_says_so(setup, caplog):
    with caplog.at_level(logging.INFO):
        # 0.9 s without any message: what is announced while a new subscription connects is lost
        # (PUB/SUB), so the alarm must outlast a connect on a loaded machine by far
        s = setup(heartbeat_alarm_scale=0.03)
        (a,) = s.servers
        listener = s.client.chain("test")._listeners[0]
        assert wait_until(lambda: listener.resubscriptions >= 2)
        assert "resubscribing" in caplog.text
        # a beat ends the silence; its min_interval puts the next alarm 90 s away
        beat = Message("/heartbeat/move_it_server", "beat", {"min_interval": 3000})
        assert wait_until(lambda: (s.announcer.send(beat), not listener._silent)[1], interval=0.2)
        assert "is publishing again" in caplog.text
        resubscriptions = listener.resubscriptions
        s.announcer.announce("f1.dat", a)
        assert s.wait_results(1)
        assert listener.resubscriptions == resubscriptions


def test_a_delivery_from_a_server_wakes_the_files_waiting_to_retry_it(setup):
    """A file waiting (a minute here) for another round over a server that failed it is tried
    again as soon as that server delivers something else."""
    s = setup(servers=1, handlers=[err], processing_delay=0.1, retry_delay=60, max_retry_delay=60,
              give_up_after=600)
    (a,) = s.servers
    s.announcer.announce("f1.dat", a)
    assert wait_until(lambda: len(a.pushes("f1.dat")) == 1)
    a.handler = serve_everything
    s.announcer.announce("f2.dat", a)
    assert sorted(m.data["uid"] for m in s.wait_results(2)) == ["f1.dat", "f2.dat"]
    assert len(a.pushes("f1.dat")) == 2


def test_a_chain_remembers_more_deliveries_than_a_server_lists() -> None:
    """Reconciliation pages through a server's whole listing: every file in it that this chain
    delivered must still be remembered, or it is fetched a second time (seen with a backlog of
    100,000 files: 24,272 fetched twice with 11,000 remembered)."""
    from trollmoves_roles.client.chain import CACHE_SIZE
    from trollmoves_roles.client.state import ChainState
    from trollmoves_roles.server.announced import LISTED_MAX

    assert CACHE_SIZE >= 2 * LISTED_MAX
    assert ChainState().keep_delivered >= 2 * LISTED_MAX
