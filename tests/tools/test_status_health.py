"""``trollmoves status``: the health of each chain, judged from a running server's metrics, with
chains forced into each state by their destinations: one that works, one that fails (its
directory is under a plain file), one that never answers (an FTP port that accepts and stays
silent, so the push hangs)."""

from __future__ import annotations

import socket
import subprocess
import threading
import time

import pytest
from posttroll.message import Message
from support.bus import free_port, wait_until
from support.files import write_file
from support.ini import write_ini
from support.processes import TROLLMOVES
from support.reqrep import TOPIC, request
from support.server import ServerProcess, server_section
from trollmoves_roles.observe.metrics import read_endpoint
from trollmoves_roles.tools.status import FAILING, LAGGING, OK, STALLED, Thresholds, chain_health

pytestmark = pytest.mark.timeout(120)


def test_chain_health_states_and_thresholds():
    strict = Thresholds(lagging_after=10, stalled_after=100, failing_ratio=0.5)
    assert chain_health(0, 5000, 0, 0, strict) == (OK, "")  # idle for long: nothing pending, fine
    assert chain_health(3, 5, 10, 0, strict) == (OK, "3 pending")
    assert chain_health(3, 10, 10, 0, strict)[0] == LAGGING
    assert chain_health(3, 100, 10, 0, strict) == (STALLED, "3 pending, no delivery for 100 s")
    assert chain_health(3, 100, 1, 1, strict) == (FAILING, "1 of 2 recent transfers failed")  # failing wins
    assert chain_health(0, 0, 3, 1, strict)[0] == OK  # 1 of 4 is below the ratio
    assert chain_health(0, 0, 0, 1, Thresholds(min_failures=2))[0] == OK


@pytest.fixture
def silent_ftp():
    """A TCP port that accepts connections and never says a word (a hung FTP server)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join(5)
    for conn in accepted:
        conn.close()
    listener.close()


def status(config, *args: str) -> dict[str, list[str]]:
    shown = subprocess.run([TROLLMOVES, "status", str(config), *args], capture_output=True, text=True, timeout=60,
                           check=False)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("CHAIN"))
    return {line.split()[0]: line.split() for line in lines[header + 1:] if line.strip()
            if not line.startswith(("queue", "refused", "bad"))}


def test_status_shows_ok_failing_stalled_and_lagging_chains(tmp_path, silent_ftp, monkeypatch):
    pytest.importorskip("trollmoves_ftp")
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    ports = {name: free_port() for name in ("good", "broken", "hung")}
    origins = {name: tmp_path / name for name in ports}
    for origin in origins.values():
        origin.mkdir()
    config = write_ini(tmp_path / "server.ini", {
        "good": server_section(origins["good"], ports["good"]),
        "broken": server_section(origins["broken"], ports["broken"]),
        "hung": server_section(origins["hung"], ports["hung"], connection_parameters__timeout=60),
    })
    server = ServerProcess(config, tmp_path / "server.log", "--metrics-port", "0", "--disable-backlog",
                           "--drain-timeout", "1")
    try:
        assert read_endpoint(config) is not None
        not_a_directory = tmp_path / "plain-file"
        not_a_directory.write_bytes(b"")
        destinations = {"good": f"file://{tmp_path / 'out'}/", "broken": f"file://{not_a_directory}/sub/",
                        "hung": f"ftp://user:secret@127.0.0.1:{silent_ftp}/in/"}

        def push(name: str, number: int, timeout: float = 20.0) -> Message | None:
            path = write_file(origins[name], f"{name}{number}.dat", b"x" * 100)
            assert wait_until(lambda: f"announced {path}" in server.log() or path.name in server.log(), timeout=10)
            return request(f"127.0.0.1:{ports[name]}", Message(TOPIC, "push", {
                "uri": str(path), "uid": path.name, "destination": destinations[name]}), timeout=timeout)

        assert push("good", 1).type == "file"
        assert push("broken", 1).type == "err"
        assert push("hung", 1, timeout=0.5) is None  # the transfer is still hanging on the silent port

        rows = status(config, "--lagging-after", "1", "--stalled-after", "1000")
        assert rows["good"][-1] == OK
        assert rows["broken"][-7:] == [FAILING, "1", "of", "1", "recent", "transfers", "failed"], rows
        assert wait_until(lambda: LAGGING in status(config, "--lagging-after", "1", "--stalled-after",
                                                    "1000")["hung"], timeout=20, interval=0.2)
        assert wait_until(lambda: STALLED in status(config, "--stalled-after", "1")["hung"], timeout=20,
                          interval=0.2)
        hung = status(config, "--stalled-after", "1")["hung"]
        assert hung[hung.index(STALLED) + 1:hung.index(STALLED) + 3] == ["1", "pending,"]
        # with the defaults (a minute, five minutes) a chain stuck for seconds is still ok
        assert status(config)["hung"][-3:] == [OK, "1", "pending"]

        # the failing chain heals once most recent transfers succeed again
        destinations["broken"] = f"file://{tmp_path / 'out2'}/"
        assert push("broken", 2).type == "file" and push("broken", 3).type == "file"
        assert FAILING not in status(config)["broken"]
    finally:
        server.stop()


def test_a_client_retrying_is_stalled_then_failing_once_it_gives_up(tmp_path, monkeypatch):
    """A real client whose server cannot write the destination: pending with no delivery while it
    retries (stalled), then, given up, failing."""
    from support.client import client_section
    from support.processes import TrollmovesProcess

    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    origin, blocker = tmp_path / "in", tmp_path / "plain-file"
    origin.mkdir()
    blocker.write_bytes(b"")
    server = ServerProcess(write_ini(tmp_path / "server.ini", {"srv": server_section(origin, free_port())}),
                           tmp_path / "server.log", "--disable-backlog")
    config = write_ini(tmp_path / "client.ini", {"test": client_section(
        f"127.0.0.1:{server.pub_port}", f"{blocker}/sub/", free_port(), retry_delay=0.5, max_retry_delay=0.5,
        give_up_after=6, create_target_directory=False)})
    client = TrollmovesProcess(["client", config, "-v", "--metrics-port", "0"], tmp_path / "client.log")
    try:
        assert wait_until(lambda: read_endpoint(config) is not None, timeout=30), client.log()[-2000:]

        def stalled() -> bool:  # new files until one reaches the client (slow joiner) and hangs in retries
            write_file(origin, f"s{time.monotonic_ns()}.dat", b"x")
            return wait_until(lambda: STALLED in status(config, "--stalled-after", "1")["test"], timeout=3,
                              interval=0.2)

        assert wait_until(stalled, timeout=40, interval=0), client.log()[-3000:]
        assert wait_until(lambda: FAILING in status(config)["test"], timeout=30, interval=0.3), client.log()[-3000:]
    finally:
        client.stop()
        server.stop()
