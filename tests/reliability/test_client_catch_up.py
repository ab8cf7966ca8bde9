"""A client with ``state_directory`` that was down (SIGTERM or kill -9) gets, at its next start,
every file its servers announced meanwhile, from their listings, and fetches nothing twice;
also when the server was restarted meanwhile (its journal keeps its listing). What was
announced longer than ``catch_up_window`` before the start is logged as lost, once, as a count.

Real processes: ``trollmoves server`` and ``trollmoves client`` on loopback. The client's
``reconcile_interval`` is left at 60 s, so only the catch-up at start can bring these files:
the bus never carried them to it."""

from __future__ import annotations

import re
import signal
import time
from collections import Counter
from pathlib import Path

import pytest
from posttroll.message import Message
from support.bus import free_port, wait_until
from support.client import client_section
from support.files import write_file
from support.ini import write_ini
from support.processes import ClientProcess
from support.reqrep import request
from support.server import TOPIC, server_section
from trollmoves_roles.client.state import ChainState
from trollmoves_roles.state.journal import journal_path

pytestmark = pytest.mark.timeout(180)


class Setup:
    """Our server (``--state-directory``, no backlog) and our client (``state_directory``) on it."""

    def __init__(self, tmp_path: Path, origin: Path, out: Path, server_process, *, server_journal: bool = True,
                 **client: object) -> None:
        self.origin, self.out = origin, out
        port = free_port()
        self.address = f"127.0.0.1:{port}"
        journal = ["--state-directory", str(tmp_path / "server-state")] if server_journal else []
        self.server = server_process(write_ini(tmp_path / "server.ini", {"srv": server_section(origin, port)}),
                                     "--disable-backlog", *journal)
        config = write_ini(tmp_path / "client.ini", {"test": client_section(
            f"127.0.0.1:{self.server.pub_port}", f"{out}/", free_port(), state_directory=tmp_path / "client-state",
            **client)})
        self.journal = journal_path(tmp_path / "client-state", config, "client")
        self.client = ClientProcess(config, tmp_path / "client.log")

    def cursor(self) -> float | None:
        """How far the client has read the server's listing, from its journal (read while it runs)."""
        state = ChainState.open(self.journal, "test")
        try:
            return state.servers().get(self.address, ("", None))[1]
        finally:
            state.close()

    def write(self, names: list[str]) -> None:
        for name in names:
            write_file(self.origin, name, f"content of {name}\n".encode())

    def announced(self) -> set[str]:
        reply = request(self.address, Message(TOPIC, "info", {"max_count": 2000}))
        return {f.rsplit("/", 1)[-1] for f in reply.data["files"]} if reply is not None and reply.type == "info" \
            else set()

    def wait_announced(self, names: list[str]) -> None:
        assert wait_until(lambda: set(names) <= self.announced(), timeout=30), self.server.log()[-3000:]

    def deliver(self, names: list[str]) -> None:
        """Probe until the client's subscription has joined, write ``names``, wait until they are delivered,
        and the probes the bus lost before it joined too (reconciliation fetches them): nothing is left over."""
        probes: list[str] = []

        def probe() -> bool:
            probes.append(f"probe{time.monotonic_ns()}.dat")
            write_file(self.origin, probes[-1], b"probe")
            return wait_until(lambda: "Delivered probe" in self.client.run_log(), timeout=1.0)

        assert wait_until(probe, timeout=30, interval=0), self.client.log()[-3000:]
        self.write(names)
        assert wait_until(lambda: set(names + probes) <= set(self.client.delivered(r"(?:f|probe)\d+\.dat")),
                          timeout=30), self.client.log()[-3000:]

    def wait_delivered(self, names: list[str], timeout: float = 60) -> None:
        assert wait_until(lambda: set(names) <= set(self.client.delivered()), timeout=timeout), \
            f"missing {sorted(set(names) - set(self.client.delivered()))[:10]}\n{self.client.run_log()[-3000:]}"

    def pushes(self) -> Counter:
        return Counter(re.findall(r"Pushed \S+/(f\d+\.dat) to", self.server.log()))


def names(start: int, stop: int) -> list[str]:
    return [f"f{i:03d}.dat" for i in range(start, stop)]


def stop_client(client: ClientProcess, how: str) -> None:
    if how == "sigterm":
        assert client.stop() == 0
    else:
        assert client.kill() == -signal.SIGKILL


def check_exactly_once(setup: Setup, expected: list[str]) -> None:
    time.sleep(1.0)  # a late second fetch would show up now
    delivered = setup.client.delivered()
    assert set(delivered) == set(expected)
    assert [n for n, count in delivered.items() if count > 1] == []
    assert [n for n, count in setup.pushes().items() if count > 1] == []
    for name in expected:
        assert (setup.out / name).read_bytes() == f"content of {name}\n".encode()


@pytest.mark.parametrize("how", ["sigterm", "kill-9"])
def test_client_down_while_200_files_are_announced_gets_them_all_at_start(tmp_path, dirs, server_process, how):
    setup = Setup(tmp_path, *dirs, server_process)
    before, meanwhile = names(0, 10), names(10, 210)
    try:
        setup.deliver(before)
        stop_client(setup.client, how)
        setup.write(meanwhile)
        setup.wait_announced(meanwhile)
        setup.client.start()
        setup.wait_delivered(before + meanwhile)
        check_exactly_once(setup, before + meanwhile)
        log = setup.client.run_log()
        assert "Asking 1 server(s) for what they announced while we were down" in log
        assert re.search(r"\d+ file\(s\) announced by \S+ never reached us on the bus", log)
        assert "lost" not in log
    finally:
        setup.client.stop()


@pytest.mark.parametrize("server_stop", ["sigterm", "kill-9"])
def test_server_restarted_while_the_client_was_down(tmp_path, dirs, server_process, server_stop):
    """Both restarted: files announced before the server's restart come from its journal's listing."""
    setup = Setup(tmp_path, *dirs, server_process)
    before, first, second = names(0, 5), names(5, 55), names(55, 105)
    try:
        setup.deliver(before)
        stop_client(setup.client, "kill-9")
        setup.write(first)
        setup.wait_announced(first)
        if server_stop == "sigterm":
            assert setup.server.stop() == 0
        else:
            assert setup.server.kill() == -signal.SIGKILL
        setup.server.start()
        setup.write(second)
        setup.wait_announced(second)
        setup.client.start()
        setup.wait_delivered(before + first + second)
        check_exactly_once(setup, before + first + second)
        assert "lost" not in setup.client.run_log()
    finally:
        setup.client.stop()


def test_server_restarted_while_the_client_runs(tmp_path, dirs, server_process):
    """Announcements made right after the server's restart, while the client's subscription has not
    reconnected, come from the listing at the next reconciliation."""
    setup = Setup(tmp_path, *dirs, server_process, reconcile_interval=2)
    before, after = names(0, 5), names(5, 105)
    try:
        setup.deliver(before)
        assert setup.server.kill() == -signal.SIGKILL
        setup.server.start()
        setup.write(after)
        setup.wait_delivered(before + after)
        check_exactly_once(setup, before + after)
    finally:
        setup.client.stop()


def test_client_down_longer_than_the_window_logs_the_lost_files_once(tmp_path, dirs, server_process):
    window = 6.0
    setup = Setup(tmp_path, *dirs, server_process, catch_up_window=window)
    before, old, recent = names(0, 3), names(3, 8), names(8, 11)
    try:
        setup.deliver(before)
        stop_client(setup.client, "sigterm")
        setup.write(old)
        setup.wait_announced(old)
        time.sleep(window + 1)  # the old ones are now older than the window will reach at the start
        setup.write(recent)
        setup.wait_announced(recent)
        setup.client.start()
        setup.wait_delivered(before + recent)
        assert wait_until(lambda: "missed while we were down" in setup.client.run_log(), timeout=10)
        check_exactly_once(setup, before + recent)
        lines = [line for line in setup.client.run_log().splitlines() if "missed while we were down" in line]
        assert len(lines) == 1 and re.search(r"\] 5 file\(s\) announced by 127\.0\.0\.1:\d+ more than "
                                             r"catch_up_window \(6 s\)", lines[0]), lines
        assert not any(setup.pushes()[name] for name in old)
    finally:
        setup.client.stop()


def test_server_restarted_without_its_journal_is_said_once(tmp_path, dirs, server_process):
    """A server without --state-directory forgets its listing at a restart: the client says that what it
    announced before may be lost, and gets what it announced after."""
    setup = Setup(tmp_path, *dirs, server_process, server_journal=False, reconcile_interval=1)
    before, forgotten, after = names(0, 3), names(3, 6), names(6, 9)
    try:
        setup.deliver(before)
        assert wait_until(lambda: setup.cursor() is not None, timeout=30)  # a listing was read
        stop_client(setup.client, "kill-9")
        setup.write(forgotten)
        setup.wait_announced(forgotten)
        setup.server.stop()
        setup.server.start()
        setup.write(after)
        setup.wait_announced(after)
        setup.client.start()
        setup.wait_delivered(before + after)
        time.sleep(2.5)  # more rounds: the notice is not repeated
        log = setup.client.run_log()
        assert log.count("only goes back to") == 1, log[-3000:]
        assert not any(f"Delivered {name}" in log for name in forgotten)  # the server refuses them now
    finally:
        setup.client.stop()
