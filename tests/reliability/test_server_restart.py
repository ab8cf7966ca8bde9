"""A server killed with SIGKILL and restarted keeps serving the files it announced before
(``--state-directory``), as long as they are still on disk and inside its directories."""

from __future__ import annotations

import os

import pytest
from posttroll.message import Message
from support.bus import free_port, wait_until
from support.files import write_file
from support.ini import write_ini
from support.reqrep import request
from support.server import TOPIC, server_section

pytestmark = pytest.mark.timeout(120)


def info(address: str) -> list[str]:
    reply = request(address, Message(TOPIC, "info", {"max_count": 100}))
    assert reply is not None and reply.type == "info"
    return reply.data["files"]


def push(address: str, path, out) -> Message:
    reply = request(address, Message(TOPIC, "push", {"uri": str(path), "uid": path.name,
                                                     "destination": f"file://{out}/"}))
    assert reply is not None
    return reply


def announce(address: str, origin, names: list[str]) -> None:
    for name in names:
        write_file(origin, name, f"content of {name}\n".encode())
    assert wait_until(lambda: len(info(address)) >= len(names), timeout=20), info(address)


@pytest.mark.parametrize("persistent", [True, False], ids=["state-directory", "in-memory"])
def test_kill_9_and_restart_keeps_serving_announced_files(tmp_path, dirs, server_process, persistent):
    origin, out = dirs
    port = free_port()
    address = f"127.0.0.1:{port}"
    config = write_ini(tmp_path / "server.ini", {"chain": server_section(origin, port)})
    state = tmp_path / "state"
    args = ["--disable-backlog", *(["--state-directory", str(state)] if persistent else [])]
    server = server_process(config, *args)
    announce(address, origin, ["a.dat", "b.dat", "c.dat"])
    assert server.kill() == -9
    os.remove(origin / "b.dat")  # gone while the server was down: must not be served or listed
    server.start()

    reply = push(address, origin / "a.dat", out)
    if not persistent:  # the control: without a journal, the restarted server knows nothing
        assert reply.type == "err" and "not announced" in reply.data
        assert not any(out.iterdir())
        return
    assert reply.type == "file", reply.data
    assert (out / "a.dat").read_bytes() == b"content of a.dat\n"
    assert sorted(info(address)) == [f"{TOPIC}/a.dat", f"{TOPIC}/c.dat"]
    gone = push(address, origin / "b.dat", out)
    assert gone.type == "err"
    assert not (out / "b.dat").exists()
    assert "2 announced file(s) restored" in server.log()
    assert [p.suffix for p in state.iterdir() if p.suffix == ".sqlite"] == [".sqlite"]


def test_restored_files_stay_confined_to_the_current_config(tmp_path, dirs, server_process):
    """A file announced under an old config is not served once its directory is no longer watched."""
    origin, out = dirs
    other = tmp_path / "other"
    other.mkdir()
    port = free_port()
    address = f"127.0.0.1:{port}"
    config = write_ini(tmp_path / "server.ini", {"chain": server_section(origin, port)})
    state = tmp_path / "state"
    server = server_process(config, "--disable-backlog", "--state-directory", str(state))
    announce(address, origin, ["a.dat"])
    server.kill()
    write_ini(config, {"chain": server_section(other, port)})  # same config file, now watching another directory
    server.start()
    reply = push(address, origin / "a.dat", out)
    assert reply.type == "err" and "outside the served directories" in reply.data
    assert not any(out.iterdir())


def test_unusable_state_directory_exits_2(tmp_path, dirs):
    import subprocess

    from support.processes import TROLLMOVES

    origin, _ = dirs
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    config = write_ini(tmp_path / "server.ini", {"chain": server_section(origin, free_port())})
    proc = subprocess.run([TROLLMOVES, "server", "-p", str(free_port()), "--bind", "127.0.0.1", "--state-directory",
                           str(blocker / "sub"), str(config)], check=False, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert "cannot keep state in" in proc.stderr and proc.stderr.count("\n") == 1
