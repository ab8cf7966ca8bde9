"""Three ``trollmoves client`` processes in one group (``?group=``) behind one server, through a
real Mosquitto: each file is delivered once, the work is spread, and a member killed with
kill -9 has its share delivered by the others."""

from __future__ import annotations

import re
import select
import signal
import threading
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from posttroll.message import Message
from support.bus import free_port, wait_until
from support.files import write_file
from support.ini import write_ini
from support.processes import TrollmovesProcess

pytestmark = pytest.mark.slow

TAKEOVER_AFTER = 5  # a survivor slower than this on a loaded machine is taken over too (a duplicate)


class Group:
    def __init__(self, root: Path, broker, size: int = 3) -> None:
        self.inbox, self.out, self.broker = root / "in", root / "out", broker
        self.inbox.mkdir()
        prefix = f"group{free_port()}"
        pub_port = free_port()
        server_ini = write_ini(root / "server.ini", {"srv": {
            "origin": f"{self.inbox}/{{name}}.dat", "request_port": free_port(), "request_address": "127.0.0.1",
            "topic": "/test/data"}})
        self.server = TrollmovesProcess(["server", "-p", pub_port, "--bind", "127.0.0.1", "--disable-backlog",
                                         "--announce-delay", "0", "--bus", broker.url(prefix=prefix), server_ini],
                                        root / "server.log")
        self.members: list[TrollmovesProcess] = []
        self.server.wait_logged("Server running", 30)
        for n in range(size):
            ini = write_ini(root / f"client{n}.ini", {"test": {
                "providers": f"127.0.0.1:{pub_port}", "destination": f"{self.out}/", "topic": "/test/data",
                "publish_port": free_port(), "nameservers": "false", "bind_address": "127.0.0.1",
                # in a group the takeover replaces the regular catch-up (see docs/transports/mqtt.md)
                "reconcile_interval": 0}})
            bus = broker.url(prefix=prefix, group="g", client_id=f"member{n}", takeover_after=str(TAKEOVER_AFTER))
            self.members.append(TrollmovesProcess(["client", ini, "-v", "--bus", bus], root / f"client{n}.log"))
        for member in self.members:
            member.wait_logged("Subscribing to", 30)
        # every member's shared subscription is in place once the broker logged it
        assert wait_until(lambda: len(set(re.findall(r"(member\d)-sub-\w+ .*\n.*\$share/g/" + prefix,
                                                     broker.log()))) == size, 20), broker.log()[-3000:]
        time.sleep(TAKEOVER_AFTER)  # each member holds its own share that long after a start

    def deliveries(self) -> list[Counter]:
        return [Counter(re.findall(r"Delivered (f\d+\.dat) from", m.log())) for m in self.members]

    def write(self, contents: dict[str, bytes]) -> None:
        for name, content in contents.items():
            write_file(self.inbox, name, content)

    def wait_all(self, contents: dict[str, bytes], timeout: float = 90) -> None:
        assert wait_until(lambda: all((self.out / n).exists() for n in contents), timeout), \
            "\n".join(m.log()[-1500:] for m in self.members)
        assert {n: (self.out / n).read_bytes() for n in contents} == contents

    def stop(self) -> None:
        for process in (*self.members, self.server):
            if process.alive():
                process.stop()


@pytest.fixture
def group(tmp_path, broker):
    running = Group(tmp_path, broker)
    yield running
    running.stop()


def test_a_group_of_three_shares_the_files(group):
    contents = {f"f{n}.dat": f"shared {n}\n".encode() for n in range(90)}
    group.write(contents)
    group.wait_all(contents)
    time.sleep(TAKEOVER_AFTER * 2)  # long enough for a wrongful takeover to show
    per_member = group.deliveries()
    everything = sum(per_member, Counter())
    assert set(everything) == set(contents) and set(everything.values()) == {1}  # each file once
    shares = [len(d) / len(contents) for d in per_member]
    assert all(0.23 <= share <= 0.43 for share in shares), shares  # 33 % ± 10 %


def test_a_member_killed_for_good_has_its_share_delivered_by_the_others(group):
    first = {f"f{n}.dat": f"before {n}\n".encode() for n in range(30)}
    group.write(first)
    group.wait_all(first)
    victim = group.members[1]
    victim.kill(signal.SIGKILL)
    second = {f"f{n}.dat": f"after {n}\n".encode() for n in range(30, 90)}
    group.write(second)
    group.wait_all({**first, **second})  # 0 lost: the victim's share is taken over
    survivors = [m for m in group.members if m is not victim]
    assert any("Taking over" in m.log() for m in survivors)
    time.sleep(TAKEOVER_AFTER * 2)
    per_member = group.deliveries()
    everything = sum(per_member, Counter())
    assert set(everything) == set(first) | set(second)
    duplicated = {name for name, count in everything.items() if count > 1}
    # duplicates only among files in flight at the kill: fetched by the victim, its result unpublished
    victim_requested = set(re.findall(r"Requesting (f\d+\.dat)", victim.log()))
    assert duplicated <= victim_requested, duplicated - victim_requested
    by_survivors = sum((d for m, d in zip(group.members, per_member, strict=True) if m is not victim), Counter())
    assert set(by_survivors.values()) == {1}, {n: c for n, c in by_survivors.items() if c > 1}
    print(f"taken over: {sum(m.log().count('Taking over') for m in survivors)}, duplicated: {len(duplicated)}")

    # the victim comes back: its session still holds its share of the second batch, which the
    # others delivered; it sees their results first and fetches none of it again
    victim.start()
    victim.wait_logged("Subscribing to", 30)
    assert wait_until(lambda: "Skipping /test/data: the group delivered it already" in victim.run_log(),
                      TAKEOVER_AFTER * 4), victim.run_log()[-3000:]
    time.sleep(TAKEOVER_AFTER * 2)
    fetched_again = set(re.findall(r"Delivered (f\d+\.dat) from", victim.run_log())) & set(second)
    assert not fetched_again, fetched_again


class SlowServer:
    """A server on the broker, in this process: announces files and answers push requests by
    writing the file into the requested directory, except those from ``slow`` members, which it
    keeps unanswered (a destination that never finishes)."""

    def __init__(self, bus: str, files: dict[str, bytes], slow: str) -> None:
        from support.broker import broker_publisher
        from trollmoves_mqtt.transport import MqttTransport

        self.address = f"127.0.0.1:{free_port()}"
        self.files, self.slow = files, slow
        self.held: list[str] = []
        self.publisher = broker_publisher(bus, "slow-server")
        self.inbox = MqttTransport.for_bus(bus).request_inbox(self.address)
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def announce(self, name: str) -> None:
        self.publisher.send(Message("/test/data", "file", {"uid": name, "uri": f"/origin/{name}",
                                                           "request_address": self.address}))

    def _serve(self) -> None:
        while not self._halt.is_set():
            select.select([self.inbox.pollable], [], [], 0.1)
            while (incoming := self.inbox.receive()) is not None:
                message = incoming.request
                if not isinstance(message, Message):
                    continue
                if message.type == "push" and incoming.peer.startswith(f"{self.slow}-"):
                    self.held.append(message.data["uid"])
                    continue
                if message.type == "push":
                    target = Path(urlsplit(message.data["destination"]).path) / message.data["uid"]
                    write_file(target.parent, target.name, self.files[message.data["uid"]])
                    reply = Message(message.subject, "file", message.data)
                else:
                    reply = Message(message.subject, "ack" if message.type == "ack" else "unknown", message.data)
                self.inbox.reply(incoming.token, reply)

    def stop(self) -> None:
        self._halt.set()
        self._thread.join(5)
        self.inbox.close()
        self.publisher.stop()


def test_a_member_killed_with_its_files_journaled_but_undelivered_has_them_delivered_by_the_others(
        tmp_path, broker):
    """The member acknowledges each announcement to the broker when it takes it (before its
    delivery); its journal is its own. What the group covers is the takeover: every member
    watches every announcement, and delivers what no member delivered in time."""
    out = tmp_path / "out"
    prefix = f"slow{free_port()}"
    contents = {f"f{n}.dat": f"slow {n}\n".encode() * (n + 1) for n in range(30)}
    server = SlowServer(broker.url(prefix=prefix, client_id="slowsrv"), contents, slow="member1")
    members = []
    try:
        for n in range(3):
            ini = write_ini(tmp_path / f"client{n}.ini", {"test": {
                "providers": "127.0.0.1:9", "destination": f"{out}/", "topic": "/test/data", "publish_port": 0,
                "nameservers": "false", "bind_address": "127.0.0.1", "reconcile_interval": 0}})
            bus = broker.url(prefix=prefix, group="g", client_id=f"member{n}", takeover_after=str(TAKEOVER_AFTER))
            members.append(TrollmovesProcess(["client", ini, "-v", "--bus", bus], tmp_path / f"client{n}.log"))
        assert wait_until(lambda: len(set(re.findall(r"(member\d)-sub-\w+ .*\n.*\$share/g/" + prefix,
                                                     broker.log()))) == 3, 20), broker.log()[-3000:]
        time.sleep(TAKEOVER_AFTER)  # each member holds its own share that long after a start
        victim = members[1]
        for name in contents:
            server.announce(name)
        # the victim journaled its share and asked for it; its destination never finishes
        assert wait_until(lambda: len(server.held) >= 3, 30), victim.log()[-3000:]
        victim.kill(signal.SIGKILL)
        held = set(server.held)
        assert wait_until(lambda: all((out / n).exists() for n in contents), 90), \
            "\n".join(m.log()[-1500:] for m in members)
        assert {n: (out / n).read_bytes() for n in contents} == contents
        survivors = [m for m in members if m is not victim]
        by_survivors = lambda: sum((Counter(re.findall(r"Delivered (f\d+\.dat) from", m.log()))  # noqa: E731
                                    for m in survivors), Counter())
        assert wait_until(lambda: set(by_survivors()) == set(contents), 30), by_survivors()
        assert set(by_survivors().values()) == {1}  # each file delivered once by the group
        assert not re.findall(r"Delivered (f\d+\.dat) from", victim.log())
        assert any("Taking over" in m.log() for m in survivors)
        print(f"held by the victim and taken over: {len(held)}")
    finally:
        for member in members:
            if member.alive():
                member.stop()
        server.stop()
