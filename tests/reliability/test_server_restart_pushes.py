"""A server killed with SIGKILL and restarted with ``--state-directory`` answers a client's repeat
of a push it finished before with "done" (the same reply), without pushing again."""

from __future__ import annotations

import pytest
from posttroll.message import Message
from support.bus import free_port, wait_until
from support.files import write_file
from support.ini import write_ini
from support.reqrep import request
from support.server import TOPIC, server_section
from trollmoves_roles.state.finished import FinishedPushes
from trollmoves_roles.state.journal import Journal

pytestmark = pytest.mark.timeout(120)


def push(address: str, data: dict, destination: str) -> Message:
    reply = request(address, Message(TOPIC, "push", {**data, "destination": destination}))
    assert reply is not None
    return reply


def test_a_repeat_after_kill_9_is_answered_done_without_a_second_push(tmp_path, dirs, server_process):
    origin, out = dirs
    port = free_port()
    address = f"127.0.0.1:{port}"
    config = write_ini(tmp_path / "server.ini", {"chain": server_section(origin, port)})
    server = server_process(config, "--disable-backlog", "--state-directory", str(tmp_path / "state"))
    write_file(origin, "a.dat", b"content of a\n")
    data = {"uri": str(origin / "a.dat"), "uid": "a.dat"}
    assert wait_until(lambda: push(address, data, f"file://{out}/probe/").type == "file", timeout=20)

    first = push(address, data, f"file://{out}/")
    assert first.type == "file", first.data
    (out / "a.dat").unlink()  # what the client does with it is its business: the server must not push again
    assert server.kill() == -9
    server.start()

    again = push(address, data, f"file://{out}/")
    assert (again.type, again.data) == (first.type, first.data)
    assert not (out / "a.dat").exists()
    assert "already done" in server.log()
    # the control: a push not done before is done
    other = push(address, data, f"file://{out}/other/")
    assert other.type == "file" and (out / "other" / "a.dat").read_bytes() == b"content of a\n"


def test_a_file_replaced_under_its_name_is_pushed_again(tmp_path, dirs, server_process):
    origin, out = dirs
    port = free_port()
    address = f"127.0.0.1:{port}"
    config = write_ini(tmp_path / "server.ini", {"chain": server_section(origin, port)})
    server_process(config, "--disable-backlog", "--state-directory", str(tmp_path / "state"))
    data = {"uri": str(origin / "a.dat"), "uid": "a.dat"}
    write_file(origin, "a.dat", b"first\n")
    assert wait_until(lambda: push(address, data, f"file://{out}/").type == "file", timeout=20)
    write_file(origin, "a.dat", b"second version\n")  # a new file (new inode), announced again
    assert wait_until(lambda: push(address, data, f"file://{out}/").type == "file"
                      and (out / "a.dat").read_bytes() == b"second version\n", timeout=20)


def test_finished_pushes_outlive_a_restart_within_their_window_only(tmp_path):
    journal = Journal(tmp_path / "j.sqlite", table="pushed")
    first = FinishedPushes(300.0, 100)
    assert first.attach(journal) == 0
    first.add(1)
    first.add(2, "backup.example:2121")
    journal.close()

    journal = Journal(tmp_path / "j.sqlite", table="pushed")
    second = FinishedPushes(300.0, 100)
    assert second.attach(journal) == 2
    assert second.get(1) == (True, None)
    assert second.get(2) == (True, "backup.example:2121")
    assert second.get(3) == (False, None)

    short = FinishedPushes(0.0, 100)  # a window already past: nothing restored, the records dropped
    assert short.attach(journal) == 0
    assert journal.count() == 0
    journal.close()
