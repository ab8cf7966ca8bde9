"""``backup_targets``: a push whose destination host cannot be reached goes to the backup hosts in
order, against real servers (pyftpdlib, OpenSSH sshd); the reply names the host that got it.

127.0.0.2 is the unreachable primary: the test servers listen on 127.0.0.1 only, so a
connection to the same port on 127.0.0.2 is refused.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from posttroll.message import Message
from support.bus import free_port
from support.files import put_file
from support.reqrep import reply as request
from support.server import TOPIC, chain

NAME = "NOAA-19_202401020304.dat"
FAST = {"connection_parameters__retry_delay": "0.01"}


@pytest.fixture
def ftp(tmp_path: Path) -> Iterator:
    testing = pytest.importorskip("trollmoves_ftp.testing")
    server = testing.start_server(tmp_path / "ftp-root")
    yield server, testing
    server.stop()


@pytest.fixture
def ftp2(tmp_path: Path) -> Iterator:
    testing = pytest.importorskip("trollmoves_ftp.testing")
    server = testing.start_server(tmp_path / "ftp-root-2")
    yield server
    server.stop()


def announce(running, origin: Path, data: bytes = b"payload\n") -> Message:
    put_file(origin / NAME, data)
    return running.announced(NAME)


def push(running, data: dict, destination: str, backups: object) -> Message:
    return request(running.address(), Message(TOPIC, "push", {**data, "destination": destination,
                                                              "backup_targets": backups}))


def test_ftp_push_fails_over_to_the_first_reachable_backup(serve, dirs, ftp):
    origin, _ = dirs
    server, testing = ftp
    running = serve(chain(origin, free_port(), **FAST))
    message = announce(running, origin)
    (server.root / "up").mkdir()
    primary = f"ftp://{testing.USER}:{testing.PASSWORD}@127.0.0.2:{server.port}/up/"
    reply = push(running, message.data, primary, ["127.0.0.3", "127.0.0.1"])
    assert reply.type == "file", reply.data
    assert reply.data["destination"] == f"ftp://127.0.0.1:{server.port}/up/"
    assert (server.root / "up" / NAME).read_bytes() == b"payload\n"
    assert testing.PASSWORD not in reply.encode()

    # a repeat is answered as done, with the same destination, without a second transfer
    again = push(running, message.data, primary, ["127.0.0.3", "127.0.0.1"])
    assert (again.type, again.data["destination"]) == ("file", reply.data["destination"])
    assert running.server.transfers.transfers == 1


def test_a_backup_with_its_own_port(serve, dirs, ftp2):
    origin, _ = dirs
    testing = pytest.importorskip("trollmoves_ftp.testing")
    running = serve(chain(origin, free_port(), **FAST))
    message = announce(running, origin)
    # the primary is down: nothing listens on a port free_port() handed out (a stopped server's port
    # is the kernel's again, and a passive data socket or a connect may take it meanwhile)
    (ftp2.root / "up").mkdir()
    primary = f"ftp://{testing.USER}:{testing.PASSWORD}@127.0.0.1:{free_port()}/up/"
    reply = push(running, message.data, primary, f"127.0.0.1:{ftp2.port}")  # upstream's string form too
    assert reply.type == "file", reply.data
    assert reply.data["destination"] == f"ftp://127.0.0.1:{ftp2.port}/up/"
    assert (ftp2.root / "up" / NAME).read_bytes() == b"payload\n"


def test_no_failover_when_the_host_is_reached_and_refuses(serve, dirs, ftp, ftp2):
    origin, _ = dirs
    server, testing = ftp
    running = serve(chain(origin, free_port(), **FAST))
    message = announce(running, origin)
    # the reader may not write: a permanent refusal, which a backup host would not change
    primary = f"ftp://{testing.READER}:{testing.PASSWORD}@127.0.0.1:{server.port}/"
    reply = push(running, message.data, primary, [f"127.0.0.1:{ftp2.port}"])
    assert reply.type == "err" and "550" in reply.data, reply.data
    assert ftp2.counters.logins == 0 and ftp2.counters.failed_logins == 0


def test_every_host_unreachable_is_an_error_naming_the_last(serve, dirs, ftp):
    origin, _ = dirs
    server, testing = ftp
    running = serve(chain(origin, free_port(), **FAST))
    message = announce(running, origin)
    primary = f"ftp://{testing.USER}:{testing.PASSWORD}@127.0.0.2:{server.port}/up/"
    reply = push(running, message.data, primary, ["127.0.0.3"])
    assert reply.type == "err" and "127.0.0.3" in reply.data, reply.data
    assert testing.PASSWORD not in reply.encode()
    assert running.server.metrics.failed.value(chain="chain") == 1


@pytest.mark.parametrize("scheme", ["sftp", "scp"])
def test_ssh_push_fails_over(serve, dirs, tmp_path_factory, scheme):
    testing = pytest.importorskip("trollmoves_ssh.testing")
    if not testing.sshd_available():
        pytest.skip("OpenSSH sshd is not installed")
    sshd = testing.start_sshd(tmp_path_factory.mktemp("sshd"))
    try:
        origin, out = dirs
        params = {f"connection_parameters__{k}": v for k, v in sshd.mover_params(retry_delay="0.01").items()}
        running = serve(chain(origin, free_port(), **params))
        message = announce(running, origin)
        primary = f"{scheme}://{sshd.user}@127.0.0.2:{sshd.port}{out}/"
        reply = push(running, message.data, primary, ["127.0.0.1"])
        assert reply.type == "file", reply.data
        assert reply.data["destination"] == f"{scheme}://127.0.0.1:{sshd.port}{out}/"
        assert (out / NAME).read_bytes() == b"payload\n"
    finally:
        sshd.stop()


def test_backup_targets_do_not_apply_to_local_files(serve, dirs):
    origin, out = dirs
    running = serve(chain(origin, free_port()))
    message = announce(running, origin)
    reply = push(running, message.data, f"file://{out}/", ["otherhost"])
    assert reply.type == "file" and reply.data["destination"] == f"file://{out}/"
    assert (out / NAME).exists()


@pytest.mark.parametrize("backups", [[1, 2], ["a/b"], ["user@host"], ["host:99999"], {"h": 1}])
def test_bad_backup_targets_are_refused_and_the_server_keeps_serving(serve, dirs, backups):
    origin, out = dirs
    running = serve(chain(origin, free_port()))
    message = announce(running, origin)
    reply = push(running, message.data, f"file://{out}/", backups)
    assert reply.type == "err" and "backup_targets" in reply.data, reply.data
    assert not (out / NAME).exists()
    assert request(running.address(), Message(TOPIC, "ping")).type == "pong"


def test_a_primary_name_that_does_not_resolve_fails_over(serve, dirs, ftp):
    # glibc refuses a name starting with '-' at once, without asking DNS: a resolution failure without waiting
    origin, _ = dirs
    server, testing = ftp
    running = serve(chain(origin, free_port(), **FAST))
    message = announce(running, origin)
    (server.root / "up").mkdir()
    reply = push(running, message.data, f"ftp://{testing.USER}:{testing.PASSWORD}@-unresolvable-:{server.port}/up/",
                 ["127.0.0.1"])
    assert reply.type == "file", reply.data
    assert reply.data["destination"] == f"ftp://127.0.0.1:{server.port}/up/"
    assert (server.root / "up" / NAME).exists()
