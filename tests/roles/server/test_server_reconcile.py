"""``info`` with ``{"announcements": true}``: the server lists its recent announcements, so that
clients find what pub/sub lost. End to end with our client: announcements dropped on a live bus,
and announced while the client was down, are delivered all the same, each once."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

import pytest
from posttroll.message import Message
from support.bus import free_port, wait_until
from support.files import put_file
from support.ini import write_ini
from support.reqrep import reply as request
from support.server import TOPIC, chain
from trollmoves_roles.client.process import ClientProcess
from trollmoves_roles.server.announced import LISTED_STATE, AnnouncedFiles
from trollmoves_roles.state.journal import Journal

from trollmoves_core.plugins import default_host

pytestmark = pytest.mark.timeout(90)


def info(address: str, **data: object) -> Message:
    reply = request(address, Message(TOPIC, "info", data))
    assert reply.type == "info", reply.data
    return reply


def names(entries: list[dict]) -> list[str]:
    return [entry["data"]["uid"] for entry in entries]


@pytest.fixture
def running(serve, dirs):
    origin, _ = dirs
    return serve(chain(origin, free_port(), info="sensor=avhrr"))


def test_info_lists_announcements_only_when_asked(running, dirs):
    origin, _ = dirs
    published = [running.announced(put_file(origin / f"NOAA-{n}_202401020304.dat").name) for n in (18, 19, 20)]
    plain = info(running.address(), max_count=10)
    assert set(plain.data) == {"files", "max_count", "uptime"}  # upstream's reply, unchanged
    asked = info(running.address(), max_count=10, announcements=True)
    assert asked.data["files"] == plain.data["files"]
    listed = asked.data["announcements"]
    assert names(listed) == [m.data["uid"] for m in reversed(published)]
    for entry, message in zip(listed, reversed(published), strict=True):
        assert (entry["subject"], entry["type"]) == (TOPIC, "file")
        assert entry["data"] == message.data  # datetimes included, as on the bus
        assert isinstance(entry["data"]["start_time"], dt.datetime)
        assert abs(entry["time"] - message.time.timestamp()) < 5
    assert names(info(running.address(), max_count=2, announcements=True).data["announcements"]) == \
        names(listed)[:2]


def test_files_no_longer_served_are_not_listed(running, dirs):
    origin, _ = dirs
    first, second, third = (running.announced(put_file(origin / f"NOAA-{n}_202401020304.dat").name)
                            for n in (18, 19, 20))
    running.server.announced.discard(first.data["uri"])  # deleted by the server after delivery
    Path(second.data["uri"]).unlink()  # removed by someone else
    assert names(info(running.address(), announcements=True).data["announcements"]) == [third.data["uid"]]


def test_listing_is_per_chain_and_bounded(tmp_path):
    announced = AnnouncedFiles(listed=3)
    for i in range(5):
        (tmp_path / f"a{i}").write_bytes(b"x")
        announced.announce([(str(tmp_path / f"a{i}"), f"a{i}")], TOPIC, "a", message=(TOPIC, "file", {"uid": f"a{i}"}))
    (tmp_path / "b").write_bytes(b"x")
    announced.announce([(str(tmp_path / "b"), "b")], "/other", "b", message=("/other", "file", {"uid": "b"}))
    announced.add(str(tmp_path / "a0"), "a0", TOPIC, "a")  # recorded again without a listing: a0's listing is stale
    assert names(announced.listed("a", 10)) == ["a4", "a3", "a2"]
    assert names(announced.listed("a", 2)) == ["a4", "a3"]
    assert [(e["subject"], names([e])) for e in announced.listed("b", 10)] == [("/other", ["b"])]
    assert announced.listed("nothing", 10) == []


def test_listing_after_a_time_is_paged_oldest_first(tmp_path):
    announced = AnnouncedFiles(listed=4)
    for i in range(6):
        (tmp_path / f"a{i}").write_bytes(b"x")
        announced.announce([(str(tmp_path / f"a{i}"), f"a{i}")], TOPIC, "a", message=(TOPIC, "file", {"uid": f"a{i}"}))
    everything = announced.listed("a", 10)  # the bound of 4 dropped a0 and a1
    assert names(everything) == ["a5", "a4", "a3", "a2"]
    times = [e["time"] for e in reversed(everything)]
    assert times == sorted(set(times))  # strictly increasing: a page boundary never skips one
    page, more = announced.listed_after("a", 0.0, 3)
    assert (names(page), more) == (["a2", "a3", "a4"], True)
    page, more = announced.listed_after("a", page[-1]["time"], 3)
    assert (names(page), more) == (["a5"], False)
    assert announced.listed_after("a", times[-1], 3) == ([], False)
    assert announced.listed_after("none", 0.0, 3) == ([], False)
    # what the bound dropped: the listing is complete only after the newest dropped one (a1)
    assert times[0] > announced.complete_after("a") > times[0] - 5
    assert announced.complete_after("none") <= times[0]


def test_info_after_and_its_bad_values(running, dirs):
    origin, _ = dirs
    published = [running.announced(put_file(origin / f"NOAA-{n}_202401020304.dat").name) for n in (18, 19, 20)]
    newest_first = info(running.address(), announcements=True).data
    assert newest_first["complete_after"] <= newest_first["announcements"][-1]["time"]
    first = newest_first["announcements"][-1]["time"]
    asked = info(running.address(), announcements=True, after=first, max_count=1).data
    assert (names(asked["announcements"]), asked["more"]) == ([published[1].data["uid"]], True)
    for bad in ("yesterday", True, [1]):
        reply = request(running.address(), Message(TOPIC, "info", {"announcements": True, "after": bad}))
        assert reply.type == "err" and "after must be a number" in reply.data
    assert info(running.address(), max_count=1).type == "info"  # the chain keeps serving


def test_listing_survives_a_restart_with_state_directory(serve, dirs, tmp_path):
    origin, _ = dirs
    port = free_port()
    state = tmp_path / "state"
    first = serve(chain(origin, port), state_directory=str(state))
    published = [first.announced(put_file(origin / f"NOAA-{n}_202401020304.dat").name) for n in (18, 19)]
    before = info(first.address(), announcements=True).data["announcements"]
    first.server.request_stop()
    first.thread.join(10)
    first.server.close()
    second = serve(chain(origin, port), state_directory=str(state), config_name="server.ini")
    after = info(second.address(), announcements=True).data["announcements"]
    assert names(after) == [m.data["uid"] for m in reversed(published)]
    assert after == before
    # the listing of the first run is still complete: clients asking after an old time lose nothing
    assert info(second.address(), announcements=True).data["complete_after"] <= before[-1]["time"]


def test_journal_keeps_only_the_newest_listed_announcements(tmp_path):
    journal = Journal(tmp_path / "j.sqlite", table="announced")
    announced = AnnouncedFiles(listed=2)
    announced.attach(journal)
    for i in range(5):
        path = tmp_path / f"f{i}"
        path.write_bytes(b"x")
        announced.announce([(str(path), f"f{i}")], TOPIC, "c", message=(TOPIC, "file", {"uid": f"f{i}"}))
    announced.detach()
    restored = AnnouncedFiles(listed=2)
    assert restored.attach(journal) == 5
    assert [e["data"]["uid"] for e in restored.listed("c", 10)] == ["f4", "f3"]
    assert journal.count(LISTED_STATE + "c") == 2
    journal.close()


# -- end to end with our client ------------------------------------------------------------


class Client:
    """Our client process in a thread, delivering to ``out`` with a journal and quick reconciliation."""

    def __init__(self, tmp_path: Path, server_port: int, out: Path) -> None:
        self.config = write_ini(tmp_path / "client.ini", {"test": {
            "providers": f"127.0.0.1:{server_port}", "destination": f"{out}/", "topic": TOPIC,
            "publish_port": free_port(), "nameservers": "false", "bind_address": "127.0.0.1",
            "state_directory": tmp_path / "client-state", "reconcile_interval": 0.5}})
        self.process: ClientProcess | None = None
        self.thread: threading.Thread | None = None

    def start(self) -> Client:
        self.process = ClientProcess(self.config, host=default_host())
        self.thread = threading.Thread(target=self.process.run, daemon=True)
        self.thread.start()
        assert self.process.started.wait(10)
        return self

    @property
    def chain(self):
        assert self.process is not None
        return self.process.chains["test"]

    def stop(self) -> None:
        if self.process is not None and self.thread is not None:
            self.process.stop()
            self.thread.join(15)
            assert not self.thread.is_alive()
            self.process = self.thread = None


def first_contact(origin: Path, out: Path, first: int) -> list[Path]:
    """Write files until one reaches a just-started client (whose subscription may not have joined
    yet: what is sent before is lost, and found by reconciliation once it knows the server); wait
    until all of them arrived. Returns them."""
    written: list[Path] = []
    while not any((out / p.name).exists() for p in written):
        assert len(written) < 10, "no announcement reached the client"
        written.append(put_file(origin / f"NOAA-{first + len(written)}_202401020300.dat", b"contact"))
        wait_until(lambda: any((out / p.name).exists() for p in written), timeout=2)
    assert wait_until(lambda: all((out / p.name).exists() for p in written), timeout=30)
    return written


@pytest.fixture
def client(tmp_path, dirs):
    made: list[Client] = []

    def make(server_port: int) -> Client:
        made.append(Client(tmp_path, server_port, dirs[1]))
        return made[-1]

    yield make
    for item in made:
        item.stop()


def test_announcements_dropped_on_a_live_bus_are_delivered_by_reconciliation(serve, dirs, client):
    origin, out = dirs
    running = serve(chain(origin, free_port()))
    receiver = client(running.server.publisher.port).start()
    contact = first_contact(origin, out, 40)  # the client learns of the server on the bus
    reconciled = receiver.chain.reconciled
    publish = running.server.announcements.send
    dropped: list[str] = []

    def lossy(message: Message) -> None:  # pub/sub losing every other announcement, silently
        if message.type == "file" and int(message.data["uid"][5:7]) % 2:
            dropped.append(message.data["uid"])
            return
        publish(message)

    running.server.announcements.send = lossy
    expected = {}
    for i in range(10):
        name = f"NOAA-{i + 20}_202401020304.dat"
        expected[name] = f"content {i}".encode()
        put_file(origin / name, expected[name])
    assert wait_until(lambda: all((out / n).exists() for n in expected), timeout=30), \
        sorted(n for n in expected if not (out / n).exists())
    assert len(dropped) == 5
    assert {n: (out / n).read_bytes() for n in expected} == expected
    assert wait_until(lambda: receiver.chain.reconciled - reconciled == 5, timeout=5)
    assert running.server.transfers.transfers == len(contact) + 10  # each file once


def test_files_announced_while_the_client_was_down_are_delivered_after_its_restart(serve, dirs, client):
    origin, out = dirs
    running = serve(chain(origin, free_port()))
    receiver = client(running.server.publisher.port).start()
    before = first_contact(origin, out, 40)
    receiver.stop()
    missed = [put_file(origin / f"NOAA-{n}_202401020304.dat", f"missed {n}".encode()) for n in (16, 17, 18)]
    assert len(running.announcements(len(before) + 3, "file")) == len(before) + 3  # announced, to no one
    receiver.start()
    # nothing is pending in its journal: it learns of the server again from the next announcement
    after = first_contact(origin, out, 60)
    assert wait_until(lambda: all((out / p.name).exists() for p in missed), timeout=30)
    assert [(out / p.name).read_bytes() for p in missed] == [b"missed 16", b"missed 17", b"missed 18"]
    assert wait_until(lambda: receiver.chain.reconciled >= 3, timeout=5)
    # each file once; those delivered before the restart are not fetched again
    assert running.server.transfers.transfers == len(before) + len(missed) + len(after)
