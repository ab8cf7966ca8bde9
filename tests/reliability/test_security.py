"""Authenticated request sockets: the ``allowed_clients`` allow-list and CURVE keys, ``trollmoves
keys``, ``trollmoves req`` with client keys, and a CURVE publisher through posttroll's secure backend.

Loopback has the whole 127/8, so a client connecting from 127.0.0.2 is another host to the server.
"""

from __future__ import annotations

import os
import stat
import subprocess
import time

import pytest
import zmq
from posttroll.message import Message
from support.bus import free_port, wait_until
from support.files import write_file
from support.ini import write_ini
from support.processes import TROLLMOVES
from support.reqrep import ping, request
from support.server import TOPIC, server_section
from trollmoves_roles.bus.security import create_keypair, load_secret_key

pytestmark = pytest.mark.timeout(120)

REFUSED_WAIT = 2.0
"""How long a refused client waits for the reply that must never come."""


@pytest.fixture
def keys(tmp_path):
    """Key pairs for a server, an admitted client and an intruder; the server admits ``client`` only."""
    keydir, admitted = tmp_path / "keys", tmp_path / "admitted"
    admitted.mkdir()
    pairs = {name: create_keypair(keydir, name) for name in ("server", "client", "intruder")}
    (admitted / "client.key").write_bytes(pairs["client"][0].read_bytes())
    return pairs, admitted


def curve(pairs, name: str) -> tuple[bytes, bytes, bytes]:
    public, secret = load_secret_key(pairs[name][1])
    server_public, _ = load_secret_key(pairs["server"][1])
    return public, secret, server_public


def push(address, origin, out, **kwargs):
    return request(address, Message(TOPIC, "push", {"uri": str(origin / "a.dat"), "uid": "a.dat",
                                                   "destination": f"file://{out}/"}), **kwargs)


@pytest.mark.parametrize(("allowed", "good", "bad"), [("127.0.0.1", "127.0.0.1", "127.0.0.2"),
                                                      ("127.0.0.2/32, 10.0.0.0/8", "127.0.0.2", "127.0.0.1")])
def test_allow_list_admits_listed_peers_only(dirs, inproc_server, caplog, allowed, good, bad):
    origin, out = dirs
    port = free_port()
    server = inproc_server({"chain": server_section(origin, port, allowed_clients=allowed)})
    address = f"127.0.0.1:{port}"
    write_file(origin, "a.dat", b"secret data\n")
    assert wait_until(lambda: len(server.announced) == 1, timeout=10)

    assert push(address, origin, out, timeout=REFUSED_WAIT, source=bad) is None
    assert ping(address, timeout=REFUSED_WAIT, source=bad) is None
    assert list(out.iterdir()) == []
    assert wait_until(lambda: f"refused connection from {bad}: address not in allowed_clients" in caplog.text, 5)
    assert server.metrics.refused.value(chain="chain", reason="address") >= 1

    reply = ping(address, source=good)
    assert reply is not None and reply.type == "pong"
    reply = push(address, origin, out, source=good)
    assert reply.type == "file", reply.data
    assert (out / "a.dat").read_bytes() == b"secret data\n"


def test_curve_admits_known_keys_only(dirs, inproc_server, keys, caplog):
    pairs, admitted = keys
    origin, out = dirs
    port = free_port()
    server = inproc_server({"chain": server_section(origin, port, server_secret_key_file=pairs["server"][1],
                                                    clients_public_keys_directory=admitted)})
    address = f"127.0.0.1:{port}"
    write_file(origin, "a.dat", b"secret data\n")
    assert wait_until(lambda: len(server.announced) == 1, timeout=10)

    assert push(address, origin, out, timeout=REFUSED_WAIT, curve=curve(pairs, "intruder")) is None
    assert ping(address, timeout=REFUSED_WAIT) is None  # no CURVE at all
    assert list(out.iterdir()) == []
    assert wait_until(lambda: "unknown CURVE client key" in caplog.text, 5)

    reply = push(address, origin, out, curve=curve(pairs, "client"))
    assert reply is not None and reply.type == "file", reply
    assert (out / "a.dat").read_bytes() == b"secret data\n"

    # a key added to the directory is admitted from then on, without a restart
    time.sleep(0.01)  # a distinct directory mtime
    (admitted / "intruder.key").write_bytes(pairs["intruder"][0].read_bytes())
    reply = ping(address, curve=curve(pairs, "intruder"))
    assert reply is not None and reply.type == "pong"
    secrets = [load_secret_key(pairs[n][1])[1].decode() for n in pairs]
    assert not any(secret in caplog.text for secret in secrets)


def test_curve_and_allow_list_together(dirs, inproc_server, keys):
    pairs, admitted = keys
    origin, _ = dirs
    port = free_port()
    inproc_server({"chain": server_section(origin, port, allowed_clients="127.0.0.2",
                                           server_secret_key_file=pairs["server"][1],
                                           clients_public_keys_directory=admitted)})
    address = f"127.0.0.1:{port}"
    assert ping(address, timeout=REFUSED_WAIT, curve=curve(pairs, "client"), source="127.0.0.1") is None
    reply = ping(address, curve=curve(pairs, "client"), source="127.0.0.2")
    assert reply is not None and reply.type == "pong"


def test_keys_command_and_req_with_client_keys(tmp_path, dirs, server_process):
    keydir = tmp_path / "keys"
    made = subprocess.run([TROLLMOVES, "keys", str(keydir), "server"],
                          check=False, capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    subprocess.run([TROLLMOVES, "keys", str(keydir), "client"], check=True, capture_output=True, timeout=60)
    subprocess.run([TROLLMOVES, "keys", str(keydir), "intruder"], check=True, capture_output=True, timeout=60)
    for name in ("server", "client"):
        assert stat.S_IMODE((keydir / f"{name}.key_secret").stat().st_mode) == 0o600
        assert stat.S_IMODE((keydir / f"{name}.key").stat().st_mode) == 0o644
    secret_text = load_secret_key(keydir / "server.key_secret")[1].decode()
    assert secret_text not in made.stdout + made.stderr
    again = subprocess.run([TROLLMOVES, "keys", str(keydir), "server"],
                           check=False, capture_output=True, text=True, timeout=60)
    assert again.returncode == 2 and "already exists" in again.stderr

    origin, _ = dirs
    admitted = tmp_path / "admitted"
    admitted.mkdir()
    (admitted / "client.key").write_bytes((keydir / "client.key").read_bytes())
    port = free_port()
    config = write_ini(tmp_path / "server.ini", {"chain": server_section(
        origin, port, server_secret_key_file=keydir / "server.key_secret", clients_public_keys_directory=admitted)})
    server = server_process(config, "-v")  # debug logging: still no secret in the log

    def req(name: str) -> subprocess.CompletedProcess:
        return subprocess.run([TROLLMOVES, "req", f"127.0.0.1:{port}", "ping", "--topic", TOPIC, "--timeout", "2",
                               "--retries", "0", "--curve-secret-key", str(keydir / f"{name}.key_secret"),
                               "--curve-server-key", str(keydir / "server.key")],
                              check=False, capture_output=True, text=True, timeout=60)

    ok = req("client")
    assert ok.returncode == 0, ok.stderr
    assert '"station": "st1"' in ok.stdout
    refused = req("intruder")
    assert refused.returncode == 1 and "no reply" in refused.stderr
    half = subprocess.run([TROLLMOVES, "req", f"127.0.0.1:{port}", "ping", "--curve-secret-key",
                           str(keydir / "client.key_secret")], check=False, capture_output=True, text=True, timeout=60)
    assert half.returncode == 2 and "go together" in half.stderr
    log = server.log()
    for name in ("server", "client", "intruder"):
        assert load_secret_key(keydir / f"{name}.key_secret")[1].decode() not in log
    assert "unknown CURVE client key" in log


@pytest.mark.parametrize(("values", "key", "text"), [
    ({"allowed_clients": "10.0.0.0/8, bad_host!"}, "allowed_clients", "not an IP address"),  # no DNS query
    ({"server_secret_key_file": "/nonexistent/x.key_secret", "clients_public_keys_directory": "/tmp"},
     "server_secret_key_file", "cannot read the key file"),
    ({"server_secret_key_file": "PUBLIC", "clients_public_keys_directory": "/tmp"}, "server_secret_key_file",
     "holds no secret key"),
    ({"server_secret_key_file": "SECRET"}, "server_secret_key_file", "needs clients_public_keys_directory"),
    ({"server_secret_key_file": "SECRET", "clients_public_keys_directory": "/nonexistent"},
     "clients_public_keys_directory", "no such directory"),
])
def test_bad_security_config_exits_2_naming_the_key(tmp_path, dirs, keys, values, key, text):
    pairs, _ = keys
    origin, _ = dirs
    values = {k: str(v).replace("PUBLIC", str(pairs["server"][0])).replace("SECRET", str(pairs["server"][1]))
              for k, v in values.items()}
    config = write_ini(tmp_path / "server.ini", {"chain": server_section(origin, free_port(), **values)})
    proc = subprocess.run([TROLLMOVES, "server", "-p", str(free_port()), "--bind", "127.0.0.1", str(config)],
                          check=False, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert f"[chain] {key}: " in proc.stderr and text in proc.stderr, proc.stderr
    assert load_secret_key(pairs["server"][1])[1].decode() not in proc.stderr


def test_secret_key_readable_by_others_is_warned_about(tmp_path, keys, caplog):
    pairs, _ = keys
    os.chmod(pairs["server"][1], 0o644)
    load_secret_key(pairs["server"][1])
    assert "readable by others" in caplog.text


def test_curve_publisher_through_posttroll_secure_backend(tmp_path, dirs, server_process, keys):
    """posttroll's ``secure_zmq`` backend makes the server's publisher a CURVE server: an admitted
    subscriber gets the announcements, one with an unknown key gets nothing."""
    pairs, admitted = keys
    origin, _ = dirs
    config = write_ini(tmp_path / "server.ini", {"chain": server_section(origin, free_port())})
    env = {"POSTTROLL_BACKEND": "secure_zmq", "POSTTROLL_SERVER_SECRET_KEY_FILE": str(pairs["server"][1]),
           "POSTTROLL_CLIENTS_PUBLIC_KEYS_DIRECTORY": str(admitted)}
    server = server_process(config, "--disable-backlog", env=env)

    def subscriber(name: str) -> zmq.Socket:
        sock = zmq.Context.instance().socket(zmq.SUB)
        sock.setsockopt(zmq.LINGER, 0)
        sock.curve_publickey, sock.curve_secretkey, sock.curve_serverkey = curve(pairs, name)
        sock.setsockopt(zmq.SUBSCRIBE, b"pytroll:/")
        sock.connect(f"tcp://127.0.0.1:{server.pub_port}")
        return sock

    def received(sock: zmq.Socket) -> list[Message]:
        found = []
        while sock.poll(100):
            found.append(Message.decode(sock.recv()))
        return found

    good, bad = subscriber("client"), subscriber("intruder")
    try:
        got: list[Message] = []

        def announced() -> bool:
            write_file(origin, f"f{len(got)}_{time.monotonic_ns()}.dat", b"x")
            got.extend(received(good))
            return any(m.type == "file" for m in got)

        assert wait_until(announced, timeout=20, interval=0.2), server.log()
        assert received(bad) == []
    finally:
        good.close(0)
        bad.close(0)
