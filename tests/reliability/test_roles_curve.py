"""Our client talking CURVE to our server: the request sockets (``server_secret_key_file`` on the
server chain, ``client_secret_key_file`` + ``server_public_key_file`` on the client chain) and the
publisher (posttroll's ``secure_zmq`` backend, ``publisher_public_key_file`` on the client chain)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from support.bus import BusRecorder, free_port, wait_until
from support.client import client_section
from support.files import write_file
from support.ini import write_ini
from support.processes import ClientProcess
from support.server import TOPIC, server_section
from trollmoves_roles.bus.posttroll import Subscription
from trollmoves_roles.bus.security import CurveClient, create_keypair

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def keys(tmp_path: Path) -> tuple[dict[str, tuple[Path, Path]], Path]:
    """Key pairs for a server, an admitted client and an intruder; the server admits ``client`` only."""
    keydir, admitted = tmp_path / "keys", tmp_path / "admitted"
    admitted.mkdir()
    pairs = {name: create_keypair(keydir, name) for name in ("server", "client", "intruder")}
    (admitted / "client.key").write_bytes(pairs["client"][0].read_bytes())
    return pairs, admitted


def curve_server(tmp_path, dirs, server_process, keys, *, secure_publisher: bool):
    pairs, admitted = keys
    origin, _ = dirs
    request_port = free_port()
    config = write_ini(tmp_path / "server.ini", {"chain": server_section(
        origin, request_port, server_secret_key_file=pairs["server"][1], clients_public_keys_directory=admitted)})
    env = {}
    if secure_publisher:
        env = {"POSTTROLL_BACKEND": "secure_zmq", "POSTTROLL_SERVER_SECRET_KEY_FILE": str(pairs["server"][1]),
               "POSTTROLL_CLIENTS_PUBLIC_KEYS_DIRECTORY": str(admitted)}
    return server_process(config, "--disable-backlog", env=env)


def curve_client(tmp_path: Path, server, out: Path, secret_key_file: Path, server_public_key_file: Path,
                 **extra: object) -> tuple[ClientProcess, int]:
    """``trollmoves client`` of ``server`` with a CURVE key pair; the client and its publish port."""
    port = free_port()
    config = write_ini(tmp_path / "client.ini", {"test": client_section(
        f"127.0.0.1:{server.pub_port}", f"{out}/", port, client_secret_key_file=secret_key_file,
        server_public_key_file=server_public_key_file, **extra)})
    return ClientProcess(config, tmp_path / "client.log"), port


def test_client_moves_files_over_curve_requests_and_a_secure_publisher(tmp_path, dirs, server_process, keys):
    pairs, _ = keys
    origin, out = dirs
    server = curve_server(tmp_path, dirs, server_process, keys, secure_publisher=True)
    client, port = curve_client(tmp_path, server, out, pairs["client"][1], pairs["server"][0],
                                publisher_public_key_file=pairs["server"][0])
    intruder = Subscription([f"tcp://127.0.0.1:{server.pub_port}"], [TOPIC],
                            curve=CurveClient.load(pairs["intruder"][1], pairs["server"][0]))
    results = BusRecorder([f"tcp://127.0.0.1:{port}"], [TOPIC])
    try:
        def delivered_probe() -> bool:
            name = f"probe{time.monotonic_ns()}.dat"
            write_file(origin, name, b"probe")
            return wait_until((out / name).exists, timeout=2.0)

        assert wait_until(delivered_probe, timeout=40, interval=0), client.log()[-3000:] + server.log()[-2000:]
        write_file(origin, "secret.dat", b"sent over CURVE\n")
        assert wait_until((out / "secret.dat").exists, timeout=20), client.log()[-3000:]
        assert results.wait_for(lambda m: m.type == "file" and m.data.get("uid") == "secret.dat", timeout=10)
        assert intruder.recv(0.5) is None  # an unknown key gets none of the announcements
    finally:
        intruder.close()
        results.close()
        client.stop()
        assert client.proc.returncode == 0
    assert (out / "secret.dat").read_bytes() == b"sent over CURVE\n"
    assert pairs["client"][1].read_text() not in client.log()


def test_client_with_an_unknown_key_transfers_nothing_and_logs_why(tmp_path, dirs, server_process, keys):
    pairs, _ = keys
    origin, out = dirs
    server = curve_server(tmp_path, dirs, server_process, keys, secure_publisher=False)
    client, port = curve_client(tmp_path, server, out, pairs["intruder"][1], pairs["server"][0],
                                transfer_req_timeout=0.5, request_attempts=1, give_up_after=0, reconcile_interval=0)
    failures = BusRecorder([f"tcp://127.0.0.1:{port}"], ["/trollmoves/client/failed"])
    try:
        def refused() -> bool:
            write_file(origin, f"f{time.monotonic_ns()}.dat", b"must not leave the server")
            return wait_until(lambda: "abandoning it (CURVE:" in client.log(), timeout=3.0)

        assert wait_until(refused, timeout=40, interval=0), client.log()[-3000:]
        assert failures.wait_for(lambda m: m.type == "err", timeout=20)
        assert wait_until(lambda: "unknown CURVE client key" in server.log(), timeout=10), server.log()[-2000:]
        assert client.alive()
    finally:
        failures.close()
        client.stop()
        assert client.proc.returncode == 0
    assert list(out.iterdir()) == []
    assert "giving up" in client.log()
    assert pairs["intruder"][1].read_text() not in client.log()
