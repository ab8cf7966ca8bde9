"""Our server (``trollmoves server``) against the upstream 0.19 client (``move_it_client.py``)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from posttroll.message import Message
from support.bus import BusRecorder, free_port, wait_until
from support.files import write_file
from support.ini import write_ini
from support.processes import TrollmovesProcess
from support.reqrep import answers_ping
from support.upstream import require_upstream, upstream_process  # noqa: F401 - fixture

pytestmark = [pytest.mark.interop, pytest.mark.timeout(180)]

TOPIC = "/test/data"


class OurServer(TrollmovesProcess):
    """``trollmoves server`` in a subprocess, one chain watching ``inbox`` for ``{name}.dat``."""

    def __init__(self, tmp_path: Path, **extra: object) -> None:
        self.inbox = tmp_path / "in"
        self.inbox.mkdir()
        self.port, self.request_port = free_port(), free_port()
        self.request_address = f"127.0.0.1:{self.request_port}"
        config = write_ini(tmp_path / "server.ini", {"chain": {
            "origin": f"{self.inbox}/{{name}}.dat", "topic": TOPIC, "request_port": self.request_port,
            "request_address": "127.0.0.1", "info": "sensor=foo", **extra}})
        super().__init__(["server", "-p", self.port, "--bind", "127.0.0.1", "--disable-backlog", config],
                         tmp_path / "server.log")
        self.wait_ready(lambda: answers_ping(self.request_address, TOPIC))


@pytest.fixture
def our_server(tmp_path):
    require_upstream()
    servers: list[OurServer] = []

    def start(**extra: object) -> OurServer:
        servers.append(OurServer(tmp_path, **extra))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


def start_upstream_client(upstream_process, tmp_path: Path, provider: str) -> tuple[BusRecorder, Path]:  # noqa: F811
    out = tmp_path / "out"
    publish_port = free_port()
    config = write_ini(tmp_path / "client.ini", {"test": {
        "providers": provider, "destination": f"file://{out}/", "topic": TOPIC, "publish_port": publish_port,
        "nameservers": "false"}})
    upstream_process("move_it_client.py", [str(config)])
    return BusRecorder([f"tcp://127.0.0.1:{publish_port}"], [TOPIC]), out


def client_results(recorder: BusRecorder) -> list[Message]:
    return [m for m in list(recorder.messages) if m.type == "file" and "origin" in m.data]


def prime(server: OurServer, recorder: BusRecorder, out: Path) -> None:
    """Send probe files until one makes the whole trip (the client's SUB and our recorder joined)."""
    for attempt in range(10):
        name = f"probe{attempt}.dat"
        write_file(server.inbox, name, b"probe")
        if wait_until(lambda n=name: any(m.data.get("uid") == n for m in client_results(recorder)), timeout=5):
            return
    pytest.fail("the upstream client never completed a probe transfer:\n" + server.log())


def test_upstream_client_moves_files_from_our_server(our_server, upstream_process, tmp_path):  # noqa: F811
    server = our_server()
    recorder, out = start_upstream_client(upstream_process, tmp_path, f"127.0.0.1:{server.port}")
    try:
        prime(server, recorder, out)
        contents = {f"f{i}.dat": os.urandom(1000 * (i + 1)) for i in range(8)}
        for name, content in contents.items():
            write_file(server.inbox, name, content)
        names = set(contents)
        assert wait_until(lambda: names <= {m.data["uid"] for m in client_results(recorder)}, timeout=60), \
            server.log()
    finally:
        recorder.close()
    for name, content in contents.items():
        assert (out / name).read_bytes() == content
        result = next(m for m in client_results(recorder) if m.data["uid"] == name)
        assert result.data["uri"] == str(out / name)
        assert result.data["origin"] == server.request_address
        assert result.data["sensor"] == "foo" and result.data["name"] == name[:-4]
        types = [m.type for m in recorder.messages if m.data.get("uid") == name]
        assert types == ["push", "ack", "file"]
    assert server.stop() == 0
    assert "push refused" not in server.log() and "request rejected" not in server.log()


def test_upstream_client_acks_let_our_server_delete(our_server, upstream_process, tmp_path):  # noqa: F811
    server = our_server(delete="true", remove_delay=0)
    recorder, out = start_upstream_client(upstream_process, tmp_path, f"127.0.0.1:{server.port}")
    try:
        prime(server, recorder, out)
        write_file(server.inbox, "gone.dat", b"moved then deleted")
        assert wait_until((out / "gone.dat").exists, timeout=30), server.log()
        assert wait_until(lambda: not (server.inbox / "gone.dat").exists(), timeout=30), server.log()
    finally:
        recorder.close()
    assert (out / "gone.dat").read_bytes() == b"moved then deleted"


def test_upstream_clients_backup_targets_fail_over_on_our_server(our_server, upstream_process, tmp_path):  # noqa: F811
    # upstream's own server fails over for scp only; ours does for ftp too. 127.0.0.2 refuses (the
    # FTP server listens on 127.0.0.1), so the file must land through the backup host.
    ftp_testing = pytest.importorskip("trollmoves_ftp.testing")
    ftp = ftp_testing.start_server(tmp_path / "ftp-root")
    (ftp.root / "up").mkdir()
    server = our_server(connection_parameters__retry_delay="0.01")
    publish_port = free_port()
    config = write_ini(tmp_path / "client.ini", {"test": {
        "providers": f"127.0.0.1:{server.port}", "destination": f"ftp://127.0.0.2:{ftp.port}/up/",
        "login": f"{ftp_testing.USER}:{ftp_testing.PASSWORD}", "backup_targets": "127.0.0.3 127.0.0.1",
        "create_target_directory": "False", "topic": TOPIC, "publish_port": publish_port, "nameservers": "false"}})
    upstream_process("move_it_client.py", [str(config)])
    recorder = BusRecorder([f"tcp://127.0.0.1:{publish_port}"], [TOPIC])
    try:
        for attempt in range(10):
            write_file(server.inbox, f"f{attempt}.dat", b"payload")
            if wait_until(lambda n=f"f{attempt}.dat": any(m.data.get("uid") == n for m in client_results(recorder)),
                          timeout=5):
                break
        else:
            pytest.fail("the upstream client never got a file:\n" + server.log())
    finally:
        recorder.close()
        ftp.stop()
    delivered = [m.data["uid"] for m in client_results(recorder)]
    assert all((ftp.root / "up" / name).read_bytes() == b"payload" for name in delivered)
    assert "trying the backup host 127.0.0.3" in server.log() and "trying the backup host 127.0.0.1" in server.log()
