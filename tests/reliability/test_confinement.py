"""Confined requests: a push naming anything but an announced file still inside the chain's
directories gets an ``err`` reply and a log line, and nothing is transferred."""

from __future__ import annotations

import logging
import os

import pytest
from posttroll.message import Message
from support.bus import free_port, wait_until
from support.files import write_file
from support.reqrep import request
from support.server import TOPIC, server_section

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def setup(tmp_path, dirs, inproc_server):
    origin, out = dirs
    port = free_port()
    server = inproc_server({"chain": server_section(origin, port)})
    address = f"127.0.0.1:{port}"
    secret = tmp_path / "secret.dat"  # outside the watched directory, matching the pattern's name
    secret.write_bytes(b"not for you\n")
    good = write_file(origin, "good.dat", b"announced\n")
    assert wait_until(lambda: server.announced.get(str(good)) is not None, timeout=10)
    return server, address, origin, out, secret


def refused_cases(origin, secret):
    escape = origin / "escape.dat"
    os.symlink(secret, escape)  # a link inside the directory pointing outside it
    unannounced = origin / "later.dat"
    unannounced.write_bytes(b"never announced\n")  # hidden from the watcher? no: written after we read the record
    return {
        "dot-dot": f"{origin}/../secret.dat",
        "dot-dot-uri": f"file://{origin}/../secret.dat",
        "absolute elsewhere": str(secret),
        "etc": "/etc/passwd",
        "relative": "secret.dat",
        "symlink escape": str(escape),
        "unannounced": "UNANNOUNCED",
        "empty": "",
        "not a string": 42,
    }


def test_each_refused_request_gets_err_a_log_line_and_no_transfer(setup, caplog):
    server, address, origin, out, secret = setup
    # a file the watcher never saw: written under a name the pattern ignores, then checked unannounced
    hidden = origin / "unannounced.dat.tmp"
    hidden.write_bytes(b"never announced\n")
    cases = refused_cases(origin, secret)
    cases["unannounced"] = str(hidden)
    # the symlink and later.dat appear in the watched directory: wait until the watcher has seen them
    # (the link is announced by path, but it resolves outside: access must still be refused)
    wait_until(lambda: server.announced.get(str(origin / "escape.dat")) is not None, timeout=5)
    for name, uri in cases.items():
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="trollmoves_roles.server.requests"):
            reply = request(address, Message(TOPIC, "push", {"uri": uri, "uid": "x.dat",
                                                             "destination": f"file://{out}/"}))
        assert reply is not None, name
        assert reply.type == "err", (name, reply.data)
        assert any(r.levelno >= logging.WARNING for r in caplog.records), f"{name}: no log line"
        assert list(out.iterdir()) == [], f"{name}: something was transferred"
    assert server.transfers.transfers == 0
    assert server.metrics.refused.value(chain="chain", reason="access") >= 6
    # and a legitimate request still works
    reply = request(address, Message(TOPIC, "push", {"uri": str(origin / "good.dat"), "uid": "good.dat",
                                                     "destination": f"file://{out}/"}))
    assert reply.type == "file", reply.data
    assert [p.name for p in out.iterdir()] == ["good.dat"]


def test_refused_member_of_a_dataset_refuses_the_whole_push(setup):
    _, address, origin, out, _ = setup
    reply = request(address, Message(TOPIC, "push", {"dataset": [
        {"uri": str(origin / "good.dat"), "uid": "good.dat"},
        {"uri": f"{origin}/../secret.dat", "uid": "secret.dat"}], "destination": f"file://{out}/"}))
    assert reply.type == "err"
    assert list(out.iterdir()) == []


def test_file_deleted_after_announcement_is_refused(setup):
    _, address, origin, out, _ = setup
    os.remove(origin / "good.dat")
    reply = request(address, Message(TOPIC, "push", {"uri": str(origin / "good.dat"), "uid": "good.dat",
                                                     "destination": f"file://{out}/"}))
    # refused either way: by the watcher having forgotten the removed file, or by the open failing
    assert reply.type == "err" and ("was not announced" in reply.data or "no such file" in reply.data), reply
    assert list(out.iterdir()) == []


def test_directory_swapped_for_a_symlink_is_refused(setup, tmp_path):
    """The watched directory replaced by a link to elsewhere after the announcement."""
    _, address, origin, out, _ = setup
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "good.dat").write_bytes(b"swapped\n")
    os.rename(origin, tmp_path / "moved")
    os.symlink(elsewhere, origin)
    reply = request(address, Message(TOPIC, "push", {"uri": str(origin / "good.dat"), "uid": "good.dat",
                                                     "destination": f"file://{out}/"}))
    assert reply.type == "err", reply.data
    assert list(out.iterdir()) == []
