"""Three ``trollmoves client`` processes in one group (``?group=``) behind one server, through a
real Mosquitto: each file is delivered once, by one member, and the work is spread."""

from __future__ import annotations

import re
from collections import Counter

import pytest
from support.bus import free_port, wait_until
from support.files import write_file
from support.ini import write_ini
from support.processes import TrollmovesProcess

pytestmark = pytest.mark.slow


def test_a_group_of_three_shares_the_files(tmp_path, broker):
    inbox, out = tmp_path / "in", tmp_path / "out"
    inbox.mkdir()
    prefix = f"group{free_port()}"
    pub_port = free_port()
    server_ini = write_ini(tmp_path / "server.ini", {"srv": {
        "origin": f"{inbox}/{{name}}.dat", "request_port": free_port(), "request_address": "127.0.0.1",
        "topic": "/test/data"}})
    server = TrollmovesProcess(["server", "-p", pub_port, "--bind", "127.0.0.1", "--disable-backlog",
                                "--announce-delay", "0", "--bus", broker.url(prefix=prefix), server_ini],
                               tmp_path / "server.log")
    members = []
    try:
        server.wait_logged("Server running", 30)
        for n in range(3):
            ini = write_ini(tmp_path / f"client{n}.ini", {"test": {
                "providers": f"127.0.0.1:{pub_port}", "destination": f"{out}/", "topic": "/test/data",
                "publish_port": free_port(), "nameservers": "false", "bind_address": "127.0.0.1"}})
            bus = broker.url(prefix=prefix, group="g", client_id=f"member{n}")
            members.append(TrollmovesProcess(["client", ini, "-v", "--bus", bus], tmp_path / f"client{n}.log"))
        for member in members:
            member.wait_logged("Subscribing to", 30)
        # every member's shared subscription is in place once the broker logged it
        assert wait_until(lambda: len(set(re.findall(r"(member\d)-sub-\w+ .*\n.*\$share/g/" + prefix,
                                                     broker.log()))) == 3, 20), broker.log()[-3000:]
        contents = {f"f{n}.dat": f"shared {n}\n".encode() for n in range(90)}
        for name, content in contents.items():
            write_file(inbox, name, content)
        assert wait_until(lambda: all((out / n).exists() for n in contents), 60), \
            "\n".join(m.log()[-1500:] for m in members)
        assert {n: (out / n).read_bytes() for n in contents} == contents

        def deliveries() -> list[Counter]:
            return [Counter(re.findall(r"Delivered (f\d+\.dat) from", m.log())) for m in members]
        assert wait_until(lambda: sum(len(d) for d in deliveries()) >= len(contents), 10)
        per_member = deliveries()
        everything = sum(per_member, Counter())
        assert set(everything) == set(contents) and set(everything.values()) == {1}  # each file once
        shares = [len(d) / len(contents) for d in per_member]
        assert all(0.23 <= share <= 0.43 for share in shares), shares  # 33 % ± 10 %
    finally:
        for process in (*members, server):
            process.stop()
