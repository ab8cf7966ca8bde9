"""CURVE on the subscriptions of the dispatcher, downloader and mirror (``client_secret_key_file`` +
``publisher_public_key_file``, the client's keys), and on the mirror's requests and request sockets
(``server_public_key_file``; ``server_secret_key_file``, ``clients_public_keys_directory`` and
``allowed_clients``, the server's keys), against a real ``trollmoves server`` whose publisher uses
posttroll's ``secure_zmq`` backend."""

from __future__ import annotations

import itertools
import threading
from pathlib import Path

import pytest
import yaml
from posttroll.message import Message
from support.bus import BusRecorder, free_port, wait_until
from support.client import InProcessClient, client_section
from support.files import write_file
from support.ini import write_ini
from support.mirror import InProcessMirror, mirror_section
from support.reqrep import request
from support.server import TOPIC, server_section
from trollmoves_roles.bus.security import create_keypair
from trollmoves_roles.dispatcher.engine import Dispatcher
from trollmoves_roles.downloader.config import load_config
from trollmoves_roles.downloader.engine import Downloader
from trollmoves_roles.mirror.config import load_mirror_config
from trollmoves_roles.protocol.messages import MESSAGE_VERSION

from trollmoves_core.exceptions import ConfigError
from trollmoves_core.plugins import default_host

pytestmark = pytest.mark.timeout(180)

_probes = itertools.count()


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, tuple[Path, Path]]:
    """Key pairs: ``server``, ``mirror`` (its server side), and the peers ``admitted``, ``intruder``."""
    return {name: create_keypair(tmp_path / "keys", name) for name in ("server", "mirror", "admitted", "intruder")}


def admitting(directory: Path, *pairs: tuple[Path, Path]) -> Path:
    directory.mkdir()
    for public, _ in pairs:
        (directory / public.name).write_bytes(public.read_bytes())
    return directory


def secure_server(tmp_path: Path, server_process, origin: Path, admitted: Path, keys, **extra: object):
    """``trollmoves server`` whose publisher admits only the keys in ``admitted`` (secure_zmq)."""
    config = write_ini(tmp_path / "server.ini", {"chain": server_section(origin, free_port(), **extra)})
    env = {"POSTTROLL_BACKEND": "secure_zmq", "POSTTROLL_SERVER_SECRET_KEY_FILE": str(keys["server"][1]),
           "POSTTROLL_CLIENTS_PUBLIC_KEYS_DIRECTORY": str(admitted)}
    return server_process(config, "--disable-backlog", env=env)


class Served:
    """A dispatcher or downloader serving in a thread."""

    def __init__(self, service) -> None:
        self.service = service
        self.halt = threading.Event()
        self.thread = threading.Thread(target=service.serve, args=(self.halt,), daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.halt.set()
        self.thread.join(15)
        assert not self.thread.is_alive()


def curve_keys(pair: tuple[Path, Path], keys) -> dict[str, str]:
    return {"client_secret_key_file": str(pair[1]), "publisher_public_key_file": str(keys["server"][0])}


def dispatcher(tmp_path: Path, name: str, server, pair, keys) -> tuple[Served, Path]:
    out = tmp_path / name
    subscriber = {"subscribe_addresses": [f"tcp://127.0.0.1:{server.pub_port}"], "nameserver": False,
                  **curve_keys(pair, keys)}
    config = tmp_path / f"{name}.yaml"
    config.write_text(yaml.safe_dump({"posttroll_subscriber": subscriber, "archive": {
        "host": "", "directory": str(out), "dispatch_configs": [{"topics": [TOPIC]}]}}))
    return Served(Dispatcher(config, host=default_host(), watch=False)), out


def downloader(tmp_path: Path, name: str, server, pair, keys) -> tuple[Served, Path]:
    out = tmp_path / name
    config = tmp_path / f"{name}.yaml"
    config.write_text(yaml.safe_dump({
        "subscribe-topic": [TOPIC], "publish-topic": "/downloaded", "download_destination": str(out),
        "subscriber_addresses": f"tcp://127.0.0.1:{server.pub_port}", "subscribe_nameserver": False,
        **curve_keys(pair, keys)}))
    return Served(Downloader(load_config(config), host=default_host())), out


def test_dispatcher_and_downloader_subscribe_to_a_secure_publisher_with_their_keys(
        tmp_path, dirs, server_process, keys):
    origin, _ = dirs
    server = secure_server(tmp_path, server_process, origin, admitting(tmp_path / "admitted", keys["admitted"]), keys)
    services = {"dispatched": dispatcher(tmp_path, "dispatched", server, keys["admitted"], keys),
                "downloaded": downloader(tmp_path, "downloaded", server, keys["admitted"], keys),
                "intruder": dispatcher(tmp_path, "intruder", server, keys["intruder"], keys)}
    try:
        def both_got_a_probe() -> bool:
            name = f"probe{next(_probes)}.dat"
            write_file(origin, name, b"probe")
            return wait_until(lambda: all((services[k][1] / name).exists() for k in ("dispatched", "downloaded")),
                              timeout=2.0)

        assert wait_until(both_got_a_probe, timeout=60, interval=0), server.log()[-2000:]
        write_file(origin, "secret.dat", b"sent over CURVE\n")
        for kind in ("dispatched", "downloaded"):
            assert wait_until((services[kind][1] / "secret.dat").exists, timeout=20), kind
            assert (services[kind][1] / "secret.dat").read_bytes() == b"sent over CURVE\n"
    finally:
        for served, _ in services.values():
            served.stop()
    # the intruder's key is not admitted: it heard nothing of all that
    intruder = services["intruder"][0].service
    assert intruder.handled == 0 and not services["intruder"][1].exists()


def test_mirror_speaks_curve_on_both_sides_and_applies_allowed_clients(tmp_path, dirs, server_process, keys):
    origin, _ = dirs
    server = secure_server(tmp_path, server_process, origin, admitting(tmp_path / "admitted", keys["admitted"]),
                           keys, server_secret_key_file=keys["server"][1],
                           clients_public_keys_directory=tmp_path / "admitted")
    externals = admitting(tmp_path / "externals", keys["intruder"])  # the external client's key
    request_port = free_port()
    config = write_ini(tmp_path / "mirror.ini", {"mirror": mirror_section(
        f"127.0.0.1:{server.pub_port}", request_port, client_topic=TOPIC, remove_delay=0,
        working_directory=tmp_path / "staging",
        client_secret_key_file=keys["admitted"][1], server_public_key_file=keys["server"][0],
        publisher_public_key_file=keys["server"][0],
        server_secret_key_file=keys["mirror"][1], clients_public_keys_directory=externals,
        allowed_clients="127.0.0.1")})
    (tmp_path / "staging").mkdir()
    mirror = InProcessMirror(config)
    out, publish_port = tmp_path / "out", free_port()
    client_config = write_ini(tmp_path / "client.ini", {"ext": client_section(
        mirror.provider, f"{out}/", publish_port, topic="/mirror/data",
        client_secret_key_file=keys["intruder"][1], server_public_key_file=keys["mirror"][0])})
    client = InProcessClient(client_config)
    results = BusRecorder([f"tcp://127.0.0.1:{publish_port}"], ["/mirror/data"])
    mirror_address = f"127.0.0.1:{request_port}"
    admitted_curve = (*_z85(keys["intruder"]), _public(keys["mirror"]))
    try:
        def delivered_probe() -> bool:
            name = f"probe{next(_probes)}.dat"
            write_file(origin, name, b"probe")
            return wait_until((out / name).exists, timeout=2.0)

        assert wait_until(delivered_probe, timeout=60, interval=0), server.log()[-3000:]
        write_file(origin, "secret.dat", b"through the mirror over CURVE\n")
        assert wait_until((out / "secret.dat").exists, timeout=20)
        ping = Message("/mirror/data", "ping", version=MESSAGE_VERSION)
        assert request(mirror_address, ping, timeout=10, curve=admitted_curve).type == "pong"
        # not admitted: a key the mirror does not know, no CURVE at all, or an address outside allowed_clients
        unknown = (*_z85(keys["admitted"]), _public(keys["mirror"]))
        assert request(mirror_address, ping, timeout=1, curve=unknown) is None
        assert request(mirror_address, ping, timeout=1) is None
        assert request(mirror_address, ping, timeout=1, curve=admitted_curve, source="127.0.0.2") is None
    finally:
        results.close()
        client.stop()
        mirror.stop()
    assert (out / "secret.dat").read_bytes() == b"through the mirror over CURVE\n"
    assert "unknown CURVE client key" not in server.log()  # the mirror's own key was admitted


def _z85(pair: tuple[Path, Path]) -> tuple[bytes, bytes]:
    from zmq.auth import load_certificate

    public, secret = load_certificate(pair[1])
    assert secret is not None
    return public, secret


def _public(pair: tuple[Path, Path]) -> bytes:
    from zmq.auth import load_certificate

    return load_certificate(pair[0])[0]


@pytest.mark.parametrize("role", ["dispatcher", "downloader", "mirror"])
def test_a_half_curve_setup_is_refused_naming_the_key(tmp_path, keys, role):
    missing_pair = {"publisher_public_key_file": str(keys["server"][0])}
    if role == "dispatcher":
        path = tmp_path / "d.yaml"
        path.write_text(yaml.safe_dump({"posttroll_subscriber": {"subscribe_addresses": ["tcp://127.0.0.1:1"],
                                                                 "nameserver": False, **missing_pair},
                                        "t": {"host": "", "directory": str(tmp_path),
                                              "dispatch_configs": [{"topics": ["/x"]}]}}))
        with pytest.raises(ConfigError, match="publisher_public_key_file: needs client_secret_key_file"):
            Dispatcher(path, host=default_host(), watch=False)
    elif role == "downloader":
        path = tmp_path / "d.yaml"
        path.write_text(yaml.safe_dump({"subscribe-topic": "/x", "publish-topic": "/y",
                                        "client_secret_key_file": str(keys["admitted"][1])}))
        with pytest.raises(ConfigError, match="client_secret_key_file: needs publisher_public_key_file"):
            load_config(path)
    else:
        path = write_ini(tmp_path / "m.ini", {"m": mirror_section("127.0.0.1:1", free_port(),
                                                                  server_secret_key_file=keys["mirror"][1])})
        with pytest.raises(ConfigError, match="server_secret_key_file: needs clients_public_keys_directory"):
            load_mirror_config(path)
